"""A task cancelled in the middle of a store call (a replica letting go of a job, a shutdown) leaves
the store usable: SQLite's one connection is never left inside a transaction, which would refuse
every later BEGIN ("cannot start a transaction within a transaction")."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bot.jobs.quota_policy import POLICY
from bot.model.jobs import JobState
from storage.sqlite import SqliteStore
from tests.support.jobs import NOW, make_job


async def test_cancelling_store_calls_at_every_point_leaves_the_store_usable(tmp_path: Path) -> None:
    async with SqliteStore(tmp_path / "s.db", policy=POLICY, default_limit=1000, clock=lambda: NOW) as store:
        job = await store.admit(make_job(), workspace_key="test:w1", dedup_key=None)
        assert await store.transition(job.id, JobState.SUBMITTING)
        # Cancel after 0, 1, 2, ... turns of the event loop, so the cancellation lands at each await of
        # a transaction in turn: its BEGIN, its statements, its COMMIT.
        for turns in range(40):
            task = asyncio.create_task(store.admit(make_job(), workspace_key="test:w1", dedup_key=None))
            for _ in range(turns):
                await asyncio.sleep(0)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            assert not store.db.in_transaction, (
                f"left inside a transaction when cancelled after {turns} turns"
            )
            fresh = make_job()
            assert (await store.admit(fresh, workspace_key="test:w1", dedup_key=None)).id == fresh.id
            assert await store.annotate(job.id, JobState.SUBMITTING, error=f"turn {turns}")
