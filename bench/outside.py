"""`make bench` (issue 13): the bot alone, measured from outside its process.

Three processes: the provider (tests/fakes/bench_provider.py, a Pixazo-like fake serving one ~2 MB
1024x1024 PNG and finishing each job at once), this one (the Discord fake, tests/fakes/bench_discord.py,
which receives every upload over HTTP), and the bot (`hidream-bot run`, configured by its environment).
The bot's CPU time (user + system) and peak RSS (VmHWM, reset before each phase) are read from
/proc. Callback-to-upload: from the moment the provider sent a job's callback (webhook mode) or
answered its first COMPLETED status (polling mode) to the moment the Discord fake received its image,
both on the system-wide monotonic clock, matched by a tag in each job's prompt.

For each backend (SQLite; PostgreSQL in a database made for the run and dropped after) and each mode
(webhook: HIDREAM_PUBLIC_URL set; polling: empty), one bot process runs a warm-up, light load (one job
every 0.5 s) and the burst (all jobs at once); a second bot process (HIDREAM_MAX_ACTIVE_JOBS above the
count) takes 1,000 jobs that the provider holds, and its peak memory is read once all 1,000 wait
there. Figures are this machine's, to compare; nothing here is an assertion.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import aiohttp

from bench.bot import (
    cpu_seconds,
    database_cpu_seconds,
    drop_database,
    make_database,
    minor_faults,
    peak_mb,
    python_pid,
    reset_peak,
    start_bot,
    stop_bot,
)
from bench.report import print_network_tables, print_tables
from tests.fakes.bench_discord import SinkDiscord
from tests.fakes.netem import PROFILE, slowed

USER_BASE = 1_500_000_000_000_001_000


class Provider:
    """The provider process and the control endpoints of its fake."""

    def __init__(self, network: bool = False) -> None:
        command = [sys.executable, "-m", "tests.fakes.bench_provider", *(["--network"] if network else [])]
        self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.url, png_bytes = self.proc.stdout.readline().split()
        self.png_bytes = int(png_bytes)
        self.session = aiohttp.ClientSession()
        self.sessions = 0  # bot processes started so far

    async def call(self, method: str, what: str) -> Any:
        async with self.session.request(method, f"{self.url}/_bench/{what}") as response:
            return await response.json()

    async def close(self) -> None:
        await self.session.close()
        self.proc.terminate()
        self.proc.wait(10)


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def settle(pid: int) -> float:
    """Wait until the bot's CPU time stops moving (its work after the upload: thread, settlement)."""
    last = cpu_seconds(pid)
    while True:
        await asyncio.sleep(0.3)
        now = cpu_seconds(pid)
        if now - last < 0.02:
            return now
        last = now


class Session:
    """One bot process, its Discord fake and the shared provider."""

    def __init__(self, provider: Provider, fake: SinkDiscord, pid: int, database_url: str = "") -> None:
        self.provider, self.fake, self.pid = provider, fake, pid
        self.database_url = database_url  # PostgreSQL's: its server's CPU is read beside the bot's
        self.runs = 0

    async def db_cpu(self) -> float:
        return await database_cpu_seconds(self.database_url) if self.database_url else 0.0

    async def send(self, count: int, interval: float) -> list[str]:
        self.runs += 1
        tags = [f"r{self.runs}j{i}" for i in range(count)]
        for i, tag in enumerate(tags):
            user = str(USER_BASE + i)
            await self.fake.interact(self.fake.slash_payload({"prompt": f"noise {tag}"}, user_id=user))
            if interval:
                await asyncio.sleep(interval)
        return tags

    async def phase(self, name: str, count: int, interval: float = 0.0) -> dict[str, Any]:
        """Send `count` jobs (`interval` apart) and wait until every image is uploaded."""
        print(f"# {name}: {count} jobs", file=sys.stderr, flush=True)
        reset_peak(self.pid)
        db0 = await self.db_cpu()
        faults0 = minor_faults(self.pid)
        cpu0, t0 = cpu_seconds(self.pid), time.monotonic()
        tags = await self.send(count, interval)
        got = self.fake.uploaded_at
        await self.fake.wait_for(lambda: all(t in got for t in tags), within=300)
        last = max(got[t] for t in tags)
        cpu1 = await settle(self.pid)
        faults1 = minor_faults(self.pid)
        db1 = await self.db_cpu()
        done = await self.provider.call("GET", "done")
        own = [(got[t] - done[t]) * 1000 for t in tags if t in done]
        return {
            "phase": name,
            "jobs": count,
            "seconds": round(last - t0, 2),
            "jobs_per_s": round(count / (last - t0), 1),
            "cpu_ms_per_job": round((cpu1 - cpu0) * 1000 / count, 1),
            "db_cpu_ms_per_job": round((db1 - db0) * 1000 / count, 1) if self.database_url else None,
            "faults_per_job": round((faults1 - faults0) / count),
            "peak_mb": round(peak_mb(self.pid), 1),
            "cb_upload_p50_ms": _ms(pct(own, 0.5)),
            "cb_upload_p99_ms": _ms(pct(own, 0.99)),
        }

    async def in_flight(self, count: int) -> dict[str, Any]:
        """Send `count` jobs the provider holds; peak memory once all of them wait there."""
        print(f"# in flight: {count} jobs", file=sys.stderr, flush=True)
        await self.provider.call("POST", "hold")
        reset_peak(self.pid)
        cpu0, t0 = cpu_seconds(self.pid), time.monotonic()
        await self.send(count, 0.0)
        while (await self.provider.call("GET", "count"))["accepted"] < count:
            if time.monotonic() - t0 > 300:
                raise RuntimeError("the jobs never all reached the provider")
            await asyncio.sleep(0.1)
        at_provider = time.monotonic() - t0
        cpu1 = await settle(self.pid)
        return {
            "phase": "in_flight",
            "jobs": count,
            "seconds": round(at_provider, 2),
            "jobs_per_s": round(count / at_provider, 1),
            "cpu_ms_per_job": round((cpu1 - cpu0) * 1000 / count, 1),
            "db_cpu_ms_per_job": None,
            "peak_mb": round(peak_mb(self.pid), 1),
            "cb_upload_p50_ms": None,
            "cb_upload_p99_ms": None,
        }


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


async def with_bot(
    provider: Provider,
    tmp: Path,
    database_url: str,
    webhook: bool,
    extra: dict[str, str],
    work: Callable[[Session], Any],
    command: list[str] | None = None,
    network: bool = False,
) -> Any:
    await provider.call("POST", "reset")
    provider.sessions += 1
    fake = SinkDiscord(provider.sessions)
    async with fake, AsyncExitStack() as stack:
        if network:  # the bot's calls to Discord at a real network's pace (tests/fakes/netem.py)
            fake.front = await stack.enter_async_context(slowed(fake.base_url))
        proc = await start_bot(
            tmp,
            provider_url=provider.url,
            fake=fake,
            webhook=webhook,
            database_url=database_url,
            extra=extra,
            command=command,
        )
        try:
            return await work(Session(provider, fake, python_pid(proc), database_url))
        finally:
            await stop_bot(proc)


async def one_config(
    provider: Provider, args: argparse.Namespace, backend: str, mode: str
) -> list[dict[str, Any]]:
    name = f"hidream_bench_{os.getpid()}_{mode}"
    database_url = await make_database(name) if backend == "postgres" else ""
    webhook = mode == "webhook"
    results: list[dict[str, Any]] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:

            async def loads(s: Session) -> None:
                await s.phase("warmup", 3)
                results.append(await s.phase("light", args.light, 0.5))
                results.append(await s.phase("burst", args.burst))

            if args.network:
                for uploads in args.uploads.split(","):
                    extra = {"HIDREAM_MAX_UPLOADS": uploads}
                    first = len(results)
                    await with_bot(provider, Path(tmp), database_url, webhook, extra, loads, network=True)
                    for r in results[first:]:
                        r["uploads"] = int(uploads)
            else:
                await with_bot(provider, Path(tmp), database_url, webhook, {}, loads)
            if args.in_flight and not args.network:

                async def held(s: Session) -> None:
                    results.append(await s.in_flight(args.in_flight))

                extra = {"HIDREAM_MAX_ACTIVE_JOBS": str(args.in_flight + 100)}
                await with_bot(provider, Path(tmp), database_url, webhook, extra, held)
    finally:
        if backend == "postgres":
            await drop_database(name)
    for r in results:
        r.update(backend=backend, mode=mode, network=args.network)
        print(json.dumps(r), flush=True)
    return results


async def main_async(args: argparse.Namespace) -> None:
    provider = Provider(args.network)
    print(f"# provider {provider.url}, result PNG {provider.png_bytes} bytes, 1024x1024", flush=True)
    if args.network:
        print(
            f"# network profile: {PROFILE.rate / 1e6:g} MB/s each way per connection, "
            f"{PROFILE.rtt * 1000:g} ms round trips (provider and Discord REST)",
            flush=True,
        )
    started = time.monotonic()
    results: list[dict[str, Any]] = []
    try:
        for backend in args.backends.split(","):
            for mode in args.modes.split(","):
                results += await one_config(provider, args, backend, mode)
    finally:
        await provider.close()
    if args.network:
        print_network_tables(results, light=args.light, seconds=time.monotonic() - started)
    else:
        print_tables(results, light=args.light, seconds=time.monotonic() - started)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--light", type=int, default=20, help="light-load jobs, one every 0.5 s")
    parser.add_argument("--burst", type=int, default=200)
    parser.add_argument("--in-flight", type=int, default=1000, help="0 to skip")
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--modes", default="webhook,polling")
    parser.add_argument(
        "--network",
        action="store_true",
        help="the network profile: the provider and Discord behind proxies at 10 MB/s, 50 ms round trips",
    )
    parser.add_argument(
        "--uploads", default="16", help="with --network: HIDREAM_MAX_UPLOADS values to run, comma-separated"
    )
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
