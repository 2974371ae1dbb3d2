"""Slash commands, the context menu, modals and buttons. Each acknowledges Discord first (defer or a
modal), then does store, file or provider work. Refusals are ephemeral, in plain words: a handler
raises, and its boundary (boundary.py) answers."""

from __future__ import annotations

from typing import Any

import discord

from adapters.discord import translate, versions
from adapters.discord.boundary import guarded, refuse
from adapters.discord.context import HandlerContext, raw_payload
from adapters.discord.help import HELP_TEXT, asks_for_help
from adapters.discord.preferences import PreferenceCommands, mark_private, private_results
from adapters.discord.subjects import SubjectCommands
from adapters.discord.views import instruction_modal, interaction_origin
from bot.jobs.quota_policy import usage_text
from bot.model.errors import BadInput
from bot.model.requests import MAX_REFERENCES, ChatRequest, ImageRef

NO_IMAGE = "That message has no image I can edit: use it on a message with a PNG, JPEG, WebP or GIF attached."
GONE = "I no longer have that image; run /hidream again."


class InteractionHandlers(PreferenceCommands):
    def __init__(self, ctx: HandlerContext) -> None:
        self.ctx = ctx
        self.engine = ctx.engine
        self.subjects = SubjectCommands(ctx)

    async def _defer(self, interaction: discord.Interaction) -> int | None:
        # Whether the answer is ephemeral is fixed by the defer: the person's "private results" default
        # is read first (one small indexed row; ephemeral when the read is slow, never public by mistake).
        private = await private_results(self.engine, interaction)
        answer = await interaction.response.defer(thinking=True, ephemeral=private)
        return answer.message_id if answer is not None else None

    async def _submit(
        self, interaction: discord.Interaction, message_id: int | None, chat: ChatRequest
    ) -> None:
        origin = interaction_origin(interaction, message_id, self.ctx.clock())
        chat = chat.model_copy(update={"origin": mark_private(interaction, origin)})
        await self.engine.submit(chat, dedup_key=f"discord:{interaction.id}")

    @guarded(refuse)
    async def slash(self, interaction: discord.Interaction) -> None:
        # Pure checks of the options and attachment metadata: no I/O before the acknowledgement. A
        # refusal here is answered before anything is deferred.
        payload = raw_payload(interaction)
        if asks_for_help(payload):
            await self.help(interaction)
            return
        chat = translate.slash_request(payload, origin={}, max_bytes=self.ctx.max_image_bytes)
        await self._submit(interaction, await self._defer(interaction), chat)

    @guarded(refuse)
    async def context_menu(self, interaction: discord.Interaction) -> None:
        target = translate.context_target(raw_payload(interaction))
        ours = str((target.get("author") or {}).get("id")) == self.ctx.bot_id()
        if not translate.image_attachments(target) and not ours:
            await interaction.response.send_message(NO_IMAGE, ephemeral=True)
            return
        custom_id = translate.make_custom_id("ctx", str(target["channel_id"]), str(target["id"]))
        await interaction.response.send_modal(instruction_modal(custom_id))

    @guarded(refuse)
    async def component(self, interaction: discord.Interaction) -> None:
        """Buttons and modal submissions, answered from their custom id (so they outlive a restart)."""
        parsed = translate.parse_custom_id(str(raw_payload(interaction)["data"].get("custom_id", "")))
        if parsed is None:
            return
        action, args = parsed
        if action in ("reroll", "vary"):
            await self._reroll(interaction, args[0], vary=action == "vary")
        elif action == "undo":
            await self._undo(interaction, args[0])
        elif action == "edit":
            await interaction.response.send_modal(
                instruction_modal(translate.make_custom_id("editjob", args[0]))
            )
        elif action == "delete":
            await self._delete(interaction, args[0])
        elif action in ("ctx", "editjob"):
            await self._edit_submitted(interaction, action, args)
        elif action == "subject":
            await self.subjects.ask_name(interaction, args[0])
        elif action == "subjectname":
            await self.subjects.save_result(interaction, args[0])

    async def _reroll(self, interaction: discord.Interaction, job_id: str, *, vary: bool = False) -> None:
        message_id = await self._defer(interaction)
        job = await self.engine.job(job_id)
        if job is None:
            await refuse(interaction, GONE)
            return
        origin = mark_private(interaction, interaction_origin(interaction, message_id, self.ctx.clock()))
        again = self.engine.vary if vary else self.engine.reroll
        await again(
            job, user_id=str(interaction.user.id), origin=origin, dedup_key=f"discord:{interaction.id}"
        )

    async def _undo(self, interaction: discord.Interaction, job_id: str) -> None:
        """The Undo button: the version before this one becomes the one the thread's next
        instruction edits; said in the thread, where it changes what everyone's next edit starts from."""
        await interaction.response.defer()
        text = await versions.thread_command_text(
            self.engine,
            "undo",
            thread_key=await versions.thread_of_job(self.engine, job_id),
            user_id=str(interaction.user.id),
            guild_id=str(interaction.guild_id or ""),
            admin=interaction.permissions.manage_messages,
            from_job=job_id,
        )
        await interaction.followup.send(text)

    async def _delete(self, interaction: discord.Interaction, job_id: str) -> None:
        await interaction.response.defer()
        job = await self.engine.job(job_id)
        allowed = interaction.permissions.manage_messages or (
            job is not None and job.user_id == str(interaction.user.id)
        )
        if not allowed:
            text = (
                "Only the person who asked for this image, or someone who can manage messages, can delete it."
            )
            await interaction.followup.send(text, ephemeral=True)
            return
        if interaction.message is not None:
            try:
                await interaction.message.delete()
            except discord.NotFound:
                pass
        if job is not None:
            await self.engine.mark_deleted(job)

    async def _edit_submitted(self, interaction: discord.Interaction, action: str, args: list[str]) -> None:
        instruction = translate.modal_value(raw_payload(interaction))
        message_id = await self._defer(interaction)
        parent = None
        if action == "editjob":
            parent = await self.engine.job(args[0])
            if parent is None or not parent.result_media:
                await refuse(interaction, GONE)
                return
            refs = self.engine.references_of(parent, 0)
        else:
            refs, parent = await self._target_references(int(args[0]), int(args[1]))
        chat = translate.text_request(
            instruction,
            user_id=str(interaction.user.id),
            workspace_id=str(interaction.guild_id or ""),
            origin={},
            references=refs,
            parent_job_id=parent.id if parent else None,
        )
        await self._submit(interaction, message_id, chat)

    async def _target_references(self, channel_id: int, message_id: int) -> tuple[list[ImageRef], Any]:
        """A result of ours: the image the bot holds. Anyone's message: its attachments, fetched fresh
        (Discord's attachment links expire)."""
        job = await self.engine.job_for_post(translate.SURFACE, str(message_id))
        if job is not None and job.result_media:
            return self.engine.references_of(job, 0), job
        try:
            raw = await self.ctx.fetch_message(channel_id, message_id)
        except discord.NotFound:
            raise BadInput("That message is gone; nothing to edit.") from None
        images = translate.image_attachments(raw)
        if not images:
            raise BadInput(NO_IMAGE)
        refs = translate.image_refs(images[:MAX_REFERENCES], max_bytes=self.ctx.max_image_bytes)
        return refs, None

    @guarded(refuse)
    async def help(self, interaction: discord.Interaction) -> None:
        # Answered at once, privately: no defer, nothing stored, nothing counted.
        await interaction.response.send_message(HELP_TEXT, ephemeral=True)

    @guarded(refuse)
    async def usage(self, interaction: discord.Interaction, _: None) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        status = await self.engine.quota(
            translate.SURFACE, str(interaction.user.id), str(interaction.guild_id or "")
        )
        await interaction.edit_original_response(content=usage_text(status))

    @guarded(refuse)
    async def admin(
        self, interaction: discord.Interaction, what: str, member: int | None, images: int | None
    ) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        if interaction.guild_id is None or not interaction.permissions.manage_guild:
            await interaction.followup.send(
                "This needs the Manage Server permission in a server.", ephemeral=True
            )
            return
        guild, surface = str(interaction.guild_id), translate.SURFACE
        text = await self._admin_action(what, surface, guild, str(member) if member else "", images)
        await interaction.followup.send(text, ephemeral=True)

    async def _admin_action(
        self, what: str, surface: str, guild: str, member: str, images: int | None
    ) -> str:
        # Everything an admin does is kept under this server: it reaches no other one.
        if what == "user-limit":
            await self.engine.admin_set_limit(surface, guild, member, images)
            return f"<@{member}>'s daily limit is now {images}." if images is not None else "Limit cleared."
        if what == "server-limit":
            await self.engine.admin_set_limit(surface, guild, None, images)
            return f"This server's daily limit is now {images}." if images is not None else "Limit cleared."
        if what == "grant":
            await self.engine.admin_grant(surface, guild, member, images or 0)
            return f"Gave <@{member}> {images} more image(s) for today."
        if what == "reset":
            await self.engine.admin_reset(surface, guild, member)
            return f"<@{member}>'s usage for today is reset."
        status = await self.engine.quota(surface, member, guild)
        return f"<@{member}>: " + usage_text(status).replace("You have", "has", 1)
