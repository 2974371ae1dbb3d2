"""What the Discord handlers need, and nothing more. DiscordAdapter builds it (again when it rebuilds
its client without the message-content intent), so the handlers never hold or import the adapter."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import discord

if TYPE_CHECKING:
    from bot.jobs.engine import Engine


@dataclass(frozen=True)
class HandlerContext:
    engine: Engine
    # Stamps an interaction's token, which lives 15 minutes.
    clock: Callable[[], float]
    # The bot's own user id: known only once the gateway is ready, so it is asked each time.
    bot_id: Callable[[], str]
    # A channel message as Discord's API returns it, with fresh attachment links.
    fetch_message: Callable[[int, int], Awaitable[dict[str, Any]]]
    max_image_bytes: int


def raw_payload(interaction: discord.Interaction) -> dict[str, Any]:
    """The parts of the interaction payload translate.py reads (discord.py keeps `data` raw)."""
    return {
        "data": dict(interaction.data or {}),
        "guild_id": str(interaction.guild_id) if interaction.guild_id else None,
        "user": {"id": str(interaction.user.id)},
        "channel_id": str(interaction.channel_id),
    }
