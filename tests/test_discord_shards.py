"""Discord sharding: DISCORD_SHARD_COUNT and DISCORD_SHARD_IDS, with the real discord.py against a fake
gateway that routes a server's events to the shard that owns it, as Discord does."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import aiohttp
import discord
import pytest

import adapters.discord.client
from adapters.discord import DiscordAdapter
from bot.app import Bot
from bot.cli import main
from bot.model.jobs import Job, JobState, OutputImage
from tests.fakes.discord import FakeDiscord
from tests.fakes.discord_harness import custom_ids, discord_bot, with_files
from tests.support.background import background
from tests.support.discord import CHANNEL_B, GUILD_B, two_guilds
from tests.support.harness import closed_port, sandbox_of
from tests.support.processes import bot_env, logging_as_in_a_fresh_process
from tests.support.startup import discord_env, run_fails
from tests.support.startup import level as level  # a fixture: the log levels a failed start is checked at

# Two servers on different shards of 2: (guild_id >> 22) % 2 is 0 for the fake's own, 1 for this one.


class Pauses:
    """The waits between shard IDENTIFYs, recorded instead of slept."""

    def __init__(self) -> None:
        self.asked: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.asked.append(seconds)


async def result_of(fake: FakeDiscord, payload: dict[str, Any]) -> dict[str, Any]:
    message: dict[str, Any] = await fake.wait_for(
        lambda: (m := fake.messages.get(fake.originals.get(payload["token"], ""))) and with_files(m) and m
    )
    return message


async def delivered(bot: Bot, message: dict[str, Any]) -> Job:
    await bot.runner.wait_idle()
    job = await bot.engine.job_for_post("discord", message["id"])
    assert job is not None and job.state == JobState.DELIVERED
    return job


def guilds_of(adapter: DiscordAdapter) -> dict[str, int | None]:
    return {str(g.id): g.shard_id for g in adapter.client.guilds}


def interactions_routed(fake: FakeDiscord) -> list[tuple[str, int]]:
    return [(guild, shard) for event, guild, shard in fake.routed if event == "INTERACTION_CREATE"]


async def test_one_bot_running_both_shards_answers_in_both_servers(tmp_path: Path) -> None:
    pauses = Pauses()
    async with FakeDiscord() as fake:
        two_guilds(fake)
        env = {"DISCORD_SHARD_COUNT": "2"}
        async with discord_bot(tmp_path, fake, env, sleep=pauses) as (bot, adapter):
            assert isinstance(adapter.client, discord.AutoShardedClient)
            # Two gateway connections, each identified as its shard; the second waited its turn.
            assert fake.identifies == [(0, 2), (1, 2)] and pauses.asked == [5.0]
            assert guilds_of(adapter) == {fake.guild_id: 0, GUILD_B: 1}

            in_a = await fake.interact(fake.slash_payload({"prompt": "a fox in server A"}))
            in_b = await fake.interact(
                fake.slash_payload({"prompt": "a fox in server B"}, channel_id=CHANNEL_B)
            )
            result_a, result_b = await result_of(fake, in_a), await result_of(fake, in_b)

            assert interactions_routed(fake) == [(fake.guild_id, 0), (GUILD_B, 1)]
            assert result_a["channel_id"] == fake.channel_id and result_b["channel_id"] == CHANNEL_B
            job_a, job_b = await delivered(bot, result_a), await delivered(bot, result_b)
            assert (job_a.workspace_id, job_b.workspace_id) == (fake.guild_id, GUILD_B)
            assert "server B" in result_b["content"] and custom_ids(result_b)


async def test_two_replicas_each_run_one_shard_and_share_the_store(tmp_path: Path) -> None:
    async with FakeDiscord() as fake:
        two_guilds(fake)
        shard = {"DISCORD_SHARD_COUNT": "2"}
        # One database file for both replicas (SQLite in WAL mode takes two connections).
        async with discord_bot(tmp_path, fake, {**shard, "DISCORD_SHARD_IDS": "1"}, sleep=Pauses()) as (
            bot_b,
            replica_b,
        ):
            async with discord_bot(tmp_path, fake, {**shard, "DISCORD_SHARD_IDS": "0"}, sleep=Pauses()) as (
                bot_a,
                replica_a,
            ):
                assert sorted(fake.identifies) == [(0, 2), (1, 2)]
                assert guilds_of(replica_a) == {fake.guild_id: 0} and guilds_of(replica_b) == {GUILD_B: 1}

                in_a = await fake.interact(fake.slash_payload({"prompt": "a fox in server A"}))
                in_b = await fake.interact(
                    fake.slash_payload({"prompt": "a fox in server B"}, channel_id=CHANNEL_B)
                )
                result_a, result_b = await result_of(fake, in_a), await result_of(fake, in_b)
                job_a = await delivered(bot_a, result_a)
                await delivered(bot_b, result_b)
                # Each replica received only its own server's interaction, and made only that image.
                assert [j.prompt for j in sandbox_of(bot_a).received()] == ["a fox in server A"]
                assert [j.prompt for j in sandbox_of(bot_b).received()] == ["a fox in server B"]
                assert interactions_routed(fake) == [(fake.guild_id, 0), (GUILD_B, 1)]

                # Delivery needs no gateway: replica B, which never saw server A, posts a job of server A
                # (its interaction token expired) to A's channel through REST.
                assert replica_b.client.get_guild(int(fake.guild_id)) is None
                images = await stored_images(bot_a, job_a)
                late = dataclasses.replace(
                    job_a, id=job_a.id[:-4] + "late", origin={**job_a.origin, "token_at": 0.0}
                )
                before = set(fake.messages)
                [post] = await replica_b.deliver(late, images)
                posted = fake.messages[post.message_key]
                assert post.message_key not in before and posted["channel_id"] == fake.channel_id
                assert with_files(posted) and custom_ids(posted)

            # Shard 0 moves to a new replica: a button on a result of the old one still works, from the store.
            async with discord_bot(tmp_path, fake, {**shard, "DISCORD_SHARD_IDS": "0"}, sleep=Pauses()) as (
                bot_c,
                _,
            ):
                before = set(fake.messages)
                click = await fake.interact(fake.click_payload(result_a, f"hidream:reroll:{job_a.id}"))
                reroll = await fake.wait_for(
                    lambda: next((m for m in fake.visible() if m["id"] not in before and with_files(m)), None)
                )
                job_c = await delivered(bot_c, reroll)
                assert fake.acks[click["id"]][0] == 5 and job_c.parent_job_id == job_a.id
                assert [j.prompt for j in sandbox_of(bot_c).received()] == ["a fox in server A"]
                assert sandbox_of(bot_b).submits == 1


async def stored_images(bot: Bot, job: Job) -> list[OutputImage]:
    images = []
    for media_id in job.result_media:
        media = await bot.engine.store.media(media_id)
        assert media is not None
        images.append(OutputImage(media.id, media.data, media.content_type, media.width, media.height))
    return images


async def test_the_fake_recommends_a_shard_count_as_discord_does() -> None:
    async with FakeDiscord() as fake, aiohttp.ClientSession() as http:
        auth = {"Authorization": f"Bot {fake.token}"}
        async with http.get(fake.api_url + "/gateway/bot", headers=auth) as answer:
            assert (await answer.json())["shards"] == 1
        fake.recommended_shards = 4
        async with http.get(fake.api_url + "/gateway/bot", headers=auth) as answer:
            assert (await answer.json())["shards"] == 4


# --- hidream-bot check ---------------------------------------------------------------------------


def run_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], **env: str
) -> tuple[int, str, str]:
    capsys.readouterr()
    with monkeypatch.context() as patch, logging_as_in_a_fresh_process():
        for name, value in bot_env(tmp_path, DISCORD_TOKEN="MTE4.discord.token", **env).items():
            patch.setenv(name, value)
        code = main(["check"])
    out, err = capsys.readouterr()
    return code, out, err


def test_check_shows_the_shards_this_replica_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_check(
        tmp_path, monkeypatch, capsys, DISCORD_SHARD_COUNT="4", DISCORD_SHARD_IDS="1,3"
    )
    assert code == 0, err
    assert "gateway shards 1,3 of 4" in out
    code, out, _ = run_check(tmp_path, monkeypatch, capsys, DISCORD_SHARD_COUNT="2")
    assert code == 0 and "gateway shards 0,1 of 2" in out
    code, out, _ = run_check(tmp_path, monkeypatch, capsys)
    assert code == 0 and "unsharded" in out


@pytest.mark.parametrize(
    ("env", "variable", "why"),
    [
        (
            {"DISCORD_SHARD_COUNT": "2", "DISCORD_SHARD_IDS": "one"},
            "DISCORD_SHARD_IDS",
            "'one' is not a shard id",
        ),
        (
            {"DISCORD_SHARD_COUNT": "2", "DISCORD_SHARD_IDS": "0,2"},
            "DISCORD_SHARD_IDS",
            "shard 2 does not exist",
        ),
        ({"DISCORD_SHARD_IDS": "0"}, "DISCORD_SHARD_IDS", "need DISCORD_SHARD_COUNT"),
        ({"DISCORD_SHARD_COUNT": "2", "DISCORD_SHARD_IDS": "1,1"}, "DISCORD_SHARD_IDS", "listed twice"),
        ({"DISCORD_SHARD_COUNT": "0"}, "DISCORD_SHARD_COUNT", "must be 1 or more"),
        ({"DISCORD_SHARD_COUNT": "two"}, "DISCORD_SHARD_COUNT", "must be a whole number"),
    ],
    ids=["not-a-number", "too-high", "no-count", "twice", "zero-shards", "count-not-a-number"],
)
def test_check_refuses_bad_shard_settings(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    env: dict[str, str],
    variable: str,
    why: str,
) -> None:
    code, _, err = run_check(tmp_path, monkeypatch, capsys, **env)
    [line] = [line for line in err.splitlines() if variable in line]
    assert code == 2 and why in line


# --- a sharded start that fails ends with one line naming the setting ------------------------------


def test_a_token_the_gateway_refuses_on_a_sharded_start(monkeypatch, capsys, tmp_path, level) -> None:
    with background() as bg:
        fake = bg.enter(FakeDiscord())
        # REST lets this token in; the shard's IDENTIFY is refused (close code 4004).
        monkeypatch.setattr(fake, "_check_auth", lambda request: None)
        env = discord_env(fake, DISCORD_TOKEN="MTE4.reset.token", DISCORD_SHARD_COUNT="2")
        line = run_fails(monkeypatch, capsys, tmp_path, level, **env)
    assert line.startswith("hidream-bot: DISCORD_TOKEN: ") and "4004" in line


def test_an_unreachable_gateway_on_a_sharded_start(monkeypatch, capsys, tmp_path, level) -> None:
    # discord.py retries a shard it cannot connect every 5 s, logging a traceback each time: the start
    # keeps that out of the log and ends at its deadline (shortened here) with the cause.
    monkeypatch.setattr(adapters.discord.client, "START_TIMEOUT", 2.0)
    gateway = f"ws://127.0.0.1:{closed_port()}/gateway"
    with background() as bg:
        fake = bg.enter(FakeDiscord())
        env = discord_env(fake, DISCORD_GATEWAY_URL=gateway, DISCORD_SHARD_COUNT="1")
        line = run_fails(monkeypatch, capsys, tmp_path, level, **env)
    assert line.startswith("hidream-bot: DISCORD_GATEWAY_URL: ") and gateway in line
