"""Versions in a Discord result thread against the fake: `undo` and `history` typed by the requester,
the Undo and Vary buttons (also after a restart), and who may undo."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bot.app import Bot
from bot.model.jobs import Job
from tests.fakes.discord import FakeDiscord
from tests.fakes.discord_harness import custom_ids, discord_bot
from tests.support.discord import new_result_in, slash_result
from tests.support.harness import sandbox_of
from tests.support.toolbox import TOOL_IDS

STRANGER = "1500000000000000002"


async def bot_says(fake: FakeDiscord, channel_id: str, needle: str) -> dict[str, Any]:
    """The bot's visible message in `channel_id` that contains `needle`."""
    found: dict[str, Any] = await fake.wait_for(
        lambda: next(
            (
                m
                for m in fake.visible(channel_id)
                if m["author"]["id"] == fake.bot_id and needle in m["content"]
            ),
            None,
        )
    )
    return found


async def in_thread(fake: FakeDiscord, bot: Bot, thread_id: str, text: str) -> tuple[dict[str, Any], Job]:
    before = set(fake.messages)
    ask = await fake.post_user_message(fake.user_message_payload(text, channel_id=thread_id))
    return await new_result_in(fake, bot, before | {ask["id"]})


async def image_of(bot: Bot, job: Job) -> bytes:
    return (await bot.engine.result_images(job))[0].data


async def test_undo_then_edit_continues_from_the_previous_version(tmp_path: Path) -> None:
    async with FakeDiscord() as fake, discord_bot(tmp_path, fake) as (bot, _):
        result, first = await slash_result(fake, bot, "an oak tree")
        thread_id = result["id"]
        await fake.post_user_message(fake.user_message_payload("undo", channel_id=thread_id))
        refused = await bot_says(fake, thread_id, "first version")
        assert "v1" in refused["content"]

        v2_message, second = await in_thread(fake, bot, thread_id, "now add a small owl")
        assert second.parent_job_id == first.id
        assert custom_ids(v2_message) == [
            f"hidream:{a}:{second.id}"
            for a in (
                "reroll",
                "vary",
                "vary_strong",
                "edit",
                *TOOL_IDS,
                "remix",
                "undo",
                "delete",
                "subject",
            )
        ]
        await fake.post_user_message(fake.user_message_payload("history", channel_id=thread_id))
        history = await bot_says(fake, thread_id, "Versions in this thread")
        assert "v1: an oak tree" in history["content"] and "v2: now add a small owl" in history["content"]
        assert f"/{fake.channel_id}/{result['id']}" in history["content"]  # v1's link, in the channel
        assert f"/{thread_id}/{v2_message['id']}" in history["content"]

        # Someone else: ignored without a mention, refused plainly with one; nothing moves.
        await fake.post_user_message(
            fake.user_message_payload("undo", channel_id=thread_id, user_id=STRANGER)
        )
        mention = fake.user_message_payload(f"<@{fake.bot_id}> undo", channel_id=thread_id, user_id=STRANGER)
        await fake.post_user_message(mention)
        await bot_says(fake, thread_id, "can undo here")
        assert (await bot.engine.latest_job_in_thread("discord", thread_id)) == second

        await fake.post_user_message(fake.user_message_payload("undo", channel_id=thread_id))
        undone = await bot_says(fake, thread_id, "Back to v1")
        assert "an oak tree" in undone["content"]
        _, third = await in_thread(fake, bot, thread_id, "paint it in autumn colours")
        assert third.parent_job_id == first.id
        (sent,) = [j for j in sandbox_of(bot).received() if j.prompt == "paint it in autumn colours"]
        assert sent.references == [await image_of(bot, first)]
        assert sandbox_of(bot).submits == 3  # undo, history and the refusals made no provider call


async def test_vary_and_undo_buttons_work_after_a_restart(tmp_path: Path) -> None:
    async with FakeDiscord() as fake:
        async with discord_bot(tmp_path, fake) as (bot, _):
            result, first = await slash_result(fake, bot, "a glass city")
            thread_id = result["id"]
            v2_message, second = await in_thread(fake, bot, thread_id, "at night")
        # A new process: new adapter, new engine, the same database.
        async with discord_bot(tmp_path, fake) as (bot, _):
            stranger = fake.click_payload(v2_message, f"hidream:undo:{second.id}", user_id=STRANGER)
            await fake.interact(stranger)
            assert "can undo here" in (await fake.wait_for(lambda: fake.ephemeral_texts()))[0]
            click = await fake.interact(fake.click_payload(v2_message, f"hidream:undo:{second.id}"))
            undone = await bot_says(fake, thread_id, "Back to v1")
            assert fake.acks[click["id"]][0] == 6 and "a glass city" in undone["content"]
            _, third = await in_thread(fake, bot, thread_id, "with a red sky")
            assert third.parent_job_id == first.id

            before = set(fake.messages)
            vary = await fake.interact(fake.click_payload(result, f"hidream:vary:{first.id}"))
            _, varied = await new_result_in(fake, bot, before)
            assert fake.acks[vary["id"]][0] == 5
            assert varied.parent_job_id == first.id and varied.mode == "edit"
            assert varied.request.prompt == "a glass city" and varied.seed != first.seed
            (sent,) = [j for j in sandbox_of(bot).received() if j.seed == varied.seed]
            assert sent.prompt == "a glass city" and sent.references == [await image_of(bot, first)]
