"""Images really decode before a provider sees them: pixel count from the header first, then a full
decode, all of it (and every re-encode or resize) in a worker thread, never on the event loop."""

from __future__ import annotations

import io
import os
import struct
import threading
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from PIL import Image, ImageFile

from bot.jobs.images import MAX_PIXELS, check_image, fit_to_limit, sniff_image, to_data_uri
from bot.jobs.media import fetch_image
from bot.model.errors import MediaError
from bot.model.requests import ChatRequest, ImageRef, parse_command
from tests.fakes.discord import FakeDiscord
from tests.fakes.discord_harness import discord_bot, with_files
from tests.fakes.loopback import serve
from tests.support.harness import BotHarness, sandbox_of, sqlite_of


def chat(text: str, refs: list[ImageRef]) -> ChatRequest:
    return ChatRequest(
        surface="test", user_id="u1", workspace_id="w1", origin={}, request=parse_command(text).request,
        references=refs,
    )  # fmt: skip


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_claiming(width: int, height: int, idat: bytes = b"") -> bytes:
    """A PNG whose header claims `width`x`height` RGB pixels, with `idat` as all of its pixel data."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def tiny_png_claiming_8192() -> bytes:
    # The start of a zlib stream and nothing more: 61 bytes in all.
    data = png_claiming(8192, 8192, zlib.compress(b"", 9)[:4])
    assert len(data) == 61
    return data


def bomb_png() -> bytes:
    """A real PNG of 64 megapixels that compresses to a few kilobytes: decoded, it is 64 MB (192 MB as RGB)."""
    out = io.BytesIO()
    Image.new("1", (8000, 8000)).save(out, "PNG")
    assert len(out.getvalue()) < 20_000
    return out.getvalue()


def noisy_jpeg(side: int = 256) -> bytes:
    out = io.BytesIO()
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(out, "JPEG")
    return out.getvalue()


def header_only_jpeg() -> bytes:
    """A JPEG cut just before its pixel data (the start-of-scan marker): the header says 256x256."""
    data = noisy_jpeg()
    return data[: data.index(b"\xff\xda")]


TOO_MANY = r"is 8192x8192 pixels; the largest image accepted is 40 megapixels"
CUT_SHORT = "is damaged or cut short: the bot could not read the whole image"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (tiny_png_claiming_8192, TOO_MANY),
        (bomb_png, r"is 8000x8000 pixels; the largest image accepted is 40 megapixels"),
        (
            lambda: png_claiming(100_000, 100_000),
            r"claims far more pixels than the bot accepts \(40 megapixels\)",
        ),
        (header_only_jpeg, CUT_SHORT),
        (lambda: noisy_jpeg()[: len(noisy_jpeg()) // 2], CUT_SHORT),
        (lambda: png_claiming(100, 100), CUT_SHORT),
    ],
    ids=[
        "61-byte-png",
        "bomb",
        "bomb-beyond-pillow-limit",
        "header-only-jpeg",
        "truncated-jpeg",
        "empty-png",
    ],
)
def test_images_that_do_not_decode_or_claim_too_much_are_refused(
    make: Callable[[], bytes], message: str
) -> None:
    with pytest.raises(MediaError, match=message):
        sniff_image(make(), max_bytes=10**7)


def test_the_pixel_limit_is_40_megapixels_and_pillows_own_bomb_check_stays_on() -> None:
    assert MAX_PIXELS == 40_000_000
    assert Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS >= MAX_PIXELS
    assert not ImageFile.LOAD_TRUNCATED_IMAGES  # a cut-off file must fail to load, not be padded grey
    # A whole image just under the limit still passes.
    out = io.BytesIO()
    Image.new("L", (8000, 5000)).save(out, "PNG")
    assert sniff_image(out.getvalue(), max_bytes=10**7).width == 8000


@pytest.mark.parametrize(
    "make",
    [tiny_png_claiming_8192, bomb_png, header_only_jpeg],
    ids=["61-byte-png", "bomb", "header-only-jpeg"],
)
async def test_the_engine_refuses_them_before_any_provider_call_or_storage(
    tmp_path: Path, make: Callable[[], bytes]
) -> None:
    async with BotHarness(tmp_path) as bot:
        data_ref = ImageRef(url=to_data_uri(make(), "image/png"))
        with pytest.raises(MediaError) as refused:
            await bot.engine.submit(chat("make it blue", [data_ref]))
        assert "pixels" in refused.value.user_message or "cut short" in refused.value.user_message
        assert sandbox_of(bot).submits == 0
        async with sqlite_of(bot.store).db.execute("SELECT COUNT(*) FROM media") as cur:
            row = await cur.fetchone()
        assert row is not None and tuple(row) == (0,)
        assert (await bot.engine.quota("test", "u1", "w1")).used == 0


async def test_a_platform_attachment_that_does_not_decode_is_refused_too(tmp_path: Path) -> None:
    """The same check on the network path (attachments, provider results): a real download first."""
    app = web.Application()
    app.router.add_get("/cut.jpg", _cut_jpeg)
    async with serve(app) as base, BotHarness(tmp_path) as bot:
        ref = ImageRef(url=f"{base}/cut.jpg")
        with pytest.raises(MediaError, match=rf"The file at {base}/cut.jpg {CUT_SHORT}"):
            await bot.engine.submit(chat("make it blue", [ref]))
        assert sandbox_of(bot).submits == 0


async def _cut_jpeg(request: web.Request) -> web.Response:
    return web.Response(body=header_only_jpeg(), content_type="image/jpeg")


@pytest.fixture
def pillow_threads(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, bool]]]:
    """Records every Pillow decode, resize and encode: (what, whether it ran on the test's own thread,
    the one the event loop runs on)."""
    loop_thread = threading.current_thread()
    seen: list[tuple[str, bool]] = []

    def recording(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            seen.append((name, threading.current_thread() is loop_thread))
            return original(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(ImageFile.ImageFile, "load", recording("load", ImageFile.ImageFile.load))
    monkeypatch.setattr(Image.Image, "resize", recording("resize", Image.Image.resize))
    monkeypatch.setattr(Image.Image, "save", recording("save", Image.Image.save))
    yield seen


async def test_decoding_and_shrinking_run_off_the_event_loop(pillow_threads: list[tuple[str, bool]]) -> None:
    big = Image.frombytes("RGB", (1024, 1024), os.urandom(1024 * 1024 * 3))
    out = io.BytesIO()
    big.save(out, format="PNG")
    data = out.getvalue()
    pillow_threads.clear()  # making the test image is not the bot's work

    sniffed = await check_image(data, max_bytes=10**7)
    async with httpx.AsyncClient() as client:
        fetched = await fetch_image(client, to_data_uri(data, "image/png"), typed=True, max_bytes=10**7)
    fitted, mime, changed = await fit_to_limit(data, "image/png", 200_000)
    assert (sniffed.width, fetched.height, mime, changed) == (1024, 1024, "image/jpeg", True)
    assert len(fitted) <= 200_000

    names = {name for name, _ in pillow_threads}
    assert {"load", "save", "resize"} <= names, pillow_threads
    assert [entry for entry in pillow_threads if entry[1]] == []  # none on the loop's thread


async def test_a_discord_edit_with_a_result_over_the_upload_limit_keeps_pillow_off_the_loop(
    tmp_path: Path, pillow_threads: list[tuple[str, bool]]
) -> None:
    """The whole path: the attachment is decoded, the sandbox draws, the result is decoded and shrunk
    for the channel's limit. Every bit of Pillow work ran in a worker thread."""
    async with FakeDiscord(upload_limit=40_000) as fake, discord_bot(tmp_path, fake) as (bot, _):
        noise = io.BytesIO()
        Image.frombytes("RGB", (320, 240), os.urandom(320 * 240 * 3)).save(noise, "PNG")
        att = fake.host_file(fake.channel_id, "ref.png", noise.getvalue(), "image/png")
        pillow_threads.clear()
        payload = await fake.interact(fake.slash_payload({"prompt": "make it night"}, attachments=[att]))
        result = await fake.wait_for(
            lambda: (m := fake.messages.get(fake.originals.get(payload["token"], ""))) and with_files(m) and m
        )
        await bot.runner.wait_idle()
        assert "re-encoded to fit this channel's" in result["content"]
    names = {name for name, _ in pillow_threads}
    assert {"load", "save", "resize"} <= names, pillow_threads
    assert [entry for entry in pillow_threads if entry[1]] == []


async def test_no_more_than_two_images_are_decoded_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    real_load = ImageFile.ImageFile.load
    lock, inside, most, calls = threading.Lock(), [0], [0], [0]
    release = threading.Event()

    def counting_load(self: Any) -> Any:
        with lock:
            inside[0] += 1
            calls[0] += 1
            most[0] = max(most[0], inside[0])
            if inside[0] >= 3:
                release.set()
        # Hold every decode until a third is inside at once: unbounded, that happens at once; bounded
        # to two, it never does, and the wait ends after its (generous) time-out instead.
        release.wait(timeout=2)
        try:
            return real_load(self)
        finally:
            with lock:
                inside[0] -= 1

    monkeypatch.setattr(ImageFile.ImageFile, "load", counting_load)
    buf = io.BytesIO()
    Image.new("RGB", (32, 32), (9, 9, 9)).save(buf, "PNG")
    await asyncio.gather(*(check_image(buf.getvalue(), max_bytes=10**6) for _ in range(6)))
    assert calls[0] == 6 and most[0] == 2


async def test_a_providers_result_is_read_from_its_header_and_what_people_send_is_decoded(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.jobs.images import to_data_uri
    from bot.model.requests import ChatRequest, ImageRef, parse_command
    from tests.support.harness import BotHarness

    real_load = ImageFile.ImageFile.load
    loads: list[tuple[int, int]] = []

    def counting_load(self: Any) -> Any:
        loads.append(self.size)
        return real_load(self)

    async with BotHarness(tmp_path) as bot:
        monkeypatch.setattr(ImageFile.ImageFile, "load", counting_load)
        made = await bot.engine.submit(
            ChatRequest(
                surface="test",
                user_id="u",
                workspace_id="w",
                request=parse_command("a fox --size 640x448").request,
            )
        )
        await bot.runner.wait_idle()
        done = await bot.engine.job(made.id)
        assert done is not None and done.result_media
        stored = await bot.store.media(done.result_media[0])
        assert stored is not None and (stored.width, stored.height) == (640, 448)  # from the header
        assert (640, 448) not in loads  # the 2 MB-class result was never decoded whole
        buf = io.BytesIO()
        Image.new("RGB", (48, 32), (9, 9, 9)).save(buf, "PNG")
        sent = ImageRef(url=to_data_uri(buf.getvalue(), "image/png"))
        await bot.engine.submit(
            ChatRequest(
                surface="test",
                user_id="u",
                workspace_id="w",
                request=parse_command("make it blue").request,
                references=[sent],
            )
        )
        assert (48, 32) in loads  # what a person sends is decoded whole before it is stored
        await bot.runner.wait_idle()
