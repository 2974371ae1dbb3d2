"""A submit whose answer is lost after the provider made the job is saved by the provider's callback.

Against the loopback fakes of Pixazo, Atlas Cloud and WaveSpeed (whose callbacks the bot cannot
trust: unsigned, or WaveSpeed without its secret), the fake makes the job, posts its callback and
then closes the connection without answering (cue "lost"). The job must be delivered exactly once,
from that callback, with each of its requests made exactly once; a forged callback naming an id the
provider does not know, and a repeated one, change nothing.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.app import Bot
from bot.jobs.recovery import SubmitRecord
from bot.model.config import Settings
from bot.model.jobs import Job, JobState
from bot.model.requests import ChatRequest, ImageRequest, parse_command
from bot.providers.atlascloud import AtlasCloudProvider
from bot.providers.base import LostAnswer, SubmitSpec, named_job_id
from bot.providers.wavespeed import WaveSpeedProvider
from bot.transport import Transport
from tests.fakes.atlascloud import AtlasCloudFake
from tests.fakes.fal import FalFake
from tests.fakes.pixazo import PixazoFake
from tests.fakes.queue_common import QueueFake
from tests.fakes.surface import RecordingSurface
from tests.fakes.wavespeed import WaveSpeedFake
from tests.support.harness import BotHarness

PROVIDERS = ["pixazo", "atlascloud", "wavespeed"]


@asynccontextmanager
async def provider_fake(name: str) -> AsyncIterator[QueueFake]:
    fakes = {"pixazo": PixazoFake, "atlascloud": AtlasCloudFake, "wavespeed": WaveSpeedFake}
    async with fakes[name]().running() as fake:
        yield fake


def env_for(name: str, fake: QueueFake, *, signed: bool = False) -> dict[str, Any]:
    # Without WAVESPEED_WEBHOOK_SECRET its callbacks are hints the bot must check, like the others'.
    key = {"pixazo": "pixazo-test-key", "atlascloud": "atlas-test-key", "wavespeed": "ws-test-key"}[name]
    prefix = name.upper()
    env = {"HIDREAM_PROVIDER": name, f"{prefix}_API_KEY": key, f"{prefix}_BASE_URL": fake.url}
    if signed:
        assert isinstance(fake, WaveSpeedFake)
        env["WAVESPEED_WEBHOOK_SECRET"] = fake.secret
    return env


def chat(text: str) -> ChatRequest:
    return ChatRequest(
        surface="test",
        user_id="u1",
        workspace_id="w1",
        origin={"thread": "t1"},
        request=parse_command(text).request,
    )


def forged_body(name: str, fake_id: str) -> dict[str, Any]:
    """A callback shaped like the provider's, naming a job the provider never made."""
    done = {"status": "completed", "outputs": ["http://127.0.0.1:9/evil.png"]}
    if name == "pixazo":
        return {"request_id": fake_id, "status": "COMPLETED", "output": {"media_url": done["outputs"]}}
    if name == "atlascloud":
        return {"session_id": fake_id, "status": "OK", "payload": {"id": fake_id, **done}}
    return {"code": 200, "message": "success", "data": {"id": fake_id, **done}}


async def job_when(bot: Bot, job_id: str, ready: Any) -> Job:
    """The stored job once `ready(job, record)` holds (bounded by the test's own timeout)."""
    async with asyncio.timeout(30):
        while True:
            job = await bot.engine.job(job_id)
            assert job is not None
            if ready(job, SubmitRecord.read(await bot.store.callback_status(job_id))):
                return job
            await asyncio.sleep(0.01)


def harness(
    tmp_path: Path, name: str, fake: QueueFake, surface: RecordingSurface, *, signed: bool = False
) -> BotHarness:
    # An hour's grace: no safety poll, so only the callback can finish the job within the test.
    env = env_for(name, fake, signed=signed)
    return BotHarness(tmp_path, env, [surface.factory], callbacks=True, callback_grace=3600)


@pytest.mark.parametrize("name", [*PROVIDERS, "wavespeed-signed"])
async def test_lost_answer_is_delivered_once_from_the_callback(tmp_path: Path, name: str) -> None:
    surface = RecordingSurface()
    signed = name.endswith("-signed")
    name = name.removesuffix("-signed")
    async with provider_fake(name) as fake:
        fake.fail_next("lost")
        fake.callback_repeats = 2  # the provider repeats its callback: still one delivery
        async with harness(tmp_path, name, fake, surface, signed=signed) as bot:
            job = await bot.engine.submit(chat("a red fox in snow --seed 5"))
            await asyncio.wait_for(bot.runner.wait_idle(), 60)

            (made,) = fake.jobs
            assert len(fake.submits) == 1
            stored = await bot.engine.job(job.id)
            assert stored is not None and stored.state is JobState.DELIVERED
            assert stored.provider_job_id == made and stored.error is None
            assert [job_id for job_id, _ in surface.deliveries] == [job.id] and surface.told == []
            assert (await bot.engine.quota("test", "u1", "w1")).used == 1

            # The callback again, after delivery: accepted, and nothing changes.
            url = f"{bot.server_url}/webhooks/{job.callback_token}"
            body = json.dumps(forged_body(name, made)).encode()
            headers = fake.sign(body) if isinstance(fake, WaveSpeedFake) and signed else {}
            if isinstance(fake, AtlasCloudFake):  # Atlas Cloud signs every callback
                headers = fake.sign(made, body)
            async with httpx.AsyncClient() as client:
                again = await client.post(url, content=body, headers=headers)
            assert again.status_code == 200
            await bot.runner.wait_idle()
            assert len(surface.deliveries) == 1 and len(fake.submits) == 1


@pytest.mark.parametrize("name", ["atlascloud", "wavespeed"])
async def test_lost_answer_in_the_middle_of_a_several_request_job(tmp_path: Path, name: str) -> None:
    """`--n 3` is three requests: the first answered, the second made but its answer lost, so the
    third was never sent. The callback names the second; once confirmed the third is sent, once."""
    surface = RecordingSurface()
    async with provider_fake(name) as fake:
        fake.fail_next(None, "lost")
        async with harness(tmp_path, name, fake, surface) as bot:
            job = await bot.engine.submit(chat("three foxes --n 3 --seed 40"))
            await asyncio.wait_for(bot.runner.wait_idle(), 60)

            assert len(fake.submits) == len(fake.jobs) == 3
            assert [s.json()["seed"] for s in fake.submits] == [40, 41, 42]  # each request made once
            stored = await bot.engine.job(job.id)
            assert stored is not None and stored.state is JobState.DELIVERED
            assert stored.provider_job_id == ",".join(fake.jobs)  # in the order they were made
            [(delivered, images)] = surface.deliveries
            assert delivered == job.id and len(images) == 3
            assert (await bot.engine.quota("test", "u1", "w1")).used == 3


@pytest.mark.parametrize("name", PROVIDERS)
async def test_forged_callback_changes_nothing_and_the_genuine_one_still_saves_the_job(
    tmp_path: Path, name: str
) -> None:
    surface = RecordingSurface()
    async with provider_fake(name) as fake:
        fake.fail_next("lost")
        fake.hold_callbacks = True
        async with harness(tmp_path, name, fake, surface) as bot:
            job = await bot.engine.submit(chat("a lighthouse --seed 2"))
            await job_when(bot, job.id, lambda j, record: record.settled)

            url = f"{bot.server_url}/webhooks/{job.callback_token}"
            forged_id = "pred_0000-not-made"
            async with httpx.AsyncClient() as client:
                answers = [await client.post(url, json=forged_body(name, forged_id)) for _ in range(2)]
                # An id that would step out of the status URL is never even asked about.
                sneaky = await client.post(url, json=forged_body(name, "../../v1/admin"))
            if name == "atlascloud":
                # Atlas Cloud signs its callbacks: unsigned ones are refused at once and nothing is read.
                assert [a.status_code for a in answers] == [401, 401] and sneaky.status_code == 401
                stored = await job_when(bot, job.id, lambda j, record: record.settled)
                assert fake.status_calls == []
            else:
                assert [a.status_code for a in answers] == [200, 200] and sneaky.status_code == 200
                stored = await job_when(bot, job.id, lambda j, record: forged_id in record.refused)
                # One status read for the forged id (the repeat was not read again), none for the other.
                assert [forged_id in call.path for call in fake.status_calls] == [True]

            assert stored.state is JobState.SUBMITTING and stored.provider_job_id is None
            assert surface.deliveries == [] and len(fake.submits) == 1

            fake.release_callbacks()
            await asyncio.wait_for(bot.runner.wait_idle(), 60)
            assert [job_id for job_id, _ in surface.deliveries] == [job.id]
            done = await bot.engine.job(job.id)
            assert done is not None and done.state is JobState.DELIVERED
            assert done.provider_job_id == next(iter(fake.jobs)) and len(fake.submits) == 1


def test_a_callback_names_only_a_plain_job_id() -> None:
    def pick(payload: dict[str, Any]) -> object:
        return payload.get("id")

    assert named_job_id(b'{"id": "ws_5a2e-77.b:c"}', pick) == "ws_5a2e-77.b:c"
    for body in (b'{"id": "a,b"}', b'{"id": "../x"}', b'{"id": ""}', b'{"id": 7}', b"[1]", b"not json"):
        assert named_job_id(body, pick) is None, body
    assert named_job_id(b'{"id": "' + b"x" * 201 + b'"}', pick) is None


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("images", [1, 2])
async def test_a_bot_that_died_while_sending_binds_only_when_one_request_can_be_in_doubt(
    tmp_path: Path, images: int, caplog: pytest.LogCaptureFixture
) -> None:
    """The bot stopped after sending a job's request(s), before reading any answer. One request:
    the callback's id can only be it, so the restarted bot binds it. Two (Atlas Cloud makes one
    image a request): a callback cannot tell how many were made, so nothing is bound and the job
    fails, refunded, at its deadline."""
    surface = RecordingSurface()
    clock = Clock()
    async with provider_fake("atlascloud") as fake:
        env = env_for("atlascloud", fake)
        options: dict[str, Any] = {"callbacks": True, "callback_grace": 3600, "clock": clock}
        async with BotHarness(tmp_path, env, [surface.factory], **options) as bot:
            runner = bot.runner
            real_start = runner.start
            runner.start = lambda job_id, held=False: None  # type: ignore[method-assign, misc]
            job = await bot.engine.submit(chat(f"two towers --n {images} --seed 9"))
            # What the bot did before it stopped: `submitting` stored, the request(s) sent.
            assert await bot.store.transition(job.id, JobState.SUBMITTING)
            hook = f"{bot.server_url}/webhooks/{job.callback_token}"
            await bot.provider.submit(SubmitSpec(job.id, job.request, job.tier, callback_url=hook))
            await job_when(bot, job.id, lambda j, record: len(record.candidates) == images)

            runner.start = real_start  # type: ignore[method-assign]
            runner.start(job.id)  # as `resume` does after a restart
            if images == 1:
                await asyncio.wait_for(bot.runner.wait_idle(), 60)
                done = await bot.engine.job(job.id)
                assert done is not None and done.state is JobState.DELIVERED
                assert done.provider_job_id == next(iter(fake.jobs))
                assert [job_id for job_id, _ in surface.deliveries] == [job.id]
            else:
                async with asyncio.timeout(30):
                    while "cannot be told which" not in caplog.text:  # noqa: ASYNC110 (the job's task logs it)
                        await asyncio.sleep(0.01)
                assert fake.status_calls == []  # neither id was even read: neither could be bound
                clock.now = job.deadline + 1
                runner.wake(job.id)
                await asyncio.wait_for(bot.runner.wait_idle(), 60)
                failed = await bot.engine.job(job.id)
                assert failed is not None and failed.state is JobState.FAILED
                assert failed.provider_job_id is None and surface.deliveries == []
                assert (await bot.engine.quota("test", "u1", "w1")).used == 0
            assert len(fake.submits) == images  # nothing was sent again


@pytest.mark.parametrize("name", ["atlascloud", "wavespeed"])
async def test_a_several_request_submit_names_what_it_made_and_goes_on_from_there(
    name: str, client: Transport
) -> None:
    """The provider's side: a lost answer says which requests were made before it; a submit with
    `started` makes only the rest, with the same seeds as if nothing had broken."""
    async with provider_fake(name) as fake:
        settings = Settings(_env_file=None, **env_for(name, fake))
        cls = AtlasCloudProvider if name == "atlascloud" else WaveSpeedProvider
        provider = cls(settings, client)
        spec = SubmitSpec("job-7", ImageRequest(prompt="x", n=3, seed=10), "full")
        fake.fail_next(None, "lost")
        with pytest.raises(LostAnswer) as caught:
            await provider.submit(spec)
        first, second = fake.jobs
        assert caught.value.started == [first] and len(fake.submits) == 2
        assert provider.requests_for(spec.request) == 3

        joined = await provider.submit(replace(spec, started=(first, second)))
        assert joined == provider.join_ids([first, second, *list(fake.jobs)[2:]]) == ",".join(fake.jobs)
        assert [s.json()["seed"] for s in fake.submits] == [10, 11, 12]


async def test_a_job_waiting_for_its_lost_answers_callback_holds_no_slot(tmp_path: Path) -> None:
    """With one slot, a job whose submit answer was lost waits for the provider's callback without
    keeping the slot: a later job goes through meanwhile, and the first is still saved after."""
    surface = RecordingSurface()
    async with provider_fake("pixazo") as fake:
        fake.fail_next("lost")
        fake.hold_callbacks = True
        env = {**env_for("pixazo", fake), "HIDREAM_MAX_ACTIVE_JOBS": 1}
        async with BotHarness(tmp_path, env, [surface.factory], callbacks=True, callback_grace=3600) as bot:
            lost = await bot.engine.submit(chat("a lighthouse --seed 2"))
            await job_when(bot, lost.id, lambda j, record: record.settled)
            later = await bot.engine.submit(chat("a harbour --seed 3"))
            async with asyncio.timeout(30):  # the later job reaches the provider while the first waits
                while len(fake.submits) < 2:  # noqa: ASYNC110
                    await asyncio.sleep(0.01)
            stored = await bot.engine.job(lost.id)
            assert stored is not None and stored.state is JobState.SUBMITTING
            fake.release_callbacks()  # the later job's callback, and the lost one's, go out now
            await asyncio.wait_for(bot.runner.wait_idle(), 60)
            assert sorted(job_id for job_id, _ in surface.deliveries) == sorted([lost.id, later.id])
            assert len(fake.submits) == 2


async def test_a_signed_completion_for_a_request_this_bot_did_not_make_is_not_taken(tmp_path: Path) -> None:
    """fal signs its webhooks, but a signature says only that fal sent it: while the job does not know
    its request id (the submit's answer was lost), a signed completion naming another request (one fal
    never made for this account, whose result points inside the network) completes nothing; the id is
    asked about with our key and refused, and the genuine callback still saves the job."""
    surface = RecordingSurface()
    async with FalFake().started() as fake:
        fake.fail_next("lost")
        fake.hold_callbacks = True
        env = {
            "HIDREAM_PROVIDER": "fal",
            "FAL_KEY": fake.key,
            "FAL_QUEUE_URL": fake.url,
            "FAL_JWKS_URL": fake.jwks_url,
            "FAL_USER_ID": fake.user_id,
        }
        async with BotHarness(tmp_path, env, [surface.factory], callbacks=True, callback_grace=3600) as bot:
            job = await bot.engine.submit(chat("a lighthouse --seed 2"))
            await job_when(bot, job.id, lambda j, record: record.settled)
            url = f"{bot.server_url}/webhooks/{job.callback_token}"
            other = "0b9e1c52-not-made-here"
            images = [{"url": "http://127.0.0.1:9/evil.png", "width": 64, "height": 64}]
            done = {"request_id": other, "status": "OK", "payload": {"images": images, "seed": 1}}
            body = json.dumps(done).encode()
            async with httpx.AsyncClient() as client:
                ours = await client.post(url, content=body, headers=fake.sign(other, body))
                # Another fal account's webhook (fal's own signature, their user id) is refused outright.
                theirs = await client.post(url, content=body, headers=fake.sign(other, body, user_id="u-9"))
            assert (ours.status_code, theirs.status_code) == (200, 401)
            stored = await job_when(bot, job.id, lambda j, record: any(other in r for r in record.refused))
            assert stored.state is JobState.SUBMITTING and stored.provider_job_id is None
            assert [other in call.path for call in fake.status_calls] == [True]  # asked once, with our key
            assert surface.deliveries == [] and surface.told == []

            fake.release_callbacks()
            await asyncio.wait_for(bot.runner.wait_idle(), 60)
            assert [job_id for job_id, _ in surface.deliveries] == [job.id]
            (made,) = fake.jobs
            saved = await bot.engine.job(job.id)
            assert saved is not None and saved.state is JobState.DELIVERED
            assert saved.provider_job_id is not None and json.loads(saved.provider_job_id)["id"] == made
            assert len(fake.submits) == 1 and (await bot.engine.quota("test", "u1", "w1")).used == 1
