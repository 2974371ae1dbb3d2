"""Block Kit for the Slack adapter: status lines, result buttons and the edit modal."""

from __future__ import annotations

import json
from typing import Any

from adapters.slack.translate import (
    ACTION_DELETE,
    ACTION_EDIT,
    ACTION_REROLL,
    ACTION_SUBJECT,
    ACTION_VARY,
    BLOCK_IMAGE,
    BLOCK_INSTRUCTION,
    RESULT_EVENT,
    VIEW_EDIT,
)
from bot.model.jobs import Job

Block = dict[str, Any]
# Slack refuses section text over 3000 characters; prompts may be up to 5000.
_TEXT_MAX = 2900


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
    count = f"{job.request.n} images" if job.request.n > 1 else "1 image"
    return f"{count} · {job.mode} · seed {job.seed} · {w}x{h} · {job.tier} · {job.provider}"


def result_blocks(job: Job) -> list[Block]:
    """Summary and buttons under a delivered job. Each button's value is the job id: the store
    answers for it, so the buttons keep working after a restart."""
    delete_confirm = {
        "title": {"type": "plain_text", "text": "Delete these images?"},
        "text": {"type": "plain_text", "text": "The images and this message are removed from the thread."},
        "confirm": {"type": "plain_text", "text": "Delete"},
        "deny": {"type": "plain_text", "text": "Keep"},
    }
    return [
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": clip(f"<@{job.user_id}>: {escape(job.request.prompt)}")},
        },
        {"type": "context", "elements": [{"type": "mrkdwn", "text": result_summary(job)}]},
        {
            "type": "actions",
            "block_id": "hidream_buttons",
            "elements": [
                _button("Reroll", ACTION_REROLL, job.id),
                _button("Vary", ACTION_VARY, job.id),
                _button("Edit", ACTION_EDIT, job.id),
                {**_button("Delete", ACTION_DELETE, job.id), "style": "danger", "confirm": delete_confirm},
                _button("Save as subject", ACTION_SUBJECT, job.id),
            ],
        },
    ]


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
            "label": {"type": "plain_text", "text": "What should change?"},
            "element": {
                "type": "plain_text_input",
                "action_id": "text",
                "multiline": True,
                "max_length": 3000,
                "placeholder": {"type": "plain_text", "text": "make it night, add snow --seed 7"},
            },
        }
    ]
    if image_count > 1:
        options = [_option(f"Image {i + 1}", str(i)) for i in range(image_count)]
        options.append(_option("All of them together", "all"))
        blocks.append(
            {
                "type": "input",
                "block_id": BLOCK_IMAGE,
                "label": {"type": "plain_text", "text": "Which image?"},
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
        "title": {"type": "plain_text", "text": "Edit with HiDream"},
        "submit": {"type": "plain_text", "text": "Edit"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "private_metadata": json.dumps(context),
        "blocks": blocks,
    }


def _option(label: str, value: str) -> Block:
    return {"text": {"type": "plain_text", "text": label}, "value": value}
