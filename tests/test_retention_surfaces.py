"""After retention deleted an image, a button, an edit or a reply that needs it answers plainly that
it is too old, and spends nothing: no quota, no provider call. On the engine (the console's /edit
takes this path), on Discord against its fake, and on Slack against its fake in both modes."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from adapters.slack.translate import ACTION_EDIT, ACTION_REROLL, BLOCK_INSTRUCTION
from bot.jobs.retention import DAY, Swept
from bot.model.errors import BadInput
from bot.model.jobs import JobState
from storage.quota import QuotaStatus
from tests.fakes.discord import FakeDiscord
from tests.fakes.discord_harness import discord_bot, with_files
from tests.fakes.slack import FakeSlack
from tests.fakes.surface import RecordingSurface
from tests.support.discord import new_result_in, slash_result
from tests.support.engine import chat
from tests.support.harness import BotHarness, sandbox_of, sqlite_of
from tests.support.slack_support import CHANNEL, command_to_result, running, summaries


def counts(status: QuotaStatus) -> tuple[int, int, int]:
    return status.used, status.limit, status.remaining


TOO_OLD = "older than 30 days and was deleted; run /hidream again"
LATER = 31 * DAY


async def test_engine_refuses_an_edit_of_a_deleted_result_and_spends_nothing(tmp_path: Path) -> None:
    surface = RecordingSurface()
    env = {"HIDREAM_MEDIA_RETENTION_DAYS": 7}
    async with BotHarness(tmp_path, env=env, surfaces=[surface.factory]) as bot:
        first = await bot.engine.submit(chat("a fox in snow"))
        await bot.runner.wait_idle()
        done = await bot.engine.job(first.id)
        assert done is not None and done.state is JobState.DELIVERED
        assert (await bot.retention.sweep(now=time.time() + 8 * DAY)).media == 1
        quota, submits = counts(await bot.engine.quota("test", "u1", "w1")), sandbox_of(bot).submits

        edit = chat("make it blue", refs=bot.engine.references_of(done))
        with pytest.raises(BadInput, match="older than 7 days and was deleted; run /hidream again"):
            await bot.engine.submit(edit)
        with pytest.raises(BadInput, match="older than 7 days"):
            await bot.engine.result_images(done)  # never an empty list for a job that had images

        assert counts(await bot.engine.quota("test", "u1", "w1")) == quota
        assert sandbox_of(bot).submits == submits
        async with sqlite_of(bot.store).transaction() as db:
            cur = await db.execute("SELECT COUNT(*) FROM jobs")
            assert tuple(await cur.fetchone() or ()) == (1,)


async def test_zero_keeps_every_image_forever(tmp_path: Path) -> None:
    surface = RecordingSurface()
    async with BotHarness(
        tmp_path, env={"HIDREAM_MEDIA_RETENTION_DAYS": 0}, surfaces=[surface.factory]
    ) as bot:
        first = await bot.engine.submit(chat("a fox in snow"))
        await bot.runner.wait_idle()
        assert await bot.retention.sweep(now=time.time() + 10_000 * DAY) == Swept(0, 0, 0)
        done = await bot.engine.job(first.id)
        assert done is not None and len(await bot.engine.result_images(done)) == 1
        edit = await bot.engine.submit(chat("make it blue", refs=bot.engine.references_of(done)))
        await bot.runner.wait_idle()
        assert (await bot.engine.job(edit.id)).state is JobState.DELIVERED  # type: ignore[union-attr]


def too_old_texts(texts: list[str]) -> list[str]:
    return [t for t in texts if TOO_OLD in t]


async def test_discord_reroll_edit_and_reply_on_a_deleted_image_say_it_is_too_old(tmp_path: Path) -> None:
    async with FakeDiscord() as fake, discord_bot(tmp_path, fake) as (bot, _):
        result, first = await slash_result(fake, bot, "a lighthouse")
        before = set(fake.messages)
        ask = fake.user_message_payload(f"<@{fake.bot_id}> add fog", reply_to=result)
        await fake.post_user_message(ask)
        edited, second = await new_result_in(fake, bot, before | {ask["id"]})
        assert second.reference_media == first.result_media
        swept = await bot.retention.sweep(now=time.time() + LATER)
        assert swept.media == 2  # the first result (the edit's reference) and the edit's result
        user = str(first.user_id)
        quota, submits = (
            counts(await bot.engine.quota("discord", user, fake.guild_id)),
            sandbox_of(bot).submits,
        )
        results_before = {m["id"] for m in fake.visible() if with_files(m)}

        # Reroll of the edit needs its reference image.
        await fake.interact(fake.click_payload(edited, f"hidream:reroll:{second.id}"))
        await fake.wait_for(lambda: len(too_old_texts(fake.ephemeral_texts())) == 1)
        # Edit under the first result: the modal opens, its submission is refused.
        click = await fake.interact(fake.click_payload(result, f"hidream:edit:{first.id}"))
        await fake.wait_for(lambda: fake.find("POST", f"/interactions/{click['id']}/"))
        modal = fake.find("POST", f"/interactions/{click['id']}/")[0].body["data"]
        await fake.interact(fake.modal_payload(modal["custom_id"], "make it green"))
        await fake.wait_for(lambda: len(too_old_texts(fake.ephemeral_texts())) == 2)
        # A reply to the first result: the bot's progress reply says why.
        again = fake.user_message_payload(f"<@{fake.bot_id}> add snow", reply_to=result)
        await fake.post_user_message(again)
        await fake.wait_for(lambda: too_old_texts([str(m.get("content") or "") for m in fake.visible()]))
        await bot.runner.wait_idle()

        assert sandbox_of(bot).submits == submits
        assert counts(await bot.engine.quota("discord", user, fake.guild_id)) == quota
        assert {m["id"] for m in fake.visible() if with_files(m)} == results_before
        # A reroll of a text-only request needs no image: its prompt is kept, so it still works.
        before = set(fake.messages)
        await fake.interact(fake.click_payload(result, f"hidream:reroll:{first.id}"))
        _, reroll = await new_result_in(fake, bot, before)
        assert reroll.parent_job_id == first.id and reroll.request.prompt == "a lighthouse"


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as f:
        yield f


def slack_notes(fake: FakeSlack) -> list[str]:
    return too_old_texts([str(e["text"]) for e in fake.ephemerals])


@pytest.mark.parametrize("mode", ["http", "socket"])
async def test_slack_reroll_edit_and_mention_on_a_deleted_image_say_it_is_too_old(
    tmp_path: Path, slack: FakeSlack, mode: str
) -> None:
    fake = slack
    async with running(tmp_path, fake, mode) as run:
        first = await command_to_result(run, "a tiny robot")
        thread_ts = first["thread_ts"]
        await run.send.event(fake.mention(CHANNEL, "UALICE01", "make it night", thread_ts=thread_ts))
        second = (await fake.wait_for(lambda: summaries(fake)[1:]))[0]
        await run.bot.runner.wait_idle()
        assert (await run.bot.retention.sweep(now=time.time() + LATER)).media == 2
        quota = counts(await run.bot.engine.quota("slack", "UALICE01", "T0001"))
        submits = sandbox_of(run.bot).submits
        jobs = await run.job_count()

        await run.send.interaction(fake.button(second, CHANNEL, ACTION_REROLL))
        await fake.wait_for(lambda: len(slack_notes(fake)) == 1)
        await run.send.interaction(fake.button(first, CHANNEL, ACTION_EDIT))
        view: dict[str, Any] = (await fake.wait_for(lambda: fake.views))[0]
        await run.send.interaction(
            fake.submission(view, {BLOCK_INSTRUCTION: {"text": {"value": "add a hat"}}})
        )
        await fake.wait_for(lambda: len(slack_notes(fake)) == 2)
        await run.send.event(fake.mention(CHANNEL, "UALICE01", "add snow", thread_ts=thread_ts))
        await fake.wait_for(lambda: len(slack_notes(fake)) == 3)
        await run.bot.runner.wait_idle()

        assert {e["user"] for e in fake.ephemerals} == {"UALICE01"}
        assert sandbox_of(run.bot).submits == submits and await run.job_count() == jobs
        assert counts(await run.bot.engine.quota("slack", "UALICE01", "T0001")) == quota
        assert len(summaries(fake)) == 2  # no new result, and each refused status was removed
        statuses = [m for m in fake.thread(CHANNEL, thread_ts) if m.get("bot_id") and not m.get("files")]
        assert not [m for m in statuses if "rerolled" in m["text"] or "add" in m["text"]]
