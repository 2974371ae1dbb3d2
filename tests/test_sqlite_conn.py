"""storage/sqlite_conn.py: SQLite run on the loop's thread never waits inside SQLite for another
process's lock (it waits with asyncio, then goes on), and its checkpoints run from a thread."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest

from bot.jobs.quota_policy import POLICY
from storage import sqlite_conn
from storage.sqlite import SqliteStore
from tests.support.harness import until
from tests.support.jobs import NOW, make_job


def _rows_in_main_file(path: Path) -> int:
    """Jobs in the database file itself, ignoring the write-ahead log (immutable: no -wal read)."""
    conn = sqlite3.connect(f"file:{path}?immutable=1", uri=True)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM jobs").fetchone()[0])
    finally:
        conn.close()


async def test_a_write_waits_for_another_process_lock_without_blocking_the_loop(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    async with SqliteStore(path, policy=POLICY, default_limit=1000, clock=lambda: NOW) as store:
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # what `hidream-bot quota set` holds while it writes
        admit = asyncio.create_task(store.admit(make_job(), workspace_key="test:w1", dedup_key=None))
        # The loop keeps turning while the admit waits for the lock: these sleeps would not return
        # if SQLite itself were waiting on this thread.
        ticks = 0
        for _ in range(20):
            await asyncio.sleep(0.005)
            ticks += 1
        assert ticks == 20
        assert not admit.done(), "the write went through while another connection held the lock"
        other.execute("COMMIT")
        other.close()
        job = await admit
        assert await store.job(job.id) is not None


async def test_a_lock_held_past_the_limit_is_an_error_and_nothing_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "s.db"
    async with SqliteStore(path, policy=POLICY, default_limit=1000, clock=lambda: NOW) as store:
        monkeypatch.setattr(sqlite_conn, "BUSY_SECONDS", 0.05)
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        try:
            job = make_job()
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                await store.admit(job, workspace_key="test:w1", dedup_key=None)
        finally:
            other.execute("ROLLBACK")
            other.close()
        assert not store.db.in_transaction
        assert await store.job(job.id) is None
        # and the store goes on once the lock is free
        assert await store.admit(make_job(), workspace_key="test:w1", dedup_key=None)


async def test_checkpoints_move_the_log_into_the_file_from_another_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "s.db"
    async with SqliteStore(path, policy=POLICY, default_limit=1000, clock=lambda: NOW) as store:
        checkpoints = sqlite_conn.Checkpoints(str(path), store.db, every=3600)
        await checkpoints.run()  # what the migrations wrote
        before = _rows_in_main_file(path)
        for _ in range(3):
            await store.admit(make_job(), workspace_key="test:w1", dedup_key=None)
        # No automatic checkpoint at commit: the rows are only in the log so far.
        assert _rows_in_main_file(path) == before
        threads: list[int] = []
        real = sqlite_conn._checkpoint

        def recorded(db: str, mode: str) -> tuple[int, int, int] | None:
            threads.append(threading.get_ident())
            return real(db, mode)

        monkeypatch.setattr(sqlite_conn, "_checkpoint", recorded)
        await checkpoints.run()
        assert _rows_in_main_file(path) == before + 3
        assert threads and threads[0] != threading.get_ident()
        # Nothing written since: no checkpoint at all.
        await checkpoints.run()
        assert len(threads) == 1


async def test_a_failed_checkpoint_is_logged_and_the_next_tick_tries_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "s.db"
    async with SqliteStore(path, policy=POLICY, default_limit=1000, clock=lambda: NOW) as store:
        checkpoints = sqlite_conn.Checkpoints(str(path), store.db, every=0.001)
        await checkpoints.run()  # what the migrations wrote
        before = _rows_in_main_file(path)
        await store.admit(make_job(), workspace_key="test:w1", dedup_key=None)
        real = sqlite_conn._checkpoint
        calls: list[str] = []

        def failing_once(db: str, mode: str) -> tuple[int, int, int] | None:
            calls.append(mode)
            if len(calls) == 1:
                raise OSError("too many open files")
            return real(db, mode)

        monkeypatch.setattr(sqlite_conn, "_checkpoint", failing_once)
        checkpoints.start()
        try:
            await until(lambda: _rows_in_main_file(path) > before)
        finally:
            await checkpoints.stop()
        assert len(calls) >= 2 and "SQLite checkpoint failed" in caplog.text


async def test_a_log_a_passive_checkpoint_cannot_copy_whole_gets_a_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "s.db"
    async with SqliteStore(path, policy=POLICY, default_limit=1000, clock=lambda: NOW) as store:
        checkpoints = sqlite_conn.Checkpoints(str(path), store.db, every=3600)
        await store.admit(make_job(), workspace_key="test:w1", dedup_key=None)
        real = sqlite_conn._checkpoint
        modes: list[str] = []

        def behind(db: str, mode: str) -> tuple[int, int, int] | None:
            modes.append(mode)
            if mode == "PASSIVE":  # as when commits kept landing while it copied
                return (0, sqlite_conn.LARGE_LOG_FRAMES + 1, 10)
            return real(db, mode)

        monkeypatch.setattr(sqlite_conn, "_checkpoint", behind)
        await checkpoints.run()
        assert modes == ["PASSIVE", "RESTART"]


async def test_reads_apart_run_on_a_connection_of_their_own(tmp_path: Path) -> None:
    folder = tmp_path / "odd ?#% name"  # what a URI would misread unless escaped
    folder.mkdir()
    path = folder / "s.db"
    async with SqliteStore(path, policy=POLICY, default_limit=1000, clock=lambda: NOW) as store:
        await store.admit(make_job(), workspace_key="test:w1", dedup_key=None)
        count = "SELECT COUNT(*) FROM jobs"
        async with store.transaction() as db:
            # Not yet committed: the loop's connection sees it, a connection apart does not.
            await db.execute("UPDATE jobs SET error='mid-transaction'")
            async with db.execute("SELECT COUNT(*) FROM jobs WHERE error IS NOT NULL") as cur:
                assert (await cur.fetchone())[0] == 1
            apart = await store.db.read_apart("SELECT COUNT(*) FROM jobs WHERE error IS NOT NULL")
            assert apart == [(0,)]
        assert await store.db.read_apart(count) == [(1,)]
        assert await store.db.read_apart("SELECT COUNT(*) FROM jobs WHERE error IS NOT NULL") == [(1,)]
