"""Alternatives side by side on `make bench`'s burst, interleaved in one run (issue 18, item 6).

    python -m bench.compare [--variants as-is,no-o-direct,as-is@/path/to/checkout,...] [--repeats N] [--burst N]

The same three processes as bench/outside.py (SQLite, webhook mode by default). Each repeat starts one
bot process per variant (bench/variant.py puts the alternative in place), in turn and in an order that
rotates from repeat to repeat (A B C, B C A, C A B, ...), so that load from others on the shared machine
falls on every variant alike. `NAME@DIR` runs variant NAME of the checkout at DIR (its bench/variant.py,
and so its code): the bot before a change, exported with `git archive`, beside the bot after it. Each
bot runs a warm-up and then the burst; the figures are the median
of the repeats with the lowest and highest beside it. Nothing here is an assertion.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.bot import drop_database, make_database
from bench.outside import Provider, Session, with_bot
from bench.variant import VARIANTS

FIGURES = (("jobs/s", "jobs_per_s", 1), ("CPU ms/job", "cpu_ms_per_job", 1), ("peak MB", "peak_mb", 0))


async def one(provider: Provider, args: argparse.Namespace, variant: str) -> dict[str, Any]:
    name = f"hidream_compare_{os.getpid()}"
    database_url = await make_database(name) if args.backend == "postgres" else ""
    # The launcher by its path, so the bot runs that checkout's code wherever its folder is.
    name, _, root = variant.partition("@")
    launcher = Path(root, "bench", "variant.py") if root else Path(__file__).with_name("variant.py")
    command = [sys.executable, str(launcher), name, "run"]
    found: dict[str, Any] = {}
    try:
        with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:

            async def burst(s: Session) -> None:
                await s.phase("warmup", 3)
                found.update(await s.phase("burst", args.burst))

            await with_bot(provider, Path(tmp), database_url, args.mode == "webhook", {}, burst, command)
    finally:
        if args.backend == "postgres":
            await drop_database(name)
    found["variant"] = variant
    print(json.dumps(found), flush=True)
    return found


async def main_async(args: argparse.Namespace) -> None:
    variants = args.variants.split(",")
    unknown = [v for v in variants if "@" not in v and v not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variants: {', '.join(unknown)}")
    provider = Provider()
    started = time.monotonic()
    results: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
    try:
        for r in range(args.repeats):
            order = variants[r % len(variants) :] + variants[: r % len(variants)]
            for variant in order:
                results[variant].append(await one(provider, args, variant))
    finally:
        await provider.close()
    print(
        f"\n{args.backend}, {args.mode}, burst of {args.burst}: median (lowest-highest) of {args.repeats} "
        f"interleaved repeats; whole run {time.monotonic() - started:.0f} s\n"
    )
    print("| variant | " + " | ".join(label for label, _, _ in FIGURES) + " |")
    print("|---|" + "---|" * len(FIGURES))
    for variant, runs in results.items():
        cells = []
        for _, key, digits in FIGURES:
            values = [run[key] for run in runs]
            cells.append(
                f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"
            )
        print(f"| {variant} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--variants", default="as-is,no-o-direct")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--burst", type=int, default=200)
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--mode", choices=["webhook", "polling"], default="webhook")
    parser.add_argument("--tmp", default=None, help="where the bot's database and media folder go")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
