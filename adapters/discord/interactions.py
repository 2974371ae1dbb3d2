"""Slash commands, the context menu, modals and buttons. Each acknowledges Discord first (defer or a
modal), then does store, file or provider work. Refusals are ephemeral, in plain words: a handler
raises, and its boundary (boundary.py) answers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import discord

from adapters.discord import translate, versions
from adapters.discord.boundary import guarded, refuse
from adapters.discord.context import HandlerContext, interaction_actor, raw_payload
from adapters.discord.help import HELP_TEXT, asks_for_help
from adapters.discord.kits import KitCommands
from adapters.discord.preferences import PreferenceCommands, mark_private, private_results
from adapters.discord.review import APPROVE, REJECT, REJECT_WHY, ReviewCommands
from adapters.discord.subjects import SubjectCommands
from adapters.discord.views import (
    CONFIRM_SET,
    REMIX_FORM,
    confirm_set_view,
    instruction_modal,
    interaction_origin,
    remix_modal,
    set_origins,
)
from bot import words
from bot.model.errors import BadInput
from bot.model.jobs import Job
from bot.model.requests import CONFIRM_OVER, MAX_REFERENCES, ChatRequest, ImageRef
from bot.usecases import drafts, limits, region, remix, results, sets
from bot.usecases.actions import Kind
from bot.usecases.actor import Actor, Reply
from bot.usecases.make import make, result_references
from bot.usecases.remake import remake
from bot.usecases.toolbox import TOOL_KINDS, use_tool
from bot.words import LIMITS_REFUSED, MESSAGE_GONE, NO_IMAGE, NOT_FOUND

# The buttons a tool answers, by the custom id's action (Vary's is still "vary").
TOOLS = {kind.value: kind for kind in TOOL_KINDS}
# Admits a new version of a result for who pressed, where to answer, under the press's dedup key;
# returns a note for the presser alone ("" for none).
Admit = Callable[[Actor, Job, dict[str, Any], str], Awaitable[str]]


class InteractionHandlers(PreferenceCommands):
    def __init__(self, ctx: HandlerContext, reviews: ReviewCommands) -> None:
        self.ctx = ctx
        self.reviews = reviews
        self.engine = ctx.engine
        self.subjects = SubjectCommands(ctx)
        self.kits = KitCommands(ctx)
        self.lookup = ctx.lookup

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
        await make(self.engine, interaction_actor(interaction), chat, dedup_key=f"discord:{interaction.id}")

    @guarded(refuse)
    async def slash(self, interaction: discord.Interaction) -> None:
        # Pure checks of the options and attachment metadata: no I/O before the acknowledgement. A
        # refusal here is answered before anything is deferred.
        payload = raw_payload(interaction)
        if asks_for_help(payload):
            await self.help(interaction)
            return
        chats, confirmed = translate.slash_set(payload, origin={}, max_bytes=self.ctx.max_image_bytes)
        if len(chats) == 1:
            await self._submit(interaction, await self._defer(interaction), chats[0])
            return
        await self._submit_set(interaction, chats, confirmed=confirmed)

    async def _submit_set(
        self, interaction: discord.Interaction, chats: list[ChatRequest], *, confirmed: bool
    ) -> None:
        """A set: made at once (all or nothing) when small or confirmed; else held, and its requester
        alone is asked to confirm it with a button."""
        asks = len(chats) > CONFIRM_OVER and not confirmed
        if asks:
            await interaction.response.defer(thinking=True, ephemeral=True)
            message_id = None
        else:
            message_id = await self._defer(interaction)
        origin = mark_private(interaction, interaction_origin(interaction, message_id, self.ctx.clock()))
        where = set_origins(origin, len(chats))
        placed = [c.model_copy(update={"origin": o}) for c, o in zip(chats, where, strict=True)]
        outcome = await sets.make_set(
            self.engine,
            interaction_actor(interaction),
            placed,
            confirmed=confirmed,
            dedup_key=f"discord:{interaction.id}",
        )
        if outcome.waiting is not None and outcome.set_id is not None:
            await interaction.edit_original_response(
                content=outcome.waiting.text, view=confirm_set_view(outcome.set_id)
            )

    async def _confirm_set(self, interaction: discord.Interaction, set_id: str) -> None:
        message_id = await self._defer(interaction)
        origin = mark_private(interaction, interaction_origin(interaction, message_id, self.ctx.clock()))

        async def place(chats: list[ChatRequest]) -> list[dict[str, Any]]:
            return set_origins(origin, len(chats))

        await sets.confirm_set(
            self.engine, interaction_actor(interaction), set_id, place, dedup_key=f"discord:{interaction.id}"
        )

    async def _pressed(
        self, interaction: discord.Interaction, job_id: str
    ) -> tuple[Actor, Job, dict[str, Any]] | None:
        """A button under a result that makes a new job from it: the press answered for now, the
        asker's job (None, and they are told, when it is not theirs to see) and where to answer."""
        message_id = await self._defer(interaction)
        actor = interaction_actor(interaction)
        job = await self.lookup.job(actor, job_id)
        if job is None:
            await refuse(interaction, NOT_FOUND)
            return None
        return (
            actor,
            job,
            mark_private(interaction, interaction_origin(interaction, message_id, self.ctx.clock())),
        )

    async def _final(self, interaction: discord.Interaction, job_id: str) -> None:
        """The Final button under a draft: the same request on the full model, with the same seed."""
        pressed = await self._pressed(interaction, job_id)
        if pressed is None:
            return
        actor, job, origin = pressed
        await drafts.final(self.engine, actor, job, origin=origin, dedup_key=f"discord:{interaction.id}")

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
        if action == "reroll":
            await self._reroll(interaction, args[0])
        elif action in TOOLS:
            await self._tool(interaction, TOOLS[action], args[0])
        elif action == "region":
            await self._region(interaction, args[0])
        elif action == "final":
            await self._final(interaction, args[0])
        elif action == Kind.REMIX.value:
            await self._remix_form(interaction, args[0])
        elif action == REMIX_FORM:
            await self._remix_submitted(interaction, args[0])
        elif action == CONFIRM_SET:
            await self._confirm_set(interaction, args[0])
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
        elif action in (APPROVE, REJECT, REJECT_WHY):
            await self._review(interaction, action, args[0], args[1] if len(args) > 1 else "")

    async def _review(
        self, interaction: discord.Interaction, action: str, job_id: str, guild_id: str
    ) -> None:
        if action == APPROVE:
            await self.reviews.approve(interaction, job_id, guild_id)
        elif action == REJECT:
            await self.reviews.reject(interaction, job_id, guild_id)
        else:
            await self.reviews.rejected(interaction, job_id, guild_id)

    async def _region(self, interaction: discord.Interaction, job_id: str) -> None:
        """Edit region: the editor's link, to the presser alone (ephemeral: it admits as them)."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        actor = interaction_actor(interaction)
        job = await self.lookup.job(actor, job_id)
        if job is None:
            await refuse(interaction, NOT_FOUND)
            return
        reply = await region.region_link(self.engine, actor, job, now=self.ctx.clock())
        await interaction.followup.send(reply.text, ephemeral=True)

    async def _reroll(self, interaction: discord.Interaction, job_id: str) -> None:
        pressed = await self._pressed(interaction, job_id)
        if pressed is None:
            return
        actor, job, origin = pressed
        await remake(
            self.engine, actor, job, vary=False, origin=origin, dedup_key=f"discord:{interaction.id}"
        )

    async def _tool(self, interaction: discord.Interaction, kind: Kind, job_id: str) -> None:
        """Vary, Upscale, Zoom Out, Pan and Make Square: a new version of the result, in its thread."""

        async def admit(actor: Actor, job: Job, origin: dict[str, Any], dedup: str) -> str:
            made = await use_tool(self.engine, actor, job, kind, origin=origin, dedup_key=dedup)
            return made.note

        await self._new_version(interaction, job_id, admit)

    async def _new_version(self, interaction: discord.Interaction, job_id: str, admit: Admit) -> None:
        """Admit a new version of the job `job_id` names, answered in the result's thread; `admit`
        returns a note for the presser alone ("" for none)."""
        pressed = await self._pressed(interaction, job_id)
        if pressed is None:
            return
        actor, job, origin = pressed
        dedup = f"discord:{interaction.id}"
        thread = await self.lookup.thread_of(actor, job.id)
        if thread is None or thread == origin["channel_id"] or origin.get("private"):
            note = await admit(actor, job, origin, dedup)
        else:
            # Pressed under a result whose thread is elsewhere: the new version goes in that thread, where
            # undo and history see it; the press's own "thinking" answer is taken down once it is admitted.
            target = interaction.client.get_partial_messageable(int(thread), guild_id=interaction.guild_id)
            progress = await target.send(f"⏳ {words.CHECKING}")
            in_thread = {**origin, "kind": "message", "message_id": str(progress.id), "channel_id": thread}
            in_thread.update(in_thread=True, can_thread=False)
            try:
                note = await admit(actor, job, in_thread, dedup)
            except Exception:
                await progress.delete()
                raise
            await interaction.delete_original_response()
        if note:
            await interaction.followup.send(note, ephemeral=True)

    async def _remix_form(self, interaction: discord.Interaction, job_id: str) -> None:
        """The Remix button: answered with the form (a modal is the first answer, so the one small
        read of the job comes before it), filled in with the request as typed."""
        job = await remix.target(self.lookup, interaction_actor(interaction), job_id)
        await interaction.response.send_modal(remix_modal(job.id, remix.form(job)))

    async def _remix_submitted(self, interaction: discord.Interaction, job_id: str) -> None:
        """The Remix form sent back: read first (a bad flag is refused before anything is deferred or
        spent), then admitted as the result's next version, in its thread."""
        payload = raw_payload(interaction)
        asked = remix.read(
            translate.modal_value(payload), keep=translate.modal_checked(payload, translate.KEEP_FIELD)
        )

        async def admit(actor: Actor, job: Job, origin: dict[str, Any], dedup: str) -> str:
            await remix.remix(self.engine, actor, job, asked, origin=origin, dedup_key=dedup)
            return ""

        await self._new_version(interaction, job_id, admit)

    async def _undo(self, interaction: discord.Interaction, job_id: str) -> None:
        """The Undo button: the version before this one becomes the one the thread's next
        instruction edits; said in the thread, where it changes what everyone's next edit starts from."""
        await interaction.response.defer()
        actor = interaction_actor(interaction)
        thread = await versions.thread_of_job(self.lookup, actor, job_id)
        text = await versions.thread_command_text(self.engine, actor, "undo", thread, from_job=job_id)
        await interaction.followup.send(text)

    async def _delete(self, interaction: discord.Interaction, job_id: str) -> None:
        await interaction.response.defer()
        job = await results.deletable(self.lookup, interaction_actor(interaction), job_id)
        if interaction.message is not None:
            try:
                await interaction.message.delete()
            except discord.NotFound:
                pass
        await results.forget(self.engine, job)

    async def _edit_submitted(self, interaction: discord.Interaction, action: str, args: list[str]) -> None:
        instruction = translate.modal_value(raw_payload(interaction))
        message_id = await self._defer(interaction)
        parent = None
        if action == "editjob":
            parent = await self.lookup.job(interaction_actor(interaction), args[0])
            if parent is None or not parent.result_media:
                await refuse(interaction, NOT_FOUND)
                return
            refs = result_references(parent, 0)
        else:
            refs, parent = await self._target_references(interaction, int(args[0]), int(args[1]))
        chat = translate.text_request(
            instruction,
            user_id=str(interaction.user.id),
            workspace_id=str(interaction.guild_id or ""),
            origin={},
            references=refs,
            parent_job_id=parent.id if parent else None,
        )
        await self._submit(interaction, message_id, chat)

    async def _target_references(
        self, interaction: discord.Interaction, channel_id: int, message_id: int
    ) -> tuple[list[ImageRef], Job | None]:
        """A result of ours: the image the bot holds. Anyone's message: its attachments, fetched fresh
        (Discord's attachment links expire). The menu is used on a message where it is shown, so the
        message must be in the channel the modal came back from: any other is not found."""
        actor = interaction_actor(interaction)
        if str(channel_id) != actor.channel_id:
            raise BadInput(NOT_FOUND)
        job = await self.lookup.job_for_post(actor, str(message_id))
        if job is not None and job.result_media:
            return result_references(job, 0), job
        try:
            raw = await self.ctx.fetch_message(channel_id, message_id)
        except discord.NotFound:
            raise BadInput(MESSAGE_GONE) from None
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
        reply = await limits.usage(self.engine, interaction_actor(interaction))
        await interaction.edit_original_response(content=reply.text)

    @guarded(refuse)
    async def admin(
        self, interaction: discord.Interaction, what: str, member: int | None, images: int | None
    ) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        actor = interaction_actor(interaction)
        if not actor.admin:
            raise BadInput(LIMITS_REFUSED)
        reply = await self._admin_action(actor, what, str(member) if member else "", images)
        await interaction.followup.send(reply.text, ephemeral=True)

    async def _admin_action(self, actor: Actor, what: str, member: str, images: int | None) -> Reply:
        if what == "user-limit":
            return await limits.set_limit(self.engine, actor, member, images)
        if what == "server-limit":
            return await limits.set_limit(self.engine, actor, None, images)
        if what == "grant":
            return await limits.grant(self.engine, actor, member, images or 0)
        if what == "reset":
            return await limits.reset_today(self.engine, actor, member)
        return await limits.usage(self.engine, actor, member)
