"""The pure Slack payload translation, on recorded-shape payloads in tests/data/slack/."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from adapters.slack import translate as t
from bot.model.errors import BadInput, MediaError

DATA = Path(__file__).parent / "data" / "slack"


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DATA / name).read_text())
    return data


def test_slash_command_form_becomes_a_generation_with_its_flags_and_reference_url() -> None:
    inv = t.slash_invocation(load("slash_command.json"))
    assert (inv.team, inv.channel, inv.user) == ("T0001", "C2147483705", "U2147483697")
    assert inv.trigger_id.startswith("13345224609.")
    action = t.parse_slash_text(inv.text)
    assert isinstance(action, t.Generate)
    req = action.parsed.request
    assert req.prompt == "a lighthouse at dusk"
    assert req.aspect == (16, 9) and req.seed == 7
    assert action.parsed.urls == ["https://example.com/ref.png"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("usage", t.Usage(None)),
        ("usage <@U123ABC|bob>", t.Usage("U123ABC")),
        ("limit <@U123ABC|bob> 40", t.AdminCommand("limit", "user", "U123ABC", 40)),
        ("limit <@U123ABC> off", t.AdminCommand("limit", "user", "U123ABC", None)),
        ("limit workspace 100", t.AdminCommand("limit", "workspace", "", 100)),
        ("grant <@W99> 5", t.AdminCommand("grant", "user", "W99", 5)),
        ("reset <@U123ABC|bob>", t.AdminCommand("reset", "user", "U123ABC")),
        ("help", t.Help()),
        ("", t.Help()),
        ("settings", t.Preference("settings", "")),
        ("settings reset", t.Preference("settings", "reset")),
        ("settings --ar 16:9 --private on", t.Preference("settings", "--ar 16:9 --private on")),
        ("policy", t.Preference("policy", "")),
        ("policy ban red fox", t.Preference("policy", "ban red fox")),
        ("policy reset", t.Preference("policy", "reset")),
    ],
)
def test_sub_commands_are_recognised(text: str, expected: t.SlashAction) -> None:
    assert t.parse_slash_text(text) == expected


def test_a_prompt_that_starts_like_a_sub_command_is_still_a_prompt() -> None:
    action = t.parse_slash_text("usage of color in a limit study --n 2")
    assert isinstance(action, t.Generate)
    assert action.parsed.request.prompt == "usage of color in a limit study"
    assert action.parsed.request.n == 2
    for prompt in ("settings of a castle", "policy makers at a table"):
        assert isinstance(t.parse_slash_text(prompt), t.Generate)


def test_bad_flag_in_slash_text_is_bad_input_naming_the_flag() -> None:
    with pytest.raises(BadInput, match="--steps"):
        t.parse_slash_text("a cat --steps 900")


def test_mention_in_thread_with_files() -> None:
    body = load("app_mention_thread_files.json")
    m = t.mention_from_event(body["event"], body["team_id"])
    assert m.text == "put these two in one picture, at the beach"
    assert m.thread_ts == "1700000000.000100"
    assert m.reply_thread == "1700000000.000100"
    refs = t.image_refs(m.files, "xoxb-secret", max_bytes=1_000_000)
    assert [r.filename for r in refs] == ["cat.png", "dog.jpg"]
    assert refs[0].url.endswith("/download/cat.png")
    assert refs[0].headers == {"Authorization": "Bearer xoxb-secret"}
    assert not refs[0].typed
    # The token is never part of what gets printed.
    assert "xoxb-secret" not in repr(refs[0])


def test_mention_outside_a_thread_answers_under_itself() -> None:
    event = dict(load("app_mention_thread_files.json")["event"])
    del event["thread_ts"]
    m = t.mention_from_event(event)
    assert m.thread_ts is None and m.reply_thread == event["ts"]
    assert m.team == "T0001"


def test_files_that_are_no_image_or_too_large_are_refused() -> None:
    files = load("message_action.json")["message"]["files"]
    with pytest.raises(MediaError, match=r"notes\.pdf.*not an image"):
        t.image_refs(files, "xoxb-x", max_bytes=10_000_000)
    with pytest.raises(MediaError, match=r"logo\.png.*most allowed"):
        t.image_refs(files[:1], "xoxb-x", max_bytes=1000)


def test_block_actions_button_names_its_job() -> None:
    press = t.button_press(load("block_actions.json"))
    assert press.action == t.ACTION_REROLL
    assert press.job_id == "job_4f2a9c"
    assert (press.channel, press.message_ts, press.thread_ts) == (
        "C2147483705",
        "1700000010.000200",
        "1700000000.000100",
    )
    assert press.user == "U2147483697" and press.team == "T0001"


def test_message_shortcut_keeps_only_image_files() -> None:
    inv = t.shortcut_invocation(load("message_action.json"))
    assert inv.file_ids == ["F0000000003"]
    assert inv.channel == "C2147483705"
    # A message that is not in a thread starts one under itself.
    assert inv.thread_ts == inv.message_ts == "1700000350.000500"


def test_view_submission_reads_instruction_choice_and_context() -> None:
    sub = t.edit_submission(load("view_submission.json")["view"])
    assert sub.instruction == "make it gold on black --seed 3"
    assert sub.image_index == 1
    assert sub.context == {
        "channel": "C2147483705",
        "thread_ts": "1700000350.000500",
        "file_ids": ["F0000000003"],
    }


def test_remix_submission_reads_text_the_keep_box_and_context() -> None:
    """The Remix dialog's state as Slack sends it: a plain_text_input's value, and a checkboxes
    element's selected_options (empty when unticked)."""
    view = load("view_submission.json")["view"]
    option = {"text": {"type": "plain_text", "text": "Keep the image"}, "value": t.KEEP_VALUE}
    view["private_metadata"] = json.dumps({"job_id": "j1", "channel": "C1", "thread_ts": "1.2"})
    view["state"]["values"] = {
        t.BLOCK_INSTRUCTION: {"text": {"type": "plain_text_input", "value": "a fox --seed 3"}},
        t.BLOCK_KEEP: {"keep": {"type": "checkboxes", "selected_options": [option]}},
    }
    sub = t.remix_submission(view)
    assert (sub.text, sub.keep, sub.context["job_id"]) == ("a fox --seed 3", True, "j1")
    view["state"]["values"][t.BLOCK_KEEP]["keep"]["selected_options"] = []
    assert t.remix_submission(view).keep is False
    view["private_metadata"] = "{not json"
    with pytest.raises(BadInput, match="out of date"):
        t.remix_submission(view)


def test_result_file_names_round_trip() -> None:
    name = t.result_filename("job_4f2a9c", 2, "png")
    assert name == "hidream-job_4f2a9c-3.png"
    assert t.parse_result_filename(name) == ("job_4f2a9c", 2)
    assert t.parse_result_filename("holiday.png") is None
    assert t.parse_result_filename("hidream-x-0.png") is None


def test_keys() -> None:
    key = t.message_key("C1", "1700000000.000100")
    assert t.split_key(key) == ("C1", "1700000000.000100")
