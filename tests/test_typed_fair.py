"""Typed URLs fairly shared: at most TYPED_PER_OWNER downloads at once per person and per tenant, within
the typed-URL pool, so one person's slow links never hold up another person's link."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import httpx
from aiohttp import web
from PIL import Image

from bot.jobs.fair import FairShare
from bot.jobs.media import TYPED_LIMITS, TYPED_PER_OWNER, typed_client
from bot.model.jobs import JobState
from tests.fakes.loopback import serve
from tests.support.harness import BotHarness
from tests.support.typed_fetch import ToLoopback, TrickleServer, chat, public


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 120, 10)).save(out, format="PNG")
    return out.getvalue()


class SlowAndFast(TrickleServer):
    """Images under /slow/ never finish; /fast.png is there at once."""

    def __init__(self) -> None:
        super().__init__()
        self.app = web.Application()
        self.app.router.add_get("/slow/{name}", self._slow)
        self.app.router.add_get("/fast.png", self._fast)

    async def _fast(self, request: web.Request) -> web.Response:
        return web.Response(body=png(), content_type="image/png")


async def test_one_persons_ten_slow_links_do_not_hold_up_another_persons_link(tmp_path: Path) -> None:
    server, route = SlowAndFast(), ToLoopback()
    assert TYPED_PER_OWNER == 2 and TYPED_LIMITS.max_connections == 10
    harness = BotHarness(tmp_path, resolver=public, typed_http=typed_client(route), typed_fetch_seconds=3600)
    async with serve(server.app) as base, harness as bot:
        port = httpx.URL(base).port
        # One person sends 10 requests at once, each with a link that never finishes.
        links = [
            asyncio.create_task(
                bot.engine.submit(chat(f"like http://slow.example:{port}/slow/{i}.png", user="u1"))
            )
            for i in range(10)
        ]
        await server.wait_until(lambda: server.open >= TYPED_PER_OWNER)
        # Another person, on another server, is served at once: the pool is not full of the first's links.
        job = await asyncio.wait_for(
            bot.engine.submit(chat(f"like http://slow.example:{port}/fast.png", user="u2", workspace="w2")),
            20,
        )
        assert job.state in (JobState.QUEUED, JobState.SUBMITTING, JobState.RUNNING, JobState.COMPLETED)
        assert len(job.reference_media) == 1
        # The first person's links: two downloading, eight waiting their turn outside the pool.
        assert server.open == TYPED_PER_OWNER
        assert len(route.requests) == TYPED_PER_OWNER + 1
        assert bot.engine.typed_share.in_flight("person:test:u1") == TYPED_PER_OWNER
        assert all(not task.done() for task in links)
        for task in links:
            task.cancel()
        await asyncio.gather(*links, return_exceptions=True)
        await server.wait_until(lambda: server.open == 0)
        assert bot.engine.typed_share.in_flight("person:test:u1") == 0


async def settle() -> None:
    """Let every task that can run, run (no I/O here: what is still waiting waits for a place)."""
    for _ in range(20):
        await asyncio.sleep(0)


async def test_a_tenant_and_a_person_each_get_two_places() -> None:
    share = FairShare(2)
    release = asyncio.Event()
    started: list[str] = []

    async def download(name: str, *owners: str) -> None:
        async with share.place(*owners):
            started.append(name)
            await release.wait()

    tasks = [
        asyncio.create_task(download("a1", "person:a", "tenant:t")),
        asyncio.create_task(download("a2", "person:a", "tenant:t")),
        asyncio.create_task(download("a3", "person:a", "tenant:u")),  # the person's third: waits
        asyncio.create_task(download("b1", "person:b", "tenant:t")),  # the tenant's third: waits
        asyncio.create_task(download("c1", "person:c", "tenant:u")),  # another person elsewhere: goes
    ]
    await settle()
    assert sorted(started) == ["a1", "a2", "c1"]
    assert (share.in_flight("person:a"), share.in_flight("tenant:t"), share.in_flight("tenant:u")) == (
        2,
        2,
        1,
    )
    tasks[0].cancel()  # a1 is cut short: its places go to those waiting
    await settle()
    assert sorted(started) == ["a1", "a2", "a3", "b1", "c1"]
    release.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert share.in_flight("person:a") == share.in_flight("tenant:t") == 0
    async with share.place():  # a download for no one (not typed) waits for nothing
        pass
