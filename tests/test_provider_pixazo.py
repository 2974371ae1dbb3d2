"""Contract tests: PixazoProvider over real httpx against the loopback Pixazo fake.

Only what is this provider's own is here; what the HTTP base does for every provider (resends,
Retry-After, status codes to errors, transport errors) is tested once in test_provider_base.py.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bot.model.config import Settings
from bot.model.errors import (
    BadInput,
    CallbackRejected,
    ProviderMisconfigured,
    ProviderRejected,
    SubmitOutcomeUnknown,
)
from bot.model.requests import ImageRequest, Tier, parse_command
from bot.providers.base import RetryPolicy, SubmitSpec
from bot.providers.pixazo import PixazoProvider
from bot.transport import Transport
from tests.fakes.pixazo import PixazoFake
from tests.fakes.queue_common import Receiver, Sleeps, download, make_image, poll

KEY = "pixazo-secret-0123456789"


@pytest.fixture
async def fake() -> AsyncIterator[PixazoFake]:
    async with PixazoFake(api_key=KEY).started() as running:
        yield running


def settings_for(url: str, key: str = KEY, **extra: object) -> Settings:
    values: dict[str, Any] = {
        "HIDREAM_PROVIDER": "pixazo",
        "PIXAZO_API_KEY": key,
        "PIXAZO_BASE_URL": url,
        **extra,
    }
    return Settings(_env_file=None, **values)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def provider(fake: PixazoFake, client: Transport, sleeps: Sleeps) -> PixazoProvider:
    return PixazoProvider(settings_for(fake.url), client, retry=RetryPolicy(base_delay=0), sleep=sleeps)


def refs_for(receiver: Receiver, count: int, size: tuple[int, int] = (640, 480)) -> list[str]:
    return [receiver.add_media(f"ref{i}.png", make_image(*size, "png")) for i in range(count)]


MODES = {"text": 0, "edit": 1, "personalize": 3}
ENDPOINTS = {
    ("full", 0): "/hidream-o1-image/v1/hidream-o1-image-request",
    ("full", 1): "/hidream-o1-image-edit/v1/hidream-o1-image-edit-request",
    ("dev", 0): "/hidream-o1-image-dev/v1/hidream-o1-image-dev-request",
    ("dev", 1): "/hidream-o1-image-dev-edit/v1/hidream-o1-image-dev-edit-request",
}


@pytest.mark.parametrize("tier", ["full", "dev"])
@pytest.mark.parametrize("mode", list(MODES))
async def test_every_endpoint_by_polling(fake, receiver, client, provider, tier: Tier, mode: str) -> None:
    request = parse_command("a red fox in snow --seed 7 --n 2 --format jpeg").request
    refs = refs_for(receiver, MODES[mode])
    provider.validate(request, tier, len(refs))
    job_id = await provider.submit(SubmitSpec("job-1", request, tier, refs, callback_url=None))

    sent = fake.submits[-1]
    assert sent.path == ENDPOINTS[(tier, min(len(refs), 1))]
    assert sent.headers["Ocp-Apim-Subscription-Key"] == KEY
    assert sent.headers["Cache-Control"] == "no-cache"
    assert "X-Webhook-URL" not in sent.headers
    body = sent.json()
    assert body["num_inference_steps"] == (50 if tier == "full" else 28)
    assert body["guidance_scale"] == (5.0 if tier == "full" else 0.0)
    assert (body["seed"], body["num_images"], body["output_format"]) == (7, 2, "jpeg")
    assert body["enable_safety_checker"] is True
    assert body.get("reference_image_urls", []) == refs
    assert body.get("image_size") == (None if refs else "square_hd")
    assert job_id.startswith(ENDPOINTS[(tier, min(len(refs), 1))].split("/")[1] + "_")

    states, status = await poll(provider, job_id)
    assert states == ["queued", "running", "completed"]
    expected = (640, 480) if refs else (1024, 1024)
    assert await download(client, status) == [("JPEG", *expected)] * 2


@pytest.mark.parametrize("tier", ["full", "dev"])
@pytest.mark.parametrize("mode", list(MODES))
async def test_every_endpoint_by_callback(fake, receiver, client, provider, tier: Tier, mode: str) -> None:
    request = parse_command("a lighthouse at dusk --ar 16:9").request
    refs = refs_for(receiver, MODES[mode])
    hook = receiver.hook_url("job-2-token")
    job_id = await provider.submit(SubmitSpec("job-2", request, tier, refs, callback_url=hook))

    sent = fake.submits[-1]
    assert sent.headers["X-Webhook-URL"] == hook
    assert sent.json()["image_size"] == {"width": 1360, "height": 768}
    (callback,) = await receiver.wait_for(1)
    assert callback.path == "/webhooks/job-2-token"
    assert callback.json()["request_id"] == job_id
    # Pixazo does not sign callbacks: a hint only, the truth is read back from Pixazo.
    assert await provider.parse_callback(job_id, callback.headers, callback.body) is None
    assert await provider.parse_callback(None, callback.headers, callback.body) is None
    status = await provider.status(job_id)
    assert status.state == "completed"
    expected_w = 1360 if tier == "full" else 1344  # dev rounds down to a multiple of 32
    assert await download(client, status) == [("PNG", expected_w, 768)]


async def test_user_values_and_keep_aspect(fake, receiver, client, provider) -> None:
    request = parse_command("make it autumn --steps 30 --cfg 7.5 --keep-aspect --format webp").request
    refs = refs_for(receiver, 1, size=(600, 400))
    provider.validate(request, "full", 1)
    job_id = await provider.submit(SubmitSpec("job-3", request, "full", refs))
    body = fake.submits[-1].json()
    assert (body["num_inference_steps"], body["guidance_scale"]) == (30, 7.5)
    assert body["keep_original_aspect"] is True
    assert "image_size" not in body
    _, status = await poll(provider, job_id)
    assert await download(client, status) == [("WEBP", 600, 400)]


async def test_custom_size_and_safety_setting(fake, client) -> None:
    settings = settings_for(fake.url, HIDREAM_SAFETY_CHECKER="false")
    provider = PixazoProvider(settings, client, retry=RetryPolicy(base_delay=0))
    request = parse_command("a map --size 1536x1024").request
    job_id = await provider.submit(SubmitSpec("job-4", request, "full"))
    body = fake.submits[-1].json()
    assert body["image_size"] == {"width": 1536, "height": 1024}
    assert body["enable_safety_checker"] is False
    _, status = await poll(provider, job_id)
    assert await download(client, status) == [("PNG", 1536, 1024)]


@pytest.mark.parametrize(
    ("request_", "tier", "n_refs", "flag"),
    [
        (ImageRequest(prompt="x", guidance=0.5), "full", 0, "`--cfg 0.5`"),
        (ImageRequest(prompt="x", guidance=16), "full", 0, "`--cfg 16`"),
        (ImageRequest(prompt="x", steps=40), "dev", 0, "`--steps 40`"),
        (ImageRequest(prompt="x", width=3072, height=1024), "full", 0, "`--size 3072x1024`"),
        (ImageRequest(prompt="x", keep_aspect=True), "full", 2, "`--keep-aspect`"),
        (ImageRequest(prompt="x", keep_aspect=True), "full", 0, "`--keep-aspect`"),
    ],
)
def test_validate_refuses_what_pixazo_forbids(provider, request_, tier, n_refs, flag) -> None:
    with pytest.raises(BadInput) as caught:
        provider.validate(request_, tier, n_refs)
    assert flag in caught.value.user_message


def test_validate_accepts_documented_values(provider) -> None:
    provider.validate(ImageRequest(prompt="x", guidance=0.0, steps=28), "dev", 0)
    provider.validate(ImageRequest(prompt="x", guidance=15, steps=100, width=2048, height=2048), "full", 3)
    provider.validate(ImageRequest(prompt="x", keep_aspect=True), "dev", 1)


def test_price_per_request(provider) -> None:
    assert provider.cost_usd(ImageRequest(prompt="x", n=3), "full") == pytest.approx(0.03)
    assert provider.cost_usd(ImageRequest(prompt="x", n=2), "dev") == pytest.approx(0.01)
    assert provider.cost_usd(ImageRequest(prompt="x"), "dev") == pytest.approx(0.005)


def test_describe_names_endpoints_and_mode(fake, client) -> None:
    polling = PixazoProvider(settings_for(fake.url), client).describe()
    text = "\n".join(polling)
    for path in ENDPOINTS.values():
        assert f"POST {fake.url}{path}" in text
    assert f"GET  {fake.url}/v2/requests/status/" in text
    assert "polling" in polling[0]
    hooked = PixazoProvider(settings_for(fake.url, HIDREAM_PUBLIC_URL="https://bot.example"), client)
    assert "X-Webhook-URL" in hooked.describe()[0]


async def test_wrong_key_is_misconfiguration(fake, client, caplog) -> None:
    provider = PixazoProvider(settings_for(fake.url, key="not-the-key"), client)
    with caplog.at_level(logging.DEBUG), pytest.raises(ProviderMisconfigured) as caught:
        await provider.submit(SubmitSpec("job-6", ImageRequest(prompt="x"), "full"))
    assert fake.submits[-1].headers["Ocp-Apim-Subscription-Key"] == "not-the-key"
    assert "PIXAZO_API_KEY" in caplog.text
    assert "not-the-key" not in caplog.text and "not-the-key" not in str(caught.value)


async def test_provider_validation_refusal_reaches_user(fake, provider) -> None:
    # Skipping validate(): the fake checks the documented range and answers 400 with its reason.
    with pytest.raises(ProviderRejected) as caught:
        await provider.submit(SubmitSpec("job-7", ImageRequest(prompt="x", guidance=0.5), "full"))
    assert "guidance_scale must be between 1 and 15" in caught.value.user_message


async def test_dropped_connection_is_never_resent(fake, provider) -> None:
    fake.fail_next("drop")
    with pytest.raises(SubmitOutcomeUnknown) as caught:
        await provider.submit(SubmitSpec("job-10", ImageRequest(prompt="x"), "full"))
    assert "not sent again" in caught.value.user_message
    assert len(fake.submits) == 1


@pytest.mark.parametrize(
    ("outcome", "words"),
    [
        ("FAILED", "Pixazo could not make the image: The prompt was flagged by the content filter."),
        ("ERROR", "(you were not charged for it): Worker crashed while loading the model."),
    ],
)
@pytest.mark.parametrize("by_callback", [False, True])
async def test_failures_become_plain_words(fake, receiver, provider, outcome, words, by_callback) -> None:
    fake.outcome = outcome
    hook = receiver.hook_url() if by_callback else None
    job_id = await provider.submit(SubmitSpec("job-11", ImageRequest(prompt="x"), "dev", callback_url=hook))
    if by_callback:
        (callback,) = await receiver.wait_for(1)
        assert callback.json()["status"] == outcome
        assert await provider.parse_callback(job_id, callback.headers, callback.body) is None
        status = await provider.status(job_id)
    else:
        states, status = await poll(provider, job_id)
        assert states[-1] == "failed"
    assert status.state == "failed"
    assert status.error is not None and words in status.error
    assert not status.images


async def test_duplicate_callback_is_a_repeated_hint(fake, receiver, provider) -> None:
    fake.callback_repeats = 2
    job_id = await provider.submit(
        SubmitSpec("job-12", ImageRequest(prompt="x"), "full", [], receiver.hook_url())
    )
    first, second = await receiver.wait_for(2)
    assert first.body == second.body
    results = [await provider.parse_callback(job_id, c.headers, c.body) for c in (first, second)]
    assert results == [None, None]
    # Both hints lead to the same read: one completed job with the same images (the engine delivers once).
    assert await provider.status(job_id) == await provider.status(job_id)


@pytest.mark.parametrize(
    ("job_id", "body"),
    [
        ("hidream-o1-image_1", b"not json"),
        ("hidream-o1-image_1", b"[1, 2]"),
        ("hidream-o1-image_1", b'{"request_id": "hidream-o1-image_2", "status": "COMPLETED"}'),
    ],
)
async def test_malformed_or_foreign_callback_refused(provider, job_id, body) -> None:
    with pytest.raises(CallbackRejected) as caught:
        await provider.parse_callback(job_id, {}, body)
    assert caught.value.status == 400
