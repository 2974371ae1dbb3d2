"""The tables `make bench` prints: per backend, each phase's figures in webhook and polling mode side by side."""

from __future__ import annotations

from typing import Any

FIGURES = (
    ("jobs/s", "jobs_per_s"),
    ("CPU ms/job", "cpu_ms_per_job"),
    ("peak MB", "peak_mb"),
    ("cb->upload p50 ms", "cb_upload_p50_ms"),
    ("cb->upload p99 ms", "cb_upload_p99_ms"),
)


def _cell(value: Any) -> str:
    return "n/a" if value is None else str(value)


def table(results: list[dict[str, Any]], backend: str) -> list[str]:
    modes = sorted({r["mode"] for r in results if r["backend"] == backend}, key=["webhook", "polling"].index)
    by_key = {(r["phase"], r["mode"]): r for r in results if r["backend"] == backend}
    phases = [p for p in ("light", "burst", "in_flight") if any((p, m) in by_key for m in modes)]
    head = ["phase (jobs)", "figure", *modes]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for phase in phases:
        jobs = next(by_key[(phase, m)]["jobs"] for m in modes if (phase, m) in by_key)
        for label, key in FIGURES:
            cells = [_cell(by_key[(phase, m)][key]) if (phase, m) in by_key else "-" for m in modes]
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
