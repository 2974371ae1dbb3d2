"""Wiring: every long-lived part entered in one AsyncExitStack, in the order they depend on each other."""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bot.config import Settings
from bot.engine import Engine
from bot.hidream import make_provider
from bot.hidream.base import Provider
from bot.jobs import Surface
from bot.server import HttpServer
from storage.sqlite import Store

log = logging.getLogger(__name__)

# A surface factory gets the running bot and returns an adapter (an async context manager that is
# also a Surface). It may add routes to bot.server.app: the server starts after every factory ran.
SurfaceFactory = Callable[["Bot"], Any]


@dataclass
class Bot:
    settings: Settings
    http: httpx.AsyncClient
    store: Store
    server: HttpServer
    provider: Provider
    engine: Engine
    sandbox: Any = None
    surfaces: list[Any] = field(default_factory=list)

    @property
    def server_url(self) -> str:
        return self.server.url


def sandbox_state_dir(settings: Settings) -> Path:
    return settings.db_path.parent / (settings.db_path.name + ".sandbox")


async def start_bot(
    settings: Settings,
    stack: AsyncExitStack,
    surfaces: list[SurfaceFactory],
    *,
    loopback_public_url: bool = False,
    **engine_options: Any,
) -> Bot:
    """Start everything; `stack` closes it all in reverse order.

    `loopback_public_url`: use the server's own loopback address as HIDREAM_PUBLIC_URL, so callbacks
    work on one machine (tests, benchmarks)."""
    http = await stack.enter_async_context(
        httpx.AsyncClient(
            timeout=httpx.Timeout(30.0, connect=10.0),
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
            headers={"User-Agent": "hidream-bot/0.1"},
        )
    )
    store = await stack.enter_async_context(Store(settings.db_path, default_limit=settings.daily_image_quota))
    server = HttpServer(settings.http_host, settings.http_port)
    server.bind()
    if loopback_public_url:
        settings.public_url = server.url
    sandbox = None
    if settings.provider_name == "sandbox":
        from bot.hidream.sandbox import SandboxService

        sandbox = SandboxService(http, sandbox_state_dir(settings), delay=settings.sandbox_delay_seconds)
        sandbox.register_routes(server.app)
    provider = make_provider(settings, http, sandbox_url=f"{server.url}/sandbox")
    await stack.enter_async_context(provider)
    engine = Engine(settings, store, provider, http, **engine_options)
    bot = Bot(settings, http, store, server, provider, engine, sandbox)
    adapters = [factory(bot) for factory in surfaces]
    await stack.enter_async_context(server)
    if sandbox is not None:
        await stack.enter_async_context(sandbox)
    await stack.enter_async_context(engine)
    for adapter in adapters:
        surface: Surface = adapter
        engine.add_surface(surface)
        await stack.enter_async_context(adapter)
        bot.surfaces.append(adapter)
    server.ready(engine, {"provider": provider.name, "surfaces": [s.name for s in bot.surfaces]})
    await engine.resume()
    return bot
