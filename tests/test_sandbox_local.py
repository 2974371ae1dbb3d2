"""The sandbox stays on this machine: loopback only unless allowed, a token of its own per process,
requests only to the bot's own server, and old jobs swept from memory and disk (on a fake clock)."""

from __future__ import annotations

import asyncio
import io
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from PIL import Image

from bot.app import select
from bot.cli import main
from bot.jobs.images import to_data_uri
from bot.model.config import Settings
from bot.model.errors import ConfigError, ProviderRejected
from bot.model.requests import ChatRequest, ImageRef, ImageRequest, parse_command
from bot.providers.aiohttp_transport import provider_client
from bot.providers.base import SubmitSpec
from bot.providers.plugin import ProviderContext
from bot.providers.sandbox.provider import SandboxProvider, SandboxSettings, plugin
from bot.providers.sandbox.service import DAY, SandboxService
from tests.fakes.loopback import serve
from tests.fakes.surface import RecordingSurface
from tests.support.harness import BotHarness, sandbox_of, settings_for_test
from tests.support.sandbox import Receiver, auth, data_uri, provider_for, sandbox, stripes, valid_body

WAIT = 30.0  # generous: only reached when something is broken


def png(color: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (96, 64), color).save(out, format="PNG")
    return out.getvalue()


# --- loopback only --------------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "bot.example.com"])
def test_a_non_loopback_host_stops_the_sandbox_naming_the_setting(tmp_path: Path, host: str) -> None:
    settings = settings_for_test(tmp_path, HIDREAM_HTTP_HOST=host)
    with pytest.raises(ConfigError) as caught:
        select(settings)
    message = str(caught.value)
    assert "\n" not in message
    assert f"HIDREAM_HTTP_HOST={host}" in message and "HIDREAM_SANDBOX_ALLOW_REMOTE=true" in message
    # Building it directly refuses too.
    context = ProviderContext(settings, provider_client(), "http://127.0.0.1:1", tmp_path / "state")
    with pytest.raises(ConfigError):
        plugin.build(context, SandboxSettings(_env_file=None))


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_a_loopback_host_is_fine(tmp_path: Path, host: str) -> None:
    selection = select(settings_for_test(tmp_path, HIDREAM_HTTP_HOST=host))
    assert selection.provider[0].name == "sandbox"


def test_the_operator_may_allow_a_remote_host_and_a_real_provider_needs_no_leave(tmp_path: Path) -> None:
    allowed = settings_for_test(tmp_path, HIDREAM_HTTP_HOST="0.0.0.0", HIDREAM_SANDBOX_ALLOW_REMOTE="true")
    assert select(allowed).provider[0].name == "sandbox"
    real = settings_for_test(tmp_path, HIDREAM_HTTP_HOST="0.0.0.0", FAL_KEY="k")
    assert select(real).provider[0].name == "fal"


def test_check_and_run_exit_with_one_line_naming_the_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HIDREAM_DB_PATH", str(tmp_path / "bot.db"))
    monkeypatch.setenv("HIDREAM_HTTP_HOST", "0.0.0.0")
    for command in ("check", "run"):
        assert main([command]) == 2
        _, err = capsys.readouterr()
        assert err.count("\n") == 1 and "HIDREAM_HTTP_HOST=0.0.0.0" in err and "Traceback" not in err
        assert "HIDREAM_SANDBOX_ALLOW_REMOTE" in err
    assert not (tmp_path / "bot.db").exists(), "nothing started"


# --- a token per process --------------------------------------------------------------------------


async def test_each_process_has_its_own_token_and_only_its_provider_knows_it(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    async with BotHarness(tmp_path / "a") as first, BotHarness(tmp_path / "b") as second:
        one, two = sandbox_of(first), sandbox_of(second)
        assert one.token != two.token and "sandbox" not in (one.token, two.token)
        assert len(one.token) >= 32
        provider = first.provider
        assert isinstance(provider, SandboxProvider) and provider.token == one.token
        url = f"{first.server_url}/sandbox/v1/images"
        async with httpx.AsyncClient(timeout=WAIT) as client:
            documented = await client.post(
                url, json=valid_body(), headers={"Authorization": "Bearer sandbox"}
            )
            others = await client.post(url, json=valid_body(), headers=auth(two))
            own = await client.post(url, json=valid_body(), headers=auth(one))
        assert (documented.status_code, others.status_code, own.status_code) == (401, 401, 202)


# --- requests only to the bot's own server --------------------------------------------------------


class Recorder:
    """Another service on loopback (a database's admin page, say): records every request it gets."""

    def __init__(self) -> None:
        self.hits: list[str] = []
        self.app = web.Application()
        self.app.router.add_route("*", "/{tail:.*}", self._any)

    async def _any(self, request: web.Request) -> web.Response:
        self.hits.append(f"{request.method} {request.path_qs}")
        return web.Response(body=png(), content_type="image/png")


@pytest.fixture
async def recorder() -> AsyncIterator[tuple[Recorder, str]]:
    rec = Recorder()
    async with serve(rec.app) as url:
        yield rec, url


async def test_references_outside_the_bots_media_links_are_refused_and_never_fetched(
    tmp_path: Path, recorder: tuple[Recorder, str]
) -> None:
    rec, elsewhere = recorder
    port = elsewhere.rsplit(":", 1)[1]
    async with BotHarness(tmp_path) as bot:
        own = bot.server_url
        provider = bot.provider
        assert isinstance(provider, SandboxProvider)
        attempts = [
            f"{elsewhere}/media/abc",
            f"{elsewhere}/secret.png",
            f"{own}@127.0.0.1:{port}/media/abc",
            f"http://localhost:{port}/media/abc",
            f"{own}/sandbox/v1/files/{'0' * 32}/0.png",
            f"{own}/media/../sandbox/v1/images",
            f"{own}/media/abc/../../x",
            f"{own}/media/abc#{elsewhere}",
            f"{own}:{port}/media/abc",
        ]
        for url in attempts:
            spec = SubmitSpec(
                job_id="j", request=ImageRequest(prompt="edit", seed=1), tier="full", reference_urls=[url]
            )
            with pytest.raises(ProviderRejected) as caught:
                await provider.submit(spec)
            assert "reference_image_urls[0]" in caught.value.user_message, url
            assert "only uses the bot's own" in caught.value.user_message, url
        assert rec.hits == []
        assert sandbox_of(bot).received() == []


async def test_a_callback_url_outside_the_bot_is_refused_and_never_called(
    tmp_path: Path, recorder: tuple[Recorder, str]
) -> None:
    rec, elsewhere = recorder
    async with BotHarness(tmp_path) as bot:
        service = sandbox_of(bot)
        async with httpx.AsyncClient(timeout=WAIT) as client:
            answer = await client.post(
                f"{bot.server_url}/sandbox/v1/images",
                json=valid_body(webhook_url=f"{elsewhere}/webhooks/t"),
                headers=auth(service),
            )
        assert answer.status_code == 400 and answer.json()["error"].startswith("webhook_url: ")
        await asyncio.wait_for(service.idle(), WAIT)
        assert rec.hits == [] and service.pending_callbacks == 0


async def test_an_edit_reaches_the_sandbox_through_the_bots_own_media_link(tmp_path: Path) -> None:
    surface = RecordingSurface()
    picture = png((20, 90, 200))
    # The public URL is not this machine's: the sandbox uses the local server for its links instead.
    env = {"HIDREAM_PUBLIC_URL": "https://bot.example.com/hidream"}
    async with BotHarness(tmp_path, env=env, surfaces=[surface.factory], callback_grace=3600) as bot:
        chat = ChatRequest(
            surface="test",
            user_id="u1",
            workspace_id="w1",
            origin={"thread": "t1"},
            request=parse_command("make it night --seed 1").request,
            references=[ImageRef(url=to_data_uri(picture, "image/png"))],
        )
        job = await bot.engine.submit(chat)
        await asyncio.wait_for(bot.runner.wait_idle(), WAIT)
        assert [d[0] for d in surface.deliveries] == [job.id]
        [received] = sandbox_of(bot).received()
        assert received.references == [picture]
        assert received.webhook_url == f"{bot.server_url}/webhooks/{job.callback_token}"
        assert sandbox_of(bot).polls == 1, "finished by its callback (then one status read)"


# --- bounded memory and files ---------------------------------------------------------------------


class Ticks:
    """The sweeper's sleep, advanced by the test: each `tick()` lets one wait end. The sweeper sleeps
    again right after each sweep, so its n-th wait means n - 1 sweeps are done."""

    def __init__(self) -> None:
        self.waits: list[float] = []
        self._queue: asyncio.Queue[None] = asyncio.Queue()
        self._arrived = asyncio.Event()

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self._arrived.set()
        await self._queue.get()

    def tick(self) -> None:
        self._queue.put_nowait(None)

    async def waiting(self, n: int) -> None:
        """Until the sweeper has begun its n-th wait."""
        while len(self.waits) < n:
            self._arrived.clear()
            await asyncio.wait_for(self._arrived.wait(), WAIT)


def files_of(service: SandboxService, job_id: str) -> list[str]:
    return sorted(p.name for p in service.files.dir.iterdir() if p.name.startswith(job_id))


async def submit(provider: SandboxProvider, prompt: str, refs: list[str] | None = None, **kw: Any) -> str:
    request = ImageRequest(prompt=prompt, seed=1, width=256, height=256)
    return await provider.submit(
        SubmitSpec(job_id="j", request=request, tier="full", reference_urls=refs or [], **kw)
    )


T0 = 1_700_000_000.0


async def test_old_jobs_leave_memory_and_disk_on_the_periodic_sweep(tmp_path: Path) -> None:
    now = [T0]
    ticks = Ticks()
    http = provider_client(timeout=WAIT)
    options: dict[str, Any] = {
        "delay": 0,
        "clock": lambda: now[0],
        "sweep_every": 3600,
        "sweep_sleep": ticks.sleep,
    }
    async with http, sandbox(tmp_path, http, **options) as (service, url):
        assert service.sweeps == 1, "swept once on start"
        provider = provider_for(http, url, service)
        old = await submit(provider, "an old one", [data_uri(stripes((300, 200), vertical=True))])
        status = await provider.status(old)
        assert (await http.get(status.images[0].url)).status == 200  # renders and caches a file
        assert len(files_of(service, old)) == 3  # record, reference, rendered image
        now[0] = T0 + 20 * DAY
        recent = await submit(provider, "a recent one")
        now[0] = T0 + 31 * DAY
        await ticks.waiting(1)
        ticks.tick()
        await ticks.waiting(2)
        assert service.sweeps == 2
        assert files_of(service, old) == []
        assert files_of(service, recent) == [f"{recent}.json"]
        assert old not in [job.id for job in service.received()]
        with pytest.raises(ProviderRejected):
            await provider.status(old)
        assert (await provider.status(recent)).state == "completed"
        # And so on, every sweep_every seconds of the injected sleep.
        now[0] = T0 + 51 * DAY
        ticks.tick()
        await ticks.waiting(3)
        assert service.sweeps == 3 and ticks.waits == [3600, 3600, 3600]
        assert files_of(service, recent) == [] and service.held == 0


async def test_a_restarted_service_sweeps_at_once_and_keeps_what_is_recent_or_unsent(tmp_path: Path) -> None:
    now = [T0]
    never = asyncio.Event()

    async def stuck(_: float) -> None:
        await never.wait()

    receiver = Receiver()
    http = provider_client(timeout=WAIT)
    async with http:
        first = sandbox(tmp_path, http, routes=receiver.mount, delay=0, clock=lambda: now[0], sleep=stuck)
        async with first as (service, url):
            provider = provider_for(http, url, service)
            done = await submit(provider, "finished long ago")
            unsent = await submit(provider, "its callback never went", callback_url=f"{url}/webhooks/t")
            assert service.pending_callbacks == 1
        # Leftovers of writes cut short: an old orphan reference, and a temp file being written now.
        orphan = tmp_path / f"{'a' * 32}.ref0"
        orphan.write_bytes(b"old")
        os.utime(orphan, (T0, T0))
        fresh_tmp = tmp_path / f".{'b' * 32}.json.1234.tmp"
        fresh_tmp.write_bytes(b"{}")
        now[0] = T0 + 31 * DAY
        os.utime(fresh_tmp, (now[0], now[0]))
        again = sandbox(tmp_path, http, routes=receiver.mount, delay=0, clock=lambda: now[0], sleep=stuck)
        async with again as (service, url):
            assert service.sweeps == 1
            assert files_of(service, done) == [] and not orphan.exists() and fresh_tmp.exists()
            assert files_of(service, unsent) == [f"{unsent}.json"], "kept until its callback is sent"
            assert service.pending_callbacks == 1


async def test_with_no_retention_nothing_is_swept(tmp_path: Path) -> None:
    now = [T0]
    http = provider_client(timeout=WAIT)
    async with http, sandbox(tmp_path, http, delay=0, clock=lambda: now[0], max_age=None) as (service, url):
        job_id = await submit(provider_for(http, url, service), "kept forever")
        now[0] = T0 + 3650 * DAY
        assert await service.sweep() == []
        assert files_of(service, job_id) == [f"{job_id}.json"]


async def test_memory_holds_only_the_most_recent_jobs_and_reads_the_rest_back(tmp_path: Path) -> None:
    http = provider_client(timeout=WAIT)
    async with http, sandbox(tmp_path, http, delay=0, max_jobs=3) as (service, url):
        provider = provider_for(http, url, service)
        ids = [await submit(provider, f"job {i}") for i in range(6)]
        assert service.held == 3
        assert [job.prompt for job in service.received()] == ["job 3", "job 4", "job 5"]
        first = await provider.status(ids[0])
        assert first.state == "completed" and len(first.images) == 1
        assert (await http.get(first.images[0].url)).status == 200
        assert service.held == 3
        assert [job.prompt for job in service.received()] == ["job 4", "job 5", "job 0"]


def test_the_plugin_sizes_the_service_from_the_core_settings(tmp_path: Path) -> None:
    settings: Settings = settings_for_test(
        tmp_path, HIDREAM_MAX_IMAGE_BYTES=123_456, HIDREAM_PUBLIC_URL="https://bot.example.com"
    )
    context = ProviderContext(settings, provider_client(), "http://127.0.0.1:5", tmp_path / "state")
    provider = plugin.build(context, SandboxSettings(_env_file=None))
    assert isinstance(provider, SandboxProvider) and provider.service is not None
    service = provider.service
    assert service.max_image_bytes == 123_456 and service.max_age == 30 * DAY
    assert service.own.url == "http://127.0.0.1:5" and service.own.aliases == ("https://bot.example.com",)
    assert service.own.local("https://bot.example.com/media/abc?exp=1&sig=ff", "media") == (
        "http://127.0.0.1:5/media/abc?exp=1&sig=ff"
    )
