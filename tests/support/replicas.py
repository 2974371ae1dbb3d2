"""Several real `hidream-bot run` processes on one PostgreSQL database, behind a round-robin proxy.

`Proxy` is a tiny load balancer in the test's event loop: every request (method, path, headers, body)
goes to the next replica, and one that refuses the connection (dead) is skipped for the next. The
replicas' HIDREAM_PUBLIC_URL points at it, so provider callbacks, like Slack's requests, reach any
replica. `Replicas` starts the processes (each on a free port of its own: a subprocess cannot be given
port 0 and then be routed to), waits until each answers GET /healthz, and can SIGKILL one. `JobRows`
reads the shared database the way an operator would, with SQL.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import sys
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from aiohttp import web

from tests.fakes.loopback import serve
from tests.fakes.surface import RecordingSurface
from tests.support.harness import BotHarness
from tests.support.processes import process_env


def replica(tmp_path: Path, name: str, url: str, surface: RecordingSurface, **env: Any) -> BotHarness:
    settings = {"HIDREAM_DATABASE_URL": url, "HIDREAM_DAILY_IMAGE_QUOTA": 1000, **env}
    # Callbacks on, with an hour's grace: a held job moves only when woken, never by its own poll.
    return BotHarness(tmp_path / name, settings, [surface.factory], callbacks=True, callback_grace=3600)


READY_WITHIN = 60.0
# Headers that belong to one connection, not to the request: the proxy's own connection sets them.
HOP_BY_HOP = frozenset(
    {"host", "connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding"}
)


@dataclass
class Routed:
    """One request the proxy forwarded: to which replica, what, and what came back."""

    replica: int
    method: str
    path: str
    body: bytes
    status: int
    at: float = field(default_factory=time.monotonic)

    def form(self) -> dict[str, str]:
        """The request's form fields (a Slack slash command), or nothing."""
        try:
            return dict(urllib.parse.parse_qsl(self.body.decode()))
        except UnicodeDecodeError:
            return {}


class Proxy:
    """`async with Proxy() as proxy:` then `proxy.backends = [...]`; its base URL is `proxy.url`."""

    def __init__(self) -> None:
        self.url = ""
        self.backends: list[str] = []
        self.routed: list[Routed] = []
        self.refused: list[int] = []  # replicas found dead, one entry per skipped attempt
        self._next = 0
        self._stack = AsyncExitStack()
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Proxy:
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_route("*", "/{path:.*}", self._forward)
        # No pooled connections: a connection to a replica killed since would fail as a disconnect,
        # and only a refused connection is proof that the request reached no one.
        connector = aiohttp.TCPConnector(force_close=True)
        self._session = aiohttp.ClientSession(connector=connector, auto_decompress=False)
        self._stack.push_async_callback(self._session.close)
        self.url = await self._stack.enter_async_context(serve(app))
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()

    def served_by(self, replica: int, path_prefix: str = "/") -> list[Routed]:
        return [r for r in self.routed if r.replica == replica and r.path.startswith(path_prefix)]

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        # Each request tries every replica once, from its own turn on: concurrent requests move the
        # turn, so a shared counter could bring one request back to the same dead replica.
        start, self._next = self._next, self._next + 1
        for offset in range(len(self.backends)):
            replica = (start + offset) % len(self.backends)
            try:
                async with self._session.request(
                    request.method,
                    self.backends[replica] + request.path_qs,
                    headers=headers,
                    data=body,
                    allow_redirects=False,
                ) as answer:
                    data = await answer.read()
                    back = {k: v for k, v in answer.headers.items() if k.lower() not in HOP_BY_HOP}
                    if "Content-Encoding" in answer.headers:
                        back["Content-Encoding"] = answer.headers["Content-Encoding"]
            except aiohttp.ClientConnectorError:
                self.refused.append(replica)
                continue
            self.routed.append(Routed(replica, request.method, request.path, body, answer.status))
            return web.Response(status=answer.status, body=data, headers=back)
        return web.Response(status=502, text="no replica is up")


def free_port() -> int:
    """A port nothing listens on right now (another process may take it before the replica does:
    `Replicas` then starts that replica again on another)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Replica:
    index: int
    port: int
    proc: asyncio.subprocess.Process
    log: Path
    killed_at: float | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def alive(self) -> bool:
        return self.proc.returncode is None

    def log_tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


@dataclass
class Replicas:
    """`async with Replicas(tmp_path, proxy, [env0, env1, ...]) as replicas:` — one process per env,
    each env on top of a clean environment (nothing from the developer's shell or .env)."""

    tmp_path: Path
    proxy: Proxy
    envs: Sequence[Mapping[str, str]]
    started: list[Replica] = field(default_factory=list)

    async def __aenter__(self) -> Replicas:
        made = await asyncio.gather(
            *(self._start(index, env) for index, env in enumerate(self.envs)), return_exceptions=True
        )
        self.started = [r for r in made if isinstance(r, Replica)]
        try:
            for failed in made:
                if isinstance(failed, BaseException):
                    raise failed
            async with aiohttp.ClientSession() as http:
                await asyncio.gather(*(self._wait_ready(http, r) for r in self.started))
        except BaseException:
            await self.__aexit__()
            raise
        self.proxy.backends = [r.url for r in self.started]
        return self

    async def __aexit__(self, *exc: object) -> None:
        for replica in self.started:
            if replica.alive:
                replica.proc.send_signal(signal.SIGTERM)
        for replica in self.started:
            try:
                await asyncio.wait_for(replica.proc.wait(), 20)
            except TimeoutError:
                replica.proc.kill()
                await replica.proc.wait()

    def __getitem__(self, index: int) -> Replica:
        return self.started[index]

    async def kill(self, index: int) -> float:
        """SIGKILL one replica (nothing of it runs on: no finally, no flush); returns when it died."""
        replica = self.started[index]
        replica.proc.send_signal(signal.SIGKILL)
        await replica.proc.wait()
        replica.killed_at = time.monotonic()
        return replica.killed_at

    def logs(self) -> str:
        return "\n".join(f"--- replica {r.index} ---\n{r.log_tail()}" for r in self.started)

    async def _start(self, index: int, env: Mapping[str, str]) -> Replica:
        workdir = self.tmp_path / f"replica-{index}"
        workdir.mkdir(exist_ok=True)
        for attempt in range(5):
            port = free_port()
            log = workdir / f"run-{attempt}.log"
            full = process_env(workdir, **{**env, "HIDREAM_HTTP_PORT": str(port)})
            with log.open("wb") as out:
                proc = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "bot.cli",
                    "run",
                    cwd=workdir,
                    env=full,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=out,
                    stderr=asyncio.subprocess.STDOUT,
                )
            replica = Replica(index, port, proc, log)
            if not await self._lost_its_port(replica):
                return replica
        raise AssertionError(f"replica {index} found no free port in 5 tries")

    async def _lost_its_port(self, replica: Replica) -> bool:
        """True when the process ended at once because another took its port (then it is retried)."""
        try:
            await asyncio.wait_for(replica.proc.wait(), 1.0)
        except TimeoutError:
            return False
        if "cannot listen on" in replica.log_tail():
            return True
        raise AssertionError(
            f"replica {replica.index} ended with {replica.proc.returncode}:\n{replica.log_tail()}"
        )

    async def _wait_ready(self, http: aiohttp.ClientSession, replica: Replica) -> None:
        deadline = time.monotonic() + READY_WITHIN
        while time.monotonic() < deadline:
            if not replica.alive:
                raise AssertionError(f"replica {replica.index} ended while starting:\n{replica.log_tail()}")
            try:
                async with http.get(f"{replica.url}/healthz") as answer:
                    if answer.status == 200:
                        return
            except aiohttp.ClientError:
                pass  # not listening yet
            await asyncio.sleep(0.2)
        raise AssertionError(
            f"replica {replica.index} not ready in {READY_WITHIN:.0f} s:\n{replica.log_tail()}"
        )


Row = dict[str, Any]


class JobRows:
    """The shared database, read with SQL: jobs, ledger, and whatever columns the jobs table has."""

    def __init__(self, url: str) -> None:
        self.url = url

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        db = await asyncpg.connect(self.url, timeout=10)
        try:
            return [dict(row) for row in await db.fetch(sql, *args)]
        finally:
            await db.close()

    async def jobs(self) -> list[Row]:
        return await self.fetch("SELECT * FROM jobs ORDER BY created_at")

    async def wait(self, check: Callable[[list[Row]], bool], within: float, what: str) -> list[Row]:
        """Read the jobs every 0.2 s until `check(rows)` holds; fail after `within` seconds."""
        deadline = time.monotonic() + within
        rows: list[Row] = []
        while time.monotonic() < deadline:
            rows = await self.jobs()
            if check(rows):
                return rows
            await asyncio.sleep(0.2)
        states = sorted(str(r["state"]) for r in rows)
        raise AssertionError(f"not {what} within {within:.0f} s; job states: {states}")


def owned_by(rows: list[Row], replica: Replica) -> set[str]:
    """The jobs whose lease `replica` holds: its owner name is `<host>-<pid>-<random>`."""
    return {r["id"] for r in rows if str(r.get("owner") or "").split("-")[-2:-1] == [str(replica.proc.pid)]}


def prompt_of(row: Row) -> str:
    return str(json.loads(row["request"])["prompt"])


def all_in(rows: list[Row], count: int, *states: str) -> bool:
    return len(rows) == count and all(r["state"] in states for r in rows)
