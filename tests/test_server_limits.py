"""Request bodies are capped per route before they are read, and malformed media links are 403.

Everything goes over real loopback HTTP. The big bodies are sent from a plain socket a block at a
time (the same block again and again), so the test itself never holds them; the server runs in this
process, so what it buffers shows in this process's peak memory.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import io
import json
import random
import time
import urllib.parse
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from adapters.slack.adapter import SLACK_MAX_BODY
from bot.app import Bot
from bot.model.jobs import Job, JobState
from bot.model.requests import ChatRequest, parse_command
from bot.providers.sandbox.service import submit_body_limit
from bot.web.server import CALLBACK_MAX_BODY, DEFAULT_MAX_BODY
from tests.fakes.slack import FakeSlack, sign
from tests.fakes.surface import RecordingSurface
from tests.support.harness import BotHarness, sandbox_of, skip_unless_ci
from tests.support.slack_support import running

MB = 1024 * 1024
BIG = 48 * MB
# The server may hold a cap's worth (1 MiB) and aiohttp's read buffers; reading a 48 MB body whole
# would take at least 48 MB (more while a bytearray grows).
GROWTH_LIMIT = 16 * MB
BLOCK = 256 * 1024
WAIT = 30.0  # generous: only reached when something is broken


# --- memory ---------------------------------------------------------------------------------------


def _status_kb(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"{field} not in /proc/self/status")


class PeakMemory:
    """The most this process held while the block ran, above what it held when it began. Linux
    keeps the peak (VmHWM); writing 5 to clear_refs starts it again from the current size."""

    def __init__(self) -> None:
        self.base = 0
        self.peak = 0

    @property
    def growth(self) -> int:
        return self.peak - self.base

    def start(self) -> None:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
        self.base = _status_kb("VmRSS")

    def stop(self) -> None:
        self.peak = _status_kb("VmHWM")


@contextmanager
def peak_memory() -> Iterator[PeakMemory]:
    meter = PeakMemory()
    try:
        meter.start()
    except OSError:
        skip_unless_ci("this kernel does not let a process reset its peak memory (/proc/self/clear_refs)")
    yield meter
    meter.stop()


def test_the_meter_sees_a_transient_48_mb_buffer() -> None:
    """The meter itself: a buffer of the body's size, made and freed inside the block, shows."""
    with peak_memory() as meter:
        buf = bytearray(BIG)
        buf[::4096] = b"\x01" * len(buf[::4096])
        del buf
    assert meter.growth > 40 * MB


# --- a client that streams without holding the body -------------------------------------------------


async def raw_post(
    url: str, path: str, *, size: int, chunked: bool, headers: dict[str, str] | None = None
) -> tuple[int, int, bytes]:
    """POST `size` bytes to `path`, sending them only as long as the server has not answered.
    Returns the status, the body bytes sent, and the answer's head."""
    host, port = urllib.parse.urlsplit(url).netloc.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    lines.append("Transfer-Encoding: chunked" if chunked else f"Content-Length: {size}")
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    block = b"x" * BLOCK
    frame = f"{BLOCK:x}\r\n".encode() + block + b"\r\n" if chunked else block
    answer = asyncio.create_task(reader.readuntil(b"\r\n\r\n"))
    sent = 0
    try:
        while sent < size and not answer.done():
            writer.write(frame)
            sent += BLOCK
            drained = asyncio.ensure_future(writer.drain())
            await asyncio.wait({drained, answer}, timeout=WAIT, return_when=asyncio.FIRST_COMPLETED)
            if not drained.done():
                drained.cancel()
                break
            drained.result()
        if chunked and not answer.done():
            writer.write(b"0\r\n\r\n")
    except ConnectionError:
        pass  # the server stopped listening; its answer is read below
    head = await asyncio.wait_for(answer, WAIT)
    writer.close()
    return int(head.split(b" ", 2)[1]), sent, head


async def raw_headers_only(url: str, path: str, size: int) -> bytes:
    """Announce a `size`-byte body and send none of it: only an answer that needs no body comes."""
    host, port = urllib.parse.urlsplit(url).netloc.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Length: {size}\r\n\r\n".encode())
    try:
        return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)
    finally:
        writer.close()


def status_of(head: bytes) -> int:
    return int(head.split(b" ", 2)[1])


def noise_png(seed: int, side: int = 160) -> bytes:
    rng = random.Random(seed)
    img = Image.frombytes("RGB", (side, side), rng.randbytes(side * side * 3))
    out = io.BytesIO()
    img.save(out, format="PNG")
    return out.getvalue()


# --- provider callbacks ---------------------------------------------------------------------------


@pytest.fixture
async def waiting(tmp_path: Path) -> AsyncIterator[tuple[Bot, Job]]:
    """A bot with callbacks on and one job that stays running (its sandbox takes an hour)."""
    harness = BotHarness(
        tmp_path,
        surfaces=[RecordingSurface().factory],
        callbacks=True,
        callback_grace=3600,
        env={"HIDREAM_SANDBOX_DELAY_SECONDS": 3600},
    )
    async with harness as bot:
        chat = ChatRequest(
            surface="test",
            user_id="u1",
            workspace_id="w1",
            origin={"thread": "t1"},
            request=parse_command("a lighthouse --seed 3").request,
        )
        yield bot, await bot.engine.submit(chat)


async def unchanged(bot: Bot, job: Job) -> None:
    stored = await bot.engine.job(job.id)
    assert stored is not None and stored.state in (JobState.QUEUED, JobState.SUBMITTING, JobState.RUNNING)
    assert await bot.store.callback_status(job.id) is None


async def test_a_declared_48_mb_callback_is_refused_before_any_of_it_is_sent(
    waiting: tuple[Bot, Job],
) -> None:
    bot, job = waiting
    for token in (job.callback_token, "not-a-token"):
        head = await raw_headers_only(bot.server_url, f"/webhooks/{token}", BIG)
        assert status_of(head) == 413, head
        assert b"Connection: close" in head
    await unchanged(bot, job)


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_a_48_mb_callback_to_a_valid_token_is_413_and_never_held(
    waiting: tuple[Bot, Job], chunked: bool
) -> None:
    bot, job = waiting
    with peak_memory() as meter:
        status, sent, _ = await raw_post(
            bot.server_url, f"/webhooks/{job.callback_token}", size=BIG, chunked=chunked
        )
    assert status == 413
    assert meter.growth < GROWTH_LIMIT, f"the server held {meter.growth / MB:.1f} MB for a refused body"
    if chunked:
        # Cut at the cap: refused while most of the body was still to come.
        assert sent < BIG / 2
    await unchanged(bot, job)


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_a_48_mb_callback_to_an_unknown_token_is_refused_and_never_held(
    waiting: tuple[Bot, Job], chunked: bool
) -> None:
    bot, job = waiting
    with peak_memory() as meter:
        status, sent, _ = await raw_post(bot.server_url, "/webhooks/not-a-token", size=BIG, chunked=chunked)
    # With a declared length the cap answers first; without one, the token is looked up before any
    # of the body is read.
    assert status == (404 if chunked else 413)
    assert meter.growth < GROWTH_LIMIT, f"the server held {meter.growth / MB:.1f} MB for a refused body"
    assert sent < BIG / 2
    await unchanged(bot, job)


async def test_a_real_client_streaming_48_mb_gets_413_and_the_server_holds_none_of_it(
    waiting: tuple[Bot, Job],
) -> None:
    bot, job = waiting

    async def body() -> AsyncIterator[bytes]:
        block = b"y" * BLOCK
        for _ in range(BIG // BLOCK):
            yield block

    url = f"{bot.server_url}/webhooks/{job.callback_token}"
    async with httpx.AsyncClient(timeout=WAIT) as client:
        with peak_memory() as meter:
            answer = await client.post(url, content=body(), headers={"Content-Length": str(BIG)})
    assert answer.status_code == 413
    assert str(CALLBACK_MAX_BODY) in answer.json()["error"]
    assert meter.growth < GROWTH_LIMIT
    await unchanged(bot, job)


async def test_a_small_gzip_body_that_inflates_past_the_cap_is_413(waiting: tuple[Bot, Job]) -> None:
    bot, job = waiting
    bomb = gzip.compress(b"{" + b" " * (4 * MB) + b"}")
    assert len(bomb) < CALLBACK_MAX_BODY // 10
    async with httpx.AsyncClient(timeout=WAIT) as client:
        answer = await client.post(
            f"{bot.server_url}/webhooks/{job.callback_token}",
            content=bomb,
            headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
        )
    assert answer.status_code == 413
    await unchanged(bot, job)


async def test_callbacks_within_the_cap_still_arrive_with_or_without_a_length(
    waiting: tuple[Bot, Job],
) -> None:
    bot, job = waiting
    body = json.dumps({"id": job.provider_job_id, "status": "processing", "pad": "z" * 500_000}).encode()
    assert len(body) < CALLBACK_MAX_BODY

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(body), 4096):
            yield body[i : i + 4096]

    url = f"{bot.server_url}/webhooks/{job.callback_token}"
    async with httpx.AsyncClient(timeout=WAIT) as client:
        declared = await client.post(url, content=body)
        streamed = await client.post(url, content=chunks())
    assert (declared.status_code, streamed.status_code) == (200, 200)
    assert "Transfer-Encoding" in streamed.request.headers


# --- Slack HTTP mode ------------------------------------------------------------------------------


FORM = "application/x-www-form-urlencoded"


async def test_an_oversized_signed_slack_request_is_413_and_bolt_never_sees_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with FakeSlack() as fake, running(tmp_path, fake, "http") as run:
        dispatched: list[Any] = []
        real_dispatch = run.adapter.app.async_dispatch

        async def spy(request: Any) -> Any:
            dispatched.append(request)
            return await real_dispatch(request)

        monkeypatch.setattr(run.adapter.app, "async_dispatch", spy)
        events_url = f"{run.bot.server_url}/slack/events"
        padded = fake.slash("a red fox " + "and more " * (SLACK_MAX_BODY // 8))
        body = urllib.parse.urlencode(padded).encode()
        assert len(body) > SLACK_MAX_BODY
        ts = str(int(time.time()))
        headers = {
            "Content-Type": FORM,
            "X-Slack-Request-Timestamp": ts,
            "X-Slack-Signature": sign(fake.signing_secret, ts, body),
        }

        async def chunks() -> AsyncIterator[bytes]:
            for i in range(0, len(body), 65536):
                yield body[i : i + 65536]

        declared = await run.web.post(events_url, content=body, headers=headers)
        streamed = await run.web.post(events_url, content=chunks(), headers=headers)
        status, _, _ = await raw_post(
            run.bot.server_url, "/slack/events", size=BIG, chunked=True, headers=headers
        )
        assert (declared.status_code, streamed.status_code, status) == (413, 413, 413)
        assert dispatched == [], "bolt was called for a body over the cap"
        assert await run.job_count() == 0 and not fake.called("chat.postMessage")

        # The same command at its normal size is dispatched and runs.
        small = urllib.parse.urlencode(fake.slash("a red fox")).encode()
        ts = str(int(time.time()))
        ok = await run.web.post(
            events_url,
            content=small,
            headers={
                **headers,
                "X-Slack-Request-Timestamp": ts,
                "X-Slack-Signature": sign(fake.signing_secret, ts, small),
            },
        )
        assert ok.status_code == 200 and len(dispatched) == 1


# --- the sandbox's submit route -------------------------------------------------------------------


async def test_the_sandbox_takes_four_references_of_the_largest_size_and_refuses_more(tmp_path: Path) -> None:
    pictures = [noise_png(seed, side=400) for seed in range(4)]
    largest = max(len(p) for p in pictures)
    assert 4 * largest > DEFAULT_MAX_BODY, "more than any route without a cap of its own takes"
    # Every picture made exactly as large as allowed (PNG readers ignore what follows the end chunk).
    pictures = [p + b"\x00" * (largest - len(p)) for p in pictures]
    async with BotHarness(tmp_path, env={"HIDREAM_MAX_IMAGE_BYTES": largest}) as bot:
        service = sandbox_of(bot)
        limit = submit_body_limit(largest)

        body = json.dumps(
            {
                "prompt": "\u2603" * 5000,
                "width": 512,
                "height": 512,
                "seed": 1,
                "num_images": 4,
                "output_format": "png",
                "model": "full",
                "keep_original_aspect": False,
                "reference_image_urls": [
                    "data:image/png;base64," + base64.b64encode(p).decode() for p in pictures
                ],
                "webhook_url": f"{bot.server_url}/webhooks/{'t' * 43}",
            }
        ).encode()
        assert limit - 70 * 1024 < len(body) <= limit
        url = f"{bot.server_url}/sandbox/v1/images"
        auth = {"Authorization": f"Bearer {service.token}", "Content-Type": "application/json"}
        async with httpx.AsyncClient(timeout=WAIT) as client:
            accepted = await client.post(url, content=body, headers=auth)
            assert accepted.status_code == 202, accepted.text
            over = body[:-1] + b" " * (limit - len(body) + 1) + b"}"
            assert len(over) == limit + 1
            refused = await client.post(url, content=over, headers=auth)
            assert refused.status_code == 413
        # The cap is checked before the token: a stranger's big body is not read either.
        head = await raw_headers_only(bot.server_url, "/sandbox/v1/images", limit + 1)
        assert status_of(head) == 413
        status, sent, _ = await raw_post(
            bot.server_url, "/sandbox/v1/images", size=limit + BIG, chunked=True, headers=auth
        )
        assert status == 413 and sent < limit + BIG
        assert service.submits == 2


# --- /media/ links ----------------------------------------------------------------------------------


async def test_malformed_media_links_are_403_never_500(tmp_path: Path) -> None:
    async with BotHarness(tmp_path, callbacks=True) as bot:
        picture = noise_png(7, 32)
        media_id = await bot.store.put_media(picture, "image/png", 32, 32)
        assert bot.runner.signer is not None
        link = bot.runner.signer.link(media_id, now=time.time(), ttl=600)
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(link).query))
        exp, sig = query["exp"], query["sig"]
        base = f"{bot.server_url}/media/{media_id}"
        odd = [
            {"exp": "soon", "sig": sig},
            {"exp": str(10**400), "sig": sig},
            {"exp": "9" * 5000, "sig": sig},
            {"exp": "-5", "sig": sig},
            {"exp": "", "sig": sig},
            {"exp": f"{exp}.5", "sig": sig},
            {"exp": "1.5e12", "sig": sig},
            {"exp": "²", "sig": sig},
            {"exp": "١٧٩٩٩٩٩٩٩٩", "sig": sig},
            {"exp": exp, "sig": "zz"},
            {"exp": exp, "sig": ""},
            {"exp": exp, "sig": "é" * 64},
            {"exp": exp, "sig": sig + "0"},
            {"exp": exp},
            {},
        ]
        async with httpx.AsyncClient(timeout=WAIT) as client:
            good = await client.get(link)
            assert good.status_code == 200 and good.content == picture
            for params in odd:
                answer = await client.get(base, params=params)
                assert answer.status_code == 403, (params, answer.status_code)
