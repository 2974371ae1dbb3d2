"""A failover's new price is a charge like admission's: checked and taken under the tenant's lock, on
both backends. Fifteen jobs failing over at once, from several stores (as several replicas would),
never take a tenant past its monthly budget."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

from bot.model.jobs import JobState
from tests.support.jobs import NOW, make_job
from tests.support.store_backends import OpenStore

TENANT = "test:w1"
BUDGET = 0.20
CHEAP, DEAR = 0.01, 0.044
JOBS = 15


async def test_fifteen_jobs_failing_over_at_once_never_pass_the_budget(open_store: OpenStore) -> None:
    async with AsyncExitStack() as stack:
        stores = [
            await stack.enter_async_context(open_store(default_limit=100, clock=lambda: NOW))
            for _ in range(3)
        ]
        first = stores[0]
        await first.set_budget(TENANT, BUDGET)
        jobs = []
        for i in range(JOBS):
            job = make_job(user=f"u{i}")
            job.provider, job.cost_usd = "pixazo", CHEAP
            await first.admit(job, workspace_key=TENANT, dedup_key=None)
            assert await first.transition(job.id, JobState.SUBMITTING)
            jobs.append(job)
        assert round((await first.quota("test:u0", TENANT)).month_spent_usd, 6) == round(JOBS * CHEAP, 6)

        moved = await asyncio.gather(
            *(
                stores[i % len(stores)].move_job(
                    job.id,
                    from_provider="pixazo",
                    to_provider="atlascloud",
                    cost_usd=DEAR,
                )
                for i, job in enumerate(jobs)
            )
        )

        spent = (await first.quota("test:u0", TENANT)).month_spent_usd
        assert spent <= BUDGET + 1e-9, f"{spent:.2f} dollars against a {BUDGET:.2f} budget"
        # As many as the budget holds moved (0.15 + 0.034 fits, a second does not), and each of them
        # whole: its job and its ledger row name the new provider and price together.
        assert sum(moved) == 1
        for job, went in zip(jobs, moved, strict=True):
            stored = await first.job(job.id)
            assert stored is not None
            assert (stored.provider, round(stored.cost_usd, 6)) == (
                ("atlascloud", DEAR) if went else ("pixazo", CHEAP)
            )
        assert round(spent, 6) == round((JOBS - 1) * CHEAP + DEAR, 6)


async def test_a_failover_within_the_budget_moves_and_one_without_a_budget_always_does(
    open_store: OpenStore,
) -> None:
    async with open_store(default_limit=100, clock=lambda: NOW) as store:
        await store.set_budget(TENANT, 1.0)
        within, unbudgeted = make_job(), make_job()
        for job, tenant in ((within, TENANT), (unbudgeted, "test:w2")):
            job.provider, job.cost_usd = "pixazo", CHEAP
            await store.admit(job, workspace_key=tenant, dedup_key=None)
            assert await store.transition(job.id, JobState.SUBMITTING)
            assert await store.move_job(
                job.id, from_provider="pixazo", to_provider="atlascloud", cost_usd=DEAR
            )
        # A job no longer holding a reservation (finished, or never admitted) is not moved.
        assert not await store.move_job(
            "0" * 32, from_provider="atlascloud", to_provider="pixazo", cost_usd=CHEAP
        )
