"""The engine on the sandbox, over real loopback HTTP: by polling, by callback, and when things go wrong."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from bot.jobs.images import to_data_uri
from bot.jobs.quota_policy import POLICY
from bot.model.errors import BadInput, MediaError, QuotaExceeded
from bot.model.jobs import JobState
from bot.model.requests import ImageRef
from bot.providers.base import ProviderStatus, SubmitSpec, named_job_id, status_from_dict
from bot.providers.sandbox.provider import SandboxProvider
from bot.usecases.actor import Actor
from bot.usecases.remake import remake
from tests.fakes.surface import RecordingSurface
from tests.support.engine import chat
from tests.support.harness import BotHarness, sandbox_of


def png(width: int = 320, height: int = 240, color: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), color).save(out, format="PNG")
    return out.getvalue()


async def test_polling_mode_delivers_real_images_and_commits_quota(tmp_path: Path) -> None:
    surface = RecordingSurface()
    async with BotHarness(tmp_path, surfaces=[surface.factory]) as bot:
        job = await bot.engine.submit(chat("a red fox in snow --ar 16:9 --seed 7 --n 2 --format webp"))
        await bot.runner.wait_idle()
        stored = await bot.engine.job(job.id)
        assert stored is not None and stored.state is JobState.DELIVERED
        [(job_id, images)] = surface.deliveries
        assert job_id == job.id and len(images) == 2
        for image in images:
            with Image.open(io.BytesIO(image.data)) as img:
                assert img.format == "WEBP" and img.size == job.request.dimensions()
        assert sandbox_of(bot).polls >= 1
        quota = await bot.engine.quota("test", "u1", "w1")
        assert (quota.used, quota.remaining) == (2, 23)
        assert (await bot.engine.job_for_post("test", f"msg-{job.id}")).id == job.id  # type: ignore[union-attr]
        assert surface.progress_lines and surface.told == []


async def test_callback_mode_finishes_on_the_callback_without_a_safety_poll(tmp_path: Path) -> None:
    surface = RecordingSurface()
    # With an hour's grace before any safety poll, only the callback can finish this job.
    async with BotHarness(tmp_path, surfaces=[surface.factory], callbacks=True, callback_grace=3600) as bot:
        assert bot.settings.public_url == bot.server_url
        job = await bot.engine.submit(chat("a lighthouse --seed 3"))
        await bot.runner.wait_idle()
        assert [d[0] for d in surface.deliveries] == [job.id]
        # The sandbox's callback is a hint: exactly one status read follows it.
        assert sandbox_of(bot).polls == 1


async def test_duplicate_and_late_callbacks_deliver_once(tmp_path: Path) -> None:
    surface = RecordingSurface()
    async with BotHarness(tmp_path, surfaces=[surface.factory], callbacks=True, callback_grace=3600) as bot:
        job = await bot.engine.submit(chat("a lighthouse --seed 3"))
        await bot.runner.wait_idle()
        url = f"{bot.server_url}/webhooks/{job.callback_token}"
        body: dict[str, object] = {"id": job.provider_job_id, "status": "completed", "images": []}
        async with httpx.AsyncClient() as client:
            answers = await asyncio.gather(*(client.post(url, json=body) for _ in range(5)))
        assert [a.status_code for a in answers] == [200] * 5
        await bot.runner.wait_idle()
        assert len(surface.deliveries) == 1
        assert (await bot.engine.job(job.id)).state is JobState.DELIVERED  # type: ignore[union-attr]
        assert (await bot.engine.quota("test", "u1", "w1")).used == 1


async def test_forged_callback_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    surface = RecordingSurface()
    async with BotHarness(
        tmp_path,
        surfaces=[surface.factory],
        callbacks=True,
        callback_grace=3600,
        env={"HIDREAM_SANDBOX_DELAY_SECONDS": 3600},
    ) as bot:
        job = await bot.engine.submit(chat("a lighthouse --seed 3"))
        async with httpx.AsyncClient() as client:
            forged = await client.post(
                f"{bot.server_url}/webhooks/not-a-real-token", json={"status": "completed"}
            )
            malformed = await client.post(f"{bot.server_url}/webhooks/", content=b"\x00garbage")
        assert forged.status_code == 404 and malformed.status_code in (404, 405)
        stored = await bot.engine.job(job.id)
        assert stored is not None and stored.state in (JobState.SUBMITTING, JobState.RUNNING, JobState.QUEUED)
        assert surface.deliveries == []


class EarlyCallbackProvider(SandboxProvider):
    """Calls back before it answers the submit, and signs nothing: its callbacks are read as given,
    the way a verified signed callback would be. Each names its job's id, which the bot matches with
    the submit's answer before it takes the completion."""

    # Set: the early completion names this id instead, and carries an image the bot must not fetch.
    names: str | None = None

    async def submit(self, spec: SubmitSpec) -> str:
        provider_job_id = await super().submit(spec)
        assert spec.callback_url is not None
        # Let the sandbox finish, then deliver the completion before the bot has read our id.
        status = await self.status(provider_job_id)
        images = [{"url": i.url, "nsfw": False} for i in status.images]
        if self.names is not None:
            images = [{"url": "http://127.0.0.1:9/not-ours.png", "nsfw": False}]
        body = {"id": self.names or provider_job_id, "state": status.state, "images": images}
        answer = await self.send("POST", spec.callback_url, idempotent=True, json=body)
        assert answer.status == 200
        return provider_job_id

    async def parse_callback(
        self, provider_job_id: str | None, headers: Any, body: bytes
    ) -> ProviderStatus | None:
        import json

        return status_from_dict(json.loads(body))

    def callback_job_id(self, body: bytes) -> str | None:
        return named_job_id(body, lambda payload: payload.get("id"))


async def test_callback_before_the_submit_answer_is_kept_not_lost(tmp_path: Path) -> None:
    surface = RecordingSurface()
    async with BotHarness(tmp_path, surfaces=[surface.factory], callbacks=True, callback_grace=3600) as bot:
        bot.engine.providers["sandbox"] = EarlyCallbackProvider(
            bot.settings, bot.http, base_url=f"{bot.server_url}/sandbox", token=sandbox_of(bot).token
        )
        job = await bot.engine.submit(chat("an early bird --seed 5"))
        await bot.runner.wait_idle()
        assert [d[0] for d in surface.deliveries] == [job.id]
        assert sandbox_of(bot).polls == 1  # only the provider's own read inside submit: the bot did not poll


async def test_an_early_completion_naming_another_request_is_not_taken(tmp_path: Path) -> None:
    """Before the submit's answer is read, a completion is kept aside with the id it names: when the
    answer names another id, it is dropped, and the job's own status is read instead."""
    surface = RecordingSurface()
    async with BotHarness(tmp_path, surfaces=[surface.factory], callbacks=True, callback_grace=3600) as bot:
        early = EarlyCallbackProvider(
            bot.settings, bot.http, base_url=f"{bot.server_url}/sandbox", token=sandbox_of(bot).token
        )
        early.names = "sbx-someone-elses-request"
        bot.engine.providers["sandbox"] = early
        job = await bot.engine.submit(chat("an early bird --seed 5"))
        await bot.runner.wait_idle()
        assert [d[0] for d in surface.deliveries] == [job.id] and surface.told == []
        assert (
            sandbox_of(bot).polls == 2
        )  # the provider's own read, then the bot's: the callback only woke it


async def test_quota_exhausted_refuses_before_any_provider_call(tmp_path: Path) -> None:
    surface = RecordingSurface()
    async with BotHarness(tmp_path, surfaces=[surface.factory], env={"HIDREAM_DAILY_IMAGE_QUOTA": 3}) as bot:
        await bot.engine.submit(chat("one --n 3"))
        await bot.runner.wait_idle()
        submits = sandbox_of(bot).submits
        with pytest.raises(QuotaExceeded) as err:
            await bot.engine.submit(chat("two"))
        assert "used all 3 of your images for today" in err.value.user_message
        assert "resets at 00:00 UTC" in err.value.user_message
        assert sandbox_of(bot).submits == submits
        # Another user is not affected.
        await bot.engine.submit(chat("three", user="u2"))
        await bot.runner.wait_idle()
        assert len(surface.deliveries) == 2


async def test_bad_reference_files_cost_nothing(tmp_path: Path) -> None:
    surface = RecordingSurface()
    async with BotHarness(
        tmp_path, surfaces=[surface.factory], env={"HIDREAM_MAX_IMAGE_BYTES": 50_000}
    ) as bot:
        text = ImageRef(url=to_data_uri(b"just some notes\n", "text/plain"))
        with pytest.raises(MediaError, match="not an image"):
            await bot.engine.submit(chat("edit it", [text]))
        huge = ImageRef(url=to_data_uri(png(2000, 2000) + b"\x00" * 60_000, "image/png"))
        with pytest.raises(MediaError, match="the largest image accepted is"):
            await bot.engine.submit(chat("edit it", [huge]))
        inside = ImageRef(url="http://127.0.0.1:1/secret.png", typed=True)
        with pytest.raises(MediaError, match="points inside a private network"):
            await bot.engine.submit(chat("edit it", [inside]))
        with pytest.raises(BadInput, match="at most 4"):
            await bot.engine.submit(chat("edit it", [ImageRef(url=to_data_uri(png(), "image/png"))] * 5))
        assert sandbox_of(bot).submits == 0
        assert (await bot.engine.quota("test", "u1", "w1")).used == 0


async def test_edit_and_personalization_reach_the_provider_as_references(tmp_path: Path) -> None:
    surface = RecordingSurface()
    async with BotHarness(tmp_path, surfaces=[surface.factory]) as bot:
        red = ImageRef(url=to_data_uri(png(color=(220, 20, 20)), "image/png"))
        blue = ImageRef(url=to_data_uri(png(color=(20, 20, 220)), "image/png"))
        edit = await bot.engine.submit(chat("make it night --seed 1", [red]))
        duo = await bot.engine.submit(chat("the two together --seed 1", [red, blue]))
        await bot.runner.wait_idle()
        assert (edit.mode, duo.mode) == ("edit", "personalization")
        delivered = {job_id: images for job_id, images in surface.deliveries}
        assert delivered[edit.id][0].data != delivered[duo.id][0].data
        # An edit of the edit, through the bot's own copy of the result.
        done = await bot.engine.job(edit.id)
        assert done is not None
        again = await bot.engine.submit(chat("add stars --seed 1", bot.engine.references_of(done)))
        await bot.runner.wait_idle()
        assert again.reference_media == done.result_media
        assert again.id in {job_id for job_id, _ in surface.deliveries}


async def test_provider_failure_is_told_and_refunded(tmp_path: Path) -> None:
    surface = RecordingSurface()
    async with BotHarness(tmp_path, surfaces=[surface.factory]) as bot:
        job = await bot.engine.submit(chat("sandbox-fail please --n 2"))
        await bot.runner.wait_idle()
        assert surface.told == [
            (
                job.id,
                "The sandbox was asked to fail (the prompt says sandbox-fail). Your quota was given back.",
            )
        ]
        assert surface.deliveries == []
        assert (await bot.engine.quota("test", "u1", "w1")).used == 0


async def test_dedup_key_never_starts_a_second_job(tmp_path: Path) -> None:
    surface = RecordingSurface()
    async with BotHarness(tmp_path, surfaces=[surface.factory]) as bot:
        first, second = await asyncio.gather(
            bot.engine.submit(chat("once"), dedup_key="event-1"),
            bot.engine.submit(chat("once"), dedup_key="event-1"),
        )
        await bot.runner.wait_idle()
        assert first.id == second.id
        assert len(surface.deliveries) == 1 and sandbox_of(bot).submits == 1


async def test_reroll_keeps_the_request_with_a_new_seed(tmp_path: Path) -> None:
    surface = RecordingSurface()
    async with BotHarness(tmp_path, surfaces=[surface.factory]) as bot:
        job = await bot.engine.submit(chat("a fox --seed 11 --ar 3:2"))
        await bot.runner.wait_idle()
        presser = Actor(surface=job.surface, workspace_id=job.workspace_id, user_id="u2")
        again = await remake(bot.engine, presser, job, vary=False, origin={"thread": "t9"})
        await bot.runner.wait_idle()
        assert again.request.prompt == job.request.prompt and again.request.aspect == (3, 2)
        assert again.seed != job.seed and again.user_id == "u2" and again.parent_job_id == job.id
        assert len(surface.deliveries) == 2


class Clock:
    def __init__(self) -> None:
        import time

        self.now = time.time()

    def __call__(self) -> float:
        return self.now


async def test_job_past_its_deadline_fails_cleanly_and_is_refunded(tmp_path: Path) -> None:
    surface = RecordingSurface()
    clock = Clock()
    env = {"HIDREAM_SANDBOX_DELAY_SECONDS": 3600, "HIDREAM_JOB_TIMEOUT_SECONDS": 900}
    async with BotHarness(tmp_path, env=env, surfaces=[surface.factory], clock=clock) as bot:
        job = await bot.engine.submit(chat("never finishes"))
        # The state lives in SQLite: look until the job is with the provider (bounded by the test timeout).
        while (await bot.engine.job(job.id)).state is not JobState.RUNNING:  # type: ignore[union-attr]  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        clock.now += 901
        bot.runner.wake(job.id)
        await bot.runner.wait_idle()
        assert surface.told == [
            (job.id, "The image took longer than 15 minutes, so the bot gave up. Your quota was given back.")
        ]
        assert (await bot.engine.quota("test", "u1", "w1")).used == 0


async def test_a_failing_platform_is_retried_then_delivered(tmp_path: Path) -> None:
    surface = RecordingSurface()
    surface.fail_deliveries = 2
    sleeps: list[float] = []

    async def instant(seconds: float) -> None:
        sleeps.append(seconds)

    async with BotHarness(tmp_path, surfaces=[surface.factory], sleep=instant) as bot:
        job = await bot.engine.submit(chat("persistent"))
        await bot.runner.wait_idle()
        assert [d[0] for d in surface.deliveries] == [job.id]
        assert len(sleeps) == 2


async def test_healthz_and_media_links(tmp_path: Path) -> None:
    surface = RecordingSurface()
    async with BotHarness(tmp_path, surfaces=[surface.factory], callbacks=True) as bot:
        media_id = await bot.store.put_media(png(), "image/png", 320, 240)
        assert bot.runner.signer is not None
        link = bot.runner.signer.link(media_id, now=bot.engine.clock(), ttl=60)
        async with httpx.AsyncClient() as client:
            health = await client.get(f"{bot.server_url}/healthz")
            good = await client.get(link)
            tampered = await client.get(link.replace("sig=", "sig=0"))
            expired = await client.get(bot.runner.signer.link(media_id, now=bot.engine.clock() - 120, ttl=60))
        assert health.status_code == 200 and health.json()["provider"] == "sandbox"
        assert good.status_code == 200 and good.content == png()
        assert tampered.status_code == 403 and expired.status_code == 403


async def test_a_reference_gone_before_the_submit_is_told_plainly_and_refunded(tmp_path: Path) -> None:
    from storage.sqlite import SqliteStore as Store
    from tests.support.jobs import make_job

    async with Store(tmp_path / "bot.db", policy=POLICY, default_limit=25) as store:
        job = make_job()
        job.reference_media = ["no-longer-held"]
        job.created_at, job.deadline = job.created_at + 10**9, job.deadline + 10**9  # far from its deadline
        await store.admit(job, workspace_key="test:w1", dedup_key=None)
    surface = RecordingSurface()
    async with BotHarness(tmp_path, surfaces=[surface.factory]) as bot:  # resumes the stored job
        await bot.runner.wait_idle()
        assert surface.told == [
            (
                job.id,
                "A reference image is no longer held by the bot; attach it again. Your quota was given back.",
            )
        ]
        assert sandbox_of(bot).submits == 0
        stored = await bot.engine.job(job.id)
        assert stored is not None and stored.state is JobState.FAILED
