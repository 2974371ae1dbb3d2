"""Style kits in the store, on both backends: saving a name again makes its next version and every
version stays readable; a delete hides the name (and unbinds it) but keeps its versions, and a save
after it goes on counting; a channel's binding follows the kit's newest version; one tenant never
sees another's kits or bindings."""

from __future__ import annotations

import asyncio

from storage.kits import Kit, Kits
from tests.support.store_backends import OpenStore


async def test_versions_are_kept_and_a_delete_hides_the_name_only(open_store: OpenStore) -> None:
    async with open_store(default_limit=10) as store:
        table = Kits(store)
        first = await table.save(Kit("discord:A", "Watercolor", prefix="soft", flags={"ar": "3:2"}))
        second = await table.save(Kit("discord:A", "watercolor", prefix="wet", negative="text"))
        assert (first.version, second.version) == (1, 2)
        found = await table.find("discord:A", "WATERCOLOR")
        assert found is not None
        assert (found.name, found.version, found.prefix, found.negative, found.flags) == (
            "watercolor",
            2,
            "wet",
            "text",
            {},
        )
        old = await table.version("discord:A", "watercolor", 1)
        assert old is not None and (old.prefix, old.flags) == ("soft", {"ar": "3:2"})
        assert [(k.name, k.version) for k in await table.all("discord:A")] == [("watercolor", 2)]

        assert await table.delete("discord:A", "watercolor")
        assert not await table.delete("discord:A", "watercolor")
        assert await table.find("discord:A", "watercolor") is None
        assert await table.all("discord:A") == []
        # Its versions stay, for the jobs that used them; a new save goes on from there.
        kept = await table.version("discord:A", "watercolor", 2)
        assert kept is not None and kept.prefix == "wet"
        again = await table.save(Kit("discord:A", "watercolor", suffix="dry"))
        assert again.version == 3


async def test_bindings_follow_the_newest_version_per_tenant(open_store: OpenStore) -> None:
    async with open_store(default_limit=10) as store:
        table = Kits(store)
        await table.save(Kit("slack:T1", "house", prefix="v1"))
        await table.save(Kit("slack:T2", "house", prefix="other tenant"))
        await table.bind("slack:T1", "C1", "House")
        bound = await table.bound("slack:T1", "C1")
        assert bound is not None and (bound.prefix, bound.version) == ("v1", 1)
        await table.save(Kit("slack:T1", "house", prefix="v2"))
        bound = await table.bound("slack:T1", "C1")
        assert bound is not None and (bound.prefix, bound.version) == ("v2", 2)
        # Another channel, and the same channel id in another tenant, are bound to nothing.
        assert await table.bound("slack:T1", "C2") is None
        assert await table.bound("slack:T2", "C1") is None
        found = await table.find("slack:T2", "house")
        assert found is not None and found.prefix == "other tenant"

        await table.bind("slack:T1", "C1", None)
        assert await table.bound("slack:T1", "C1") is None
        await table.bind("slack:T1", "C1", "house")
        await table.delete("slack:T1", "house")
        await table.save(Kit("slack:T1", "house", prefix="v3"))
        # A delete unbound it: saving the name again does not bind it back.
        assert await table.bound("slack:T1", "C1") is None


async def test_saves_at_the_same_moment_get_distinct_versions(open_store: OpenStore) -> None:
    async with open_store(default_limit=10) as store:
        table = Kits(store)
        saved = await asyncio.gather(
            *(table.save(Kit("discord:A", "busy", prefix=f"p{i}")) for i in range(6))
        )
        assert sorted(k.version for k in saved) == [1, 2, 3, 4, 5, 6]
        newest = await table.find("discord:A", "busy")
        assert newest is not None and newest.version == 6
