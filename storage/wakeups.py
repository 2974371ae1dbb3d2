"""How replicas wake each other about a job whose news reached another one: within the process when it
is the only one (SQLite), by `NOTIFY` on one channel that every replica `LISTEN`s to (PostgreSQL)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any, Protocol

import asyncpg

from storage.connections import reached

log = logging.getLogger(__name__)

CHANNEL = "hidream_jobs"
# Between attempts to listen again after PostgreSQL dropped the listening connection.
RELISTEN_SECONDS = 5.0

OnJob = Callable[[str], None]


class Wakeups(Protocol):
    # Whether other processes may work the same jobs (False: this process is the only one).
    shared: bool

    async def notify(self, job_id: str) -> None: ...

    async def listen(self, on_job: OnJob) -> None: ...

    async def close(self) -> None: ...


class LocalWakeups:
    shared = False

    def __init__(self) -> None:
        self._listeners: list[OnJob] = []

    async def notify(self, job_id: str) -> None:
        for on_job in self._listeners:
            on_job(job_id)

    async def listen(self, on_job: OnJob) -> None:
        self._listeners.append(on_job)

    async def close(self) -> None:
        self._listeners.clear()


class PostgresWakeups:
    shared = True

    def __init__(self, url: str, pool: Any) -> None:
        self.url = url
        self.pool = pool
        self._listening: Any = None  # the connection that LISTENs (outside the pool)
        self._on_job: OnJob | None = None
        self._relisten: asyncio.Task[None] | None = None
        self._closed = False

    async def notify(self, job_id: str) -> None:
        with reached():
            await self.pool.execute("SELECT pg_notify($1, $2)", CHANNEL, job_id)

    async def listen(self, on_job: OnJob) -> None:
        self._on_job = on_job
        await self._connect()

    async def _connect(self) -> None:
        connection = await asyncpg.connect(self.url)
        await connection.add_listener(CHANNEL, self._heard)
        connection.add_termination_listener(self._lost)
        self._listening = connection

    def _heard(self, _connection: Any, _pid: int, _channel: str, payload: str) -> None:
        if self._on_job is not None:
            self._on_job(payload)

    def _lost(self, _connection: Any) -> None:
        # Wake-ups sent meanwhile are missed; each job's own safety poll still finds its news.
        if not self._closed and self._relisten is None:
            log.warning("lost the PostgreSQL connection that listens for wake-ups; listening again")
            self._relisten = asyncio.get_running_loop().create_task(self._listen_again())

    async def _listen_again(self) -> None:
        try:
            while not self._closed:
                await asyncio.sleep(RELISTEN_SECONDS)
                try:
                    await self._connect()
                    return
                except (OSError, asyncpg.PostgresError) as exc:
                    log.warning("cannot listen for wake-ups yet: %s", exc)
        finally:
            self._relisten = None

    async def close(self) -> None:
        self._closed = True
        if self._relisten is not None:
            self._relisten.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._relisten
        if self._listening is not None:
            await self._listening.close()
            self._listening = None
