"""The bot under `make bench`: a separate `hidream-bot run` process, configured only through its
environment, whose CPU time and memory are read from /proc from outside."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import aiohttp
import asyncpg

from tests.fakes.bench_provider import API_KEY
from tests.fakes.discord import FakeDiscord

TICK = os.sysconf("SC_CLK_TCK")
POSTGRES = "postgresql://postgres@127.0.0.1:5432"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stat(pid: int) -> list[str]:
    """The fields of /proc/<pid>/stat after the process's name (which may hold spaces): state first."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rindex(")") + 2 :].split()


def cpu_seconds(pid: int) -> float:
    """User + system time of the process so far (its threads included), from /proc/<pid>/stat."""
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) / TICK


def minor_faults(pid: int) -> int:
    """Minor page faults of the process so far (its threads included): each is a page the kernel maps
    and zeroes for memory newly touched, a cost counted in its system time."""
    return int(_stat(pid)[7])


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU time of the whole machine so far, all cores, in seconds (/proc/stat)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle and iowait
    total = sum(fields[:8])  # guest time is already counted in user
    return (total - idle) / TICK, total / TICK


def status_kib(pid: int, name: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1])
    raise KeyError(name)


def peak_mb(pid: int) -> float:
    return status_kib(pid, "VmHWM") / 1024


def reset_peak(pid: int) -> None:
    """Start VmHWM again from the current RSS (Linux: 5 in clear_refs), so each phase has its own peak."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def bot_command() -> list[str]:
    """`hidream-bot run` from this environment."""
    script = Path(sys.executable).parent / "hidream-bot"
    return [str(script) if script.exists() else shutil.which("hidream-bot") or "hidream-bot", "run"]


async def start_bot(
    tmp: Path,
    *,
    provider_url: str,
    fake: FakeDiscord,
    webhook: bool,
    database_url: str,
    extra: dict[str, str],
    command: list[str] | None = None,
) -> subprocess.Popen[bytes]:
    port = free_port()
    # PYTHONPATH: a checkout of another commit run as the bot (its "before", as in docs/benchmarks.md).
    # MALLOC_*: glibc's malloc tunables, to weigh them from outside.
    passed = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "PYTHONPATH")
    env = {k: v for k, v in os.environ.items() if k in passed or k.startswith("MALLOC_")}
    env.update(
        HIDREAM_PROVIDER="pixazo",
        PIXAZO_API_KEY=API_KEY,
        PIXAZO_BASE_URL=provider_url,
        HIDREAM_TRUSTED_RESULT_HOSTS="127.0.0.1",  # the fake provider serves its results on loopback
        DISCORD_TOKEN=fake.token,
        DISCORD_API_BASE_URL=fake.api_url,
        DISCORD_GATEWAY_URL=fake.gateway_url,
        HIDREAM_HTTP_HOST="127.0.0.1",
        HIDREAM_HTTP_PORT=str(port),
        HIDREAM_PUBLIC_URL=f"http://127.0.0.1:{port}" if webhook else "",
        HIDREAM_DB_PATH=str(tmp / "bot.db"),
        HIDREAM_DATABASE_URL=database_url,
        HIDREAM_OUTPUT_DIR=str(tmp / "out"),
        HIDREAM_DAILY_IMAGE_QUOTA="1000000",
        **extra,
    )
    proc = spawn(command or bot_command(), env, tmp)
    try:
        await fake.wait_for(lambda: fake.commands.get("global") or proc.poll() is not None, within=60)
    except TimeoutError:
        proc.kill()
        raise
    if proc.poll() is not None:
        raise RuntimeError(f"the bot exited at start ({proc.returncode}); see {tmp / 'bot.log'}")
    await wait_healthy(f"http://127.0.0.1:{port}/healthz", proc)
    return proc


async def wait_healthy(url: str, proc: subprocess.Popen[bytes]) -> None:
    """Until /healthz says ok: before that, the bot answers callbacks 503 (the fake does not retry)."""
    async with aiohttp.ClientSession() as session:
        for _ in range(600):
            if proc.poll() is not None:
                raise RuntimeError(f"the bot exited at start ({proc.returncode})")
            try:
                async with session.get(url) as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError("the bot never became ready")


def spawn(command: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen[bytes]:
    with (cwd / "bot.log").open("ab") as log:
        return subprocess.Popen(command, env=env, cwd=cwd, stdout=log, stderr=log)


def python_pid(proc: subprocess.Popen[bytes]) -> int:
    """The bot's own pid: the process itself, or its child when it runs under a profiler."""
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
    kids = children.read_text().split() if children.exists() else []
    return int(kids[0]) if kids else proc.pid


async def stop_bot(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    for _ in range(300):
        if proc.poll() is not None:
            return
        await asyncio.sleep(0.1)
    proc.kill()


async def make_database(name: str) -> str:
    conn = await asyncpg.connect(f"{POSTGRES}/postgres")
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return f"{POSTGRES}/{name}"


async def drop_database(name: str) -> None:
    conn = await asyncpg.connect(f"{POSTGRES}/postgres")
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def database_cpu_seconds(database_url: str) -> float:
    """The CPU time so far (user + system) of the PostgreSQL server processes serving `database_url`'s
    database: the backends pg_stat_activity names for it (its background writers, shared with every
    database of the server, are not counted). A backend that ended between two readings loses its
    time; the bot's pool keeps its connections, so few do."""
    name = database_url.rsplit("/", 1)[-1]
    conn = await asyncpg.connect(f"{POSTGRES}/postgres")
    try:
        rows = await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", name
        )
    finally:
        await conn.close()
    total = 0.0
    for row in rows:
        try:
            total += cpu_seconds(int(row["pid"]))
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total
