"""Style kits on Discord end to end: the real discord.py against FakeDiscord, the engine and the
sandbox. `/hidream-kit save|list|show|delete|bind` (saving, deleting and binding need Manage Server;
listing and showing do not), the `kit` option of `/hidream` (the provider receives the prompt between
the kit's prefix and suffix, at its size; the result says which kit and version), a bound channel's
kit applied to every request there and not removable, versions, another server's kit not found, and
an unknown kit refused with nothing spent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.fakes.discord import FakeDiscord
from tests.fakes.discord_harness import discord_bot, result_of, told
from tests.fakes.discord_payloads import MANAGE_GUILD, MEMBER_PERMS
from tests.support.harness import sandbox_of

GUILD_B, CHANNEL_B = "1300000000000000201", "1300000000000000210"
ADA, BOB = "1500000000000000001", "1500000000000000002"
WATERCOLOR = {
    "name": "watercolor",
    "prefix": "soft watercolor of",
    "suffix": "pastel palette",
    "flags": "--ar 16:9",
}


def kit_payload(
    fake: FakeDiscord,
    sub: str,
    options: dict[str, Any],
    *,
    admin: bool = False,
    channel_id: str | None = None,
) -> dict[str, Any]:
    payload = fake.slash_payload(
        options,
        name="hidream-kit",
        user_id=ADA if admin else BOB,
        permissions=MANAGE_GUILD if admin else MEMBER_PERMS,
        channel_id=channel_id,
    )
    payload["data"]["options"] = [{"name": sub, "type": 1, "options": payload["data"]["options"]}]
    return payload


async def test_discord_kits_are_managed_by_admins_and_applied_by_option(tmp_path: Path) -> None:
    async with FakeDiscord() as fake, discord_bot(tmp_path, fake) as (bot, _):
        fake.add_guild(GUILD_B, CHANNEL_B)
        [group] = [c for c in fake.commands["global"] if c["name"] == "hidream-kit"]
        assert {o["name"] for o in group["options"]} == {"save", "list", "show", "delete", "bind"}
        [make] = [c for c in fake.commands["global"] if c["name"] == "hidream"]
        assert "kit" in {o["name"] for o in make["options"]}

        for sub, options in (("save", WATERCOLOR), ("delete", {"name": "x"}), ("bind", {"name": "x"})):
            await told(fake, kit_payload(fake, sub, options), "Only the admins of this server or workspace")
        await told(fake, kit_payload(fake, "save", WATERCOLOR, admin=True), "Saved kit `watercolor` v1.")
        await told(
            fake,
            kit_payload(fake, "show", {"name": "WaterColor"}),
            "Kit `watercolor` v1: prefix: soft watercolor of; suffix: pastel palette; flags: --ar 16:9.",
        )
        await told(fake, kit_payload(fake, "list", {}), "`watercolor` v1")

        made = await result_of(fake, bot, fake.slash_payload({"prompt": "a fox", "kit": "watercolor"}))
        assert "kit watercolor v1" in made["content"]
        [received] = sandbox_of(bot).received()
        assert received.prompt == "soft watercolor of a fox pastel palette"
        assert (received.width, received.height) == (1360, 768)

        # Another server: not found, nothing spent.
        elsewhere = kit_payload(fake, "show", {"name": "watercolor"}, channel_id=CHANNEL_B)
        elsewhere["guild_id"] = GUILD_B
        await told(fake, elsewhere, "There is no style kit named `watercolor` here")
        there = fake.slash_payload({"prompt": "a fox", "kit": "watercolor"}, channel_id=CHANNEL_B)
        await told(fake, there, "There is no style kit named `watercolor` here; nothing was spent.")
        assert sandbox_of(bot).submits == 1
        assert (await bot.engine.quota("discord", ADA, GUILD_B)).used == 0

        # Versions: an edit is v2; the first result still used v1.
        edited = {**WATERCOLOR, "suffix": "muted palette", "negative": "text"}
        await told(fake, kit_payload(fake, "save", edited, admin=True), "Saved kit `watercolor` v2.")
        first = await bot.engine.job_for_post("discord", made["id"])
        assert first is not None and first.request.kit_version == 1
        again = await result_of(fake, bot, fake.slash_payload({"prompt": "a fox", "kit": "watercolor"}))
        assert "kit watercolor v2" in again["content"]

        await told(fake, kit_payload(fake, "delete", {"name": "watercolor"}, admin=True), "Deleted kit")
        await told(fake, kit_payload(fake, "list", {}), "No style kits are saved here yet.")


async def test_discord_a_bound_kit_is_applied_and_not_removable(tmp_path: Path) -> None:
    async with FakeDiscord() as fake, discord_bot(tmp_path, fake) as (bot, _):
        await told(fake, kit_payload(fake, "save", WATERCOLOR, admin=True), "Saved kit")
        noir = {"name": "noir", "prefix": "black and white"}
        await told(fake, kit_payload(fake, "save", noir, admin=True), "Saved kit `noir` v1.")
        await told(fake, kit_payload(fake, "bind", {"name": "watercolor"}, admin=True), "now uses the kit")

        made = await result_of(
            fake, bot, fake.slash_payload({"prompt": "a barn", "aspect": "1:1"}, user_id=BOB)
        )
        assert "kit watercolor v1" in made["content"]
        [received] = sandbox_of(bot).received()
        assert received.prompt == "soft watercolor of a barn pastel palette"
        assert (received.width, received.height) == (1024, 1024)  # the person's own option wins

        refused = fake.slash_payload({"prompt": "a barn", "kit": "noir"}, user_id=BOB)
        await told(
            fake, refused, "This channel always uses the kit `watercolor`, so `--kit noir` cannot replace"
        )
        assert sandbox_of(bot).submits == 1
        assert (await bot.engine.quota("discord", BOB, fake.guild_id)).used == 1

        await told(
            fake, kit_payload(fake, "bind", {"name": "none"}, admin=True), "This channel uses no kit now"
        )
        plain = await result_of(fake, bot, fake.slash_payload({"prompt": "a barn --seed 2"}, user_id=BOB))
        assert "kit " not in plain["content"].split("\n")[1]
        assert sorted(j.prompt for j in sandbox_of(bot).received())[0] == "a barn"


async def test_discord_a_channels_kit_applies_in_its_result_threads_and_binds_from_them(
    tmp_path: Path,
) -> None:
    async with FakeDiscord() as fake, discord_bot(tmp_path, fake) as (bot, _):
        await told(fake, kit_payload(fake, "save", WATERCOLOR, admin=True), "Saved kit")
        made = await result_of(fake, bot, fake.slash_payload({"prompt": "a barn"}, user_id=BOB))
        assert "kit " not in made["content"].split("\n")[1]
        thread_id = made["id"]
        assert thread_id in fake.threads

        # Bound from inside the result's thread: the channel is bound, and its threads follow it.
        said = await told(
            fake,
            kit_payload(fake, "bind", {"name": "watercolor"}, admin=True, channel_id=thread_id),
            "now uses the kit",
        )
        assert "watercolor" in said
        ask = fake.user_message_payload("now add a red door", channel_id=thread_id, user_id=BOB)
        await fake.post_user_message(ask)
        await fake.wait_for(lambda: sandbox_of(bot).submits == 2)
        await bot.runner.wait_idle()
        edit = sandbox_of(bot).received()[-1]
        assert edit.prompt == "soft watercolor of now add a red door pastel palette"

        # And a new request in the channel itself uses it too.
        again = await result_of(fake, bot, fake.slash_payload({"prompt": "a silo"}, user_id=BOB))
        assert "kit watercolor v1" in again["content"]

        # Bound again in the channel itself: a thread of it, bound to nothing of its own, follows it.
        noir = {"name": "noir", "prefix": "black and white"}
        await told(fake, kit_payload(fake, "save", noir, admin=True), "Saved kit `noir` v1.")
        await told(fake, kit_payload(fake, "bind", {"name": "noir"}, admin=True), "now uses the kit")
        ask = fake.user_message_payload("now add snow", channel_id=again["id"], user_id=BOB)
        await fake.post_user_message(ask)
        await fake.wait_for(lambda: sandbox_of(bot).submits == 4)
        await bot.runner.wait_idle()
        assert sandbox_of(bot).received()[-1].prompt == "black and white now add snow"
