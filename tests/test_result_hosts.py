"""The provider's result files, downloaded: bounded in time and fair (issue 19, item 10), and checked
like typed URLs unless their host is trusted (item 11).

A file host that trickles its bytes holds only its own job: the result slots (`ResultGate`) are taken
once a result's bytes are here, so a normal job is delivered while the slow downloads are still open,
and each slow one fails with its quota given back when HIDREAM_RESULT_FETCH_SECONDS passes. Counted
with the servers' own counts of open and cut downloads and the jobs' states, never with timings.

A result URL at a private address (loopback here) is refused unless HIDREAM_TRUSTED_RESULT_HOSTS names
its host (the test harness names 127.0.0.1 and localhost, where the fakes serve; these tests run
without it), redirects included, and so is an answer whose Content-Type says it is no image.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

import pytest
from aiohttp import web
from PIL import Image

from bot.app import Bot
from bot.jobs.media import result_address_check
from bot.model.jobs import Job, JobState
from bot.providers.base import ProviderStatus, ResultImage
from tests.fakes.loopback import serve
from tests.fakes.surface import RecordingSurface
from tests.support.harness import BotHarness, until
from tests.support.holding import HoldingProvider, chat, release_all

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (30, 160, 90)).save(out, format="PNG")
    return out.getvalue()


class FileHost:
    """Images under /slow/ never finish; /fast.png is there at once; /page.png is a web page;
    /hop?to=URL redirects. `asked` counts the requests for each path."""

    def __init__(self) -> None:
        self.open = self.cut = 0
        self.asked: dict[str, int] = {}
        self.app = web.Application()
        self.app.router.add_get("/slow/{name}", self._counted(self._slow))
        self.app.router.add_get("/fast.png", self._counted(self._fast))
        self.app.router.add_get("/page.png", self._counted(self._page))
        self.app.router.add_get("/hop", self._counted(self._hop))

    async def _slow(self, request: web.Request) -> web.StreamResponse:
        """A byte every 20 ms, forever; `open` and `cut` counted at once (no lock to wait for, which a
        handler cancelled as its client leaves could miss)."""
        response = web.StreamResponse(headers={"Content-Type": "image/png"})
        await response.prepare(request)
        self.open += 1
        try:
            while True:
                await response.write(b"\x89")
                await asyncio.sleep(0.02)
        finally:
            self.open -= 1
            self.cut += 1

    def _counted(self, handler: Handler) -> Handler:
        async def counted(request: web.Request) -> web.StreamResponse:
            self.asked[request.path] = self.asked.get(request.path, 0) + 1
            return await handler(request)

        return counted

    async def _fast(self, request: web.Request) -> web.Response:
        return web.Response(body=png(), content_type="image/png")

    async def _page(self, request: web.Request) -> web.Response:
        return web.Response(body=b"<html>" + bytes(1024 * 1024), content_type="text/html")

    async def _hop(self, request: web.Request) -> web.Response:
        raise web.HTTPFound(request.query["to"])


class PerJobResults(HoldingProvider):
    """A holding provider whose each job's result is at the URL the test gives for it (else `image`)."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: dict[str, str] = {}

    async def status(self, provider_job_id: str) -> ProviderStatus:
        status = await super().status(provider_job_id)
        if status.state != "completed":
            return status
        url = self.urls.get(provider_job_id.removeprefix("held-"), self.image)
        return ProviderStatus(state="completed", images=[ResultImage(url)])


def per_job(bot: Bot) -> PerJobResults:
    provider = PerJobResults()
    bot.engine.providers["sandbox"] = provider
    return provider


async def state_of(bot: Bot, job: Job) -> JobState:
    stored = await bot.store.job(job.id)
    assert stored is not None
    return stored.state


async def test_two_trickling_result_hosts_hold_no_slot_and_a_normal_job_is_delivered(tmp_path: Path) -> None:
    host, surface = FileHost(), RecordingSurface()
    # An hour for each download: nothing here may end the slow ones but the test.
    # As many upload slots as there are slow hosts: if waiting on one held a slot, none would be left.
    env = {"HIDREAM_RESULT_FETCH_SECONDS": 3600, "HIDREAM_DAILY_IMAGE_QUOTA": 100, "HIDREAM_MAX_UPLOADS": 2}
    async with serve(host.app) as base, BotHarness(tmp_path, env, [surface.factory]) as bot:
        provider = per_job(bot)
        gate = bot.runner.results
        assert gate.slots == 2
        slow = [await bot.engine.submit(chat(i)) for i in range(2)]
        for i, job in enumerate(slow):
            provider.urls[job.id] = f"{base}/slow/{i}.png"
        await until(lambda: len(provider.held) == 2)
        await release_all(bot, provider)
        await until(lambda: host.open == 2)
        assert gate.held == 0 and gate.waiting == 0  # waiting on a network holds no result slot

        normal = await bot.engine.submit(chat(5))
        await until(lambda: len(provider.held) == 1)
        await release_all(bot, provider)
        await until(lambda: len(surface.deliveries) == 1)
        assert [job_id for job_id, _ in surface.deliveries] == [normal.id]
        # Delivered while both slow downloads are still open, and their jobs still at work.
        assert (host.open, host.cut) == (2, 0)
        assert [await state_of(bot, job) for job in slow] == [JobState.RUNNING, JobState.RUNNING]
        assert surface.told == [] and gate.held == 0 and gate.most_held == 1


async def test_a_trickling_result_fails_its_job_with_a_refund_when_its_time_is_up(tmp_path: Path) -> None:
    host, surface = FileHost(), RecordingSurface()
    # Long enough for the request to reach the host on a loaded machine (the test counts it there),
    # far shorter than the trickle, which never ends.
    env = {"HIDREAM_RESULT_FETCH_SECONDS": 1.5, "HIDREAM_DAILY_IMAGE_QUOTA": 100}
    async with serve(host.app) as base, BotHarness(tmp_path, env, [surface.factory]) as bot:
        provider = per_job(bot)
        slow = [await bot.engine.submit(chat(i)) for i in range(2)]
        for i, job in enumerate(slow):
            provider.urls[job.id] = f"{base}/slow/{i}.png"
        await until(lambda: len(provider.held) == 2)
        await release_all(bot, provider)
        await until(lambda: len(surface.told) == 2)
        # The bot cut both downloads (their bodies never end), and each job failed, its quota given back.
        await until(lambda: host.cut == 2 and host.open == 0)
        assert host.asked == {"/slow/0.png": 1, "/slow/1.png": 1}
        for job in slow:
            assert await state_of(bot, job) is JobState.FAILED
        assert {job_id for job_id, _ in surface.told} == {job.id for job in slow}
        assert all("took too long to download" in message for _, message in surface.told)
        for i in range(2):
            assert (await bot.engine.quota("test", f"u{i}", "w1")).used == 0
        assert surface.deliveries == [] and bot.runner.results.most_held == 0


def folder(tmp_path: Path, name: str) -> Path:
    """A bot's own folder, for a test that starts two."""
    (tmp_path / name).mkdir()
    return tmp_path / name


async def one_result(
    tmp_path: Path, env: Mapping[str, object], url: str
) -> tuple[RecordingSurface, JobState, int]:
    """A job whose result is at `url`, run by a bot with `env` to its end: what its requester was
    sent, its state, and how much of their quota it took."""
    surface = RecordingSurface()
    async with BotHarness(tmp_path, {"HIDREAM_DAILY_IMAGE_QUOTA": 100, **env}, [surface.factory]) as bot:
        provider = per_job(bot)
        job = await bot.engine.submit(chat(0))
        provider.urls[job.id] = url
        await until(lambda: len(provider.held) == 1)
        await release_all(bot, provider)
        await until(lambda: surface.told or surface.deliveries)
        assert {job_id for job_id, _ in [*surface.told, *surface.deliveries]} == {job.id}
        return surface, await state_of(bot, job), (await bot.engine.quota("test", "u0", "w1")).used


REFUSED = ["The finished image could not be downloaded from the provider. Your quota was given back."]


@pytest.mark.parametrize("path", ["/fast.png", "/hop?to=/fast.png"])
async def test_a_result_at_a_private_address_is_refused_unless_its_host_is_trusted(
    tmp_path: Path, path: str
) -> None:
    host = FileHost()
    async with serve(host.app) as base:
        surface, state, used = await one_result(
            folder(tmp_path, "a"), {"HIDREAM_TRUSTED_RESULT_HOSTS": ""}, base + path
        )
        assert [message for _, message in surface.told] == REFUSED and surface.deliveries == []
        assert state is JobState.FAILED and used == 0  # failed, its quota given back
        assert host.asked == {}  # refused before a connection was made
        trusted = {"HIDREAM_TRUSTED_RESULT_HOSTS": "127.0.0.1"}
        surface, state, used = await one_result(folder(tmp_path, "b"), trusted, base + path)
        assert len(surface.deliveries) == 1 and surface.told == [] and used == 1
        assert host.asked.get("/fast.png") == 1  # fetched by the bot that trusts the host only


async def test_a_trusted_host_redirecting_to_an_untrusted_private_one_is_refused(tmp_path: Path) -> None:
    host = FileHost()
    # Only the name localhost is trusted: its redirect to 127.0.0.1, the same server, is checked again.
    async with serve(host.app) as base:
        port = base.rsplit(":", 1)[1]
        url = f"http://localhost:{port}/hop?to={base}/fast.png"
        surface, state, used = await one_result(tmp_path, {"HIDREAM_TRUSTED_RESULT_HOSTS": "localhost"}, url)
        assert [message for _, message in surface.told] == REFUSED and state is JobState.FAILED and used == 0
        assert host.asked == {"/hop": 1}  # the redirect was followed to no request


async def test_a_result_that_says_it_is_a_web_page_is_refused_before_its_body_is_read(tmp_path: Path) -> None:
    host = FileHost()
    async with serve(host.app) as base:
        surface, state, used = await one_result(tmp_path, {}, f"{base}/page.png")
        assert [message for _, message in surface.told] == REFUSED and state is JobState.FAILED and used == 0
        assert host.asked == {"/page.png": 1}


def test_the_trusted_hosts_setting_names_hosts_or_hosts_with_their_port() -> None:
    check = result_address_check(" files.example , Proxy.internal:8443, [fd00::5]:80 ")
    assert check("files.example", 443, "10.0.0.5")  # trusted wherever it resolves
    assert check("proxy.internal", 8443, "10.0.0.6") and not check("proxy.internal", 80, "10.0.0.6")
    assert check("fd00::5", 80, "fd00::5") and not check("fd00::5", 81, "fd00::5")
    assert check("cdn.example", 443, "93.184.216.34")  # any public address
    for address in ("127.0.0.1", "10.1.2.3", "169.254.169.254", "::1", "fec0::1", "::ffff:127.0.0.1"):
        assert not check("cdn.example", 443, address)
    assert not result_address_check("")("127.0.0.1", 80, "127.0.0.1")
