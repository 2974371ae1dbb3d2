"""Versions in a Slack result thread against the fake (HTTP mode and Socket Mode): mentions of
`undo` and `history` in the thread, who may undo, and the Vary button after a restart."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from adapters.slack.translate import ACTION_VARY
from bot.app import Bot
from bot.model.jobs import Job
from tests.fakes.slack import FakeSlack
from tests.support.harness import sandbox_of
from tests.support.slack_support import CHANNEL, command_to_result, job_id_of, running, summaries

pytestmark = pytest.mark.parametrize("mode", ["http", "socket"])


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as f:
        yield f


async def bot_says(fake: FakeSlack, thread_ts: str, needle: str) -> dict[str, Any]:
    found: dict[str, Any] = await fake.wait_for(
        lambda: next(
            (m for m in fake.thread(CHANNEL, thread_ts) if m.get("bot_id") and needle in m.get("text", "")),
            None,
        )
    )
    return found


async def told(fake: FakeSlack, user: str, needle: str) -> dict[str, Any]:
    found: dict[str, Any] = await fake.wait_for(
        lambda: next((e for e in fake.ephemerals if e["user"] == user and needle in e["text"]), None)
    )
    return found


async def result_of(run: Any, fake: FakeSlack, index: int) -> Job:
    summary = (await fake.wait_for(lambda: summaries(fake)[index:]))[0]
    await run.bot.runner.wait_idle()
    job: Job | None = await run.bot.engine.job(job_id_of(summary))
    assert job is not None
    return job


async def image_of(bot: Bot, job: Job) -> bytes:
    return (await bot.engine.result_images(job))[0].data


async def test_undo_then_edit_continues_from_the_previous_version(
    tmp_path: Path, fake: FakeSlack, mode: str
) -> None:
    async with running(tmp_path, fake, mode) as run:
        first_summary = await command_to_result(run, "a red fox in snow")
        thread_ts = first_summary["thread_ts"]
        first = await result_of(run, fake, 0)
        await run.send.event(fake.mention(CHANNEL, "UALICE01", "undo", thread_ts=thread_ts))
        await told(fake, "UALICE01", "v1, the first version")

        await run.send.event(fake.mention(CHANNEL, "UALICE01", "make it night", thread_ts=thread_ts))
        second = await result_of(run, fake, 1)
        assert second.parent_job_id == first.id
        await run.send.event(fake.mention(CHANNEL, "UALICE01", "history", thread_ts=thread_ts))
        history = await bot_says(fake, thread_ts, "Versions in this thread")
        assert "v1: a red fox in snow" in history["text"] and "v2: make it night" in history["text"]
        assert f"archives/{CHANNEL}/p{first_summary['ts'].replace('.', '')}" in history["text"]

        # Someone who asked for none of these, and is no admin, is told privately; nothing moves.
        await run.send.event(fake.mention(CHANNEL, "UCAROL01", "undo", thread_ts=thread_ts))
        await told(fake, "UCAROL01", "can undo here")
        assert await run.bot.engine.latest_job_in_thread("slack", f"{CHANNEL}:{thread_ts}") == second

        await run.send.event(fake.mention(CHANNEL, "UALICE01", "undo", thread_ts=thread_ts))
        await bot_says(fake, thread_ts, "Back to v1 (from v2): a red fox in snow")
        await run.send.event(fake.mention(CHANNEL, "UALICE01", "add a scarf", thread_ts=thread_ts))
        third = await result_of(run, fake, 2)
        assert third.parent_job_id == first.id
        (sent,) = [j for j in sandbox_of(run.bot).received() if j.prompt == "add a scarf"]
        assert sent.references == [await image_of(run.bot, first)]
        assert sandbox_of(run.bot).submits == 3


async def test_vary_button_works_after_a_restart(tmp_path: Path, fake: FakeSlack, mode: str) -> None:
    async with running(tmp_path, fake, mode) as run:
        first_summary = await command_to_result(run, "a tiny robot")
        first_id = job_id_of(first_summary)
    async with running(tmp_path, fake, mode) as run:
        await run.send.interaction(fake.button(first_summary, CHANNEL, ACTION_VARY, user="UBOB0001"))
        varied = await result_of(run, fake, 1)
        first = await run.bot.engine.job(first_id)
        assert first is not None
        assert varied.parent_job_id == first_id and varied.user_id == "UBOB0001" and varied.mode == "edit"
        assert varied.request.prompt == "a tiny robot" and varied.seed != first.seed
        (sent,) = [j for j in sandbox_of(run.bot).received() if j.seed == varied.seed]
        assert sent.prompt == "a tiny robot" and sent.references == [await image_of(run.bot, first)]
        assert varied.origin["thread_ts"] == first_summary["thread_ts"]
        await bot_says(fake, first_summary["thread_ts"], "asked for a variation of")
