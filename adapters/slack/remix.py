"""Remix on Slack: the button under a result opens a dialog (views.open with the press's trigger_id)
filled in with the request as typed and "keep the image" ticked; its private_metadata names the
result. The submission is read before it is acknowledged (a bad flag is shown in the dialog with
`response_action: errors`, and nothing is spent), then made as the result's next version in its thread
(bot/usecases/remix.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from typing import Any, Protocol

from slack_bolt.context.ack.async_ack import AsyncAck

from adapters.slack import blocks
from adapters.slack import translate as t
from adapters.slack.boundary import Reply, guarded
from adapters.slack.context import ListenerContext
from bot import words
from bot.model.errors import BadInput
from bot.model.jobs import Job
from bot.usecases import remix
from bot.usecases.access import Lookup

SubmitWith = Callable[[dict[str, Any]], Awaitable[Job]]
# The job a button names, if the presser may see it (else None, and they were told).
Pressed = Callable[[t.ButtonPress], Awaitable[Job | None]]


class Launch(Protocol):
    """Handlers._launch: a status message in the thread, then the job submitted to answer there."""

    async def __call__(
        self,
        *,
        channel: str,
        thread_ts: str | None,
        user: str,
        verb: str,
        prompt: str,
        submit: SubmitWith,
        team: str = "",
    ) -> Job: ...


def _to_presser(r: SlackRemix, args: Mapping[str, Any]) -> Reply:
    press = t.button_press(args["body"])
    return partial(r.ctx.poster.ephemeral, press.channel, press.user, thread_ts=press.thread_ts)


def _to_remixer(r: SlackRemix, args: Mapping[str, Any]) -> Reply:
    context = t.remix_submission(args["view"]).context
    user = str(args["body"]["user"]["id"])
    channel, thread_ts = str(context.get("channel", "")), str(context.get("thread_ts", ""))
    return partial(r.ctx.poster.ephemeral, channel, user, thread_ts=thread_ts)


class SlackRemix:
    def __init__(self, ctx: ListenerContext, launch: Launch, pressed: Pressed) -> None:
        self.ctx = ctx
        self.lookup = Lookup(ctx.engine)
        self._launch = launch
        self._pressed = pressed

    @guarded(_to_presser)
    async def on_button(self, ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        press = t.button_press(body)
        job = await self._pressed(press)
        if job is None:
            return
        context = t.form_context(press, job.id)
        await self.ctx.client.views_open(
            trigger_id=press.trigger_id, view=blocks.remix_modal(context, remix.form(job))
        )

    @guarded(_to_remixer)
    async def on_submit(self, ack: AsyncAck, body: dict[str, Any], view: dict[str, Any]) -> None:
        try:
            sub = t.remix_submission(view)
            asked = remix.read(sub.text, keep=sub.keep)
        except BadInput as exc:
            # Reading is pure, so it runs before the ack: the dialog stays open and shows why.
            await ack(response_action="errors", errors={t.BLOCK_INSTRUCTION: exc.user_message[:150]})
            return
        await ack()
        user = str(body["user"]["id"])
        team = str(body["user"].get("team_id") or (body.get("team") or {}).get("id", ""))
        ctx = sub.context
        channel, thread_ts = str(ctx.get("channel", "")), str(ctx.get("thread_ts", ""))
        actor = t.actor(team, user, channel)
        shown = t.message_key(channel, str(ctx.get("message_ts", "")))
        # Looked up before anything is posted: another workspace's job leaves no trace in the thread.
        job = await remix.target(self.lookup, actor, str(ctx.get("job_id", "")), shown)

        async def submit(origin: dict[str, Any]) -> Job:
            dedup = f"slack:{view.get('id', '')}"
            return await remix.remix(self.ctx.engine, actor, job, asked, origin=origin, dedup_key=dedup)

        await self._launch(
            channel=channel,
            thread_ts=thread_ts,
            user=user,
            verb=words.REMIXED,
            prompt=asked.request.prompt,
            submit=submit,
            team=team,
        )
