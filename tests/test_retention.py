"""Retention (HIDREAM_MEDIA_RETENTION_DAYS): old images and finished jobs' bulky columns are deleted
in bounded batches, never what an unfinished job needs (on both store backends); the SQLite file
gives the space back; the sweep runs at start and then periodically on an injected clock and sleep;
0 keeps everything."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from pathlib import Path

from bot.jobs.quota_policy import POLICY
from bot.jobs.retention import DAY, Retention, Swept
from bot.model.jobs import JobState
from storage import sqlite as sql
from storage.migrations import MIGRATIONS
from storage.postgres import PostgresStore
from storage.retention import sweeps_for
from storage.sqlite import SqliteStore as Store
from storage.store import Store as AnyStore
from tests.support.jobs import NOW, make_job
from tests.support.retention import Clock, held, put
from tests.support.store_backends import OpenStore


class Sleeps:
    """An injected sleep: each call is reported on `asked` and returns only when the test resumes it."""

    def __init__(self) -> None:
        self.asked: asyncio.Queue[float] = asyncio.Queue()
        self.resume: asyncio.Queue[None] = asyncio.Queue()

    async def __call__(self, seconds: float) -> None:
        self.asked.put_nowait(seconds)
        await self.resume.get()

    async def next(self) -> float:
        return await asyncio.wait_for(self.asked.get(), timeout=20)


async def finish(store: AnyStore, job_id: str, results: list[str], to: JobState = JobState.DELIVERED) -> None:
    """Walk an admitted job to `to`, with a provider status kept on the way (a bulky column)."""
    assert await store.transition(job_id, JobState.SUBMITTING)
    assert await store.transition(job_id, JobState.RUNNING, provider_job_id="p1")
    assert await store.record_callback(job_id, {"state": "completed", "images": [{"url": "x" * 500}]})
    assert await store.transition(job_id, JobState.COMPLETED, result_media=results)
    if to is JobState.COMPLETED:
        return
    assert await store.transition(job_id, JobState.DELIVERING)
    assert await store.transition(job_id, to)


async def test_old_media_and_old_finished_jobs_go_what_is_recent_or_in_flight_stays(
    open_store: OpenStore,
) -> None:
    clock = Clock()
    async with open_store(default_limit=10, clock=clock) as store:
        # 31 days ago: a delivered edit with two results, a failed job, an upload nobody kept (a
        # refused request), and a job still waiting to be delivered (the bot was down) that edits
        # the delivered job's first result.
        upload, result_a, result_b, orphan = [await put(store) for _ in range(4)]
        done = make_job("alice")
        done.reference_media = [upload]
        await store.admit(done, workspace_key="test:w1", dedup_key=None)
        await finish(store, done.id, [result_a, result_b])
        await store.record_posts(done.id, "test", [("msg-1", "thread-1")])
        failed = make_job("alice")
        await store.admit(failed, workspace_key="test:w1", dedup_key=None)
        assert await store.transition(failed.id, JobState.FAILED, error="the provider said no")
        waiting_ref, waiting_result = result_a, await put(store)
        waiting = make_job("bob")
        waiting.reference_media = [waiting_ref]
        await store.admit(waiting, workspace_key="test:w1", dedup_key=None)
        await finish(store, waiting.id, [waiting_result], to=JobState.COMPLETED)
        # 5 days ago: a delivered job and its image.
        clock.now = NOW + 26 * DAY
        recent_image = await put(store)
        recent = make_job("alice")
        await store.admit(recent, workspace_key="test:w1", dedup_key=None)
        await finish(store, recent.id, [recent_image])
        clock.now = NOW + 31 * DAY
        quota_before = await store.quota("test:alice", "test:w1")
        spend_before = await store.spend("test:alice", scope="user")
        assert spend_before[0] == 2  # the two delivered jobs

        swept = await Retention(store, 30, clock=clock).sweep()

        assert (swept.media, swept.jobs) == (3, 2)  # upload, result_b, orphan; done and failed
        assert await held(store, upload, result_b, orphan) == [False] * 3
        assert await held(store, result_a, waiting_result, recent_image) == [True] * 3
        old = await store.job(done.id)
        assert old is not None and old.origin == {} and await store.callback_status(done.id) is None
        # What quotas, spend, rerolls and the lookups from posts need is still there.
        assert (old.state, old.user_id, old.surface, old.request.prompt) == (
            JobState.DELIVERED,
            "alice",
            "test",
            "a fox",
        )
        assert old.result_media == [result_a, result_b] and old.reference_media == [upload]
        assert (await store.job_for_post("test", "msg-1")) is not None
        assert (await store.latest_job_in_thread("test", "thread-1")) is not None
        failed_row = await store.job(failed.id)
        assert failed_row is not None and failed_row.error == "the provider said no"
        assert await store.quota("test:alice", "test:w1") == quota_before
        assert await store.spend("test:alice", scope="user") == spend_before
        # The unfinished job and the recent one keep everything.
        kept = await store.job(waiting.id)
        assert kept is not None and kept.origin == {"channel": "c1"}
        assert await store.callback_status(waiting.id) is not None
        fresh = await store.job(recent.id)
        assert fresh is not None and fresh.origin == {"channel": "c1"}
        # A second sweep finds nothing more.
        assert await Retention(store, 30, clock=clock).sweep() == Swept(0, 0, 0)


async def test_an_image_a_new_job_uses_counts_its_age_from_that_use(open_store: OpenStore) -> None:
    clock = Clock()
    async with open_store(default_limit=10, clock=clock) as store:
        image = await put(store)
        clock.now = NOW + 20 * DAY
        assert await sweeps_for(store).touch_media(image)  # a reroll took it 20 days later
        retention = Retention(store, 30, clock=clock)
        await retention.sweep(now=NOW + 31 * DAY)
        assert await held(store, image) == [True]
        await retention.sweep(now=NOW + 51 * DAY)
        assert await held(store, image) == [False]
        assert not await sweeps_for(store).touch_media(image)


async def test_each_batch_is_bounded(open_store: OpenStore) -> None:
    clock = Clock()
    async with open_store(default_limit=10, clock=clock) as store:
        images = [await put(store) for _ in range(45)]
        cutoff = NOW + 1
        assert await sweeps_for(store).delete_old_media(cutoff, 20) == 20
        assert sum(await held(store, *images)) == 25
        assert (await Retention(store, 30, clock=clock).sweep(now=NOW + 31 * DAY)).media == 25
        assert sum(await held(store, *images)) == 0


async def test_the_file_gives_the_space_back(tmp_path: Path) -> None:
    """Images are files (storage/media.py), so the database's bulk is finished jobs' provider
    statuses: clearing them gives pages back, and deleting images gives their files' space back."""
    clock = Clock()
    path = tmp_path / "r.db"
    async with Store(path, policy=POLICY, default_limit=10, clock=clock) as store:
        keep = await put(store, 4096)
        big = [await put(store, 1024 * 1024) for _ in range(8)]
        for _ in range(8):
            job = make_job("alice")
            await store.admit(job, workspace_key="test:w1", dedup_key=None)
            assert await store.record_callback(job.id, {"log": os.urandom(512 * 1024).hex()})
            assert await store.transition(job.id, JobState.FAILED, error="the provider said no")
        await sql.checkpoint(store)
        pages_before, _ = await sql.free_pages(store)
        assert size(path) > 8 * 1024 * 1024 and folder_size(store.files.folder) > 8 * 1024 * 1024
        clock.now = NOW + 31 * DAY
        await sweeps_for(store).touch_media(keep)

        swept = await Retention(store, 30, clock=clock).sweep()

        assert swept.media == 8 and await held(store, keep, *big) == [True] + [False] * 8
        pages_after, free_after = await sql.free_pages(store)
        assert free_after == 0 and swept.pages_freed > 2000 and pages_before - pages_after > 2000
        assert size(path) < 1024 * 1024 and size(Path(f"{path}-wal")) == 0
        assert folder_size(store.files.folder) < 1024 * 1024


def size(path: Path) -> int:
    return path.stat().st_size


def folder_size(folder: Path) -> int:
    return sum(size(item) for item in folder.iterdir())


def old_version_database(path: Path) -> None:
    """A database as the first version made it: no incremental vacuum, schema version 1, an image
    stored 40 days ago and one stored today."""
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.executescript(MIGRATIONS[0])
        db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        db.execute("INSERT INTO schema_version (version) VALUES (1)")
        for media_id, made in (("old", NOW - 40 * DAY), ("new", NOW)):
            db.execute(
                "INSERT INTO media (id, data, content_type, width, height, created_at) VALUES (?,?,?,?,?,?)",
                (media_id, os.urandom(256 * 1024), "image/png", 8, 8, made),
            )
    db.close()


def auto_vacuum(path: Path) -> int:
    with sqlite3.connect(path) as db:
        mode = int(db.execute("PRAGMA auto_vacuum").fetchone()[0])
    db.close()
    return mode


async def test_an_existing_database_is_converted_once_and_swept_at_start(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    old_version_database(path)
    assert auto_vacuum(path) == 0
    clock, sleeps = Clock(), Sleeps()
    async with Store(path, policy=POLICY, default_limit=10, clock=clock) as store:
        assert await store.schema_version() == len(MIGRATIONS)
        # 0 keeps everything: no conversion, no sweep.
        async with Retention(store, 0, clock=clock, sleep=sleeps) as off:
            assert await off.sweep(now=NOW + 1000 * DAY) == Swept(0, 0, 0)
        assert sleeps.asked.empty() and await held(store, "old", "new") == [True, True]
        assert auto_vacuum(path) == 0

        async with Retention(store, 30, clock=clock, sleep=sleeps):
            assert auto_vacuum(path) == sql.INCREMENTAL
            assert await sleeps.next() == 3600.0  # the sweep at start has run
            assert await held(store, "old", "new") == [False, True]
            assert not await sql.use_incremental_vacuum(store)  # once only


async def test_sweeps_run_at_start_and_then_every_interval(tmp_path: Path) -> None:
    clock, sleeps = Clock(), Sleeps()
    async with Store(tmp_path / "r.db", policy=POLICY, default_limit=10, clock=clock) as store:
        first = await put(store)
        clock.now = NOW + 31 * DAY
        async with Retention(store, 30, every=6 * 3600, clock=clock, sleep=sleeps):
            assert await sleeps.next() == 6 * 3600
            assert await held(store, first) == [False]
            second = await put(store)  # made "now"; the next sweep is 31 days later
            clock.now += 31 * DAY
            assert await held(store, second) == [True]
            sleeps.resume.put_nowait(None)
            assert await sleeps.next() == 6 * 3600
            assert await held(store, second) == [False]
        # Leaving stopped the task: nothing sleeps or sweeps any more.
        await put(store)
        assert sleeps.asked.empty()


async def test_a_vacuum_that_cannot_run_does_not_stop_the_bot(tmp_path: Path, monkeypatch, caplog) -> None:
    async def full(store: Store) -> bool:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(sql, "use_incremental_vacuum", full)
    async with Store(tmp_path / "s.db", policy=POLICY, default_limit=25, clock=lambda: NOW) as store:
        async with Retention(store, 30, clock=lambda: NOW) as retention:
            assert retention.enabled
        assert "could not switch the database to incremental vacuum (database or disk is full)" in caplog.text


async def test_postgresql_needs_no_conversion_and_gives_no_pages_back(pg_url: str) -> None:
    """Autovacuum makes a sweep's freed space reusable: entering converts nothing, a sweep that
    deleted images reports no pages, and the images are gone."""
    clock = Clock()
    async with PostgresStore(pg_url, policy=POLICY, default_limit=10, clock=clock) as store:
        image = await put(store, 4096)
        clock.now = NOW + 31 * DAY
        retention = Retention(store, 30, clock=clock, sleep=Sleeps())
        assert not await retention.sweeps.prepare()
        assert await retention.sweep() == Swept(1, 0, 0)
        assert await held(store, image) == [False]
