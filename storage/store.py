"""The one store: jobs and their guarded state changes, the usage ledger and its limits, media, and the
posts that carry each job, every query written once (storage/dialects.py turns it into each database's
SQL) and run through the connection seam (storage/connections.py).

Atomicity: every write that must be atomic is one transaction; a guarded transition is one
`UPDATE ... WHERE state IN (...)`, so of two writers moving the same job only one changes it.
Admission (and a failover's new price) reads a tenant's counts and charges it under the tenant's
lock: the whole database's one writer on SQLite, a transaction-scoped advisory lock on the tenant on
PostgreSQL. The counts a charge checks (the user's day in that tenant, the tenant's ceiling and
month) are within one tenant, so serialising charges per tenant is enough for them, across
processes; the one count that is not, a person's day in every tenant (HIDREAM_DAILY_PERSON_QUOTA),
is serialised by a second lock on the person, taken after the tenant's when that cap is set.

What differs beyond the SQL text is a strategy the backend (storage/sqlite.py, storage/postgres.py)
gives the store: where image bytes live (storage/media.py), how replicas wake each other
(storage/wakeups.py) and how space is given back (`Space`, which retention's sweeps call).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Collection
from typing import Any, Protocol, Self

from bot.model.jobs import LEDGER_EFFECT, TERMINAL, TRANSITIONS, WAITING, Job, JobState, LedgerState
from storage.connections import Database, Queries, fetchval
from storage.dialects import PERSON_LOCK, TENANT_LOCK
from storage.media import ImageBytes
from storage.posts import MediaAndPosts
from storage.quota import Charge, QuotaDefaults, QuotaRules, Quotas, utc_day
from storage.rows import LEDGER_COLUMNS, Lease, job_values, ledger_values, row_to_job
from storage.wakeups import Wakeups

_JSON_FIELDS = ("result_media", "callback_status")


class Space(Protocol):
    """How a database gives space back (storage/retention.py's sweeps call it)."""

    async def prepare(self) -> bool:
        """Once at start: make the database able to give space back. True when it changed it now."""
        ...

    async def give_back(self) -> int:
        """Give freed space back after a sweep; how many pages were given back."""
        ...


class Store(MediaAndPosts, Quotas):
    """The store's queries (media and posts in storage/posts.py, quotas in storage/quota.py); a backend
    (storage/sqlite.py, storage/postgres.py) opens its database and gives it its strategies."""

    database: Database
    media_bytes: ImageBytes
    space: Space

    def __init__(self, *, defaults: QuotaDefaults, clock: Any, policy: QuotaRules | None) -> None:
        self.defaults = defaults
        self.clock = clock
        self._policy = policy

    @property
    def policy(self) -> QuotaRules:
        """The core's quota policy (bot/jobs/quota_policy.py), which this store applies when it charges."""
        if self._policy is None:
            raise RuntimeError("this store was made without a quota policy")
        return self._policy

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

    async def write(self, sql: str, *args: Any) -> int:
        """One write in its own transaction; how many rows it changed."""
        async with self.database.transaction() as db:
            return await db.execute(sql, *args)

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

    # --- jobs ----------------------------------------------------------------------------------

    async def _lock_tenant(self, db: Queries, tenant: str) -> None:
        if db.dialect.tenant_lock is not None:
            await db.execute(db.dialect.tenant_lock, TENANT_LOCK, tenant)

    async def _lock_person(self, db: Queries, user_key: str) -> None:
        """A person's cap counts across tenants, which their tenants' locks do not serialise. Taken
        only after a tenant's lock, and never the other way round, so two admissions cannot deadlock."""
        if db.dialect.tenant_lock is not None:
            await db.execute(db.dialect.tenant_lock, PERSON_LOCK, user_key)

    async def admit(
        self, job: Job, *, workspace_key: str, dedup_key: str | None, lease: Lease | None = None
    ) -> Job:
        """Reserve the job's images and insert it, atomically across every process on the database.
        Returns the stored job: for a repeated dedup_key, the first one (nothing new is reserved)."""
        async with self.database.transaction() as db:
            await self._lock_tenant(db, workspace_key)
            if self.defaults.person is not None:
                await self._lock_person(db, job.user_key)
            if dedup_key is not None:
                existing = await self._job_where(db, "dedup_key=?", dedup_key)
                if existing is not None:
                    return existing
            charge = Charge(job.user_key, workspace_key, job.request.n, job.cost_usd, job.project)
            refused = self.policy.refusal(await self._status(db, job.user_key, workspace_key), charge)
            if refused is None:
                refused = await self._project_refusal(db, workspace_key, job.project, job.cost_usd)
            if refused is not None:
                raise refused
            values = job_values(job, dedup_key, lease, self.now())
            inserted = await db.execute(
                f"INSERT INTO jobs ({', '.join(values)}) VALUES ({_marks(values)}) ON CONFLICT (dedup_key) DO NOTHING",
                *values.values(),
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

    async def admit_set(
        self, jobs: list[Job], *, workspace_key: str, dedup_keys: list[str] | None, lease: Lease | None = None
    ) -> list[Job]:
        """Reserve every job's images and insert them all in one transaction, or none: the set's whole
        count and cost are checked against the tenant's limits and budget at once, under its lock.
        Returns the stored jobs: for a repeated first dedup key, the set stored the first time."""
        if not jobs:
            return []
        keys: list[str | None] = list(dedup_keys) if dedup_keys is not None else [None] * len(jobs)
        async with self.database.transaction() as db:
            await self._lock_tenant(db, workspace_key)
            if self.defaults.person is not None:
                await self._lock_person(db, jobs[0].user_key)
            if keys[0] is not None:
                existing = await self._job_where(db, "dedup_key=?", keys[0])
                if existing is not None:
                    found = [await self._job_where(db, "dedup_key=?", k) for k in keys]
                    return [j for j in found if j is not None]
            charge = Charge(
                jobs[0].user_key,
                workspace_key,
                sum(j.request.n for j in jobs),
                sum(j.cost_usd for j in jobs),
                jobs=len(jobs),
            )
            refused = self.policy.refusal(await self._status(db, jobs[0].user_key, workspace_key), charge)
            # Each project the set counts under must fit its share of the set's dollars.
            shares: dict[str, float] = {}
            for job in jobs:
                shares[job.project] = shares.get(job.project, 0.0) + job.cost_usd
            for project, share in shares.items():
                if refused is None:
                    refused = await self._project_refusal(db, workspace_key, project, share)
            if refused is not None:
                raise refused
            for job, key in zip(jobs, keys, strict=True):
                values = job_values(job, key, lease, self.now())
                await db.execute(
                    f"INSERT INTO jobs ({', '.join(values)}) VALUES ({_marks(values)})", *values.values()
                )
                reserve = ledger_values(job, workspace_key, utc_day(job.created_at))
                await db.execute(
                    f"INSERT INTO ledger ({LEDGER_COLUMNS}) VALUES ({_marks(reserve)})", *reserve
                )
        return jobs

    async def move_job(self, job_id: str, *, from_provider: str, to_provider: str, cost_usd: float) -> bool:
        """Hand a job that is still `submitting` at `from_provider`, with no provider id, to
        `to_provider` at `cost_usd`: its provider and its cost change on the job and on its ledger row
        in one transaction, under its tenant's lock, as admission charges. False (nothing changed) when
        it is no longer such a job, or when the new price would pass its tenant's monthly budget or its
        project's."""
        owner = await self.database.fetchrow(
            "SELECT user_key, workspace_key, cost_usd, project FROM ledger WHERE job_id=? AND state=?",
            job_id,
            LedgerState.RESERVED.value,
        )
        if owner is None:
            return False
        user_key, tenant, project = str(owner[0]), str(owner[1]), str(owner[3])
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
            if self.policy.over_budget(status, more):
                return False
            if await self._project_refusal(db, tenant, project, more) is not None:
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
        """`transition`'s work inside the caller's transaction (fenced within a fenced delivery)."""
        if not TRANSITIONS[to]:
            return False
        await self._fence(db, job_id)
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

    async def job_by_prefix(
        self, prefix: str, *, surface: str, workspace_id: str, user_id: str
    ) -> Job | None:
        """The newest job of one tenant whose id starts with `prefix` (ids are hex): of the server or
        workspace `workspace_id`, or, when that is empty (a DM, the console), of `user_id` alone.
        Scoped here, not after, so another tenant's newer match does not hide the asker's own."""
        if not prefix or any(c not in "0123456789abcdef" for c in prefix):
            return None
        return await self._job_where(
            self.database,
            "surface=? AND workspace_id=? AND (workspace_id<>'' OR user_id=?) AND id LIKE ?"
            " ORDER BY created_at DESC LIMIT 1",
            surface,
            workspace_id,
            user_id,
            prefix + "%",
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


def _marks(values: Collection[Any]) -> str:
    return ",".join("?" * len(values))


def _assignments(fields: dict[str, Any]) -> tuple[str, list[Any]]:
    """`, name=?, ...` for the fields a caller sets (names are the core's own, never user input), and
    their values (JSON columns as text)."""
    sets = "".join(f", {name}=?" for name in fields)
    return sets, [json.dumps(v) if name in _JSON_FIELDS else v for name, v in fields.items()]
