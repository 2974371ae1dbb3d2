"""A job handed to another provider before any provider took it: its provider and its cost change,
on the job and on its ledger row in one transaction, so spend is recorded against the provider that
makes the image. On both backends."""

from __future__ import annotations

from bot.model.jobs import JobState, LedgerState
from storage.base import Store
from storage.sql import Sql

_JOB = (
    "UPDATE jobs SET provider=?, cost_usd=?, updated_at=? "
    "WHERE id=? AND provider=? AND state=? AND provider_job_id IS NULL"
)
_LEDGER = "UPDATE ledger SET cost_usd=? WHERE job_id=? AND state=?"


async def move_job(
    store: Store, job_id: str, *, from_provider: str, to_provider: str, cost_usd: float
) -> bool:
    """Move a job that is still `submitting` at `from_provider`, with no provider id, to
    `to_provider` at `cost_usd`. False (nothing changed) when it is no longer such a job."""
    job_args = (
        to_provider,
        float(cost_usd),
        float(store.clock()),
        job_id,
        from_provider,
        JobState.SUBMITTING.value,
    )
    ledger_args = (float(cost_usd), job_id, LedgerState.RESERVED.value)
    async with Sql(store).transaction() as writes:
        if await writes.execute(_JOB, *job_args) != 1:
            return False
        await writes.execute(_LEDGER, *ledger_args)
    return True
