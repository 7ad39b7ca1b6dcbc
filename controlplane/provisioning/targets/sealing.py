"""Sealing Secrets for a GitOps tree: Bitnami SealedSecrets that only the cluster can open.

Generated credentials must never land in plain text in a git-tracked directory, so each
``Secret`` is written as a ``bitnami.com/v1alpha1`` ``SealedSecret`` encrypted for the
sealing certificate of the target's sealed-secrets controller. The wire format is the
controller's hybrid scheme: ``uint16 len(rsa) || RSA-OAEP-SHA256(session key, label) ||
AES-256-GCM(value)`` with a random single-use session key and an all-zero nonce, the label
being ``<namespace>/<name>`` (strict scope), each value base64-encoded.

Encryption is randomised, so re-sealing the same Secret gives new bytes. To keep a no-op
reconcile from rewriting files, a sealed Secret carries the rendered object's digest
(``city-platform.be/source-digest``, a SHA-256 over 256-bit random values: it reveals
nothing) and the certificate fingerprint; the GitOps target re-seals only when either changed.

This module must not know about the database, the reconciler or where files go.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.x509.oid import NameOID

from controlplane.errors import ErrorItem, InvalidInput

SOURCE_DIGEST = "city-platform.be/source-digest"
CERT_FINGERPRINT = "city-platform.be/sealing-cert"
_SESSION_KEY_BYTES = 32
_NONCE = bytes(12)


class SealingCertInvalid(InvalidInput):
    """The sealing certificate of the GitOps target cannot be used."""

    title = "Invalid sealing certificate"
    code = "sealing_cert_invalid"


def _oaep(label: bytes) -> padding.OAEP:
    return padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=label)


def strict_label(namespace: str, name: str) -> bytes:
    return f"{namespace}/{name}".encode()


def hybrid_encrypt(public_key: rsa.RSAPublicKey, plaintext: bytes, label: bytes) -> bytes:
    session_key = os.urandom(_SESSION_KEY_BYTES)
    wrapped = public_key.encrypt(session_key, _oaep(label))
    # The session key is used exactly once, which is why a zero nonce is safe here.
    sealed = AESGCM(session_key).encrypt(_NONCE, plaintext, None)
    return len(wrapped).to_bytes(2, "big") + wrapped + sealed


def hybrid_decrypt(private_key: rsa.RSAPrivateKey, ciphertext: bytes, label: bytes) -> bytes:
    """The controller's side (used by tests and by operators checking a tree)."""
    size = int.from_bytes(ciphertext[:2], "big")
    session_key = private_key.decrypt(ciphertext[2 : 2 + size], _oaep(label))
    return AESGCM(session_key).decrypt(_NONCE, ciphertext[2 + size :], None)


@dataclass(frozen=True)
class Sealer:
    """Seals Secrets for one certificate."""

    public_key: rsa.RSAPublicKey
    fingerprint: str

    @classmethod
    def from_pem_file(cls, path: Path) -> Sealer:
        try:
            cert = x509.load_pem_x509_certificate(path.read_bytes())
        except (OSError, ValueError) as exc:
            raise SealingCertInvalid(
                f"The sealing certificate {path} cannot be read: {exc}",
                errors=[ErrorItem("target.config.sealing_cert", str(exc))],
                hint="Point `sealing_cert` at the PEM certificate from `kubeseal --fetch-cert`.",
            ) from exc
        key = cert.public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            raise SealingCertInvalid(
                f"The sealing certificate {path} does not hold an RSA key.",
                errors=[ErrorItem("target.config.sealing_cert", "expected an RSA public key")],
                hint="sealed-secrets controllers use RSA keys; fetch theirs with kubeseal.",
            )
        fingerprint = "sha256:" + cert.fingerprint(hashes.SHA256()).hex()
        return cls(public_key=key, fingerprint=fingerprint)

    def seal(self, secret: dict[str, Any], source_digest: str) -> dict[str, Any]:
        """The SealedSecret for one rendered ``Secret`` (``stringData`` and/or ``data``)."""
        meta = secret["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        label = strict_label(namespace, name)
        values: dict[str, bytes] = {
            key: base64.b64decode(value) for key, value in (secret.get("data") or {}).items()
        }
        values.update(
            {key: str(value).encode() for key, value in (secret.get("stringData") or {}).items()}
        )
        encrypted = {
            key: base64.b64encode(hybrid_encrypt(self.public_key, values[key], label)).decode()
            for key in sorted(values)
        }
        template_meta: dict[str, Any] = {"name": name, "namespace": namespace}
        if meta.get("labels"):
            template_meta["labels"] = dict(meta["labels"])
        if meta.get("annotations"):
            template_meta["annotations"] = dict(meta["annotations"])
        annotations = {SOURCE_DIGEST: source_digest, CERT_FINGERPRINT: self.fingerprint}
        sealed_meta: dict[str, Any] = {
            "name": name,
            "namespace": namespace,
            "annotations": annotations,
        }
        if meta.get("labels"):
            sealed_meta["labels"] = dict(meta["labels"])
        template: dict[str, Any] = {"metadata": template_meta}
        if secret.get("type"):
            template["type"] = secret["type"]
        return {
            "apiVersion": "bitnami.com/v1alpha1",
            "kind": "SealedSecret",
            "metadata": sealed_meta,
            "spec": {"encryptedData": encrypted, "template": template},
        }

    def is_current(self, sealed: Any, source_digest: str) -> bool:
        """Whether an existing SealedSecret already seals this exact Secret for this cert."""
        try:
            annotations = sealed["metadata"]["annotations"]
        except (KeyError, TypeError):
            return False
        return bool(
            annotations.get(SOURCE_DIGEST) == source_digest
            and annotations.get(CERT_FINGERPRINT) == self.fingerprint
        )


def ensure_keypair(directory: Path, *, key_size: int = 4096) -> Path:
    """Create the embedded default's sealing keypair once; return the certificate path.

    The private key stays in ``directory`` (the data directory, never the GitOps tree);
    docs/gitops.md explains importing it into the sealed-secrets controller.
    """
    cert_path = directory / "sealing.crt"
    key_path = directory / "sealing.key"
    if cert_path.exists() and key_path.exists():
        return cert_path
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = rsa.generate_private_key(public_exponent=65537, key_size=key_size)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "city-platform sealed-secrets")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=3650))
        .sign(key, hashes.SHA256())
    )
    key_bytes = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    # os.open's mode applies only to a new file: an existing one (a restored or copied
    # key whose certificate is gone) keeps its mode unless it is set here, before writing.
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key_bytes)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path


def load_private_key(path: Path) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise SealingCertInvalid(f"{path} is not an RSA private key.")
    return key


def digest_of(value: bytes) -> str:
    return "sha256:" + hashlib.sha256(value).hexdigest()
