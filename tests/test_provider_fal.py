"""Contract tests: FalProvider against the loopback fal fake, over real httpx.

Only what is this provider's own is here; what the HTTP base does for every provider (resends,
Retry-After, status codes to errors, transport errors) is tested once in test_provider_base.py.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import AsyncIterator

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bot.model.config import Settings
from bot.model.errors import (
    BadInput,
    CallbackRejected,
    ProviderMisconfigured,
    ProviderRejected,
    SubmitOutcomeUnknown,
)
from bot.model.requests import ImageRequest, parse_command
from bot.providers.base import ProviderStatus, SubmitSpec
from bot.providers.fal import FalProvider
from bot.transport import Transport
from tests.fakes.fal import FAILURE_TEXT, FalFake
from tests.fakes.queue_common import Receiver, image_info, make_image
from tests.support.fal import genuine_callback, make_provider


@pytest.fixture
async def fake() -> AsyncIterator[FalFake]:
    async with FalFake().started() as running:
        yield running


def refs_for(receiver: Receiver, count: int) -> list[str]:
    return [receiver.add_media(f"ref{i}.png", make_image(640, 480 + 16 * i)) for i in range(count)]


async def poll_until_done(provider: FalProvider, job_id: str) -> list[ProviderStatus]:
    seen: list[ProviderStatus] = []
    for _ in range(10):
        seen.append(await provider.status(job_id))
        if seen[-1].state in ("completed", "failed"):
            return seen
    raise AssertionError(f"fal job never finished: {seen}")


async def fetch_image(client: Transport, url: str) -> tuple[str, int, int]:
    response = await client.get(url)
    assert response.status == 200, url
    return image_info(response.body)


ENDPOINTS = [
    ("full", 0, "/fal-ai/hidream-o1-image"),
    ("full", 1, "/fal-ai/hidream-o1-image/edit"),
    ("full", 2, "/fal-ai/hidream-o1-image/edit"),
    ("dev", 0, "/fal-ai/hidream-o1-image/dev"),
    ("dev", 1, "/fal-ai/hidream-o1-image/dev/edit"),
    ("dev", 2, "/fal-ai/hidream-o1-image/dev/edit"),
]


@pytest.mark.parametrize("by_callback", [False, True], ids=["polling", "callback"])
@pytest.mark.parametrize(("tier", "n_refs", "path"), ENDPOINTS)
async def test_each_endpoint_completes(fake, receiver, client, tier, n_refs, path, by_callback) -> None:
    provider = make_provider(fake, client)
    request = parse_command("a red fox in snow --ar 16:9 --seed 7 --n 2 --format webp").request
    provider.validate(request, tier, n_refs)
    refs = refs_for(receiver, n_refs)
    hook = receiver.hook_url("job-1") if by_callback else None
    job_id = await provider.submit(SubmitSpec("job-1", request, tier, refs, hook))

    sent = fake.submits[-1]
    assert sent.path == path
    assert sent.headers["Authorization"] == f"Key {fake.key}"
    body = sent.json()
    assert body["prompt"] == "a red fox in snow"
    assert body["image_size"] == {"width": 1360, "height": 768}
    assert (body["seed"], body["num_images"], body["output_format"]) == (7, 2, "webp")
    assert body["enable_safety_checker"] is True
    assert body.get("reference_image_urls") == (refs or None)
    if tier == "dev":
        assert (body["num_inference_steps"], body["guidance_scale"]) == (28, 0.0)
    else:
        assert "num_inference_steps" not in body and "guidance_scale" not in body

    if by_callback:
        got = (await receiver.wait_for(1))[0]
        assert got.path == "/webhooks/job-1"
        status = await provider.parse_callback(job_id, got.headers, got.body)
        assert status is not None
        assert not fake.status_calls, "a signed callback needs no status read"
    else:
        seen = await poll_until_done(provider, job_id)
        assert [s.state for s in seen] == ["queued", "running", "completed"]
        assert seen[0].queue_position == 1
        assert all("fal_webhook" not in call.path for call in fake.submits)
        status = seen[-1]
    assert status.state == "completed" and status.seed == 7
    assert len(status.images) == 2 and not any(img.nsfw for img in status.images)
    for image in status.images:
        assert await fetch_image(client, image.url) == ("WEBP", 1360, 768)


async def test_webhook_url_travels_as_the_fal_webhook_query_parameter(fake, receiver, client) -> None:
    provider = make_provider(fake, client)
    request = ImageRequest(prompt="a lighthouse")
    hook = receiver.hook_url("tok-42") + "?x=1"
    await provider.submit(SubmitSpec("j", request, "full", [], hook))
    job = next(iter(fake.jobs.values()))
    assert job.callback_url == hook
    assert fake.submits[-1].json()["image_size"] == "square_hd"


async def test_edit_with_data_uri_and_keep_aspect(fake, client) -> None:
    provider = make_provider(fake, client)
    assert provider.accepts_data_uris
    request = parse_command("make it night --keep-aspect").request
    provider.validate(request, "full", 1)
    data_uri = "data:image/png;base64," + base64.b64encode(make_image(600, 400)).decode()
    job_id = await provider.submit(SubmitSpec("j", request, "full", [data_uri]))
    body = fake.submits[-1].json()
    assert body["keep_original_aspect"] is True and body["reference_image_urls"] == [data_uri]
    status = (await poll_until_done(provider, job_id))[-1]
    assert await fetch_image(client, status.images[0].url) == ("PNG", 600, 400)


async def test_nsfw_flags_reach_the_images(fake, client) -> None:
    fake.nsfw = True
    provider = make_provider(fake, client)
    job_id = await provider.submit(SubmitSpec("j", ImageRequest(prompt="x", n=2), "dev"))
    status = (await poll_until_done(provider, job_id))[-1]
    assert [img.nsfw for img in status.images] == [True, True]


@pytest.mark.parametrize("error_in_status", [True, False], ids=["status-error", "response-422"])
async def test_failed_generation_by_polling_is_told_plainly(fake, client, error_in_status) -> None:
    fake.outcome = "ERROR"
    fake.error_in_status = error_in_status
    provider = make_provider(fake, client)
    job_id = await provider.submit(SubmitSpec("j", ImageRequest(prompt="x"), "full"))
    status = (await poll_until_done(provider, job_id))[-1]
    assert status.state == "failed"
    assert status.error == f"fal could not make the image: {FAILURE_TEXT}"


async def test_failed_generation_by_callback_is_told_plainly(fake, receiver, client) -> None:
    fake.outcome = "ERROR"
    provider = make_provider(fake, client)
    job_id = await provider.submit(SubmitSpec("j", ImageRequest(prompt="x"), "full", [], receiver.hook_url()))
    got = (await receiver.wait_for(1))[0]
    status = await provider.parse_callback(job_id, got.headers, got.body)
    assert status == ProviderStatus(state="failed", error=f"fal could not make the image: {FAILURE_TEXT}")


# --- callback signatures -------------------------------------------------------------------------


async def test_callback_before_the_submit_answer_is_still_verified_and_read(fake, receiver, client) -> None:
    provider = make_provider(fake, client)
    _, headers, body = await genuine_callback(fake, receiver, provider)
    status = await provider.parse_callback(None, headers, body)
    assert status is not None and status.state == "completed" and len(status.images) == 1


async def test_callback_signed_with_another_key_is_refused(fake, receiver, client) -> None:
    provider = make_provider(fake, client)
    job_id, _, body = await genuine_callback(fake, receiver, provider)
    request_id = json.loads(body)["request_id"]
    forged = fake.sign(request_id, body, key=Ed25519PrivateKey.generate())
    with pytest.raises(CallbackRejected, match="signature"):
        await provider.parse_callback(job_id, forged, body)


@pytest.mark.parametrize("offset", [-301, 301])
async def test_callback_more_than_300_seconds_off_is_refused(fake, receiver, client, offset) -> None:
    provider = make_provider(fake, client)
    job_id, _, body = await genuine_callback(fake, receiver, provider)
    request_id = json.loads(body)["request_id"]
    stamped = fake.sign(request_id, body, timestamp=int(time.time()) + offset)
    with pytest.raises(CallbackRejected, match="300 s"):
        await provider.parse_callback(job_id, stamped, body)
    # The very same callback is fine when our clock agrees with it.
    later = make_provider(fake, client, clock=lambda: time.time() + offset)
    assert (await later.parse_callback(job_id, stamped, body)) is not None


async def test_callback_with_an_altered_body_is_refused(fake, receiver, client) -> None:
    provider = make_provider(fake, client)
    job_id, headers, body = await genuine_callback(fake, receiver, provider)
    altered = body.replace(b'"OK"', b'"ERROR"')
    assert altered != body
    with pytest.raises(CallbackRejected, match="signature"):
        await provider.parse_callback(job_id, headers, altered)


@pytest.mark.parametrize("missing", ["Request-Id", "User-Id", "Timestamp", "Signature"])
async def test_callback_missing_a_signature_header_is_refused(fake, receiver, client, missing) -> None:
    provider = make_provider(fake, client)
    job_id, headers, body = await genuine_callback(fake, receiver, provider)
    partial = {k: v for k, v in headers.items() if k.lower() != f"x-fal-webhook-{missing.lower()}"}
    assert len(partial) == len(headers) - 1
    with pytest.raises(CallbackRejected, match="headers"):
        await provider.parse_callback(job_id, partial, body)


async def test_genuine_callback_of_another_job_is_refused(fake, receiver, client) -> None:
    provider = make_provider(fake, client)
    first, _, _ = await genuine_callback(fake, receiver, provider)
    _, headers, body = await genuine_callback(fake, receiver, provider)
    with pytest.raises(CallbackRejected, match="another job"):
        await provider.parse_callback(first, headers, body)


async def test_a_webhook_of_another_fal_account_does_not_verify(fake, receiver, client) -> None:
    """fal signs every account's webhooks with the same keys: the signed user id tells them apart."""
    provider = make_provider(fake, client)
    job_id, headers, body = await genuine_callback(fake, receiver, provider)
    request_id = json.loads(body)["request_id"]
    theirs = fake.sign(request_id, body, user_id="someone-else-42")
    with pytest.raises(CallbackRejected, match="another fal account") as caught:
        await provider.parse_callback(job_id, theirs, body)
    assert caught.value.status == 401
    # The signature itself is fal's: only the account is wrong. Ours, the same body, is read.
    status = await provider.parse_callback(job_id, headers, body)
    assert status is not None and status.state == "completed"
    # Nor can the user id be swapped after signing: the signature covers it.
    swapped = {**theirs, "X-Fal-Webhook-User-Id": fake.user_id}
    with pytest.raises(CallbackRejected, match="signature"):
        await provider.parse_callback(job_id, swapped, body)


async def test_without_the_account_id_a_signed_webhook_is_only_a_hint(fake, receiver, client) -> None:
    provider = make_provider(fake, client, user_id=None)
    job_id, headers, body = await genuine_callback(fake, receiver, provider)
    assert await provider.parse_callback(job_id, headers, body) is None  # the status is read instead
    with pytest.raises(CallbackRejected, match="signature"):  # still verified, though
        await provider.parse_callback(job_id, headers, body.replace(b'"OK"', b'"ERROR"'))


async def test_a_callback_names_the_job_id_our_status_reads_use(fake, receiver, client) -> None:
    provider = make_provider(fake, client)
    job_id, _, body = await genuine_callback(fake, receiver, provider)
    named = provider.callback_job_id(body)
    assert named is not None and json.loads(named) == json.loads(job_id)  # fal's own URLs, on our host
    assert (await poll_until_done(provider, named))[-1].state == "completed"
    for bad in (b"not json", b'{"request_id": "../../admin"}', b'{"request_id": 7}', b"[]"):
        assert provider.callback_job_id(bad) is None


async def test_duplicate_callbacks_are_identical_and_read_the_same(fake, receiver, client) -> None:
    fake.callback_repeats = 2
    provider = make_provider(fake, client)
    job_id = await provider.submit(SubmitSpec("j", ImageRequest(prompt="x"), "full", [], receiver.hook_url()))
    first, second = await receiver.wait_for(2)
    assert first.body == second.body
    assert await provider.parse_callback(job_id, first.headers, first.body) == await provider.parse_callback(
        job_id, second.headers, second.body
    )


async def test_jwks_is_cached_and_refetched_for_a_rotated_key(fake, receiver, client) -> None:
    now = [time.time()]
    provider = make_provider(fake, client, clock=lambda: now[0])
    for _ in range(2):
        job_id, headers, body = await genuine_callback(fake, receiver, provider)
        assert await provider.parse_callback(job_id, headers, body) is not None
    assert fake.jwks_fetches == 1

    fake.rotate_key()
    job_id, headers, body = await genuine_callback(fake, receiver, provider)
    # Right after a fetch an unknown signer is refused without asking again (no refetch storms)...
    with pytest.raises(CallbackRejected):
        await provider.parse_callback(job_id, headers, body)
    assert fake.jwks_fetches == 1
    # ...and a little later the new key is fetched and accepted (fal would have retried by then).
    now[0] += 31
    resigned = fake.sign(json.loads(body)["request_id"], body, timestamp=int(now[0]))
    assert await provider.parse_callback(job_id, resigned, body) is not None
    assert fake.jwks_fetches == 2


async def test_unreachable_jwks_answers_503_so_fal_retries(fake, receiver, client) -> None:
    fake.jwks_available = False
    provider = make_provider(fake, client)
    job_id, headers, body = await genuine_callback(fake, receiver, provider)
    with pytest.raises(CallbackRejected) as caught:
        await provider.parse_callback(job_id, headers, body)
    assert caught.value.status == 503


async def test_signed_callback_without_payload_asks_for_a_status_read(fake, client) -> None:
    provider = make_provider(fake, client)
    body = json.dumps(
        {"request_id": "r1", "status": "OK", "payload": None, "payload_error": "too big"}
    ).encode()
    assert await provider.parse_callback(None, fake.sign("r1", body), body) is None


async def test_signed_but_malformed_callback_is_refused(fake, client) -> None:
    provider = make_provider(fake, client)
    body = b"not json"
    with pytest.raises(CallbackRejected) as caught:
        await provider.parse_callback(None, fake.sign("r1", body), body)
    assert caught.value.status == 400


# --- errors --------------------------------------------------------------------------------------


async def test_wrong_key_is_misconfiguration_naming_the_setting(fake, client, caplog) -> None:
    provider = make_provider(fake, client, key="not-the-key")
    with caplog.at_level(logging.ERROR), pytest.raises(ProviderMisconfigured):
        await provider.submit(SubmitSpec("j", ImageRequest(prompt="x"), "full"))
    assert "FAL_KEY" in caplog.text and "not-the-key" not in caplog.text


async def test_validation_error_names_what_fal_refused(fake, client) -> None:
    provider = make_provider(fake, client)
    # Skipping validate() on purpose: fal itself must refuse 40 steps on the dev model.
    with pytest.raises(ProviderRejected) as caught:
        await provider.submit(SubmitSpec("j", ImageRequest(prompt="x", steps=40), "dev"))
    assert caught.value.user_message == "fal refused the request: must be an integer from 1 to 28"


async def test_dropped_connection_after_sending_is_never_resent(fake, client) -> None:
    fake.fail_next("drop")
    provider = make_provider(fake, client)
    with pytest.raises(SubmitOutcomeUnknown) as caught:
        await provider.submit(SubmitSpec("j", ImageRequest(prompt="x"), "full"))
    assert len(fake.submits) == 1
    assert "not sent again" in caught.value.user_message


# --- validation, price, description --------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "tier", "n_refs", "words"),
    [
        ("x --steps 40", "dev", 0, "`--steps 40` is too many for fal's dev model: use 1 to 28"),
        ("x --keep-aspect", "full", 2, "`--keep-aspect` works only when editing exactly one image"),
        ("x --keep-aspect", "full", 0, "`--keep-aspect` works only when editing exactly one image"),
    ],
)
async def test_validate_refuses_what_fal_forbids(client, text, tier, n_refs, words) -> None:
    provider = FalProvider(Settings(_env_file=None, FAL_KEY="k"), client)
    request = ImageRequest(prompt="x", steps=40) if "steps" in text else parse_command(text).request
    with pytest.raises(BadInput) as caught:
        provider.validate(request, tier, n_refs)
    assert words in caught.value.user_message


async def test_validate_refuses_sides_over_2048(client) -> None:
    provider = FalProvider(Settings(_env_file=None, FAL_KEY="k"), client)
    with pytest.raises(BadInput, match="at most 2048"):
        provider.validate(ImageRequest(prompt="x", width=3000, height=2000), "full", 0)
    provider.validate(ImageRequest(prompt="x", width=2048, height=2048, steps=100), "full", 0)


@pytest.mark.parametrize(
    ("request_", "price"),
    [
        (ImageRequest(prompt="x"), 0.005),
        (ImageRequest(prompt="x", width=2048, height=2048, n=2), 0.04),
        (ImageRequest(prompt="x", preset="landscape_16_9", n=4), 0.005 * 0.5625 * 4),
    ],
)
async def test_price_is_per_megapixel_of_output(client, request_, price) -> None:
    provider = FalProvider(Settings(_env_file=None, FAL_KEY="k"), client)
    assert provider.cost_usd(request_, "full") == pytest.approx(price)
    assert provider.cost_usd(request_, "dev") == pytest.approx(price)


async def test_describe_names_endpoints_and_mode(client) -> None:
    polling = FalProvider(Settings(_env_file=None, FAL_KEY="k"), client)
    text = "\n".join(polling.describe())
    assert "polling" in text and "https://queue.fal.run/fal-ai/hidream-o1-image/dev/edit" in text
    hooked = FalProvider(
        Settings(_env_file=None, FAL_KEY="k", HIDREAM_PUBLIC_URL="https://bot.example"),
        client,
    )
    assert "fal_webhook" in "\n".join(hooked.describe())


async def test_status_urls_on_another_host_are_not_trusted_with_the_key(fake, client) -> None:
    provider = make_provider(fake, client)
    assert provider._own_url("https://elsewhere.example/x", "r1", "/status") == (
        f"{fake.url}/fal-ai/hidream-o1-image/requests/r1/status"
    )
