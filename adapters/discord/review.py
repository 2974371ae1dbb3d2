"""Approvals on Discord (bot/usecases/approvals.py): a reviewed channel's results go to their
requester alone (the answer is ephemeral, posting.py) and to the reviewers' queue, a channel or their
direct messages, with Approve and Reject buttons. Their custom ids name the job, so a press is answered
from the store after a restart too. Approve posts the result in its channel with "approved by";
Reject asks the reason in a modal and tells the requester privately. A role's members are known from
the press itself (the member's roles in the interaction)."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import discord

from adapters.discord.boundary import guarded, refuse
from adapters.discord.context import HandlerContext, interaction_actor, raw_payload
from adapters.discord.posting import Poster, nonce_for, prepare_files, release, summary
from adapters.discord.translate import make_custom_id, modal_value
from adapters.discord.views import result_view, token_alive
from bot import words
from bot.model.jobs import Job, OutputImage
from bot.usecases import approvals
from bot.usecases.actor import Actor
from bot.usecases.approvals import MemberOf

if TYPE_CHECKING:
    from bot.jobs.engine import Engine

APPROVE, REJECT, REJECT_WHY = "approve", "reject", "rejectwhy"
REASON_FIELD = "reason"


def review_view(job: Job) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    for action, label, style in (
        (APPROVE, words.ACTION_APPROVE, discord.ButtonStyle.success),
        (REJECT, words.ACTION_REJECT, discord.ButtonStyle.danger),
    ):
        # The server rides along: a press in a reviewer's DM has none of its own (see `reviewer`).
        custom_id = make_custom_id(action, job.id, job.workspace_id)
        view.add_item(discord.ui.Button(label=label, style=style, custom_id=custom_id))
    view.stop()  # not stored: a press is answered from its custom id
    return view


def reason_modal(job_id: str, guild_id: str) -> discord.ui.Modal:
    modal = discord.ui.Modal(
        title=words.REVIEW_REASON_FORM, custom_id=make_custom_id(REJECT_WHY, job_id, guild_id), timeout=None
    )
    modal.add_item(
        discord.ui.TextInput(
            label=words.REVIEW_REASON_FIELD,
            custom_id=REASON_FIELD,
            style=discord.TextStyle.paragraph,
            placeholder=words.REVIEW_REASON_PLACEHOLDER,
            max_length=500,
        )
    )
    modal.stop()
    return modal


class ReviewPoster:
    """The posts approvals make: the queue's, the approved one, the requester's private word."""

    def __init__(self, poster: Poster) -> None:
        self.poster = poster
        self.client = poster.client

    async def _send(
        self, target: discord.abc.Messageable, job: Job, images: list[OutputImage], line: str, **kw: object
    ) -> discord.Message:
        prepared = await prepare_files(images, job, await self.poster._nsfw_for(job))
        try:
            content = f"{summary(job, prepared.notes)}\n{line}"
            return await target.send(content, files=prepared.files, **kw)  # type: ignore[call-overload,no-any-return]
        finally:
            release(prepared.files)

    async def queue_for_review(self, job: Job, images: list[OutputImage]) -> None:
        review = job.origin["review"]
        queue, spec = str(review["queue"]), str(review["reviewers"])
        if queue == "dm":
            people = spec.partition(":")[2].split(",")
            targets: list[discord.abc.Messageable] = [
                await self.client.create_dm(discord.Object(int(p))) for p in people
            ]
        else:
            targets = [self.client.get_partial_messageable(int(queue))]
        for i, target in enumerate(targets):
            await self._send(
                target, job, images, words.REVIEW_ASKED, view=review_view(job), nonce=nonce_for(job, f"q{i}")
            )

    async def publish(self, job: Job, images: list[OutputImage], line: str) -> str:
        channel = self.client.get_partial_messageable(int(job.channel or job.origin["channel_id"]))
        message = await self._send(
            channel, job, images, line, view=result_view(job), nonce=nonce_for(job, "ok")
        )
        return str(message.id)

    async def withdraw(self, engine: Engine, job: Job) -> int:
        """Delete the message an approval posted the job in (an operator's take-down)."""
        key = await approvals.approved_post(engine, job)
        if key is None:
            return 0
        channel = self.client.get_partial_messageable(int(job.channel or job.origin["channel_id"]))
        try:
            await channel.get_partial_message(int(key)).delete()
        except discord.NotFound:
            return 0
        return 1

    async def tell_privately(self, job: Job, text: str) -> None:
        """Ephemerally while the request's interaction lives, else in a direct message."""
        if token_alive(job.origin, self.poster.clock()):
            await self.poster._webhook(job.origin).send(text, ephemeral=True)
            return
        dm = await self.client.create_dm(discord.Object(int(job.user_id)))
        await dm.send(text)


def reviewer(interaction: discord.Interaction, guild_id: str) -> Actor:
    """Who pressed. In a direct message (a queue of reviewers named one by one) the press has no
    server: it is the job's, named by the button, and only a person that approval lists may act."""
    actor = interaction_actor(interaction)
    if interaction.guild_id is None and guild_id:
        return replace(actor, workspace_id=guild_id)
    return actor


def member_of(interaction: discord.Interaction) -> MemberOf:
    async def check(role_id: str) -> bool:
        user = interaction.user
        return isinstance(user, discord.Member) and user.get_role(int(role_id)) is not None

    return check


class ReviewCommands:
    """The Approve and Reject buttons, and the reason's modal."""

    def __init__(self, ctx: HandlerContext, poster: ReviewPoster) -> None:
        self.engine: Engine = ctx.engine
        self.poster = poster

    @guarded(refuse)
    async def approve(self, interaction: discord.Interaction, job_id: str, guild_id: str) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        actor = reviewer(interaction, guild_id)
        reply = await approvals.approve(
            self.engine, actor, job_id, member_of(interaction), self.poster.publish
        )
        await self._mark_queue(interaction, words.approved_by(f"<@{actor.user_id}>"))
        await interaction.followup.send(reply.text, ephemeral=True)

    @guarded(refuse)
    async def reject(self, interaction: discord.Interaction, job_id: str, guild_id: str) -> None:
        # Checked before the form opens: a non-reviewer, or a decided request, is told at once.
        await approvals.pressed(self.engine, reviewer(interaction, guild_id), job_id, member_of(interaction))
        await interaction.response.send_modal(reason_modal(job_id, guild_id))

    @guarded(refuse)
    async def rejected(self, interaction: discord.Interaction, job_id: str, guild_id: str) -> None:
        reason = modal_value(raw_payload(interaction), REASON_FIELD)
        await interaction.response.defer(ephemeral=True, thinking=True)
        actor = reviewer(interaction, guild_id)
        reply = await approvals.reject(
            self.engine, actor, job_id, reason, member_of(interaction), self.poster.tell_privately
        )
        await self._mark_queue(interaction, words.rejected_by(f"<@{actor.user_id}>", reason.strip()))
        await interaction.followup.send(reply.text, ephemeral=True)

    @staticmethod
    async def _mark_queue(interaction: discord.Interaction, line: str) -> None:
        """The queue's message says what was decided, its buttons gone."""
        message = interaction.message
        if message is None:
            return
        try:
            await message.edit(content=f"{message.content}\n{line}", view=None)
        except discord.HTTPException:
            pass  # a courtesy: the decision is made and recorded
