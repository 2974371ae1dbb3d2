"""Saved subjects in the store, on both backends: names are unique per tenant ignoring case, one
tenant never sees another's, and retention keeps a subject's old images while it exists and deletes
them once it is gone and they are old; a tenant's subjects are bounded in number and bytes (also
when saved at the same moment), and one unused for its retention goes with its images."""

from __future__ import annotations

import asyncio

import pytest

from bot.jobs.retention import DAY, Retention, Swept
from bot.jobs.subjects import SubjectBook
from bot.model.errors import BadInput
from bot.model.requests import ImageRef
from storage.subjects import Subject, Subjects, Usage
from tests.support.jobs import NOW, make_job
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


async def test_a_tenants_subjects_are_bounded_in_number_and_bytes(open_store: OpenStore) -> None:
    async with open_store(default_limit=10) as store:
        table = Subjects(store)

        async def add(tenant: str, name: str, size: int) -> str:
            return await table.add_within(
                Subject(tenant, name, "console:u", [await put(store)], bytes=size),
                max_count=3,
                max_bytes=1000,
            )

        assert await add("t1", "a", 400) == "added"
        assert await add("t1", "A", 1) == "taken"
        assert await add("t1", "b", 601) == "bytes"  # 1001 bytes in all
        assert await add("t1", "b", 600) == "added"
        assert await add("t2", "a", 1000) == "added"  # each tenant its own bounds
        assert await add("t1", "c", 0) == "added"
        assert await add("t1", "d", 0) == "count"
        assert await table.usage("t1") == Usage(3, 1000) and await table.usage("t3") == Usage(0, 0)
        assert [s.bytes for s in await table.all("t1")] == [400, 600, 0]


async def test_saves_at_the_same_moment_cannot_pass_the_bounds_together(open_store: OpenStore) -> None:
    async with open_store(default_limit=10) as store:
        table = Subjects(store)
        images = [await put(store) for _ in range(12)]
        saves = [
            table.add_within(
                Subject("t1", f"s{i}", "console:u", [m], bytes=100), max_count=5, max_bytes=10_000
            )
            for i, m in enumerate(images)
        ]
        outcomes = await asyncio.gather(*saves)
        assert outcomes.count("added") == 5 and outcomes.count("count") == 7
        budget = [
            table.add_within(
                Subject("t2", f"s{i}", "console:u", [m], bytes=300), max_count=50, max_bytes=1000
            )
            for i, m in enumerate(images)
        ]
        outcomes = await asyncio.gather(*budget)
        assert outcomes.count("added") == 3 and await table.usage("t2") == Usage(3, 900)


async def test_a_subject_unused_for_its_retention_is_deleted_with_its_images(open_store: OpenStore) -> None:
    clock = Clock()
    async with open_store(default_limit=10, clock=clock) as store:
        table = Subjects(store)
        old_a, old_b, shared, in_use, used = [await put(store) for _ in range(5)]
        assert await table.add(Subject("t1", "old", "console:u", [old_a, old_b, shared, in_use]))
        assert await table.add(Subject("t1", "used", "console:u", [used]))
        assert await table.add(Subject("t2", "other", "console:u", [shared]))  # another tenant's too
        waiting = make_job()
        waiting.reference_media = [in_use]
        await store.admit(waiting, workspace_key="test:w1", dedup_key=None)
        clock.now = NOW + 300 * DAY
        await table.used("t1", ["used"])
        await table.used("t2", ["other"])
        retention = Retention(store, 0, subject_days=365, clock=clock)
        assert await retention.sweep(now=NOW + 364 * DAY) == Swept(0, 0, 0, 0)
        swept = await retention.sweep(now=NOW + 366 * DAY)
        # The old subject and the two images only it named; the one another subject names, and the
        # one a waiting job names, stay.
        assert (swept.subjects, swept.media) == (1, 2)
        assert await held(store, old_a, old_b, shared, in_use, used) == [False, False, True, True, True]
        assert [s.name for s in await table.all("t1")] == ["used"]
        # Media retention off (0) keeps the rest; subject retention off keeps every subject.
        assert await Retention(store, 0, clock=clock).sweep(now=NOW + 9999 * DAY) == Swept(0, 0, 0)
        assert len(await table.all("t1")) == 1


async def test_subjects_saved_before_sizes_were_kept_are_measured_when_next_needed(
    open_store: OpenStore,
) -> None:
    async with open_store(default_limit=10) as store:
        table = Subjects(store)
        a, b = await put(store, 300), await put(store, 200)
        assert await table.add(Subject("t1", "old", "console:u", [a, b]))
        async with store.database.transaction() as db:
            await db.execute("UPDATE subjects SET bytes=NULL")
        assert [s.bytes for s in await table.unmeasured("t1")] == [None]

        async def never(ref: ImageRef, tenant: str, person: str) -> str:
            raise AssertionError("a full place fetches nothing")

        book = SubjectBook(store, never, max_subjects=5, max_bytes=400)
        assert await book.usage("t1") == Usage(1, 500)
        assert await table.unmeasured("t1") == []
        with pytest.raises(BadInput, match="Nothing was saved: the subjects saved here take"):
            await book.save("t1", "console:u", "new", [ImageRef(url="https://example.com/a.png")])
