"""The sandbox provider end to end over loopback: SandboxProvider -> httpx -> aiohttp -> SandboxService."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from PIL import Image, ImageOps

from bot.model.config import Settings
from bot.model.errors import ProviderRejected
from bot.model.requests import ImageRequest
from bot.providers.base import ProviderStatus, SubmitSpec
from bot.providers.sandbox.jobs import FAIL_MESSAGE
from bot.providers.sandbox.provider import SandboxProvider, SandboxService
from bot.providers.transport import provider_client
from tests.support.sandbox import (
    Receiver,
    auth,
    data_uri,
    png_bytes,
    provider_for,
    sandbox,
    stripes,
    valid_body,
)

WAIT = 30.0  # generous: only reached when something is broken


# --- loopback plumbing --------------------------------------------------------------------------------


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with provider_client(timeout=30) as client:
        yield client


@pytest.fixture
async def running(tmp_path: Path, http: httpx.AsyncClient) -> AsyncIterator[tuple[SandboxService, str]]:
    async with sandbox(tmp_path / "sandbox", http, delay=0) as pair:
        yield pair


# --- images -------------------------------------------------------------------------------------------


def correlation(a: Image.Image, b: Image.Image) -> float:
    """Pearson correlation of two pictures' grey levels at 64x64."""
    xs = list(a.convert("L").resize((64, 64), Image.Resampling.BOX).tobytes())
    ys = list(b.convert("L").resize((64, 64), Image.Resampling.BOX).tobytes())
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    cov = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    vx = sum((x - mx) ** 2 for x in xs)
    vy = sum((y - my) ** 2 for y in ys)
    return cov / ((vx * vy) ** 0.5) if vx and vy else 0.0


def mean_difference(a: Image.Image, b: Image.Image) -> float:
    pa, pb = a.convert("RGB").tobytes(), b.convert("RGB").tobytes()
    return sum(abs(x - y) for x, y in zip(pa, pb, strict=True)) / len(pa)


def has_mark(img: Image.Image) -> bool:
    """The amber SANDBOX plate in the top-right corner."""
    corner = img.convert("RGB").crop((img.width * 3 // 4, 0, img.width, img.height // 8))
    rgb = corner.tobytes()
    amber = sum(
        1
        for r, g, b in zip(rgb[0::3], rgb[1::3], rgb[2::3], strict=True)
        if r > 200 and 150 < g < 225 and b < 70
    )
    return amber > 100


async def download(http: httpx.AsyncClient, status: ProviderStatus) -> list[tuple[bytes, Image.Image, str]]:
    out: list[tuple[bytes, Image.Image, str]] = []
    for image in status.images:
        response = await http.get(image.url)
        assert response.status_code == 200, image.url
        img = Image.open(io.BytesIO(response.content))
        img.load()
        out.append((response.content, img, response.headers["content-type"]))
    return out


async def generate(
    provider: SandboxProvider,
    http: httpx.AsyncClient,
    *,
    refs: list[str] | None = None,
    tier: str = "full",
    **fields: Any,
) -> list[tuple[bytes, Image.Image, str]]:
    """Submit, poll once (delay 0: already done) and download the images."""
    fields.setdefault("seed", 7)
    job_id = await provider.submit(
        SubmitSpec(job_id="job-1", request=ImageRequest(**fields), tier=tier, reference_urls=refs or [])  # type: ignore[arg-type]
    )
    status = await provider.status(job_id)
    assert status.state == "completed", status
    return await download(http, status)


Submit = Callable[..., Awaitable[list[tuple[bytes, Image.Image, str]]]]


@pytest.fixture
def make(running: tuple[SandboxService, str], http: httpx.AsyncClient) -> Submit:
    provider = provider_for(http, running[1], running[0])

    async def run(**fields: Any) -> list[tuple[bytes, Image.Image, str]]:
        return await generate(provider, http, **fields)

    return run


# --- text to image ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("fmt", "pil_name"), [("png", "PNG"), ("jpeg", "JPEG"), ("webp", "WEBP")])
async def test_submit_and_poll_gives_images_of_exact_size_format_and_count(
    running: tuple[SandboxService, str], http: httpx.AsyncClient, fmt: str, pil_name: str
) -> None:
    service, url = running
    provider = provider_for(http, url, service)
    images = await generate(
        provider, http, prompt="a red fox in snow", width=640, height=384, n=3, format=fmt
    )
    assert len(images) == 3
    for _, img, content_type in images:
        assert img.format == pil_name
        assert img.size == (640, 384)
        assert content_type == f"image/{fmt}"
        assert has_mark(img)
    assert len({data for data, _, _ in images}) == 3, "each image of a job is its own picture"
    assert service.submits == 1 and service.polls == 1


async def test_png_says_it_is_a_placeholder(make: Submit) -> None:
    [(_, img, _)] = await make(prompt="a lighthouse", width=512, height=512)
    assert "sandbox" in img.info["Software"]


async def test_same_inputs_give_identical_bytes_and_another_seed_does_not(make: Submit) -> None:
    first = await make(prompt="a quiet harbour at dusk", width=512, height=768, seed=42, n=2)
    again = await make(prompt="a quiet harbour at dusk", width=512, height=768, seed=42, n=2)
    other_seed = await make(prompt="a quiet harbour at dusk", width=512, height=768, seed=43, n=2)
    other_model = await make(
        prompt="a quiet harbour at dusk", width=512, height=768, seed=42, n=2, tier="dev"
    )
    assert [d for d, _, _ in first] == [d for d, _, _ in again]
    assert first[0][0] != other_seed[0][0] and first[1][0] != other_seed[1][0]
    assert first[0][0] != other_model[0][0]


async def test_status_follows_the_clock_from_queued_to_completed(
    tmp_path: Path, http: httpx.AsyncClient
) -> None:
    now = [1000.0]
    async with sandbox(tmp_path, http, delay=10, clock=lambda: now[0]) as (service, url):
        provider = provider_for(http, url, service)
        request = ImageRequest(prompt="a slow one", seed=1, width=256, height=256)
        job_id = await provider.submit(SubmitSpec(job_id="j", request=request, tier="full"))
        assert (await provider.status(job_id)).state == "queued"
        files = await http.get(f"{url}/sandbox/v1/files/{job_id}/0.png")
        assert files.status_code == 404, "no image before the job is done"
        now[0] = 1006.0
        assert (await provider.status(job_id)).state == "running"
        now[0] = 1010.0
        done = await provider.status(job_id)
        assert done.state == "completed" and done.seed == 1 and len(done.images) == 1
        [(_, img, _)] = await download(http, done)
        assert img.size == (256, 256)


# --- edits and personalization -------------------------------------------------------------------------


async def test_edit_transforms_the_reference_visibly_but_recognisably(make: Submit) -> None:
    reference = stripes((480, 320), vertical=False)
    [(_, edited, _)] = await make(prompt="make it autumn", width=512, height=512, refs=[data_uri(reference)])
    [(_, unrelated, _)] = await make(prompt="make it autumn", width=512, height=512)
    fitted = ImageOps.fit(reference, (512, 512), Image.Resampling.LANCZOS)
    assert edited.size == (512, 512)
    assert correlation(edited, fitted) > 0.6, "the edit should still show the reference"
    assert mean_difference(edited, fitted) > 15, "the edit should visibly change the reference"
    assert correlation(unrelated, fitted) < 0.3, "without the reference there is no likeness (sanity check)"
    assert has_mark(edited) and not has_mark(reference)


async def test_edit_from_a_media_link_of_its_server_equals_the_same_picture_inline(
    tmp_path: Path, http: httpx.AsyncClient
) -> None:
    reference = stripes((400, 400), vertical=True)
    asked: list[str] = []

    async def picture(request: web.Request) -> web.Response:
        asked.append(request.path_qs)
        return web.Response(body=png_bytes(reference), content_type="image/png")

    def media(app: web.Application) -> None:
        app.router.add_get("/media/{media_id}", picture)

    async with sandbox(tmp_path, http, routes=media, delay=0) as (service, url):
        provider = provider_for(http, url, service)
        link = f"{url}/media/ref-1?exp=99&sig=ab"
        [(by_url, _, _)] = await generate(
            provider, http, prompt="ink wash", width=384, height=384, refs=[link]
        )
        [(inline, _, _)] = await generate(
            provider, http, prompt="ink wash", width=384, height=384, refs=[data_uri(reference)]
        )
    assert by_url == inline
    assert asked == ["/media/ref-1?exp=99&sig=ab"]


async def test_personalization_composes_both_references(make: Submit) -> None:
    across, down = stripes((400, 400), vertical=False), stripes((400, 400), vertical=True)
    [(_, img, _)] = await make(
        prompt="the two of them together", width=768, height=384, refs=[data_uri(across), data_uri(down)]
    )
    assert img.size == (768, 384)
    left, right = img.crop((0, 0, 384, 384)), img.crop((384, 0, 768, 384))
    fit_across = ImageOps.fit(across, (384, 384), Image.Resampling.LANCZOS)
    fit_down = ImageOps.fit(down, (384, 384), Image.Resampling.LANCZOS)
    assert correlation(left, fit_across) > 0.6 > correlation(left, fit_down)
    assert correlation(right, fit_down) > 0.6 > correlation(right, fit_across)
    assert has_mark(img)


async def test_keep_original_aspect_keeps_the_reference_ratio_at_about_the_requested_area(
    make: Submit,
) -> None:
    reference = stripes((600, 300), vertical=True)
    [(_, img, _)] = await make(
        prompt="same shape please", width=512, height=512, keep_aspect=True, refs=[data_uri(reference)]
    )
    assert abs(img.width / img.height - 2.0) < 0.05
    assert abs(img.width * img.height - 512 * 512) / (512 * 512) < 0.1
    assert correlation(img, ImageOps.fit(reference, img.size)) > 0.6


# --- callbacks and restarts ---------------------------------------------------------------------------


async def test_callback_mode_posts_the_result_and_is_never_polled(
    tmp_path: Path, http: httpx.AsyncClient
) -> None:
    receiver = Receiver()
    async with sandbox(tmp_path, http, routes=receiver.mount, delay=0) as (service, url):
        provider = provider_for(http, url, service)
        request = ImageRequest(prompt="a kite over dunes", seed=3, width=384, height=256, n=2, format="webp")
        spec = SubmitSpec(job_id="j", request=request, tier="full", callback_url=f"{url}/webhooks/tok123")
        job_id = await provider.submit(spec)
        await asyncio.wait_for(receiver.arrived.wait(), WAIT)
        [body] = receiver.bodies
        assert body["id"] == job_id and body["status"] == "completed" and len(body["images"]) == 2
        assert await provider.parse_callback(job_id, receiver.headers[0], receiver.raw[0]) is None
        for image_url in body["images"]:
            img = Image.open(io.BytesIO((await http.get(image_url)).content))
            assert (img.format, img.size) == ("WEBP", (384, 256))
        assert service.polls == 0


async def test_callback_is_retried_after_server_errors(tmp_path: Path, http: httpx.AsyncClient) -> None:
    waits: list[float] = []

    async def instant(seconds: float) -> None:
        waits.append(seconds)

    receiver = Receiver(fail_first=2)
    async with sandbox(tmp_path, http, routes=receiver.mount, delay=0, sleep=instant) as (service, url):
        request = ImageRequest(prompt="try again", seed=1, width=256, height=256)
        spec = SubmitSpec(job_id="j", request=request, tier="full", callback_url=f"{url}/webhooks/t")
        await provider_for(http, url, service).submit(spec)
        await asyncio.wait_for(receiver.arrived.wait(), WAIT)
        await asyncio.wait_for(service.idle(), WAIT)
        assert service.pending_callbacks == 0
    assert receiver.calls == 3 and len(receiver.bodies) == 1
    assert waits == [0.25, 0.5]
    # Delivered once: a restarted service does not send it again.
    async with sandbox(tmp_path, http, delay=0) as (again, _):
        assert again.pending_callbacks == 0


async def test_restarted_service_answers_for_the_first_ones_job(
    tmp_path: Path, http: httpx.AsyncClient
) -> None:
    request = ImageRequest(prompt="survives a restart", seed=11, width=320, height=320, n=2)
    async with sandbox(tmp_path, http, delay=0) as (service, url):
        first = provider_for(http, url, service)
        job_id = await first.submit(SubmitSpec(job_id="j", request=request, tier="full"))
        before = [data for data, _, _ in await download(http, await first.status(job_id))]
    async with sandbox(tmp_path, http, delay=0) as (service, url):
        status = await provider_for(http, url, service).status(job_id)
        assert status.state == "completed"
        assert all(image.url.startswith(url) for image in status.images)
        after = [data for data, _, _ in await download(http, status)]
    assert after == before


async def test_unsent_callback_is_sent_by_the_next_service(tmp_path: Path, http: httpx.AsyncClient) -> None:
    now = [500.0]
    never = asyncio.Event()

    async def stuck(_: float) -> None:
        await never.wait()

    receiver = Receiver()
    first = sandbox(tmp_path, http, routes=receiver.mount, delay=5, clock=lambda: now[0], sleep=stuck)
    async with first as (service, url):
        request = ImageRequest(prompt="sandbox-fail on purpose", seed=2, width=256, height=256)
        spec = SubmitSpec(job_id="j", request=request, tier="dev", callback_url=f"{url}/webhooks/t")
        job_id = await provider_for(http, url, service).submit(spec)
        assert service.pending_callbacks == 1
    assert receiver.bodies == [], "the first service stopped before the job was due"
    now[0] = 600.0
    # The bot's server comes back at the same address, as it does when restarted with the same settings.
    again = sandbox(tmp_path, http, routes=receiver.mount, port=port_of(url), delay=5, clock=lambda: now[0])
    async with again as (service, _):
        assert service.pending_callbacks == 1
        await asyncio.wait_for(receiver.arrived.wait(), WAIT)
    assert receiver.bodies == [{"id": job_id, "status": "failed", "images": []}]


# --- refusals and failures ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"width": 100}, "width"),
        ({"height": 5000}, "height"),
        ({"seed": None}, "seed"),
        ({"seed": "7"}, "seed"),
        ({"num_images": 5}, "num_images"),
        ({"output_format": "gif"}, "output_format"),
        ({"model": "turbo"}, "model"),
        ({"prompt": ""}, "prompt"),
        ({"prompt": "x" * 5001}, "prompt"),
        ({"reference_image_urls": ["data:text/plain,hello"]}, "reference_image_urls[0]"),
        ({"reference_image_urls": ["ftp://example.invalid/a.png"]}, "reference_image_urls[0]"),
        ({"keep_original_aspect": True}, "keep_original_aspect"),
        ({"webhook_url": "not a url"}, "webhook_url"),
        ({"colour": "red"}, "colour"),
    ],
)
async def test_invalid_submit_is_refused_naming_the_field_and_stores_nothing(
    running: tuple[SandboxService, str], http: httpx.AsyncClient, changes: dict[str, Any], field: str
) -> None:
    service, url = running
    response = await http.post(f"{url}/sandbox/v1/images", json=valid_body(**changes), headers=auth(service))
    assert response.status_code == 400
    assert response.json()["error"].startswith(f"{field}: ")
    assert list(service.files.dir.glob("*.json")) == []


async def test_valid_submit_is_stored_before_it_is_answered(
    running: tuple[SandboxService, str], http: httpx.AsyncClient
) -> None:
    service, url = running
    response = await http.post(f"{url}/sandbox/v1/images", json=valid_body(), headers=auth(service))
    assert response.status_code == 202
    answer = response.json()
    assert answer["status"] == "queued"
    stored = json.loads((service.files.dir / f"{answer['id']}.json").read_text())
    assert stored["prompt"] == "a cat" and stored["seed"] == 1


async def test_provider_surfaces_a_refusal_as_provider_rejected(
    running: tuple[SandboxService, str], http: httpx.AsyncClient
) -> None:
    provider = provider_for(http, running[1], running[0])
    picture = data_uri(stripes((300, 300), vertical=True))
    request = ImageRequest(prompt="two at once", seed=1, keep_aspect=True)
    with pytest.raises(ProviderRejected) as caught:
        await provider.submit(
            SubmitSpec(job_id="j", request=request, tier="full", reference_urls=[picture] * 2)
        )
    assert "keep_original_aspect" in caught.value.user_message
    bad_ref = SubmitSpec(
        job_id="j",
        request=ImageRequest(prompt="edit", seed=1),
        tier="full",
        reference_urls=["data:text/plain,hi"],
    )
    with pytest.raises(ProviderRejected) as caught:
        await provider.submit(bad_ref)
    assert "reference_image_urls[0]" in caught.value.user_message
    with pytest.raises(ProviderRejected):
        await provider.status("0" * 32)


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer nope"}, {"Authorization": "Bearer sandbox"}]
)
async def test_submit_without_the_sandbox_token_is_401(
    running: tuple[SandboxService, str], http: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    service, url = running
    response = await http.post(f"{url}/sandbox/v1/images", json=valid_body(), headers=headers)
    assert response.status_code == 401
    assert "Authorization" in response.json()["error"]
    assert service.token not in response.text, "the answer never gives the token away"
    assert service.submits == 1 and list(service.files.dir.glob("*.json")) == []


async def test_unknown_job_and_file_are_404(
    running: tuple[SandboxService, str], http: httpx.AsyncClient
) -> None:
    url = running[1]
    for path in (
        "/sandbox/v1/images/" + "a" * 32,
        "/sandbox/v1/images/..%2Fsecret",
        "/sandbox/v1/files/abc/0.png",
    ):
        response = await http.get(url + path)
        assert response.status_code == 404, path
        assert "error" in response.json()


@pytest.mark.parametrize(
    ("prompt", "fails"),
    [("please sandbox-fail now", True), ("SANDBOX-FAIL.", True), ("sandbox-failure is no cue", False)],
)
async def test_sandbox_fail_cue_finishes_failed_with_its_message(
    running: tuple[SandboxService, str], http: httpx.AsyncClient, prompt: str, fails: bool
) -> None:
    url = running[1]
    provider = provider_for(http, url, running[0])
    job_id = await provider.submit(
        SubmitSpec(job_id="j", request=ImageRequest(prompt=prompt, seed=1), tier="full")
    )
    status = await provider.status(job_id)
    if fails:
        assert (status.state, status.error, status.images) == ("failed", FAIL_MESSAGE, [])
        assert (await http.get(f"{url}/sandbox/v1/files/{job_id}/0.png")).status_code == 404
    else:
        assert status.state == "completed" and status.error is None and len(status.images) == 1


async def test_provider_describes_itself_as_a_free_placeholder(http: httpx.AsyncClient) -> None:
    settings = Settings(_env_file=None, HIDREAM_PROVIDER="sandbox")
    provider = SandboxProvider(settings, http, base_url="http://127.0.0.1:9/sandbox/")
    text = "\n".join(provider.describe())
    assert "not HiDream" in text and "http://127.0.0.1:9/sandbox/v1/images" in text
    assert provider.cost_usd(ImageRequest(prompt="x", n=4), "full") == 0.0
    assert (provider.name, provider.signs_callbacks, provider.accepts_data_uris) == ("sandbox", False, True)
