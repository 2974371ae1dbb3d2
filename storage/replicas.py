"""What replicas sharing one database coordinate through it: which replica works a job (a lease),
wake-ups for a job whose news reached another replica, and platform events already handled.

A lease is an owner and an expiry on the job's row. A replica claims a job before working it and
renews its leases while it works; a job whose lease lapsed (its replica died) or that nobody holds is
claimed by the next replica that looks. Leases decide who works a job; the guarded state transitions
still decide what happens to it, so even two replicas that both believed they held a job could not
both move it through the same step.

On SQLite (one process by design) the owner is always the same name, so a restarted bot takes its
jobs back at once, and wake-ups stay in the process. On PostgreSQL each process is its own owner,
and wake-ups travel by `NOTIFY` on one channel that every replica `LISTEN`s to.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import Callable, Collection, Sequence
from typing import Any, Protocol

import asyncpg

from bot.model.jobs import TERMINAL, UNFINISHED, JobState
from storage import base
from storage.postgres import PostgresStore
from storage.schema import marks
from storage.sqlite import SqliteStore

log = logging.getLogger(__name__)

CHANNEL = "hidream_jobs"
# A platform resends an event within minutes; a day of memory is ample and stays small.
SEEN_FOR = 24 * 3600.0
PRUNE_EVERY = 600.0
# Renewals name at most this many jobs a statement (SQLite's parameter limit is far above it).
BATCH = 500
# Between attempts to listen again after PostgreSQL dropped the listening connection.
RELISTEN_SECONDS = 5.0

_UNFINISHED = sorted(state.value for state in UNFINISHED)
_TERMINAL = sorted(state.value for state in TERMINAL)
# A job in these states needs its provider; in the others only its surface.
_AT_PROVIDER = sorted(s.value for s in (JobState.QUEUED, JobState.SUBMITTING, JobState.RUNNING))

OnJob = Callable[[str], None]


class Replicas(Protocol):
    owner: str
    # Whether other processes may work the same jobs (False: this process is the only one).
    shared: bool

    async def claim(self, job_id: str, seconds: float) -> bool:
        """Hold the unfinished job for `seconds` if nobody else holds it; True when held."""
        ...

    async def claim_free(
        self,
        seconds: float,
        limit: int,
        *,
        surfaces: Collection[str],
        providers: Collection[str],
        ours: bool = False,
    ) -> list[str]:
        """Hold up to `limit` unfinished jobs, oldest first, that nobody holds (or whose lease lapsed)
        and that this replica can work: its surface runs here, and its provider too while it needs one.
        `ours`: also those this replica's name still holds (at start: a restart under the same name)."""
        ...

    async def renew(self, job_ids: Sequence[str], seconds: float) -> set[str]:
        """Extend the leases of `job_ids`; those still held by this replica."""
        ...

    async def release(self, job_ids: Sequence[str]) -> None:
        """Let go of jobs (a clean stop): any replica, or this one restarted, may claim them at once."""
        ...

    async def notify(self, job_id: str) -> None:
        """Tell whichever replica works the job to look at it now."""
        ...

    async def listen(self, on_job: OnJob) -> None:
        """Call `on_job(job_id)` for every `notify`, from any replica, until `close`."""
        ...

    async def close(self) -> None: ...

    async def first_sight(self, key: str) -> bool:
        """True the first time any replica sees `key` (a platform event id); False for a resend."""
        ...


def replicas_for(store: base.Store, owner: str | None = None) -> Replicas:
    """The coordination of `store`'s backend; `owner` names this replica (by default: on SQLite always
    the same name, on PostgreSQL one of this process's own)."""
    if isinstance(store, PostgresStore):
        return PostgresReplicas(
            store, owner or f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        )
    if isinstance(store, SqliteStore):
        return SqliteReplicas(store, owner or "local")
    raise TypeError(f"no replicas for a {type(store).__name__}")


def _able(surfaces: Collection[str], providers: Collection[str]) -> tuple[str, list[str]]:
    """SQLite's condition that a job can be worked here, and its parameters."""
    s, p, a = sorted(surfaces), sorted(providers), _AT_PROVIDER
    where = f"surface IN {marks(s)} AND (state NOT IN {marks(a)} OR provider IN {marks(p)})"
    return where, [*s, *a, *p]


class SqliteReplicas:
    shared = False

    def __init__(self, store: SqliteStore, owner: str) -> None:
        self.store = store
        self.owner = owner
        self._listeners: list[OnJob] = []
        self._pruned = 0.0

    async def claim(self, job_id: str, seconds: float) -> bool:
        now = self.store.clock()
        async with self.store.transaction() as db:
            cur = await db.execute(
                f"UPDATE jobs SET owner=?, lease_until=? WHERE id=? AND state IN {marks(_UNFINISHED)} "
                "AND (owner IS NULL OR owner=? OR lease_until < ?)",
                (self.owner, now + seconds, job_id, *_UNFINISHED, self.owner, now),
            )
            return cur.rowcount == 1

    async def claim_free(
        self,
        seconds: float,
        limit: int,
        *,
        surfaces: Collection[str],
        providers: Collection[str],
        ours: bool = False,
    ) -> list[str]:
        if not surfaces:
            return []
        now = self.store.clock()
        able, params = _able(surfaces, providers)
        async with self.store.transaction() as db:
            cur = await db.execute(
                "UPDATE jobs SET owner=?, lease_until=? WHERE id IN (SELECT id FROM jobs WHERE state IN "
                f"{marks(_UNFINISHED)} AND (owner IS NULL OR lease_until < ? OR owner=?) AND {able} "
                "ORDER BY created_at LIMIT ?) RETURNING id",
                (self.owner, now + seconds, *_UNFINISHED, now, self.owner if ours else None, *params, limit),
            )
            return [str(row[0]) for row in await cur.fetchall()]

    async def renew(self, job_ids: Sequence[str], seconds: float) -> set[str]:
        held: set[str] = set()
        until = self.store.clock() + seconds
        for start in range(0, len(job_ids), BATCH):
            chunk = list(job_ids[start : start + BATCH])
            async with self.store.transaction() as db:
                cur = await db.execute(
                    f"UPDATE jobs SET lease_until=? WHERE owner=? AND id IN {marks(chunk)} RETURNING id",
                    (until, self.owner, *chunk),
                )
                held.update(str(row[0]) for row in await cur.fetchall())
        return held

    async def release(self, job_ids: Sequence[str]) -> None:
        for start in range(0, len(job_ids), BATCH):
            chunk = list(job_ids[start : start + BATCH])
            async with self.store.transaction() as db:
                await db.execute(
                    f"UPDATE jobs SET owner=NULL, lease_until=NULL WHERE owner=? AND id IN {marks(chunk)}",
                    (self.owner, *chunk),
                )

    async def notify(self, job_id: str) -> None:
        for on_job in self._listeners:
            on_job(job_id)

    async def listen(self, on_job: OnJob) -> None:
        self._listeners.append(on_job)

    async def close(self) -> None:
        self._listeners.clear()

    async def first_sight(self, key: str) -> bool:
        now = self.store.clock()
        async with self.store.transaction() as db:
            if now - self._pruned > PRUNE_EVERY:
                self._pruned = now
                await db.execute("DELETE FROM seen_events WHERE seen_at < ?", (now - SEEN_FOR,))
            cur = await db.execute(
                "INSERT INTO seen_events (key, seen_at) VALUES (?, ?) ON CONFLICT (key) DO NOTHING",
                (key, now),
            )
            return cur.rowcount == 1


class PostgresReplicas:
    shared = True

    def __init__(self, store: PostgresStore, owner: str) -> None:
        self.store = store
        self.owner = owner
        self._listening: Any = None  # the connection that LISTENs (outside the pool)
        self._on_job: OnJob | None = None
        self._relisten: asyncio.Task[None] | None = None
        self._closed = False
        self._pruned = 0.0

    async def claim(self, job_id: str, seconds: float) -> bool:
        now = float(self.store.clock())
        held = await self.store.pool.fetchval(
            "UPDATE jobs SET owner=$1, lease_until=$2 WHERE id=$3 AND state = ANY($4::text[]) "
            "AND (owner IS NULL OR owner=$1 OR lease_until < $5) RETURNING id",
            self.owner,
            now + seconds,
            job_id,
            _UNFINISHED,
            now,
        )
        return held is not None

    async def claim_free(
        self,
        seconds: float,
        limit: int,
        *,
        surfaces: Collection[str],
        providers: Collection[str],
        ours: bool = False,
    ) -> list[str]:
        if not surfaces:
            return []
        now = float(self.store.clock())
        # SKIP LOCKED: replicas claiming at the same moment take different jobs instead of waiting.
        rows = await self.store.pool.fetch(
            "UPDATE jobs SET owner=$1, lease_until=$2 WHERE id IN (SELECT id FROM jobs "
            "WHERE state = ANY($3::text[]) AND (owner IS NULL OR lease_until < $4 OR owner=$9) "
            "AND surface = ANY($5::text[]) AND (NOT (state = ANY($6::text[])) OR provider = ANY($7::text[])) "
            "ORDER BY created_at LIMIT $8 FOR UPDATE SKIP LOCKED) RETURNING id",
            self.owner,
            now + seconds,
            _UNFINISHED,
            now,
            sorted(surfaces),
            _AT_PROVIDER,
            sorted(providers),
            limit,
            self.owner if ours else None,
        )
        return [str(row[0]) for row in rows]

    async def renew(self, job_ids: Sequence[str], seconds: float) -> set[str]:
        if not job_ids:
            return set()
        rows = await self.store.pool.fetch(
            "UPDATE jobs SET lease_until=$1 WHERE owner=$2 AND id = ANY($3::text[]) RETURNING id",
            float(self.store.clock()) + seconds,
            self.owner,
            list(job_ids),
        )
        return {str(row[0]) for row in rows}

    async def release(self, job_ids: Sequence[str]) -> None:
        if job_ids:
            await self.store.pool.execute(
                "UPDATE jobs SET owner=NULL, lease_until=NULL WHERE owner=$1 AND id = ANY($2::text[])",
                self.owner,
                list(job_ids),
            )

    async def notify(self, job_id: str) -> None:
        await self.store.pool.execute("SELECT pg_notify($1, $2)", CHANNEL, job_id)

    async def listen(self, on_job: OnJob) -> None:
        self._on_job = on_job
        await self._connect()

    async def _connect(self) -> None:
        connection = await asyncpg.connect(self.store.url)
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

    async def first_sight(self, key: str) -> bool:
        now = float(self.store.clock())
        if now - self._pruned > PRUNE_EVERY:
            self._pruned = now
            await self.store.pool.execute("DELETE FROM seen_events WHERE seen_at < $1", now - SEEN_FOR)
        inserted = await self.store.pool.fetchval(
            "INSERT INTO seen_events (key, seen_at) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING RETURNING key",
            key,
            now,
        )
        return inserted is not None
