"""Versions in a Discord result thread: `undo` and `history` typed there, and the Undo button. The
rules (who may undo, what undo goes back to) are the core's (bot/jobs/versions.py); this names where a
version is on Discord: a link to its message."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord

from bot.jobs.versions import ThreadCommand, Version
from bot.model.errors import BadInput
from bot.usecases import threads
from bot.usecases.access import Lookup
from bot.usecases.actor import Actor
from bot.words import NOT_A_VERSION, NOT_FOUND

if TYPE_CHECKING:
    from bot.jobs.engine import Engine


def jump_link(version: Version, guild_id: str) -> str:
    """A link to the version's message. A thread's first result sits in the channel the thread was
    opened from (its origin's channel); later ones sit in the thread itself."""
    channel = str(version.job.origin.get("channel_id") or version.thread_key)
    return f"https://discord.com/channels/{guild_id or '@me'}/{channel}/{version.post}"


def may_manage(member: object, channel: object) -> bool:
    """Whether a message's author may manage messages in its channel (moderators may undo too)."""
    permissions_for = getattr(channel, "permissions_for", None)
    if not isinstance(member, discord.Member) or permissions_for is None:
        return False
    return bool(permissions_for(member).manage_messages)


async def thread_command_text(
    engine: Engine,
    actor: Actor,
    command: ThreadCommand,
    thread_key: str,
    *,
    from_job: str | None = None,
) -> str:
    """The answer to `undo` or `history` in a thread. Raises BadInput (nothing changed) to refuse."""

    def link(v: Version) -> str:
        return jump_link(v, actor.workspace_id)

    reply = await threads.thread_command(engine.versions, actor, command, thread_key, link, from_job=from_job)
    return reply.text


async def thread_of_job(lookup: Lookup, actor: Actor, job_id: str) -> str:
    if await lookup.job(actor, job_id) is None:
        raise BadInput(NOT_FOUND)
    thread = await lookup.thread_of(actor, job_id)
    if thread is None:
        raise BadInput(NOT_A_VERSION)
    return thread
