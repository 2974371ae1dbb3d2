"""Discord: a button, modal or reply sent from one server that names another server's job, channel or
message is answered "not found", exactly as a job that never was: nothing is fetched, made, charged,
posted, saved, undone or erased, whatever Discord's own checks on button ids would have stopped.

The real discord.py client against the fake gateway, which delivers whatever the test sends."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bot.app import Bot
from bot.model.jobs import Job
from bot.words import NOT_FOUND
from tests.fakes.discord import FakeDiscord
from tests.fakes.discord_harness import custom_ids, discord_bot, with_files
from tests.fakes.discord_payloads import MANAGE_GUILD, MANAGE_MESSAGES, MEMBER_PERMS
from tests.support.harness import sandbox_of
from tests.support.toolbox import TOOL_IDS

GUILD_B, CHANNEL_B = "1300000000000000777", "1300000000000000778"
ADA = "1500000000000000001"
# Server B's own manager: every right there, none in server A.
MANAGER_B = "1500000000000000007"
ALL_RIGHTS = MEMBER_PERMS | MANAGE_MESSAGES | MANAGE_GUILD


async def result_after(fake: FakeDiscord, bot: Bot, before: set[str]) -> tuple[dict[str, Any], Job]:
    result: dict[str, Any] = await fake.wait_for(
        lambda: next(
            (m for m in fake.visible() if m["id"] not in before and with_files(m) and custom_ids(m)), None
        )
    )
    await bot.runner.wait_idle()
    job = await bot.engine.job_for_post("discord", result["id"])
    assert job is not None
    return result, job


async def slash_in(fake: FakeDiscord, bot: Bot, prompt: str, channel: str) -> tuple[dict[str, Any], Job]:
    before = set(fake.messages)
    await fake.interact(fake.slash_payload({"prompt": prompt}, channel_id=channel))
    return await result_after(fake, bot, before)


class Snapshot:
    """Everything a cross-server request could have touched."""

    def __init__(self, fake: FakeDiscord, bot: Bot) -> None:
        self.fake, self.bot = fake, bot

    async def take(self, result_a: dict[str, Any], thread_a: str) -> dict[str, Any]:
        engine, fake = self.bot.engine, self.fake
        posted_a = await engine.job_for_post("discord", result_a["id"])
        tenant_b = engine.tenant("discord", GUILD_B, MANAGER_B)
        return {
            "provider calls": sandbox_of(self.bot).submits,
            "used in A": (await engine.quota("discord", ADA, fake.guild_id)).used,
            "used in B": (await engine.quota("discord", MANAGER_B, GUILD_B)).used,
            "A's post record": posted_a.id if posted_a else None,
            "A's thread head": getattr(await engine.latest_job_in_thread("discord", thread_a), "id", None),
            "subjects in B": [s.name for s in await engine.subjects.all(tenant_b)],
            "files fetched": list(fake.cdn_hits),
            "messages read": len(fake.find("GET", "/messages/")),
            "results": sorted(m["id"] for m in fake.visible() if with_files(m)),
            "A's result deleted": bool(fake.messages[result_a["id"]].get("deleted")),
        }


async def not_found(fake: FakeDiscord, payload: dict[str, Any]) -> None:
    before = len(fake.ephemeral_texts())
    await fake.interact(payload)
    told = await fake.wait_for(lambda: fake.ephemeral_texts()[before:])
    assert told == [NOT_FOUND]


async def test_another_servers_job_channel_or_message_is_not_found_from_buttons_modals_and_replies(
    tmp_path: Path,
) -> None:
    async with FakeDiscord() as fake:
        fake.add_guild(GUILD_B, CHANNEL_B)
        async with discord_bot(tmp_path, fake) as (bot, _):
            # Server A: a result and a second version in its thread, so A's Undo would move something.
            result_a, job_a = await slash_in(fake, bot, "a lighthouse in fog", fake.channel_id)
            thread_a = result_a["id"]
            before = set(fake.messages)
            ask = await fake.post_user_message(fake.user_message_payload("add a boat", channel_id=thread_a))
            _, second_a = await result_after(fake, bot, before | {ask["id"]})
            # Server B: a result of its own to press buttons on.
            result_b, _ = await slash_in(fake, bot, "a meadow", CHANNEL_B)

            snapshot = Snapshot(fake, bot)
            was = await snapshot.take(result_a, thread_a)
            assert was["A's thread head"] == second_a.id and was["A's post record"] == job_a.id

            def press(custom_id: str) -> dict[str, Any]:
                return fake.click_payload(result_b, custom_id, user_id=MANAGER_B, permissions=ALL_RIGHTS)

            def submit(custom_id: str, value: str) -> dict[str, Any]:
                return fake.modal_payload(custom_id, value, user_id=MANAGER_B, channel_id=CHANNEL_B)

            for action in ("reroll", "vary", "vary_strong", *TOOL_IDS, "remix", "delete", "undo"):
                await not_found(fake, press(f"hidream:{action}:{second_a.id}"))
            await not_found(fake, submit(f"hidream:editjob:{job_a.id}", "make it green"))
            await not_found(fake, submit(f"hidream:subjectname:{job_a.id}", "tower"))
            remixed = {"instruction": "a lighthouse at noon", "keep": True}
            await not_found(
                fake,
                fake.labelled_modal_payload(
                    f"hidream:remixjob:{job_a.id}", remixed, user_id=MANAGER_B, channel_id=CHANNEL_B
                ),
            )
            await not_found(fake, submit(f"hidream:ctx:{fake.channel_id}:{result_a['id']}", "make it red"))

            # A reply in B to A's result (as a forwarded message would name it), mentioning the bot.
            reply = fake.user_message_payload(
                f"<@{fake.bot_id}> make it blue", channel_id=CHANNEL_B, user_id=MANAGER_B, reply_to=result_a
            )
            await fake.post_user_message(reply)
            answer = await fake.wait_for(
                lambda: next(
                    (
                        m
                        for m in fake.visible(CHANNEL_B)
                        if (m.get("message_reference") or {}).get("message_id") == reply["id"]
                    ),
                    None,
                )
            )
            assert answer["content"] == NOT_FOUND

            await bot.runner.wait_idle()
            assert await snapshot.take(result_a, thread_a) == was


async def test_the_same_buttons_in_their_own_server_still_work(tmp_path: Path) -> None:
    """The control: the lookups refuse only across servers."""
    async with FakeDiscord() as fake:
        fake.add_guild(GUILD_B, CHANNEL_B)
        async with discord_bot(tmp_path, fake) as (bot, _):
            result_b, job_b = await slash_in(fake, bot, "a meadow", CHANNEL_B)
            before = set(fake.messages)
            click = fake.click_payload(result_b, f"hidream:reroll:{job_b.id}", user_id=MANAGER_B)
            await fake.interact(click)
            _, again = await result_after(fake, bot, before)
            assert again.parent_job_id == job_b.id and again.workspace_id == GUILD_B
            assert (await bot.engine.quota("discord", MANAGER_B, GUILD_B)).used == 1
            assert (await bot.engine.quota("discord", ADA, GUILD_B)).used == 1
