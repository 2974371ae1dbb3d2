"""Slack surface: slash command, mentions in result threads, buttons, a message shortcut; HTTP or Socket Mode."""

from adapters.slack.adapter import SlackAdapter

__all__ = ["SlackAdapter"]
