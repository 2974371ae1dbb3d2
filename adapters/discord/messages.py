"""Chat messages: a mention asks for an image; a reply with a mention edits the replied image; in a
thread the bot opened for a result, the requester's messages edit the thread's latest image."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import discord

from adapters.discord import translate, versions
from adapters.discord.boundary import guarded, reply_to, warn_in
from adapters.discord.context import HandlerContext, message_actor, parent_of
from adapters.discord.views import message_origin
from bot import words
from bot.jobs.versions import ThreadCommand, thread_command
from bot.model.errors import BadInput
from bot.model.jobs import Job
from bot.model.requests import MAX_REFERENCES, ChatRequest, ImageRef
from bot.usecases.actor import Actor
from bot.usecases.make import make, result_references
from bot.words import NOT_FOUND, REPLIED_GONE, REPLIED_NO_IMAGE


async def requester(message: discord.Message) -> Actor:
    """Who asks, with their thread's parent channel even when discord.py was never told of the thread
    (then it is asked of Discord): a thread of a reviewed channel is reviewed as the channel is."""
    actor = message_actor(message)
    if message.guild is None or not isinstance(message.channel, discord.PartialMessageable):
        return actor
    try:
        channel = await message.guild.fetch_channel(message.channel.id)
    except (discord.HTTPException, discord.InvalidData):
        return actor
    return replace(actor, parent_channel_id=parent_of(channel))


def message_payload(message: discord.Message, *, depth: int = 0) -> dict[str, Any]:
    """A discord.py Message back in MESSAGE_CREATE shape, for the pure functions in translate.py."""
    payload: dict[str, Any] = {
        "id": str(message.id),
        "channel_id": str(message.channel.id),
        "guild_id": str(message.guild.id) if message.guild else None,
        "author": {"id": str(message.author.id), "bot": message.author.bot},
        "content": message.content,
        "type": message.type.value,
        "mentions": [{"id": str(u.id)} for u in message.mentions],
        "attachments": [dict(a.to_dict()) for a in message.attachments],
        "webhook_id": str(message.webhook_id) if message.webhook_id else None,
    }
    ref = message.reference
    if ref is not None and ref.message_id is not None:
        payload["message_reference"] = {"message_id": str(ref.message_id), "channel_id": str(ref.channel_id)}
        if depth == 0 and isinstance(ref.resolved, discord.Message):
            payload["referenced_message"] = message_payload(ref.resolved, depth=1)
    return payload


class MessageHandler:
    def __init__(self, ctx: HandlerContext) -> None:
        self.ctx = ctx
        self.engine = ctx.engine
        self.lookup = ctx.lookup

    async def handle(self, message: discord.Message) -> None:
        if message.author.bot:
            return
        ask = translate.read_message(message_payload(message), self.ctx.bot_id())
        if ask is None:
            return
        command = thread_command(ask.text) if message.guild and not ask.reply_to_id else None
        if command is not None and await self._thread_command(message, ask, command):
            return
        # Whether the message asks anything of the bot is settled outside the boundary: a failure
        # there must not answer a message that was never meant for the bot.
        follow_up = None if ask.mentioned and ask.reply_to_id else await self._thread_result(message, ask)
        if follow_up is None and not ask.mentioned:
            return
        await self._answer(message, ask, follow_up)

    async def _thread_command(
        self, message: discord.Message, ask: translate.MessageAsk, command: ThreadCommand
    ) -> bool:
        """`undo` or `history` in a result thread: from its requesters without a mention (as their
        edits are), from anyone with one. False when the message is no such command here."""
        requesters = await self.engine.versions.requesters(translate.SURFACE, ask.channel_id)
        if not requesters:
            return False
        if not ask.mentioned and ask.user_id not in requesters:
            return False
        await self._answer_command(message, ask, command)
        return True

    @guarded(reply_to)
    async def _answer_command(
        self, message: discord.Message, ask: translate.MessageAsk, command: ThreadCommand
    ) -> None:
        actor = message_actor(message, moderator=versions.may_manage(message.author, message.channel))
        text = await versions.thread_command_text(self.engine, actor, command, ask.channel_id)
        await message.reply(text, mention_author=False)

    async def _thread_result(self, message: discord.Message, ask: translate.MessageAsk) -> Job | None:
        """The result a message in a result's thread edits: the thread's latest image."""
        # Only threads that carry a delivered result answer this, whatever discord.py's cache knows.
        if message.guild is None or not ask.text:
            return None
        latest = await self.lookup.latest_in_thread(message_actor(message), ask.channel_id)
        if latest is not None and latest.result_media and (ask.mentioned or latest.user_id == ask.user_id):
            return latest
        return None

    @guarded(reply_to)
    async def _answer(
        self, message: discord.Message, ask: translate.MessageAsk, follow_up: Job | None
    ) -> None:
        refs: list[ImageRef]
        parent: Job | None
        if follow_up is not None:
            refs, parent = result_references(follow_up, 0), follow_up
        elif ask.reply_to_id:
            refs, parent = await self._replied_image(message, ask)
        else:
            refs, parent = translate.image_refs(ask.images, max_bytes=self.ctx.max_image_bytes), None
        chat = translate.text_request(
            ask.text,
            user_id=ask.user_id,
            workspace_id=ask.guild_id or "",
            origin={},
            references=refs,
            parent_job_id=parent.id if parent else None,
        )
        # The bot's reply is the acknowledgement and becomes the progress line, then the result.
        progress = await message.reply(f"⏳ {words.CHECKING}", mention_author=False)
        await self._submit(progress, message, chat)

    async def _replied_image(
        self, message: discord.Message, ask: translate.MessageAsk
    ) -> tuple[list[ImageRef], Job | None]:
        assert ask.reply_to_id is not None
        # A reply sits in the channel of the message it answers; a reference to a message anywhere
        # else (another server's, say) names nothing this person may edit here.
        if ask.reply_to_channel_id not in (None, ask.channel_id):
            raise BadInput(NOT_FOUND)
        job = await self.lookup.job_for_post(message_actor(message), ask.reply_to_id)
        if job is not None and job.result_media:
            return result_references(job, 0), job
        replied = ask.reply_to
        if replied is None or not replied.get("attachments"):
            # Discord leaves the embedded copy out sometimes; its attachment links may also be stale.
            try:
                replied = await self.ctx.fetch_message(message.channel.id, int(ask.reply_to_id))
            except discord.NotFound:
                raise BadInput(REPLIED_GONE) from None
        images = translate.image_attachments(replied)
        if not images:
            raise BadInput(REPLIED_NO_IMAGE)
        max_bytes = self.ctx.max_image_bytes
        return translate.image_refs(images[:MAX_REFERENCES], max_bytes=max_bytes), None

    async def _is_result_thread(self, message: discord.Message) -> bool:
        return await self.lookup.latest_in_thread(message_actor(message), str(message.channel.id)) is not None

    @guarded(warn_in)
    async def _submit(self, progress: discord.Message, message: discord.Message, chat: ChatRequest) -> None:
        origin = message_origin(message, progress.id)
        if chat.parent_job_id is not None and await self._is_result_thread(message):
            origin["in_thread"] = True
        chat = chat.model_copy(update={"origin": origin})
        await make(self.engine, await requester(message), chat, dedup_key=f"discord:m{message.id}")
