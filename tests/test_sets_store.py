"""Sets in the store, on both backends: a set's images and dollars are reserved, and its jobs stored,
in one transaction or not at all; a repeated set returns the first one's jobs; a held set is taken
once, only by its requester in their tenant, and not after its lifetime."""

from __future__ import annotations

import asyncio

import pytest

from bot.model.errors import QuotaExceeded
from storage.sets import PendingSets
from tests.support.jobs import NOW, make_job
from tests.support.store_backends import OpenStore


async def count(store: object, sql: str) -> int:
    async with store.database.transaction() as db:  # type: ignore[attr-defined]
        row = await db.fetchrow(sql)
    return int(row[0])


async def test_a_set_is_reserved_whole_or_not_at_all(open_store: OpenStore) -> None:
    async with open_store(default_limit=2, clock=lambda: NOW) as store:
        three = [make_job() for _ in range(3)]
        with pytest.raises(
            QuotaExceeded, match="That asks for 3 images but you have 2 of 2 left today"
        ) as refused:
            await store.admit_set(three, workspace_key="test:w1", dedup_keys=None)
        assert "fewer `{...}` choices or a smaller `--repeat`" in refused.value.user_message
        # One job of three images is made smaller with --n.
        with pytest.raises(QuotaExceeded, match="Ask for fewer with `--n`"):
            await store.admit(make_job(n=3), workspace_key="test:w1", dedup_key=None)
        assert await count(store, "SELECT COUNT(*) FROM jobs") == 0
        assert await count(store, "SELECT COUNT(*) FROM ledger") == 0
        assert (await store.quota("test:u1", "test:w1")).used == 0

        two = [make_job() for _ in range(2)]
        stored = await store.admit_set(two, workspace_key="test:w1", dedup_keys=["k#0", "k#1"])
        assert [j.id for j in stored] == [j.id for j in two]
        assert (await store.quota("test:u1", "test:w1")).used == 2
        # The same set again (a resent platform event) is the first one, and reserves nothing more.
        again = await store.admit_set(
            [make_job(), make_job()], workspace_key="test:w1", dedup_keys=["k#0", "k#1"]
        )
        assert [j.id for j in again] == [j.id for j in two]
        assert await count(store, "SELECT COUNT(*) FROM jobs") == 2


async def test_a_set_and_its_budget(open_store: OpenStore) -> None:
    async with open_store(default_limit=25, clock=lambda: NOW) as store:
        await store.set_budget("test:w1", 0.10)
        jobs = [make_job() for _ in range(3)]
        for job in jobs:
            job.cost_usd = 0.04
        with pytest.raises(QuotaExceeded, match="budget"):
            await store.admit_set(jobs, workspace_key="test:w1", dedup_keys=None)
        assert await count(store, "SELECT COUNT(*) FROM jobs") == 0
        await store.admit_set(jobs[:2], workspace_key="test:w1", dedup_keys=None)
        assert await count(store, "SELECT COUNT(*) FROM ledger") == 2


async def test_two_sets_at_once_never_pass_the_limit_together(open_store: OpenStore) -> None:
    async with (
        open_store(default_limit=5, clock=lambda: NOW) as a,
        open_store(default_limit=5, clock=lambda: NOW) as b,
    ):
        outcomes = await asyncio.gather(
            a.admit_set([make_job() for _ in range(3)], workspace_key="test:w1", dedup_keys=None),
            b.admit_set([make_job() for _ in range(3)], workspace_key="test:w1", dedup_keys=None),
            return_exceptions=True,
        )
        assert sorted(type(o).__name__ for o in outcomes) == ["QuotaExceeded", "list"]
        assert (await a.quota("test:u1", "test:w1")).used == 3


async def test_a_held_set_is_taken_once_by_its_requester(open_store: OpenStore) -> None:
    now = [NOW]
    async with open_store(default_limit=25, clock=lambda: now[0]) as store:
        held = PendingSets(store)
        set_id = await held.hold("test", "test:w1", "u1", '[{"x": 1}]')
        assert await held.owner(set_id) == ("test", "test:w1", "u1")
        assert await held.take(set_id, "test", "test:w1", "u2", 900) is None
        assert await held.take(set_id, "test", "test:w2", "u1", 900) is None
        assert await held.take(set_id, "test", "test:w1", "u1", 900) == '[{"x": 1}]'
        assert await held.take(set_id, "test", "test:w1", "u1", 900) is None

        late = await held.hold("test", "test:w1", "u1", "[]")
        now[0] += 901
        assert await held.take(late, "test", "test:w1", "u1", 900) is None
        assert await held.owner(late) is None  # swept
        forgotten = await held.hold("test", "test:w1", "u1", "[]")
        now[0] += 901
        await held.hold("test", "test:w1", "u2", "[]", 900)
        assert await held.owner(forgotten) is None  # swept when the next set is held
