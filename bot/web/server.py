"""The bot's own aiohttp server: /healthz, provider callbacks, signed media links, /metrics.

Callbacks go to the worker (`bot.jobs.runner.JobRunner`) directly, as do media links and /metrics;
admission (`bot.jobs.engine.Engine`) is kept here only for the operators' pages that query it.

Surfaces that need a route (a platform's events endpoint) and the sandbox provider add theirs to `app`
before the server starts, as do the operators' pages (bot/web/admin.py) and the region editor
(bot/web/region.py).

Every route has a cap on its request body, applied before the handler sees the request: a declared
Content-Length over the cap is answered 413 at once, and a body of unknown length (chunked) is read only
up to the cap. A route's cap is the `max_body` attribute of its handler (see `limit_body`), else
DEFAULT_MAX_BODY.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from aiohttp import web

from bot.jobs.metrics import CONTENT_TYPE as METRICS_TYPE
from bot.logs import Throttle
from bot.model.config import IPNetwork
from bot.model.errors import CallbackRejected, ConfigError, StoreUnavailable
from bot.web.gate import SignInGate, bearer_token

if TYPE_CHECKING:
    from bot.jobs.engine import Engine
    from bot.jobs.runner import JobRunner

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

MIB = 1024 * 1024
# A route that names no cap of its own (health, media links, and any route a plugin adds without one).
DEFAULT_MAX_BODY = 1 * MIB
# Provider callbacks carry a status, result image URLs and a little metadata: a few KB. The bot never
# asks a provider for inline results (each provider's inline-result option stays off),
# and no provider's documented callback echoes the request's reference images, so no genuine callback
# comes near this.
CALLBACK_MAX_BODY = 1 * MIB
# The name of the handler attribute that holds its route's cap (bytes).
MAX_BODY_ATTR = "max_body"


def limit_body(handler: Handler, max_bytes: int) -> Handler:
    """`handler`, marked so that the server refuses a request body over `max_bytes` before calling it."""

    async def limited(request: web.Request) -> web.StreamResponse:
        return await handler(request)

    setattr(limited, MAX_BODY_ATTR, max_bytes)
    return limited


def route_body_limit(request: web.Request) -> int:
    limit = getattr(request.match_info.handler, MAX_BODY_ATTR, None)
    return limit if isinstance(limit, int) and limit > 0 else DEFAULT_MAX_BODY


def body_too_large(limit: int) -> web.Response:
    response = web.json_response(
        {"error": f"request body too large: this route accepts at most {limit} bytes"}, status=413
    )
    # The rest of the body is not wanted: the connection is not reused for another request.
    response.force_close()
    return response


@web.middleware
async def cap_request_bodies(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse a body over the route's cap before the handler runs (declared length), or as soon as the
    handler's read passes it (chunked): aiohttp's own read stops at the request's client_max_size."""
    limit = route_body_limit(request)
    declared = request.content_length
    if declared is not None and declared > limit:
        return body_too_large(limit)
    try:
        return await handler(request.clone(client_max_size=limit))
    except web.HTTPRequestEntityTooLarge:
        return body_too_large(limit)


class HttpServer:
    def __init__(
        self, host: str, port: int, *, clock: Any = time.time, trusted_proxies: Sequence[IPNetwork] = ()
    ) -> None:
        self.host = host
        self.port = port
        self.clock = clock
        # Wrong operators' tokens are counted once for /metrics and /admin alike.
        self.gate = SignInGate(trusted_proxies, clock=clock)
        self.app = web.Application(client_max_size=DEFAULT_MAX_BODY, middlewares=[cap_request_bodies])
        self.runner: JobRunner | None = None
        self.engine: Engine | None = None
        self.info: dict[str, Any] = {}
        # Callbacks that found the database away: said at most once a minute.
        self._store_down = Throttle(60.0)
        self._runner: web.AppRunner | None = None
        self._sock: socket.socket | None = None
        self.app.router.add_get("/healthz", self._healthz)
        self.app.router.add_post("/webhooks/{token}", limit_body(self._webhook, CALLBACK_MAX_BODY))
        self.app.router.add_get("/media/{media_id}", self._media)
        self.app.router.add_get("/metrics", self._metrics)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

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

    def ready(self, runner: JobRunner, info: dict[str, Any], *, engine: Engine | None = None) -> None:
        """Serve: callbacks, media links and /metrics through `runner`; the operators' page's queries
        through `engine`."""
        self.runner = runner
        self.engine = engine
        self.info = info

    async def _healthz(self, request: web.Request) -> web.Response:
        if self.runner is None:
            return web.json_response({"status": "starting"}, status=503)
        return web.json_response({"status": "ok", **self.info})

    async def _webhook(self, request: web.Request) -> web.Response:
        runner = self.runner
        if runner is None:
            # Providers retry on 5xx; the job is resumed once the bot is ready.
            return web.json_response({"error": "starting"}, status=503)
        token = request.match_info["token"]
        try:
            # A body for no job is never read (the cap on its size was checked before this handler).
            if await runner.store.job_by_token(token) is None:
                runner.metrics.callback(404)
                return web.json_response({"error": "unknown callback token"}, status=404)
            body = await request.read()
            await runner.handle_callback(token, request.headers, body)
        except CallbackRejected as exc:
            runner.metrics.callback(exc.status)
            log.warning("callback refused (%s): %s", exc.status, exc)
            return web.json_response({"error": str(exc)}, status=exc.status)
        except StoreUnavailable as exc:
            # Nothing was stored: providers send a callback again after a 5xx, and the job's own safety
            # poll finds its news anyway. Said once in a while, not once per callback.
            runner.metrics.callback(503)
            if self._store_down.allow():
                log.warning(
                    "callbacks answered 503 while the database cannot be reached (%s); %d more since",
                    *(exc.detail, self._store_down.take_held()),
                )
            return web.json_response({"error": "the bot cannot store this now; send it again"}, status=503)
        runner.metrics.callback(200)
        return web.json_response({"ok": True})

    async def _metrics(self, request: web.Request) -> web.Response:
        """Prometheus' scrape. With HIDREAM_ADMIN_TOKEN set it asks for that token as a bearer token:
        the figures (spend, volume, failures) are the operator's business, and this server may face
        the internet for callbacks. Without it, it is open, like any exporter on an internal port."""
        runner = self.runner
        if runner is None:
            return web.json_response({"error": "starting"}, status=503)
        token = runner.settings.admin_token
        secret = token.get_secret_value() if token is not None else ""
        if secret:
            given = bearer_token(request)
            # No token at all is not a guess (a scraper not yet given one): refused, not counted.
            verdict = self.gate.check(request, given, secret.encode(), where="metrics") if given else None
            if verdict is not None and verdict.outcome == "limited":
                return web.json_response(
                    {"error": "too many wrong tokens from here: wait and try again"},
                    status=429,
                    headers={"Retry-After": str(verdict.retry_after)},
                )
            if verdict is None or verdict.outcome == "wrong":
                return web.json_response(
                    {"error": "send the operators' token: Authorization: Bearer <HIDREAM_ADMIN_TOKEN>"},
                    status=401,
                    headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
                )
        return web.Response(body=await runner.metrics.render(), headers={"Content-Type": METRICS_TYPE})

    async def _media(self, request: web.Request) -> web.StreamResponse:
        runner = self.runner
        if runner is None or runner.signer is None:
            return web.json_response({"error": "starting"}, status=503)
        media_id = request.match_info["media_id"]
        exp = request.query.get("exp", "")
        sig = request.query.get("sig", "")
        if not runner.signer.verify(media_id, exp, sig, now=self.clock()):
            return web.json_response({"error": "link expired or invalid"}, status=403)
        if runner.settings.media_redirect:
            # To the media store's own presigned URL, valid as long as this link is (at least a second).
            url = await runner.store.media_url(media_id, int(exp) - self.clock())
            if url is not None:
                raise web.HTTPFound(url, headers={"Cache-Control": "private, no-store"})
        # Streamed as the store gives it, in chunks: never whole in memory where it is kept apart.
        media = await runner.store.media_stream(media_id)
        if media is None:
            return web.json_response({"error": "not found"}, status=404)
        response = web.StreamResponse(headers={"Cache-Control": "private"})
        response.content_type = media.content_type
        try:
            await response.prepare(request)
            async for chunk in media.chunks:
                await response.write(chunk)
            await response.write_eof()
        finally:
            await media.chunks.aclose()  # a file's handle, an object's connection: at once
        return response
