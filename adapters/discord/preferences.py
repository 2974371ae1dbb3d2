"""`/hidream-settings` (a person's defaults in this server) and `/hidream-policy` (the server's
policy, for members with Manage Server), and the "private results" choice as Discord can honour it:
the interaction's answer, and so the result, is ephemeral."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

import discord

from adapters.discord import translate
from adapters.discord.boundary import guarded, refuse
from adapters.discord.context import interaction_actor
from adapters.discord.review import ReviewTerms
from bot.logs import Throttle
from bot.usecases import settings as usecases

if TYPE_CHECKING:
    from bot.jobs.engine import Engine

log = logging.getLogger(__name__)

PRIVATE_KEY = "hidream_private"
# The defer must go out within Discord's 3 seconds; the read of the choice gets a small part of that.
PRIVATE_READ_SECONDS = 1.0
# A slow read is said at most once a minute (with how many more there were): under a burst, or while
# the database is slow, every interaction meets it, and a line per interaction says nothing more.
_SLOW_READS = Throttle(60.0)
# /hidream-settings option -> the flag the shared settings parser knows.
SETTING_FLAGS = {"aspect": "ar", "size": "size", "model": "model", "format": "format", "count": "n"}


async def private_results(engine: Engine, interaction: discord.Interaction) -> bool:
    """The person's "private results" default here (or the channel is reviewed), remembered on the
    interaction for its origin."""
    try:
        private = await asyncio.wait_for(
            engine.private_results(
                translate.SURFACE,
                str(interaction.guild_id or ""),
                str(interaction.user.id),
                channel=interaction_actor(interaction).home_channel,
            ),
            PRIVATE_READ_SECONDS,
        )
    except TimeoutError:
        if _SLOW_READS.allow():
            log.warning(
                "the private-results default was slow to read; answering ephemerally (%d more since)",
                _SLOW_READS.take_held(),
            )
        private = True
    interaction.extras[PRIVATE_KEY] = private
    return private


def mark_private(interaction: discord.Interaction, origin: dict[str, Any]) -> dict[str, Any]:
    """The origin of a job whose answer is ephemeral says so: it gets no thread, and is never
    posted in the channel (posting.py)."""
    if interaction.extras.get(PRIVATE_KEY):
        return {**origin, "private": True, "can_thread": False}
    return origin


def settings_text(options: dict[str, Any]) -> str:
    """The typed options of /hidream-settings as the words every surface shares."""
    if options.get("reset"):
        return "reset"
    words = [
        f"--{flag} {options[name]}" for name, flag in SETTING_FLAGS.items() if options.get(name) is not None
    ]
    if options.get("private") is not None:
        words.append(f"--private {'on' if options['private'] else 'off'}")
    return " ".join(words)


class PreferenceCommands:
    """Mixed into InteractionHandlers: both answer only the person who asked, ephemerally."""

    engine: Engine

    @guarded(refuse)
    async def settings(self, interaction: discord.Interaction, options: dict[str, Any]) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        reply = await usecases.settings(self.engine, interaction_actor(interaction), settings_text(options))
        await interaction.followup.send(reply.text, ephemeral=True)

    @guarded(refuse)
    async def policy(self, interaction: discord.Interaction, action: str, value: str | None) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        text = "" if action == "show" else action if action == "reset" else f"{action} {value or ''}"
        actor, terms = interaction_actor(interaction), ReviewTerms(interaction)
        reply = await usecases.policy(self.engine, actor, text, spoilers=True, review=terms)
        await interaction.followup.send(reply.text, ephemeral=True)
