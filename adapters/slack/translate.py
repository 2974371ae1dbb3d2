"""Slack payloads -> what the bot should do. Pure functions: no I/O, tested on recorded JSON.

Keys the rest of the adapter shares are built here too, so a button, a thread and a posted
message are always named the same way:
  message key  "C123:1700000000.000100"   (channel and ts of one message)
  thread key   "C123:1700000000.000100"   (channel and ts of the thread's root)
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from bot import words
from bot.jobs.versions import Version
from bot.model.errors import BadInput, MediaError
from bot.model.requests import ImageRef, ParsedCommand, ParsedSet, parse_set
from bot.usecases.actor import Actor

SURFACE = "slack"
# Metadata event type on the summary message of a delivered job: how a redelivery finds it.
RESULT_EVENT = "hidream_result"
# Action ids of the result buttons; their value is the job id, so they survive a restart.
ACTION_REROLL = "hidream_reroll"
ACTION_VARY = "hidream_vary"
ACTION_EDIT = "hidream_edit"
# Edit region: the requester's private link to the region editor (in the overflow menu).
ACTION_REGION = "hidream_region"
ACTION_DELETE = "hidream_delete"
ACTION_SUBJECT = "hidream_subject"
ACTION_FINAL = "hidream_final"
# Remix: the button opens a dialog (VIEW_REMIX) filled in with the request as typed.
ACTION_REMIX = "hidream_remix"
VIEW_REMIX = "hidream_remix_modal"
# The button that confirms a held set; its value is the set's id.
ACTION_CONFIRM_SET = "hidream_confirm_set"
# The toolbox (bot/usecases/toolbox.py): Vary (Subtle) keeps ACTION_VARY.
ACTION_VARY_STRONG = "hidream_vary_strong"
ACTION_UPSCALE = "hidream_upscale"
ACTION_ZOOM_15 = "hidream_zoom15"
ACTION_ZOOM_2 = "hidream_zoom2"
ACTION_SQUARE = "hidream_square"
ACTION_PAN_LEFT = "hidream_pan_left"
ACTION_PAN_RIGHT = "hidream_pan_right"
ACTION_PAN_UP = "hidream_pan_up"
ACTION_PAN_DOWN = "hidream_pan_down"
# The overflow menu of the tools that are not buttons; each option's value is "<action id>:<job id>".
ACTION_MORE = "hidream_more"
VIEW_SUBJECT = "hidream_subject_modal"
SHORTCUT_EDIT = "hidream_edit_message"
VIEW_EDIT = "hidream_edit_modal"
# The Events API events the adapter answers; slack-app-manifest.yml subscribes exactly these
# (tests/test_slack_manifest.py reads both the manifest and the listeners bolt holds).
EVENT_MENTION = "app_mention"
EVENT_HOME_OPENED = "app_home_opened"
EVENT_UNINSTALLED = "app_uninstalled"
EVENT_TOKENS_REVOKED = "tokens_revoked"
# Events listened to only to let them pass: Slack sends `message` events to an app subscribed to
# them (an app made from an older or edited manifest); the shipped manifest does not subscribe them.
IGNORED_EVENTS = ("message",)
BLOCK_INSTRUCTION = "instruction"
BLOCK_IMAGE = "image_choice"
# The Remix dialog's "keep the image" checkbox: its block, and its one option's value.
BLOCK_KEEP = "keep_image"
KEEP_VALUE = "keep"

_MENTION_RE = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")
_USER_ARG = r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>"
_RESULT_NAME_RE = re.compile(r"^hidream-([A-Za-z0-9_-]+)-(\d+)\.[a-z]+$")


def message_key(channel: str, ts: str) -> str:
    return f"{channel}:{ts}"


def permalink(channel: str, ts: str, thread_ts: str | None = None) -> str:
    """A link to one message, a reply in a thread when `thread_ts` is another message's (Slack's
    archive links open the message in the workspace of whoever follows them)."""
    url = f"https://slack.com/archives/{channel}/p{ts.replace('.', '')}"
    if thread_ts and thread_ts != ts:
        url += f"?thread_ts={thread_ts}&cid={channel}"
    return url


def version_link(version: Version) -> str:
    """A link to a version's summary message in its thread."""
    channel, ts = split_key(version.post)
    _, thread_ts = split_key(version.thread_key)
    return f"<{permalink(channel, ts, thread_ts)}|v{version.number}>"


def split_key(key: str) -> tuple[str, str]:
    channel, _, ts = key.partition(":")
    return channel, ts


def result_filename(job_id: str, index: int, extension: str) -> str:
    return f"hidream-{job_id}-{index + 1}.{extension}"


def parse_result_filename(name: str) -> tuple[str, int] | None:
    """The job id and zero-based image index our own uploads carry in their file name."""
    m = _RESULT_NAME_RE.match(name)
    if not m or int(m.group(2)) < 1:
        return None
    return m.group(1), int(m.group(2)) - 1


# --- /hidream text ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Generate:
    parsed: ParsedCommand
    # Every job the prompt asks for (`{a, b}` choices, `--repeat`); `parsed` is the first.
    whole: ParsedSet | None = None


@dataclass(frozen=True)
class Usage:
    # Someone else's usage (admins only); None: the caller's own.
    user_id: str | None = None


@dataclass(frozen=True)
class AdminCommand:
    action: Literal["limit", "grant", "reset"]
    scope: Literal["user", "workspace"]
    subject: str  # a user id, or "" for the workspace (the caller's team is filled in later)
    amount: int | None = None  # None with "limit": back to the default


@dataclass(frozen=True)
class Help:
    pass


@dataclass(frozen=True)
class Preference:
    """`/hidream settings ...` (anyone, their own defaults) or `/hidream policy ...` (admins)."""

    kind: Literal["settings", "policy"]
    text: str


@dataclass(frozen=True)
class KitCommand:
    """`/hidream kit save|list|show|delete|bind ...`: style kits; `text` is what follows `kit`."""

    action: Literal["kit save", "kit list", "kit show", "kit delete", "kit bind"]
    text: str


SlashAction = Generate | Usage | AdminCommand | Help | Preference | KitCommand

# The provider the help names in its example.
EXAMPLE_PROVIDER = "fal"
HELP_TEXT = words.help_with_flags(EXAMPLE_PROVIDER)


def parse_slash_text(text: str) -> SlashAction:
    """Tell a sub-command from a prompt. Only exact sub-command shapes count, so a prompt that
    merely starts with a word like "usage" is still a prompt."""
    t = " ".join(text.split())
    if t.lower() in ("help", ""):
        return Help()
    if m := re.fullmatch(r"settings(?:\s+(reset|[-\u2014\u2013].*))?", t, re.IGNORECASE):
        return Preference("settings", m.group(1) or "")
    if m := re.fullmatch(
        r"policy(?:\s+((?:ban|unban|nsfw|tier|provider|export-prompts|project|review)\s+.+|reset))?",
        t,
        re.IGNORECASE,
    ):
        return Preference("policy", m.group(1) or "")
    if m := re.fullmatch(r"kit\s+((save|list|show|delete|bind)\b.*)", t, re.IGNORECASE):
        return KitCommand(f"kit {m.group(2).lower()}", m.group(1))  # type: ignore[arg-type]
    if m := re.fullmatch(rf"usage(?:\s+{_USER_ARG})?", t, re.IGNORECASE):
        return Usage(m.group(1))
    if m := re.fullmatch(rf"limit\s+(?:{_USER_ARG}|(workspace|team))\s+(\d+|off|none|default)", t, re.I):
        amount = int(m.group(3)) if m.group(3).isdigit() else None
        if m.group(1):
            return AdminCommand("limit", "user", m.group(1), amount)
        return AdminCommand("limit", "workspace", "", amount)
    if m := re.fullmatch(rf"grant\s+{_USER_ARG}\s+(\d+)", t, re.IGNORECASE):
        return AdminCommand("grant", "user", m.group(1), int(m.group(2)))
    if m := re.fullmatch(rf"reset\s+{_USER_ARG}", t, re.IGNORECASE):
        return AdminCommand("reset", "user", m.group(1))
    whole = parse_set(text)
    return Generate(whole.first, whole)


def strip_mentions(text: str) -> str:
    """A mention's text without the `<@U...>` tokens (the bot's and anyone else's)."""
    return " ".join(_MENTION_RE.sub(" ", text).split())


# --- files people attach -----------------------------------------------------------------------


def image_refs(files: list[dict[str, Any]], bot_token: str, max_bytes: int) -> list[ImageRef]:
    """Slack files -> references the engine downloads with the bot token (files are private)."""
    refs: list[ImageRef] = []
    for f in files:
        name = str(f.get("name") or f.get("title") or f.get("id") or words.A_FILE)
        if f.get("mode") in ("tombstone", "hidden_by_limit") or f.get("file_access") == "access_denied":
            raise MediaError(words.file_unavailable(name))
        mimetype = str(f.get("mimetype") or "")
        if not mimetype.startswith("image/"):
            kind = mimetype or words.UNKNOWN_TYPE
            raise MediaError(words.not_an_image(name, kind))
        size = int(f.get("size") or 0)
        if size > max_bytes:
            raise MediaError(words.image_too_large(name, size, max_bytes))
        url = f.get("url_private_download") or f.get("url_private")
        if not url:
            raise MediaError(words.file_without_link(name))
        refs.append(ImageRef(url=str(url), headers={"Authorization": f"Bearer {bot_token}"}, filename=name))
    return refs


# --- what arrived -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SlashInvocation:
    team: str
    channel: str
    user: str
    text: str
    trigger_id: str
    response_url: str


def slash_invocation(form: dict[str, Any]) -> SlashInvocation:
    return SlashInvocation(
        team=str(form.get("team_id", "")),
        channel=str(form["channel_id"]),
        user=str(form["user_id"]),
        text=str(form.get("text", "")),
        trigger_id=str(form.get("trigger_id", "")),
        response_url=str(form.get("response_url", "")),
    )


@dataclass(frozen=True)
class Mention:
    team: str
    channel: str
    user: str
    text: str  # without mentions
    ts: str
    thread_ts: str | None  # set when the mention is a reply in a thread
    files: list[dict[str, Any]] = field(default_factory=list)

    @property
    def reply_thread(self) -> str:
        """Where answers go: the mention's thread, or a new thread under the mention."""
        return self.thread_ts or self.ts


def mention_from_event(event: dict[str, Any], team_id: str = "") -> Mention:
    thread_ts = event.get("thread_ts")
    return Mention(
        team=str(event.get("team") or team_id),
        channel=str(event["channel"]),
        user=str(event["user"]),
        text=strip_mentions(str(event.get("text", ""))),
        ts=str(event["ts"]),
        thread_ts=str(thread_ts) if thread_ts and thread_ts != event.get("ts") else None,
        files=list(event.get("files") or []),
    )


@dataclass(frozen=True)
class ButtonPress:
    action: str
    job_id: str
    team: str
    channel: str
    user: str
    message_ts: str
    thread_ts: str  # the thread the result sits in
    trigger_id: str
    action_ts: str


def form_context(press: ButtonPress, job_id: str) -> dict[str, str]:
    """What a form opened by a button carries in its private_metadata: the job, and where the result
    it was opened from sits (so the answer goes in its thread)."""
    return {
        "job_id": job_id,
        "channel": press.channel,
        "thread_ts": press.thread_ts,
        "message_ts": press.message_ts,
    }


def button_press(body: dict[str, Any]) -> ButtonPress:
    """A button pressed, or an option chosen in the overflow menu (read as the button it stands for)."""
    action = body["actions"][0]
    container = body.get("container") or {}
    message = body.get("message") or {}
    message_ts = str(container.get("message_ts") or message.get("ts", ""))
    action_id, value = str(action["action_id"]), str(action.get("value", ""))
    chosen = action.get("selected_option")
    if isinstance(chosen, dict):
        action_id, _, value = str(chosen.get("value", "")).partition(":")
    return ButtonPress(
        action=action_id,
        job_id=value,
        # In a channel shared by several workspaces the presser's own is theirs, not the channel host's.
        team=str(body["user"].get("team_id") or (body.get("team") or {}).get("id", "")),
        channel=str(container.get("channel_id") or (body.get("channel") or {}).get("id", "")),
        user=str(body["user"]["id"]),
        message_ts=message_ts,
        thread_ts=str(message.get("thread_ts") or container.get("thread_ts") or message_ts),
        trigger_id=str(body.get("trigger_id", "")),
        action_ts=str(action.get("action_ts", "")),
    )


@dataclass(frozen=True)
class ShortcutInvocation:
    team: str
    channel: str
    user: str
    trigger_id: str
    message_ts: str
    thread_ts: str
    file_ids: list[str]


def actor(team: str, user: str, channel: str = "") -> Actor:
    return Actor(surface=SURFACE, workspace_id=team, user_id=user, channel_id=channel)


def press_actor(press: ButtonPress) -> Actor:
    return actor(press.team, press.user, press.channel)


def shortcut_invocation(body: dict[str, Any]) -> ShortcutInvocation:
    message = body.get("message") or {}
    ts = str(message.get("ts") or body.get("message_ts", ""))
    images = [f for f in message.get("files") or [] if str(f.get("mimetype", "")).startswith("image/")]
    return ShortcutInvocation(
        team=str((body.get("team") or {}).get("id", "")),
        channel=str((body.get("channel") or {}).get("id", "")),
        user=str(body["user"]["id"]),
        trigger_id=str(body.get("trigger_id", "")),
        message_ts=ts,
        thread_ts=str(message.get("thread_ts") or ts),
        file_ids=[str(f["id"]) for f in images],
    )


@dataclass(frozen=True)
class EditSubmission:
    instruction: str
    image_index: int | None
    context: dict[str, Any]  # what the modal was opened for (private_metadata)


def edit_submission(view: dict[str, Any]) -> EditSubmission:
    values: dict[str, dict[str, dict[str, Any]]] = (view.get("state") or {}).get("values") or {}
    empty: dict[str, Any] = {}
    text_block = values.get(BLOCK_INSTRUCTION) or {}
    instruction = str(next(iter(text_block.values()), empty).get("value") or "")
    index: int | None = None
    choice = values.get(BLOCK_IMAGE) or {}
    selected = next(iter(choice.values()), empty).get("selected_option")
    if selected and str(selected.get("value", "")).isdigit():
        index = int(selected["value"])  # "all": every image together
    try:
        context = json.loads(view.get("private_metadata") or "{}")
    except ValueError:
        raise BadInput(words.FORM_OUT_OF_DATE) from None
    return EditSubmission(instruction=instruction, image_index=index, context=context)


@dataclass(frozen=True)
class RemixSubmission:
    text: str
    keep: bool
    context: dict[str, Any]  # the result the dialog was opened under (private_metadata)


def remix_submission(view: dict[str, Any]) -> RemixSubmission:
    """The Remix dialog sent back: its text, whether "keep the image" is ticked, and its context."""
    values: dict[str, dict[str, dict[str, Any]]] = (view.get("state") or {}).get("values") or {}
    empty: dict[str, Any] = {}
    text = str(next(iter((values.get(BLOCK_INSTRUCTION) or {}).values()), empty).get("value") or "")
    ticked = next(iter((values.get(BLOCK_KEEP) or {}).values()), empty).get("selected_options") or []
    keep = any(str(o.get("value")) == KEEP_VALUE for o in ticked)
    try:
        context = json.loads(view.get("private_metadata") or "{}")
    except ValueError:
        raise BadInput(words.FORM_OUT_OF_DATE) from None
    return RemixSubmission(text=text, keep=keep, context=context if isinstance(context, dict) else {})
