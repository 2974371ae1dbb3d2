"""The one error boundary of the Discord handlers, in the way bolt's `app.error` and
python-telegram-bot's error handlers work: a handler only raises, and the boundary answers. A
UserFacingError is told to the person who asked in its own words; anything else is logged with its
traceback and answered with a plain apology.

Where the answer goes is the `reply` a handler is guarded with, given the handler's first argument:
an interaction is answered ephemerally (`refuse`); a chat message gets a reply (`reply_to`), and
once the bot's progress message for it exists, that message says it instead (`warn_in`). The
boundary adds nothing before the handler runs, so every handler still acknowledges first.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Concatenate, ParamSpec, TypeVar

import discord

from bot.model.errors import UserFacingError
from bot.words import SORRY

log = logging.getLogger(__name__)


S = TypeVar("S")
T = TypeVar("T")
P = ParamSpec("P")
# A handler method: its owner, then what it answers (an interaction, a message), then the rest.
Handler = Callable[Concatenate[S, T, P], Awaitable[None]]


def guarded(reply: Callable[[T, str], Awaitable[object]]) -> Callable[[Handler[S, T, P]], Handler[S, T, P]]:
    def decorate(handler: Handler[S, T, P]) -> Handler[S, T, P]:
        @functools.wraps(handler)
        async def boundary(owner: S, subject: T, /, *args: P.args, **kwargs: P.kwargs) -> None:
            try:
                await handler(owner, subject, *args, **kwargs)
            except UserFacingError as exc:
                await reply(subject, exc.user_message)
            except Exception:
                log.exception("discord: %s failed", handler.__name__)
                await reply(subject, SORRY)

        return boundary

    return decorate


async def refuse(interaction: discord.Interaction, text: str) -> None:
    """An ephemeral answer. A public "thinking…" answer deferred for this interaction is removed
    first, so a refusal leaves nothing in the channel."""
    if not interaction.response.is_done():
        await interaction.response.send_message(text, ephemeral=True)
        return
    if interaction.response.type == discord.InteractionResponseType.deferred_channel_message:
        try:
            await interaction.delete_original_response()
        except discord.NotFound:
            pass
    await interaction.followup.send(text, ephemeral=True)


async def reply_to(message: discord.Message, text: str) -> None:
    await message.reply(text, mention_author=False)


async def warn_in(progress: discord.Message, text: str) -> None:
    await progress.edit(content=f"⚠️ {text}")
