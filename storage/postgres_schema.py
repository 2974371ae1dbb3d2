"""The PostgreSQL schema, as its own list of migrations (the same tables as storage/schema.py's end
state, in PostgreSQL's types), the quota queries written for PostgreSQL, and rows to jobs.

The store applies the migrations it has not applied yet under a session advisory lock, so several
processes starting on one database together migrate it once.
"""

from __future__ import annotations

import json
from typing import Any

from bot.model.jobs import COUNTED, SPENT, LedgerState
from storage import quota
from storage.quota import QuotaStatus, next_reset, utc_day
from storage.schema import SUBJECTS, row_to_job

# The key of the advisory lock held while migrating (any fixed number no other lock here uses).
MIGRATION_LOCK = 0x68494472_65616D01
# Namespace (first key) of the per-tenant transaction locks that make the quota reserve atomic.
TENANT_LOCK = 0x6864

MIGRATIONS: list[str] = [
    # 1: the schema SQLite reached at its migration 3 (retention's used_at included).
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE jobs (
        id TEXT PRIMARY KEY,
        surface TEXT NOT NULL, user_id TEXT NOT NULL, workspace_id TEXT NOT NULL,
        origin TEXT NOT NULL, request TEXT NOT NULL, tier TEXT NOT NULL, provider TEXT NOT NULL,
        state TEXT NOT NULL, callback_token TEXT NOT NULL UNIQUE, provider_job_id TEXT,
        parent_job_id TEXT, reference_media TEXT NOT NULL DEFAULT '[]', result_media TEXT NOT NULL DEFAULT '[]',
        callback_status TEXT, error TEXT, seed BIGINT, cost_usd DOUBLE PRECISION NOT NULL DEFAULT 0,
        dedup_key TEXT UNIQUE, created_at DOUBLE PRECISION NOT NULL, updated_at DOUBLE PRECISION NOT NULL,
        deadline DOUBLE PRECISION NOT NULL
    );
    CREATE INDEX jobs_state ON jobs(state);
    CREATE INDEX jobs_bulky ON jobs(updated_at) WHERE origin != '{}' OR callback_status IS NOT NULL;
    CREATE TABLE ledger (
        job_id TEXT PRIMARY KEY, user_key TEXT NOT NULL, workspace_key TEXT NOT NULL, day TEXT NOT NULL,
        images INTEGER NOT NULL, state TEXT NOT NULL, cost_usd DOUBLE PRECISION NOT NULL DEFAULT 0,
        created_at DOUBLE PRECISION NOT NULL
    );
    CREATE INDEX ledger_user_day ON ledger(user_key, day);
    CREATE INDEX ledger_tenant_day ON ledger(workspace_key, day);
    CREATE INDEX ledger_tenant_user_day ON ledger(workspace_key, user_key, day);
    CREATE TABLE limits (
        tenant TEXT NOT NULL, scope TEXT NOT NULL, subject TEXT NOT NULL DEFAULT '',
        daily_limit INTEGER NOT NULL, set_by TEXT NOT NULL, PRIMARY KEY (tenant, scope, subject, set_by)
    );
    CREATE TABLE grants (id BIGSERIAL PRIMARY KEY, tenant TEXT NOT NULL, user_key TEXT NOT NULL,
                         day TEXT NOT NULL, images INTEGER NOT NULL, created_at DOUBLE PRECISION NOT NULL);
    CREATE INDEX grants_tenant_user_day ON grants(tenant, user_key, day);
    CREATE TABLE budgets (tenant TEXT PRIMARY KEY, monthly_usd DOUBLE PRECISION NOT NULL);
    CREATE TABLE media (id TEXT PRIMARY KEY, data BYTEA NOT NULL, content_type TEXT NOT NULL,
                        width INTEGER NOT NULL, height INTEGER NOT NULL, nsfw BOOLEAN NOT NULL DEFAULT FALSE,
                        created_at DOUBLE PRECISION NOT NULL, used_at DOUBLE PRECISION);
    CREATE INDEX media_used ON media(used_at);
    CREATE TABLE posts (seq BIGSERIAL, surface TEXT NOT NULL, message_key TEXT NOT NULL, job_id TEXT NOT NULL,
                        thread_key TEXT, created_at DOUBLE PRECISION NOT NULL,
                        PRIMARY KEY (surface, message_key));
    CREATE INDEX posts_thread ON posts(surface, thread_key, created_at);
    CREATE INDEX posts_job ON posts(job_id);
    """,
    # 2: Slack installations and OAuth states (storage/installations.py), as SQLite's migration 4.
    """
    CREATE TABLE slack_installations (
        enterprise_id TEXT NOT NULL DEFAULT '', team_id TEXT NOT NULL DEFAULT '',
        app_id TEXT NOT NULL DEFAULT '', bot_id TEXT NOT NULL DEFAULT '', bot_user_id TEXT NOT NULL DEFAULT '',
        bot_token TEXT NOT NULL, bot_scopes TEXT NOT NULL DEFAULT '', bot_refresh_token TEXT,
        bot_token_expires_at BIGINT, is_enterprise_install INTEGER NOT NULL DEFAULT 0,
        installed_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (enterprise_id, team_id)
    );
    CREATE INDEX slack_installations_team ON slack_installations(team_id);
    CREATE TABLE slack_oauth_states (state TEXT PRIMARY KEY, expires_at DOUBLE PRECISION NOT NULL);
    """,
    # 3: leases and handled platform events (storage/replicas.py), as SQLite's migration 5.
    """
    ALTER TABLE jobs ADD COLUMN owner TEXT;
    ALTER TABLE jobs ADD COLUMN lease_until DOUBLE PRECISION;
    CREATE TABLE seen_events (key TEXT PRIMARY KEY, seen_at DOUBLE PRECISION NOT NULL);
    CREATE INDEX seen_events_at ON seen_events(seen_at);
    """,
    # 4: saved subjects (storage/subjects.py), as SQLite's migration 7.
    SUBJECTS,
    # 5: versions of a result thread and their heads (storage/versions.py), as SQLite's VERSIONS.
    """
    CREATE TABLE versions (
        surface TEXT NOT NULL, thread_key TEXT NOT NULL, version INTEGER NOT NULL, job_id TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (surface, thread_key, version)
    );
    CREATE UNIQUE INDEX versions_job ON versions(surface, thread_key, job_id);
    CREATE INDEX versions_job_id ON versions(job_id);
    CREATE TABLE version_heads (
        surface TEXT NOT NULL, thread_key TEXT NOT NULL, version INTEGER NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (surface, thread_key)
    );
    """,
    # 6: personal defaults and tenant policy (storage/preferences.py), as SQLite's migration 9.
    """
    CREATE TABLE user_defaults (tenant TEXT NOT NULL, user_key TEXT NOT NULL, flags TEXT NOT NULL,
                                updated_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (tenant, user_key));
    CREATE TABLE tenant_policy (tenant TEXT PRIMARY KEY, banned TEXT NOT NULL DEFAULT '[]', nsfw TEXT,
                                tier TEXT, provider TEXT, updated_at DOUBLE PRECISION NOT NULL);
    """,
    # 7: a person's recent jobs in a workspace by index, as SQLite's migration 10.
    "CREATE INDEX jobs_requester ON jobs(surface, workspace_id, user_id, created_at)",
]

_JSON_FIELDS = ("result_media", "callback_status")

# Made or reserved today, reset or not: what a tenant's ceiling counts (as storage/quota.py).
_MADE = [LedgerState.RESERVED.value, LedgerState.COMMITTED.value, LedgerState.RESET.value]
_COUNTED = [state.value for state in COUNTED]
SPENT_STATES = [state.value for state in SPENT]

# One round trip for everything a quota status needs; the rules themselves stay in storage/quota.py.
_STATUS_SQL = """
SELECT
  (SELECT COALESCE(SUM(images), 0) FROM ledger
     WHERE workspace_key=$1 AND user_key=$2 AND day=$3 AND state = ANY($4::text[])) AS used,
  (SELECT COALESCE(SUM(images), 0) FROM grants WHERE tenant=$1 AND user_key=$2 AND day=$3) AS granted,
  (SELECT daily_limit FROM limits WHERE tenant=$1 AND scope='ceiling' AND set_by='operator') AS ceiling,
  (SELECT COALESCE(SUM(images), 0) FROM ledger
     WHERE workspace_key=$1 AND day=$3 AND state = ANY($5::text[])) AS tenant_used,
  (SELECT monthly_usd FROM budgets WHERE tenant=$1) AS budget,
  (SELECT COALESCE(SUM(cost_usd), 0) FROM ledger
     WHERE workspace_key=$1 AND substr(day, 1, 7)=$6 AND state = ANY($5::text[])) AS spent
"""


async def status(
    db: Any, user_key: str, tenant: str, now: float, *, default: int, default_ceiling: int | None
) -> QuotaStatus:
    """The same status storage/quota.py computes on SQLite, from PostgreSQL (`db` an asyncpg connection)."""
    day = utc_day(now)
    rows = await db.fetch(
        "SELECT tenant, scope, set_by, daily_limit FROM limits WHERE "
        "(scope='user' AND subject=$1 AND tenant IN ($2, $3)) OR (scope='members' AND tenant=$2)",
        user_key,
        tenant,
        quota.EVERY_TENANT,
    )
    base = quota.pick_limit({(r[0], r[1], r[2]): int(r[3]) for r in rows}, tenant, default)
    row = await db.fetchrow(_STATUS_SQL, tenant, user_key, day, _COUNTED, _MADE, day[:7])
    used, granted, tenant_used = int(row["used"]), int(row["granted"]), int(row["tenant_used"])
    top = int(row["ceiling"]) if row["ceiling"] is not None else default_ceiling
    money = float(row["budget"]) if row["budget"] is not None else None
    total = base.limit + granted
    remaining = max(0, total - used)
    if top is not None:
        remaining = min(remaining, max(0, top - tenant_used))
    return QuotaStatus(
        used,
        total,
        remaining,
        next_reset(now),
        now,
        base.source,
        granted,
        top,
        tenant_used,
        money,
        float(row["spent"]),
    )


def assignments(fields: dict[str, Any], *, first: int) -> tuple[str, list[Any]]:
    """`, name=$n, ...` for the fields a caller sets (names are the core's own, never user input),
    numbered from `first`, and their values (JSON columns as text)."""
    sets = "".join(f", {name}=${first + i}" for i, name in enumerate(fields))
    values = [json.dumps(v) if name in _JSON_FIELDS else v for name, v in fields.items()]
    return sets, values


__all__ = ["row_to_job"]
