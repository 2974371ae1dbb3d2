"""Approvals on Discord (bot/usecases/approvals.py): a reviewed channel's results go to their
requester alone (the answer is ephemeral, posting.py) and to the reviewers' queue, a channel or their
direct messages, with Approve and Reject buttons. Their custom ids name the job, so a press is answered
from the store after a restart too. Approve posts the result in its channel with "approved by";
Reject asks the reason in a modal and tells the requester privately. A role's members are known from
the press itself (the member's roles in the interaction)."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import TYPE_CHECKING

import discord

from adapters.discord.boundary import guarded, refuse
from adapters.discord.context import HandlerContext, interaction_actor, raw_payload
from adapters.discord.posting import Poster, nonce_for, prepare_files, release, summary
from adapters.discord.translate import make_custom_id, modal_value
from adapters.discord.views import result_view, token_alive
from bot import words
from bot.model.errors import BadInput
from bot.model.jobs import Job, OutputImage
from bot.usecases import approvals
from bot.usecases.actor import Actor
from bot.usecases.approvals import MemberOf

if TYPE_CHECKING:
    from bot.jobs.engine import Engine

APPROVE, REJECT, REJECT_WHY = "approve", "reject", "rejectwhy"
REASON_FIELD = "reason"
_ROLE, _USER, _CHANNEL = re.compile(r"<@&(\d+)>"), re.compile(r"<@!?(\d+)>"), re.compile(r"<#(\d+)>")


def read_reviewers(text: str) -> str | None:
    """Who `policy review` names, as Discord writes mentions: a role `<@&id>` (the first) or people
    `<@id>`; the spec of bot/usecases/approvals.py, or None when it names none."""
    roles, users = _ROLE.findall(text), _USER.findall(text)
    if roles:
        return f"role:{roles[0]}"
    return "users:" + ",".join(dict.fromkeys(users)) if users else None


def read_channel(text: str) -> str | None:
    found = _CHANNEL.fullmatch(text.strip())
    return None if found is None else found.group(1)


class ReviewTerms:
    """`policy review ...` on Discord (bot/usecases/approvals.py's ReviewTerms): the role, the people
    and the queue channel must be the server's where it is typed."""

    def __init__(self, interaction: discord.Interaction) -> None:
        self.client = interaction.client
        self.guild_id = interaction.guild_id

    async def reviewers(self, text: str) -> str | None:
        spec = read_reviewers(text)
        if spec is None:
            return None
        guild = self.client.get_guild(self.guild_id) if self.guild_id else None
        kind, _, ids = spec.partition(":")
        if kind == "role":
            here = guild is not None and guild.get_role(int(ids)) is not None
        else:
            here = guild is not None and all([await _member(guild, int(u)) for u in ids.split(",")])
        if not here:
            raise BadInput(words.REVIEWERS_NOT_HERE)
        return spec

    async def queue(self, text: str) -> str | None:
        channel_id = read_channel(text)
        if channel_id is None:
            return None
        channel = self.client.get_channel(int(channel_id))
        if channel is None:
            try:
                channel = await self.client.fetch_channel(int(channel_id))
            except (discord.HTTPException, discord.InvalidData):
                channel = None  # not one the bot can see
        guild = getattr(channel, "guild", None)
        if guild is None or guild.id != self.guild_id:
            raise BadInput(words.REVIEW_QUEUE_NOT_HERE)
        return channel_id

    def mention(self, spec: str) -> str:
        kind, _, ids = spec.partition(":")
        return f"<@&{ids}>" if kind == "role" else ", ".join(f"<@{u}>" for u in ids.split(","))


async def _member(guild: discord.Guild, user_id: int) -> bool:
    if guild.get_member(user_id) is not None:
        return True
    try:
        await guild.fetch_member(user_id)
    except (discord.NotFound, discord.Forbidden):
        return False
    return True


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
        """Each of the queue's places once: a message recorded (as `<channel>:<message>`, apart from
        the job's own posts) is not sent again, and a take-down finds it."""
        review = job.origin["review"]
        queue, spec = str(review["queue"]), str(review["reviewers"])
        if queue == "dm":
            people = spec.partition(":")[2].split(",")
            targets: list[discord.DMChannel | discord.PartialMessageable] = [
                await self.client.create_dm(discord.Object(int(p))) for p in people
            ]
        else:
            targets = [self.client.get_partial_messageable(int(queue))]
        memory, book = self.poster.memory, approvals.queue_book(job)
        reached = {key.partition(":")[0] for key in await memory.posts_of(job.id, book)}
        for i, target in enumerate(targets):
            where = str(target.id)
            if where in reached:
                continue
            message = await self._send(
                target, job, images, words.REVIEW_ASKED, view=review_view(job), nonce=nonce_for(job, f"q{i}")
            )
            await memory.remember_post(job.id, book, f"{where}:{message.id}", None)

    async def publish(self, job: Job, images: list[OutputImage], line: str) -> str:
        channel = self.client.get_partial_messageable(int(job.channel or job.origin["channel_id"]))
        message = await self._send(
            channel, job, images, line, view=result_view(job), nonce=nonce_for(job, "ok")
        )
        return str(message.id)

    async def withdraw(self, engine: Engine, job: Job) -> int:
        """Delete what approvals posted of the job (an operator's take-down): its reviewers' queue
        messages and the approved post; how many went."""
        gone = 0
        for key in await self.poster.memory.posts_of(job.id, approvals.queue_book(job)):
            where, _, mid = key.partition(":")
            gone += await self._deleted(int(where), int(mid))
        posted = await approvals.approved_post(engine, job)
        if posted is not None:
            gone += await self._deleted(int(job.channel or job.origin["channel_id"]), int(posted))
        return gone

    async def _deleted(self, channel_id: int, message_id: int) -> int:
        try:
            await self.client.get_partial_messageable(channel_id).get_partial_message(message_id).delete()
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
