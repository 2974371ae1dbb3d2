"""The SQLite schema, as the list of migrations that build it: the store applies those it has not
applied yet, each in its own transaction, and records the version reached."""

from __future__ import annotations

from storage import quota

MIGRATIONS: list[str] = [
    # 1: the first schema
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE jobs (
        id TEXT PRIMARY KEY,
        surface TEXT NOT NULL, user_id TEXT NOT NULL, workspace_id TEXT NOT NULL,
        origin TEXT NOT NULL, request TEXT NOT NULL, tier TEXT NOT NULL, provider TEXT NOT NULL,
        state TEXT NOT NULL, callback_token TEXT NOT NULL UNIQUE, provider_job_id TEXT,
        parent_job_id TEXT, reference_media TEXT NOT NULL DEFAULT '[]', result_media TEXT NOT NULL DEFAULT '[]',
        callback_status TEXT, error TEXT, seed INTEGER, cost_usd REAL NOT NULL DEFAULT 0,
        dedup_key TEXT UNIQUE, created_at REAL NOT NULL, updated_at REAL NOT NULL, deadline REAL NOT NULL
    );
    CREATE INDEX jobs_state ON jobs(state);
    CREATE TABLE ledger (
        job_id TEXT PRIMARY KEY, user_key TEXT NOT NULL, workspace_key TEXT NOT NULL, day TEXT NOT NULL,
        images INTEGER NOT NULL, state TEXT NOT NULL, cost_usd REAL NOT NULL DEFAULT 0, created_at REAL NOT NULL
    );
    CREATE INDEX ledger_user_day ON ledger(user_key, day);
    CREATE INDEX ledger_workspace ON ledger(workspace_key);
    CREATE TABLE limits (scope TEXT NOT NULL, key TEXT NOT NULL, daily_limit INTEGER NOT NULL,
                         PRIMARY KEY (scope, key));
    CREATE TABLE grants (id INTEGER PRIMARY KEY AUTOINCREMENT, user_key TEXT NOT NULL, day TEXT NOT NULL,
                         images INTEGER NOT NULL, created_at REAL NOT NULL);
    CREATE INDEX grants_user_day ON grants(user_key, day);
    CREATE TABLE media (id TEXT PRIMARY KEY, data BLOB NOT NULL, content_type TEXT NOT NULL,
                        width INTEGER NOT NULL, height INTEGER NOT NULL, nsfw INTEGER NOT NULL DEFAULT 0,
                        created_at REAL NOT NULL);
    CREATE TABLE posts (surface TEXT NOT NULL, message_key TEXT NOT NULL, job_id TEXT NOT NULL,
                        thread_key TEXT, created_at REAL NOT NULL, PRIMARY KEY (surface, message_key));
    CREATE INDEX posts_thread ON posts(surface, thread_key, created_at);
    CREATE INDEX posts_job ON posts(job_id);
    """,
    # 2: limits, grants and counts belong to tenants (storage/quota.py). Old per-user limits and grants
    # named no tenant (and could have been set by any server's admin): they are not carried over.
    quota.MIGRATION,
    # 3: retention: a media row's age counts from its last use (stored, or given to a new job), so an
    # image a new job still uses is not deleted under it; finished jobs whose bulky columns are not
    # yet cleared are found by their own index (storage/retention.py).
    """
    ALTER TABLE media ADD COLUMN used_at REAL;
    UPDATE media SET used_at = created_at;
    CREATE INDEX media_used ON media(used_at);
    CREATE INDEX jobs_bulky ON jobs(updated_at) WHERE origin != '{}' OR callback_status IS NOT NULL;
    """,
]
