"""`hidream-bot db copy`: a SQLite install's database moves into PostgreSQL, and the PostgreSQL store
then answers every question the bot asks exactly as the SQLite store did: quotas, jobs (an unfinished
one still resumable), media bytes, posts, the media-links secret and the Slack installation. A copy
into a database that holds jobs, a bad URL or a failure half-way changes nothing in the target."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import asyncpg

from bot.jobs.quota_policy import POLICY
from bot.model.jobs import Job, JobState, LedgerState
from storage.installations import BotInstall, Installations
from storage.postgres import PostgresStore
from storage.replicas import replicas_for
from storage.sqlite import SqliteStore
from storage.store import Store
from tests.support.jobs import NOW, make_job
from tests.support.processes import Cli
from tests.support.sealing import SEALER
from tests.support.store_backends import postgres_url, raw_job

TENANT = "test:w1"
USERS = ("test:u1", "test:u2", "test:u3", "test:u4")
IMAGE = bytes(range(256)) * 40  # 10 KiB, every byte value
RESULT = b"\x89PNG\r\n\x1a\n" + b"\x00\xff" * 3000
PASSWORD = "Sup3r-Secret-Pw"
INSTALL = BotInstall(
    enterprise_id="E1",
    team_id="T1",
    bot_token="xoxb-1-copied-token",
    app_id="A1",
    bot_id="B1",
    bot_user_id="UBOT",
    bot_scopes="chat:write,commands",
    bot_refresh_token="xoxe-1-refresh",
    bot_token_expires_at=1_800_000_000,
    is_enterprise_install=False,
    installed_at=NOW - 60,
)


async def _fill(path: Path) -> dict[str, Any]:
    """A SQLite database as a one-machine install leaves it; the ids of what it holds."""
    async with SqliteStore(path, policy=POLICY, default_limit=25, clock=lambda: NOW) as store:
        await store.secret("media-links")
        ref = await store.put_media(IMAGE, "image/png", 64, 40)
        out = await store.put_media(RESULT, "image/jpeg", 640, 480, nsfw=True)
        delivered = make_job(n=2)
        delivered.reference_media, delivered.cost_usd = [ref], 0.08
        await store.admit(delivered, workspace_key=TENANT, dedup_key="dedup-delivered")
        for state, fields in (
            (JobState.SUBMITTING, {}),
            (JobState.RUNNING, {"provider_job_id": "p-1"}),
            (JobState.COMPLETED, {"result_media": [out]}),
            (JobState.DELIVERING, {}),
            (JobState.DELIVERED, {}),
        ):
            assert await store.transition(delivered.id, state, **fields)
        failed = make_job(user="u2")
        await store.admit(failed, workspace_key=TENANT, dedup_key=None)
        assert await store.transition(failed.id, JobState.FAILED, error="the provider refused it")
        running = make_job(user="u3", n=3)
        running.cost_usd = 0.12
        await store.admit(running, workspace_key=TENANT, dedup_key=None)
        assert await store.transition(running.id, JobState.SUBMITTING)
        assert await store.transition(running.id, JobState.RUNNING, provider_job_id="p-3")
        assert await store.record_callback(running.id, {"state": "running", "progress": 0.5})
        assert await replicas_for(store).claim(running.id, 3600)  # this machine was working it
        queued = make_job(user="u4")
        await store.admit(queued, workspace_key="test:w2", dedup_key=None)
        await store.set_limit(TENANT, "members", "", 10, by="admin")
        await store.set_limit("*", "user", "test:u2", 7, by="operator")
        await store.set_limit(TENANT, "ceiling", "", 50, by="operator")
        await store.grant(TENANT, "test:u1", 3)
        await store.grant(TENANT, "test:u3", 2)
        await store.set_budget(TENANT, 40.0)
        await store.record_posts(delivered.id, "test", [("m1", "t1"), ("m2", "t1")])
        await store.remember_post(failed.id, "test", "m3", "t1")
        await store.remember_post(running.id, "test", "m4", None)
        installs = Installations(store, SEALER)
        await installs.save(INSTALL)
        await installs.issue_state("state-1", NOW + 600)
    return {"jobs": [delivered.id, failed.id, running.id, queued.id], "media": [ref, out]}


async def _answers(store: Store, ids: dict[str, Any]) -> dict[str, Any]:
    """Everything the bot asks a store about what `_fill` made, as the store answers it."""
    jobs: list[Job | None] = [await store.job(job_id) for job_id in ids["jobs"]]
    return {
        "jobs": jobs,
        "callbacks": [await store.callback_status(job_id) for job_id in ids["jobs"]],
        "by_dedup": await store.job_by_dedup("dedup-delivered"),
        "by_token": [await store.job_by_token(j.callback_token) for j in jobs if j is not None],
        "unfinished": [(j.id, j.state) for j in await store.unfinished_jobs()],
        "quota": [await store.quota(user, tenant) for user in (*USERS, "") for tenant in (TENANT, "test:w2")],
        "limits": [await store.limits(tenant) for tenant in (TENANT, "*")],
        "spend": [await store.spend(u, scope="user") for u in USERS]
        + [await store.spend(TENANT, scope="workspace")],
        "tenants": [await store.tenants_of(u) for u in USERS],
        "media": [await store.media(media_id) for media_id in ids["media"]],
        "posts": [await store.posts_of(job_id, "test") for job_id in ids["jobs"]],
        "post_jobs": [await store.job_for_post("test", key) for key in ("m1", "m2", "m3", "m4")],
        "thread": await store.latest_job_in_thread("test", "t1"),
        "secret": await store.secret("media-links"),
        "install": await Installations(store, SEALER).find("E1", "T1"),
    }


async def _on_postgres(url: str, ids: dict[str, Any]) -> dict[str, Any]:
    async with PostgresStore(url, policy=POLICY, default_limit=25, clock=lambda: NOW) as store:
        return await _answers(store, ids)


async def _on_sqlite(path: Path, ids: dict[str, Any]) -> dict[str, Any]:
    async with SqliteStore(path, policy=POLICY, default_limit=25, clock=lambda: NOW) as store:
        return await _answers(store, ids)


async def _counts(url: str) -> dict[str, int]:
    """Rows per table in the target, read with a plain connection."""
    db = await asyncpg.connect(url, timeout=5)
    try:
        tables = await db.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        )
        return {
            str(t[0]): int(await db.fetchval(f'SELECT count(*) FROM "{t[0]}"'))
            for t in tables
            if t[0] != "schema_version"
        }
    finally:
        await db.close()


async def _trial_start(url: str) -> bytes:
    """What a replica started once on the empty database leaves: a media-links secret of its own."""
    async with PostgresStore(url, policy=POLICY, default_limit=25) as store:
        return await store.secret("media-links")


def test_a_copy_answers_every_question_as_sqlite_did(
    tmp_path: Path,
    cli: Cli,
    postgres_database: str | BaseException,
) -> None:
    url = postgres_url(postgres_database)
    ids = asyncio.run(_fill(tmp_path / "bot.db"))
    before = asyncio.run(_on_sqlite(tmp_path / "bot.db", ids))
    their_secret = asyncio.run(_trial_start(url))
    assert their_secret != before["secret"]

    copied = cli("db", "copy", "--to", url)
    assert copied.returncode == 0, copied.stderr
    for line in ("jobs", "4 row(s)"), ("ledger", "4 row(s)"), ("grants", "2 row(s)"), ("posts", "4 row(s)"):
        assert any(line[0] in out and line[1] in out for out in copied.stdout.splitlines()), copied.stdout
    assert f"images: 2, {(len(IMAGE) + len(RESULT)) / 1_000_000:.2f} MB" in copied.stdout

    after = asyncio.run(_on_postgres(url, ids))
    assert after == before
    # Not equal by being empty: the answers are the ones _fill made.
    delivered, failed, running, queued = after["jobs"]
    assert delivered is not None and delivered.state == JobState.DELIVERED and delivered.cost_usd == 0.08
    assert failed is not None and failed.error == "the provider refused it"
    assert after["media"][0].data == IMAGE and after["media"][1].data == RESULT and after["media"][1].nsfw
    assert after["post_jobs"][0] == delivered and after["thread"] == delivered
    assert after["posts"][0] == ["m1", "m2"]
    assert after["install"] == INSTALL
    assert after["quota"][0].granted == 3 and after["quota"][0].ceiling == 50 and after["quota"][0].used == 2
    assert after["quota"][0].budget_usd == 40.0 and after["secret"] != their_secret
    assert after["unfinished"] == [(running.id, JobState.RUNNING), (queued.id, JobState.QUEUED)]
    assert after["callbacks"][2] == {"state": "running", "progress": 0.5}


async def _resume(url: str, ids: dict[str, Any]) -> tuple[list[str], int, int]:
    """Finish the copied running job and start the queued one on PostgreSQL, as a replica would."""
    _, _, running, queued = ids["jobs"]
    async with PostgresStore(url, policy=POLICY, default_limit=25, clock=lambda: NOW) as store:
        row, ledger = await raw_job(store, running)
        assert ledger == LedgerState.RESERVED
        assert row["owner"] is None and row["lease_until"] is None  # nobody's: any replica takes it up
        assert await store.transition(running, JobState.COMPLETED, result_media=["r"])
        assert await store.transition(running, JobState.DELIVERING)
        assert await store.transition(running, JobState.DELIVERED)
        assert await store.transition(queued, JobState.SUBMITTING)
        assert not await store.transition(queued, JobState.DELIVERED)  # guards hold as before
        assert await Installations(store, SEALER).consume_state("state-1")
        spent, _ = await store.spend("test:u3", scope="user")
        return (
            [j.id for j in await store.unfinished_jobs()],
            spent,
            (await store.quota("test:u3", TENANT)).used,
        )


def test_a_copied_unfinished_job_resumes_and_a_second_copy_is_refused(
    tmp_path: Path,
    cli: Cli,
    postgres_database: str | BaseException,
) -> None:
    url = postgres_url(postgres_database)
    ids = asyncio.run(_fill(tmp_path / "bot.db"))
    assert cli("db", "copy", "--to", url).returncode == 0
    unfinished, spent, used = asyncio.run(_resume(url, ids))
    assert unfinished == [ids["jobs"][3]]
    assert (spent, used) == (3, 3)  # the reservation made on SQLite is committed on PostgreSQL

    held = asyncio.run(_counts(url))
    # The target named by HIDREAM_DATABASE_URL, as a replica's settings name it.
    again = cli("db", "copy", HIDREAM_DATABASE_URL=url)
    assert again.returncode == 2
    assert again.stderr.strip() == (
        "hidream-bot db copy: the PostgreSQL database already holds 4 jobs; copy into an empty one"
    )
    assert asyncio.run(_counts(url)) == held


def test_bad_targets_are_refused_without_their_password(
    tmp_path: Path,
    cli: Cli,
    postgres_database: str | BaseException,
) -> None:
    asyncio.run(_fill(tmp_path / "bot.db"))
    cases = {
        f"postgresql://postgres:{PASSWORD}@127.0.0.1:1/nowhere": "cannot open postgresql://127.0.0.1:1/nowhere: ",
        f"postgresql://postgres:{PASSWORD}@127.0.0.1:port/nowhere": "cannot open postgresql://127.0.0.1:5432/nowhere",
        f"mysql://root:{PASSWORD}@127.0.0.1/bot": "--to must be a postgresql:// URL",
    }
    for target, said in cases.items():
        refused = cli("db", "copy", "--to", target, HIDREAM_LOG_LEVEL="DEBUG")
        assert refused.returncode == 2, target
        assert said in refused.stderr, refused.stderr
        assert PASSWORD not in refused.stdout + refused.stderr
        assert "Traceback" not in refused.stderr
    nothing = cli("db", "copy")
    assert nothing.returncode == 2
    assert "give --to postgresql://" in nothing.stderr
    url = postgres_url(postgres_database)
    missing = cli("db", "copy", "--to", url, HIDREAM_DB_PATH=str(tmp_path / "none.db"))
    assert missing.returncode == 2
    assert "HIDREAM_DB_PATH: there is no SQLite database at" in missing.stderr
    assert not (tmp_path / "none.db").exists()


def test_a_failure_half_way_leaves_the_target_unchanged(
    tmp_path: Path,
    cli: Cli,
    postgres_database: str | BaseException,
) -> None:
    url = postgres_url(postgres_database)
    asyncio.run(_fill(tmp_path / "bot.db"))
    with sqlite3.connect(tmp_path / "bot.db") as db:
        # A value SQLite's loose typing kept that PostgreSQL's column cannot take; posts come after jobs.
        db.execute("UPDATE posts SET created_at='yesterday' WHERE message_key='m4'")
    failed = cli("db", "copy", "--to", url)
    assert failed.returncode == 2
    assert "copying posts failed" in failed.stderr
    assert "nothing was written to postgresql://" in failed.stderr
    counts = asyncio.run(_counts(url))
    assert counts["jobs"] == 0 and counts  # the tables exist (migrated) but hold nothing
    assert set(counts.values()) == {0}
