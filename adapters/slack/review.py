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
from adapters.slack.translate import message_key, result_filename
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
    ) -> None:
        uploads = [
            {"content": img.data, "filename": result_filename(job.id, i, img.extension), "alt_txt": job.request.prompt[:1000]}
            for i, img in enumerate(await self.poster._screened(job, images))
        ]  # fmt: skip
        if uploads:
            await client.files_upload_v2(channel=channel, thread_ts=thread, file_uploads=uploads)

    async def queue_for_review(self, job: Job, images: list[OutputImage]) -> None:
        client = await self.poster._for(job)
        review = job.origin["review"]
        queue, spec = str(review["queue"]), str(review["reviewers"])
        targets = [queue]
        if queue == "dm":
            targets = []
            for person in spec.partition(":")[2].split(","):
                opened = await client.conversations_open(users=person)
                targets.append(str(opened["channel"]["id"]))
        for channel in targets:
            await self._upload(client, job, images, channel, None)
            await client.chat_postMessage(
                channel=channel, text=f"{words.REVIEW_ASKED} {job.request.prompt[:200]}",
                blocks=review_blocks(job, words.REVIEW_ASKED),
            )  # fmt: skip

    async def publish(self, job: Job, images: list[OutputImage], line: str) -> str:
        client = await self.poster._for(job)
        posted = await client.chat_postMessage(
            channel=job.channel, text=f"<@{job.user_id}>: {blocks.result_summary(job)}\n{line}",
            blocks=review_blocks(job, line, buttons=False),
        )  # fmt: skip
        await self._upload(client, job, images, job.channel, str(posted["ts"]))
        return message_key(job.channel, str(posted["ts"]))

    async def withdraw(self, engine: Engine, job: Job) -> int:
        """Delete what an approval posted (an operator's take-down): the files in its message's
        thread, then the message; how many messages went."""
        key = await approvals.approved_post(engine, job)
        if key is None:
            return 0
        channel, _, ts = key.rpartition(":")
        client = await self.poster._for(job)
        prefix, gone = f"hidream-{job.id}-", 0
        for m in await self.poster.thread_messages(channel, ts, client):
            ours = await self.poster.delete_files(client, m, prefix)
            if ours or m.get("ts") == ts:
                gone += await self.poster._deleted(client, channel, str(m["ts"]))
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
