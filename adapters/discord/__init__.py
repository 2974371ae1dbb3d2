"""Discord: /hidream, the "Edit with HiDream" menu, replies and thread follow-ups, persistent buttons."""

from __future__ import annotations

import logging
import re
from types import MappingProxyType

from adapters.discord.client import DiscordAdapter
from adapters.discord.settings import DiscordSettings
from bot.logs import REDACTED
from bot.plugins import Core, SurfacePlugin

__all__ = ["DiscordAdapter", "DiscordPlugin", "DiscordSettings", "plugin"]


class DiscordPlugin(SurfacePlugin[DiscordSettings]):
    """Starts when DISCORD_TOKEN is set."""

    name = "discord"
    settings_class = DiscordSettings
    fallback = False
    public = True
    # discord.py's HTTP and webhook loggers log URLs that carry interaction tokens at DEBUG; its
    # gateway and client loggers log whole events at INFO and DEBUG.
    loggers = MappingProxyType(
        {
            "discord.http": logging.INFO,
            "discord.webhook": logging.INFO,
            "discord.gateway": logging.WARNING,
            "discord.client": logging.WARNING,
        }
    )

    # Interaction webhooks (/webhooks/<application id>/<token>, /interactions/<id>/<token>) carry the
    # token that answers a person.
    redactions = (
        (re.compile(r"(/webhooks/\d+/)[\w.~%-]+"), rf"\1{REDACTED}"),
        (re.compile(r"(/interactions/\d+/)[\w.~%-]+"), rf"\1{REDACTED}"),
    )

    def enabled(self, settings: DiscordSettings) -> bool:
        return settings.token is not None

    def build(self, core: Core, settings: DiscordSettings) -> DiscordAdapter:
        return DiscordAdapter(core.engine, settings)

    def summary(self, settings: DiscordSettings) -> str:
        return (
            f"discord (REST {settings.api_base_url}, gateway {settings.gateway_url}, "
            f"{settings.describe_shards()})"
        )


plugin = DiscordPlugin()
