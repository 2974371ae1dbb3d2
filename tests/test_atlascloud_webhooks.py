"""Atlas Cloud's signed callbacks, end to end: the bot's server against the loopback Atlas Cloud fake,
which signs with a real Ed25519 key and publishes it as a JWKS on its API host.

A verified terminal callback delivers the job with no status read; an unsigned, forged, tampered,
stale, replayed or unknown-key one is refused with a 4xx and changes nothing; the key set is fetched
once, refreshed when a callback names a key id not held, with fal's spacing and backoff.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bot.app import Bot
from bot.model.config import Settings
from bot.model.errors import CallbackRejected
from bot.model.jobs import Job, JobState
from bot.model.requests import ChatRequest, ImageRequest, parse_command
from bot.providers.atlascloud import AtlasCloudProvider
from bot.providers.base import SubmitSpec
from bot.providers.jwks import JWKS_REFETCH_MIN_S
from bot.transport import Transport
from tests.fakes.atlascloud import AtlasCloudFake
from tests.fakes.queue_common import Receiver
from tests.fakes.surface import RecordingSurface
from tests.support.harness import BotHarness

KEY = "atlas-test-key"


@pytest.fixture
async def fake() -> AsyncIterator[AtlasCloudFake]:
    async with AtlasCloudFake(api_key=KEY).started() as running:
        yield running


def env_for(fake: AtlasCloudFake) -> dict[str, Any]:
    return {"HIDREAM_PROVIDER": "atlascloud", "ATLASCLOUD_API_KEY": KEY, "ATLASCLOUD_BASE_URL": fake.url}


def chat(text: str) -> ChatRequest:
    return ChatRequest(
        surface="test",
        user_id="u1",
        workspace_id="w1",
        origin={"thread": "t1"},
        request=parse_command(text).request,
    )


def harness(tmp_path: Path, fake: AtlasCloudFake, surface: RecordingSurface) -> BotHarness:
    # An hour's grace: no safety poll, so only a callback can finish the job within the test.
    return BotHarness(tmp_path, env_for(fake), [surface.factory], callbacks=True, callback_grace=3600)


async def running(bot: Bot, job_id: str) -> Job:
    """The stored job once it runs at the provider under a known id."""
    async with asyncio.timeout(30):
        while True:
            job = await bot.engine.job(job_id)
            assert job is not None
            if job.state is JobState.RUNNING and job.provider_job_id:
                return job
            await asyncio.sleep(0.01)


async def test_a_signed_callback_delivers_the_job_with_no_status_read(
    tmp_path: Path, fake: AtlasCloudFake
) -> None:
    surface = RecordingSurface()
    async with harness(tmp_path, fake, surface) as bot:
        job = await bot.engine.submit(chat("a red fox in snow --seed 5"))
        await asyncio.wait_for(bot.runner.wait_idle(), 60)
        stored = await bot.engine.job(job.id)
        assert stored is not None and stored.state is JobState.DELIVERED
        assert [job_id for job_id, _ in surface.deliveries] == [job.id]
        assert fake.callbacks_sent and {status for _, status in fake.callbacks_sent} == {200}
        assert fake.status_calls == []  # the callback's own word settled it
        assert fake.jwks_fetches == 1


def forgeries(
    fake: AtlasCloudFake, prediction: str, genuine: bytes
) -> dict[str, tuple[bytes, dict[str, str]]]:
    """Callbacks the bot must refuse, each as (body, headers)."""
    signed = fake.sign(prediction, genuine)
    tampered = genuine.replace(fake.url.encode(), b"http://127.0.0.1:9")
    assert tampered != genuine
    legacy = {k: v for k, v in signed.items() if not k.endswith(("-Ed25519", "-Key-Id"))}
    stranger = Ed25519PrivateKey.generate()
    return {
        "unsigned": (genuine, {}),
        "legacy HMAC only": (genuine, legacy),
        "another key under Atlas Cloud's key id": (genuine, fake.sign(prediction, genuine, key=stranger)),
        "another key under a made-up key id": (
            genuine,
            fake.sign(prediction, genuine, key=stranger, key_id="atlas-key-99"),
        ),
        "tampered body": (tampered, signed),
        "stale (301 s old)": (genuine, fake.sign(prediction, genuine, timestamp=int(time.time()) - 301)),
        # Well past the tolerance: the bot reads its clock later than this line, by seconds on a busy machine.
        "from the future (400 s ahead)": (
            genuine,
            fake.sign(prediction, genuine, timestamp=int(time.time()) + 400),
        ),
        "garbled signature": (genuine, {**signed, "X-AtlasCloud-Webhook-Signature-Ed25519": "not base64!"}),
        "headers naming another prediction": (genuine, fake.sign("pred_other", genuine)),
    }


async def test_unsigned_forged_stale_and_replayed_callbacks_change_nothing(
    tmp_path: Path, fake: AtlasCloudFake
) -> None:
    surface = RecordingSurface()
    fake.hold()  # the prediction stays at work and its own callback is held back
    async with harness(tmp_path, fake, surface) as bot:
        job = await running(bot, (await bot.engine.submit(chat("a quiet harbour --seed 3"))).id)
        assert job.provider_job_id is not None
        prediction = fake.jobs[job.provider_job_id]
        url = f"{bot.server_url}/webhooks/{job.callback_token}"
        # Done now, as far as Atlas Cloud knows; only a callback can tell the bot.
        fake.holding = prediction.held = False
        genuine = json.dumps(fake.webhook(prediction)).encode()

        async with httpx.AsyncClient() as client:
            for what, (body, headers) in forgeries(fake, prediction.id, genuine).items():
                answer = await client.post(url, content=body, headers=headers)
                assert 400 <= answer.status_code < 500, what
                stored = await bot.engine.job(job.id)
                assert stored is not None and stored.state is JobState.RUNNING, what
            assert surface.deliveries == [] and fake.status_calls == []
            # One look at the key set: the made-up key id came within the spacing after it.
            assert fake.jwks_fetches == 1

            headers = fake.sign(prediction.id, genuine)
            assert (await client.post(url, content=genuine, headers=headers)).status_code == 200
            await asyncio.wait_for(bot.runner.wait_idle(), 60)
            assert [job_id for job_id, _ in surface.deliveries] == [job.id]
            # The very same signed callback again is a replay: refused, and still one delivery.
            assert (await client.post(url, content=genuine, headers=headers)).status_code == 409
            await bot.runner.wait_idle()
        done = await bot.engine.job(job.id)
        assert done is not None and done.state is JobState.DELIVERED
        assert len(surface.deliveries) == 1 and fake.status_calls == []


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def provider_for(fake: AtlasCloudFake, client: Transport, clock: Callable[[], float]) -> AtlasCloudProvider:
    settings = Settings(_env_file=None, HIDREAM_PUBLIC_URL="https://bot.example", **env_for(fake))
    return AtlasCloudProvider(settings, client, clock=clock)


async def signed_callback(
    fake: AtlasCloudFake, receiver: Receiver, provider: AtlasCloudProvider, clock: Clock
) -> tuple[str, dict[str, str], bytes]:
    """A genuine callback, signed now on the test's clock with the fake's current key."""
    job_id = await provider.submit(SubmitSpec("j", ImageRequest(prompt="x"), "full", [], receiver.hook_url()))
    got = (await receiver.wait_for(len(receiver.received) + 1))[-1]
    return job_id, fake.sign(job_id, got.body, timestamp=int(clock.now)), got.body


async def test_a_rotated_key_is_fetched_once_and_made_up_key_ids_do_not_hammer_the_jwks(
    fake: AtlasCloudFake, receiver: Receiver, client: Transport
) -> None:
    clock = Clock()
    provider = provider_for(fake, client, clock)
    job_id, headers, body = await signed_callback(fake, receiver, provider, clock)
    assert await provider.parse_callback(job_id, headers, body) is not None
    assert fake.jwks_fetches == 1

    # A wrong signature under a key id held is simply wrong: no fetch.
    job_id, headers, body = await signed_callback(fake, receiver, provider, clock)
    with pytest.raises(CallbackRejected) as caught:
        await provider.parse_callback(job_id, fake.sign(job_id, body, key=Ed25519PrivateKey.generate()), body)
    assert caught.value.status == 401 and fake.jwks_fetches == 1

    # Atlas Cloud rotates its key: the first callback under the new id fetches the key set again.
    clock.now += JWKS_REFETCH_MIN_S
    fake.rotate_key()
    job_id, headers, body = await signed_callback(fake, receiver, provider, clock)
    assert await provider.parse_callback(job_id, headers, body) is not None
    assert fake.jwks_fetches == 2

    # Made-up key ids: at most one fetch per spacing, however many callbacks name them.
    for n in range(10):
        job_id, _, body = await signed_callback(fake, receiver, provider, clock)
        forged = fake.sign(job_id, body, key=Ed25519PrivateKey.generate(), key_id=f"made-up-{n}")
        with pytest.raises(CallbackRejected):
            await provider.parse_callback(job_id, forged, body)
    assert fake.jwks_fetches == 2


async def test_a_failing_jwks_endpoint_answers_503_with_fals_backoff(
    fake: AtlasCloudFake, receiver: Receiver, client: Transport
) -> None:
    fake.jwks_available = False
    clock = Clock()
    provider = provider_for(fake, client, clock)
    for _ in range(10):
        job_id, headers, body = await signed_callback(fake, receiver, provider, clock)
        with pytest.raises(CallbackRejected) as caught:
            await provider.parse_callback(job_id, headers, body)
        assert caught.value.status == 503  # Atlas Cloud tries again later
    assert fake.jwks_fetches == 1
    clock.now += JWKS_REFETCH_MIN_S
    fake.jwks_available = True
    job_id, headers, body = await signed_callback(fake, receiver, provider, clock)
    assert await provider.parse_callback(job_id, headers, body) is not None
    assert fake.jwks_fetches == 2
