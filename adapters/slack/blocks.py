"""Block Kit for the Slack adapter: status lines, result buttons and the edit modal."""

from __future__ import annotations

import json
from typing import Any

from adapters.slack.translate import (
    ACTION_CONFIRM_SET,
    ACTION_DELETE,
    ACTION_EDIT,
    ACTION_FINAL,
    ACTION_MORE,
    ACTION_PAN_DOWN,
    ACTION_PAN_LEFT,
    ACTION_PAN_RIGHT,
    ACTION_PAN_UP,
    ACTION_REGION,
    ACTION_REMIX,
    ACTION_REROLL,
    ACTION_SQUARE,
    ACTION_SUBJECT,
    ACTION_UPSCALE,
    ACTION_VARY,
    ACTION_VARY_STRONG,
    ACTION_ZOOM_2,
    ACTION_ZOOM_15,
    BLOCK_IMAGE,
    BLOCK_INSTRUCTION,
    BLOCK_KEEP,
    KEEP_VALUE,
    RESULT_EVENT,
    VIEW_EDIT,
    VIEW_REMIX,
)
from bot import words
from bot.model.jobs import Job
from bot.usecases.actions import Action, Kind, Weight, result_actions
from bot.usecases.remix import Form

Block = dict[str, Any]
# Slack refuses section text over 3000 characters; prompts may be up to 5000.
_TEXT_MAX = 2900
# The longest value a plain_text_input takes (its max_length), and an option's description.
_INPUT_MAX = 3000
_DESCRIPTION_MAX = 75


def clip(text: str, limit: int = _TEXT_MAX) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def escape(text: str) -> str:
    """Slack's three control characters, so a prompt cannot ping @channel or forge a link."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def status_blocks(user: str, verb: str, prompt: str, line: str) -> list[Block]:
    """The message that names the requester and the prompt, and shows how the job is doing."""
    return [
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": clip(f"<@{user}> {verb}: {escape(prompt)}")},
        },
        {"type": "context", "elements": [{"type": "mrkdwn", "text": clip(line, 300)}]},
    ]


def status_text(user: str, verb: str, prompt: str, line: str) -> str:
    return clip(f"<@{user}> {verb}: {escape(prompt)} ({line})")


def result_summary(job: Job) -> str:
    w, h = job.request.dimensions()
    line = f"{words.images(job.request.n)} · {job.mode} · seed {job.seed} · {w}x{h} · {job.tier} · {job.provider}"
    kit = words.kit_used(job.request.kit, job.request.kit_version)
    return f"{line} · {kit}" if kit else line


# Each action the core offers, by its persistent action id. Undo is said in a result's thread on
# Slack ("undo"), so it has no button here.
ACTION_IDS = {
    Kind.REROLL: ACTION_REROLL,
    Kind.VARY: ACTION_VARY,
    Kind.VARY_STRONG: ACTION_VARY_STRONG,
    Kind.EDIT: ACTION_EDIT,
    Kind.REGION: ACTION_REGION,
    Kind.UPSCALE: ACTION_UPSCALE,
    Kind.ZOOM_15: ACTION_ZOOM_15,
    Kind.ZOOM_2: ACTION_ZOOM_2,
    Kind.SQUARE: ACTION_SQUARE,
    Kind.PAN_LEFT: ACTION_PAN_LEFT,
    Kind.PAN_RIGHT: ACTION_PAN_RIGHT,
    Kind.PAN_UP: ACTION_PAN_UP,
    Kind.PAN_DOWN: ACTION_PAN_DOWN,
    Kind.DELETE: ACTION_DELETE,
    Kind.SUBJECT: ACTION_SUBJECT,
    Kind.FINAL: ACTION_FINAL,
    Kind.REMIX: ACTION_REMIX,
}
# The actions that sit in the overflow menu after the buttons (Slack allows 2 to 5 options there).
OVERFLOW = (Kind.REGION, Kind.PAN_LEFT, Kind.PAN_RIGHT, Kind.PAN_UP, Kind.PAN_DOWN)
_CONFIRM = {
    "title": {"type": "plain_text", "text": words.DELETE_CONFIRM_TITLE},
    "text": {"type": "plain_text", "text": words.DELETE_CONFIRM_TEXT},
    "confirm": {"type": "plain_text", "text": words.DELETE_CONFIRM_YES},
    "deny": {"type": "plain_text", "text": words.DELETE_CONFIRM_NO},
}


def result_blocks(job: Job) -> list[Block]:
    """Summary and buttons under a delivered job. Each button's value is the job id: the store
    answers for it, so the buttons keep working after a restart."""
    return [
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": clip(f"<@{job.user_id}>: {escape(job.request.prompt)}")},
        },
        {"type": "context", "elements": [{"type": "mrkdwn", "text": result_summary(job)}]},
        {
            "type": "actions",
            "block_id": "hidream_buttons",
            "elements": result_elements(job),
        },
    ]


def confirm_set_blocks(text: str, set_id: str) -> list[Block]:
    """The question a held set waits on, and the one button that confirms it (its value: the set)."""
    button = _button(words.ACTION_CONFIRM_SET, ACTION_CONFIRM_SET, set_id)
    button["style"] = "primary"
    return [
        {"type": "section", "text": {"type": "mrkdwn", "text": clip(text)}},
        {"type": "actions", "block_id": "hidream_confirm_set", "elements": [button]},
    ]


def result_elements(job: Job) -> list[Block]:
    """The job's actions as buttons, then the overflow menu of those in OVERFLOW."""
    offered = [action for action in result_actions(job) if action.kind in ACTION_IDS]
    buttons = [action_button(action, job.id) for action in offered if action.kind not in OVERFLOW]
    more = [_option(a.label, f"{ACTION_IDS[a.kind]}:{job.id}") for a in offered if a.kind in OVERFLOW]
    if len(more) < 2:
        return buttons + [action_button(a, job.id) for a in offered if a.kind in OVERFLOW]
    return [*buttons, {"type": "overflow", "action_id": ACTION_MORE, "options": more}]


def action_button(action: Action, value: str) -> Block:
    button = _button(action.label, ACTION_IDS[action.kind], value)
    if action.weight is Weight.DANGER:
        button["style"] = "danger"
    if action.confirm:
        button["confirm"] = _CONFIRM
    return button


def result_metadata(job: Job) -> dict[str, Any]:
    return {"event_type": RESULT_EVENT, "event_payload": {"job_id": job.id}}


def _button(label: str, action_id: str, value: str) -> Block:
    return {
        "type": "button",
        "text": {"type": "plain_text", "text": label},
        "action_id": action_id,
        "value": value,
    }


def edit_modal(context: dict[str, Any], image_count: int) -> dict[str, Any]:
    """Asks what to change. `context` (where to answer, what to edit) rides in private_metadata."""
    blocks: list[Block] = [
        {
            "type": "input",
            "block_id": BLOCK_INSTRUCTION,
            "label": {"type": "plain_text", "text": words.EDIT_FIELD},
            "element": {
                "type": "plain_text_input",
                "action_id": "text",
                "multiline": True,
                "max_length": 3000,
                "placeholder": {"type": "plain_text", "text": words.EDIT_PLACEHOLDER},
            },
        }
    ]
    if image_count > 1:
        options = [_option(words.image_choice(i + 1), str(i)) for i in range(image_count)]
        options.append(_option(words.ALL_IMAGES, "all"))
        blocks.append(
            {
                "type": "input",
                "block_id": BLOCK_IMAGE,
                "label": {"type": "plain_text", "text": words.WHICH_IMAGE},
                "element": {
                    "type": "static_select",
                    "action_id": "which",
                    "options": options,
                    "initial_option": options[0],
                },
            }
        )
    return {
        "type": "modal",
        "callback_id": VIEW_EDIT,
        "title": {"type": "plain_text", "text": words.EDIT_MENU},
        "submit": {"type": "plain_text", "text": words.EDIT_SUBMIT},
        "close": {"type": "plain_text", "text": words.CANCEL},
        "private_metadata": json.dumps(context),
        "blocks": blocks,
    }


def remix_modal(context: dict[str, Any], form: Form) -> dict[str, Any]:
    """The Remix dialog: the request as typed, to change, and "keep the image" ticked or not.
    `context` (the result it was opened under, where to answer) rides in private_metadata."""
    keep = _option(words.REMIX_KEEP, KEEP_VALUE)
    keep["description"] = {"type": "plain_text", "text": clip(words.REMIX_KEEP_HINT, _DESCRIPTION_MAX)}
    checkboxes: Block = {"type": "checkboxes", "action_id": "keep", "options": [keep]}
    if form.keep:
        checkboxes["initial_options"] = [keep]
    blocks: list[Block] = [
        {
            "type": "input",
            "block_id": BLOCK_INSTRUCTION,
            "label": {"type": "plain_text", "text": words.REMIX_FIELD},
            "element": {
                "type": "plain_text_input",
                "action_id": "text",
                "multiline": True,
                "max_length": _INPUT_MAX,
                "initial_value": form.text[:_INPUT_MAX],
            },
        },
        {
            "type": "input",
            "block_id": BLOCK_KEEP,
            "optional": True,
            "label": {"type": "plain_text", "text": words.REMIX_IMAGE},
            "element": checkboxes,
        },
    ]
    return {
        "type": "modal",
        "callback_id": VIEW_REMIX,
        "title": {"type": "plain_text", "text": words.REMIX_FORM},
        "submit": {"type": "plain_text", "text": words.REMIX_SUBMIT},
        "close": {"type": "plain_text", "text": words.CANCEL},
        "private_metadata": json.dumps(context),
        "blocks": blocks,
    }


def _option(label: str, value: str) -> Block:
    return {"text": {"type": "plain_text", "text": label}, "value": value}
