"""The schema of both databases, as the one list of migrations that builds it: the store applies those
it has not applied yet, each in its own transaction, and records the version reached. They are
written in SQLite's types; storage/dialects.py substitutes PostgreSQL's. One step is for databases
that keep image bytes in files only (MEDIA_TO_FILES: the files strategy skips nothing, the rows
strategy skips it), and two for PostgreSQL only (MEDIA_DATA_OPTIONAL, MEDIA_DATA_EXTERNAL, which SQLite
skips).

The numbering is SQLite's own from before the list was one. PostgreSQL had a list of its own (its
migration 1 was SQLite's state at 3, and it had no MEDIA_TO_FILES): a PostgreSQL database made by
that release is renumbered once, in place (`POSTGRES_NUMBERING`), and marked as numbered here."""

from __future__ import annotations

from collections.abc import Callable, Collection
from contextlib import AbstractAsyncContextManager

from storage.connections import Queries

# Limits, grants and counts by tenant (storage/quota.py). Old per-user limits named no tenant and may
# have been set by any server's admin: a block (0) is kept, as an operator's in every tenant, so an
# upgrade never lets a blocked user back in; raises and grants are not carried over.
TENANTS = """
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
"""

INSTALLATIONS = """
CREATE TABLE slack_installations (
    enterprise_id TEXT NOT NULL DEFAULT '', team_id TEXT NOT NULL DEFAULT '',
    app_id TEXT NOT NULL DEFAULT '', bot_id TEXT NOT NULL DEFAULT '', bot_user_id TEXT NOT NULL DEFAULT '',
    bot_token TEXT NOT NULL, bot_scopes TEXT NOT NULL DEFAULT '', bot_refresh_token TEXT,
    bot_token_expires_at INTEGER, is_enterprise_install INTEGER NOT NULL DEFAULT 0, installed_at REAL NOT NULL,
    PRIMARY KEY (enterprise_id, team_id)
);
CREATE INDEX slack_installations_team ON slack_installations(team_id);
CREATE TABLE slack_oauth_states (state TEXT PRIMARY KEY, expires_at REAL NOT NULL)
"""

# PostgreSQL's media rows kept the bytes in `data` (NOT NULL); with an object store they do not. SQLite's
# media rows lost that column at MEDIA_TO_FILES: the files strategy skips this step.
MEDIA_DATA_OPTIONAL = "ALTER TABLE media ALTER COLUMN data DROP NOT NULL"
# PostgreSQL only, like MEDIA_DATA_OPTIONAL: the media rows' bytes (already compressed images, PNG, JPEG,
# WebP) are stored out of line as they are, never run through pglz first. Trying to compress each 2 MB
# result cost the server about 44 ms of CPU and made nothing smaller (issue 23, docs/benchmarks.md).
# Rows written before keep their storage; the setting applies to every row written after.
MEDIA_DATA_EXTERNAL = "ALTER TABLE media ALTER COLUMN data SET STORAGE EXTERNAL"

# Saved subjects (storage/subjects.py). `media` is a JSON array of media ids.
SUBJECTS = """
CREATE TABLE subjects (
    tenant TEXT NOT NULL, name TEXT NOT NULL, name_key TEXT NOT NULL, creator TEXT NOT NULL,
    media TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (tenant, name_key)
)
"""

LEASES = """
ALTER TABLE jobs ADD COLUMN owner TEXT;
ALTER TABLE jobs ADD COLUMN lease_until REAL;
CREATE TABLE seen_events (key TEXT PRIMARY KEY, seen_at REAL NOT NULL);
CREATE INDEX seen_events_at ON seen_events(seen_at)
"""

# Image bytes move out of the rows into files (storage/media.py). A migration is SQL only, and files
# cannot be written from SQL, so this one sets the bytes aside: the old table, bytes and all, becomes
# MEDIA_MOVING, and a new `media` table takes every row's description. The store then writes each
# set-aside image to its file and deletes it from MEDIA_MOVING, one per transaction, before it
# answers any call (storage/sqlite.py, `move_out_of_rows`); a crash in between resumes at the next open, and
# rewriting a file that was already written is harmless. Nothing is copied but the small columns,
# so the upgrade never needs room for a second copy of the images inside the database.
MEDIA_MOVING = "media_moving"
MEDIA_TO_FILES = f"""
ALTER TABLE media RENAME TO {MEDIA_MOVING};
DROP INDEX media_used;
CREATE TABLE media (id TEXT PRIMARY KEY, content_type TEXT NOT NULL, width INTEGER NOT NULL,
                    height INTEGER NOT NULL, nsfw INTEGER NOT NULL DEFAULT 0, created_at REAL NOT NULL,
                    used_at REAL);
INSERT INTO media (id, content_type, width, height, nsfw, created_at, used_at)
    SELECT id, content_type, width, height, nsfw, created_at, used_at FROM {MEDIA_MOVING};
CREATE INDEX media_used ON media(used_at)
"""

# Versions of a result thread (storage/versions.py): each delivered job in a thread gets the next
# number there; a thread's head is the version its next instruction edits (`undo` moves it back).
VERSIONS = """
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
"""

# Cost by channel and project, and the audit export (storage/costs.py, storage/audit.py): each job
# records the channel it was asked in and its project (jobs made before this have both empty), and
# its ledger row the project, so a project's month is summed under the tenant's lock as the tenant's
# is; a channel's default project and a project's monthly budget, both per tenant; whether a tenant
# withholds prompts from the export. Jobs by creation time, for a date range's report or export.
TEAMS_COSTS = """
ALTER TABLE jobs ADD COLUMN channel TEXT NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN project TEXT NOT NULL DEFAULT '';
ALTER TABLE ledger ADD COLUMN project TEXT NOT NULL DEFAULT '';
CREATE INDEX jobs_created ON jobs(created_at);
CREATE INDEX ledger_tenant_project_day ON ledger(workspace_key, project, day);
CREATE TABLE channel_projects (tenant TEXT NOT NULL, channel TEXT NOT NULL, project TEXT NOT NULL,
                               updated_at REAL NOT NULL, PRIMARY KEY (tenant, channel));
CREATE TABLE project_budgets (tenant TEXT NOT NULL, project TEXT NOT NULL, monthly_usd REAL NOT NULL,
                              PRIMARY KEY (tenant, project));
ALTER TABLE tenant_policy ADD COLUMN withhold_prompts INTEGER NOT NULL DEFAULT 0
"""


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
    # 2: limits, grants and counts belong to tenants (see TENANTS above).
    TENANTS,
    # 3: retention: a media row's age counts from its last use (stored, or given to a new job), so an
    # image a new job still uses is not deleted under it; finished jobs whose bulky columns are not
    # yet cleared are found by their own index (storage/retention.py).
    """
    ALTER TABLE media ADD COLUMN used_at REAL;
    UPDATE media SET used_at = created_at;
    CREATE INDEX media_used ON media(used_at);
    CREATE INDEX jobs_bulky ON jobs(updated_at) WHERE origin != '{}' OR callback_status IS NOT NULL;
    """,
    # 4: installs by OAuth: one bot token per workspace (or per organisation of workspaces), and the
    # one-use `state` values of installs under way (storage/installations.py).
    INSTALLATIONS,
    # 5: several replicas (storage/replicas.py): the replica working a job and until when its lease
    # holds; platform events already handled, so a resend reaching any replica is dropped.
    LEASES,
    # 6: image bytes leave the database for files (storage/media.py); see MEDIA_TO_FILES above.
    MEDIA_TO_FILES,
    # 7: saved subjects (storage/subjects.py): a tenant's named images, which retention spares.
    SUBJECTS,
    # 8: versions of a result thread and each thread's current one; see VERSIONS above.
    VERSIONS,
    # 9: personal defaults per (tenant, user) and each tenant's policy (storage/preferences.py).
    """
    CREATE TABLE user_defaults (tenant TEXT NOT NULL, user_key TEXT NOT NULL, flags TEXT NOT NULL,
                                updated_at REAL NOT NULL, PRIMARY KEY (tenant, user_key));
    CREATE TABLE tenant_policy (tenant TEXT PRIMARY KEY, banned TEXT NOT NULL DEFAULT '[]', nsfw TEXT,
                                tier TEXT, provider TEXT, updated_at REAL NOT NULL);
    """,
    # 10: a person's recent jobs in a workspace (a surface's home view, storage/history.py) by index.
    "CREATE INDEX jobs_requester ON jobs(surface, workspace_id, user_id, created_at)",
    # 11: subject storage bounded (storage/subjects.py): each subject's bytes, counted against its
    # tenant's budget (NULL: saved before this, measured when next needed), and its last use, which
    # retention reads.
    """
    ALTER TABLE subjects ADD COLUMN bytes BIGINT;
    ALTER TABLE subjects ADD COLUMN used_at REAL;
    UPDATE subjects SET used_at = created_at;
    CREATE INDEX subjects_used ON subjects(used_at)
    """,
    # 12: fencing (storage/fencing.py): each claim of a job stamps its row with the next generation,
    # which a replica's every platform write compares; a job admitted with a lease holds generation 0.
    "ALTER TABLE jobs ADD COLUMN lease_gen INTEGER NOT NULL DEFAULT 0",
    # 13: with an object store (storage/objects.py) a media row keeps the size and the SHA-256 of the
    # bytes its object holds (NULL where the bytes are a file or the row's own column).
    """
    ALTER TABLE media ADD COLUMN size BIGINT;
    ALTER TABLE media ADD COLUMN sha256 TEXT
    """,
    # 14: PostgreSQL's media rows may then hold no bytes; see MEDIA_DATA_OPTIONAL above.
    MEDIA_DATA_OPTIONAL,
    # 15: cost by channel and project, and the audit export; see TEAMS_COSTS above.
    TEAMS_COSTS,
    # 16 (sets): a set of jobs waiting for its requester's confirmation (storage/sets.py): the
    # requests as JSON, kept until confirmed once or too old.
    """
    CREATE TABLE pending_sets (id TEXT PRIMARY KEY, surface TEXT NOT NULL, tenant TEXT NOT NULL,
                               user_id TEXT NOT NULL, payload TEXT NOT NULL, created_at REAL NOT NULL);
    CREATE INDEX pending_sets_created ON pending_sets(created_at)
    """,
    # 17: what operators did from the moderation view (storage/reports.py): deleted an image, blocked
    # a person in a tenant or everywhere.
    """
    CREATE TABLE moderation_actions (id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL,
                                     action TEXT NOT NULL, job_id TEXT, tenant TEXT NOT NULL,
                                     user_key TEXT NOT NULL, detail TEXT NOT NULL DEFAULT '');
    CREATE INDEX moderation_actions_at ON moderation_actions(at)
    """,
    # 18: whether a tenant's admins let its prompts be written into its images' content credentials
    # (storage/preferences.py; bot/jobs/credentials.py); off unless they say so.
    "ALTER TABLE tenant_policy ADD COLUMN credentials_prompt INTEGER NOT NULL DEFAULT 0",
    # 19: style kits (storage/kits.py): every version of a tenant's named kits (a delete hides the
    # name, its versions stay for the jobs that used them), and the kit each channel is bound to.
    """
    CREATE TABLE kits (tenant TEXT NOT NULL, name TEXT NOT NULL, name_key TEXT NOT NULL,
                       version INTEGER NOT NULL, prefix TEXT NOT NULL DEFAULT '',
                       suffix TEXT NOT NULL DEFAULT '', negative TEXT NOT NULL DEFAULT '',
                       subject TEXT NOT NULL DEFAULT '', flags TEXT NOT NULL DEFAULT '{}',
                       created_by TEXT NOT NULL, created_at REAL NOT NULL,
                       deleted INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (tenant, name_key, version));
    CREATE TABLE kit_bindings (tenant TEXT NOT NULL, channel TEXT NOT NULL, name_key TEXT NOT NULL,
                               updated_at REAL NOT NULL, PRIMARY KEY (tenant, channel))
    """,
    # 20: approvals (storage/approvals.py): a tenant's reviewed channels (who reviews, where their
    # queue is) and each reviewed job's approval (pending, approved or rejected; by whom, why, when;
    # since when a press has been posting it, and the approved post's message once it is out).
    """
    CREATE TABLE reviewed_channels (tenant TEXT NOT NULL, channel TEXT NOT NULL, reviewers TEXT NOT NULL,
                                    queue TEXT NOT NULL, updated_at REAL NOT NULL,
                                    PRIMARY KEY (tenant, channel));
    CREATE TABLE approvals (job_id TEXT PRIMARY KEY, tenant TEXT NOT NULL, channel TEXT NOT NULL,
                            state TEXT NOT NULL, reviewers TEXT NOT NULL, queued INTEGER NOT NULL DEFAULT 0,
                            decided_by TEXT NOT NULL DEFAULT '', reason TEXT NOT NULL DEFAULT '',
                            posted TEXT NOT NULL DEFAULT '', posting_at REAL, created_at REAL NOT NULL,
                            decided_at REAL);
    CREATE INDEX approvals_state ON approvals(state, created_at)
    """,
    # 21: PostgreSQL's media bytes stored without a compression attempt; see
    # MEDIA_DATA_EXTERNAL above.
    MEDIA_DATA_EXTERNAL,
    # 22: the channel a job asked in a thread belongs to (the thread's parent, where a platform's
    # threads are channels of their own), whose policies hold for it and for what is made from it (a
    # region edit's review); empty when it was asked in the channel itself, and for jobs made before.
    "ALTER TABLE jobs ADD COLUMN home_channel TEXT NOT NULL DEFAULT ''",
]

# A PostgreSQL database's version in its former list -> the same schema's version in this one.
POSTGRES_NUMBERING = {1: 3, 2: 4, 3: 5, 4: 7, 5: 8, 6: 9, 7: 10}
_POSTGRES_MARK = (
    "ALTER TABLE schema_version ADD COLUMN IF NOT EXISTS numbering TEXT NOT NULL DEFAULT 'postgres'",
    "ALTER TABLE schema_version ALTER COLUMN numbering SET DEFAULT 'one list'",
)


async def version_of(db: Queries) -> int:
    """The version a database has reached in this list (renumbering a former PostgreSQL one)."""
    await db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    if db.dialect.name != "postgres":
        row = await db.fetchrow("SELECT version FROM schema_version")
        return int(row[0]) if row else 0
    for statement in _POSTGRES_MARK:
        await db.execute(statement)
    row = await db.fetchrow("SELECT version, numbering FROM schema_version")
    if row is None:
        return 0
    version = int(row[0])
    if row[1] == "postgres":
        version = POSTGRES_NUMBERING[version]
        await db.execute("UPDATE schema_version SET version=?, numbering='one list'", version)
    return version


async def migrate(
    db: Queries,
    transaction: Callable[[], AbstractAsyncContextManager[Queries]],
    *,
    skip: Collection[str] = (),
) -> None:
    """Apply the migrations `db` has not had, each in its own transaction; those in `skip` (steps of
    another media strategy) only count."""
    version = await version_of(db)
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        async with transaction() as tx:
            if script not in skip:
                for statement in filter(str.strip, tx.dialect.types(script).split(";")):
                    await tx.execute(statement)
            await tx.execute("DELETE FROM schema_version")
            await tx.execute("INSERT INTO schema_version (version) VALUES (?)", number)
