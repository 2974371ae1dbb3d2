"""Shared by several test modules."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
from aiohttp import web
from PIL import Image, ImageDraw

from bot.model.config import Settings
from bot.providers.base import RetryPolicy
from bot.providers.sandbox.jobs import OwnServer
from bot.providers.sandbox.provider import SandboxProvider, SandboxService


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


@contextlib.asynccontextmanager
async def sandbox(
    state_dir: Path,
    client: httpx.AsyncClient,
    *,
    routes: Callable[[web.Application], None] | None = None,
    port: int = 0,
    **kwargs: Any,
) -> AsyncIterator[tuple[SandboxService, str]]:
    """A service on a loopback server of its own, which stands for the bot's server: the one it may
    send requests to. `routes` adds the bot's other routes (/media/, /webhooks/) beside it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(64)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    service = SandboxService(client, state_dir, own=OwnServer(url), **kwargs)
    app = web.Application()
    service.register_routes(app)
    if routes is not None:
        routes(app)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    try:
        async with service:
            yield service, url
    finally:
        await runner.cleanup()
        sock.close()


def provider_for(client: httpx.AsyncClient, url: str, service: SandboxService) -> SandboxProvider:
    settings = Settings(_env_file=None, HIDREAM_PROVIDER="sandbox")
    return SandboxProvider(
        settings, client, base_url=f"{url}/sandbox", token=service.token, retry=RetryPolicy(base_delay=0)
    )


class Receiver:
    """Stands in for the bot's webhook route: records each callback; can fail the first few with 503."""

    def __init__(self, fail_first: int = 0) -> None:
        self.fail_first = fail_first
        self.calls = 0
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.raw: list[bytes] = []
        self.arrived = asyncio.Event()

    def mount(self, app: web.Application) -> None:
        app.router.add_post("/webhooks/{token}", self._handle)

    async def _handle(self, request: web.Request) -> web.Response:
        self.calls += 1
        if self.calls <= self.fail_first:
            return web.Response(status=503)
        raw = await request.read()
        self.raw.append(raw)
        self.headers.append(dict(request.headers))
        self.bodies.append(json.loads(raw))
        self.arrived.set()
        return web.json_response({"ok": True})


def stripes(size: tuple[int, int], *, vertical: bool) -> Image.Image:
    """A high-contrast test picture whose structure survives recolouring."""
    img = Image.new("RGB", size, (240, 240, 240))
    draw = ImageDraw.Draw(img)
    for k in range(0, size[0] if vertical else size[1], 40):
        box = (k, 0, k + 20, size[1]) if vertical else (0, k, size[0], k + 20)
        draw.rectangle(box, fill=(15, 15, 15))
    draw.ellipse((size[0] // 3, size[1] // 3, size[0] // 2, size[1] // 2), fill=(220, 30, 30))
    return img


def data_uri(img: Image.Image) -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes(img)).decode()


def valid_body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "prompt": "a cat", "width": 512, "height": 512, "seed": 1, "num_images": 1,
        "output_format": "png", "model": "full",
    }  # fmt: skip
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


def auth(service: SandboxService) -> dict[str, str]:
    return {"Authorization": f"Bearer {service.token}"}
