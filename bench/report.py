"""The tables `make bench` prints: per backend (sqlite, postgres, postgres+s3), each phase's figures in
webhook and polling mode side by side."""

from __future__ import annotations

from typing import Any

FIGURES = (
    ("jobs/s", "jobs_per_s"),
    ("CPU ms/job", "cpu_ms_per_job"),
    ("DB server CPU ms/job", "db_cpu_ms_per_job"),
    ("S3 server (moto) CPU ms/job", "store_cpu_ms_per_job"),
    ("minor page faults/job", "faults_per_job"),
    ("machine busy %", "machine_busy_pct"),
    ("peak MB", "peak_mb"),
    ("cb->upload p50 ms", "cb_upload_p50_ms"),
    ("cb->upload p99 ms", "cb_upload_p99_ms"),
)


def _cell(value: Any) -> str:
    return "n/a" if value is None else str(value)


def _shown(backend: str, key: str) -> bool:
    """The database server's CPU on PostgreSQL (postgres, postgres+s3) only; the S3 server's with it only."""
    if key == "db_cpu_ms_per_job":
        return backend.startswith("postgres")
    if key == "store_cpu_ms_per_job":
        return backend.endswith("+s3")
    return True


def table(results: list[dict[str, Any]], backend: str) -> list[str]:
    modes = sorted({r["mode"] for r in results if r["backend"] == backend}, key=["webhook", "polling"].index)
    by_key = {(r["phase"], r["mode"]): r for r in results if r["backend"] == backend}
    phases = [p for p in ("light", "burst", "in_flight") if any((p, m) in by_key for m in modes)]
    head = ["phase (jobs)", "figure", *modes]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for phase in phases:
        jobs = next(by_key[(phase, m)]["jobs"] for m in modes if (phase, m) in by_key)
        for label, key in FIGURES:
            if not _shown(backend, key):
                continue
            cells = [_cell(by_key[(phase, m)].get(key)) if (phase, m) in by_key else "-" for m in modes]
            lines.append(f"| {phase} ({jobs}) | {label} | " + " | ".join(cells) + " |")
    return lines


def print_tables(results: list[dict[str, Any]], *, light: int, seconds: float) -> None:
    print()
    for backend in dict.fromkeys(r["backend"] for r in results):
        print(f"### {backend}")
        print()
        print("\n".join(table(results, backend)))
        print()
    print(f"# light load: {light} jobs, one every 0.5 s; whole run {seconds:.0f} s")


def print_network_tables(results: list[dict[str, Any]], *, light: int, seconds: float) -> None:
    """The network profile: a row per backend, mode and HIDREAM_MAX_UPLOADS."""
    print()
    print(
        "### network profile (10 MB/s each way per connection, 50 ms round trips; postgres+s3's store not slowed)"
    )
    print()
    print(
        "| backend | mode | uploads | burst jobs/s | burst CPU ms/job | DB server CPU ms/job "
        "| S3 server (moto) CPU ms/job | burst peak MB | burst cb->upload p50 ms | light cb->upload p50 ms "
        "| light peak MB |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    keys = dict.fromkeys((r["backend"], r["mode"], r.get("uploads")) for r in results)
    for backend, mode, uploads in keys:
        rows = {
            r["phase"]: r
            for r in results
            if (r["backend"], r["mode"], r.get("uploads")) == (backend, mode, uploads)
        }
        burst, lit = rows.get("burst", {}), rows.get("light", {})
        cells = [
            burst.get("jobs_per_s"),
            burst.get("cpu_ms_per_job"),
            burst.get("db_cpu_ms_per_job"),
            burst.get("store_cpu_ms_per_job"),
            burst.get("peak_mb"),
            burst.get("cb_upload_p50_ms"),
            lit.get("cb_upload_p50_ms"),
            lit.get("peak_mb"),
        ]
        print(f"| {backend} | {mode} | {uploads} | " + " | ".join(_cell(c) for c in cells) + " |")
    print()
    print(f"# light load: {light} jobs, one every 0.5 s; whole run {seconds:.0f} s")
