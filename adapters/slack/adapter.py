"""The Slack surface: bolt's AsyncApp in HTTP mode (mounted on the bot's server) or Socket Mode.
Settings are read here only; the listeners get a ListenerContext, the engine's calls go to the Poster."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_bolt.app.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.context import ListenerContext
from adapters.slack.handlers import register
from adapters.slack.home import register_home
from adapters.slack.oauth import (
    StoreInstallationStore,
    TeamClients,
    finish_install,
    oauth_settings,
    register_removals,
)
from adapters.slack.posting import Poster, bind_request_client, request_scope
from adapters.slack.review import register_reviews
from adapters.slack.settings import SlackSettings
from adapters.slack.translate import SURFACE
from bot import words
from bot.model.errors import ConfigError
from bot.model.jobs import Job, OutputImage, Post, Progress
from bot.usecases.installs import installations
from bot.web.server import limit_body

if TYPE_CHECKING:
    from bot.jobs.engine import Engine

log = logging.getLogger(__name__)
# auth.test, apps.connections.open and the websocket together; a start that hangs ends well within 30 s.
START_TIMEOUT = 25.0
# What Slack's documented token errors mean, for the one line a failed start ends with.
_TOKEN_ERRORS = {
    "invalid_auth": "the token is not valid",
    "not_authed": "no token was sent",
    "account_inactive": "the token belongs to a deactivated user or a deleted workspace",
    "token_revoked": "the token was revoked",
    "token_expired": "the token has expired",
    "not_allowed_token_type": "it is the wrong kind of token",
    "missing_scope": "the token lacks a scope it needs (connections:write for SLACK_APP_TOKEN)",
}


def _no_unused_token_notice(record: logging.LogRecord) -> bool:
    # bolt reads SLACK_BOT_TOKEN from the environment by itself, then warns that the client we give it
    # wins over that token: which is how it is meant to be.
    return "`token` will be unused" not in record.getMessage()


class _StartWatch(logging.Filter):
    """While Socket Mode connects, the client's own retries stay out of the log (the start succeeds, or
    ends with one line naming the setting); the last error is kept as the cause, and logged at DEBUG."""

    def __init__(self) -> None:
        super().__init__()
        self.last_error: BaseException | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.getMessage().startswith(("Failed to connect", "Failed to retrieve WSS URL")):
            return True
        if record.exc_info:
            self.last_error = record.exc_info[1]
        log.debug("Slack Socket Mode at start: %s", record.getMessage(), exc_info=record.exc_info)
        return False


def _start_error(variable: str, exc: Exception, api_base_url: str) -> ConfigError | None:
    """The one line a failed start ends with; None for what is not a setting's fault."""
    if isinstance(exc, SlackApiError):
        code = str(exc.response.get("error", "unknown"))
        return ConfigError(
            f"{variable}: Slack refused it ({code}: {_TOKEN_ERRORS.get(code, 'see Slack API docs')})"
        )
    if isinstance(exc, (OSError, aiohttp.ClientError)):
        cause = " ".join(str(exc).split()) or type(exc).__name__
        return ConfigError(f"SLACK_API_BASE_URL: cannot reach Slack at {api_base_url}: {cause}")
    return None


# Slack's requests (slash commands, events, interactivity and shortcut payloads) are a few KB; this
# leaves ample room. A larger body gets 413 from the server before bolt sees the request.
SLACK_MAX_BODY = 1024 * 1024


class SlackAdapter:
    """One Slack workspace with one bot token, or (OAuth mode) every workspace that installed the app,
    each with its own. Enter it to connect (Socket Mode) or to serve (HTTP)."""

    name = SURFACE

    def __init__(self, settings: SlackSettings, engine: Engine) -> None:
        if settings.bot_token is None and not settings.oauth:
            raise ConfigError("SLACK_BOT_TOKEN is not set")
        self.settings = settings
        self.engine = engine
        self.mode = settings.mode
        self.oauth = settings.oauth
        self._bolt_log = logging.getLogger("slack_bolt.hidream")
        self._bolt_log.addFilter(_no_unused_token_notice)
        # In OAuth mode this client has no token: bolt gives each request one with its workspace's.
        token = None if self.oauth or settings.bot_token is None else settings.bot_token.get_secret_value()
        self.client = AsyncWebClient(token=token, base_url=settings.api_base_url)
        secret = settings.signing_secret.get_secret_value() if settings.signing_secret else ""
        # Socket Mode has no signatures (and may have no secret).
        self._verifier = SignatureVerifier(secret) if self.mode == "http" else None
        installs = StoreInstallationStore(installations(engine)) if self.oauth else None
        self.app = AsyncApp(
            client=self.client,
            signing_secret=secret,
            # Socket Mode has no signatures; HTTP mode checks every request.
            request_verification_enabled=self.mode == "http",
            # Under slack_bolt, so that the level the CLI holds bolt's loggers at applies: bolt prints
            # whole envelopes at DEBUG (the verification token, response URLs).
            logger=self._bolt_log,
            oauth_settings=oauth_settings(settings, installs.installs) if installs else None,
            installation_store_bot_only=True if installs else None,
        )
        team_clients = TeamClients(installs, settings, self.client) if installs else None
        self.poster = Poster(
            self.client,
            engine.store,
            team_clients,
            tenant_nsfw=lambda job: engine.nsfw_policy(job.surface, job.workspace_id),
        )
        self._socket: AsyncSocketModeHandler | None = None
        context = ListenerContext(
            engine=engine,
            poster=self.poster,
            admin_users=settings.admins(),
            max_image_bytes=engine.settings.max_image_bytes,
        )
        if installs is not None:
            self.app.use(bind_request_client)
        register_removals(self.app, installs, engine)
        register(self.app, context)
        self.reviews = register_reviews(self.app, context)
        register_home(self.app, context)

    # --- lifecycle ------------------------------------------------------------------------------

    def register_routes(self, app: web.Application) -> None:
        if self.mode == "http":
            app.router.add_post("/slack/events", limit_body(self._http_events, SLACK_MAX_BODY))
        if self.oauth:
            # A browser's GETs: no body is expected, so none is accepted.
            app.router.add_get("/slack/install", limit_body(self._install, 0))
            app.router.add_get("/slack/oauth_redirect", limit_body(self._oauth_redirect, 0))

    async def _install(self, request: web.Request) -> web.Response:
        # bolt issues a one-use state (kept in the store, and in a cookie of the installer's browser)
        # and sends the installer to Slack's authorize page.
        flow = self.app.oauth_flow
        assert flow is not None
        response = await flow.handle_installation(await to_bolt_request(request))
        return await to_aiohttp_response(response)

    async def _oauth_redirect(self, request: web.Request) -> web.Response:
        # bolt checks the state against the cookie and the store, exchanges the code with
        # oauth.v2.access and saves the workspace's bot token in the store.
        flow = self.app.oauth_flow
        assert flow is not None
        response = await finish_install(flow, await to_bolt_request(request))
        return await to_aiohttp_response(response)

    async def _http_events(self, request: web.Request) -> web.Response:
        # The signature and the timestamp are checked here, before bolt sees the request: bolt checks
        # them too, but logs the whole body of a request it refuses, and the levels bot/cli.py holds its
        # loggers at do not apply where the bot is embedded without it. bolt answers as soon as a
        # listener acks, while the listener goes on in the background. The body is capped at
        # SLACK_MAX_BODY by the server (limit_body), before either check.
        assert self._verifier is not None  # the route exists in HTTP mode only
        body = await request.read()
        timestamp = request.headers.get("X-Slack-Request-Timestamp", "")
        signature = request.headers.get("X-Slack-Signature", "")
        # The verifier reads the timestamp as an integer and raises on anything else.
        if not (
            timestamp.isascii()
            and timestamp.isdigit()
            and self._verifier.is_valid(body, timestamp, signature)
        ):
            return web.json_response({"error": "invalid request"}, status=401)
        with request_scope():
            response = await self.app.async_dispatch(await to_bolt_request(request))
        return await to_aiohttp_response(response)

    async def __aenter__(self) -> SlackAdapter:
        watch = _StartWatch()
        self._bolt_log.addFilter(watch)
        try:
            async with asyncio.timeout(START_TIMEOUT):
                await self._connect()
        except BaseException as exc:
            await self.__aexit__(None, None, None)
            if isinstance(exc, TimeoutError):
                raise self._timeout_error(watch.last_error) from exc
            raise
        finally:
            self._bolt_log.removeFilter(watch)
        return self

    def _timeout_error(self, socket_error: BaseException | None) -> ConfigError:
        limit = f"{START_TIMEOUT:.0f} s"
        if socket_error is not None:
            cause = " ".join(str(socket_error).split()) or type(socket_error).__name__
            return ConfigError(f"SLACK_APP_TOKEN: Socket Mode could not connect within {limit}: {cause}")
        return ConfigError(
            f"SLACK_API_BASE_URL: Slack did not answer at {self.settings.api_base_url} within {limit}"
        )

    async def _connect(self) -> None:
        variable = "SLACK_BOT_TOKEN"
        if self.oauth:
            # No token of its own: each workspace's is checked by bolt as its requests come in.
            log.info("Slack (OAuth, HTTP mode) serving installs at /slack/install")
            return
        try:
            auth = await self.client.auth_test()
            log.info(
                "Slack (%s mode) connected as %s in team %s",
                self.mode,
                auth.get("user_id"),
                auth.get("team_id"),
            )
            if self.mode != "socket":
                return
            assert self.settings.app_token is not None
            variable, app_token = "SLACK_APP_TOKEN", self.settings.app_token.get_secret_value()
            # Asked here, not by the Socket Mode client, which would retry a refused token forever.
            opened = await self.client.apps_connections_open(app_token=app_token)
            self._socket = AsyncSocketModeHandler(self.app, app_token)
            self._socket.client.wss_uri = opened["url"]
            await self._socket.connect_async()  # type: ignore[no-untyped-call]
        except Exception as exc:
            error = _start_error(variable, exc, self.settings.api_base_url)
            if error is None:
                raise
            raise error from exc

    async def __aexit__(self, *exc: object) -> None:
        if self._socket is not None:
            await self._socket.close_async()  # type: ignore[no-untyped-call]
            self._socket = None

    # --- the engine's Surface -------------------------------------------------------------------

    async def progress(self, job: Job, progress: Progress) -> None:
        await self.poster.progress(job, progress)

    async def deliver(self, job: Job, images: list[OutputImage]) -> list[Post]:
        return await self.poster.deliver(job, images)

    async def withdraw(self, job: Job) -> int:
        return await self.poster.withdraw(job) + await self.reviews.withdraw(self.engine, job)

    async def tell(self, job: Job, text: str) -> None:
        await self.poster.tell(job, text)

    async def followup_origin(self, parent: Job, thread_key: str | None) -> dict[str, Any] | None:
        """A region edit's result goes in its image's thread, with no status message of its own (it
        was asked for on the editor's page, which says it was accepted)."""
        channel, thread_ts = parent.origin.get("channel"), parent.origin.get("thread_ts")
        if not channel or not thread_ts:
            return None
        return {"channel": channel, "thread_ts": thread_ts, "verb": words.EDITED_REGION}

    async def queue_for_review(self, job: Job, images: list[OutputImage]) -> None:
        await self.reviews.queue_for_review(job, images)

    async def tell_privately(self, job: Job, text: str) -> None:
        await self.reviews.tell_privately(job, text)
