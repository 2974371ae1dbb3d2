"""What the Discord handlers need, and nothing more. DiscordAdapter builds it (again when it rebuilds
its client without the message-content intent), so the handlers never hold or import the adapter."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import discord

from adapters.discord.translate import SURFACE
from bot.usecases.access import Lookup
from bot.usecases.actor import Actor

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

    @property
    def lookup(self) -> Lookup:
        return Lookup(self.engine)


def raw_payload(interaction: discord.Interaction) -> dict[str, Any]:
    """The parts of the interaction payload translate.py reads (discord.py keeps `data` raw)."""
    return {
        "data": dict(interaction.data or {}),
        "guild_id": str(interaction.guild_id) if interaction.guild_id else None,
        "user": {"id": str(interaction.user.id)},
        "channel_id": str(interaction.channel_id),
    }


def parent_of(channel: object) -> str:
    """The channel a thread belongs to (its policies, such as review, hold in it); "" elsewhere."""
    return str(channel.parent_id) if isinstance(channel, discord.Thread) else ""


def interaction_actor(interaction: discord.Interaction) -> Actor:
    """Who pressed, typed or submitted: their server (none in a DM), what they may manage there, and
    the channel they did it in."""
    permissions = interaction.permissions
    in_guild = interaction.guild_id is not None
    return Actor(
        surface=SURFACE,
        workspace_id=str(interaction.guild_id or ""),
        user_id=str(interaction.user.id),
        admin=in_guild and permissions.manage_guild,
        moderator=permissions.manage_messages,
        channel_id=str(interaction.channel_id or ""),
        age_restricted=bool(getattr(interaction.channel, "nsfw", False)),
        parent_channel_id=parent_of(interaction.channel),
    )


def message_actor(message: discord.Message, *, moderator: bool = False) -> Actor:
    return Actor(
        surface=SURFACE,
        workspace_id=str(message.guild.id) if message.guild else "",
        user_id=str(message.author.id),
        moderator=moderator,
        channel_id=str(message.channel.id),
        age_restricted=bool(getattr(message.channel, "nsfw", False)),
        parent_channel_id=parent_of(message.channel),
    )
