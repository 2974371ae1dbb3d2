"""A Discord result posted after the interaction expired is remembered in the store: a delivery
resumed long after a crash (when Discord has forgotten the nonce) finds it and does not post again."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from bot.jobs.quota_policy import POLICY
from bot.model.jobs import Job, JobState, OutputImage, Post
from storage.sqlite import SqliteStore as Store
from tests.fakes.discord import NONCE_WINDOW, FakeDiscord
from tests.fakes.discord_harness import custom_ids, discord_bot, with_files
from tests.support.jobs import make_job


async def test_a_delivery_resumed_16_minutes_after_a_crash_posts_the_result_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [time.time()]

    def clock() -> float:
        return now[0]

    async with FakeDiscord() as fake:
        fake.clock = clock
        # First life: the interaction token is dead, so the result becomes an ordinary channel message;
        # the process dies right after Discord took it, before the engine wrote down the delivery.
        async with discord_bot(tmp_path, fake, clock=clock) as (bot, adapter):
            payload = fake.slash_payload({"prompt": "a slow painting"})
            fake.expired_tokens.add(payload["token"])
            posted = asyncio.Event()
            deliver = adapter.deliver

            async def deliver_then_die(job: Job, images: list[OutputImage]) -> list[Post]:
                await deliver(job, images)
                posted.set()
                await asyncio.Event().wait()  # never returns: the stack below cancels it, like a crash
                raise AssertionError("unreachable")

            monkeypatch.setattr(adapter, "deliver", deliver_then_die)
            await fake.interact(payload)
            await asyncio.wait_for(posted.wait(), 30)
            (job,) = await bot.store.unfinished_jobs()
            assert job.state is JobState.DELIVERING
        first = [m for m in fake.visible(fake.channel_id) if with_files(m)]
        assert len(first) == 1 and custom_ids(first[0])

        # Second life, 16 minutes on: Discord no longer matches the nonce, the token is long gone.
        now[0] += 16 * 60
        assert 16 * 60 > NONCE_WINDOW
        async with discord_bot(tmp_path, fake, clock=clock) as (bot, _):
            await bot.runner.wait_idle()  # the job resumed at start has finished
            stored = await bot.engine.job(job.id)
            assert stored is not None and stored.state is JobState.DELIVERED
            assert [m["id"] for m in fake.visible(fake.channel_id) if with_files(m)] == [first[0]["id"]]
            assert (await bot.engine.job_for_post("discord", first[0]["id"])) == stored
        sends = [
            c for c in fake.calls if c.method == "POST" and c.path == f"/channels/{fake.channel_id}/messages"
        ]
        assert len(sends) == 1  # not even a second request that Discord would have had to de-duplicate


async def test_remembered_posts_keep_their_order_and_gain_their_thread_later(tmp_path: Path) -> None:
    async with Store(tmp_path / "bot.db", policy=POLICY, default_limit=5) as store:
        job = make_job(job_id="j1")
        await store.admit(job, workspace_key="discord:g", dedup_key=None)
        await store.remember_post("j1", "discord", "900", None)
        await store.remember_post("j1", "discord", "200", None)
        await store.remember_post("j1", "slack", "C1:1.0", None)
        assert await store.posts_of("j1", "discord") == ["900", "200"]  # as posted, not by id
        await store.remember_post("j1", "discord", "900", "900")  # the thread started from it
        await store.remember_post("j1", "discord", "900", None)  # a later write keeps the thread
        await store.record_posts(
            "j1", "discord", [("900", "other"), ("200", "900")]
        )  # the engine's own record
        await store.transition("j1", JobState.SUBMITTING)
        for state in (JobState.RUNNING, JobState.COMPLETED, JobState.DELIVERING, JobState.DELIVERED):
            await store.transition("j1", state)
        found = await store.latest_job_in_thread("discord", "900")
        assert found is not None and found.id == "j1"
        assert await store.posts_of("j1", "discord") == ["900", "200"]
