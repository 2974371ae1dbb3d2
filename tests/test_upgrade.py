"""Databases made by the release before the one store (SQLite at migration 10, PostgreSQL at its own 7)
open with this code and upgrade in place: built here with that release's schema
(tests/support/previous_release.py) and the rows it wrote for a delivered console job with one result
image, then a running bot edits and rerolls that image. Also: a PostgreSQL database at any version of
its former list reaches the same schema as a new one."""

from __future__ import annotations

import io
import json
import secrets
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from adapters.console import ConsoleChat
from bot.app import Bot
from bot.jobs.quota_policy import POLICY
from bot.model.jobs import Job, JobState
from bot.model.requests import ImageRequest
from bot.usecases.actor import Actor
from bot.usecases.remake import remake
from storage.migrations import MIGRATIONS
from storage.postgres import PostgresStore
from storage.quota import utc_day
from tests.support.harness import BotHarness
from tests.support.previous_release import POSTGRES, SQLITE
from tests.support.slack_support import png
from tests.support.store_backends import postgres_url

# Up to an hour ago, and today (UTC): recent enough that retention keeps its image, and on the day the
# test's own jobs are charged to, so that the quota counts all three together (an hour before a run in
# the first hour after midnight was yesterday's).
NOW = max(time.time() - 3600, time.time() // 86400 * 86400)
JOB_ID = "3f2a9c1e" + "0" * 24
MEDIA_ID = "oldResultImage0123456_"
IMAGE = png("red", (64, 48))
TENANT = "console:local"


def _rows() -> list[tuple[str, tuple[Any, ...]]]:
    """What the previous release kept for one delivered console job: its row, its committed ledger
    row, its result image's row (without bytes: those are the backend's own) and its post."""
    request = ImageRequest(prompt="a red fox in snow", n=1, seed=7).model_dump_json()
    origin = json.dumps({"surface": "console", "user_id": "local", "workspace_id": "local"})
    job = (
        "INSERT INTO jobs (id, surface, user_id, workspace_id, origin, request, tier, provider, state, "
        "callback_token, provider_job_id, result_media, seed, cost_usd, created_at, updated_at, deadline) "
        "VALUES (?, 'console', 'local', 'local', ?, ?, 'full', 'sandbox', 'delivered', ?, 'sb-1', ?, 7, 0, ?, ?, ?)"
    )
    return [
        (
            job,
            (JOB_ID, origin, request, secrets.token_urlsafe(16), json.dumps([MEDIA_ID]), NOW, NOW, NOW + 900),
        ),
        (
            "INSERT INTO ledger (job_id, user_key, workspace_key, day, images, state, cost_usd, created_at) "
            "VALUES (?, 'console:local', ?, ?, 1, 'committed', 0, ?)",
            (JOB_ID, TENANT, utc_day(NOW), NOW),
        ),
        (
            "INSERT INTO posts (surface, message_key, job_id, thread_key, created_at) VALUES ('console', ?, ?, NULL, ?)",
            (f"console-{JOB_ID}", JOB_ID, NOW),
        ),
    ]


def previous_sqlite(path: Path) -> None:
    db = sqlite3.connect(path)
    for script in SQLITE:
        db.executescript(script)
    db.executescript(
        "CREATE TABLE schema_version (version INTEGER NOT NULL); INSERT INTO schema_version VALUES (10);"
    )
    for sql, args in _rows():
        db.execute(sql, args)
    db.execute(
        "INSERT INTO media (id, content_type, width, height, nsfw, created_at, used_at) VALUES (?, 'image/png', 64, 48, 0, ?, ?)",
        (MEDIA_ID, NOW, NOW),
    )
    db.commit()
    db.close()
    folder = Path(f"{path}.media")  # the files beside the database, named by the hex of the id
    folder.mkdir(mode=0o700)
    (folder / MEDIA_ID.encode("ascii").hex()).write_bytes(IMAGE)


async def previous_postgres(url: str, scripts: list[str] = POSTGRES, rows: bool = True) -> None:
    db = await asyncpg.connect(url)
    try:
        for script in scripts:
            await db.execute(script)
        await db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        await db.execute("INSERT INTO schema_version VALUES ($1)", len(scripts))
        if not rows:
            return
        for sql, args in _rows():
            count = iter(range(1, 99))
            await db.execute("".join(f"${next(count)}" if c == "?" else c for c in sql), *args)
        await db.execute(
            "INSERT INTO media (id, data, content_type, width, height, nsfw, created_at, used_at) "
            "VALUES ($1, $2, 'image/png', 64, 48, FALSE, $3, $3)",
            *(MEDIA_ID, IMAGE, NOW),
        )
    finally:
        await db.close()


def console(tmp_path: Path) -> tuple[list[ConsoleChat], Callable[[Bot], ConsoleChat]]:
    made: list[ConsoleChat] = []

    def factory(bot: Bot) -> ConsoleChat:
        made.append(
            ConsoleChat(bot.engine, tmp_path / "out", out=io.StringIO(), err=io.StringIO(), runner=bot.runner)
        )
        return made[0]

    return made, factory


async def edit_and_reroll(tmp_path: Path, env: dict[str, Any]) -> None:
    made, factory = console(tmp_path)
    async with BotHarness(tmp_path, env, [factory]) as bot:
        assert await bot.store.schema_version() == len(MIGRATIONS)
        old = await bot.engine.job(JOB_ID)
        assert old is not None and old.state is JobState.DELIVERED and old.result_media == [MEDIA_ID]
        kept = await bot.store.media(MEDIA_ID)
        assert kept is not None and kept.data == IMAGE
        chat = made[0]
        await chat.handle(f"/edit {JOB_ID[:8]} make it night")
        await bot.runner.wait_idle()
        edit = await bot.engine.job(chat.last_job_id or "")
        assert edit is not None and edit.id != JOB_ID
        assert (edit.mode, edit.reference_media, edit.parent_job_id) == ("edit", [MEDIA_ID], JOB_ID)
        assert edit.state is JobState.DELIVERED
        presser = Actor(surface=old.surface, workspace_id=old.workspace_id, user_id="local")
        again = await remake(bot.engine, presser, old, vary=False, origin=old.origin)
        await bot.runner.wait_idle()
        rerolled = await bot.engine.job(again.id)
        assert (
            rerolled is not None and rerolled.state is JobState.DELIVERED and rerolled.parent_job_id == JOB_ID
        )
        assert rerolled.request.prompt == old.request.prompt and rerolled.seed != old.seed
        # Both charged to the tenant the old job's usage is in, beside it.
        status = await bot.store.quota("console:local", TENANT)
        assert status.used == 3
        for job in (edit, rerolled):
            assert await _image_of(bot, job) is not None


async def _image_of(bot: Bot, job: Job) -> bytes | None:
    stored = await bot.store.media(job.result_media[0])
    return None if stored is None else stored.data


async def test_a_sqlite_database_of_the_previous_release_upgrades_and_its_image_is_edited_and_rerolled(
    tmp_path: Path,
) -> None:
    previous_sqlite(tmp_path / "bot.db")
    await edit_and_reroll(tmp_path, {"HIDREAM_DB_PATH": str(tmp_path / "bot.db")})


async def test_a_postgres_database_of_the_previous_release_upgrades_and_its_image_is_edited_and_rerolled(
    tmp_path: Path, pg_url: str
) -> None:
    await previous_postgres(pg_url)
    await edit_and_reroll(tmp_path, {"HIDREAM_DATABASE_URL": pg_url})


async def _columns(url: str) -> set[tuple[str, str, str]]:
    db = await asyncpg.connect(url)
    try:
        rows = await db.fetch(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name != 'schema_version'"
        )
    finally:
        await db.close()
    return {(r[0], r[1], r[2]) for r in rows}


@pytest.fixture
def fresh(postgres_database: str | BaseException) -> str:
    """A second fresh schema, for a database made new by this code."""
    return postgres_url(postgres_database)


@pytest.mark.parametrize("version", range(1, len(POSTGRES) + 1))
async def test_a_postgres_database_at_any_former_version_reaches_the_schema_of_a_new_one(
    version: int, pg_url: str, fresh: str
) -> None:
    async with PostgresStore(fresh, policy=POLICY, default_limit=5):
        pass
    await previous_postgres(pg_url, POSTGRES[:version], rows=False)
    async with PostgresStore(pg_url, policy=POLICY, default_limit=5) as store:
        assert await store.schema_version() == len(MIGRATIONS)
    async with PostgresStore(pg_url, policy=POLICY, default_limit=5) as store:  # and once only
        assert await store.schema_version() == len(MIGRATIONS)
    assert await _columns(pg_url) == await _columns(fresh)
