"""Saved subjects in the store, on both backends: names are unique per tenant ignoring case, one
tenant never sees another's, and retention keeps a subject's old images while it exists and deletes
them once it is gone and they are old."""

from __future__ import annotations

from bot.jobs.retention import DAY, Retention
from storage.subjects import Subject, Subjects
from tests.support.jobs import NOW
from tests.support.retention import Clock, held, put
from tests.support.store_backends import OpenStore


async def test_names_are_unique_per_tenant_ignoring_case(open_store: OpenStore) -> None:
    async with open_store(default_limit=10) as store:
        table = Subjects(store)
        a, b = await put(store), await put(store)
        assert await table.add(Subject("discord:A", "Mascot", "discord:u1", [a, b]))
        assert not await table.add(Subject("discord:A", "mascot", "discord:u2", [b]))
        assert await table.add(Subject("discord:B", "mascot", "discord:u3", [b]))
        found = await table.find("discord:A", "MASCOT")
        assert found is not None and (found.name, found.creator, found.media) == (
            "Mascot",
            "discord:u1",
            [a, b],
        )
        assert [s.tenant for s in await table.all("discord:B")] == ["discord:B"]
        assert await table.find("discord:C", "mascot") is None
        assert await table.delete("discord:A", "mascot")
        assert not await table.delete("discord:A", "mascot")
        assert await table.find("discord:A", "mascot") is None
        assert await table.find("discord:B", "mascot") is not None


async def test_retention_keeps_a_subjects_images_until_it_is_deleted(open_store: OpenStore) -> None:
    clock = Clock()
    async with open_store(default_limit=10, clock=clock) as store:
        table = Subjects(store)
        kept_a, kept_b, loose = await put(store), await put(store), await put(store)
        assert await table.add(Subject("slack:T1", "mascot", "slack:U1", [kept_a, kept_b]))
        clock.now = NOW + 40 * DAY

        swept = await Retention(store, 30, clock=clock).sweep()
        assert swept.media == 1
        assert await held(store, kept_a, kept_b, loose) == [True, True, False]

        assert await table.delete("slack:T1", "mascot")
        swept = await Retention(store, 30, clock=clock).sweep()
        assert swept.media == 2
        assert await held(store, kept_a, kept_b) == [False, False]


async def test_a_deleted_subjects_recent_images_wait_until_they_are_old(open_store: OpenStore) -> None:
    clock = Clock()
    async with open_store(default_limit=10, clock=clock) as store:
        table = Subjects(store)
        image = await put(store)
        assert await table.add(Subject("console:local", "fox", "console:local", [image]))
        assert await table.delete("console:local", "fox")
        clock.now = NOW + 10 * DAY
        assert (await Retention(store, 30, clock=clock).sweep()).media == 0
        assert await held(store, image) == [True]
        clock.now = NOW + 31 * DAY
        assert (await Retention(store, 30, clock=clock).sweep()).media == 1
        assert await held(store, image) == [False]
