"""Installing the Slack app into many workspaces by OAuth, on the bot's own store.

Installations and OAuth states live in the bot's database (storage/installations.py), not in
slack_sdk's SQLAlchemy store: that would add SQLAlchemy and a second connection, schema and
migration path beside the store the bot already has; this way a backup, a move to another backend
and the migrations cover the tokens too. bolt drives the flow and the per-request authorize; the
Poster finds a job's workspace token here (`TeamClients`), rotating it when it is about to expire.
"""

from __future__ import annotations

import logging
import secrets
from typing import TYPE_CHECKING, Any

import aiohttp
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.oauth.async_oauth_flow import AsyncOAuthFlow
from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.oauth.installation_store import Bot, Installation
from slack_sdk.oauth.installation_store.async_installation_store import AsyncInstallationStore
from slack_sdk.oauth.state_store.async_state_store import AsyncOAuthStateStore
from slack_sdk.oauth.token_rotation.async_rotator import AsyncTokenRotator
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.settings import SlackSettings
from adapters.slack.translate import EVENT_TOKENS_REVOKED, EVENT_UNINSTALLED, SURFACE
from bot.usecases.installs import BotInstall, Installations
from bot.words import APP_REMOVED

if TYPE_CHECKING:
    from bot.jobs.engine import Engine

log = logging.getLogger(__name__)
STATE_SECONDS = 600
# Refresh a rotating token this long before it expires (bolt's default for requests, too).
ROTATE_MINUTES = 120


class StoreInstallationStore(AsyncInstallationStore):
    """slack_sdk's installation store interface over the bot's store (bot tokens only: the app asks
    for no user scopes)."""

    def __init__(self, installs: Installations) -> None:
        self.installs = installs

    @property
    def logger(self) -> logging.Logger:
        return log

    async def async_save(self, installation: Installation) -> None:
        await self.async_save_bot(installation.to_bot())

    async def async_save_bot(self, bot: Bot) -> None:
        await self.installs.save(
            BotInstall(
                enterprise_id=bot.enterprise_id or "",
                team_id="" if bot.is_enterprise_install else bot.team_id or "",
                bot_token=bot.bot_token,
                app_id=bot.app_id or "",
                bot_id=bot.bot_id or "",
                bot_user_id=bot.bot_user_id or "",
                bot_scopes=",".join(bot.bot_scopes or []),
                bot_refresh_token=bot.bot_refresh_token,
                bot_token_expires_at=bot.bot_token_expires_at,
                is_enterprise_install=bool(bot.is_enterprise_install),
            )
        )

    async def async_find_bot(
        self, *, enterprise_id: str | None, team_id: str | None, is_enterprise_install: bool | None = False
    ) -> Bot | None:
        team = "" if is_enterprise_install else team_id or ""
        row = await self.installs.find(enterprise_id or "", team)
        if row is None:
            return None
        return Bot(
            app_id=row.app_id or None,
            enterprise_id=row.enterprise_id or None,
            team_id=row.team_id or None,
            bot_token=row.bot_token,
            bot_id=row.bot_id,
            bot_user_id=row.bot_user_id,
            bot_scopes=row.bot_scopes,
            bot_refresh_token=row.bot_refresh_token,
            bot_token_expires_at=row.bot_token_expires_at,
            is_enterprise_install=row.is_enterprise_install,
            installed_at=row.installed_at,
        )

    async def async_delete_bot(self, *, enterprise_id: str | None, team_id: str | None) -> None:
        await self.installs.delete(enterprise_id or "", team_id or "")

    async def async_delete_installation(
        self, *, enterprise_id: str | None, team_id: str | None, user_id: str | None = None
    ) -> None:
        # Only bot tokens are kept; an installer's own (user) token never is.
        if user_id is None:
            await self.installs.delete(enterprise_id or "", team_id or "")


class StoreStateStore(AsyncOAuthStateStore):
    """One-use `state` values with an expiry, in the store: a replayed or forged state is refused."""

    def __init__(self, installs: Installations, expiration_seconds: int = STATE_SECONDS) -> None:
        self.installs = installs
        self.expiration_seconds = expiration_seconds

    @property
    def logger(self) -> logging.Logger:
        return log

    async def async_issue(self, *args: Any, **kwargs: Any) -> str:
        state = secrets.token_urlsafe(32)
        await self.installs.issue_state(state, self.installs.store.clock() + self.expiration_seconds)
        return state

    async def async_consume(self, state: str) -> bool:
        return bool(state) and await self.installs.consume_state(state)


def oauth_settings(settings: SlackSettings, installs: Installations) -> AsyncOAuthSettings:
    assert settings.client_secret is not None
    public = settings.public_url.rstrip("/")
    # Slack's authorize page is on the same host as its Web API (slack.com/oauth/v2/authorize).
    site = settings.api_base_url.rstrip("/").removesuffix("/api")
    return AsyncOAuthSettings(
        client_id=settings.client_id,
        client_secret=settings.client_secret.get_secret_value(),
        scopes=settings.scope_list(),
        user_scopes=[],
        redirect_uri=f"{public}/slack/oauth_redirect" if public else None,
        authorization_url=f"{site}/oauth/v2/authorize",
        # /slack/install sends the installer straight on to Slack's page (no page of our own between).
        install_page_rendering_enabled=False,
        installation_store=StoreInstallationStore(installs),
        installation_store_bot_only=True,
        state_store=StoreStateStore(installs),
        state_expiration_seconds=STATE_SECONDS,
        token_rotation_expiration_minutes=ROTATE_MINUTES,
        logger=log,
    )


# Shown when the install's last step (the code exchanged at oauth.v2.access) could not reach Slack.
UNREACHABLE_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Install did not complete</title></head>
<body><h1>The install did not complete</h1>
<p>The bot could not reach Slack to finish installing the app into your workspace.
Nothing was installed. Please <a href="/slack/install">try again</a> in a moment.</p></body></html>
"""


async def finish_install(flow: AsyncOAuthFlow, request: AsyncBoltRequest) -> BoltResponse:
    """bolt's OAuth redirect, with Slack out of reach answered by a plain page and one log line:
    bolt handles Slack's refusals itself, but lets a network failure through as an exception."""
    try:
        return await flow.handle_callback(request)
    except (aiohttp.ClientError, TimeoutError) as exc:
        cause = " ".join(str(exc).split()) or type(exc).__name__
        log.warning("a Slack install did not complete: Slack could not be reached (%s)", cause)
        return BoltResponse(
            status=502, body=UNREACHABLE_PAGE, headers={"Content-Type": "text/html; charset=utf-8"}
        )


class TeamClients:
    """A Web API client with the bot token of one workspace, for the calls made outside a request
    (a job's progress, delivery and failures): the job's workspace_id is its team id."""

    def __init__(self, store: StoreInstallationStore, settings: SlackSettings, base: AsyncWebClient) -> None:
        assert settings.client_secret is not None
        self.store = store
        self.base_url = settings.api_base_url
        self.rotator = AsyncTokenRotator(
            client_id=settings.client_id, client_secret=settings.client_secret.get_secret_value(), client=base
        )
        self._clients: dict[str, AsyncWebClient] = {}

    async def __call__(self, team_id: str) -> AsyncWebClient | None:
        bot = await self.store.async_find_bot(enterprise_id=None, team_id=team_id)
        if bot is None:
            return None
        rotated = await self.rotator.perform_bot_token_rotation(
            bot=bot, minutes_before_expiration=ROTATE_MINUTES
        )
        if rotated is not None:
            await self.store.async_save_bot(rotated)
            bot = rotated
        client = self._clients.get(team_id)
        if client is None or client.token != bot.bot_token:
            client = self._clients[team_id] = AsyncWebClient(token=bot.bot_token, base_url=self.base_url)
        return client


def register_removals(app: AsyncApp, store: StoreInstallationStore | None, engine: Engine) -> None:
    """`app_uninstalled` and a revoked bot token fail the workspace's unfinished jobs with their quota
    given back (nothing can be posted there any more). With OAuth installs (`store`) the workspace's
    token is removed too; with one SLACK_BOT_TOKEN the log says that token no longer works. Both
    modes listen, so the manifest subscribes both events whatever the mode."""

    async def remove(body: dict[str, Any]) -> None:
        team = str(body.get("team_id") or "")
        enterprise = str(body.get("enterprise_id") or "")
        if store is not None:
            await store.async_delete_bot(enterprise_id=enterprise, team_id=team)
        failed = await engine.fail_workspace(SURFACE, team, APP_REMOVED) if team else 0
        if store is not None:
            log.info(
                "Slack workspace %s removed the app: tokens forgotten, %d unfinished job(s) failed",
                team,
                failed,
            )
        else:
            log.error(
                "Slack workspace %s removed the app or revoked its token: SLACK_BOT_TOKEN no longer works "
                "there; %d unfinished job(s) failed",
                team,
                failed,
            )

    async def on_uninstalled(body: dict[str, Any]) -> None:
        await remove(body)

    async def on_tokens_revoked(body: dict[str, Any], event: dict[str, Any]) -> None:
        # Only the bot's token matters: the app keeps no user tokens.
        if (event.get("tokens") or {}).get("bot"):
            await remove(body)

    app.event(EVENT_UNINSTALLED)(on_uninstalled)
    app.event(EVENT_TOKENS_REVOKED)(on_tokens_revoked)
