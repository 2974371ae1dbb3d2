"""Saved subjects on Slack. Slack allows no slash commands inside threads, so besides
`/hidream subject list|show <name>|delete <name>` everything is also a mention of the bot:
`save subject <name>` with files attached (saves them), or in a result's thread (saves that
thread's latest image); `subject list`, `subject show <name>`, `subject delete <name>`. A "Save as
subject" button under a result opens a modal that asks for the name. Subjects belong to the
workspace; deleting one needs its creator or a workspace admin."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

from slack_bolt.context.ack.async_ack import AsyncAck

from adapters.slack import translate as t
from adapters.slack.boundary import Reply, guarded
from adapters.slack.context import ListenerContext
from bot import words
from bot.model.errors import BadInput
from bot.model.jobs import Job
from bot.model.requests import check_subject_name
from bot.usecases import subject_commands
from bot.usecases.access import Lookup
from bot.words import FORM_OUT_OF_DATE, SAVE_SUBJECT_HOW

ACTION_SUBJECT, VIEW_SUBJECT = t.ACTION_SUBJECT, t.VIEW_SUBJECT
BLOCK_NAME = "subject_name"
Say = Callable[[str], Awaitable[object]]
# The thread's latest job, given the asker's team and user, the channel and the thread.
LatestJob = Callable[[str, str, str, str], Awaitable[Job | None]]
IsAdmin = Callable[[str], Awaitable[bool]]

_ASK_RE = re.compile(
    r"(?:save\s+subject|subject\s+save)\s+(?P<save>\S+)|subjects?\s+list|subjects|"
    r"subject\s+(?P<action>show|delete)\s+(?P<name>\S+)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class SubjectAsk:
    action: str  # save, list, show, delete
    name: str = ""


def parse_subject_text(text: str) -> SubjectAsk | None:
    """A subject command, or None for anything else (a prompt). Only the whole text counts."""
    m = _ASK_RE.fullmatch(" ".join(text.split()))
    if m is None:
        return None
    if m.group("save"):
        return SubjectAsk("save", m.group("save"))
    if m.group("action"):
        return SubjectAsk(m.group("action").lower(), m.group("name"))
    return SubjectAsk("list")


def name_modal(context: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "modal",
        "callback_id": VIEW_SUBJECT,
        "title": {"type": "plain_text", "text": words.SUBJECT_FORM},
        "submit": {"type": "plain_text", "text": words.SUBJECT_SUBMIT},
        "close": {"type": "plain_text", "text": words.CANCEL},
        "private_metadata": json.dumps(context),
        "blocks": [
            {
                "type": "input",
                "block_id": BLOCK_NAME,
                "label": {"type": "plain_text", "text": words.SUBJECT_FIELD},
                "element": {"type": "plain_text_input", "action_id": "name", "max_length": 32},
            }
        ],
    }


def _to_presser(owner: SlackSubjects, args: Mapping[str, Any]) -> Reply:
    return owner.reply_to_presser(args)


def _to_namer(owner: SlackSubjects, args: Mapping[str, Any]) -> Reply:
    return owner.reply_to_namer(args)


class SlackSubjects:
    def __init__(self, ctx: ListenerContext, latest_job: LatestJob, is_admin: IsAdmin) -> None:
        self.ctx = ctx
        self.book = ctx.engine.subjects
        self._latest_job = latest_job
        self._is_admin = is_admin

    async def mention(self, m: t.Mention, ask: SubjectAsk) -> None:
        async def say(text: str) -> None:
            await self.ctx.poster.ephemeral(m.channel, m.user, text, thread_ts=m.reply_thread)

        if ask.action == "save" and not m.files:
            job = await self._latest_job(m.team, m.user, m.channel, m.thread_ts) if m.thread_ts else None
            if job is None:
                raise BadInput(SAVE_SUBJECT_HOW)
            actor = t.actor(m.team, m.user, m.channel)
            await say(
                (await subject_commands.save_result(self.book, actor, ask.name, job, latest_only=True)).text
            )
            return
        await self.run(ask, m.team, m.user, m.channel, m.reply_thread, say, files=m.files)

    async def run(
        self,
        ask: SubjectAsk,
        team: str,
        user: str,
        channel: str,
        thread_ts: str | None,
        say: Say,
        *,
        files: list[dict[str, Any]] | None = None,
    ) -> None:
        actor = t.actor(team, user, channel)
        if ask.action == "save":
            refs = t.image_refs(files or [], self.ctx.bot_token, self.ctx.max_image_bytes)
            await say((await subject_commands.save(self.book, actor, ask.name, refs)).text)
        elif ask.action == "show":
            shown = await subject_commands.show(self.book, actor, ask.name)
            uploads = [{"content": p.data, "filename": p.name, "title": ask.name} for p in shown.images]
            await self.ctx.client.files_upload_v2(
                channel=channel, thread_ts=thread_ts, file_uploads=uploads, initial_comment=shown.text
            )
        elif ask.action == "delete":
            # Workspace admins are asked of Slack only when someone deletes another person's subject.
            creator = await subject_commands.creator_of(self.book, actor, ask.name)
            admin = creator != actor.key and await self._is_admin(user)
            await say((await subject_commands.delete(self.book, replace(actor, admin=admin), ask.name)).text)
        else:
            await say((await subject_commands.listing(self.book, actor)).text)

    @guarded(_to_presser)
    async def on_button(self, ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        press = t.button_press(body)
        context = {"job_id": press.job_id, "channel": press.channel, "thread_ts": press.thread_ts}
        await self.ctx.client.views_open(trigger_id=press.trigger_id, view=name_modal(context))

    @guarded(_to_namer)
    async def on_submit(self, ack: AsyncAck, body: dict[str, Any], view: dict[str, Any]) -> None:
        values = (view.get("state") or {}).get("values") or {}
        name = str(((values.get(BLOCK_NAME) or {}).get("name") or {}).get("value") or "").strip()
        try:
            check_subject_name(name)
        except BadInput as exc:
            # A pure check, so it may run before the ack: the modal stays open and says why.
            await ack(response_action="errors", errors={BLOCK_NAME: exc.user_message[:150]})
            return
        await ack()
        context = _context_of(view)
        user = str(body["user"]["id"])
        team = str(body["user"].get("team_id") or (body.get("team") or {}).get("id", ""))
        actor = t.actor(team, user)
        job = await Lookup(self.ctx.engine).job(actor, str(context.get("job_id", "")))
        reply = await subject_commands.save_result(self.book, actor, name, job)
        await self.reply_to_namer({"body": body, "view": view})(reply.text)

    def reply_to_presser(self, args: Mapping[str, Any]) -> Reply:
        press = t.button_press(args["body"])
        return partial(self.ctx.poster.ephemeral, press.channel, press.user, thread_ts=press.thread_ts)

    def reply_to_namer(self, args: Mapping[str, Any]) -> Reply:
        context, user = _context_of(args["view"]), str(args["body"]["user"]["id"])
        channel, thread_ts = str(context.get("channel", "")), str(context.get("thread_ts", ""))
        return partial(self.ctx.poster.ephemeral, channel, user, thread_ts=thread_ts)


def _context_of(view: dict[str, Any]) -> dict[str, Any]:
    try:
        return dict(json.loads(view.get("private_metadata") or "{}"))
    except ValueError:
        raise BadInput(FORM_OUT_OF_DATE) from None
