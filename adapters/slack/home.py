"""The App Home tab: a person's images left today, their recent results (with links), their saved
subjects and their defaults in this workspace. Built afresh and published with `views.publish` each
time they open the tab (`app_home_opened`), with the token of the workspace the event came from."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from slack_bolt.app.async_app import AsyncApp

from adapters.slack import translate as t
from adapters.slack.blocks import Block, clip, escape
from adapters.slack.context import ListenerContext
from bot import words
from bot.model.jobs import JobState
from bot.usecases.home import HomeState, QuotaStatus, Recent, home

if TYPE_CHECKING:
    from bot.jobs.engine import Engine

log = logging.getLogger(__name__)

RECENT_SHOWN = 10
# Slack's limits: 100 blocks in a view, 3000 characters in a section's text, 150 in a header's.
MAX_BLOCKS = 100
_PROMPT_SHOWN = 200


async def gather(engine: Engine, team: str, user: str) -> HomeState:
    return await home(engine, t.actor(team, user), RECENT_SHOWN)


def _section(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": clip(text)}}


def _header(text: str) -> Block:
    return {"type": "header", "text": {"type": "plain_text", "text": clip(text, 150)}}


def _date(epoch: float, fallback: str) -> str:
    # Slack shows it in the reader's own time zone.
    return f"<!date^{int(epoch)}^{{date_short_pretty}} {{time}}|{fallback}>"


def result_link(item: Recent) -> str | None:
    """Where the result stands in Slack: its summary in its thread; while it is not delivered (or when
    it failed), the request's status message, as long as its origin is still held."""
    if item.post is not None and item.thread is not None:
        channel, ts = t.split_key(item.post)
        return t.permalink(channel, ts, t.split_key(item.thread)[1])
    origin = item.job.origin
    if item.job.state is JobState.DELIVERED or not origin.get("channel") or not origin.get("status_ts"):
        return None
    thread_ts = str(origin.get("thread_ts") or "")
    return t.permalink(str(origin["channel"]), str(origin["status_ts"]), thread_ts)


def _result_line(item: Recent) -> str:
    job = item.job
    state = words.HOME_STATES.get(job.state.value, words.HOME_IN_PROGRESS)
    link = result_link(item)
    if link is None and job.state is JobState.DELIVERED:
        state = words.HOME_DELETED
    count = words.images(job.request.n)
    when = _date(job.created_at, words.HOME_RECENTLY)
    shown = f"<{link}|{words.HOME_OPEN}>" if link else words.HOME_NO_LINK
    return f"*{escape(clip(job.request.prompt, _PROMPT_SHOWN))}*\n{state} · {count} · {when} · {shown}"


def _quota_text(status: QuotaStatus) -> str:
    when = _date(status.resets_at.timestamp(), words.HOME_AT_MIDNIGHT)
    text = words.home_quota(f"*{status.remaining}*", status.limit, status.used, when)
    if status.ceiling is not None:
        text += "\n" + words.home_tenant_made(status.tenant_used, status.ceiling)
    return text


def _subjects_text(state: HomeState) -> str:
    if not state.subjects:
        text = words.HOME_NO_SUBJECTS
    else:
        text = words.home_yours(", ".join(f"`{escape(name)}`" for name in state.subjects))
        text += "\n" + words.HOME_SUBJECT_USE
    if state.others_subjects:
        text += "\n" + words.home_others_subjects(state.others_subjects)
    return text


def _defaults_text(defaults: dict[str, str]) -> str:
    if not defaults:
        return words.HOME_NO_DEFAULTS
    shown = " ".join(f"--{escape(k)} {escape(v)}" for k, v in sorted(defaults.items()))
    return f"`{shown}`\n{words.HOME_DEFAULTS_NOTE}"


def home_view(state: HomeState) -> dict[str, Any]:
    """The Home tab's view: within Slack's limits whatever the person's prompts and names hold."""
    blocks: list[Block] = [_header(words.HOME_TITLE), _section(_quota_text(state.status))]
    blocks += [{"type": "divider"}, _header(words.HOME_RECENT)]
    if state.recent:
        blocks += [_section(_result_line(item)) for item in state.recent]
    else:
        blocks.append(_section(words.HOME_NOTHING_YET))
    blocks += [{"type": "divider"}, _header(words.HOME_SUBJECTS), _section(_subjects_text(state))]
    blocks += [_header(words.HOME_DEFAULTS), _section(_defaults_text(state.defaults))]
    return {"type": "home", "blocks": blocks[:MAX_BLOCKS]}


def register_home(app: AsyncApp, ctx: ListenerContext) -> None:
    async def on_home_opened(body: dict[str, Any], event: dict[str, Any]) -> None:
        # The Messages tab opens the bot's DM: nothing to publish there.
        if event.get("tab") != "home":
            return
        user, team = str(event.get("user", "")), str(body.get("team_id", ""))
        try:
            view = home_view(await gather(ctx.engine, team, user))
            # ctx.client: the token bolt authorized for this event (its workspace's, under OAuth).
            await ctx.client.views_publish(user_id=user, view=view)
        except Exception:
            # A Home tab left as it was is no reason to fail the event (Slack would resend it).
            log.warning("could not publish the Home tab of %s in %s", user, team, exc_info=True)

    app.event(t.EVENT_HOME_OPENED)(on_home_opened)
