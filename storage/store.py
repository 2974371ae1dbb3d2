"""The one store: jobs and their guarded state changes, the usage ledger and its limits, media, and the
posts that carry each job, every query written once (storage/dialects.py turns it into each database's
SQL) and run through the connection seam (storage/connections.py).

Atomicity: every write that must be atomic is one transaction; a guarded transition is one
`UPDATE ... WHERE state IN (...)`, so of two writers moving the same job only one changes it.
Admission (and a failover's new price) reads a tenant's counts and charges it under the tenant's
lock: the whole database's one writer on SQLite, a transaction-scoped advisory lock on the tenant on
PostgreSQL. Every count a charge checks (the user's day in that tenant, the tenant's ceiling and
month) is within one tenant, so serialising charges per tenant is exactly enough, across processes.

What differs beyond the SQL text is a strategy the backend (storage/sqlite.py, storage/postgres.py)
gives the store: where image bytes live (storage/image_bytes.py), how replicas wake each other
(storage/replicas.py) and how space is given back (storage/retention.py).
"""

from __future__ import annotations

import asyncio
import json
import secrets
from dataclasses import dataclass
from typing import Any, Literal, Protocol, Self

from bot.model.jobs import LEDGER_EFFECT, TERMINAL, TRANSITIONS, WAITING, Job, JobState, LedgerState
from storage import quota
from storage.connections import Database, Queries, fetchval
from storage.dialects import TENANT_LOCK
from storage.image_bytes import ImageBytes
from storage.quota import By, Charge, QuotaStatus, Scope, utc_day
from storage.rows import JOB_COLUMNS, LEDGER_COLUMNS, Lease, job_values, ledger_values, row_to_job
from storage.wakeups import Wakeups

_JSON_FIELDS = ("result_media", "callback_status")


@dataclass(frozen=True)
class StoredMedia:
    id: str
    data: bytes
    content_type: str
    width: int
    height: int
    nsfw: bool


@dataclass(frozen=True)
class NewMedia:
    """An image to keep (a job's result), before it has an id."""

    data: bytes
    content_type: str
    width: int
    height: int
    nsfw: bool = False


_MEDIA_COLUMNS = "id, content_type, width, height, nsfw, created_at, used_at"


class Space(Protocol):
    """How a database gives space back (storage/retention.py's sweeps call it)."""

    async def prepare(self) -> bool:
        """Once at start: make the database able to give space back. True when it changed it now."""
        ...

    async def give_back(self) -> int:
        """Give freed space back after a sweep; how many pages were given back."""
        ...


class SqlStore:
    """The store's queries; a backend (storage/sqlite.py, storage/postgres.py) opens its database and
    gives it its strategies."""

    database: Database
    media_bytes: ImageBytes
    space: Space

    def __init__(self, *, default_limit: int, default_ceiling: int | None, clock: Any) -> None:
        self.default_limit = default_limit
        self.default_ceiling = default_ceiling
        self.clock = clock

    def now(self) -> float:
        return float(self.clock())

    async def __aenter__(self) -> Self:
        raise NotImplementedError

    async def __aexit__(self, *exc: object) -> None:
        raise NotImplementedError

    def wakeups(self) -> Wakeups:
        """How replicas on this database wake each other (storage/wakeups.py)."""
        raise NotImplementedError

    def replica_name(self) -> str:
        """This replica's name when it is given none."""
        raise NotImplementedError

    async def schema_version(self) -> int:
        return int(await fetchval(self.database, "SELECT version FROM schema_version") or 0)

    async def secret(self, name: str) -> bytes:
        """A random secret made once and kept; of two processes making it at once, the first wins."""
        async with self.database.transaction() as db:
            await db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING",
                name,
                secrets.token_bytes(32).hex(),
            )
            return bytes.fromhex(await fetchval(db, "SELECT value FROM meta WHERE key=?", name))

    # --- quota (storage/quota.py: tenants, ceilings, budgets) ------------------------------------

    async def quota(self, user_key: str, tenant: str) -> QuotaStatus:
        return await self._status(self.database, user_key, tenant)

    async def _status(self, db: Queries, user_key: str, tenant: str) -> QuotaStatus:
        return await quota.status(
            db, user_key, tenant, self.now(), default=self.default_limit, default_ceiling=self.default_ceiling
        )

    async def check(self, charge: Charge) -> None:
        """Raise QuotaExceeded if the charge cannot be admitted now: the cheap look before any bytes
        are fetched. `admit` checks again, atomically."""
        refused = quota.refusal(await self.quota(charge.user_key, charge.tenant), charge)
        if refused is not None:
            raise refused

    async def set_limit(self, tenant: str, scope: Scope, subject: str, limit: int | None, *, by: By) -> None:
        """A user's daily limit (`scope="user"`, `subject` the user key), the members' default
        (`"members"`) or, for operators only, the tenant's ceiling (`"ceiling"`). None clears it."""
        if scope == "ceiling" and by != "operator":
            raise PermissionError("only operators set a tenant's ceiling")
        async with self.database.transaction() as db:
            await quota.set_limit(db, tenant, scope, subject, limit, by)

    async def grant(self, tenant: str, user_key: str, images: int) -> None:
        async with self.database.transaction() as db:
            await quota.grant(db, tenant, user_key, images, self.now())

    async def reset(self, tenant: str, user_key: str) -> None:
        async with self.database.transaction() as db:
            await quota.reset(db, tenant, user_key, self.now())

    async def set_budget(self, tenant: str, monthly_usd: float | None) -> None:
        async with self.database.transaction() as db:
            await quota.set_budget(db, tenant, monthly_usd)

    async def tenants_of(self, user_key: str) -> list[str]:
        """The tenants a user has made images in, the most recent first."""
        rows = await self.database.fetch(
            "SELECT workspace_key FROM ledger WHERE user_key=? GROUP BY workspace_key ORDER BY MAX(created_at) DESC",
            user_key,
        )
        return [row[0] for row in rows]

    async def limits(self, tenant: str) -> list[tuple[str, str, int, str]]:
        return await quota.limits_of(self.database, tenant)

    async def spend(self, key: str, *, scope: Literal["user", "workspace"]) -> tuple[int, float]:
        """All-time images and dollars committed for a user (in every tenant) or a tenant."""
        return await quota.spend(self.database, key, "user_key" if scope == "user" else "workspace_key")

    # --- jobs ----------------------------------------------------------------------------------

    async def _lock_tenant(self, db: Queries, tenant: str) -> None:
        if db.dialect.tenant_lock is not None:
            await db.execute(db.dialect.tenant_lock, TENANT_LOCK, tenant)

    async def admit(
        self, job: Job, *, workspace_key: str, dedup_key: str | None, lease: Lease | None = None
    ) -> Job:
        """Reserve the job's images and insert it, atomically across every process on the database.
        Returns the stored job: for a repeated dedup_key, the first one (nothing new is reserved)."""
        async with self.database.transaction() as db:
            await self._lock_tenant(db, workspace_key)
            if dedup_key is not None:
                existing = await self._job_where(db, "dedup_key=?", dedup_key)
                if existing is not None:
                    return existing
            charge = Charge(job.user_key, workspace_key, job.request.n, job.cost_usd)
            refused = quota.refusal(await self._status(db, job.user_key, workspace_key), charge)
            if refused is not None:
                raise refused
            values = job_values(job, dedup_key, lease, self.now())
            inserted = await db.execute(
                f"INSERT INTO jobs ({JOB_COLUMNS}) VALUES ({_marks(values)}) ON CONFLICT (dedup_key) DO NOTHING",
                *values,
            )
            if inserted:
                reserve = ledger_values(job, workspace_key, utc_day(job.created_at))
                await db.execute(
                    f"INSERT INTO ledger ({LEDGER_COLUMNS}) VALUES ({_marks(reserve)})", *reserve
                )
                return job
        # The same key admitted meanwhile under another tenant's lock: nothing was written here.
        existing = await self.job_by_dedup(str(dedup_key))
        assert existing is not None
        return existing

    async def move_job(self, job_id: str, *, from_provider: str, to_provider: str, cost_usd: float) -> bool:
        """Hand a job that is still `submitting` at `from_provider`, with no provider id, to
        `to_provider` at `cost_usd`: its provider and its cost change on the job and on its ledger row
        in one transaction, under its tenant's lock, as admission charges. False (nothing changed) when
        it is no longer such a job, or when the new price would pass its tenant's monthly budget."""
        owner = await self.database.fetchrow(
            "SELECT user_key, workspace_key, cost_usd FROM ledger WHERE job_id=? AND state=?",
            job_id,
            LedgerState.RESERVED.value,
        )
        if owner is None:
            return False
        user_key, tenant = str(owner[0]), str(owner[1])
        async with self.database.transaction() as db:
            await self._lock_tenant(db, tenant)
            # Read again under the lock: what this job has reserved is part of the month's spend.
            held = await fetchval(
                db,
                "SELECT cost_usd FROM ledger WHERE job_id=? AND state=?",
                job_id,
                LedgerState.RESERVED.value,
            )
            if held is None:
                return False
            status = await self._status(db, user_key, tenant)
            more = float(cost_usd) - float(held)
            if status.budget_usd is not None and status.month_spent_usd + more > status.budget_usd + 1e-9:
                return False
            moved = await db.execute(
                "UPDATE jobs SET provider=?, cost_usd=?, updated_at=? "
                "WHERE id=? AND provider=? AND state=? AND provider_job_id IS NULL",
                *(to_provider, float(cost_usd), self.now(), job_id, from_provider, JobState.SUBMITTING.value),
            )
            if moved != 1:
                return False
            await db.execute(
                "UPDATE ledger SET cost_usd=? WHERE job_id=? AND state=?",
                *(float(cost_usd), job_id, LedgerState.RESERVED.value),
            )
        return True

    async def transition(self, job_id: str, to: JobState, **fields: Any) -> bool:
        """Move a job to `to` from one of the states `TRANSITIONS` allows, setting `fields`. False (and
        nothing changed) when the job is in no such state. The ledger effect of entering `to`
        (`LEDGER_EFFECT`) happens in the same transaction."""
        if not TRANSITIONS[to]:
            return False
        async with self.database.transaction() as db:
            return await self._move(db, job_id, to, fields)

    async def _move(self, db: Queries, job_id: str, to: JobState, fields: dict[str, Any]) -> bool:
        """`transition`'s work inside the caller's transaction."""
        if not TRANSITIONS[to]:
            return False
        sets, values = _assignments(fields)
        allowed, args = db.dialect.among("state", TRANSITIONS[to])
        changed = await db.execute(
            f"UPDATE jobs SET state=?, updated_at=?{sets} WHERE id=? AND {allowed}",
            *(to.value, self.now(), *values, job_id, *args),
        )
        if changed != 1:
            return False
        effect = LEDGER_EFFECT.get(to)
        if effect is not None:
            await db.execute(
                "UPDATE ledger SET state=? WHERE job_id=? AND state=?",
                *(effect.value, job_id, LedgerState.RESERVED.value),
            )
        return True

    async def annotate(self, job_id: str, state: JobState, **fields: Any) -> bool:
        """Set `fields` on a job that is still in `state`, without changing its state."""
        sets, values = _assignments(fields)
        async with self.database.transaction() as db:
            changed = await db.execute(
                f"UPDATE jobs SET updated_at=?{sets} WHERE id=? AND state=?",
                *(self.now(), *values, job_id, state.value),
            )
        return changed == 1

    async def record_callback(self, job_id: str, status: dict[str, Any]) -> bool:
        """Keep a verified callback's status for the job's runner (it may not be listening yet)."""
        terminal, args = self.database.dialect.among("state", TERMINAL)
        async with self.database.transaction() as db:
            changed = await db.execute(
                f"UPDATE jobs SET callback_status=? WHERE id=? AND NOT ({terminal})",
                *(json.dumps(status), job_id, *args),
            )
        return changed == 1

    async def job(self, job_id: str) -> Job | None:
        return await self._job_where(self.database, "id=?", job_id)

    async def job_by_dedup(self, dedup_key: str) -> Job | None:
        return await self._job_where(self.database, "dedup_key=?", dedup_key)

    async def job_by_prefix(self, prefix: str, *, surface: str) -> Job | None:
        """The newest job of `surface` whose id starts with `prefix` (ids are hex)."""
        if not prefix or any(c not in "0123456789abcdef" for c in prefix):
            return None
        return await self._job_where(
            self.database, "surface=? AND id LIKE ? ORDER BY created_at DESC LIMIT 1", surface, prefix + "%"
        )

    async def job_by_token(self, token: str) -> Job | None:
        return await self._job_where(self.database, "callback_token=?", token)

    async def callback_status(self, job_id: str) -> dict[str, Any] | None:
        value = await fetchval(self.database, "SELECT callback_status FROM jobs WHERE id=?", job_id)
        return json.loads(value) if value else None

    async def unfinished_jobs(self) -> list[Job]:
        terminal, args = self.database.dialect.among("state", TERMINAL)
        rows = await self.database.fetch(
            f"SELECT * FROM jobs WHERE NOT ({terminal}) ORDER BY created_at", *args
        )
        return [row_to_job(r) for r in rows]

    async def queue_position(self, job: Job) -> int:
        waiting, args = self.database.dialect.among("state", WAITING)
        ahead = await fetchval(
            self.database,
            f"SELECT COUNT(*) FROM jobs WHERE {waiting} AND created_at < ?",
            *args,
            float(job.created_at),
        )
        return int(ahead or 0) + 1

    async def _job_where(self, db: Queries, where: str, *args: Any) -> Job | None:
        row = await db.fetchrow(f"SELECT * FROM jobs WHERE {where}", *args)
        return row_to_job(row) if row is not None else None

    # --- media and posts -------------------------------------------------------------------------

    async def _insert_media(self, db: Queries, media_id: str, image: NewMedia, now: float) -> None:
        data = self.media_bytes.in_row(image.data)
        await db.execute(
            f"INSERT INTO media ({_MEDIA_COLUMNS}{self.media_bytes.column}) VALUES (?,?,?,?,?,?,?{',?' * len(data)})",
            *(media_id, image.content_type, image.width, image.height, bool(image.nsfw), now, now, *data),
        )

    async def put_media(
        self, data: bytes, content_type: str, width: int, height: int, nsfw: bool = False
    ) -> str:
        """Keep an image: its bytes first, then its row, so no row ever names bytes not yet kept."""
        media_id = secrets.token_urlsafe(16)
        await self.media_bytes.keep({media_id: data})
        try:
            async with self.database.transaction() as db:
                await self._insert_media(
                    db, media_id, NewMedia(data, content_type, width, height, nsfw), self.now()
                )
        except BaseException:
            await asyncio.shield(self.media_bytes.drop([media_id]))
            raise
        return media_id

    async def media(self, media_id: str) -> StoredMedia | None:
        """A held image, or None when it is not (never was, deleted by retention, or its bytes are gone)."""
        if not self.media_bytes.valid(media_id):
            return None
        row = await self.database.fetchrow(
            f"SELECT id, content_type, width, height, nsfw{self.media_bytes.column} FROM media WHERE id=?",
            media_id,
        )
        if row is None:
            return None
        data = await self.media_bytes.read(media_id, row)
        if data is None:
            return None
        return StoredMedia(row[0], data, row[1], int(row[2]), int(row[3]), bool(row[4]))

    async def held_media(self, media_ids: list[str]) -> set[str]:
        """Which of `media_ids` have a row (storage/media.py asks, to find files a crash left)."""
        among, args = self.database.dialect.among("id", media_ids)
        return {
            str(row[0]) for row in await self.database.fetch(f"SELECT id FROM media WHERE {among}", *args)
        }

    async def complete(self, job_id: str, images: list[NewMedia]) -> list[str] | None:
        """Keep a job's result images and move it to `completed` naming them, in one transaction;
        their ids, or None (nothing kept) when the job may not complete from its state. The bytes
        first, then the rows and the move: no row ever names bytes not yet kept."""
        ids = [secrets.token_urlsafe(16) for _ in images]
        moved = False
        try:
            await self.media_bytes.keep(
                {media_id: image.data for media_id, image in zip(ids, images, strict=True)}
            )
            now = self.now()
            async with self.database.transaction() as db:
                moved = await self._move(db, job_id, JobState.COMPLETED, {"result_media": ids})
                for media_id, image in zip(ids, images, strict=True) if moved else ():
                    await self._insert_media(db, media_id, image, now)
        finally:
            if not moved:
                await asyncio.shield(self.media_bytes.drop(ids))
        return ids if moved else None

    async def record_posts(self, job_id: str, surface: str, posts: list[tuple[str, str | None]]) -> None:
        async with self.database.transaction() as db:
            await self._add_posts(db, job_id, surface, posts)

    async def _add_posts(
        self, db: Queries, job_id: str, surface: str, posts: list[tuple[str, str | None]]
    ) -> None:
        now = self.now()
        for message_key, thread_key in posts:
            await db.execute(
                "INSERT INTO posts (surface, message_key, job_id, thread_key, created_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                *(surface, message_key, job_id, thread_key, now),
            )

    async def delivered(self, job_id: str, surface: str, posts: list[tuple[str, str | None]]) -> bool:
        """Record the posts that carry a job and move it to `delivered`, in one transaction. The posts
        are kept even when the move is refused (they are on the platform); True when it moved."""
        async with self.database.transaction() as db:
            await self._add_posts(db, job_id, surface, posts)
            return await self._move(db, job_id, JobState.DELIVERED, {})

    async def remember_post(
        self, job_id: str, surface: str, message_key: str, thread_key: str | None
    ) -> None:
        """Record one post of a job as soon as the platform has it (a later call may add its thread)."""
        async with self.database.transaction() as db:
            await db.execute(
                "INSERT INTO posts (surface, message_key, job_id, thread_key, created_at) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (surface, message_key) DO UPDATE SET "
                "thread_key=COALESCE(excluded.thread_key, posts.thread_key)",
                *(surface, message_key, job_id, thread_key, self.now()),
            )

    async def posts_of(self, job_id: str, surface: str) -> list[str]:
        """The message keys of a job's posts, in the order they were recorded."""
        order = self.database.dialect.insertion_order
        rows = await self.database.fetch(
            f"SELECT message_key FROM posts WHERE job_id=? AND surface=? ORDER BY {order}", job_id, surface
        )
        return [str(row[0]) for row in rows]

    async def job_for_post(self, surface: str, message_key: str) -> Job | None:
        return await self._job_where(
            self.database,
            "id=(SELECT job_id FROM posts WHERE surface=? AND message_key=?)",
            surface,
            message_key,
        )

    async def latest_job_in_thread(self, surface: str, thread_key: str) -> Job | None:
        order = self.database.dialect.insertion_order
        return await self._job_where(
            self.database,
            "id=(SELECT p.job_id FROM posts p JOIN jobs j ON j.id=p.job_id WHERE p.surface=? AND p.thread_key=? "
            f"AND j.state=? ORDER BY p.created_at DESC, p.{order} DESC LIMIT 1)",
            *(surface, thread_key, JobState.DELIVERED.value),
        )

    async def forget_posts(self, job_id: str) -> None:
        async with self.database.transaction() as db:
            await db.execute("DELETE FROM posts WHERE job_id=?", job_id)


def _marks(values: tuple[Any, ...]) -> str:
    return ",".join("?" * len(values))


def _assignments(fields: dict[str, Any]) -> tuple[str, list[Any]]:
    """`, name=?, ...` for the fields a caller sets (names are the core's own, never user input), and
    their values (JSON columns as text)."""
    sets = "".join(f", {name}=?" for name in fields)
    return sets, [json.dumps(v) if name in _JSON_FIELDS else v for name, v in fields.items()]
