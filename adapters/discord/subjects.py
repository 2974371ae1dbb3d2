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
from bot.usecases.subjects import creator_key
from bot.words import NOT_FOUND

NAME_FIELD = translate.INSTRUCTION_FIELD


def name_modal(custom_id: str) -> discord.ui.Modal:
    modal = discord.ui.Modal(title="Save as subject", custom_id=custom_id, timeout=None)
    modal.add_item(
        discord.ui.TextInput(
            label="Name (letters, digits, - or _)",
            custom_id=NAME_FIELD,
            placeholder="mascot",
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

    def _who(self, interaction: discord.Interaction) -> tuple[str, str]:
        """The tenant the subjects live in, and the person's key (their creator's mark)."""
        user = str(interaction.user.id)
        tenant = self.engine.tenant(translate.SURFACE, str(interaction.guild_id or ""), user)
        return tenant, creator_key(translate.SURFACE, user)

    @guarded(refuse)
    async def command(self, interaction: discord.Interaction, action: str, name: str) -> None:
        if action == "show":
            await interaction.response.defer(thinking=True)
        else:
            await interaction.response.defer(ephemeral=True, thinking=True)
        book = self.engine.subjects
        tenant, user = self._who(interaction)
        if action == "save":
            payload = raw_payload(interaction)
            opts = translate.options_of(payload)
            resolved = (payload["data"].get("resolved") or {}).get("attachments") or {}
            chosen = [str(opts[o]) for o in translate.ATTACHMENT_OPTIONS if o in opts]
            attachments = [resolved[key] for key in chosen if key in resolved]
            refs = translate.image_refs(attachments, max_bytes=self.ctx.max_image_bytes)
            subject = await book.save(tenant, user, name, refs)
            text = f"Saved subject `{subject.name}` ({len(subject.media)} image(s)). Use it: `@{subject.name}` in a prompt."
        elif action == "show":
            subject = await book.get(tenant, name)
            files = [
                discord.File(io.BytesIO(image.data), filename=f"{subject.name}-{i}.{image.extension}")
                for i, image in enumerate(await book.images(subject), start=1)
            ]
            try:
                await interaction.edit_original_response(
                    content=f"Subject `{subject.name}`", attachments=files
                )
            finally:
                release(files)  # their buffers now, not at the next full garbage collection
            return
        elif action == "delete":
            admin = interaction.guild_id is not None and interaction.permissions.manage_guild
            subject = await book.delete(tenant, name, user, admin=admin)
            text = f"Deleted subject `{subject.name}`."
        else:
            subjects = await book.all(tenant)
            lines = [f"`{s.name}`: {len(s.media)} image(s)" for s in subjects]
            text = "\n".join(["Saved subjects:", *lines]) if lines else "No subjects are saved here yet."
        await interaction.edit_original_response(content=text)

    async def ask_name(self, interaction: discord.Interaction, job_id: str) -> None:
        custom_id = translate.make_custom_id("subjectname", job_id)
        await interaction.response.send_modal(name_modal(custom_id))

    async def save_result(self, interaction: discord.Interaction, job_id: str) -> None:
        name = translate.modal_value(raw_payload(interaction), NAME_FIELD).strip()
        await interaction.response.defer(ephemeral=True, thinking=True)
        job = await self.ctx.lookup.job(interaction_actor(interaction), job_id)
        if job is None:
            await refuse(interaction, NOT_FOUND)
            return
        tenant, user = self._who(interaction)
        subject = await self.engine.subjects.save_from_job(tenant, user, name, job)
        await interaction.edit_original_response(
            content=f"Saved subject `{subject.name}` ({len(subject.media)} image(s)). Use it: `@{subject.name}` in a prompt."
        )
