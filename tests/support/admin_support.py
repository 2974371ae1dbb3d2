"""Jobs with known figures for the operators' page tests, stored straight into a running bot's store."""

from __future__ import annotations

import secrets
import time

from bot.model.jobs import Job, JobState
from bot.model.requests import ImageRequest
from storage.store import Store

TOKEN = "test-admin-token-0123456789"
HAPPY_PATH = (
    JobState.SUBMITTING,
    JobState.RUNNING,
    JobState.COMPLETED,
    JobState.DELIVERING,
    JobState.DELIVERED,
)


def job(
    user: str,
    tenant: str,
    provider: str,
    *,
    n: int = 1,
    cost: float = 0.0,
    prompt: str = "a fox",
    days_ago: int = 0,
) -> Job:
    now = time.time() - days_ago * 86400
    return Job(
        id=secrets.token_hex(16),
        # No surface of this name runs in the tests' bots, so no runner ever claims these jobs.
        surface="paper",
        user_id=user,
        workspace_id=tenant,
        origin={},
        request=ImageRequest(prompt=prompt, n=n, seed=1),
        tier="full",
        provider=provider,
        state=JobState.QUEUED,
        callback_token=secrets.token_urlsafe(16),
        created_at=now,
        deadline=now + 900,
        seed=1,
        cost_usd=cost,
    )


async def stored(
    store: Store, made: Job, tenant: str, *, to: JobState | None, error: str | None = None
) -> Job:
    await store.admit(made, workspace_key=tenant, dedup_key=None)
    if to is JobState.DELIVERED:
        for state in HAPPY_PATH:
            assert await store.transition(made.id, state)
    elif to is JobState.FAILED:
        assert await store.transition(made.id, JobState.FAILED, error=error)
    return made


async def fill(store: Store) -> None:
    """Two tenants, two providers: 4 images ($0.18) delivered, one failure, one job waiting."""
    await stored(store, job("u1", "w1", "fal", n=2, cost=0.10), "paper:w1", to=JobState.DELIVERED)
    await stored(
        store, job("u2", "w1", "wavespeed", cost=0.03, days_ago=2), "paper:w1", to=JobState.DELIVERED
    )
    await stored(
        store,
        job("u3", "w2", "fal", cost=0.05, prompt="<script>alert(1)</script>"),
        "paper:w2",
        to=JobState.DELIVERED,
    )
    failed = job("u1", "w1", "fal", cost=0.05)
    await stored(store, failed, "paper:w1", to=JobState.FAILED, error="fal is out of credit")
    await stored(store, job("u3", "w2", "fal", cost=0.02), "paper:w2", to=None)
    await store.set_budget("paper:w1", 40.0)
    await store.set_limit("paper:w1", "ceiling", "", 50, by="operator")
