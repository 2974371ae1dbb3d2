"""Contract tests: WaveSpeedProvider against the loopback WaveSpeed fake, over real httpx.

Only what is this provider's own is here; what the HTTP base does for every provider (resends,
Retry-After, status codes to errors, transport errors) is tested once in test_provider_base.py.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
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
from bot.model.requests import PRESETS, ImageRequest, parse_command
from bot.providers.base import ProviderStatus, RetryPolicy, SubmitSpec
from bot.providers.wavespeed import WaveSpeedProvider, output_size
from bot.transport import Transport
from tests.fakes.queue_common import Receiver, Sleeps, image_info, make_image
from tests.fakes.wavespeed import FAILURE_TEXT, PIXELS_MAX, PIXELS_MIN, WaveSpeedFake


@pytest.fixture
async def fake() -> AsyncIterator[WaveSpeedFake]:
    async with WaveSpeedFake().started() as running:
        yield running


def make_provider(
    fake: WaveSpeedFake | None,
    client: Transport,
    *,
    key: str | None = None,
    secret: str | None = "fake's",
    clock: Callable[[], float] = time.time,
    sleeps: Sleeps | None = None,
    public_url: str = "",
) -> WaveSpeedProvider:
    env: dict[str, Any] = {"WAVESPEED_API_KEY": key or (fake.api_key if fake else "k")}
    if fake is not None:
        env["WAVESPEED_BASE_URL"] = fake.url
    if secret is not None:
        env["WAVESPEED_WEBHOOK_SECRET"] = fake.secret if fake is not None and secret == "fake's" else secret
    settings = Settings(_env_file=None, HIDREAM_PROVIDER="wavespeed", HIDREAM_PUBLIC_URL=public_url, **env)
    return WaveSpeedProvider(
        settings,
        client,
        retry=RetryPolicy(base_delay=0, max_delay=0),
        sleep=sleeps if sleeps is not None else Sleeps(),
        clock=clock,
    )


def refs_for(receiver: Receiver, count: int) -> list[str]:
    return [receiver.add_media(f"ref{i}.png", make_image(640, 480 + 16 * i)) for i in range(count)]


async def poll_until_done(provider: WaveSpeedProvider, job_id: str) -> list[ProviderStatus]:
    seen: list[ProviderStatus] = []
    for _ in range(10):
        seen.append(await provider.status(job_id))
        if seen[-1].state in ("completed", "failed"):
            return seen
    raise AssertionError(f"WaveSpeed job never finished: {seen}")


async def fetch_image(client: Transport, url: str) -> tuple[str, int, int]:
    response = await client.get(url)
    assert response.status == 200, url
    return image_info(response.body)


ENDPOINTS = [
    ("full", 0, "/api/v3/wavespeed-ai/hidream-o1-image/text-to-image"),
    ("full", 1, "/api/v3/wavespeed-ai/hidream-o1-image/edit"),
    ("full", 2, "/api/v3/wavespeed-ai/hidream-o1-image/edit"),
    ("dev", 0, "/api/v3/wavespeed-ai/hidream-o1-image-dev/text-to-image"),
    ("dev", 1, "/api/v3/wavespeed-ai/hidream-o1-image-dev/edit"),
    ("dev", 2, "/api/v3/wavespeed-ai/hidream-o1-image-dev/edit"),
]


@pytest.mark.parametrize(("tier", "n_refs", "path"), ENDPOINTS)
async def test_each_endpoint_by_polling_gathers_n_requests(
    fake, receiver, client, tier, n_refs, path
) -> None:
    provider = make_provider(fake, client)
    request = parse_command("a red fox in snow --ar 16:9 --seed 7 --n 2 --format webp").request
    provider.validate(request, tier, n_refs)
    refs = refs_for(receiver, n_refs)
    job_id = await provider.submit(SubmitSpec("job-1", request, tier, refs))

    assert len(fake.submits) == 2 and job_id == ",".join(fake.jobs)
    for index, sent in enumerate(fake.submits):
        assert sent.path == path and "webhook" not in sent.path
        assert sent.headers["Authorization"] == f"Bearer {fake.api_key}"
        body = sent.json()
        assert body["prompt"] == "a red fox in snow"
        assert (body["size"], body["output_format"], body["seed"]) == ("2560*1456", "webp", 7 + index)
        assert body["enable_sync_mode"] is False and body["enable_base64_output"] is False
        assert body.get("images") == (refs or None)

    seen = await poll_until_done(provider, job_id)
    assert [s.state for s in seen] == ["queued", "running", "completed"]
    assert len(fake.status_calls) == 6  # every prediction is read each time
    images = seen[-1].images
    assert len(images) == 2 and len({img.url for img in images}) == 2
    for image in images:
        assert await fetch_image(client, image.url) == ("WEBP", 2560, 1456)


@pytest.mark.parametrize(("tier", "n_refs", "path"), ENDPOINTS)
async def test_each_endpoint_by_signed_callback(fake, receiver, client, tier, n_refs, path) -> None:
    provider = make_provider(fake, client, public_url="https://bot.example")
    request = parse_command("a lighthouse at dusk --ar 9:16").request
    refs = refs_for(receiver, n_refs)
    hook = receiver.hook_url("job-7")
    job_id = await provider.submit(SubmitSpec("job-7", request, tier, refs, hook))
    assert fake.submits[-1].path == path
    assert fake.jobs[job_id].callback_url == hook

    got = (await receiver.wait_for(1))[0]
    assert got.path == "/webhooks/job-7"
    status = await provider.parse_callback(job_id, got.headers, got.body)
    assert status is not None and status.state == "completed"
    assert not fake.status_calls, "a signed callback of a one-image job needs no status read"
    # No --format: the bot's default (png) is sent, not left to WaveSpeed's jpeg.
    assert fake.submits[-1].json()["output_format"] == "png"
    assert await fetch_image(client, status.images[0].url) == ("PNG", 1456, 2560)


async def test_n_images_by_callback_gathers_all_predictions(fake, receiver, client) -> None:
    provider = make_provider(fake, client)
    request = ImageRequest(prompt="three foxes", n=3)
    job_id = await provider.submit(SubmitSpec("j", request, "full", [], receiver.hook_url()))
    assert len(job_id.split(",")) == 3
    callbacks = await receiver.wait_for(3)
    named = {json.loads(got.body)["id"] for got in callbacks}
    assert named == set(job_id.split(","))
    for got in callbacks:
        # One prediction of several: a cue to read them all, not the job's result.
        assert await provider.parse_callback(job_id, got.headers, got.body) is None
        assert await provider.parse_callback(None, got.headers, got.body) is None
    status = await provider.status(job_id)
    assert status.state == "completed" and len(status.images) == 3


async def test_failed_prediction_fails_the_job_by_polling_and_by_callback(fake, receiver, client) -> None:
    fake.outcome = "failed"
    provider = make_provider(fake, client)
    plain = f"WaveSpeed could not make the image: {FAILURE_TEXT}"
    polled = await provider.submit(SubmitSpec("a", ImageRequest(prompt="x", n=2), "full"))
    assert (await poll_until_done(provider, polled))[-1] == ProviderStatus(state="failed", error=plain)
    hooked = await provider.submit(
        SubmitSpec("b", ImageRequest(prompt="x", n=2), "dev", [], receiver.hook_url())
    )
    got = (await receiver.wait_for(1))[0]
    assert await provider.parse_callback(hooked, got.headers, got.body) == ProviderStatus(
        state="failed", error=plain
    )


async def test_nsfw_flags_reach_the_images(fake, client) -> None:
    fake.nsfw = True
    provider = make_provider(fake, client)
    job_id = await provider.submit(SubmitSpec("j", ImageRequest(prompt="x"), "dev"))
    assert [img.nsfw for img in (await poll_until_done(provider, job_id))[-1].images] == [True]


# --- sizes and references --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "request_",
    [ImageRequest(prompt="x", preset=name) for name in PRESETS]
    + [ImageRequest(prompt="x", aspect=ar) for ar in [(1, 4), (4, 1), (16, 9), (9, 16), (3, 2), (1, 1)]]
    + [ImageRequest(prompt="x")],
)
async def test_presets_and_ratios_map_to_sizes_wavespeed_accepts(fake, client, request_) -> None:
    width, height = output_size(request_)
    asked_w, asked_h = request_.dimensions()
    assert (
        PIXELS_MIN <= width * height <= PIXELS_MAX
        and 256 <= min(width, height)
        and max(width, height) <= 4096
    )
    assert width / height == pytest.approx(asked_w / asked_h, rel=0.02)
    provider = make_provider(fake, client)
    provider.validate(request_, "full", 0)
    job_id = await provider.submit(SubmitSpec("j", request_, "full"))
    assert fake.jobs[job_id].size == (width, height)


async def test_exact_sizes_outside_the_range_are_refused_before_any_call(fake, client) -> None:
    provider = make_provider(fake, client)
    with pytest.raises(BadInput) as caught:
        provider.validate(parse_command("x --size 1024x1024").request, "full", 0)
    assert "`--size 1024x1024`" in caught.value.user_message and "2560x1440" in caught.value.user_message
    provider.validate(parse_command("x --size 2048x2048").request, "full", 0)
    assert not fake.submits


@pytest.mark.parametrize(
    ("text", "flag"),
    [("x --steps 20", "`--steps 20`"), ("x --cfg 4", "`--cfg 4`")],
)
async def test_flags_wavespeed_does_not_offer_are_refused(client, text, flag) -> None:
    provider = make_provider(None, client)
    with pytest.raises(BadInput) as caught:
        provider.validate(parse_command(text).request, "full", 1)
    assert caught.value.user_message.startswith(flag)


async def test_data_uri_references_are_sent_inline(fake, client) -> None:
    provider = make_provider(fake, client)
    assert provider.accepts_data_uris
    data_uri = "data:image/png;base64," + base64.b64encode(make_image(800, 600)).decode()
    job_id = await provider.submit(SubmitSpec("j", ImageRequest(prompt="make it blue"), "full", [data_uri]))
    assert fake.submits[-1].json()["images"] == [data_uri]
    assert (await poll_until_done(provider, job_id))[-1].state == "completed"


async def test_too_narrow_inline_reference_is_refused_before_any_call(fake, client) -> None:
    provider = make_provider(fake, client)
    data_uri = "data:image/png;base64," + base64.b64encode(make_image(1000, 200)).decode()
    with pytest.raises(BadInput, match="between 1:4 and 4:1"):
        await provider.submit(SubmitSpec("j", ImageRequest(prompt="x"), "full", [data_uri]))
    assert not fake.submits


# --- callback signatures -------------------------------------------------------------------------


async def genuine_callback(
    receiver: Receiver, provider: WaveSpeedProvider
) -> tuple[str, dict[str, str], bytes]:
    job_id = await provider.submit(SubmitSpec("j", ImageRequest(prompt="x"), "full", [], receiver.hook_url()))
    got = (await receiver.wait_for(len(receiver.received) + 1))[-1]
    return job_id, got.headers, got.body


async def test_callback_before_the_submit_answer_is_verified_then_read_from_wavespeed(fake, receiver, client):
    provider = make_provider(fake, client)
    _, headers, body = await genuine_callback(receiver, provider)
    # The job's size is not known yet, so a finished prediction is a cue to poll, not the result.
    assert await provider.parse_callback(None, headers, body) is None
    with pytest.raises(CallbackRejected):
        await provider.parse_callback(None, headers, body + b" ")


async def test_callback_signed_with_another_secret_is_refused(fake, receiver, client) -> None:
    provider = make_provider(fake, client)
    job_id, _, body = await genuine_callback(receiver, provider)
    with pytest.raises(CallbackRejected, match="signature"):
        await provider.parse_callback(job_id, fake.sign(body, secret="whsec_someone-else"), body)


@pytest.mark.parametrize("offset", [-301, 301])
async def test_callback_more_than_300_seconds_off_is_refused(fake, receiver, client, offset) -> None:
    provider = make_provider(fake, client)
    job_id, _, body = await genuine_callback(receiver, provider)
    stamped = fake.sign(body, timestamp=int(time.time()) + offset)
    with pytest.raises(CallbackRejected, match="300 s"):
        await provider.parse_callback(job_id, stamped, body)
    later = make_provider(fake, client, clock=lambda: time.time() + offset)
    assert await later.parse_callback(job_id, stamped, body) is not None


async def test_callback_with_an_altered_body_is_refused(fake, receiver, client) -> None:
    provider = make_provider(fake, client)
    job_id, headers, body = await genuine_callback(receiver, provider)
    altered = body.replace(b'"completed"', b'"failed"')
    assert altered != body
    with pytest.raises(CallbackRejected, match="signature"):
        await provider.parse_callback(job_id, headers, altered)


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
async def test_callback_missing_a_signature_header_is_refused(fake, receiver, client, missing) -> None:
    provider = make_provider(fake, client)
    job_id, headers, body = await genuine_callback(receiver, provider)
    partial = {k: v for k, v in headers.items() if k.lower() != missing}
    assert len(partial) == len(headers) - 1
    with pytest.raises(CallbackRejected, match="headers"):
        await provider.parse_callback(job_id, partial, body)


async def test_signature_list_with_one_good_v3_entry_is_accepted(fake, receiver, client) -> None:
    provider = make_provider(fake, client)
    job_id, headers, body = await genuine_callback(receiver, provider)
    good = next(v for k, v in headers.items() if k.lower() == "webhook-signature")
    listed = {k: v for k, v in headers.items() if k.lower() != "webhook-signature"}
    listed["webhook-signature"] = f"v1,{'0' * 64} {good}"
    assert await provider.parse_callback(job_id, listed, body) is not None


async def test_genuine_callback_of_another_job_is_refused(fake, receiver, client) -> None:
    provider = make_provider(fake, client)
    first, _, _ = await genuine_callback(receiver, provider)
    _, headers, body = await genuine_callback(receiver, provider)
    with pytest.raises(CallbackRejected, match="another job"):
        await provider.parse_callback(first, headers, body)


async def test_duplicate_callbacks_are_identical_and_read_the_same(fake, receiver, client) -> None:
    fake.callback_repeats = 2
    provider = make_provider(fake, client)
    job_id = await provider.submit(SubmitSpec("j", ImageRequest(prompt="x"), "full", [], receiver.hook_url()))
    first, second = await receiver.wait_for(2)
    assert first.body == second.body
    one = await provider.parse_callback(job_id, first.headers, first.body)
    assert one is not None and one == await provider.parse_callback(job_id, second.headers, second.body)


async def test_without_a_secret_callbacks_are_only_hints(fake, receiver, client) -> None:
    provider = make_provider(fake, client, secret=None, public_url="https://bot.example")
    assert provider.signs_callbacks is False
    assert "hints only" in "\n".join(provider.describe())
    job_id, _, body = await genuine_callback(receiver, provider)
    assert await provider.parse_callback(job_id, {}, body) is None
    with pytest.raises(CallbackRejected):
        await provider.parse_callback(job_id, {}, b"[]")


# --- errors --------------------------------------------------------------------------------------


async def test_wrong_key_is_misconfiguration_naming_the_setting(fake, client, caplog) -> None:
    provider = make_provider(fake, client, key="not-the-key")
    with caplog.at_level(logging.ERROR), pytest.raises(ProviderMisconfigured):
        await provider.submit(SubmitSpec("j", ImageRequest(prompt="x"), "full"))
    assert "WAVESPEED_API_KEY" in caplog.text and "not-the-key" not in caplog.text


async def test_refusal_of_a_later_request_names_the_reason_and_logs_the_started_ones(
    fake, client, caplog
) -> None:
    fake.fail_next("pass", 400)
    provider = make_provider(fake, client)
    with caplog.at_level(logging.WARNING), pytest.raises(ProviderRejected):
        await provider.submit(SubmitSpec("job-9", ImageRequest(prompt="x", n=3), "full"))
    assert len(fake.submits) == 2 and len(fake.jobs) == 1
    assert next(iter(fake.jobs)) in caplog.text and "job-9" in caplog.text


async def test_dropped_connection_after_sending_is_never_resent(fake, client) -> None:
    fake.fail_next("drop")
    provider = make_provider(fake, client)
    with pytest.raises(SubmitOutcomeUnknown) as caught:
        await provider.submit(SubmitSpec("j", ImageRequest(prompt="x", n=2), "full"))
    assert len(fake.submits) == 1
    assert "not sent again" in caught.value.user_message


# --- price and description -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tier", "n", "price"), [("full", 1, 0.04), ("full", 3, 0.12), ("dev", 1, 0.02), ("dev", 4, 0.08)]
)
async def test_price_is_flat_per_image(client, tier, n, price) -> None:
    provider = make_provider(None, client)
    assert provider.cost_usd(ImageRequest(prompt="x", n=n), tier) == pytest.approx(price)


async def test_describe_names_endpoints_and_mode(client) -> None:
    polling = "\n".join(make_provider(None, client).describe())
    assert "polling" in polling
    assert "https://api.wavespeed.ai/api/v3/wavespeed-ai/hidream-o1-image-dev/edit" in polling
    assert "https://api.wavespeed.ai/api/v3/predictions/{id}/result" in polling
    signed = "\n".join(
        make_provider(None, client, secret="whsec_x", public_url="https://bot.example").describe()
    )
    assert "HMAC-signed" in signed
