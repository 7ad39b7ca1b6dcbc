"""The GitOps target: one folder per instance that Argo CD or Flux applies.

Layout: ``<root>/<tenant>/<instance>/NN-<kind>-<name>.yaml`` (``NN`` = apply order) and a
``kustomization.yaml`` listing them, so ``kubectl kustomize`` builds the folder. The root
and each tenant folder have a ``kustomization.yaml`` too, listing the tenant folders and the
tenant's instance folders, so Argo CD or Flux can follow one path per target or per tenant;
they are rewritten (atomically, under a lock on the root folder) when their listing changed:
at once on a delete (a tenant folder without instances is removed), and once per batch in
``flush`` for the tenants applied to since the last flush (rewriting them on each of a
tenant's applies was a tenth of a cold fleet reconcile). An apply that finds its instance
missing from the listings reports it, and the drift check finds it until the flush. A new
folder is built whole in a hidden staging folder beside it and renamed into place (one
atomic rename for all its files); in an existing folder each changed file is written
atomically (temporary file + ``os.replace``). Either way a reader never sees half a file or
half a folder, and a file is written only when its bytes change, so a no-op reconcile
rewrites nothing.

Each file starts with one comment line that names the object, the digest of what it was
rendered from and the SHA-256 of the rest of the file. That is what makes the drift check
cheap and exact: a file that was edited, removed or left from an older render is found by
reading and hashing, without rendering or serialising anything. A folder whose files all
kept their identity (inode, size, mtime, ctime) since they were read and verified is not read
again (``_Verified``: git's rule for its index, racy timestamps included), except once an hour.

Secrets are never written in plain text: each becomes a SealedSecret (``sealing.py``). A
target without a sealing certificate refuses stacks that contain a Secret.

This module must not know about the database, the queue or templates.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import os
import re
import shutil
import struct
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import yaml_rs

from controlplane.errors import ErrorItem
from controlplane.kube.objects import ObjectRef
from controlplane.provisioning.targets import (
    ApplyReport,
    Readiness,
    Stack,
    TargetError,
    TargetRejected,
)
from controlplane.provisioning.targets.sealing import Sealer
from controlplane.rendering.packed import object_ids
from controlplane.rendering.renderer import object_yaml

if TYPE_CHECKING:
    from controlplane.kube.client import KubeClient

KUSTOMIZATION = "kustomization.yaml"
_HEADER = re.compile(rb"^# city-platform: id=(\S+) digest=(\S+) sha256=([0-9a-f]{64})\n")
_UNSAFE = re.compile(r"[^a-z0-9.-]+")
#: Suffix of temporary files and staging folders (a crash may leave them; prune removes them).
TMP_SUFFIX = ".tmp"


def file_name(index: int, object_id: str, width: int = 2) -> str:
    """``NN-kind-name.yaml``; ``NN`` is the apply order (wider for stacks of 100+ objects)."""
    return f"{index:0{width}d}-{_stem(object_id)[0]}.yaml"


@functools.lru_cache(maxsize=4096)
def _stem(object_id: str) -> tuple[str, bool]:
    """(``kind-name`` of the object's file, whether it is a Secret).

    Kept: object names are per namespace, so a fleet repeats the same few hundred ids
    (parsing them for every file was 5 % of the worker's CPU in a cold fleet)."""
    ref = ObjectRef.parse(object_id)
    stem = f"{_UNSAFE.sub('-', ref.kind.lower())}-{_UNSAFE.sub('-', ref.name.lower())}"
    return stem, ref.kind == "Secret"


def _is_secret(object_id: str) -> bool:
    return _stem(object_id)[1]


def render_file(object_id: str, digest: str, body: bytes) -> bytes:
    """The bytes of one object file: the header line, then the object's YAML
    (``object_yaml``)."""
    return _header(object_id, digest, body) + body


def _header(object_id: str, digest: str, body: bytes) -> bytes:
    return (
        f"# city-platform: id={object_id} digest={digest} "
        f"sha256={hashlib.sha256(body).hexdigest()}\n"
    ).encode()


def read_header(data: bytes) -> tuple[str, str] | None:
    """``(object id, digest)`` of an intact file, None if it was edited or is not ours."""
    match = _HEADER.match(data)
    if match is None:
        return None
    body = data[match.end() :]
    if hashlib.sha256(body).hexdigest() != match.group(3).decode():
        return None
    return match.group(1).decode(), match.group(2).decode()


#: A file's identity: (inode, size, mtime, ctime), in nanoseconds. Any write, rename,
#: ``touch`` or ``chmod`` changes the ctime, which no user can set back.
Identity = tuple[int, int, int, int]
#: A file changed less than this long before its bytes were read is not trusted by its
#: identity later: a second change within one timestamp tick (a jiffy on ext4; whole
#: seconds on some file systems) could leave the identity as it was.
RACY_NS = 2_000_000_000
#: A folder known unchanged by its files' identities is still read in full this often.
FULL_READ_SECONDS = 3600.0


_IDENTITY = struct.Struct("<Qqqq")


def _identity(st: os.stat_result) -> Identity:
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _read(path: str, identities: dict[str, Identity] | None = None, name: str = "") -> bytes:
    """The whole file with plain ``os.read`` (the resync reads every file of the fleet).

    With ``identities``, the file's identity *before* the read is kept under ``name``: a
    change after it then shows in the identity, never only in the bytes.
    """
    fd = os.open(path, os.O_RDONLY)
    try:
        if identities is not None:
            identities[name] = _identity(os.fstat(fd))
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class _Verified:
    """What a full read of an instance folder found, kept small (a fleet has thousands).

    Hashes, not contents: of every entry's name and identity, of what the intact files'
    headers say (object id → digest), and of the kustomization. A drift check that finds
    the same identities and expects the same headers needs nothing else.
    """

    #: BLAKE2b of every entry's (name, identity).
    files: bytes
    #: ``_found_digest`` of object id → header digest (``digest+<certificate>`` if sealed).
    found: bytes
    #: Object ids whose file is sealed (their digest names the sealing certificate).
    sealed: frozenset[str]
    #: SHA-256 of the kustomization's bytes (None: there is none).
    listing: str | None
    #: ``folder_digest`` of what was read.
    digest: str
    #: Monotonic clock at the read (its age).
    read_at: float

    def current(self, folder: Path) -> bool:
        """Whether every entry is the one read: same names and identities."""
        if time.monotonic() - self.read_at > FULL_READ_SECONDS:
            return False
        try:
            identities = {entry.name: _identity(entry.stat()) for entry in os.scandir(folder)}
        except OSError:
            return False
        return _files_digest(identities) == self.files


# Both digests hash one joined buffer: the same bytes as one update per entry, without a
# call per entry (every instance of a resync computes both).
def _files_digest(identities: Mapping[str, Identity]) -> bytes:
    joined = b"".join(
        name.encode() + b"\0" + _IDENTITY.pack(*identities[name]) for name in sorted(identities)
    )
    return hashlib.blake2b(joined, digest_size=16).digest()


def _found_digest(found: Mapping[str, str]) -> bytes:
    joined = "".join(f"{oid}\0{found[oid]}\n" for oid in sorted(found))
    return hashlib.blake2b(joined.encode(), digest_size=16).digest()


def _sha256_hex(data: bytes | None) -> str | None:
    return hashlib.sha256(data).hexdigest() if data is not None else None


def _write_new(path: str, data: bytes) -> None:
    """Create a file that must not exist yet (inside a staging folder nobody reads)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def write_atomically(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class _File(NamedTuple):
    """One object's file, as a stack wants it."""

    name: str
    #: The object's index in ``Stack.objects``.
    position: int
    #: The digest its header names (``digest+certificate`` for a sealed Secret).
    key: str
    #: A Secret, written sealed.
    sealed: bool


#: Object id → its file, in apply order.
_Desired = dict[str, _File]
#: (stack, sealing certificate, ``GitOpsTarget._desired`` of that stack).
_DesiredOf = tuple[Stack, str | None, _Desired]


class GitOpsTarget:
    """Writes stacks as files below ``root``; optionally commits each batch with git."""

    drift_needs_objects = False
    #: Each instance has its own folder, so the reconciler may work on several at once
    #: (file I/O overlaps in threads; see ``Reconciler.reconcile_batch``).
    concurrent_apply = True
    #: Objects become YAML files: render processes serialise them (``Stack.yaml``).
    writes_yaml = True

    def __init__(
        self,
        root: Path,
        *,
        name: str = "gitops",
        sealer: Sealer | None = None,
        git_commit: bool = False,
        observer: KubeClient | None = None,
    ) -> None:
        self.name = name
        self.root = root
        self.sealer = sealer
        self.git_commit = git_commit
        #: Read access to the cluster the GitOps controller applies to (``observe_kubeconfig``);
        #: without it the target cannot tell whether anything runs, so it settles at Committed.
        self.observer = observer
        self._git_lock = threading.Lock()
        #: Tenants applied to since the last ``flush``: their listings are refreshed there.
        self._dirty: set[str] = set()
        self._dirty_lock = threading.Lock()
        #: Parsed ``resources`` of the root and tenant listings, by path and file identity.
        self._listings: dict[str, tuple[tuple[int, int, int], frozenset[str]]] = {}
        #: Per thread: the folder digest of the bytes this thread just wrote or read (see
        #: ``readiness``), so the readiness step does not read the whole folder again.
        self._seen = threading.local()
        #: Per thread: (stack, sealing certificate, ``_desired`` of it), see ``_desired``.
        self._last_desired = threading.local()
        #: Instance folders by path: what the last drift check read (``_Verified``). Each
        #: folder is worked on by one thread at a time; every write here drops its entry.
        self._verified: dict[Path, _Verified] = {}

    @property
    def observes(self) -> bool:
        return self.observer is not None

    def _relative(self, path: Path) -> str:
        """A path as the tenant may see it: relative to the GitOps root, never the server's."""
        text, root = str(path), str(self.root)
        if text == root:
            return "."
        if text.startswith(root + os.sep):  # as ``relative_to``, without its cost per call
            return text[len(root) + 1 :]
        return path.name

    # -- layout
    def folder(self, tenant: str, instance: str) -> Path:
        return self.root / tenant / instance

    def _sealed_for(self) -> str | None:
        """The certificate a sealed file's digest names (None: no sealing certificate)."""
        return self.sealer.fingerprint.removeprefix("sha256:")[:16] if self.sealer else None

    def _desired(self, stack: Stack) -> _Desired:
        """Object id → its file, in apply order.

        Made from the ids alone: objects packed by a render process stay packed
        (``controlplane.rendering.packed``), as only Secrets are read here.

        Kept for the stack this thread worked on last: drift check, apply and prune of one
        reconcile ask for the same stack (measured: 6 % of the worker's CPU in a cold fleet).
        """
        sealed_for = self._sealed_for()
        last: _DesiredOf | None = getattr(self._last_desired, "value", None)
        if last is not None and last[0] is stack and last[1] == sealed_for:
            return last[2]
        out: _Desired = {}
        ids = object_ids(stack.objects)
        width = max(2, len(str(len(ids))))
        for index, oid in enumerate(ids):
            digest = stack.digests[oid]
            sealed = sealed_for is not None and _is_secret(oid)
            # A sealed Secret is current only for the certificate it was sealed for.
            key = f"{digest}+{sealed_for}" if sealed else digest
            out[oid] = _File(file_name(index + 1, oid, width), index, key, sealed)
        self._last_desired.value = (stack, sealed_for, out)
        return out

    def _scan(
        self,
        folder: Path,
        files: dict[str, bytes] | None = None,
        identities: dict[str, Identity] | None = None,
    ) -> dict[str, tuple[str, str] | None]:
        """File name → header of every YAML file in the folder (None: edited or foreign).

        With ``files``, also every visible file's bytes (the kustomization included), so the
        caller can digest the folder without reading it again; ``files`` is left empty when
        the folder holds something this scan does not read (a foreign file or folder).
        With ``identities``, the identity of every file read, taken before reading it.
        """
        found: dict[str, tuple[str, str] | None] = {}
        try:
            entries = list(os.scandir(folder))
        except FileNotFoundError:
            return found
        complete = files is not None
        for entry in entries:
            if entry.name == KUSTOMIZATION:
                if complete and files is not None:
                    files[entry.name] = _read(entry.path, identities, entry.name)
                continue
            if not entry.name.endswith(".yaml"):
                complete &= entry.name.startswith(".")
                continue
            data = _read(entry.path, identities, entry.name)
            found[entry.name] = read_header(data)
            if files is not None and not entry.name.startswith("."):
                files[entry.name] = data
        if files is not None and not complete:
            files.clear()
        return found

    # -- the root and tenant kustomizations
    def _roots_current(self, tenant: str, instance: str) -> bool:
        """Whether the tenant's kustomization lists the instance and the root lists the tenant."""
        # Paths as text: ``pathlib`` joins and hashes cost more than the two ``stat`` calls.
        root = os.fspath(self.root)
        return instance in self._listed(os.path.join(root, tenant, KUSTOMIZATION)) and (
            tenant in self._listed(os.path.join(root, KUSTOMIZATION))
        )

    def _listed(self, path: str) -> frozenset[str]:
        """``_resources`` of a listing, parsed again only when the file was replaced.

        Every resync asks whether the root lists the tenant: parsing the root's hundreds of
        lines per instance cost a third of the drift check. Listings are only ever replaced
        (``os.replace``), which gives a new inode; an edit in place changes size or mtime.
        """
        try:
            st = os.stat(path)
        except OSError:
            return frozenset()
        identity = (st.st_ino, st.st_mtime_ns, st.st_size)
        cached = self._listings.get(path)
        if cached is not None and cached[0] == identity:
            return cached[1]
        listed = frozenset(_resources(Path(path)))
        self._listings[path] = (identity, listed)
        return listed

    def _refresh_roots(self, *tenants: str) -> bool:
        """List the tenants' instance folders and the root's tenant folders; True if written.

        The listings are read from the folders themselves, so any refresh repairs them; a
        file is written only when its bytes change, the root at most once. The lock on the
        root folder (``flock``) keeps concurrent refreshes, in threads or in other
        processes, from writing a listing that another one's change has made stale.
        """
        written = False
        with _locked(self.root):
            root = self.root / KUSTOMIZATION
            root_stale = not root.exists()
            in_root = set() if root_stale else set(_resources(root))
            for tenant in tenants:
                tenant_folder = self.root / tenant
                instances = _kustomized_folders(tenant_folder)
                path = tenant_folder / KUSTOMIZATION
                if instances:
                    written |= _write_if_changed(path, _kustomization(instances))
                else:
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()
                        written = True
                    with contextlib.suppress(OSError):
                        tenant_folder.rmdir()  # only when nothing else (a staging folder) is left
                root_stale |= (tenant in in_root) != bool(instances)
            if root_stale:
                written |= _write_if_changed(root, _kustomization(_kustomized_folders(self.root)))
        return written

    def _refresh_dirty(self) -> None:
        """Refresh the listings of the tenants applied to since the last flush."""
        with self._dirty_lock:
            tenants, self._dirty = sorted(self._dirty), set()
        if not tenants:
            return
        try:
            self._refresh_roots(*tenants)
        except OSError as exc:
            with self._dirty_lock:
                self._dirty.update(tenants)  # the next flush tries again
            raise TargetError(
                f"GitOps target {self.name!r}: cannot update the folder listings: "
                f"{exc.strerror or type(exc).__name__}.",
                errors=[ErrorItem(self._relative(self.root), exc.strerror or "")],
                hint="Check that the target path exists, is writable and the disk is not full.",
            ) from exc

    # -- StackTarget
    def apply(self, stack: Stack, *, only: set[str] | None = None) -> ApplyReport:
        self._refuse_plain_secrets(stack)
        folder = self.folder(stack.tenant, stack.instance)
        try:
            report = self._write_instance(folder, stack, only)
            # The listings are refreshed once per batch, in ``flush``; the tenant is marked
            # even when they look current, so the flush also repairs a stale extra entry.
            with self._dirty_lock:
                self._dirty.add(stack.tenant)
            if not report.written and not self._roots_current(stack.tenant, stack.instance):
                report.written.append(KUSTOMIZATION)
            return report
        except OSError as exc:
            where = self._relative(folder)
            raise TargetError(
                f"GitOps target {self.name!r}: cannot write the folder {where}: "
                f"{exc.strerror or type(exc).__name__}.",
                errors=[ErrorItem(where, exc.strerror or type(exc).__name__)],
                hint="Check that the target path exists, is writable and the disk is not full.",
            ) from exc

    def _write_instance(self, folder: Path, stack: Stack, only: set[str] | None) -> ApplyReport:
        self._forget_digest()
        self._verified.pop(folder, None)
        if not folder.exists():
            report = self._create_folder(folder, stack)
            if report is not None:
                return report
        folder.mkdir(parents=True, exist_ok=True)
        present = self._scan(folder)
        report = ApplyReport()
        desired = self._desired(stack)
        for oid, file in desired.items():
            if only is not None and oid not in only and file.name in present:
                continue
            if present.get(file.name) == (oid, file.key):
                continue
            write_atomically(folder / file.name, self._file_bytes(oid, file, stack))
            report.written.append(oid)
        kustomization = _kustomization([file.name for file in desired.values()])
        path = folder / KUSTOMIZATION
        if not path.exists() or path.read_bytes() != kustomization:
            write_atomically(path, kustomization)
            if not report.written:
                report.written.append(KUSTOMIZATION)
        return report

    def _create_folder(self, folder: Path, stack: Stack) -> ApplyReport | None:
        """A new instance folder, made whole in a temporary sibling and renamed into place.

        One ``rename`` of the directory makes every file appear at once, so each file is a
        plain create (no temporary file and rename per file, which is most of the cost of a
        cold fleet reconcile). None when the folder appeared meanwhile (then the per-file
        path takes over).
        """
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=TMP_SUFFIX, dir=folder.parent)
        report = ApplyReport()
        files: dict[str, bytes] = {}
        try:
            desired = self._desired(stack)
            for oid, file in desired.items():
                files[file.name] = self._file_bytes(oid, file, stack)
                _write_new(os.path.join(staging, file.name), files[file.name])
                report.written.append(oid)
            names = [file.name for file in desired.values()]
            files[KUSTOMIZATION] = _kustomization(names)
            _write_new(os.path.join(staging, KUSTOMIZATION), files[KUSTOMIZATION])
            if not report.written:
                report.written.append(KUSTOMIZATION)
            try:
                # Fails (ENOTEMPTY/EEXIST) rather than replace a folder that appeared meanwhile.
                os.rename(staging, folder)
            except OSError:
                if folder.exists():
                    shutil.rmtree(staging, ignore_errors=True)
                    return None
                raise
            self._remember_digest(folder, files)
            return report
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise

    def _file_bytes(self, oid: str, file: _File, stack: Stack) -> bytes:
        if file.sealed:
            assert self.sealer is not None  # ``sealed`` says there is one
            sealed = self.sealer.seal(stack.objects[file.position], stack.digests[oid])
            return render_file(oid, file.key, object_yaml(sealed))
        body = stack.yaml.get(oid)
        if body is None:
            body = object_yaml(stack.objects[file.position])
        return render_file(oid, file.key, body)

    def _refuse_plain_secrets(self, stack: Stack) -> None:
        if self.sealer is None and any(_is_secret(oid) for oid in object_ids(stack.objects)):
            raise TargetRejected(
                f"GitOps target {self.name!r} has no sealing certificate, and the stack of "
                f"{stack.namespace} has Secrets that must not be written in plain text.",
                errors=[ErrorItem(f"targets.{self.name}.config.sealing_cert", "not set")],
                hint="Set `sealing_cert` in the target config to the PEM certificate of the "
                "cluster's sealed-secrets controller (`kubeseal --fetch-cert`).",
            )

    def prune(self, stack: Stack, *, previous: Sequence[str]) -> list[str]:
        folder = self.folder(stack.tenant, stack.instance)
        keep = {file.name for file in self._desired(stack).values()}
        removed: list[str] = []
        try:
            entries = list(os.scandir(folder))
        except FileNotFoundError:
            return removed
        for entry in entries:
            stale_yaml = entry.name.endswith(".yaml") and entry.name not in keep
            leftover_tmp = entry.name.startswith(".") and entry.name.endswith(TMP_SUFFIX)
            if entry.name != KUSTOMIZATION and (stale_yaml or leftover_tmp):
                os.unlink(entry.path)
                removed.append(entry.name)
        if removed:
            self._forget_digest()
            self._verified.pop(folder, None)
        removed += _remove_staging(folder)
        return removed

    def drifted(self, stack: Stack) -> set[str]:
        """Ids whose file is missing, edited or from another render (reads only)."""
        folder = self.folder(stack.tenant, stack.instance)
        self._forget_digest()
        sealed_for = self._sealed_for()
        known = self._verified.get(folder)
        drift: set[str] = set()
        if (
            known is not None
            and known.current(folder)
            and known.found == self._expected(stack, known.sealed, sealed_for)
        ):
            # Every file is the one read last time, and says what this stack expects.
            self._seen_digest(folder, known.digest)
            listing = known.listing
        else:
            by_id, listing = self._read_folder(folder)
            for oid, digest in stack.digests.items():
                found = by_id.get(oid)
                if found is None or found.split("+", 1)[0] != digest:
                    drift.add(oid)
                elif "+" in found and sealed_for is not None and found != f"{digest}+{sealed_for}":
                    drift.add(oid)  # sealed for another certificate: seal again
        if stack.objects:
            names = [file.name for file in self._desired(stack).values()]
            if listing != _sha256_hex(_kustomization(names)):
                drift.add(KUSTOMIZATION)
        elif listing is None:
            drift.add(KUSTOMIZATION)
        if not self._roots_current(stack.tenant, stack.instance):
            drift.add(KUSTOMIZATION)
        return drift

    @staticmethod
    def _expected(stack: Stack, sealed: frozenset[str], sealed_for: str | None) -> bytes | None:
        """``_found_digest`` of the headers ``stack`` expects (None: cannot say)."""
        if sealed and sealed_for is None:
            return None
        return _found_digest(
            {
                oid: f"{digest}+{sealed_for}" if oid in sealed else digest
                for oid, digest in stack.digests.items()
            }
        )

    def _read_folder(self, folder: Path) -> tuple[dict[str, str], str | None]:
        """(object id → header digest of every intact file, SHA-256 of the kustomization).

        A full read; it leaves the folder digest for the readiness step and, when every
        file here is ours and none changed within ``RACY_NS`` before the read, what it found
        for the next drift check (``_Verified``).
        """
        self._verified.pop(folder, None)
        files: dict[str, bytes] = {}
        identities: dict[str, Identity] = {}
        read_ns, read_at = time.time_ns(), time.monotonic()
        headers = self._scan(folder, files, identities)
        by_id = {header[0]: header[1] for header in headers.values() if header is not None}
        if not files:  # something here is not ours: read the kustomization alone
            path = folder / KUSTOMIZATION
            return by_id, _sha256_hex(path.read_bytes() if path.exists() else None)
        listing = _sha256_hex(files.get(KUSTOMIZATION))
        digest = _digest_files(files)
        self._seen_digest(folder, digest)
        if all(identity[3] < read_ns - RACY_NS for identity in identities.values()):
            self._verified[folder] = _Verified(
                files=_files_digest(identities),
                found=_found_digest(by_id),
                sealed=frozenset(oid for oid, found in by_id.items() if "+" in found),
                listing=listing,
                digest=digest,
                read_at=read_at,
            )
        return by_id, listing

    # -- the folder digest of what this thread just wrote or read
    def _remember_digest(self, folder: Path, files: Mapping[str, bytes]) -> None:
        """Keep the digest of ``files`` for the readiness step that follows in this thread.

        Only the very next ``readiness`` of the same folder takes it, and only while the
        folder's entries are unchanged (its mtime: every write here is a create or rename);
        any write, prune or drift check in this thread drops it first.
        """
        self._seen_digest(folder, _digest_files(files))

    def _seen_digest(self, folder: Path, digest: str) -> None:
        try:
            mtime = os.stat(folder).st_mtime_ns
        except OSError:
            return
        self._seen.digest = (folder, mtime, digest)

    def _forget_digest(self) -> None:
        self._seen.digest = None

    def _take_digest(self, folder: Path) -> str | None:
        seen = getattr(self._seen, "digest", None)
        self._seen.digest = None
        if seen is None or seen[0] != folder:
            return None
        try:
            if os.stat(folder).st_mtime_ns != seen[1]:
                return None
        except OSError:
            return None
        return str(seen[2])

    def folder_digest(self, tenant: str, instance: str) -> str:
        """``sha256:`` over the instance folder's file names and bytes (what was committed)."""
        folder = self.folder(tenant, instance)
        try:
            names = [e.name for e in os.scandir(folder) if e.is_file()]
        except FileNotFoundError:
            names = []
        return _digest_files(
            {name: _read(os.path.join(folder, name)) for name in names if not name.startswith(".")}
        )

    def readiness(self, stack: Stack) -> Readiness:
        folder = self.folder(stack.tenant, stack.instance)
        where = self._relative(folder)
        digest = self._take_digest(folder) or self.folder_digest(stack.tenant, stack.instance)
        short = digest[: len("sha256:") + 12] + "…"
        if self.observer is None:
            return Readiness(
                ready=True,
                external=True,
                messages=(
                    f"Committed to the GitOps repository as {where} ({short}); a GitOps "
                    "controller (Argo CD or Flux) applies it. This target does not observe "
                    "the cluster, so the platform cannot tell whether it runs.",
                ),
            )
        return self._observe(stack, short)

    def _observe(self, stack: Stack, short: str) -> Readiness:
        """Readiness read from the cluster the GitOps controller applies to (read only)."""
        from controlplane.kube.readiness import evaluate, judged
        from controlplane.provisioning.targets.kubernetes import _Translated

        assert self.observer is not None
        missing: list[str] = []
        waiting: list[str] = []
        failed = False
        with _Translated(self.name):
            for oid in stack.digests:
                kind = oid.rsplit("/", 2)[-2]
                live = self.observer.get(stack.namespace, oid)
                if live is None:
                    missing.append(oid)
                elif judged(oid):
                    verdict = evaluate(oid, kind, live)
                    if not verdict.ready:
                        waiting.append(f"{oid}: {verdict.message}")
                        failed |= verdict.failed
        if missing:
            shown = ", ".join(missing[:3]) + ("…" if len(missing) > 3 else "")
            return Readiness(
                ready=False,
                messages=(
                    f"Committed ({short}); waiting for the GitOps controller to apply it "
                    f"({len(missing)} object(s) not on the cluster yet: {shown}).",
                ),
            )
        if waiting:
            return Readiness(ready=False, messages=tuple(waiting), failed=failed)
        return Readiness(
            ready=True,
            messages=(f"Committed ({short}) and applied: all workloads are ready.",),
        )

    def delete(self, *, tenant: str, instance: str, namespace: str) -> None:
        folder = self.folder(tenant, instance)
        self._verified.pop(folder, None)
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(folder)
        _remove_staging(folder)
        try:
            self._refresh_roots(tenant)  # drops the entry; the tenant folder once empty
        except OSError as exc:
            raise TargetError(
                f"GitOps target {self.name!r}: cannot update the folder listings: "
                f"{exc.strerror or type(exc).__name__}.",
                errors=[ErrorItem(self._relative(self.root / tenant), exc.strerror or "")],
                hint="Check that the target path exists, is writable and the disk is not full.",
            ) from exc

    def flush(self, message: str) -> None:
        """End of a batch: refresh the listings it changed, then commit (``git_commit``)."""
        self._refresh_dirty()
        if not self.git_commit:
            return
        with self._git_lock:
            try:
                if not (self.root / ".git").exists():
                    self.root.mkdir(parents=True, exist_ok=True)
                    self._git("init", "-q")
                self._git("add", "-A", ".")
                staged = subprocess.run(
                    ["git", "diff", "--cached", "--quiet"],  # noqa: S607
                    cwd=self.root,
                    check=False,
                    capture_output=True,
                )
                if staged.returncode == 0:
                    return  # nothing changed: no empty commit
                self._git("commit", "-q", "-m", message)
            except (OSError, subprocess.CalledProcessError) as exc:
                stderr = getattr(exc, "stderr", b"") or b""
                reason = stderr.decode(errors="replace").strip() or str(exc)
                raise TargetError(
                    f"GitOps target {self.name!r}: git commit failed: "
                    f"{reason.replace(str(self.root), '<gitops root>')}",
                    hint="Check that git is installed and the GitOps path is a usable work tree.",
                ) from exc

    def _git(self, *args: str) -> None:
        subprocess.run(  # noqa: S603 - fixed argv, no shell
            [  # noqa: S607 - git from PATH, like any operator would run it
                "git",
                "-c",
                "user.name=City Platform",
                "-c",
                "user.email=city-platform@localhost",
                "-c",
                "commit.gpgsign=false",
                *args,
            ],
            cwd=self.root,
            check=True,
            capture_output=True,
        )


def _remove_staging(folder: Path) -> list[str]:
    """Staging folders a crashed apply of this instance left beside its folder."""
    removed: list[str] = []
    prefix = f".{folder.name}."
    try:
        entries = list(os.scandir(folder.parent))
    except FileNotFoundError:
        return removed
    for entry in entries:
        if entry.name.startswith(prefix) and entry.name.endswith(TMP_SUFFIX) and entry.is_dir():
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(entry.name)
    return removed


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """An exclusive ``flock`` on the folder itself (no lock file lands in the git tree)."""
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _kustomized_folders(folder: Path) -> list[str]:
    """Visible subfolders that ``kubectl kustomize`` can build (they have a kustomization)."""
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return []
    return sorted(
        entry.name
        for entry in entries
        if not entry.name.startswith(".")
        and entry.is_dir(follow_symlinks=False)
        and os.path.isfile(os.path.join(entry.path, KUSTOMIZATION))
    )


def _resources(path: Path) -> list[str]:
    """The ``resources`` a kustomization lists (empty when it is missing or unreadable)."""
    try:
        doc = yaml_rs.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return []
    resources = doc.get("resources") if isinstance(doc, dict) else None
    return [str(r) for r in resources] if isinstance(resources, list) else []


def _digest_files(files: Mapping[str, bytes]) -> str:
    """``folder_digest`` of a folder holding exactly ``files``."""
    digest = hashlib.sha256()
    for name in sorted(files):
        data = files[name]
        digest.update(f"{name}\0{len(data)}\0".encode())
        digest.update(data)
    return f"sha256:{digest.hexdigest()}"


def _write_if_changed(path: Path, data: bytes) -> bool:
    try:
        if path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    write_atomically(path, data)
    return True


def _kustomization(files: list[str]) -> bytes:
    doc = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": files,
    }
    return yaml_rs.dumps(doc).removeprefix("---\n").encode()
