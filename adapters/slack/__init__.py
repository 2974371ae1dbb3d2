"""Slack surface: slash command, mentions in result threads, buttons, a message shortcut; HTTP or Socket Mode."""

from __future__ import annotations

import logging
import re
from types import MappingProxyType

from aiohttp import web

from adapters.slack.adapter import SlackAdapter
from adapters.slack.settings import SlackSettings
from bot import words
from bot.logs import REDACTED
from bot.plugins import Core, SurfaceAdapter, SurfacePlugin

__all__ = ["SlackAdapter", "SlackPlugin", "SlackSettings", "plugin"]

# The settings that start Slack, together.
STARTS_WITH = (
    "SLACK_BOT_TOKEN and SLACK_APP_TOKEN (Socket Mode) or SLACK_SIGNING_SECRET (HTTP mode), or with "
    "SLACK_CLIENT_ID, SLACK_CLIENT_SECRET and SLACK_SIGNING_SECRET (installs by OAuth)"
)


class SlackPlugin(SurfacePlugin[SlackSettings]):
    """Starts when SLACK_BOT_TOKEN is set with SLACK_APP_TOKEN (Socket Mode) or SLACK_SIGNING_SECRET (HTTP),
    or, installed into many workspaces by OAuth, with SLACK_CLIENT_ID, SLACK_CLIENT_SECRET and
    SLACK_SIGNING_SECRET (HTTP)."""

    name = "slack"
    settings_class = SlackSettings
    fallback = False
    public = True
    # slack_sdk logs request and response bodies at DEBUG (Socket Mode URLs, upload URLs). bolt logs
    # whole envelopes at DEBUG (the verification token, response URLs) and, at INFO, the body of every
    # request whose signature is wrong or missing: anyone could fill the disk with it or write lines of
    # their own into the log. The adapter refuses such requests before bolt sees them (so an embedding
    # that sets no levels is safe too); these levels keep the DEBUG envelopes out. Only this parent's
    # level holds: bolt's middleware loggers take their own level from the app's logger when the app
    # is built, after the CLI set levels.
    loggers = MappingProxyType({"slack_sdk": logging.INFO, "slack_bolt": logging.WARNING})

    # Tokens, response URLs and Socket Mode tickets.
    redactions = (
        (re.compile(r"\b(?:xox[a-z]|xapp|xoxe\.xox[a-z])-[\w-]+"), REDACTED),
        (re.compile(r"(hooks\.slack\.com/)[^\s'\"]+"), rf"\1{REDACTED}"),
        (re.compile(r"([?&]ticket=)[^&\s'\"]+"), rf"\1{REDACTED}"),
    )

    def enabled(self, settings: SlackSettings) -> bool:
        return settings.enabled

    def refusal(self, settings: SlackSettings) -> str | None:
        """Slack's credentials given in part: the bot would start without Slack, so it does not start."""
        if settings.enabled:
            return None
        given = [
            f"SLACK_{name.upper()}"
            for name in ("bot_token", "app_token", "signing_secret", "client_id", "client_secret")
            if getattr(settings, name)
        ]
        return words.surface_in_part("Slack", given, STARTS_WITH) if given else None

    def keeps_installs(self, settings: SlackSettings) -> bool:
        return settings.oauth

    def build(self, core: Core, settings: SlackSettings) -> SlackAdapter:
        return SlackAdapter(settings, core.engine)

    def add_routes(self, app: web.Application, surface: SurfaceAdapter) -> None:
        assert isinstance(surface, SlackAdapter)
        surface.register_routes(app)

    def summary(self, settings: SlackSettings) -> str:
        how = "Socket Mode" if settings.mode == "socket" else "HTTP mode at POST /slack/events"
        if settings.oauth:
            how += ", OAuth installs at GET /slack/install, a bot token per workspace"
        return f"slack ({how}, Web API {settings.api_base_url})"

    def warnings(self, settings: SlackSettings) -> list[str]:
        notes = []
        if settings.oauth and settings.bot_token is not None:
            notes.append(
                "SLACK_BOT_TOKEN is not used in OAuth mode: each workspace's token comes from its install"
            )
        if settings.oauth and settings.app_token is not None:
            notes.append("SLACK_APP_TOKEN is not used in OAuth mode, which runs in HTTP mode only")
        if bool(settings.client_id) != (settings.client_secret is not None):
            notes.append("SLACK_CLIENT_ID and SLACK_CLIENT_SECRET go together: OAuth mode stays off")
        return notes + self._mode_warnings(settings)

    def _mode_warnings(self, settings: SlackSettings) -> list[str]:
        # (Credentials given in part are no warning: `refusal` stops the start.)
        if settings.mode == "http" and not settings.public_url and settings.oauth:
            return [
                "Slack OAuth mode but HIDREAM_PUBLIC_URL is empty: Slack cannot reach the bot unless a proxy "
                "forwards https://<public host>/slack/events and /slack/oauth_redirect to it, and installs "
                "return to the app's own Redirect URL; set HIDREAM_PUBLIC_URL to that address"
            ]
        if settings.mode == "http" and not settings.public_url:
            return [
                "Slack is in HTTP mode but HIDREAM_PUBLIC_URL is empty: Slack cannot reach the bot unless a "
                "proxy forwards https://<public host>/slack/events to it; set HIDREAM_PUBLIC_URL to that "
                "address, or use Socket Mode (SLACK_APP_TOKEN)"
            ]
        return []


plugin = SlackPlugin()
