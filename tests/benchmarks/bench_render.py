"""Render + validate time per stack, over the catalogue matrix and a Flemish fleet.

Figures (one process, one core): mean, p50 and p99 milliseconds per stack, stacks per
second and objects per stack, for (1) every service x version x plan of the shipped
catalogue and (2) the 285 Flemish municipalities x every service at its newest version
on its smallest plan. Templates and validators are warmed up first (compiling is a
once-per-release cost, reported separately). Municipality data: Source: Statbel, CC BY 4.0.
"""

from __future__ import annotations

import csv
import re
import statistics
import time
import unicodedata
import uuid
from collections.abc import Callable

from controlplane.catalog.loading import load_catalog
from controlplane.catalog.models import ServiceRelease
from controlplane.rendering import InstanceRef, RenderedStack, Renderer, TenantRef
from controlplane.tenants.reference import FLEMISH_MUNICIPALITIES_CSV
from tests.benchmarks import Figure

AREA = "render"
TARGET = "<= 2 ms per 13-object stack"
MUNICIPALITIES = FLEMISH_MUNICIPALITIES_CSV


def slug(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:30].strip("-")


def tenants() -> list[TenantRef]:
    path = MUNICIPALITIES
    if not path.is_file():
        return []
    with path.open(encoding="utf-8") as handle:
        return [
            TenantRef(slug=slug(row["name_nl"]), name=row["name_nl"], nis_code=row["nis_code"])
            for row in csv.DictReader(handle)
        ]


Job = Callable[[], RenderedStack]


def measure(label: str, jobs: list[Job]) -> list[Figure]:
    for job in jobs:  # warm-up: compile templates and validators once
        job()
    durations: list[float] = []
    objects = 0
    start = time.perf_counter()
    for job in jobs:
        t0 = time.perf_counter()
        stack = job()
        durations.append(time.perf_counter() - t0)
        objects += len(stack.objects)
    total = time.perf_counter() - start
    n = len(jobs)
    if n == 0:
        return [Figure(AREA, f"{label}: stacks", 0, "stacks")]
    ms = sorted(d * 1000 for d in durations)
    per_object = sum(ms) / objects
    return [
        Figure(AREA, f"{label}: stacks", n, "stacks"),
        Figure(AREA, f"{label}: objects per stack", objects / n, "objects"),
        Figure(AREA, f"{label}: mean per stack", statistics.fmean(ms), "ms", TARGET),
        Figure(AREA, f"{label}: p50 per stack", ms[n // 2], "ms"),
        Figure(AREA, f"{label}: p99 per stack", ms[min(n - 1, int(n * 0.99))], "ms"),
        Figure(AREA, f"{label}: 13-object equivalent", per_object * 13, "ms", TARGET),
        Figure(AREA, f"{label}: throughput", n / total, "stacks/s"),
    ]


def run() -> list[Figure]:
    catalog = load_catalog()
    renderer = Renderer(server_secret=b"benchmark-server-secret")
    releases = catalog.releases()
    ghent = TenantRef(slug="gent", name="Gent", nis_code="44021")

    def job(release: ServiceRelease, plan: str, tenant: TenantRef, instance: str) -> Job:
        ref = InstanceRef(name=instance, id=str(uuid.uuid5(uuid.NAMESPACE_DNS, tenant.slug)))
        return lambda: renderer.render(
            release, plan=plan, tenant=tenant, instance=ref, parameters={}
        )

    compile_start = time.perf_counter()
    for release in releases:
        renderer.compiled(release)
    compile_ms = (time.perf_counter() - compile_start) * 1000 / max(1, len(releases))

    matrix = [job(r, p.name, ghent, r.name[:20].strip("-")) for r in releases for p in r.plans]
    newest = [catalog.release(name) for name in sorted(catalog.services)]
    fleet = [
        job(r, min(r.plans, key=lambda p: p.monthly_price).name, t, r.name[:20].strip("-"))
        for t in tenants()
        for r in newest
    ]
    return [
        Figure(AREA, "compile templates per release (once)", compile_ms, "ms"),
        *measure("catalogue matrix", matrix),
        *measure("Flemish fleet (285 x services)", fleet),
    ]


if __name__ == "__main__":
    for figure in run():
        print(f"{figure.name:55} {figure.value:12.3f} {figure.unit}")
