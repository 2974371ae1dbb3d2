"""`/hidream-subject save|list|show|delete` and the "Save as subject" button under a result (a modal
asks for the name). Saved subjects belong to the server (in a DM: to the person); deleting one
needs its creator or someone who can manage the server. Every answer but `show` is ephemeral."""

from __future__ import annotations

import io

import discord

from adapters.discord import translate
from adapters.discord.boundary import guarded, refuse
from adapters.discord.context import HandlerContext, interaction_actor, raw_payload
from adapters.discord.posting import release
from bot import words
from bot.model.requests import ImageRef
from bot.usecases import subject_commands
from bot.usecases.actor import Reply

NAME_FIELD = translate.INSTRUCTION_FIELD


def name_modal(custom_id: str) -> discord.ui.Modal:
    modal = discord.ui.Modal(title=words.SUBJECT_FORM, custom_id=custom_id, timeout=None)
    modal.add_item(
        discord.ui.TextInput(
            label=words.SUBJECT_FIELD,
            custom_id=NAME_FIELD,
            placeholder=words.SUBJECT_PLACEHOLDER,
            min_length=1,
            max_length=32,
        )
    )
    modal.stop()  # answered from its custom id, even after a restart
    return modal


class SubjectCommands:
    def __init__(self, ctx: HandlerContext) -> None:
        self.ctx = ctx
        self.engine = ctx.engine

    @guarded(refuse)
    async def command(self, interaction: discord.Interaction, action: str, name: str) -> None:
        # `show` posts the images for everyone there; every other answer is private.
        await interaction.response.defer(ephemeral=action != "show", thinking=True)
        book, actor = self.engine.subjects, interaction_actor(interaction)
        if action == "save":
            reply = await subject_commands.save(book, actor, name, self._attached(interaction))
        elif action == "show":
            reply = await subject_commands.show(book, actor, name)
        elif action == "delete":
            reply = await subject_commands.delete(book, actor, name)
        else:
            reply = await subject_commands.listing(book, actor)
        await answer(interaction, reply)

    def _attached(self, interaction: discord.Interaction) -> list[ImageRef]:
        payload = raw_payload(interaction)
        opts = translate.options_of(payload)
        resolved = (payload["data"].get("resolved") or {}).get("attachments") or {}
        chosen = [str(opts[o]) for o in translate.ATTACHMENT_OPTIONS if o in opts]
        attachments = [resolved[key] for key in chosen if key in resolved]
        return translate.image_refs(attachments, max_bytes=self.ctx.max_image_bytes)

    async def ask_name(self, interaction: discord.Interaction, job_id: str) -> None:
        custom_id = translate.make_custom_id("subjectname", job_id)
        await interaction.response.send_modal(name_modal(custom_id))

    async def save_result(self, interaction: discord.Interaction, job_id: str) -> None:
        name = translate.modal_value(raw_payload(interaction), NAME_FIELD).strip()
        await interaction.response.defer(ephemeral=True, thinking=True)
        actor = interaction_actor(interaction)
        job = await self.ctx.lookup.job(actor, job_id)
        await answer(interaction, await subject_commands.save_result(self.engine.subjects, actor, name, job))


async def answer(interaction: discord.Interaction, reply: Reply) -> None:
    """A reply in the interaction's deferred answer, its images attached."""
    files = [discord.File(io.BytesIO(p.data), filename=p.name) for p in reply.images]
    try:
        await interaction.edit_original_response(content=reply.text, attachments=files)
    finally:
        release(files)  # their buffers now, not at the next full garbage collection
