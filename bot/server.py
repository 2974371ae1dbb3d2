"""The bot's own aiohttp server: /healthz, provider callbacks, signed media links.

Surfaces that need a route (Slack's /slack/events) and the sandbox provider add theirs to `app`
before the server starts.
"""

from __future__ import annotations

import logging
import socket
import time
from typing import TYPE_CHECKING, Any

from aiohttp import web

from bot.errors import CallbackRejected, ConfigError

if TYPE_CHECKING:
    from bot.engine import Engine

log = logging.getLogger(__name__)

# Reference images travel as data URIs to the sandbox; the largest is bounded by HIDREAM_MAX_IMAGE_BYTES.
MAX_BODY = 128 * 1024 * 1024


class HttpServer:
    def __init__(self, host: str, port: int, *, clock: Any = time.time) -> None:
        self.host = host
        self.port = port
        self.clock = clock
        self.app = web.Application(client_max_size=MAX_BODY)
        self.engine: Engine | None = None
        self.info: dict[str, Any] = {}
        self._runner: web.AppRunner | None = None
        self._sock: socket.socket | None = None
        self.app.router.add_get("/healthz", self._healthz)
        self.app.router.add_post("/webhooks/{token}", self._webhook)
        self.app.router.add_get("/media/{media_id}", self._media)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def bind(self) -> int:
        """Take the port now (port 0: an ephemeral one), so its URL is known before routes are added."""
        if self._sock is None:
            family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((self.host, self.port))
            except OSError as exc:
                sock.close()
                raise ConfigError(
                    f"cannot listen on {self.host}:{self.port} ({exc.strerror}): set HIDREAM_HTTP_HOST / "
                    "HIDREAM_HTTP_PORT to a free address (port 0 picks any free port)"
                ) from None
            sock.listen(512)
            sock.setblocking(False)
            self.port = sock.getsockname()[1]
            self._sock = sock
        return self.port

    async def __aenter__(self) -> HttpServer:
        self.bind()
        assert self._sock is not None
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        await web.SockSite(self._runner, self._sock).start()
        log.info("HTTP server listening on %s", self.url)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def ready(self, engine: Engine, info: dict[str, Any]) -> None:
        self.engine = engine
        self.info = info

    async def _healthz(self, request: web.Request) -> web.Response:
        if self.engine is None:
            return web.json_response({"status": "starting"}, status=503)
        return web.json_response({"status": "ok", **self.info})

    async def _webhook(self, request: web.Request) -> web.Response:
        if self.engine is None:
            # Providers retry on 5xx; the job is resumed once the bot is ready.
            return web.json_response({"error": "starting"}, status=503)
        body = await request.read()
        try:
            await self.engine.handle_callback(request.match_info["token"], request.headers, body)
        except CallbackRejected as exc:
            log.warning("callback refused (%s): %s", exc.status, exc)
            return web.json_response({"error": str(exc)}, status=exc.status)
        return web.json_response({"ok": True})

    async def _media(self, request: web.Request) -> web.StreamResponse:
        engine = self.engine
        if engine is None or engine.signer is None:
            return web.json_response({"error": "starting"}, status=503)
        media_id = request.match_info["media_id"]
        exp = request.query.get("exp", "")
        sig = request.query.get("sig", "")
        if not engine.signer.verify(media_id, exp, sig, now=self.clock()):
            return web.json_response({"error": "link expired or invalid"}, status=403)
        media = await engine.store.media(media_id)
        if media is None:
            return web.json_response({"error": "not found"}, status=404)
        return web.Response(
            body=media.data, content_type=media.content_type, headers={"Cache-Control": "private"}
        )
