"""The Slack surface: bolt's AsyncApp in HTTP mode (mounted on the bot's server) or Socket Mode.
Settings are read here only; the listeners get a ListenerContext, the engine's calls go to the Poster."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_bolt.app.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.context import ListenerContext
from adapters.slack.handlers import register
from adapters.slack.posting import Poster
from adapters.slack.settings import SlackSettings
from adapters.slack.translate import SURFACE
from bot.errors import ConfigError
from bot.jobs import Job, OutputImage, Post, Progress

if TYPE_CHECKING:
    from bot.engine import Engine

log = logging.getLogger(__name__)


class SlackAdapter:
    """One Slack workspace, one bot token. Enter it to connect (Socket Mode) or to serve (HTTP)."""

    name = SURFACE

    def __init__(self, settings: SlackSettings, engine: Engine) -> None:
        if settings.bot_token is None:
            raise ConfigError("SLACK_BOT_TOKEN is not set")
        self.settings = settings
        self.engine = engine
        self.mode = settings.mode
        self.bot_token = settings.bot_token.get_secret_value()
        self._bolt_log = logging.getLogger("slack_bolt.hidream")
        self.client = AsyncWebClient(token=self.bot_token, base_url=settings.api_base_url)
        secret = settings.signing_secret.get_secret_value() if settings.signing_secret else ""
        self.app = AsyncApp(
            client=self.client,
            signing_secret=secret,
            # Socket Mode has no signatures; HTTP mode checks every request.
            request_verification_enabled=self.mode == "http",
            # Under slack_bolt, so that the level the CLI holds bolt's loggers at applies: bolt prints
            # whole envelopes at DEBUG (the verification token, response URLs).
            logger=self._bolt_log,
        )
        self.poster = Poster(self.client)
        self._socket: AsyncSocketModeHandler | None = None
        context = ListenerContext(
            engine=engine,
            client=self.client,
            poster=self.poster,
            admin_users=settings.admins(),
            bot_token=self.bot_token,
            max_image_bytes=engine.settings.max_image_bytes,
        )
        register(self.app, context)

    # --- lifecycle ------------------------------------------------------------------------------

    def register_routes(self, app: web.Application) -> None:
        if self.mode == "http":
            app.router.add_post("/slack/events", self._http_events)

    async def _http_events(self, request: web.Request) -> web.Response:
        # bolt checks the signature and the timestamp first (401 and nothing runs when wrong) and
        # answers as soon as a listener acks, while the listener goes on in the background.
        response = await self.app.async_dispatch(await to_bolt_request(request))
        return await to_aiohttp_response(response)

    async def __aenter__(self) -> SlackAdapter:
        auth = await self.client.auth_test()
        log.info(
            "Slack (%s mode) connected as %s in team %s", self.mode, auth.get("user_id"), auth.get("team_id")
        )
        if self.mode == "socket":
            assert self.settings.app_token is not None
            self._socket = AsyncSocketModeHandler(self.app, self.settings.app_token.get_secret_value())
            await self._socket.connect_async()  # type: ignore[no-untyped-call]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._socket is not None:
            await self._socket.close_async()  # type: ignore[no-untyped-call]
            self._socket = None

    # --- the engine's Surface -------------------------------------------------------------------

    async def progress(self, job: Job, progress: Progress) -> None:
        await self.poster.progress(job, progress)

    async def deliver(self, job: Job, images: list[OutputImage]) -> list[Post]:
        return await self.poster.deliver(job, images)

    async def tell(self, job: Job, text: str) -> None:
        await self.poster.tell(job, text)
