"""The one table of job state changes, walked against the store: every allowed change works and has
its ledger effect; every other one is refused and changes nothing. On both backends."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from bot.model.jobs import LEDGER_EFFECT, TERMINAL, TRANSITIONS, JobState, LedgerState
from storage.store import Store
from tests.support.jobs import NOW, make_job, walk
from tests.support.store_backends import OpenStore, raw_job


async def put_in(store: Store, state: JobState) -> str:
    """A new job brought to `state` through allowed changes only."""
    job = await store.admit(make_job(), workspace_key="test:w1", dedup_key=None)
    if state is JobState.FAILED:
        assert await store.transition(job.id, JobState.FAILED)
    elif state is not JobState.QUEUED:
        await walk(store, job.id, state)
    return job.id


async def snapshot(store: Store, job_id: str) -> tuple[dict[str, Any], str]:
    return await raw_job(store, job_id)


def test_the_table_keeps_finished_jobs_finished() -> None:
    assert set(TRANSITIONS) == set(JobState)
    for to, sources in TRANSITIONS.items():
        assert not sources & TERMINAL, f"a finished job may not become {to}"
    assert TRANSITIONS[JobState.FAILED] == frozenset(JobState) - TERMINAL
    assert TRANSITIONS[JobState.DELIVERED] == {JobState.DELIVERING}
    assert LEDGER_EFFECT == {JobState.DELIVERED: LedgerState.COMMITTED, JobState.FAILED: LedgerState.RELEASED}


@pytest.mark.parametrize(("src", "dst"), list(itertools.product(JobState, JobState)))
async def test_every_change_is_allowed_by_the_table_or_refused(
    open_store: OpenStore, src: JobState, dst: JobState
) -> None:
    clock = [NOW]
    async with open_store(default_limit=25, clock=lambda: clock[0]) as store:
        job_id = await put_in(store, src)
        before, ledger_before = await snapshot(store, job_id)
        assert before["state"] == src
        clock[0] += 10
        changed = await store.transition(job_id, dst, error="noted")
        after, ledger_after = await snapshot(store, job_id)
        if src in TRANSITIONS[dst]:
            assert changed
            assert after["state"] == dst and after["error"] == "noted" and after["updated_at"] == clock[0]
            assert ledger_after == LEDGER_EFFECT.get(dst, ledger_before)
        else:
            assert not changed
            assert (after, ledger_after) == (before, ledger_before)


async def test_annotate_changes_fields_only_in_the_named_state(open_store: OpenStore) -> None:
    async with open_store(default_limit=25, clock=lambda: NOW) as store:
        job_id = await put_in(store, JobState.SUBMITTING)
        assert not await store.annotate(job_id, JobState.RUNNING, error="not here")
        assert (await snapshot(store, job_id))[0]["error"] is None
        assert await store.annotate(job_id, JobState.SUBMITTING, error="answer lost")
        row, ledger = await snapshot(store, job_id)
        assert (row["state"], row["error"], ledger) == (
            JobState.SUBMITTING,
            "answer lost",
            LedgerState.RESERVED,
        )
