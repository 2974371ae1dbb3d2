"""A job handed to another provider before any provider took it (the store's `move_job`: its provider
and cost change on the job and its ledger row, under its tenant's lock, within its budget)."""

from __future__ import annotations

from storage.base import Store


async def move_job(
    store: Store, job_id: str, *, from_provider: str, to_provider: str, cost_usd: float
) -> bool:
    """Move a job that is still `submitting` at `from_provider`, with no provider id, to
    `to_provider` at `cost_usd`. False (nothing changed) when it is no longer such a job, or when the
    new price would pass its tenant's monthly budget."""
    return await store.move_job(
        job_id, from_provider=from_provider, to_provider=to_provider, cost_usd=cost_usd
    )
