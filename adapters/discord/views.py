"""Buttons, modals and the `origin` a Discord job carries: everything needed to answer it later,
in this process or in the next one.

Buttons and modals are never kept in discord.py's view store: their custom ids carry the job (or
the target message), and the adapter answers them from the store, so they work after a restart.
"""

from __future__ import annotations

from typing import Any

import discord

from adapters.discord.translate import INSTRUCTION_FIELD, KEEP_FIELD, TEXT_INPUT_MAX, make_custom_id
from bot import words
from bot.model.jobs import Job
from bot.usecases.actions import Weight, result_actions
from bot.usecases.remix import Form

DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024
# Interaction tokens live 15 minutes; leave a margin for the request in flight.
TOKEN_LIFETIME = 14 * 60
THREAD_TYPES = (discord.ChannelType.public_thread, discord.ChannelType.private_thread)
THREADABLE = (discord.ChannelType.text, discord.ChannelType.news)


# The custom id action of a set's confirmation button.
CONFIRM_SET = "confirmset"
# The custom id action of a Remix form; its job follows it.
REMIX_FORM = "remixjob"

# How Discord weighs each action the core offers; the ids are the persistent custom ids.
_STYLES = {
    Weight.MAIN: discord.ButtonStyle.primary,
    Weight.PLAIN: discord.ButtonStyle.secondary,
    Weight.DANGER: discord.ButtonStyle.danger,
}


def result_view(job: Job) -> discord.ui.View:
    """The job's actions (bot/usecases/actions.py) as buttons whose custom ids name the job."""
    view = discord.ui.View(timeout=None)
    for action in result_actions(job):
        view.add_item(
            discord.ui.Button(
                label=action.label,
                emoji=action.emoji or None,
                style=_STYLES[action.weight],
                custom_id=make_custom_id(action.kind.value, job.id),
            )
        )
    # A stopped view is still rendered but not stored: presses are answered from the custom id.
    view.stop()
    return view


def confirm_set_view(set_id: str) -> discord.ui.View:
    """The one button that confirms a held set (bot/usecases/sets.py); its custom id names the set."""
    view = discord.ui.View(timeout=None)
    view.add_item(
        discord.ui.Button(
            label=words.ACTION_CONFIRM_SET,
            emoji="✅",
            style=discord.ButtonStyle.primary,
            custom_id=make_custom_id(CONFIRM_SET, set_id),
        )
    )
    view.stop()
    return view


def set_origins(origin: dict[str, Any], count: int) -> list[dict[str, Any]]:
    """Where each job of a set is answered: the first in the interaction's own message, the others
    as messages of their own in the same channel (each with its buttons, and its thread)."""
    return [origin if index == 0 else {**origin, "message_id": None} for index in range(count)]


def instruction_modal(custom_id: str, *, title: str = words.EDIT_MENU) -> discord.ui.Modal:
    modal = discord.ui.Modal(title=title, custom_id=custom_id, timeout=None)
    modal.add_item(
        discord.ui.TextInput(
            label=words.EDIT_FIELD,
            custom_id=INSTRUCTION_FIELD,
            style=discord.TextStyle.paragraph,
            placeholder=words.EDIT_PLACEHOLDER,
            max_length=2000,
        )
    )
    # Not stored either: the submission is handled from its custom id, even after a restart.
    modal.stop()
    return modal


def remix_modal(job_id: str, form: Form) -> discord.ui.Modal:
    """The Remix form: the request as typed, to change, and a tick box to keep the image (a checkbox in
    a label, as Discord's modals take them). Its custom id names the job, so it outlives a restart."""
    modal = discord.ui.Modal(
        title=words.REMIX_FORM, custom_id=make_custom_id(REMIX_FORM, job_id), timeout=None
    )
    text = discord.ui.TextInput[discord.ui.Modal](
        custom_id=INSTRUCTION_FIELD,
        style=discord.TextStyle.paragraph,
        default=form.text[:TEXT_INPUT_MAX],
        max_length=TEXT_INPUT_MAX,
    )
    modal.add_item(discord.ui.Label(text=words.REMIX_FIELD, component=text))
    keep = discord.ui.Checkbox[discord.ui.Modal](custom_id=KEEP_FIELD, default=form.keep)
    modal.add_item(discord.ui.Label(text=words.REMIX_KEEP, description=words.REMIX_KEEP_HINT, component=keep))
    modal.stop()
    return modal


def _channel_facts(channel: Any, guild: discord.Guild | None, app_can_thread: bool) -> dict[str, Any]:
    ctype = getattr(channel, "type", None)
    in_thread = ctype in THREAD_TYPES
    nsfw_check = getattr(channel, "is_nsfw", None)
    return {
        "guild_id": str(guild.id) if guild else None,
        "in_thread": in_thread,
        "nsfw": bool(nsfw_check()) if callable(nsfw_check) else False,
        "can_thread": bool(guild) and app_can_thread and ctype in THREADABLE,
    }


def interaction_origin(
    interaction: discord.Interaction, message_id: int | None, now: float
) -> dict[str, Any]:
    """Where to answer an interaction: its token (edit the deferred answer while it lives), then the channel."""
    facts = _channel_facts(
        interaction.channel, interaction.guild, interaction.app_permissions.create_public_threads
    )
    return {
        "kind": "interaction",
        "app_id": str(interaction.application_id),
        "token": interaction.token,
        "token_at": now,
        "message_id": str(message_id) if message_id else None,
        "channel_id": str(interaction.channel_id),
        "upload_limit": int(interaction.filesize_limit or DEFAULT_UPLOAD_LIMIT),
        **facts,
    }


def message_origin(message: discord.Message, progress_id: int) -> dict[str, Any]:
    """Where to answer a chat message: the progress reply the bot posted, edited into the result."""
    guild = message.guild
    can_thread = False
    if guild is not None and hasattr(message.channel, "permissions_for"):
        can_thread = message.channel.permissions_for(guild.me).create_public_threads
    return {
        "kind": "message",
        "message_id": str(progress_id),
        "reply_to": str(message.id),
        "channel_id": str(message.channel.id),
        "upload_limit": int(guild.filesize_limit) if guild else DEFAULT_UPLOAD_LIMIT,
        **_channel_facts(message.channel, guild, can_thread),
    }


def token_alive(origin: dict[str, Any], now: float) -> bool:
    return origin.get("kind") == "interaction" and now - float(origin.get("token_at") or 0) < TOKEN_LIFETIME
