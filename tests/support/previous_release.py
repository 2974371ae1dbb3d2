"""The schema of the release before the one store (commit 93bac33), as its two migration lists stood:
SQLite's ten and PostgreSQL's seven, copied from `git show 93bac33:storage/schema.py` and
`...:storage/postgres_schema.py`. The upgrade tests build databases of that release with them."""

from __future__ import annotations

SQLITE: list[str] = [
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
    """
CREATE TABLE limits_by_tenant (
    tenant TEXT NOT NULL, scope TEXT NOT NULL, subject TEXT NOT NULL DEFAULT '',
    daily_limit INTEGER NOT NULL, set_by TEXT NOT NULL, PRIMARY KEY (tenant, scope, subject, set_by)
);
INSERT INTO limits_by_tenant (tenant, scope, subject, daily_limit, set_by)
    SELECT key, 'members', '', daily_limit, 'admin' FROM limits WHERE scope='workspace';
INSERT INTO limits_by_tenant (tenant, scope, subject, daily_limit, set_by)
    SELECT '*', 'user', key, 0, 'operator' FROM limits WHERE scope='user' AND daily_limit=0;
DROP TABLE limits;
ALTER TABLE limits_by_tenant RENAME TO limits;
DROP TABLE grants;
CREATE TABLE grants (id INTEGER PRIMARY KEY AUTOINCREMENT, tenant TEXT NOT NULL, user_key TEXT NOT NULL,
                     day TEXT NOT NULL, images INTEGER NOT NULL, created_at REAL NOT NULL);
CREATE INDEX grants_tenant_user_day ON grants(tenant, user_key, day);
UPDATE ledger SET workspace_key = workspace_key || 'dm:' || substr(user_key, length(workspace_key) + 1)
    WHERE substr(workspace_key, -1) = ':';
CREATE INDEX ledger_tenant_day ON ledger(workspace_key, day);
CREATE INDEX ledger_tenant_user_day ON ledger(workspace_key, user_key, day);
CREATE TABLE budgets (tenant TEXT PRIMARY KEY, monthly_usd REAL NOT NULL)
""",
    """
    ALTER TABLE media ADD COLUMN used_at REAL;
    UPDATE media SET used_at = created_at;
    CREATE INDEX media_used ON media(used_at);
    CREATE INDEX jobs_bulky ON jobs(updated_at) WHERE origin != '{}' OR callback_status IS NOT NULL;
    """,
    """
CREATE TABLE slack_installations (
    enterprise_id TEXT NOT NULL DEFAULT '', team_id TEXT NOT NULL DEFAULT '',
    app_id TEXT NOT NULL DEFAULT '', bot_id TEXT NOT NULL DEFAULT '', bot_user_id TEXT NOT NULL DEFAULT '',
    bot_token TEXT NOT NULL, bot_scopes TEXT NOT NULL DEFAULT '', bot_refresh_token TEXT,
    bot_token_expires_at INTEGER, is_enterprise_install INTEGER NOT NULL DEFAULT 0, installed_at REAL NOT NULL,
    PRIMARY KEY (enterprise_id, team_id)
);
CREATE INDEX slack_installations_team ON slack_installations(team_id);
CREATE TABLE slack_oauth_states (state TEXT PRIMARY KEY, expires_at REAL NOT NULL)
""",
    """
ALTER TABLE jobs ADD COLUMN owner TEXT;
ALTER TABLE jobs ADD COLUMN lease_until REAL;
CREATE TABLE seen_events (key TEXT PRIMARY KEY, seen_at REAL NOT NULL);
CREATE INDEX seen_events_at ON seen_events(seen_at)
""",
    """
ALTER TABLE media RENAME TO media_moving;
DROP INDEX media_used;
CREATE TABLE media (id TEXT PRIMARY KEY, content_type TEXT NOT NULL, width INTEGER NOT NULL,
                    height INTEGER NOT NULL, nsfw INTEGER NOT NULL DEFAULT 0, created_at REAL NOT NULL,
                    used_at REAL);
INSERT INTO media (id, content_type, width, height, nsfw, created_at, used_at)
    SELECT id, content_type, width, height, nsfw, created_at, used_at FROM media_moving;
CREATE INDEX media_used ON media(used_at)
""",
    """
CREATE TABLE subjects (
    tenant TEXT NOT NULL, name TEXT NOT NULL, name_key TEXT NOT NULL, creator TEXT NOT NULL,
    media TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (tenant, name_key)
)
""",
    """
CREATE TABLE versions (
    surface TEXT NOT NULL, thread_key TEXT NOT NULL, version INTEGER NOT NULL, job_id TEXT NOT NULL,
    created_at REAL NOT NULL, PRIMARY KEY (surface, thread_key, version)
);
CREATE UNIQUE INDEX versions_job ON versions(surface, thread_key, job_id);
CREATE INDEX versions_job_id ON versions(job_id);
CREATE TABLE version_heads (
    surface TEXT NOT NULL, thread_key TEXT NOT NULL, version INTEGER NOT NULL, updated_at REAL NOT NULL,
    PRIMARY KEY (surface, thread_key)
)
""",
    """
    CREATE TABLE user_defaults (tenant TEXT NOT NULL, user_key TEXT NOT NULL, flags TEXT NOT NULL,
                                updated_at REAL NOT NULL, PRIMARY KEY (tenant, user_key));
    CREATE TABLE tenant_policy (tenant TEXT PRIMARY KEY, banned TEXT NOT NULL DEFAULT '[]', nsfw TEXT,
                                tier TEXT, provider TEXT, updated_at REAL NOT NULL);
    """,
    """CREATE INDEX jobs_requester ON jobs(surface, workspace_id, user_id, created_at)""",
]

POSTGRES: list[str] = [
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
    """
    ALTER TABLE jobs ADD COLUMN owner TEXT;
    ALTER TABLE jobs ADD COLUMN lease_until DOUBLE PRECISION;
    CREATE TABLE seen_events (key TEXT PRIMARY KEY, seen_at DOUBLE PRECISION NOT NULL);
    CREATE INDEX seen_events_at ON seen_events(seen_at);
    """,
    """
CREATE TABLE subjects (
    tenant TEXT NOT NULL, name TEXT NOT NULL, name_key TEXT NOT NULL, creator TEXT NOT NULL,
    media TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (tenant, name_key)
)
""",
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
    """
    CREATE TABLE user_defaults (tenant TEXT NOT NULL, user_key TEXT NOT NULL, flags TEXT NOT NULL,
                                updated_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (tenant, user_key));
    CREATE TABLE tenant_policy (tenant TEXT PRIMARY KEY, banned TEXT NOT NULL DEFAULT '[]', nsfw TEXT,
                                tier TEXT, provider TEXT, updated_at DOUBLE PRECISION NOT NULL);
    """,
    """CREATE INDEX jobs_requester ON jobs(surface, workspace_id, user_id, created_at)""",
]
