"""Leases: a job is worked by the one replica that holds it; a lapsed or released lease is taken over;
news of a job that reaches another replica wakes its owner; a platform event is handled once whichever
replica it reaches. The store half runs on both backends; the bots here share one PostgreSQL database
as replicas on several machines would."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx

from bot.jobs.quota_policy import POLICY
from bot.model.jobs import JobState
from storage.replicas import SEEN_FOR, replicas_for
from storage.rows import Lease
from tests.fakes.surface import RecordingSurface
from tests.support.harness import until
from tests.support.holding import HoldingProvider, chat
from tests.support.jobs import NOW, make_job
from tests.support.replicas import replica
from tests.support.store_backends import OpenStore


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


async def test_a_live_lease_is_kept_and_a_lapsed_one_is_taken_over(open_store: OpenStore) -> None:
    clock = Clock()
    # Two stores on one database, as two processes would open it.
    async with (
        open_store(default_limit=100, clock=clock) as a,
        open_store(default_limit=100, clock=clock) as b,
    ):
        job = await a.admit(make_job(), workspace_key="test:w1", dedup_key=None)
        first, second = replicas_for(a, "first"), replicas_for(b, "second")
        able: dict[str, Any] = {"surfaces": ["test"], "providers": ["sandbox"]}
        assert await first.claim(job.id, 30)
        assert await first.claim(job.id, 30)  # its own again: still held
        assert not await second.claim(job.id, 30)
        assert await second.claim_free(30, 10, **able) == []
        clock.now += 29
        assert await first.renew([job.id], 30) == {job.id}  # lasts until NOW + 59 now
        clock.now += 29  # NOW + 58: still held
        assert not await second.claim(job.id, 30)
        assert await second.claim_free(30, 10, **able) == []
        clock.now += 2  # NOW + 60: the first replica's last renewal lapsed
        assert await second.claim_free(30, 10, **able) == [job.id]
        assert await first.renew([job.id], 30) == set()  # it learns it lost the job
        assert not await first.claim(job.id, 30)
        assert await second.renew([job.id], 30) == {job.id}


async def test_a_job_is_its_admitting_replicas_from_its_first_row(open_store: OpenStore) -> None:
    clock = Clock()
    async with (
        open_store(default_limit=100, clock=clock) as a,
        open_store(default_limit=100, clock=clock) as b,
    ):
        job = await a.admit(make_job(), workspace_key="test:w1", dedup_key=None, lease=Lease("first", 30))
        second = replicas_for(b, "second")
        # Before the admitting replica's task has taken its first step, no other replica takes it.
        assert await second.claim_free(30, 10, surfaces=["test"], providers=["sandbox"]) == []
        assert not await second.claim(job.id, 30)
        clock.now += 29
        assert await second.claim_free(30, 10, surfaces=["test"], providers=["sandbox"]) == []
        clock.now += 2  # the admitting replica never renewed it: it died before the first step
        assert await second.claim_free(30, 10, surfaces=["test"], providers=["sandbox"]) == [job.id]


async def test_released_jobs_are_free_at_once_and_finished_ones_are_never_claimed(
    open_store: OpenStore,
) -> None:
    clock = Clock()
    async with (
        open_store(default_limit=100, clock=clock) as a,
        open_store(default_limit=100, clock=clock) as b,
    ):
        kept = await a.admit(make_job(), workspace_key="test:w1", dedup_key=None)
        done = await a.admit(make_job(), workspace_key="test:w1", dedup_key=None)
        first, second = replicas_for(a, "first"), replicas_for(b, "second")
        assert await first.claim(kept.id, 30) and await first.claim(done.id, 30)
        await first.release([kept.id])
        assert await a.transition(done.id, JobState.FAILED, error="gave up")
        await first.release([done.id])
        assert await second.claim_free(30, 10, surfaces=["test"], providers=["sandbox"]) == [kept.id]
        assert not await second.claim(done.id, 30)
        clock.now += 3600  # every lease lapsed: the unfinished job is free again, the finished one never
        assert await first.claim_free(30, 10, surfaces=["test"], providers=["sandbox"]) == [kept.id]


async def test_a_replica_claims_only_jobs_it_can_work(open_store: OpenStore) -> None:
    async with open_store(default_limit=100, clock=Clock()) as store:
        other_surface = await store.admit(
            replace(make_job(), surface="slack"), workspace_key="slack:w1", dedup_key=None
        )
        other_provider = await store.admit(
            replace(make_job(), provider="fal"), workspace_key="test:w1", dedup_key=None
        )
        finished_elsewhere = await store.admit(
            replace(make_job(), provider="fal"), workspace_key="test:w1", dedup_key=None
        )
        for state in (JobState.SUBMITTING, JobState.RUNNING, JobState.COMPLETED):
            assert await store.transition(finished_elsewhere.id, state)
        replicas = replicas_for(store, "here")
        # A job at its provider needs that provider here; a finished one only its surface.
        taken = await replicas.claim_free(30, 10, surfaces=["test"], providers=["sandbox"])
        assert taken == [finished_elsewhere.id]
        assert other_surface.id not in taken and other_provider.id not in taken
        assert await replicas.claim_free(30, 10, surfaces=[], providers=["sandbox", "fal"]) == []
        assert await replicas.claim_free(30, 10, surfaces=["test"], providers=["fal"]) == [other_provider.id]


async def test_an_event_is_seen_first_once_across_stores(open_store: OpenStore) -> None:
    clock = Clock()
    async with (
        open_store(default_limit=100, clock=clock) as a,
        open_store(default_limit=100, clock=clock) as b,
    ):
        first, second = replicas_for(a, "first"), replicas_for(b, "second")
        assert await first.first_sight("slack:event:Ev1")
        assert not await second.first_sight("slack:event:Ev1")
        assert not await first.first_sight("slack:event:Ev1")
        assert await second.first_sight("slack:event:Ev2")
        # Long after, the memory of it is pruned: the table does not grow forever.
        clock.now += SEEN_FOR + 3600
        assert await first.first_sight("slack:event:Ev3")
        assert await second.first_sight("slack:event:Ev1")


async def test_a_notify_reaches_a_listening_replica(pg_url: str) -> None:
    from storage.postgres import PostgresStore

    async with (
        PostgresStore(pg_url, policy=POLICY, default_limit=5) as a,
        PostgresStore(pg_url, policy=POLICY, default_limit=5) as b,
    ):
        heard: asyncio.Queue[str] = asyncio.Queue()
        listener = replicas_for(b)
        await listener.listen(heard.put_nowait)
        try:
            await replicas_for(a).notify("job-1")
            async with asyncio.timeout(30):
                assert await heard.get() == "job-1"
        finally:
            await listener.close()


async def test_a_callback_reaching_another_replica_wakes_the_owner(tmp_path: Path, pg_url: str) -> None:
    owner_surface, other_surface = RecordingSurface(), RecordingSurface()
    async with (
        replica(tmp_path, "a", pg_url, owner_surface) as owner,
        replica(tmp_path, "b", pg_url, other_surface) as other,
    ):
        held = HoldingProvider()
        owner.engine.providers["sandbox"] = held
        other.engine.providers["sandbox"] = HoldingProvider()
        job = await owner.engine.submit(chat(1))
        await until(lambda: len(held.held) == 1)
        held.released.update(held.held)
        # The provider's callback (a hint: this provider does not sign) reaches the other replica.
        async with httpx.AsyncClient() as client:
            answer = await client.post(f"{other.server.url}/webhooks/{job.callback_token}", content=b"{}")
        assert answer.status_code < 300
        await until(lambda: owner_surface.deliveries)
        assert [job_id for job_id, _ in owner_surface.deliveries] == [job.id]
        assert other_surface.deliveries == []
        # The surface has the images before the runner records the delivery: let its task end first.
        await owner.runner.wait_idle()
        stored = await other.store.job(job.id)
        assert stored is not None and stored.state is JobState.DELIVERED


async def test_a_dead_replicas_job_is_taken_over_and_delivered_once(tmp_path: Path, pg_url: str) -> None:
    dead_surface, survivor_surface = RecordingSurface(), RecordingSurface()
    lease = {"HIDREAM_LEASE_SECONDS": 1}
    async with replica(tmp_path, "survivor", pg_url, survivor_surface, **lease) as survivor:
        taken_over = HoldingProvider()
        survivor.engine.providers["sandbox"] = taken_over
        dying = replica(tmp_path, "dead", pg_url, dead_surface, **lease)
        dead = await dying.__aenter__()
        first = HoldingProvider()
        dead.engine.providers["sandbox"] = first
        job = await dead.engine.submit(chat(2))
        await until(lambda: len(first.held) == 1)
        # `held` is set inside the submit, before the move to `running` is stored: wait for the row.
        async with asyncio.timeout(60):
            while (stored := await dead.store.job(job.id)) is None or stored.state is not JobState.RUNNING:  # noqa: ASYNC110
                await asyncio.sleep(0.01)

        # It dies: its tasks stop, and it neither releases nor renews its lease.
        async def no_release(job_ids: Any) -> None:
            return None

        dead.runner.replicas.release = no_release  # type: ignore[method-assign]
        await dying.__aexit__(None, None, None)
        stored = await survivor.store.job(job.id)
        assert stored is not None and stored.state is JobState.RUNNING

        # The survivor claims it once the lease lapsed and carries on from the stored state: the
        # provider id it reads is the dead replica's, never a second submit.
        await until(lambda: job.id in survivor.runner._tasks)
        taken_over.released.add(f"held-{job.id}")
        survivor.runner.wake(job.id)
        await until(lambda: survivor_surface.deliveries)
        assert [job_id for job_id, _ in survivor_surface.deliveries] == [job.id]
        assert dead_surface.deliveries == [] and sum(taken_over.submits.values()) == 0
        assert first.submits[job.id] == 1
        status = await survivor.engine.quota("test", job.user_id, job.workspace_id)
        assert status.used == 1


async def test_a_clean_stop_lets_go_of_its_jobs_for_the_next_replica(tmp_path: Path, pg_url: str) -> None:
    first_surface, next_surface = RecordingSurface(), RecordingSurface()
    async with replica(tmp_path, "first", pg_url, first_surface) as first:
        held = HoldingProvider()
        first.engine.providers["sandbox"] = held
        job = await first.engine.submit(chat(3))
        await until(lambda: len(held.held) == 1)
        row = await first.store.pool.fetchrow("SELECT owner, lease_until FROM jobs WHERE id=$1", job.id)  # type: ignore[attr-defined]
        assert row["owner"] == first.runner.replicas.owner and row["lease_until"] is not None
    async with replica(tmp_path, "next", pg_url, next_surface) as following:
        row = await following.store.pool.fetchrow("SELECT owner FROM jobs WHERE id=$1", job.id)  # type: ignore[attr-defined]
        # Released at the stop, so the next replica took it up as it started, not a lease later.
        assert row["owner"] == following.runner.replicas.owner
        assert job.id in following.runner._tasks


async def test_a_replica_whose_line_is_full_leaves_new_jobs_to_the_others(
    tmp_path: Path, pg_url: str
) -> None:
    busy_surface, idle_surface = RecordingSurface(), RecordingSurface()
    one = {"HIDREAM_MAX_ACTIVE_JOBS": 1, "HIDREAM_LEASE_SECONDS": 1}
    async with replica(tmp_path, "busy", pg_url, busy_surface, **one) as busy:
        held = HoldingProvider()
        busy.engine.providers["sandbox"] = held
        # One job worked and one waiting fill its line (twice HIDREAM_MAX_ACTIVE_JOBS).
        kept = [await busy.engine.submit(chat(10)), await busy.engine.submit(chat(11))]
        await until(lambda: len(held.held) == 1 and len(busy.runner._tasks) == 2)
        extra = await busy.engine.submit(chat(12))
        row = await busy.store.pool.fetchrow("SELECT owner FROM jobs WHERE id=$1", extra.id)  # type: ignore[attr-defined]
        assert row["owner"] is None and extra.id not in busy.runner._tasks
        async with replica(tmp_path, "idle", pg_url, idle_surface, **one) as idle:
            taker = HoldingProvider()
            idle.engine.providers["sandbox"] = taker
            # The idle replica takes it up (as it starts, or at its next look) and works it.
            await until(lambda: len(taker.held) == 1)
            assert list(taker.held.values()) == [extra.id]
            assert all(job.id in busy.runner._tasks for job in kept)
