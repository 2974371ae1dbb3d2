"""The store contract, on both backends (tests/support/store_backends.py): migrations from empty, the atomic reserve under concurrency, release and commit."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from bot.jobs.quota_policy import POLICY
from bot.model.errors import QuotaExceeded
from bot.model.jobs import JobState
from storage.migrations import MIGRATIONS
from storage.sqlite import SqliteStore
from tests.support.jobs import HAPPY_PATH, NOW, make_job, walk
from tests.support.store_backends import OpenStore


async def test_migrations_from_empty_and_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    async with SqliteStore(path, policy=POLICY, default_limit=5, clock=lambda: NOW) as store:
        assert await store.schema_version() == len(MIGRATIONS)
    async with SqliteStore(
        path, policy=POLICY, default_limit=5, clock=lambda: NOW
    ) as store:  # opening again changes nothing
        assert await store.schema_version() == len(MIGRATIONS)
    with sqlite3.connect(path) as db:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert {"jobs", "ledger", "limits", "grants", "media", "posts", "meta"} <= tables
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_hundred_concurrent_requests_with_ten_left_admit_exactly_ten(open_store: OpenStore) -> None:
    async with open_store(default_limit=10, clock=lambda: NOW) as store:

        async def one() -> bool:
            try:
                await store.admit(make_job(), workspace_key="test:w1", dedup_key=None)
            except QuotaExceeded:
                return False
            return True

        results = await asyncio.gather(*(one() for _ in range(100)))
        assert sum(results) == 10
        status = await store.quota("test:u1", "test:w1")
        assert (status.used, status.remaining) == (10, 0)
        assert len(await store.unfinished_jobs()) == 10


async def test_refusal_names_the_limit_and_the_reset(open_store: OpenStore) -> None:
    async with open_store(default_limit=3, clock=lambda: NOW) as store:
        await store.admit(make_job(n=2), workspace_key="test:w1", dedup_key=None)
        with pytest.raises(QuotaExceeded) as err:
            await store.admit(make_job(n=2), workspace_key="test:w1", dedup_key=None)
        assert "you have 1 of 3 left today" in err.value.user_message
        assert "resets at 00:00 UTC" in err.value.user_message
        await store.admit(make_job(n=1), workspace_key="test:w1", dedup_key=None)
        with pytest.raises(QuotaExceeded, match="used all 3 of your images for today"):
            await store.admit(make_job(n=1), workspace_key="test:w1", dedup_key=None)


async def test_failure_releases_and_delivery_commits(open_store: OpenStore) -> None:
    async with open_store(default_limit=4, clock=lambda: NOW) as store:
        a = await store.admit(make_job(n=2), workspace_key="test:w1", dedup_key=None)
        b = await store.admit(make_job(n=2), workspace_key="test:w1", dedup_key=None)
        assert (await store.quota("test:u1", "test:w1")).remaining == 0
        assert await store.transition(a.id, JobState.FAILED, error="boom")
        assert (await store.quota("test:u1", "test:w1")).remaining == 2
        # A second failure of the same job changes nothing (guarded transition).
        assert not await store.transition(a.id, JobState.FAILED)
        for dst in HAPPY_PATH:
            assert await store.transition(b.id, dst)
        assert (await store.quota("test:u1", "test:w1")).used == 2
        assert await store.spend("test:u1", scope="user") == (2, 0.0)
        assert await store.unfinished_jobs() == []


async def test_limits_grants_and_reset(open_store: OpenStore) -> None:
    async with open_store(default_limit=25, clock=lambda: NOW) as store:
        await store.set_limit("test:w1", "members", "", 5, by="admin")
        assert (await store.quota("test:u1", "test:w1")).limit == 5
        await store.set_limit("test:w1", "user", "test:u1", 2, by="admin")  # a user's own limit wins
        assert (await store.quota("test:u1", "test:w1")).limit == 2
        await store.grant("test:w1", "test:u1", 3)
        assert (await store.quota("test:u1", "test:w1")).limit == 5
        job = await store.admit(make_job(n=4), workspace_key="test:w1", dedup_key=None)
        await walk(store, job.id, JobState.DELIVERED)
        assert (await store.quota("test:u1", "test:w1")).remaining == 1
        await store.reset("test:w1", "test:u1")
        assert (await store.quota("test:u1", "test:w1")).remaining == 5
        await store.set_limit("test:w1", "user", "test:u1", None, by="admin")
        assert (await store.quota("test:u1", "test:w1")).limit == 5 + 3


async def test_dedup_key_returns_the_first_job_and_reserves_nothing_more(open_store: OpenStore) -> None:
    async with open_store(default_limit=25, clock=lambda: NOW) as store:
        first = await store.admit(make_job(n=2), workspace_key="test:w1", dedup_key="ev1")
        again = await store.admit(make_job(n=2), workspace_key="test:w1", dedup_key="ev1")
        assert again.id == first.id
        assert (await store.quota("test:u1", "test:w1")).used == 2


async def test_one_dedup_key_admitted_at_once_in_two_tenants_stores_one_job(open_store: OpenStore) -> None:
    # Two stores, as two replicas: the tenants' locks do not serialise them, the key's uniqueness does.
    async with (
        open_store(default_limit=25, clock=lambda: NOW) as a,
        open_store(default_limit=25, clock=lambda: NOW) as b,
    ):
        admitted = await asyncio.gather(
            *(
                store.admit(make_job(n=1), workspace_key=f"test:w{i}", dedup_key="ev-shared")
                for i, store in enumerate([a, b] * 5)
            )
        )
        assert len({job.id for job in admitted}) == 1
        spent = [(await a.quota("test:u1", f"test:w{i}")).used for i in range(10)]
        assert sum(spent) == 1


async def test_posts_find_their_job_and_the_latest_in_a_thread(open_store: OpenStore) -> None:
    async with open_store(default_limit=25, clock=lambda: NOW) as store:
        jobs = [await store.admit(make_job(), workspace_key="test:w1", dedup_key=None) for _ in range(2)]
        for i, job in enumerate(jobs):
            await walk(store, job.id, JobState.DELIVERED)
            await store.record_posts(job.id, "test", [(f"m{i}", "t1")])
        assert (await store.job_for_post("test", "m0")).id == jobs[0].id  # type: ignore[union-attr]
        assert (await store.latest_job_in_thread("test", "t1")).id == jobs[1].id  # type: ignore[union-attr]
        assert await store.latest_job_in_thread("other", "t1") is None
