"""Fencing (issue 19, item 12): a replica frozen in the middle of a Slack delivery, whose lease lapsed
and whose job another replica delivered meanwhile, posts nothing when it wakes.

Two bots with the real Slack adapter share one PostgreSQL database and one fake Slack. The owner's
delivery task is frozen at one of its steps (an event it waits on, the deterministic stand-in for
SIGSTOP); the shared clock of both stores moves past the lease; the other bot claims the job and
delivers it; then the owner thaws. 50 rounds over every step: each job is posted exactly once, and
the thawed owner makes no call to Slack at all. Then the fence in the store, on both backends: a
hold holds until another claim, and a fenced record of a post is refused in its own transaction."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from bot.model.jobs import Job, JobState
from storage.fencing import LeaseLost, fenced_by
from storage.replicas import replicas_for
from storage.rows import Lease
from tests.fakes.slack import FakeSlack
from tests.support.jobs import NOW, make_job
from tests.support.slack_support import Running, file_messages, job_id_of, running, summaries
from tests.support.store_backends import OpenStore

ROUNDS = 50
LEASE = 600.0
# Where the owner's delivery task is frozen, in the order it reaches them, each just before the
# store checks the hold: before its move to `delivering` (then the progress edit); before the poster's
# first look at what the job has posted; before each record the poster makes (its start mark, then
# the uploads; the files' mark, then the summary; the summary's, then the status line); before the
# delivery is recorded.
STEPS = ("delivering", "posts_of", "started", "uploaded", "summary", "delivered")


class Clock:
    """Both stores' clock: real time plus what the test moved it on by (a lapsed lease, at once)."""

    def __init__(self) -> None:
        self.ahead = 0.0

    def __call__(self) -> float:
        return time.time() + self.ahead


class Freezer:
    """Freezes the owner's delivery at the n-th step it reaches in a round, until thawed."""

    def __init__(self) -> None:
        self.at = -1
        self.reached_steps = 0
        self.job_id = ""
        self.frozen = asyncio.Event()
        self.thawed = asyncio.Event()

    def arm(self, step: int) -> None:
        self.at, self.reached_steps = step, 0
        self.frozen.clear()
        self.thawed.clear()

    async def step(self, job_id: str) -> None:
        index, self.reached_steps = self.reached_steps, self.reached_steps + 1
        if index == self.at:
            self.job_id = job_id
            self.frozen.set()
            await self.thawed.wait()


class FreezingMemory:
    """The owner's poster records its posts through this: each call is a step the owner may freeze at."""

    def __init__(self, inner: Any, freezer: Freezer) -> None:
        self.inner = inner
        self.freezer = freezer

    async def remember_post(
        self, job_id: str, surface: str, message_key: str, thread_key: str | None
    ) -> None:
        await self.freezer.step(job_id)
        await self.inner.remember_post(job_id, surface, message_key, thread_key)

    async def posts_of(self, job_id: str, surface: str) -> list[str]:
        await self.freezer.step(job_id)
        result: list[str] = await self.inner.posts_of(job_id, surface)
        return result


def freeze_owner(owner: Running, freezer: Freezer) -> None:
    store: Any = owner.bot.store
    moved: Callable[..., Awaitable[bool]] = store.transition
    delivered: Callable[..., Awaitable[bool]] = store.delivered

    async def transition(job_id: str, to: JobState, **fields: Any) -> bool:
        if to is JobState.DELIVERING:
            await freezer.step(job_id)
        return await moved(job_id, to, **fields)

    async def record_delivered(job_id: str, surface: str, posts: list[tuple[str, str | None]]) -> bool:
        await freezer.step(job_id)
        return await delivered(job_id, surface, posts)

    store.transition = transition
    store.delivered = record_delivered
    owner.adapter.poster.memory = FreezingMemory(owner.adapter.poster.memory, freezer)


async def one_round(
    owner: Running, other: Running, freezer: Freezer, clock: Clock, n: int
) -> tuple[Job, list[str]]:
    """The job of round `n`, and the Slack methods its owner called once woken."""
    fake = owner.fake
    step = n % len(STEPS)
    freezer.arm(step)
    assert await owner.send.command(fake.slash(f"a lighthouse at dusk, take {n} --size 256x256")) == 200
    async with asyncio.timeout(30):
        await freezer.frozen.wait()
    job_id = freezer.job_id
    # Frozen past its lease: the other replica claims the job (its lease lapsed) and delivers it.
    clock.ahead += LEASE + 1
    other.bot.runner.start(job_id)
    taken = await other.bot.runner.wait_job(job_id)
    assert taken is not None and taken.state is JobState.DELIVERED, (STEPS[step], taken)
    calls = len(fake.calls)
    freezer.thawed.set()
    await owner.bot.runner.wait_job(job_id)
    return taken, [f"{STEPS[step]}: {method}" for method, _ in fake.calls[calls:]]


@pytest.mark.timeout(180)
async def test_a_replica_frozen_past_its_lease_posts_nothing_at_any_delivery_step(
    tmp_path: Path, pg_url: str
) -> None:
    env: dict[str, Any] = {
        "HIDREAM_DATABASE_URL": pg_url,
        "HIDREAM_LEASE_SECONDS": LEASE,
        "HIDREAM_DAILY_IMAGE_QUOTA": 1000,
    }
    clock = Clock()
    for name in ("owner", "other"):
        (tmp_path / name).mkdir()
    async with (
        FakeSlack() as fake,
        running(tmp_path / "owner", fake, "http", **env) as owner,
        running(tmp_path / "other", fake, "http", **env) as other,
    ):
        for bot in (owner, other):
            bot.bot.store.clock = clock
            # The sandbox's picture is ready at once: look for it at once, not at its usual pace.
            bot.bot.provider.poll_interval = 0.005
        freezer = Freezer()
        freeze_owner(owner, freezer)
        rounds = [await one_round(owner, other, freezer, clock, n) for n in range(ROUNDS)]
        jobs = [job for job, _ in rounds]

        # Each job's summaries, and the images in its thread (one a job), as Slack holds them.
        posted = {job.id: [0, 0] for job in jobs}
        for summary in summaries(fake):
            posted[job_id_of(summary)][0] += 1
        for job in jobs:
            thread = [f for m in file_messages(fake, job.origin["thread_ts"]) for f in m["files"]]
            posted[job.id][1] = sum(f["name"].startswith(f"hidream-{job.id}-") for f in thread)
        double_posts = sum(max(0, n - 1) for counts in posted.values() for n in counts)
        lost = sum(1 for counts in posted.values() if 0 in counts)
        assert (double_posts, lost, len(posted)) == (0, 0, ROUNDS), posted
        # Woken, the owner said nothing to Slack: no upload, no summary, not even a status edit.
        assert [call for _, woken in rounds for call in woken] == []


# --- the fence in the store, on both backends ------------------------------------------------------


class StoreClock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


async def test_a_hold_is_confirmed_until_another_replica_claims_the_job(open_store: OpenStore) -> None:
    clock = StoreClock()
    async with (
        open_store(default_limit=100, clock=clock) as a,
        open_store(default_limit=100, clock=clock) as b,
    ):
        job = await a.admit(make_job(), workspace_key="test:w1", dedup_key=None, lease=Lease("first", 30))
        first, second = replicas_for(a, "first"), replicas_for(b, "second")
        admitted = first.hold(job.id, 30)  # held from its first row: generation 0
        assert await first.confirm(admitted)
        clock.now += 29
        # A confirmed hold is a renewed one: 29 s on, the lease still lasts a whole one.
        assert await first.confirm(admitted)
        clock.now += 29
        assert not await second.claim(job.id, 30)
        clock.now += 2  # lapsed, and nobody claimed it yet: the admitting replica still holds it
        assert await first.confirm(admitted)
        clock.now += 31
        assert await second.claim_free(30, 10, surfaces=["test"], providers=["sandbox"]) == [job.id]
        assert not await first.confirm(admitted)
        assert await second.confirm(second.hold(job.id, 30))
        # After the second's lease lapsed, the first claims the job again: a hold reads its latest claim.
        clock.now += 31
        assert await first.claim(job.id, 30)
        assert await first.confirm(admitted)
        assert not await second.confirm(second.hold(job.id, 30))


async def test_a_name_alone_is_no_proof_the_generation_is(open_store: OpenStore) -> None:
    # A bot restarted on SQLite keeps its replica's name; the process before it may still be running.
    clock = StoreClock()
    async with (
        open_store(default_limit=100, clock=clock) as a,
        open_store(default_limit=100, clock=clock) as b,
    ):
        job = await a.admit(make_job(), workspace_key="test:w1", dedup_key=None)
        before, after = replicas_for(a, "same"), replicas_for(b, "same")
        assert await before.claim(job.id, 30)
        held = before.hold(job.id, 30)
        assert await before.confirm(held)
        assert await after.claim_free(30, 10, surfaces=["test"], providers=["sandbox"], ours=True) == [job.id]
        assert not await before.confirm(held)
        assert await after.confirm(after.hold(job.id, 30))


async def test_a_fenced_record_of_a_post_checks_the_hold_in_its_own_transaction(
    open_store: OpenStore,
) -> None:
    clock = StoreClock()
    async with (
        open_store(default_limit=100, clock=clock) as a,
        open_store(default_limit=100, clock=clock) as b,
    ):
        job = await a.admit(make_job(), workspace_key="test:w1", dedup_key=None)
        first, second = replicas_for(a, "first"), replicas_for(b, "second")
        assert await first.claim(job.id, 30)
        for state in (JobState.SUBMITTING, JobState.RUNNING, JobState.COMPLETED, JobState.DELIVERING):
            assert await a.transition(job.id, state)
        hold = first.hold(job.id, 30)
        with fenced_by(hold):
            await a.remember_post(job.id, "test", "m1", None)
            assert await a.posts_of(job.id, "test") == ["m1"]
        clock.now += 31
        assert await second.claim(job.id, 30)
        with fenced_by(hold):
            with pytest.raises(LeaseLost):
                await a.posts_of(job.id, "test")
            with pytest.raises(LeaseLost):
                await a.remember_post(job.id, "test", "m2", None)
            with pytest.raises(LeaseLost):
                await a.delivered(job.id, "test", [("m2", "t1")])
            # Another job's records are not this hold's business.
            assert await a.posts_of("another-job", "test") == []
        # Nothing of the fenced-off writes was kept; the job waits for the replica that holds it.
        assert await b.posts_of(job.id, "test") == ["m1"]
        stored = await b.job(job.id)
        assert stored is not None and stored.state is JobState.DELIVERING
        with fenced_by(second.hold(job.id, 30)):
            assert await b.delivered(job.id, "test", [("m1", "t1")])
