"""The buttons under a result are decided once (bot/usecases/actions.py) and each surface renders
that list: the same actions in the same order with the same words, under the persistent ids that
buttons posted before a restart still carry."""

from __future__ import annotations

from typing import Any

import discord

from adapters.discord.views import result_view
from adapters.slack.blocks import ACTION_IDS, result_blocks
from bot.usecases.actions import Kind, result_actions
from tests.support.jobs import make_job


def discord_buttons(view: discord.ui.View) -> list[tuple[str | None, str | None, discord.ButtonStyle]]:
    buttons = [item for item in view.children if isinstance(item, discord.ui.Button)]
    assert len(buttons) == len(view.children)
    return [(b.label, b.custom_id, b.style) for b in buttons]


def slack_buttons(job_id: str) -> list[dict[str, object]]:
    job = make_job(job_id=job_id)
    (actions,) = [b for b in result_blocks(job) if b["type"] == "actions"]
    elements: list[dict[str, object]] = actions["elements"]
    return elements


def test_discord_renders_the_cores_actions_under_todays_custom_ids() -> None:
    job = make_job(job_id="f" * 32)
    primary, secondary, danger = (
        discord.ButtonStyle.primary,
        discord.ButtonStyle.secondary,
        discord.ButtonStyle.danger,
    )
    expected = [
        ("Reroll", f"hidream:reroll:{job.id}", primary),
        # Today's "Vary" button is Vary (Subtle), under the same custom id.
        ("Vary (Subtle)", f"hidream:vary:{job.id}", primary),
        ("Vary (Strong)", f"hidream:vary_strong:{job.id}", primary),
        ("Edit", f"hidream:edit:{job.id}", secondary),
        ("Edit region", f"hidream:region:{job.id}", secondary),
        ("Upscale", f"hidream:upscale:{job.id}", primary),
        ("Zoom Out 1.5x", f"hidream:zoom15:{job.id}", secondary),
        ("Zoom Out 2x", f"hidream:zoom2:{job.id}", secondary),
        ("Make Square", f"hidream:square:{job.id}", secondary),
        ("Pan ⬅", f"hidream:pan_left:{job.id}", secondary),
        ("Pan ➡", f"hidream:pan_right:{job.id}", secondary),
        ("Pan ⬆", f"hidream:pan_up:{job.id}", secondary),
        ("Pan ⬇", f"hidream:pan_down:{job.id}", secondary),
        ("Remix", f"hidream:remix:{job.id}", secondary),
        ("Delete", f"hidream:delete:{job.id}", danger),
        ("Save as subject", f"hidream:subject:{job.id}", secondary),
    ]
    assert discord_buttons(result_view(job)) == expected
    job.parent_job_id = "e" * 32
    expected.insert(14, ("Undo", f"hidream:undo:{job.id}", secondary))
    # Discord's limit: at most five rows of at most five buttons.
    rows = result_view(job).to_components()
    assert len(rows) <= 5 and all(len(row["components"]) <= 5 for row in rows)
    assert sum(len(row["components"]) for row in rows) == len(expected)
    assert discord_buttons(result_view(job)) == expected
    assert [label for label, _, _ in expected] == [a.label for a in result_actions(job)]
    # A draft offers Final first: the same request on the full model.
    job.request = job.request.with_changes(draft=True, model="dev")
    expected.insert(0, ("Final", f"hidream:final:{job.id}", primary))
    assert discord_buttons(result_view(job)) == expected


def test_slack_renders_the_cores_actions_under_todays_action_ids() -> None:
    job_id = "a" * 32
    *buttons, more = slack_buttons(job_id)
    assert [(b["action_id"], b["value"], b["text"]) for b in buttons] == [
        ("hidream_reroll", job_id, {"type": "plain_text", "text": "Reroll"}),
        # Today's "Vary" button is Vary (Subtle), under the same action id.
        ("hidream_vary", job_id, {"type": "plain_text", "text": "Vary (Subtle)"}),
        ("hidream_vary_strong", job_id, {"type": "plain_text", "text": "Vary (Strong)"}),
        ("hidream_edit", job_id, {"type": "plain_text", "text": "Edit"}),
        ("hidream_upscale", job_id, {"type": "plain_text", "text": "Upscale"}),
        ("hidream_zoom15", job_id, {"type": "plain_text", "text": "Zoom Out 1.5x"}),
        ("hidream_zoom2", job_id, {"type": "plain_text", "text": "Zoom Out 2x"}),
        ("hidream_square", job_id, {"type": "plain_text", "text": "Make Square"}),
        ("hidream_remix", job_id, {"type": "plain_text", "text": "Remix"}),
        ("hidream_delete", job_id, {"type": "plain_text", "text": "Delete"}),
        ("hidream_subject", job_id, {"type": "plain_text", "text": "Save as subject"}),
    ]
    # Edit region and the four Pans in the overflow menu (Slack allows 2 to 5 options), each naming its
    # action and job.
    assert more["type"] == "overflow" and more["action_id"] == "hidream_more"
    options: list[dict[str, Any]] = more["options"]  # type: ignore[assignment]
    assert [(o["text"]["text"], o["value"]) for o in options] == [
        ("Edit region", f"hidream_region:{job_id}"),
        ("Pan ⬅", f"hidream_pan_left:{job_id}"),
        ("Pan ➡", f"hidream_pan_right:{job_id}"),
        ("Pan ⬆", f"hidream_pan_up:{job_id}"),
        ("Pan ⬇", f"hidream_pan_down:{job_id}"),
    ]
    delete = buttons[9]
    assert delete["style"] == "danger"
    assert delete["confirm"] == {
        "title": {"type": "plain_text", "text": "Delete these images?"},
        "text": {"type": "plain_text", "text": "The images and this message are removed from the thread."},
        "confirm": {"type": "plain_text", "text": "Delete"},
        "deny": {"type": "plain_text", "text": "Keep"},
    }
    assert all("style" not in b and "confirm" not in b for i, b in enumerate(buttons) if i != 9)


def test_every_action_the_core_can_offer_has_a_button_on_each_surface() -> None:
    """A new action fails here until each surface gives it an id (Slack says undo in the thread). The
    job is an edit (Undo) of a draft (Final), so it offers every action there is."""
    job = make_job(job_id="b" * 32)
    job.parent_job_id = "c" * 32
    job.request = job.request.with_changes(draft=True, model="dev")
    offered = [a.kind for a in result_actions(job)]
    assert set(offered) == set(Kind)
    rendered = [item.custom_id for item in result_view(job).children if isinstance(item, discord.ui.Button)]
    assert rendered == [f"hidream:{kind.value}:{job.id}" for kind in offered]
    assert set(ACTION_IDS) == set(Kind) - {Kind.UNDO}
