"""Shared by several test modules (moved from tests/test_store.py)."""

from __future__ import annotations

import secrets

from bot.model.jobs import Job, JobState
from bot.model.requests import ImageRequest
from storage.store import Store

HAPPY_PATH = (
    JobState.SUBMITTING,
    JobState.RUNNING,
    JobState.COMPLETED,
    JobState.DELIVERING,
    JobState.DELIVERED,
)

NOW = 1_790_000_000.0  # a fixed clock: 2026-09-21 UTC


def make_job(user: str = "u1", n: int = 1, job_id: str | None = None) -> Job:
    return Job(
        id=job_id or secrets.token_hex(16),
        surface="test",
        user_id=user,
        workspace_id="w1",
        origin={"channel": "c1"},
        request=ImageRequest(prompt="a fox", n=n, seed=1),
        tier="full",
        provider="sandbox",
        state=JobState.QUEUED,
        callback_token=secrets.token_urlsafe(16),
        created_at=NOW,
        deadline=NOW + 900,
        seed=1,
    )


async def walk(store: Store, job_id: str, to: JobState) -> None:
    """Move a queued job along the happy path until it is in `to`."""
    for state in HAPPY_PATH[: HAPPY_PATH.index(to) + 1]:
        assert await store.transition(job_id, state)
