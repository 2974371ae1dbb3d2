"""Contract tests: AtlasCloudProvider over real httpx against the loopback Atlas Cloud fake.

Only what is this provider's own is here; what the HTTP base does for every provider (resends,
Retry-After, status codes to errors, transport errors) is tested once in test_provider_base.py.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from bot.model.config import Settings
from bot.model.errors import (
    BadInput,
    CallbackRejected,
    ProviderMisconfigured,
    ProviderOutOfCredit,
    ProviderRejected,
    SubmitOutcomeUnknown,
)
from bot.model.requests import ImageRequest, parse_command
from bot.providers.atlascloud import AtlasCloudProvider
from bot.providers.base import RetryPolicy, SubmitSpec
from tests.fakes.atlascloud import MODEL_EDIT, MODEL_T2I, AtlasCloudFake
from tests.fakes.queue_common import Receiver, Sleeps, download, make_image, poll

KEY = "atlas-secret-9876543210"
SUBMIT = "/api/v1/model/generateImage"


@pytest.fixture
async def fake() -> AsyncIterator[AtlasCloudFake]:
    async with AtlasCloudFake(api_key=KEY).started() as running:
        yield running


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


def settings_for(url: str, key: str = KEY, **extra: object) -> Settings:
    values: dict[str, Any] = {
        "HIDREAM_PROVIDER": "atlascloud",
        "ATLASCLOUD_API_KEY": key,
        "ATLASCLOUD_BASE_URL": url,
        **extra,
    }
    return Settings(_env_file=None, **values)


@pytest.fixture
def provider(fake: AtlasCloudFake, client: httpx.AsyncClient, sleeps: Sleeps) -> AtlasCloudProvider:
    return AtlasCloudProvider(settings_for(fake.url), client, retry=RetryPolicy(base_delay=0), sleep=sleeps)


def refs_for(receiver: Receiver, count: int, size: tuple[int, int] = (640, 480)) -> list[str]:
    return [receiver.add_media(f"ref{i}.png", make_image(*size, "png")) for i in range(count)]


MODES = {"text": 0, "edit": 1, "personalize": 3}


@pytest.mark.parametrize("mode", list(MODES))
async def test_every_mode_by_polling(fake, receiver, client, provider, mode: str) -> None:
    request = parse_command("a red fox in snow --ar 16:9 --seed 7 --n 2 --format webp").request
    refs = refs_for(receiver, MODES[mode])
    provider.validate(request, "full", len(refs))
    job_id = await provider.submit(SubmitSpec("job-1", request, "full", refs))

    # No image count in the documented parameters: one submit per image, ids joined.
    assert len(fake.submits) == 2
    assert job_id.split(",") == list(fake.jobs)
    for index, sent in enumerate(fake.submits):
        assert sent.path == SUBMIT
        assert sent.headers["Authorization"] == f"Bearer {KEY}"
        assert sent.json() == {
            "model": MODEL_EDIT if refs else MODEL_T2I,
            "prompt": "a red fox in snow",
            "image_size": "landscape_16_9",
            "num_inference_steps": 50,
            "guidance_scale": 5.0,
            "output_format": "webp",
            "seed": 7 + index,
            **({"reference_image_urls": refs} if refs else {}),
        }

    states, status = await poll(provider, job_id)
    assert states == ["queued", "running", "completed"]
    assert await download(client, status) == [("WEBP", 1024, 576)] * 2
    assert [image.nsfw for image in status.images] == [False, False]


@pytest.mark.parametrize("mode", list(MODES))
async def test_every_mode_by_callback(fake, receiver, client, provider, mode: str) -> None:
    request = parse_command("a lighthouse at dusk").request
    refs = refs_for(receiver, MODES[mode])
    hook = receiver.hook_url("job-2-token")
    job_id = await provider.submit(SubmitSpec("job-2", request, "full", refs, callback_url=hook))

    body = fake.submits[-1].json()
    assert body["webhook_url"] == hook
    assert body.get("image_size") == (None if refs else "square_hd")
    (callback,) = await receiver.wait_for(1)
    assert callback.path == "/webhooks/job-2-token"
    assert callback.json()["session_id"] == job_id
    # Signed: its own account of the prediction settles the job, with no status read.
    status = await provider.parse_callback(job_id, callback.headers, callback.body)
    assert status is not None and status.state == "completed"
    assert fake.status_calls == [] and fake.jwks_fetches == 1
    # A bot that does not know the job's id yet takes it as a cue to read the prediction back.
    other = AtlasCloudProvider(settings_for(fake.url), client)
    assert await other.parse_callback(None, callback.headers, callback.body) is None
    # An edit with no size asked gets the doc's default preset, landscape_4_3.
    expected = (1024, 768) if refs else (1024, 1024)
    assert await download(client, status) == [("PNG", *expected)]


async def test_keep_aspect_and_user_values(fake, receiver, client, provider) -> None:
    request = parse_command("make it autumn --keep-aspect --steps 80 --cfg 12.5 --format jpeg").request
    refs = refs_for(receiver, 1, size=(600, 400))
    provider.validate(request, "full", 1)
    job_id = await provider.submit(SubmitSpec("job-3", request, "full", refs))
    body = fake.submits[-1].json()
    assert body["keep_original_aspect"] is True
    assert (body["num_inference_steps"], body["guidance_scale"]) == (80, 12.5)
    _, status = await poll(provider, job_id)
    assert await download(client, status) == [("JPEG", 600, 400)]


@pytest.mark.parametrize(
    ("text", "preset"),
    [("--ar 3:4", "portrait_4_3"), ("--ar 9:16", "portrait_16_9"), ("--ar 1:1", "square_hd"),
     ("--size 512x512", "square"), ("--size landscape_4_3", "landscape_4_3")],
)  # fmt: skip
async def test_sizes_map_to_presets(fake, provider, text, preset) -> None:
    request = parse_command(f"a cat {text}").request
    provider.validate(request, "full", 0)
    await provider.submit(SubmitSpec("job-4", request, "full"))
    assert fake.submits[-1].json()["image_size"] == preset


@pytest.mark.parametrize(
    ("request_", "tier", "n_refs", "flag"),
    [
        (ImageRequest(prompt="x"), "dev", 0, "`dev`"),
        (ImageRequest(prompt="x", guidance=0.5), "full", 0, "`--cfg 0.5`"),
        (ImageRequest(prompt="x", aspect=(21, 9)), "full", 0, "`--ar 21:9`"),
        (ImageRequest(prompt="x", width=1536, height=1024), "full", 0, "`--size 1536x1024`"),
        (ImageRequest(prompt="x", keep_aspect=True), "full", 2, "`--keep-aspect`"),
    ],
)
def test_validate_refuses_what_atlas_forbids(provider, request_, tier, n_refs, flag) -> None:
    with pytest.raises(BadInput) as caught:
        provider.validate(request_, tier, n_refs)
    assert flag in caught.value.user_message


def test_validate_accepts_documented_values(provider) -> None:
    assert provider.tiers() == ("full",)
    provider.validate(ImageRequest(prompt="x", guidance=20.0, steps=100, preset="portrait_16_9"), "full", 4)
    provider.validate(ImageRequest(prompt="x", guidance=1.0, steps=1, keep_aspect=True), "full", 1)


def test_price_per_request(provider) -> None:
    assert provider.cost_usd(ImageRequest(prompt="x"), "full") == pytest.approx(0.044)
    assert provider.cost_usd(ImageRequest(prompt="x", n=3), "full") == pytest.approx(0.132)


def test_describe_names_endpoints_and_mode(fake, client) -> None:
    text = "\n".join(AtlasCloudProvider(settings_for(fake.url), client).describe())
    assert f"POST {fake.url}{SUBMIT}" in text
    assert f"GET  {fake.url}/api/v1/model/prediction/" in text
    assert "polling" in text
    hooked = AtlasCloudProvider(settings_for(fake.url, HIDREAM_PUBLIC_URL="https://bot.example"), client)
    assert "webhook_url" in hooked.describe()[0]


async def test_nsfw_flag_is_carried(fake, provider) -> None:
    fake.nsfw = True
    job_id = await provider.submit(SubmitSpec("job-5", ImageRequest(prompt="x"), "full"))
    _, status = await poll(provider, job_id)
    assert [image.nsfw for image in status.images] == [True]


async def test_wrong_key_is_misconfiguration(fake, client, caplog) -> None:
    provider = AtlasCloudProvider(settings_for(fake.url, key="not-the-key"), client)
    with caplog.at_level(logging.DEBUG), pytest.raises(ProviderMisconfigured) as caught:
        await provider.submit(SubmitSpec("job-7", ImageRequest(prompt="x"), "full"))
    assert fake.submits[-1].headers["Authorization"] == "Bearer not-the-key"
    assert "ATLASCLOUD_API_KEY" in caplog.text
    assert "not-the-key" not in caplog.text and "not-the-key" not in str(caught.value)


async def test_provider_validation_refusal_reaches_user(fake, provider) -> None:
    # Skipping validate(): the fake checks the documented range and answers 400 with its reason.
    with pytest.raises(ProviderRejected) as caught:
        await provider.submit(SubmitSpec("job-8", ImageRequest(prompt="x", guidance=0.5), "full"))
    assert "guidance_scale must be between 1.0 and 20.0" in caught.value.user_message


async def test_dropped_connection_is_never_resent(fake, provider) -> None:
    fake.fail_next("drop")
    with pytest.raises(SubmitOutcomeUnknown):
        await provider.submit(SubmitSpec("job-11", ImageRequest(prompt="x", n=3), "full"))
    assert len(fake.submits) == 1


async def test_later_image_refused_stops_the_job(fake, provider, caplog) -> None:
    fake.fail_next(None, 402)
    with pytest.raises(ProviderOutOfCredit):
        await provider.submit(SubmitSpec("job-12", ImageRequest(prompt="x", n=2), "full"))
    assert len(fake.submits) == 2
    (orphan,) = fake.jobs
    # The first image was already started: the operator's log names it.
    assert orphan in caplog.text


@pytest.mark.parametrize("by_callback", [False, True])
async def test_failure_becomes_plain_words(fake, receiver, provider, by_callback) -> None:
    fake.outcome = "failed"
    hook = receiver.hook_url() if by_callback else None
    job_id = await provider.submit(SubmitSpec("job-13", ImageRequest(prompt="x"), "full", callback_url=hook))
    if by_callback:
        (callback,) = await receiver.wait_for(1)
        assert callback.json()["payload"]["status"] == "failed"
        assert callback.json()["status"] == "ERROR"
        signed = await provider.parse_callback(job_id, callback.headers, callback.body)
        assert signed is not None and fake.status_calls == []
        status = signed
    else:
        states, status = await poll(provider, job_id)
        assert states[-1] == "failed"
    assert status.state == "failed"
    assert status.error == (
        "Atlas Cloud could not make the image: Generation failed: the content did not pass the safety check."
    )


async def test_one_failed_image_fails_the_whole_job(fake, provider) -> None:
    job_id = await provider.submit(SubmitSpec("job-14", ImageRequest(prompt="x", n=2), "full"))
    fake.jobs[job_id.split(",")[1]].outcome = "failed"
    _, status = await poll(provider, job_id)
    assert status.state == "failed"
    assert status.error is not None and "safety check" in status.error


async def test_a_repeated_callback_is_refused_as_a_replay(fake, receiver, provider) -> None:
    fake.callback_repeats = 2
    job_id = await provider.submit(
        SubmitSpec("job-15", ImageRequest(prompt="x"), "full", [], receiver.hook_url())
    )
    first, second = await receiver.wait_for(2)
    assert first.body == second.body
    status = await provider.parse_callback(job_id, first.headers, first.body)
    assert status is not None and status.state == "completed"
    with pytest.raises(CallbackRejected) as caught:
        await provider.parse_callback(job_id, second.headers, second.body)
    assert caught.value.status == 409
    assert await provider.status(job_id) == await provider.status(job_id)


@pytest.mark.parametrize(
    ("named", "body"),
    [
        ("pred_1", b"<html>"),
        ("pred_1", b'"text"'),
        ("pred_1", b'{"session_id": "pred_2", "status": "OK", "payload": {"status": "completed"}}'),
        ("pred_other", b'{"session_id": "pred_other", "status": "OK", "payload": {"status": "completed"}}'),
    ],
)
async def test_malformed_or_foreign_callback_refused(fake, provider, named, body) -> None:
    with pytest.raises(CallbackRejected) as caught:
        await provider.parse_callback("pred_1,pred_2", fake.sign(named, body), body)
    assert caught.value.status == 400


async def test_callback_for_any_part_of_a_multi_image_job_is_accepted(fake, provider) -> None:
    payload = {"id": "pred_2", "status": "completed", "outputs": ["https://files.example/2.png"]}
    body = json.dumps({"session_id": "pred_2", "status": "OK", "payload": payload}).encode()
    # One prediction of two is done: a cue to read both.
    assert await provider.parse_callback("pred_1,pred_2", fake.sign("pred_2", body), body) is None
    failed = b'{"session_id": "pred_1", "status": "ERROR", "payload": {"status": "failed"}, "error": "no"}'
    status = await provider.parse_callback("pred_1,pred_2", fake.sign("pred_1", failed), failed)
    assert (
        status is not None
        and status.state == "failed"
        and status.error == "Atlas Cloud could not make the image: no"
    )
