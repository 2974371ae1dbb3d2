"""Discord: /hidream, the "Edit with HiDream" menu, replies and thread follow-ups, persistent buttons."""

from __future__ import annotations

from typing import Any

from adapters.discord.client import DiscordAdapter

__all__ = ["DiscordAdapter", "make_surface"]


def make_surface(bot: Any) -> DiscordAdapter:
    """The factory bot.cli uses: `bot` is the running core (bot.app.Bot)."""
    return DiscordAdapter(bot.engine, bot.settings)
