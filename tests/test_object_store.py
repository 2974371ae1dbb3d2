"""HIDREAM_MEDIA_URL names an object store (here the local S3 server of tests/support/s3.py): on either
backend, a job's results, an edit's reference and a subject's images go into the bucket, and the
database keeps only their rows (id, size, SHA-256): no file beside SQLite, no bytes in PostgreSQL's
rows. Media links stream the object through the bot, or redirect to a presigned URL of the store with
HIDREAM_MEDIA_REDIRECT; retention deletes the objects; `db copy` moves a SQLite install's images into
the store, into PostgreSQL or beside SQLite."""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
import time
import urllib.parse
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from bot.app import Bot
from storage.objects import ObjectBytes, ObjectStoreConfig
from storage.postgres import PostgresStore
from storage.retention import sweeps_for
from storage.sqlite import SqliteStore
from tests.fakes.discord_harness import png
from tests.support.console import Console
from tests.support.harness import BotHarness
from tests.support.processes import Cli
from tests.support.s3 import ACCESS_KEY, REGION, SECRET_KEY, S3Server, client, create_bucket, keys
from tests.support.store_backends import postgres_url

PREFIX = "media"


@pytest.fixture(params=["sqlite", "postgres"])
def database_env(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The settings of the test's backend: SQLite (the default) or a PostgreSQL schema of its own."""
    if request.param == "postgres":
        return {"HIDREAM_DATABASE_URL": postgres_url(request.getfixturevalue("postgres_database"))}
    return {}


async def _media_rows(bot: Bot) -> dict[str, tuple[Any, ...]]:
    """id -> (size, sha256, whether the row holds bytes itself)."""
    db = bot.store.database
    if db.dialect.name == "postgres":
        rows = await db.fetch("SELECT id, size, sha256, data IS NOT NULL FROM media")
    else:
        rows = await db.fetch("SELECT id, size, sha256, 0 FROM media")
    return {str(r[0]): (r[1], r[2], bool(r[3])) for r in rows}


def _object(s3: S3Server, bucket: str, media_id: str) -> bytes:
    return bytes(client(s3).get_object(Bucket=bucket, Key=f"{PREFIX}/{media_id}")["Body"].read())


async def test_results_references_and_subjects_live_in_the_bucket(
    tmp_path: Path, s3_server: S3Server, database_env: dict[str, Any]
) -> None:
    bucket = create_bucket(s3_server)
    console = Console(tmp_path)
    reference = tmp_path / "ref.png"
    reference.write_bytes(png(48, 40, (200, 90, 10)))
    env = {**s3_server.env(bucket, PREFIX), **database_env}
    async with BotHarness(tmp_path, env, surfaces=[console.factory]) as bot:
        [made] = await console.run(bot, "/hidream a red fox in snow --seed 7")
        assert console.chat is not None and console.chat.last_job_id is not None
        job = await bot.engine.job(console.chat.last_job_id)
        assert job is not None and job.state.value == "delivered"
        edited = await console.run(bot, f"/edit {reference} make it blue")
        assert len(edited) == 1
        await console.run(bot, f"/subject save mascot {reference}")
        assert "Saved subject mascot" in console.err.getvalue()

        rows = await _media_rows(bot)
        held = keys(s3_server, bucket)
        # Every image the bot keeps is one object, named by its media id, and nothing else is there.
        assert set(held) == {f"{PREFIX}/{media_id}" for media_id in rows}
        assert set(job.result_media) <= set(rows)
        edit_job = await bot.engine.job(console.chat.last_job_id)
        assert edit_job is not None and edit_job.reference_media
        assert set(edit_job.reference_media) <= set(rows)
        subjects = await bot.store.database.fetch("SELECT media FROM subjects")
        assert len(subjects) == 1
        for media_id, (size, sha256, in_row) in rows.items():
            data = _object(s3_server, bucket, media_id)
            assert (size, sha256, in_row) == (len(data), hashlib.sha256(data).hexdigest(), False)
        # The delivered file is the object's bytes (the console wrote what the store holds).
        assert made.read_bytes() in {_object(s3_server, bucket, m) for m in job.result_media}
        assert reference.read_bytes() in {_object(s3_server, bucket, m) for m in rows}
    if not database_env:
        assert list((tmp_path / "bot.db.media").iterdir()) == []  # no image beside the database


@pytest.mark.parametrize("redirect", [False, True], ids=["stream", "redirect"])
async def test_media_links_serve_the_object_and_retention_deletes_it(
    tmp_path: Path, s3_server: S3Server, database_env: dict[str, Any], redirect: bool
) -> None:
    bucket = create_bucket(s3_server)
    picture = png(64, 64, (10, 120, 200))
    env = {**s3_server.env(bucket, PREFIX, redirect=redirect), **database_env}
    async with BotHarness(tmp_path, env, callbacks=True) as bot:
        media_id = await bot.store.put_media(picture, "image/png", 64, 64)
        assert bot.runner.signer is not None
        link = bot.runner.signer.link(media_id, now=time.time(), ttl=600)
        async with httpx.AsyncClient(timeout=30) as http:
            answer = await http.get(link)
            if redirect:
                assert answer.status_code == 302
                target = answer.headers["location"]
                assert target.startswith(f"{s3_server.endpoint}/{bucket}/{PREFIX}/{media_id}?")
                assert "X-Amz-Signature=" in target and "X-Amz-Expires=" in target
                # The presigned URL lives no longer than the link it was given for.
                expires = int(urllib.parse.parse_qs(urllib.parse.urlsplit(target).query)["X-Amz-Expires"][0])
                assert 0 < expires <= 600
                answer = await http.get(target)
            assert answer.status_code == 200
            assert answer.content == picture
            assert answer.headers["content-type"] == "image/png"

            # Retention deletes the row, then the object; the link then finds nothing.
            assert f"{PREFIX}/{media_id}" in keys(s3_server, bucket)
            assert await sweeps_for(bot.store).delete_old_media(time.time() + 1, 100) == 1
            assert keys(s3_server, bucket) == {}
            gone = await http.get(link)
            assert gone.status_code == 404
            assert await bot.store.media(media_id) is None


async def test_a_deleted_object_is_answered_as_no_longer_held(tmp_path: Path, s3_server: S3Server) -> None:
    bucket = create_bucket(s3_server)
    async with BotHarness(tmp_path, s3_server.env(bucket, PREFIX)) as bot:
        media_id = await bot.store.put_media(png(), "image/png", 64, 64)
        client(s3_server).delete_object(Bucket=bucket, Key=f"{PREFIX}/{media_id}")
        assert await bot.store.media(media_id) is None
        assert await bot.store.media_stream(media_id) is None


async def test_a_crash_between_object_and_row_leaves_an_orphan_swept_after_an_hour(
    tmp_path: Path, s3_server: S3Server
) -> None:
    bucket = create_bucket(s3_server)
    async with BotHarness(tmp_path, s3_server.env(bucket, PREFIX)) as bot:
        kept = await bot.store.put_media(png(), "image/png", 64, 64)
        media = bot.store.media_bytes
        assert isinstance(media, ObjectBytes)
        await media.keep({"orphan-of-a-crash": png(8, 8)})  # its row never came
        # Young objects may be a write whose row is on its way: left alone.
        assert await media.remove_orphans(bot.store.held_media) == 0
        assert await media.remove_orphans(bot.store.held_media, now=time.time() + 3601) == 1
        assert set(keys(s3_server, bucket)) == {f"{PREFIX}/{kept}"}


def _sqlite_install(tmp_path: Path, cli: Cli) -> dict[str, bytes]:
    """A one-machine install with images as files: media id -> bytes."""
    made = cli("run", stdin="/hidream a red fox in snow --seed 7 --n 2\n")
    assert made.returncode == 0, made.stderr
    folder = tmp_path / "bot.db.media"
    with sqlite3.connect(tmp_path / "bot.db") as db:
        ids = [str(r[0]) for r in db.execute("SELECT id FROM media")]
    assert len(ids) == 2
    return {media_id: (folder / media_id.encode().hex()).read_bytes() for media_id in ids}


def test_db_copy_moves_the_images_into_the_object_store_with_postgresql(
    tmp_path: Path, cli: Cli, s3_server: S3Server, postgres_database: str | BaseException
) -> None:
    held = _sqlite_install(tmp_path, cli)
    bucket = create_bucket(s3_server)
    url = postgres_url(postgres_database)
    copied = cli("db", "copy", "--to", url, **s3_server.env(bucket, PREFIX))
    assert copied.returncode == 0, copied.stderr
    assert "images: 2" in copied.stdout
    assert keys(s3_server, bucket) == {f"{PREFIX}/{m}": len(data) for m, data in held.items()}
    for media_id, data in held.items():
        assert _object(s3_server, bucket, media_id) == data

    async def rows() -> list[tuple[Any, ...]]:
        db = await asyncpg.connect(url, timeout=5)
        try:
            return [tuple(r) for r in await db.fetch("SELECT id, size, sha256, data IS NULL FROM media")]
        finally:
            await db.close()

    expected = {(m, len(d), hashlib.sha256(d).hexdigest(), True) for m, d in held.items()}
    assert set(asyncio.run(rows())) == expected

    async def read_back() -> dict[str, bytes | None]:
        # The store a replica opens (PostgreSQL and the object store) gives every image back.
        media = ObjectBytes(
            ObjectStoreConfig(f"s3://{bucket}/{PREFIX}", s3_server.endpoint, REGION, ACCESS_KEY, SECRET_KEY)
        )
        async with PostgresStore(url, default_limit=25, media=media) as store:
            found = {m: await store.media(m) for m in held}
        return {m: None if s is None else s.data for m, s in found.items()}

    assert asyncio.run(read_back()) == held


def test_db_copy_to_s3_moves_a_sqlite_installs_files_into_the_bucket(
    tmp_path: Path, cli: Cli, s3_server: S3Server
) -> None:
    held = _sqlite_install(tmp_path, cli)
    bucket = create_bucket(s3_server)
    env = s3_server.env(bucket, PREFIX)
    target = env.pop("HIDREAM_MEDIA_URL")
    copied = cli("db", "copy", "--to", target, **env)
    assert copied.returncode == 0, copied.stderr
    assert "images: 2" in copied.stdout and f"HIDREAM_MEDIA_URL={target}" in copied.stdout
    assert keys(s3_server, bucket) == {f"{PREFIX}/{m}": len(data) for m, data in held.items()}

    async def read_back() -> dict[str, bytes | None]:
        media = ObjectBytes(ObjectStoreConfig(target, s3_server.endpoint, REGION, ACCESS_KEY, SECRET_KEY))
        async with SqliteStore(tmp_path / "bot.db", default_limit=25, media=media) as store:
            found = {m: await store.media(m) for m in held}
            rows = await store.database.fetch("SELECT id, size, sha256 FROM media")
        assert {(str(r[0]), r[1], r[2]) for r in rows} == {
            (m, len(d), hashlib.sha256(d).hexdigest()) for m, d in held.items()
        }
        return {m: None if s is None else s.data for m, s in found.items()}

    assert asyncio.run(read_back()) == held
    # The files are gone (moved), and a rerun finds everything in place.
    assert list((tmp_path / "bot.db.media").iterdir()) == []
    again = cli("db", "copy", "--to", target, **env)
    assert again.returncode == 0, again.stderr
    assert "images: 2" in again.stdout and "skipped" not in again.stdout
    # Then the bot runs on it: an edit of a copied result reads its reference from the bucket.
    with sqlite3.connect(tmp_path / "bot.db") as db:
        [(job_id,)] = db.execute("SELECT id FROM jobs").fetchall()
    edited = cli("run", stdin=f"/edit {job_id} make it blue\n", HIDREAM_MEDIA_URL=target, **env)
    assert edited.returncode == 0, edited.stderr
    assert "are not read while" not in edited.stderr  # nothing was left behind in the folder
    assert len(keys(s3_server, bucket)) > len(held)


def test_check_names_the_object_store_and_a_bad_url(cli: Cli, s3_server: S3Server) -> None:
    bucket = create_bucket(s3_server)
    shown = cli("check", **s3_server.env(bucket, PREFIX))
    assert shown.returncode == 0, shown.stderr
    assert f"media:     object store s3://{bucket}/{PREFIX} at {s3_server.endpoint}" in shown.stdout
    assert SECRET_KEY not in shown.stdout + shown.stderr
    wrong = cli("check", HIDREAM_MEDIA_URL="https://example.com/bucket")
    assert wrong.returncode != 0
    assert "HIDREAM_MEDIA_URL" in wrong.stderr and "s3://bucket/prefix" in wrong.stderr
    # A bucket that is not there: the bot does not start, and says which setting to look at.
    missing = cli("run", stdin="/hidream a fox\n", **s3_server.env("no-such-bucket", PREFIX))
    assert missing.returncode != 0
    assert "HIDREAM_MEDIA_URL" in missing.stderr and "no-such-bucket" in missing.stderr
    assert SECRET_KEY not in missing.stdout + missing.stderr


async def test_redirect_without_an_object_store_streams_as_before(tmp_path: Path, cli: Cli) -> None:
    shown = cli("check", HIDREAM_MEDIA_REDIRECT="true")
    assert shown.returncode == 0, shown.stderr
    assert "HIDREAM_MEDIA_REDIRECT is set but HIDREAM_MEDIA_URL names no object store" in shown.stdout
    picture = png(32, 32, (1, 2, 3))
    async with BotHarness(tmp_path, {"HIDREAM_MEDIA_REDIRECT": "true"}, callbacks=True) as bot:
        media_id = await bot.store.put_media(picture, "image/png", 32, 32)
        assert bot.runner.signer is not None
        link = bot.runner.signer.link(media_id, now=time.time(), ttl=600)
        async with httpx.AsyncClient(timeout=30) as http:
            answer = await http.get(link)
        assert answer.status_code == 200 and answer.content == picture
        assert answer.headers["content-type"] == "image/png"
