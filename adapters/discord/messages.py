"""Chat messages: a mention asks for an image; a reply with a mention edits the replied image; in a
thread the bot opened for a result, the requester's messages edit the thread's latest image."""

from __future__ import annotations

import logging
from typing import Any

import discord

from adapters.discord import translate
from adapters.discord.context import HandlerContext
from adapters.discord.views import message_origin
from bot.errors import BadInput, UserFacingError
from bot.jobs import Job
from bot.requests import ImageRef

log = logging.getLogger(__name__)


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

    async def handle(self, message: discord.Message) -> None:
        if message.author.bot:
            return
        ask = translate.read_message(message_payload(message), self.ctx.bot_id())
        if ask is None:
            return
        try:
            found = await self._references(message, ask)
        except UserFacingError as exc:
            await message.reply(exc.user_message, mention_author=False)
            return
        if found is None:
            return
        refs, parent = found
        try:
            chat = translate.text_request(
                ask.text,
                user_id=ask.user_id,
                workspace_id=ask.guild_id or "",
                origin={},
                references=refs,
                parent_job_id=parent.id if parent else None,
            )
        except BadInput as exc:
            await message.reply(exc.user_message, mention_author=False)
            return
        await self._submit(message, chat)

    async def _references(
        self, message: discord.Message, ask: translate.MessageAsk
    ) -> tuple[list[ImageRef], Job | None] | None:
        """What the message edits; None when it asks nothing of the bot."""
        if ask.mentioned and ask.reply_to_id:
            return await self._replied_image(message, ask)
        # Only threads that carry a delivered result answer this, whatever discord.py's cache knows.
        if message.guild is not None and ask.text:
            latest = await self.engine.latest_job_in_thread(translate.SURFACE, ask.channel_id)
            if (
                latest is not None
                and latest.result_media
                and (ask.mentioned or latest.user_id == ask.user_id)
            ):
                return self.engine.references_of(latest, 0), latest
        if not ask.mentioned:
            return None
        refs = translate.image_refs(ask.images, max_bytes=self.ctx.max_image_bytes)
        return refs, None

    async def _replied_image(
        self, message: discord.Message, ask: translate.MessageAsk
    ) -> tuple[list[ImageRef], Job | None]:
        assert ask.reply_to_id is not None
        job = await self.engine.job_for_post(translate.SURFACE, ask.reply_to_id)
        if job is not None and job.result_media:
            return self.engine.references_of(job, 0), job
        replied = ask.reply_to
        if replied is None or not replied.get("attachments"):
            # Discord leaves the embedded copy out sometimes; its attachment links may also be stale.
            try:
                replied = await self.ctx.fetch_message(message.channel.id, int(ask.reply_to_id))
            except discord.NotFound:
                raise BadInput("The message you replied to is gone; nothing to edit.") from None
        images = translate.image_attachments(replied)
        if not images:
            raise BadInput(
                "The message you replied to has no image: reply to an image and say what to change."
            )
        max_bytes = self.ctx.max_image_bytes
        return translate.image_refs(images[: translate.MAX_REFERENCES], max_bytes=max_bytes), None

    async def _is_result_thread(self, channel_id: str) -> bool:
        return await self.engine.latest_job_in_thread(translate.SURFACE, channel_id) is not None

    async def _submit(self, message: discord.Message, chat: Any) -> None:
        # The bot's reply is the acknowledgement and becomes the progress line, then the result.
        progress = await message.reply("⏳ Queued…", mention_author=False)
        origin = message_origin(message, progress.id)
        if chat.parent_job_id is not None and await self._is_result_thread(str(message.channel.id)):
            origin["in_thread"] = True
        try:
            await self.engine.submit(
                chat.model_copy(update={"origin": origin}), dedup_key=f"discord:m{message.id}"
            )
        except UserFacingError as exc:
            await progress.edit(content=f"⚠️ {exc.user_message}")
        except Exception:
            log.exception("discord: submit from a message failed")
            await progress.edit(
                content="⚠️ Something went wrong on my side; nothing was spent. Please try again."
            )
