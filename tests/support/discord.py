"""Shared by several test modules."""

from __future__ import annotations

from typing import Any

from bot.model.jobs import Job, JobState
from bot.model.requests import ImageRequest
from tests.fakes.discord import FakeDiscord
from tests.fakes.discord_harness import custom_ids, with_files
from tests.support.startup import level as level  # a fixture: the log levels a failed start is checked at

GUILD_B, CHANNEL_B = "1300000000004194306", "1300000000004194316"


def two_guilds(fake: FakeDiscord) -> None:
    fake.add_guild(GUILD_B, CHANNEL_B)
    assert fake.shard_of(fake.guild_id, 2) == 0 and fake.shard_of(GUILD_B, 2) == 1


def job_with(origin: dict[str, object]) -> Job:
    return Job(
        id="j" * 32, surface="discord", user_id="1", workspace_id="g", origin=dict(origin),
        request=ImageRequest(prompt="p", seed=5), tier="full", provider="sandbox", state=JobState.COMPLETED,
        callback_token="t", created_at=0.0, deadline=1.0, seed=5,
    )  # fmt: skip


async def slash_result(fake: FakeDiscord, bot: Any, prompt: str) -> tuple[dict[str, Any], Job]:
    payload = await fake.interact(fake.slash_payload({"prompt": prompt}))
    result = await fake.wait_for(
        lambda: (m := fake.messages.get(fake.originals.get(payload["token"], ""))) and with_files(m) and m
    )
    await bot.runner.wait_idle()
    job = await bot.engine.job_for_post("discord", result["id"])
    assert job is not None
    return result, job


async def new_result_in(fake: FakeDiscord, bot: Any, before: set[str]) -> tuple[dict[str, Any], Job]:
    """The next result message the bot posts (ids in `before` are older)."""
    result = await fake.wait_for(
        lambda: next(
            (m for m in fake.visible() if m["id"] not in before and with_files(m) and custom_ids(m)), None
        )
    )
    await bot.runner.wait_idle()
    job = await bot.engine.job_for_post("discord", result["id"])
    assert job is not None
    return result, job
