"""The SQLite store: jobs, the usage ledger, limits, media and the posts that carry each job.

One connection in WAL mode. Writes that must be atomic (admit = reserve + insert; finish = state
change + ledger settle) run under one lock inside BEGIN IMMEDIATE, so concurrent coroutines never
interleave a transaction and concurrent requests can never overspend. Media and posts are
storage/sqlite_media.py's (a mixin of `SqliteStore`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from pathlib import Path
from typing import Any, Literal

from bot.model.errors import ConfigError
from bot.model.jobs import LEDGER_EFFECT, TERMINAL, TRANSITIONS, WAITING, Job, JobState, LedgerState
from storage import quota, schema
from storage.base import StoredMedia
from storage.media import MediaFiles, move_out_of_rows
from storage.quota import By, Charge, QuotaStatus, Scope, utc_day
from storage.schema import MIGRATIONS, marks, row_to_job
from storage.sqlite_conn import Checkpoints, Connection, connect
from storage.sqlite_media import SqliteMediaPosts

log = logging.getLogger(__name__)


@contextmanager
def owner_only() -> Iterator[None]:
    """Files and folders created meanwhile, by any thread, are readable by their owner only."""
    previous = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(previous)


class SqliteStore(SqliteMediaPosts):
    def __init__(
        self,
        path: Path | str,
        *,
        default_limit: int,
        default_ceiling: int | None = None,
        clock: Any = time.time,
    ) -> None:
        self.path = str(path)
        self.default_limit = default_limit
        self.default_ceiling = default_ceiling
        self.clock = clock
        self._db: Connection | None = None
        self._checkpoints: Checkpoints | None = None
        self._lock = asyncio.Lock()
        # Image bytes: files beside the database (storage/media.py), the rows keep the rest.
        self.files = MediaFiles(Path(self.path + ".media"))

    async def __aenter__(self) -> SqliteStore:
        try:
            # The file and its -wal and -shm (SQLite gives those the file's mode) hold secrets: owner only.
            with owner_only():
                # Opened once in a thread first: making the file, or finding a stale lock, may wait.
                await asyncio.to_thread(lambda: sqlite3.connect(self.path).close())
                self._db = connect(self.path)
                self._db.row_factory = sqlite3.Row
                # Freed pages can be given back (storage/retention.py). Takes effect on a new file only;
                # an existing one is converted once by `use_incremental_vacuum`.
                await self._db.execute("PRAGMA auto_vacuum=INCREMENTAL")
                await self._db.execute("PRAGMA journal_mode=WAL")
            for suffix in ("", "-wal", "-shm"):  # also a database made before this rule
                with suppress(FileNotFoundError, PermissionError):
                    os.chmod(self.path + suffix, 0o600)
            await self._db.execute("PRAGMA synchronous=NORMAL")
            await self._migrate()
        except sqlite3.Error as exc:
            await self.__aexit__()
            hint = (
                " (does its folder exist, and may the bot write there?)"
                if "unable to open" in str(exc)
                else ""
            )
            raise ConfigError(f"HIDREAM_DB_PATH: cannot open the database {self.path}: {exc}{hint}") from exc
        try:
            await self.files.open()
            await move_out_of_rows(self)
        except OSError as exc:
            await self.__aexit__()
            raise ConfigError(
                f"HIDREAM_DB_PATH: cannot keep images in {self.files.folder}: {exc.strerror or exc}"
            ) from exc
        self._checkpoints = Checkpoints(self.path, self.db)
        self._checkpoints.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._checkpoints is not None:
            await self._checkpoints.stop()
            self._checkpoints = None
        if self._db is not None:
            await self._db.close()
            self._db = None

    @property
    def db(self) -> Connection:
        if self._db is None:
            raise RuntimeError("store is not open")
        return self._db

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        async with self._lock:
            try:
                await self._settle("BEGIN IMMEDIATE")
            except asyncio.CancelledError:
                if self.db.in_transaction:  # cancelled once the BEGIN had run
                    await self._settle("ROLLBACK")
                raise
            try:
                yield self.db
            except BaseException:
                await self._settle("ROLLBACK")
                raise
            try:
                await self._settle("COMMIT")
            except BaseException:
                if self.db.in_transaction:  # a COMMIT that failed (disk full, I/O) leaves it open
                    await self._settle("ROLLBACK")
                raise

    async def _settle(self, statement: str) -> None:
        """Run a BEGIN, COMMIT or ROLLBACK to its end even when the caller is cancelled meanwhile (a job
        task stopped by a shutdown or a lost lease), then pass the cancellation on: left half-done, the
        store's one connection would stay inside a transaction and refuse every later BEGIN."""
        step = asyncio.ensure_future(self.db.execute(statement))
        cancelled = False
        while not step.done():
            try:
                await asyncio.shield(step)
            except asyncio.CancelledError:
                cancelled = True
        step.result()
        if cancelled:
            raise asyncio.CancelledError

    @asynccontextmanager
    async def exclusive(self) -> AsyncIterator[Connection]:
        """The connection with no other store call running and no transaction open: for what cannot
        run inside one (VACUUM, a script of pragmas)."""
        async with self._lock:
            yield self.db

    async def _migrate(self) -> None:
        await self.db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        async with self.db.execute("SELECT version FROM schema_version") as cur:
            row = await cur.fetchone()
        version = int(row[0]) if row else 0
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            async with self.transaction() as db:
                for statement in filter(str.strip, script.split(";")):
                    await db.execute(statement)
                await db.execute("DELETE FROM schema_version")
                await db.execute("INSERT INTO schema_version (version) VALUES (?)", (number,))

    async def schema_version(self) -> int:
        async with self.db.execute("SELECT version FROM schema_version") as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def secret(self, name: str) -> bytes:
        """A random secret made once and kept, e.g. the key that signs /media/ links."""
        async with self.transaction() as db:
            async with db.execute("SELECT value FROM meta WHERE key=?", (name,)) as cur:
                row = await cur.fetchone()
            if row:
                return bytes.fromhex(row[0])
            value = secrets.token_bytes(32)
            await db.execute("INSERT INTO meta (key, value) VALUES (?, ?)", (name, value.hex()))
            return value

    # --- quota (storage/quota.py: tenants, ceilings, budgets) ------------------------------------

    async def quota(self, user_key: str, tenant: str) -> QuotaStatus:
        return await self._status(self.db, user_key, tenant)

    async def _status(self, db: Connection, user_key: str, tenant: str) -> QuotaStatus:
        return await quota.status(
            db,
            user_key,
            tenant,
            self.clock(),
            default=self.default_limit,
            default_ceiling=self.default_ceiling,
        )

    async def check(self, charge: Charge) -> None:
        """Raise QuotaExceeded if the charge cannot be admitted now: the cheap look before any bytes
        are fetched. `admit` checks again, atomically."""
        refused = quota.refusal(await self._status(self.db, charge.user_key, charge.tenant), charge)
        if refused is not None:
            raise refused

    async def set_limit(self, tenant: str, scope: Scope, subject: str, limit: int | None, *, by: By) -> None:
        """A user's daily limit (`scope="user"`, `subject` the user key), the members' default
        (`"members"`) or, for operators only, the tenant's ceiling (`"ceiling"`). None clears it."""
        if scope == "ceiling" and by != "operator":
            raise PermissionError("only operators set a tenant's ceiling")
        async with self.transaction() as db:
            await quota.set_limit(db, tenant, scope, subject, limit, by)

    async def grant(self, tenant: str, user_key: str, images: int) -> None:
        async with self.transaction() as db:
            await quota.grant(db, tenant, user_key, images, self.clock())

    async def reset(self, tenant: str, user_key: str) -> None:
        async with self.transaction() as db:
            await quota.reset(db, tenant, user_key, self.clock())

    async def set_budget(self, tenant: str, monthly_usd: float | None) -> None:
        async with self.transaction() as db:
            await quota.set_budget(db, tenant, monthly_usd)

    async def tenants_of(self, user_key: str) -> list[str]:
        """The tenants a user has made images in, the most recent first."""
        async with self.db.execute(
            "SELECT workspace_key FROM ledger WHERE user_key=? GROUP BY workspace_key ORDER BY MAX(created_at) DESC",
            (user_key,),
        ) as cur:
            return [row[0] for row in await cur.fetchall()]

    async def limits(self, tenant: str) -> list[tuple[str, str, int, str]]:
        return await quota.limits_of(self.db, tenant)

    async def spend(self, key: str, *, scope: Literal["user", "workspace"]) -> tuple[int, float]:
        """All-time images and dollars committed for a user (in every tenant) or a tenant."""
        return await quota.spend(self.db, key, "user_key" if scope == "user" else "workspace_key")

    # --- jobs ----------------------------------------------------------------------------------

    async def admit(
        self, job: Job, *, workspace_key: str, dedup_key: str | None, lease: schema.Lease | None = None
    ) -> Job:
        """Reserve the job's images and insert it, atomically. Returns the stored job: for a repeated
        dedup_key, the first one (nothing new is reserved)."""
        images = job.request.n
        async with self.transaction() as db:
            if dedup_key is not None:
                existing = await self._job_where(db, "dedup_key=?", (dedup_key,))
                if existing is not None:
                    return existing
            charge = Charge(job.user_key, workspace_key, images, job.cost_usd)
            refused = quota.refusal(await self._status(db, job.user_key, workspace_key), charge)
            if refused is not None:
                raise refused
            values = schema.job_values(job, dedup_key, lease, self.clock())
            await db.execute(f"INSERT INTO jobs ({schema.JOB_COLUMNS}) VALUES {marks(values)}", values)
            reserve = schema.ledger_values(job, workspace_key, utc_day(job.created_at))
            await db.execute(f"INSERT INTO ledger ({schema.LEDGER_COLUMNS}) VALUES {marks(reserve)}", reserve)
        return job

    async def transition(self, job_id: str, to: JobState, **fields: Any) -> bool:
        """Move a job to `to` from one of the states `TRANSITIONS` allows, setting `fields`. False (and
        nothing changed) when the job is in no such state. The ledger effect of entering `to`
        (`LEDGER_EFFECT`) happens in the same transaction."""
        if not TRANSITIONS[to]:
            return False
        async with self.transaction() as db:
            return await self._move(db, job_id, to, fields)

    async def _move(self, db: Connection, job_id: str, to: JobState, fields: dict[str, Any]) -> bool:
        """`transition`'s work inside the caller's transaction."""
        from_states = TRANSITIONS[to]
        if not from_states:
            return False
        sets = ["state=?", "updated_at=?"]
        values: list[Any] = [to.value, self.clock()]
        for name, value in fields.items():
            sets.append(f"{name}=?")
            values.append(json.dumps(value) if name in _JSON_FIELDS else value)
        cur = await db.execute(
            f"UPDATE jobs SET {', '.join(sets)} WHERE id=? AND state IN {marks(from_states)}",
            (*values, job_id, *from_states),
        )
        if cur.rowcount != 1:
            return False
        effect = LEDGER_EFFECT.get(to)
        if effect is not None:
            await db.execute(
                "UPDATE ledger SET state=? WHERE job_id=? AND state=?", (effect, job_id, LedgerState.RESERVED)
            )
        return True

    async def annotate(self, job_id: str, state: JobState, **fields: Any) -> bool:
        """Set `fields` on a job that is still in `state`, without changing its state."""
        sets = ", ".join(f"{name}=?" for name in fields)
        values = [json.dumps(v) if name in _JSON_FIELDS else v for name, v in fields.items()]
        async with self.transaction() as db:
            cur = await db.execute(
                f"UPDATE jobs SET {sets}, updated_at=? WHERE id=? AND state=?",
                (*values, self.clock(), job_id, state),
            )
            return cur.rowcount == 1

    async def record_callback(self, job_id: str, status: dict[str, Any]) -> bool:
        """Keep a verified callback's status for the job's runner (it may not be listening yet)."""
        async with self.transaction() as db:
            cur = await db.execute(
                f"UPDATE jobs SET callback_status=? WHERE id=? AND state NOT IN {marks(TERMINAL)}",
                (json.dumps(status), job_id, *TERMINAL),
            )
            return cur.rowcount == 1

    async def job(self, job_id: str) -> Job | None:
        return await self._job_where(self.db, "id=?", (job_id,))

    async def job_by_dedup(self, dedup_key: str) -> Job | None:
        return await self._job_where(self.db, "dedup_key=?", (dedup_key,))

    async def job_by_prefix(self, prefix: str, *, surface: str) -> Job | None:
        """The newest job of `surface` whose id starts with `prefix` (ids are hex)."""
        if not prefix or any(c not in "0123456789abcdef" for c in prefix):
            return None
        return await self._job_where(
            self.db, "surface=? AND id LIKE ? ORDER BY created_at DESC LIMIT 1", (surface, prefix + "%")
        )

    async def job_by_token(self, token: str) -> Job | None:
        return await self._job_where(self.db, "callback_token=?", (token,))

    async def callback_status(self, job_id: str) -> dict[str, Any] | None:
        async with self.db.execute("SELECT callback_status FROM jobs WHERE id=?", (job_id,)) as cur:
            row = await cur.fetchone()
        return json.loads(row[0]) if row and row[0] else None

    async def unfinished_jobs(self) -> list[Job]:
        async with self.db.execute(
            f"SELECT * FROM jobs WHERE state NOT IN {marks(TERMINAL)} ORDER BY created_at", tuple(TERMINAL)
        ) as cur:
            return [row_to_job(r) for r in await cur.fetchall()]

    async def queue_position(self, job: Job) -> int:
        async with self.db.execute(
            f"SELECT COUNT(*) FROM jobs WHERE state IN {marks(WAITING)} AND created_at < ?",
            (*WAITING, job.created_at),
        ) as cur:
            return int((await cur.fetchone() or (0,))[0]) + 1

    async def _job_where(self, db: Connection, where: str, args: tuple[Any, ...]) -> Job | None:
        async with db.execute(f"SELECT * FROM jobs WHERE {where}", args) as cur:
            row = await cur.fetchone()
        return row_to_job(row) if row else None


_JSON_FIELDS = ("result_media", "callback_status")

# The name the core imported before storage/base.py's protocol took it; kept so those imports work.
Store = SqliteStore
__all__ = ["SqliteStore", "Store", "StoredMedia", "owner_only"]
