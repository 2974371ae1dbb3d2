"""Slack surface: slash command, mentions in result threads, buttons, a message shortcut; HTTP or Socket Mode."""

from __future__ import annotations

from aiohttp import web

from adapters.slack.adapter import SlackAdapter
from adapters.slack.settings import SlackSettings
from bot.plugins import Core, SurfaceAdapter, SurfacePlugin

__all__ = ["SlackAdapter", "SlackPlugin", "SlackSettings", "plugin"]


class SlackPlugin(SurfacePlugin[SlackSettings]):
    """Starts when SLACK_BOT_TOKEN is set with SLACK_APP_TOKEN (Socket Mode) or SLACK_SIGNING_SECRET (HTTP)."""

    name = "slack"
    settings_class = SlackSettings
    fallback = False

    def enabled(self, settings: SlackSettings) -> bool:
        return settings.enabled

    def build(self, core: Core, settings: SlackSettings) -> SlackAdapter:
        return SlackAdapter(settings, core.engine)

    def add_routes(self, app: web.Application, surface: SurfaceAdapter) -> None:
        assert isinstance(surface, SlackAdapter)
        surface.register_routes(app)

    def summary(self, settings: SlackSettings) -> str:
        how = "Socket Mode" if settings.mode == "socket" else "HTTP mode at POST /slack/events"
        return f"slack ({how}, Web API {settings.api_base_url})"

    def warnings(self, settings: SlackSettings) -> list[str]:
        if settings.bot_token is not None and not settings.enabled:
            return [
                "SLACK_BOT_TOKEN is set but neither SLACK_APP_TOKEN nor SLACK_SIGNING_SECRET: Slack stays off"
            ]
        if settings.mode == "http" and not settings.public_url:
            return [
                "Slack is in HTTP mode but HIDREAM_PUBLIC_URL is empty: Slack cannot reach the bot unless a "
                "proxy forwards https://<public host>/slack/events to it; set HIDREAM_PUBLIC_URL to that "
                "address, or use Socket Mode (SLACK_APP_TOKEN)"
            ]
        return []


plugin = SlackPlugin()
