"""`make bench-profile` (issue 13): where the bot's time goes in the burst, sampled by py-spy from outside.

The same three processes as `make bench` (bench/outside.py), SQLite and webhook mode by default
(`--backend postgres` or `postgres+s3`, `--mode polling`):
after a warm-up, `py-spy record --pid` samples the bot (100 Hz, without pausing it) for exactly the
burst, and the raw stacks are summarised: each busy sample goes to the first area found walking from
the innermost frame outwards (a library, or the bot's own code), and the innermost functions are
listed by their share of samples.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from bench.bot import drop_database, make_database
from bench.outside import BACKENDS, Provider, Session, with_bot
from tests.support.s3 import create_bucket, start_server, stop_server

# Walking from the innermost frame out, the first path fragment that matches names the area.
AREAS = (
    ("sqlite3", "SQLite (sqlite3)"),
    ("storage/sqlite_conn.py", "SQLite (sqlite3)"),
    ("asyncpg", "PostgreSQL (asyncpg)"),
    ("storage/postgres", "PostgreSQL (asyncpg)"),
    ("httpx", "httpx / httpcore (provider, downloads)"),
    ("httpcore", "httpx / httpcore (provider, downloads)"),
    ("h11", "httpx / httpcore (provider, downloads)"),
    ("discord/", "discord.py (REST, gateway, multipart)"),
    ("aiohttp", "aiohttp (bot's server, discord.py's transport)"),
    ("PIL", "Pillow (decode, verify)"),
    ("c2pa/", "c2pa (content credentials)"),
    ("storage/media.py", "media files (write, fsync)"),
    ("storage/objects.py", "object store (obstore; its Rust threads are not sampled)"),
    ("obstore", "object store (obstore; its Rust threads are not sampled)"),
    ("/logging/", "logging"),
    ("/json/", "json"),
    ("pydantic", "pydantic"),
    ("/bot/", "the bot's own code"),
    ("/adapters/", "the bot's own code"),
    ("/storage/", "the bot's own code"),
)
OTHER = "event loop and other stdlib (asyncio, ssl, socket, threads)"
# Innermost frames where a thread only waits (py-spy, not pausing the bot, counts some of them busy):
# the event loop in epoll, the thread pool's workers on their empty queues.
WAITS = ("selectors.py:468", "concurrent/futures/thread.py:81", "threading.py")


def area_of(frames: list[str]) -> str:
    for frame in reversed(frames):
        for fragment, area in AREAS:
            if fragment in frame:
                return area
    return OTHER


def summarise(raw: Path, top: int = 15) -> str:
    areas: Counter[tuple[str, str]] = Counter()
    leaves: Counter[str] = Counter()
    total = waiting = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        if any(w in frames[-1] for w in WAITS):
            waiting += int(count)
            continue
        thread = "event loop" if frames[0].startswith("<module>") else "worker threads"
        total += int(count)
        areas[(thread, area_of(frames))] += int(count)
        leaves[frames[-1]] += int(count)
    lines = [f"{total} busy samples at 100 Hz ({waiting} more only waiting, left out)", ""]
    lines += ["| thread | area | share |", "|---|---|---|"]
    lines += [f"| {t} | {a} | {100 * n / total:.1f}% |" for (t, a), n in areas.most_common()]
    lines += ["", "| innermost function | share |", "|---|---|"]
    lines += [f"| `{f}` | {100 * n / total:.1f}% |" for f, n in leaves.most_common(top)]
    return "\n".join(lines)


def start_pyspy(pid: int, raw: Path) -> subprocess.Popen[bytes]:
    """py-spy samples the bot at 100 Hz without pausing it, until told to stop (SIGINT)."""
    pyspy = str(Path(sys.executable).parent / "py-spy")
    options = ["--rate", "100", "--nonblocking", "--format", "raw", "--output", str(raw)]
    command = [pyspy, "record", "--pid", str(pid), *options]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def profile(args: argparse.Namespace) -> None:
    provider = Provider()
    raw = Path(args.out)
    raw.parent.mkdir(parents=True, exist_ok=True)

    async def burst(s: Session) -> None:
        await s.phase("warmup", 3)
        spy = start_pyspy(s.pid, raw)
        await asyncio.sleep(1.0)  # py-spy attaches
        print(await s.phase("burst", args.burst), flush=True)
        spy.send_signal(signal.SIGINT)
        spy.wait(60)

    name = f"hidream_profile_{os.getpid()}"
    database_url = await make_database(name) if args.backend.startswith("postgres") else ""
    s3 = start_server() if args.backend == "postgres+s3" else None
    try:
        store = s3.env(create_bucket(s3)) if s3 else {}
        with tempfile.TemporaryDirectory() as tmp:
            webhook, pid = args.mode == "webhook", s3.process.pid if s3 else 0
            await with_bot(provider, Path(tmp), database_url, webhook, store, burst, store_pid=pid)
    finally:
        await provider.close()
        if s3:
            stop_server(s3)
        if database_url:
            await drop_database(name)
    print(summarise(raw))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--burst", type=int, default=200)
    parser.add_argument("--mode", choices=["webhook", "polling"], default="webhook")
    parser.add_argument("--backend", choices=BACKENDS, default="sqlite")
    parser.add_argument(
        "--out", default="bench-results/burst.pyspy.txt", help="py-spy's raw (collapsed) stacks"
    )
    asyncio.run(profile(parser.parse_args()))


if __name__ == "__main__":
    main()
