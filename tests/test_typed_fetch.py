"""URLs people type: their own client and pool, a cap on the whole download, and the public-address
check through IPv6 forms that carry an IPv4 address inside."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from bot.jobs.media import TYPED_LIMITS, fetch_image, is_public_address, typed_client
from bot.model.errors import MediaError
from bot.model.jobs import JobState
from tests.fakes.loopback import serve
from tests.support.harness import BotHarness, sandbox_of
from tests.support.typed_fetch import PRETEND_PUBLIC, ToLoopback, TrickleServer, chat, public


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (10, 120, 200)).save(out, format="PNG")
    return out.getvalue()


# --- IPv6 transition forms ----------------------------------------------------------------------

INSIDE = {
    "6to4 of 127.0.0.1": "2002:7f00:1::1",
    "6to4 of 192.168.1.1": "2002:c0a8:101::",
    "6to4 of 169.254.169.254": "2002:a9fe:a9fe::1",
    "NAT64 of 10.0.0.7": "64:ff9b::a00:7",
    "NAT64 of 127.0.0.1": "64:ff9b::127.0.0.1",
    "local-use NAT64": "64:ff9b:1::a00:7",
    "local-use NAT64, public inside": "64:ff9b:1::93.184.216.34",
    "IPv4-compatible 127.0.0.1": "::127.0.0.1",
    "IPv4-compatible 10.1.2.3": "::10.1.2.3",
    "IPv4-mapped 10.0.0.1": "::ffff:10.0.0.1",
    "IPv4-mapped 169.254.169.254": "::ffff:169.254.169.254",
    "IPv4-translated 127.0.0.1": "::ffff:0:127.0.0.1",
    "Teredo, server 127.0.0.1": "2001:0:7f00:1::1",
    "Teredo, client 10.0.0.1": "2001:0:4136:e378:8000:63bf:f5ff:fffe",
}
PUBLIC = {
    "6to4 of 93.184.216.34": "2002:5db8:d822::1",
    "NAT64 of 93.184.216.34": "64:ff9b::5db8:d822",
    "IPv4-mapped 93.184.216.34": "::ffff:93.184.216.34",
}


@pytest.mark.parametrize("address", INSIDE.values(), ids=INSIDE.keys())
async def test_ipv6_forms_carrying_an_inside_ipv4_are_refused_without_a_request(address: str) -> None:
    seen: list[httpx.Request] = []

    async def resolver(host: str, port: int) -> list[str]:
        assert host == "images.example"
        return [address]

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=png())

    assert not is_public_address(address)
    async with httpx.AsyncClient(transport=httpx.MockTransport(record)) as c:
        with pytest.raises(MediaError, match="points inside a private network"):
            await fetch_image(
                c, "https://images.example/a.png", typed=True, max_bytes=10**6, resolver=resolver
            )
        with pytest.raises(MediaError, match="points inside a private network"):
            await fetch_image(c, f"http://[{address}]/a.png", typed=True, max_bytes=10**6)
    assert seen == []


# IANA's IPv6 Special-Purpose Address Registry and Address Space registry: none of these is public.
SPECIAL_V6 = {
    "site-local (deprecated)": "fec0::1",
    "site-local, top of fec0::/10": "feff:ffff::1",
    "documentation 3fff::/20": "3fff::1",
    "documentation 2001:db8::/32": "2001:db8::1",
    "segment routing SIDs 5f00::/16": "5f00::1",
    "dummy prefix 100:0:0:1::/64": "100:0:0:1::1",
    "discard-only 100::/64": "100::1",
    "IETF protocol assignments 2001::/23": "2001:20::1",
    "benchmarking 2001:2::/48": "2001:2::1",
    "unique-local": "fd12:3456::1",
    "link-local": "fe80::1",
    "multicast": "ff02::1",
    "reserved by IETF 4000::/2": "4000::1",
    "reserved by IETF 8000::/1": "8000::1",
    "reserved by IETF e000::/4": "e000::1",
    "loopback": "::1",
    "unspecified": "::",
}
STILL_PUBLIC_V6 = ["2606:2800:220:1:248:1893:25c8:1946", "2001:4860:4860::8888", "2a00:1450:4001::1"]


@pytest.mark.parametrize("address", SPECIAL_V6.values(), ids=SPECIAL_V6.keys())
async def test_ipv6_special_purpose_and_reserved_ranges_are_refused_without_a_request(address: str) -> None:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=png())

    assert not is_public_address(address)
    async with httpx.AsyncClient(transport=httpx.MockTransport(record)) as c:
        with pytest.raises(MediaError, match="points inside a private network"):
            await fetch_image(c, f"http://[{address}]/a.png", typed=True, max_bytes=10**6)
    assert seen == []


@pytest.mark.parametrize("address", STILL_PUBLIC_V6)
def test_global_unicast_ipv6_stays_public(address: str) -> None:
    assert is_public_address(address)


@pytest.mark.parametrize("address", PUBLIC.values(), ids=PUBLIC.keys())
async def test_ipv6_forms_carrying_a_public_ipv4_are_fetched_from_that_address(address: str) -> None:
    seen: list[httpx.Request] = []

    async def resolver(host: str, port: int) -> list[str]:
        return [address]

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=png())

    async with httpx.AsyncClient(transport=httpx.MockTransport(record)) as c:
        got = await fetch_image(
            c, "https://images.example/a.png", typed=True, max_bytes=10**6, resolver=resolver
        )
    assert got.width == 64
    assert [r.url.host for r in seen] == [address] and seen[0].headers["host"] == "images.example"


# --- the total cap --------------------------------------------------------------------------------


class Trickle(httpx.AsyncByteStream):
    """A body that never ends: one byte at a time, the way a hostile server holds a fetch open."""

    def __init__(self) -> None:
        self.sent = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while True:
            self.sent += 1
            yield b"\x89"
            await asyncio.sleep(0.02)


async def test_a_trickling_body_after_a_redirect_is_cut_at_the_total_cap() -> None:
    trickle = Trickle()

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/start":
            return httpx.Response(302, headers={"location": "/slow.png"})
        return httpx.Response(200, stream=trickle)

    async def resolver(host: str, port: int) -> list[str]:
        return [PRETEND_PUBLIC]

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as c:
        with pytest.raises(MediaError) as cut:
            await fetch_image(
                c,
                "https://slow.example/start",
                typed=True,
                max_bytes=10**6,
                resolver=resolver,
                total_seconds=0.5,
            )
    assert cut.value.user_message == (
        "The image at https://slow.example/start took longer than 0.5 seconds to download; "
        "use a faster host, or attach the image instead."
    )
    assert trickle.sent >= 1  # it was cut while the body was still coming


async def test_slow_typed_links_fill_only_their_own_pool_and_provider_jobs_still_run(tmp_path: Path) -> None:
    slow, route = TrickleServer(), ToLoopback()
    pool = TYPED_LIMITS.max_connections
    assert pool == 10
    async with (
        serve(slow.app) as base,
        # No cap that a slow machine could reach: what is shown here is the pools, not the cap.
        BotHarness(
            tmp_path, resolver=public, typed_http=typed_client(route), typed_fetch_seconds=3600
        ) as bot,
    ):
        port = httpx.URL(base).port
        # One more than the typed pool holds: the last one waits for a connection of that pool.
        # Each from a person of a server of their own: no one's fair share is what holds them back.
        links = [
            asyncio.create_task(
                bot.engine.submit(
                    chat(f"like http://slow.example:{port}/{i}.png", user=f"u{i}", workspace=f"w{i}")
                )
            )
            for i in range(pool + 1)
        ]
        await slow.wait_until(lambda: slow.open >= pool)
        # The provider's traffic (submit, status polls, the result) goes on the main client meanwhile.
        job = await bot.engine.submit(chat("a lighthouse --seed 3"))
        done = await bot.runner.wait_job(job.id)
        assert done is not None and done.state is JobState.COMPLETED  # parked for delivery: no surface here
        assert sandbox_of(bot).submits == 1 and sandbox_of(bot).polls >= 1
        assert (slow.open, slow.cut) == (pool, 0)  # every slow link is still held open
        assert len(route.requests) == pool + 1  # all typed fetches went through the typed client
        assert all(not task.done() for task in links)
        for task in links:
            task.cancel()
        await asyncio.gather(*links, return_exceptions=True)


async def test_a_trickling_typed_link_is_cut_at_the_cap_while_a_provider_job_completes(
    tmp_path: Path,
) -> None:
    slow, route = TrickleServer(), ToLoopback()
    harness = BotHarness(tmp_path, resolver=public, typed_http=typed_client(route), typed_fetch_seconds=0.5)
    async with serve(slow.app) as base, harness as bot:
        url = f"http://slow.example:{httpx.URL(base).port}/cat.png"
        # Both at once: whether the cap falls before or after the lighthouse is done does not matter.
        link = asyncio.create_task(bot.engine.submit(chat(f"like {url}", user="u2")))
        job = await bot.engine.submit(chat("a lighthouse --seed 3"))
        done = await bot.runner.wait_job(job.id)
        assert done is not None and done.state is JobState.COMPLETED
        with pytest.raises(MediaError) as cut:
            await link
        assert cut.value.user_message == (
            f"The image at {url} took longer than 0.5 seconds to download; "
            "use a faster host, or attach the image instead."
        )
        await slow.wait_until(lambda: slow.open == 0)  # the download was closed, not left trickling
        assert len(route.requests) == 1  # through the typed client
        assert sandbox_of(bot).submits == 1  # only the lighthouse reached the provider
        assert (await bot.engine.quota("test", "u2", "w1")).used == 0


async def test_the_bot_fetches_typed_links_with_a_client_of_their_own(tmp_path: Path) -> None:
    async with BotHarness(tmp_path) as bot:
        typed = bot.engine.typed_http
        assert typed is not bot.http and not typed.is_closed
        assert bot.engine.typed_fetch_seconds == 30.0
    assert typed.is_closed  # entered in the bot's exit stack
