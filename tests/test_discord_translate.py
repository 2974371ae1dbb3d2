"""The pure Discord payload -> ChatRequest layer, on recorded-shape JSON."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from adapters.discord import translate
from bot.model.errors import BadInput
from bot.model.requests import parse_command

DATA = Path(__file__).parent / "data" / "discord"
BOT_ID = "1200000000000000001"
MAX = 20 * 1024 * 1024


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DATA / name).read_text())
    return data


def test_slash_options_become_the_same_request_as_typed_flags() -> None:
    chat = translate.slash_request(load("slash_hidream.json"), origin={"k": 1}, max_bytes=MAX)
    assert chat.surface == "discord"
    assert chat.user_id == "1500000000000000001"
    assert chat.workspace_id == "1300000000000000001"
    assert chat.origin == {"k": 1}
    assert chat.references == []
    typed = parse_command("a red fox in snow --ar 16:9 --seed 7 --n 2 --model dev --cfg 4.5")
    assert chat.request == typed.request


def test_flags_and_urls_in_the_prompt_count_and_typed_options_win() -> None:
    payload = load("slash_hidream.json")
    for option in payload["data"]["options"]:
        if option["name"] == "prompt":
            option["value"] = "a red fox https://example.com/fox.png --steps 20 --seed 3 --size square"
    chat = translate.slash_request(payload, origin={}, max_bytes=MAX)
    # The recording's typed options (aspect 16:9, seed 7, ...) win over --size and --seed in the text.
    typed = parse_command("a red fox in snow --ar 16:9 --seed 7 --n 2 --model dev --cfg 4.5 --steps 20")
    assert chat.request.prompt == "a red fox"
    assert chat.request.model_dump(exclude={"prompt", "explicit"}) == typed.request.model_dump(
        exclude={"prompt", "explicit"}
    )
    assert [(r.url, r.typed) for r in chat.references] == [("https://example.com/fox.png", True)]


def test_two_attachments_become_references_in_option_order() -> None:
    chat = translate.slash_request(load("slash_two_images.json"), origin={}, max_bytes=MAX)
    assert [r.filename for r in chat.references] == ["cat.png", "dog.jpg"]
    assert chat.references[0].url.startswith("https://cdn.discordapp.com/ephemeral-attachments/")
    assert not any(r.typed for r in chat.references)


def test_text_file_as_image_is_refused_with_its_name() -> None:
    with pytest.raises(BadInput) as err:
        translate.slash_request(load("slash_text_file.json"), origin={}, max_bytes=MAX)
    assert "notes.txt" in err.value.user_message
    assert "not an image" in err.value.user_message


def test_oversized_attachment_is_refused_before_any_fetch() -> None:
    payload = load("slash_two_images.json")
    payload["data"]["resolved"]["attachments"]["1600000000000000002"]["size"] = 30 * 1024 * 1024
    with pytest.raises(BadInput) as err:
        translate.slash_request(payload, origin={}, max_bytes=MAX)
    assert "dog.jpg" in err.value.user_message
    assert "30.0 MB" in err.value.user_message


def test_bad_option_value_speaks_the_parsers_words() -> None:
    payload = load("slash_hidream.json")
    payload["data"]["options"].append({"name": "steps", "type": 4, "value": 60})
    with pytest.raises(BadInput) as err:
        translate.slash_request(payload, origin={}, max_bytes=MAX)
    assert "dev model" in err.value.user_message


def test_dm_interaction_has_user_and_no_workspace() -> None:
    payload = load("slash_hidream.json")
    user = payload.pop("member")["user"]
    payload.pop("guild_id")
    payload["user"] = user
    chat = translate.slash_request(payload, origin={}, max_bytes=MAX)
    assert chat.user_id == user["id"]
    assert chat.workspace_id == ""


def test_context_menu_target_and_its_images() -> None:
    target = translate.context_target(load("context_menu_edit.json"))
    assert target["id"] == "1700000000000000001"
    assert [a["filename"] for a in translate.image_attachments(target)] == ["sunset.webp"]


def test_modal_value_found_in_rows_and_labels() -> None:
    payload = load("modal_submit.json")
    assert translate.modal_value(payload) == "make the sky purple --seed 3"
    label = {"type": 18, "component": {"type": 4, "custom_id": "instruction", "value": "x"}}
    payload["data"]["components"] = [label]
    assert translate.modal_value(payload) == "x"


def test_a_checkbox_in_a_label_is_read_as_ticked_or_not() -> None:
    """Discord sends a checkbox (type 23) in a label (type 18) back with a boolean `value`."""
    payload = load("modal_submit.json")
    text = {
        "type": 18,
        "id": 1,
        "component": {"type": 4, "id": 2, "custom_id": "instruction", "value": "a fox"},
    }
    ticked: dict[str, Any] = {"type": 23, "id": 4, "custom_id": translate.KEEP_FIELD, "value": True}
    box = {"type": 18, "id": 3, "component": ticked}
    payload["data"]["components"] = [text, box]
    assert translate.modal_value(payload) == "a fox"
    assert translate.modal_checked(payload, translate.KEEP_FIELD) is True
    ticked["value"] = False
    assert translate.modal_checked(payload, translate.KEEP_FIELD) is False
    payload["data"]["components"] = [text]
    assert translate.modal_checked(payload, translate.KEEP_FIELD) is False


def test_custom_ids_round_trip_and_foreign_ids_are_ignored() -> None:
    cid = translate.make_custom_id("reroll", "job-123")
    assert translate.parse_custom_id(cid) == ("reroll", ["job-123"])
    assert translate.parse_custom_id(load("modal_submit.json")["data"]["custom_id"]) == (
        "ctx",
        ["1300000000000000010", "1700000000000000001"],
    )
    assert translate.parse_custom_id("someone-else:reroll:1") is None
    with pytest.raises(ValueError):
        translate.make_custom_id("x", "y" * 100)


def test_reply_with_mention_is_read_as_an_edit_of_the_replied_image() -> None:
    ask = translate.read_message(load("message_reply_mention.json"), BOT_ID)
    assert ask is not None
    assert ask.mentioned
    assert ask.text == "make it night time --seed 11"
    assert ask.reply_to_id == "1700000000000000001"
    assert ask.reply_to is not None
    assert [a["filename"] for a in translate.image_attachments(ask.reply_to)] == ["sunset.webp"]
    chat = translate.text_request(
        ask.text,
        user_id=ask.user_id,
        workspace_id=ask.guild_id or "",
        origin={},
        references=translate.image_refs(translate.image_attachments(ask.reply_to), max_bytes=MAX),
    )
    assert chat.request.prompt == "make it night time"
    assert chat.request.seed == 11
    assert [r.filename for r in chat.references] == ["sunset.webp"]


def test_plain_reply_to_someone_else_does_not_ask_the_bot() -> None:
    payload = load("message_reply_mention.json")
    payload["content"] = "nice picture"
    payload["mentions"] = [payload["referenced_message"]["author"]]
    ask = translate.read_message(payload, BOT_ID)
    assert ask is not None and not ask.mentioned


def test_reply_to_the_bots_own_message_counts_as_asking() -> None:
    payload = load("message_reply_mention.json")
    payload["content"] = "make it night"
    payload["referenced_message"]["author"] = {"id": BOT_ID, "username": "HiDream", "bot": True}
    ask = translate.read_message(payload, BOT_ID)
    assert ask is not None and ask.mentioned and ask.text == "make it night"


def test_thread_message_without_mention() -> None:
    ask = translate.read_message(load("message_in_thread.json"), BOT_ID)
    assert ask is not None
    assert not ask.mentioned
    assert ask.channel_id == "1700000000000000050"
    assert ask.text == "now add a small owl on the branch"


IGNORED = [{"author": {"id": BOT_ID}}, {"author": {"id": "9", "bot": True}}, {"type": 7}]


@pytest.mark.parametrize("change", IGNORED)
def test_bots_and_system_messages_are_ignored(change: dict[str, Any]) -> None:
    payload = copy.deepcopy(load("message_reply_mention.json"))
    payload.update(change)
    assert translate.read_message(payload, BOT_ID) is None


def test_typed_urls_join_references_and_too_many_are_refused() -> None:
    chat = translate.text_request(
        "blend https://example.com/a.png", user_id="1", workspace_id="", origin={}, references=[]
    )
    assert [(r.url, r.typed) for r in chat.references] == [("https://example.com/a.png", True)]
    many = " ".join(f"https://example.com/{i}.png" for i in range(5))
    with pytest.raises(BadInput):
        translate.text_request(f"x {many}", user_id="1", workspace_id="", origin={}, references=[])
