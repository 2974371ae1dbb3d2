"""Approvals on Slack (bot/usecases/approvals.py): a reviewed channel's results go to their requester
alone (in a direct message, as private results do) and to the reviewers' queue, a channel or each
reviewer's direct messages: the images, then a message with Approve and Reject buttons whose value is
the job, so a press is answered from the store after a restart too. Approve posts the result in its
channel with "approved by" (the images in that message's thread, as every result); Reject opens a
form for the reason and tells the requester in a direct message. A user group's members are asked
of Slack (usergroups.users.list, scope usergroups:read)."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from functools import partial
from typing import TYPE_CHECKING, Any

from slack_bolt.app.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack import blocks
from adapters.slack import translate as t
from adapters.slack.boundary import Reply, guarded
from adapters.slack.context import ListenerContext
from adapters.slack.posting import Poster
from adapters.slack.translate import message_key
from bot import words
from bot.model.errors import BadInput
from bot.model.jobs import Job, OutputImage
from bot.usecases import approvals
from bot.usecases.approvals import MemberOf
from bot.words import FORM_OUT_OF_DATE

if TYPE_CHECKING:
    from bot.jobs.engine import Engine

log = logging.getLogger(__name__)
ACTION_APPROVE, ACTION_REJECT, VIEW_REJECT = "hidream_approve", "hidream_reject", "hidream_reject_modal"
BLOCK_REASON = "reason"
_GROUP = re.compile(r"<!subteam\^([A-Za-z0-9_]+)(?:\|[^>]*)?>")
_USER = re.compile(r"<@([A-Za-z0-9_]+)(?:\|[^>]*)?>")
_CHANNEL = re.compile(r"<#([A-Za-z0-9_]+)(?:\|[^>]*)?>")


def read_reviewers(text: str) -> str | None:
    """Who `policy review` names, as Slack writes mentions: a user group `<!subteam^id|name>` (the
    first) or people `<@id>`; the spec of bot/usecases/approvals.py, or None when it names none."""
    groups, users = _GROUP.findall(text), _USER.findall(text)
    if groups:
        return f"group:{groups[0]}"
    return "users:" + ",".join(dict.fromkeys(users)) if users else None


def read_channel(text: str) -> str | None:
    found = _CHANNEL.fullmatch(text.strip())
    return None if found is None else found.group(1)


def _of_team(user: dict[str, Any], team: str) -> bool:
    """A person of `team`: their own workspace, or (Enterprise Grid) one of those they are in."""
    teams = (user.get("enterprise_user") or {}).get("teams") or []
    return str(user.get("team_id", team)) == team or team in teams


class ReviewTerms:
    """`policy review ...` on Slack (bot/usecases/approvals.py's ReviewTerms), asked of Slack with the
    workspace's own token: the user group, the people and the queue channel must be found there."""

    def __init__(self, client: AsyncWebClient, team: str) -> None:
        self.client = client
        self.team = team

    async def reviewers(self, text: str) -> str | None:
        spec = read_reviewers(text)
        if spec is None:
            return None
        kind, _, ids = spec.partition(":")
        try:
            if kind == "group":
                await self.client.usergroups_users_list(usergroup=ids)
            else:
                for person in ids.split(","):
                    found = (await self.client.users_info(user=person)).get("user") or {}
                    if found.get("deleted") or not _of_team(found, self.team):
                        raise BadInput(words.REVIEWERS_NOT_HERE)
        except SlackApiError:
            raise BadInput(words.REVIEWERS_NOT_HERE) from None
        return spec

    async def queue(self, text: str) -> str | None:
        channel = read_channel(text)
        if channel is None:
            return None
        try:
            await self.client.conversations_info(channel=channel)
        except SlackApiError:
            raise BadInput(words.REVIEW_QUEUE_NOT_HERE) from None
        return channel

    def mention(self, spec: str) -> str:
        kind, _, ids = spec.partition(":")
        return f"<!subteam^{ids}>" if kind == "group" else ", ".join(f"<@{u}>" for u in ids.split(","))


def review_blocks(job: Job, line: str, *, buttons: bool = True) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = [
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": blocks.clip(f"<@{job.user_id}>: {blocks.escape(job.request.prompt)}"),
            },
        },
        {
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": f"{blocks.result_summary(job)}\n{line}"}],
        },
    ]
    if buttons:
        approve = {"type": "button", "text": {"type": "plain_text", "text": words.ACTION_APPROVE},
                   "action_id": ACTION_APPROVE, "value": job.id, "style": "primary"}  # fmt: skip
        reject = {"type": "button", "text": {"type": "plain_text", "text": words.ACTION_REJECT},
                  "action_id": ACTION_REJECT, "value": job.id, "style": "danger"}  # fmt: skip
        found.append({"type": "actions", "block_id": "hidream_review", "elements": [approve, reject]})
    return found


def reason_modal(context: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "modal",
        "callback_id": VIEW_REJECT,
        "title": {"type": "plain_text", "text": words.REVIEW_REASON_FORM},
        "submit": {"type": "plain_text", "text": words.ACTION_REJECT},
        "close": {"type": "plain_text", "text": words.CANCEL},
        "private_metadata": json.dumps(context),
        "blocks": [
            {
                "type": "input",
                "block_id": BLOCK_REASON,
                "label": {"type": "plain_text", "text": words.REVIEW_REASON_FIELD},
                "element": {
                    "type": "plain_text_input",
                    "action_id": "reason",
                    "multiline": True,
                    "max_length": 500,
                },
            }
        ],
    }


class ReviewPoster:
    """The posts approvals make, with the job's workspace's token."""

    def __init__(self, poster: Poster) -> None:
        self.poster = poster

    async def _upload(
        self, client: AsyncWebClient, job: Job, images: list[OutputImage], channel: str, thread: str | None
    ) -> list[str]:
        """The files' ids (streamed from their files, as the job's own post is)."""
        screened = await self.poster._screened(job, images)
        return await self.poster.upload_files(client, job, screened, channel, thread)

    async def queue_for_review(self, job: Job, images: list[OutputImage]) -> None:
        """Each of the queue's places once: its files and its message with the buttons are recorded
        (`file:<channel>:<id>`, `<channel>:<ts>`, apart from the job's own posts), so a second call
        sends nothing again where the message is out, and a take-down finds them."""
        client = await self.poster._for(job)
        review = job.origin["review"]
        queue, spec = str(review["queue"]), str(review["reviewers"])
        targets = [queue]
        if queue == "dm":
            targets = []
            for person in spec.partition(":")[2].split(","):
                opened = await client.conversations_open(users=person)
                targets.append(str(opened["channel"]["id"]))
        memory, book = self.poster.memory, approvals.queue_book(job)
        recorded = await memory.posts_of(job.id, book)
        for channel in targets:
            if any(key.startswith(f"{channel}:") for key in recorded):
                continue  # reached already
            if not any(key.startswith(f"file:{channel}:") for key in recorded):
                for file_id in await self._upload(client, job, images, channel, None):
                    await memory.remember_post(job.id, book, f"file:{channel}:{file_id}", None)
            posted = await client.chat_postMessage(
                channel=channel, text=f"{words.REVIEW_ASKED} {job.request.prompt[:200]}",
                blocks=review_blocks(job, words.REVIEW_ASKED),
            )  # fmt: skip
            await memory.remember_post(job.id, book, message_key(channel, str(posted["ts"])), None)

    async def publish(self, job: Job, images: list[OutputImage], line: str) -> str:
        client = await self.poster._for(job)
        posted = await client.chat_postMessage(
            channel=job.channel, text=f"<@{job.user_id}>: {blocks.result_summary(job)}\n{line}",
            blocks=review_blocks(job, line, buttons=False),
        )  # fmt: skip
        await self._upload(client, job, images, job.channel, str(posted["ts"]))
        return message_key(job.channel, str(posted["ts"]))

    async def withdraw(self, engine: Engine, job: Job) -> int:
        """Delete what approvals posted (an operator's take-down): the reviewers' queue (its files and
        messages), then the approved post (the files in its message's thread, then the message); how
        many messages went."""
        client = await self.poster._for(job)
        gone = await self._withdraw_queue(client, job)
        key = await approvals.approved_post(engine, job)
        if key is None:
            return gone
        channel, _, ts = key.rpartition(":")
        prefix = f"hidream-{job.id}-"
        for m in await self.poster.thread_messages(channel, ts, client):
            ours = await self.poster.delete_files(client, m, prefix)
            if ours or m.get("ts") == ts:
                gone += await self.poster._deleted(client, channel, str(m["ts"]))
        return gone

    async def _withdraw_queue(self, client: AsyncWebClient, job: Job) -> int:
        gone = 0
        for key in await self.poster.memory.posts_of(job.id, approvals.queue_book(job)):
            if key.startswith("file:"):
                try:
                    await client.files_delete(file=key.rpartition(":")[2])
                except SlackApiError:
                    log.warning("job %s: a queue's file could not be deleted", job.id)
                continue
            channel, _, ts = key.rpartition(":")
            gone += await self.poster._deleted(client, channel, ts)
        return gone

    async def tell_privately(self, job: Job, text: str) -> None:
        client = await self.poster._for(job)
        opened = await client.conversations_open(users=job.user_id)
        await client.chat_postMessage(channel=str(opened["channel"]["id"]), text=text)


def _to_presser(owner: SlackReviews, args: Mapping[str, Any]) -> Reply:
    press = t.button_press(args["body"])
    return partial(owner.ctx.poster.ephemeral, press.channel, press.user)


def _to_rejecter(owner: SlackReviews, args: Mapping[str, Any]) -> Reply:
    context = _context_of(args["view"])
    return partial(
        owner.ctx.poster.ephemeral, str(context.get("channel", "")), str(args["body"]["user"]["id"])
    )


def _context_of(view: dict[str, Any]) -> dict[str, Any]:
    try:
        return dict(json.loads(view.get("private_metadata") or "{}"))
    except ValueError:
        raise BadInput(FORM_OUT_OF_DATE) from None


class SlackReviews:
    def __init__(self, ctx: ListenerContext, poster: ReviewPoster) -> None:
        self.ctx = ctx
        self.poster = poster

    def member_of(self, user: str) -> MemberOf:
        async def check(group: str) -> bool:
            try:
                found = await self.ctx.client.usergroups_users_list(usergroup=group)
            except SlackApiError:
                return False
            return user in (found.get("users") or [])

        return check

    @guarded(_to_presser)
    async def on_approve(self, ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        press = t.button_press(body)
        actor = t.actor(press.team, press.user, press.channel)
        reply = await approvals.approve(
            self.ctx.engine, actor, press.job_id, self.member_of(press.user), self.poster.publish
        )
        await self._mark_queue(
            press.channel, press.message_ts, press.job_id, words.approved_by(f"<@{press.user}>")
        )
        await self.ctx.poster.ephemeral(press.channel, press.user, reply.text)

    @guarded(_to_presser)
    async def on_reject(self, ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        press = t.button_press(body)
        actor = t.actor(press.team, press.user, press.channel)
        await approvals.pressed(self.ctx.engine, actor, press.job_id, self.member_of(press.user))
        context = {"job_id": press.job_id, "channel": press.channel, "ts": press.message_ts}
        await self.ctx.client.views_open(trigger_id=press.trigger_id, view=reason_modal(context))

    @guarded(_to_rejecter)
    async def on_reason(self, ack: AsyncAck, body: dict[str, Any], view: dict[str, Any]) -> None:
        await ack()
        values = (view.get("state") or {}).get("values") or {}
        reason = str(((values.get(BLOCK_REASON) or {}).get("reason") or {}).get("value") or "")
        context = _context_of(view)
        user = str(body["user"]["id"])
        team = str(body["user"].get("team_id") or (body.get("team") or {}).get("id", ""))
        job_id, channel = str(context.get("job_id", "")), str(context.get("channel", ""))
        actor = t.actor(team, user, channel)
        reply = await approvals.reject(
            self.ctx.engine, actor, job_id, reason, self.member_of(user), self.poster.tell_privately
        )
        line = words.rejected_by(f"<@{user}>", reason.strip())
        await self._mark_queue(channel, str(context.get("ts", "")), job_id, line)
        await self.ctx.poster.ephemeral(channel, user, reply.text)

    async def _mark_queue(self, channel: str, ts: str, job_id: str, line: str) -> None:
        """The queue's message says what was decided, its buttons gone (a courtesy)."""
        try:
            await self.ctx.client.chat_update(
                channel=channel,
                ts=ts,
                text=line,
                blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": line}}],
            )
        except SlackApiError:
            pass


def register_reviews(app: AsyncApp, ctx: ListenerContext) -> ReviewPoster:
    poster = ReviewPoster(ctx.poster)
    reviews = SlackReviews(ctx, poster)
    app.action(ACTION_APPROVE)(reviews.on_approve)
    app.action(ACTION_REJECT)(reviews.on_reject)
    app.view(VIEW_REJECT)(reviews.on_reason)
    return poster
