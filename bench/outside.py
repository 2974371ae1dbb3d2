"""`make bench` (issue 13): the bot alone, measured from outside its process.

Three processes: the provider (tests/fakes/bench_provider.py, a Pixazo-like fake serving one ~2 MB
1024x1024 PNG and finishing each job at once), this one (the Discord fake, tests/fakes/bench_discord.py,
which receives every upload over HTTP), and the bot (`hidream-bot run`, configured by its environment).
The bot's CPU time (user + system) and peak RSS (VmHWM, reset before each phase) are read from
/proc. Callback-to-upload: from the moment the provider sent a job's callback (webhook mode) or
answered its first COMPLETED status (polling mode) to the moment the Discord fake received its image,
both on the system-wide monotonic clock, matched by a tag in each job's prompt.

For each backend (SQLite; PostgreSQL in a database made for the run and dropped after, its images in
its media rows; `postgres+s3`, the same with the images in an object store, HIDREAM_MEDIA_URL) and each
mode (webhook: HIDREAM_PUBLIC_URL set; polling: empty), one bot process runs a warm-up, light load (one
job every 0.5 s) and the burst (all jobs at once); a second bot process (HIDREAM_MAX_ACTIVE_JOBS above
the count) takes 1,000 jobs that the provider holds, and its peak memory is read once all 1,000 wait
there. On PostgreSQL the CPU of the database server's backends serving the run's database is read too.
Figures are this machine's, to compare; nothing here is an assertion.

The object store of `postgres+s3` is the tests' local S3 server (tests/support/s3.py: moto's server
mode, a process of its own started once for the run, with a new bucket for each mode's database). Its
own CPU per job (its work on each 2 MB put, in Python) is reported beside the bot's, to tell the two
apart: on the same cores as the bot, it competes with it in the burst. It is no figure of a real store.
Under --network the provider and Discord are slowed; the S3 traffic is not (loopback, full speed).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
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
    machine_cpu,
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
from tests.support.s3 import S3Server, create_bucket, start_server, stop_server

USER_BASE = 1_500_000_000_000_001_000
BACKENDS = ("sqlite", "postgres", "postgres+s3")


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

    def __init__(
        self, provider: Provider, fake: SinkDiscord, pid: int, database_url: str = "", store_pid: int = 0
    ) -> None:
        self.provider, self.fake, self.pid = provider, fake, pid
        self.database_url = database_url  # PostgreSQL's: its server's CPU is read beside the bot's
        self.store_pid = store_pid  # the local S3 server's process: its CPU too
        self.runs = 0

    async def db_cpu(self) -> float:
        return await database_cpu_seconds(self.database_url) if self.database_url else 0.0

    def store_cpu(self) -> float:
        return cpu_seconds(self.store_pid) if self.store_pid else 0.0

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
        db0, store0 = await self.db_cpu(), self.store_cpu()
        faults0, machine0 = minor_faults(self.pid), machine_cpu()
        cpu0, t0 = cpu_seconds(self.pid), time.monotonic()
        tags = await self.send(count, interval)
        got = self.fake.uploaded_at
        await self.fake.wait_for(lambda: all(t in got for t in tags), within=300)
        machine1 = machine_cpu()  # up to the last upload: not the quiet wait that follows
        last = max(got[t] for t in tags)
        cpu1 = await settle(self.pid)
        faults1 = minor_faults(self.pid)
        db1, store1 = await self.db_cpu(), self.store_cpu()
        done = await self.provider.call("GET", "done")
        own = [(got[t] - done[t]) * 1000 for t in tags if t in done]
        return {
            "phase": name,
            "jobs": count,
            "seconds": round(last - t0, 2),
            "jobs_per_s": round(count / (last - t0), 1),
            "cpu_ms_per_job": round((cpu1 - cpu0) * 1000 / count, 1),
            "db_cpu_ms_per_job": round((db1 - db0) * 1000 / count, 1) if self.database_url else None,
            "store_cpu_ms_per_job": round((store1 - store0) * 1000 / count, 1) if self.store_pid else None,
            "faults_per_job": round((faults1 - faults0) / count),
            # How busy the whole machine was (every process, all cores): the bot shares it with the
            # fakes, the proxies and the database server.
            "machine_busy_pct": round(
                100 * (machine1[0] - machine0[0]) / max(machine1[1] - machine0[1], 1e-9)
            ),
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
            "store_cpu_ms_per_job": None,
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
    store_pid: int = 0,
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
            return await work(Session(provider, fake, python_pid(proc), database_url, store_pid))
        finally:
            await stop_bot(proc)


async def one_config(
    provider: Provider, args: argparse.Namespace, backend: str, mode: str, s3: S3Server | None
) -> list[dict[str, Any]]:
    name = f"hidream_bench_{os.getpid()}_{mode}"
    postgres = backend.startswith("postgres")
    database_url = await make_database(name) if postgres else ""
    # postgres+s3: a new bucket beside the new database (to the bot, a stored object without a row is a
    # crash's leftover).
    s3 = s3 if backend == "postgres+s3" else None
    store = s3.env(create_bucket(s3)) if s3 else {}
    store_pid = s3.process.pid if s3 else 0
    webhook = mode == "webhook"
    results: list[dict[str, Any]] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            bot = functools.partial(with_bot, provider, Path(tmp), database_url, webhook, store_pid=store_pid)

            async def loads(s: Session) -> None:
                await s.phase("warmup", 3)
                results.append(await s.phase("light", args.light, 0.5))
                results.append(await s.phase("burst", args.burst))

            if args.network:
                for uploads in args.uploads.split(","):
                    first = len(results)
                    await bot({**store, "HIDREAM_MAX_UPLOADS": uploads}, loads, network=True)
                    for r in results[first:]:
                        r["uploads"] = int(uploads)
            else:
                await bot(store, loads)
            if args.in_flight and not args.network:

                async def held(s: Session) -> None:
                    results.append(await s.in_flight(args.in_flight))

                await bot({**store, "HIDREAM_MAX_ACTIVE_JOBS": str(args.in_flight + 100)}, held)
    finally:
        if postgres:
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
    backends = args.backends.split(",")
    s3 = start_server() if "postgres+s3" in backends else None
    if s3:
        print(f"# postgres+s3: the local S3 server (moto) at {s3.endpoint}, pid {s3.process.pid}", flush=True)
    started = time.monotonic()
    results: list[dict[str, Any]] = []
    try:
        for backend in backends:
            for mode in args.modes.split(","):
                results += await one_config(provider, args, backend, mode, s3)
    finally:
        await provider.close()
        if s3:
            stop_server(s3)
    if args.network:
        print_network_tables(results, light=args.light, seconds=time.monotonic() - started)
    else:
        print_tables(results, light=args.light, seconds=time.monotonic() - started)


def _backends(value: str) -> str:
    unknown = [b for b in value.split(",") if b not in BACKENDS]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown backend {', '.join(unknown)}; known: {', '.join(BACKENDS)}"
        )
    return value


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--light", type=int, default=20, help="light-load jobs, one every 0.5 s")
    parser.add_argument("--burst", type=int, default=200)
    parser.add_argument("--in-flight", type=int, default=1000, help="0 to skip")
    parser.add_argument(
        "--backends",
        type=_backends,
        default=",".join(BACKENDS),
        help=f"comma-separated: {', '.join(BACKENDS)}",
    )
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
