"""The PostgreSQL store (asyncpg, a connection pool): the same contract as storage/sqlite.py
(storage/base.py's `Store`), for several processes sharing one database.

Atomicity comes from PostgreSQL, not from a lock in this process: every write that must be atomic is
one transaction; a guarded transition is one `UPDATE ... WHERE state = ANY(...)`, so of two processes
moving the same job only one changes it. The quota reserve takes a transaction-scoped advisory lock on
the tenant before it reads the counts: every count a reserve checks (the user's day in that tenant,
the tenant's ceiling and month) is within one tenant, so serialising reserves per tenant is exactly
enough, across connections and processes, and it needs no row to exist beforehand (a `SELECT ... FOR
UPDATE` would need a lock row per tenant made first). Reserves in different tenants never wait on
each other. Media and posts are storage/postgres_media.py's (a mixin of `PostgresStore`).
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal

import asyncpg

from bot.model.errors import BadInput, ConfigError
from bot.model.jobs import LEDGER_EFFECT, TERMINAL, TRANSITIONS, WAITING, Job, JobState, LedgerState
from storage import postgres_schema as schema
from storage import quota
from storage.postgres_media import PostgresMediaPosts
from storage.quota import By, Charge, QuotaStatus, Scope, utc_day
from storage.schema import JOB_COLUMNS, LEDGER_COLUMNS, Lease, job_values, ledger_values

_TERMINAL = [state.value for state in TERMINAL]


class _Repeated(Exception):
    """A job with the same dedup key was stored by another transaction first."""


class PostgresStore(PostgresMediaPosts):
    def __init__(
        self,
        url: str,
        *,
        default_limit: int,
        default_ceiling: int | None = None,
        clock: Any = time.time,
        pool_size: int = 10,
    ) -> None:
        self.url = url
        self.default_limit = default_limit
        self.default_ceiling = default_ceiling
        self.clock = clock
        self.pool_size = pool_size
        self._pool: Any = None

    async def __aenter__(self) -> PostgresStore:
        try:
            self._pool = await asyncpg.create_pool(self.url, min_size=1, max_size=self.pool_size)
            await self._migrate()
        except (OSError, asyncpg.PostgresError) as exc:
            await self.__aexit__()
            # The URL may carry a password: name the error, never the URL.
            raise ConfigError(f"HIDREAM_DATABASE_URL: cannot open the PostgreSQL database: {exc}") from exc
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    @property
    def pool(self) -> Any:
        if self._pool is None:
            raise RuntimeError("store is not open")
        return self._pool

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Any]:
        async with self.pool.acquire() as db, db.transaction():
            yield db

    async def _migrate(self) -> None:
        async with self.pool.acquire() as db:
            # A session lock, held across the migrations' own transactions: the first process to get
            # it migrates, the others wait and then find nothing left to do.
            await db.execute("SELECT pg_advisory_lock($1)", schema.MIGRATION_LOCK)
            try:
                await db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
                version = await db.fetchval("SELECT version FROM schema_version") or 0
                for number, script in enumerate(schema.MIGRATIONS[version:], start=version + 1):
                    async with db.transaction():
                        await db.execute(script)
                        await db.execute("DELETE FROM schema_version")
                        await db.execute("INSERT INTO schema_version (version) VALUES ($1)", number)
            finally:
                await db.execute("SELECT pg_advisory_unlock($1)", schema.MIGRATION_LOCK)

    async def schema_version(self) -> int:
        return int(await self.pool.fetchval("SELECT version FROM schema_version") or 0)

    async def secret(self, name: str) -> bytes:
        """A random secret made once and kept; of two processes making it at once, the first wins."""
        value = secrets.token_bytes(32)
        async with self.transaction() as db:
            await db.execute(
                "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
                name,
                value.hex(),
            )
            kept = await db.fetchval("SELECT value FROM meta WHERE key=$1", name)
        return bytes.fromhex(kept)

    # --- quota (the rules are storage/quota.py's) --------------------------------------------------

    async def quota(self, user_key: str, tenant: str) -> QuotaStatus:
        async with self.pool.acquire() as db:
            return await self._status(db, user_key, tenant)

    async def _status(self, db: Any, user_key: str, tenant: str) -> QuotaStatus:
        return await schema.status(
            db,
            user_key,
            tenant,
            self.clock(),
            default=self.default_limit,
            default_ceiling=self.default_ceiling,
        )

    async def check(self, charge: Charge) -> None:
        """Raise QuotaExceeded if the charge cannot be admitted now; `admit` checks again, atomically."""
        refused = quota.refusal(await self.quota(charge.user_key, charge.tenant), charge)
        if refused is not None:
            raise refused

    async def set_limit(self, tenant: str, scope: Scope, subject: str, limit: int | None, *, by: By) -> None:
        if scope == "ceiling" and by != "operator":
            raise PermissionError("only operators set a tenant's ceiling")
        quota.check_images(limit)
        if limit is None:
            await self.pool.execute(
                "DELETE FROM limits WHERE tenant=$1 AND scope=$2 AND subject=$3 AND set_by=$4",
                tenant,
                scope,
                subject,
                by,
            )
            return
        await self.pool.execute(
            "INSERT INTO limits (tenant, scope, subject, daily_limit, set_by) VALUES ($1, $2, $3, $4, $5) "
            "ON CONFLICT (tenant, scope, subject, set_by) DO UPDATE SET daily_limit=excluded.daily_limit",
            tenant,
            scope,
            subject,
            limit,
            by,
        )

    async def grant(self, tenant: str, user_key: str, images: int) -> None:
        quota.check_images(images)
        now = self.clock()
        await self.pool.execute(
            "INSERT INTO grants (tenant, user_key, day, images, created_at) VALUES ($1, $2, $3, $4, $5)",
            tenant,
            user_key,
            utc_day(now),
            images,
            now,
        )

    async def reset(self, tenant: str, user_key: str) -> None:
        """Forget a user's finished usage today in one tenant (as storage/quota.py `reset`)."""
        await self.pool.execute(
            "UPDATE ledger SET state=$1 WHERE workspace_key=$2 AND user_key=$3 AND day=$4 AND state=$5",
            LedgerState.RESET.value,
            tenant,
            user_key,
            utc_day(self.clock()),
            LedgerState.COMMITTED.value,
        )

    async def set_budget(self, tenant: str, monthly_usd: float | None) -> None:
        if monthly_usd is None:
            await self.pool.execute("DELETE FROM budgets WHERE tenant=$1", tenant)
            return
        if not 0 <= monthly_usd <= quota.MAX_BUDGET_USD:
            raise BadInput(f"${monthly_usd} is out of range: use 0 to {quota.MAX_BUDGET_USD:,.0f} dollars.")
        await self.pool.execute(
            "INSERT INTO budgets (tenant, monthly_usd) VALUES ($1, $2) "
            "ON CONFLICT (tenant) DO UPDATE SET monthly_usd=excluded.monthly_usd",
            tenant,
            float(monthly_usd),
        )

    async def tenants_of(self, user_key: str) -> list[str]:
        rows = await self.pool.fetch(
            "SELECT workspace_key FROM ledger WHERE user_key=$1 GROUP BY workspace_key ORDER BY MAX(created_at) DESC",
            user_key,
        )
        return [row[0] for row in rows]

    async def limits(self, tenant: str) -> list[tuple[str, str, int, str]]:
        rows = await self.pool.fetch(
            "SELECT scope, subject, daily_limit, set_by FROM limits WHERE tenant=$1 ORDER BY scope, subject",
            tenant,
        )
        return [(r[0], r[1], int(r[2]), r[3]) for r in rows]

    async def spend(self, key: str, *, scope: Literal["user", "workspace"]) -> tuple[int, float]:
        column = "user_key" if scope == "user" else "workspace_key"
        row = await self.pool.fetchrow(
            f"SELECT COALESCE(SUM(images), 0), COALESCE(SUM(cost_usd), 0) FROM ledger "
            f"WHERE {column}=$1 AND state = ANY($2::text[])",
            key,
            schema.SPENT_STATES,
        )
        return int(row[0]), float(row[1])

    # --- jobs ----------------------------------------------------------------------------------

    async def admit(
        self, job: Job, *, workspace_key: str, dedup_key: str | None, lease: Lease | None = None
    ) -> Job:
        """Reserve the job's images and insert it, atomically across every process on the database.
        Returns the stored job: for a repeated dedup_key, the first one (nothing new is reserved)."""
        try:
            return await self._admit(job, workspace_key, dedup_key, lease)
        except _Repeated:
            # The same key admitted meanwhile under another tenant's lock: this transaction is undone.
            existing = await self.job_by_dedup(str(dedup_key))
            assert existing is not None
            return existing

    async def _admit(self, job: Job, workspace_key: str, dedup_key: str | None, lease: Lease | None) -> Job:
        async with self.transaction() as db:
            await db.execute(
                "SELECT pg_advisory_xact_lock($1, hashtext($2))", schema.TENANT_LOCK, workspace_key
            )
            if dedup_key is not None:
                existing = await self._job_where(db, "dedup_key=$1", dedup_key)
                if existing is not None:
                    return existing
            charge = Charge(job.user_key, workspace_key, job.request.n, job.cost_usd)
            refused = quota.refusal(await self._status(db, job.user_key, workspace_key), charge)
            if refused is not None:
                raise refused
            values = job_values(job, dedup_key, lease, float(self.clock()))
            inserted = await db.fetchval(
                f"INSERT INTO jobs ({JOB_COLUMNS}) VALUES ({_dollars(len(values))}) "
                "ON CONFLICT (dedup_key) DO NOTHING RETURNING id",
                *values,
            )
            if inserted is None:
                raise _Repeated
            reserve = ledger_values(job, workspace_key, utc_day(job.created_at))
            await db.execute(
                f"INSERT INTO ledger ({LEDGER_COLUMNS}) VALUES ({_dollars(len(reserve))})", *reserve
            )
        return job

    async def transition(self, job_id: str, to: JobState, **fields: Any) -> bool:
        """Move a job to `to` from a state `TRANSITIONS` allows, with `LEDGER_EFFECT` in the same
        transaction. False (nothing changed) when the job is in no such state."""
        if not TRANSITIONS[to]:
            return False
        async with self.transaction() as db:
            return await self._move(db, job_id, to, fields)

    async def _move(self, db: Any, job_id: str, to: JobState, fields: dict[str, Any]) -> bool:
        """`transition`'s work inside the caller's transaction."""
        from_states = [state.value for state in TRANSITIONS[to]]
        if not from_states:
            return False
        sets, values = schema.assignments(fields, first=5)
        changed = await db.fetchval(
            f"UPDATE jobs SET state=$1, updated_at=$2{sets} WHERE id=$3 AND state = ANY($4::text[]) "
            "RETURNING id",
            to.value,
            float(self.clock()),
            job_id,
            from_states,
            *values,
        )
        if changed is None:
            return False
        effect = LEDGER_EFFECT.get(to)
        if effect is not None:
            await db.execute(
                "UPDATE ledger SET state=$1 WHERE job_id=$2 AND state=$3",
                effect.value,
                job_id,
                LedgerState.RESERVED.value,
            )
        return True

    async def annotate(self, job_id: str, state: JobState, **fields: Any) -> bool:
        """Set `fields` on a job that is still in `state`, without changing its state."""
        sets, values = schema.assignments(fields, first=4)
        changed = await self.pool.fetchval(
            f"UPDATE jobs SET updated_at=$1{sets} WHERE id=$2 AND state=$3 RETURNING id",
            float(self.clock()),
            job_id,
            state.value,
            *values,
        )
        return changed is not None

    async def record_callback(self, job_id: str, status: dict[str, Any]) -> bool:
        changed = await self.pool.fetchval(
            "UPDATE jobs SET callback_status=$1 WHERE id=$2 AND NOT (state = ANY($3::text[])) RETURNING id",
            json.dumps(status),
            job_id,
            _TERMINAL,
        )
        return changed is not None

    async def job(self, job_id: str) -> Job | None:
        return await self._job_where(self.pool, "id=$1", job_id)

    async def job_by_dedup(self, dedup_key: str) -> Job | None:
        return await self._job_where(self.pool, "dedup_key=$1", dedup_key)

    async def job_by_prefix(self, prefix: str, *, surface: str) -> Job | None:
        """The newest job of `surface` whose id starts with `prefix` (ids are hex)."""
        if not prefix or any(c not in "0123456789abcdef" for c in prefix):
            return None
        return await self._job_where(
            self.pool, "surface=$1 AND id LIKE $2 ORDER BY created_at DESC LIMIT 1", surface, prefix + "%"
        )

    async def job_by_token(self, token: str) -> Job | None:
        return await self._job_where(self.pool, "callback_token=$1", token)

    async def callback_status(self, job_id: str) -> dict[str, Any] | None:
        value = await self.pool.fetchval("SELECT callback_status FROM jobs WHERE id=$1", job_id)
        return json.loads(value) if value else None

    async def unfinished_jobs(self) -> list[Job]:
        rows = await self.pool.fetch(
            "SELECT * FROM jobs WHERE NOT (state = ANY($1::text[])) ORDER BY created_at", _TERMINAL
        )
        return [schema.row_to_job(r) for r in rows]

    async def queue_position(self, job: Job) -> int:
        ahead = await self.pool.fetchval(
            "SELECT COUNT(*) FROM jobs WHERE state = ANY($1::text[]) AND created_at < $2",
            [state.value for state in WAITING],
            float(job.created_at),
        )
        return int(ahead) + 1

    async def _job_where(self, db: Any, where: str, *args: Any) -> Job | None:
        row = await db.fetchrow(f"SELECT * FROM jobs WHERE {where}", *args)
        return schema.row_to_job(row) if row is not None else None


def _dollars(count: int) -> str:
    """`$1,$2,...` placeholders for `count` values."""
    return ",".join(f"${i}" for i in range(1, count + 1))
