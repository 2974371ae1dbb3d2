"""Slack surface: slash command, mentions in result threads, buttons, a message shortcut; HTTP or Socket Mode."""

from __future__ import annotations

from typing import Any

from adapters.slack.adapter import SlackAdapter

__all__ = ["SlackAdapter", "make_surface"]


def make_surface(bot: Any) -> SlackAdapter:
    """The factory bot.cli uses: `bot` is the running core (bot.app.Bot). The route is added here
    because the server starts after every factory has run."""
    adapter = SlackAdapter(bot.settings, bot.engine)
    adapter.register_routes(bot.server.app)
    return adapter
