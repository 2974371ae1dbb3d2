"""Versions of a result thread (storage/versions.py, bot/jobs/versions.py) on both store backends: each
delivered job is numbered once in its thread, the head follows new results and moves back on undo
(to the parent, else the version before), deleted versions drop out, and refusals change nothing."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bot.jobs.versions import Versions, thread_command
from bot.model.errors import BadInput
from bot.model.jobs import Job, JobState, Post
from storage.store import Store
from tests.support.jobs import NOW, make_job, walk
from tests.support.store_backends import OpenStore


async def delivered(
    store: Store, versions: Versions, thread: str, parent: Job | None = None, user: str = "u1"
) -> Job:
    job = replace(make_job(user=user), parent_job_id=parent.id if parent else None)
    job = await store.admit(job, workspace_key="test:w1", dedup_key=None)
    await walk(store, job.id, JobState.DELIVERED)
    posts = [Post(f"m-{job.id}", thread)]
    await store.record_posts(job.id, "test", [(p.message_key, p.thread_key) for p in posts])
    await versions.record(job, posts)
    return job


async def test_versions_are_numbered_and_undo_moves_the_head(open_store: OpenStore) -> None:
    async with open_store(default_limit=50, clock=lambda: NOW) as store:
        versions = Versions(store)
        v1 = await delivered(store, versions, "t1")
        v2 = await delivered(store, versions, "t1", parent=v1)
        v3 = await delivered(store, versions, "t1", parent=v2)
        other = await delivered(store, versions, "t2")
        # A redelivery numbers nothing again.
        assert await versions.record(v3, [Post(f"m-{v3.id}", "t1")]) == 3
        assert await versions.record(other, [Post("x", None)]) is None
        assert await versions.thread_of("test", v2.id) == "t1"
        history = await versions.history("test", "t1")
        assert [(v.number, v.job.id, v.post) for v in history.versions] == [
            (1, v1.id, f"m-{v1.id}"),
            (2, v2.id, f"m-{v2.id}"),
            (3, v3.id, f"m-{v3.id}"),
        ]
        assert history.current == 3 and (await versions.current("test", "t1")).id == v3.id  # type: ignore[union-attr]

        undone = await versions.undo("test", "t1", "u1")
        assert (undone.was.number, undone.now.number) == (3, 2)
        assert (await versions.current("test", "t1")).id == v2.id  # type: ignore[union-attr]
        assert (await versions.current("test", "t2")).id == other.id  # type: ignore[union-attr]

        # An edit of v1 after undoing to it: undo goes back to v1 (its parent), not to v3 or v2.
        await versions.undo("test", "t1", "u1")
        v4 = await delivered(store, versions, "t1", parent=v1)
        assert (await versions.current("test", "t1")).id == v4.id  # type: ignore[union-attr]
        assert (await versions.undo("test", "t1", "u1")).now.job.id == v1.id
        with pytest.raises(BadInput, match="first version"):
            await versions.undo("test", "t1", "u1")
        assert (await versions.current("test", "t1")).id == v1.id  # type: ignore[union-attr]
        # The Undo button of a given version steps back from that version.
        assert (await versions.undo("test", "t1", "u1", from_job=v3.id)).now.job.id == v2.id


async def test_only_requesters_or_admins_undo_and_deleted_versions_drop_out(open_store: OpenStore) -> None:
    async with open_store(default_limit=50, clock=lambda: NOW) as store:
        versions = Versions(store)
        v1 = await delivered(store, versions, "t1", user="alice")
        v2 = await delivered(store, versions, "t1", parent=v1, user="bob")
        v3 = await delivered(store, versions, "t1", parent=v2, user="bob")
        with pytest.raises(BadInput, match="Only <@alice> or <@bob>"):
            await versions.undo("test", "t1", "mallory")
        assert (await versions.current("test", "t1")).id == v3.id  # type: ignore[union-attr]
        assert (await versions.undo("test", "t1", "mallory", admin=True)).now.job.id == v2.id
        # v2 deleted (its posts forgotten): the head falls back to v1, history leaves v2 out.
        await store.forget_posts(v2.id)
        assert (await versions.current("test", "t1")).id == v1.id  # type: ignore[union-attr]
        assert [v.number for v in (await versions.history("test", "t1")).versions] == [1, 3]
        assert await versions.requesters("test", "t1") == {"alice", "bob"}
        with pytest.raises(BadInput, match="no versions"):
            await versions.history("test", "nowhere")
        with pytest.raises(BadInput, match="nothing to undo"):
            await versions.undo("test", "nowhere", "alice")


def test_thread_commands_are_whole_messages_only() -> None:
    assert thread_command(" Undo! ") == "undo" and thread_command("history") == "history"
    assert thread_command("undo the hat") is None and thread_command("make history") is None
