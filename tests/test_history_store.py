"""A person's recent jobs (storage/history.py, behind the Slack Home tab) on both store backends:
newest first, only theirs in that workspace, at most the limit, each with its result's message (the
first post in a thread, not the marks a delivery leaves) or none when nothing of it stands."""

from __future__ import annotations

from dataclasses import replace

from bot.model.jobs import Job, JobState
from storage.history import History
from storage.store import Store
from tests.support.jobs import NOW, make_job, walk
from tests.support.store_backends import OpenStore


async def made(store: Store, at: float, *, user: str = "u1", workspace: str = "w1") -> Job:
    job = replace(make_job(user=user), workspace_id=workspace, created_at=at)
    return await store.admit(job, workspace_key=f"test:{workspace}", dedup_key=None)


async def test_recent_jobs_are_the_persons_own_newest_first_with_their_posts(open_store: OpenStore) -> None:
    async with open_store(default_limit=50, clock=lambda: NOW) as store:
        delivered = await made(store, NOW + 1)
        await walk(store, delivered.id, JobState.DELIVERED)
        # What a delivery writes: a mark with no thread, then the summary in the thread.
        await store.remember_post(delivered.id, "test", "c1:delivering", None)
        await store.remember_post(delivered.id, "test", "c1:2.0", "c1:1.0")
        await store.remember_post(delivered.id, "test", "c1:3.0", "c1:1.0")
        failed = await made(store, NOW + 2)
        assert await store.transition(failed.id, JobState.FAILED)
        running = await made(store, NOW + 3)
        await made(store, NOW + 4, user="u2")
        await made(store, NOW + 5, workspace="w2")

        history = History(store)
        recent = await history.recent("test", "w1", "u1", 10)
        assert [r.job.id for r in recent] == [running.id, failed.id, delivered.id]
        assert [(r.post, r.thread) for r in recent] == [(None, None), (None, None), ("c1:2.0", "c1:1.0")]
        assert recent[1].job.state is JobState.FAILED
        assert [r.job.id for r in await history.recent("test", "w1", "u1", 2)] == [running.id, failed.id]
        assert await history.recent("discord", "w1", "u1", 10) == []

        # Deleted with the Delete button: the job stays in the list, with nothing to link to.
        await store.forget_posts(delivered.id)
        assert (await history.recent("test", "w1", "u1", 10))[-1].post is None
