"""The pure parts of saved subjects: `--subject` in the one flag parser, `@name` in a prompt, the
Slack commands' shapes and the help texts that explain them."""

from __future__ import annotations

import pytest

from adapters.console import HELP
from adapters.discord.translate import slash_request
from adapters.slack.subjects import SubjectAsk, parse_subject_text
from adapters.slack.translate import HELP_TEXT
from bot.jobs.subjects import MENTION_RE
from bot.model.errors import BadInput
from bot.model.requests import parse_command


def test_subject_flag_is_repeatable_and_checked() -> None:
    parsed = parse_command("tea party --subject mascot --seed 3 --subject logo_2")
    assert parsed.request.subjects == ("mascot", "logo_2")
    assert parsed.request.prompt == "tea party" and parsed.request.seed == 3
    with pytest.raises(BadInput, match="`a/b` is not a subject name: use 1 to 32 letters"):
        parse_command("x --subject a/b")
    with pytest.raises(BadInput, match="needs a value"):
        parse_command("x --subject")
    with pytest.raises(BadInput, match="A subject is named twice"):
        parse_command("x --subject Fox --subject fox")
    with pytest.raises(BadInput, match="at most 4 images"):
        parse_command("x " + " ".join(f"--subject s{i}" for i in range(5)))


def test_discord_subject_option_names_one_or_more() -> None:
    payload = {
        "data": {
            "options": [{"name": "prompt", "value": "a party"}, {"name": "subject", "value": "fox, owl"}]
        },
        "guild_id": "1",
        "user": {"id": "2"},
    }
    chat = slash_request(payload, origin={}, max_bytes=1000)
    assert chat.request.subjects == ("fox", "owl")


def test_at_names_are_not_mentions_addresses_or_parts_of_words() -> None:
    text = "<@U123ABC> and <@!42> meet @fox and @Owl-2, mail a@b.com, x@y, @@z, @toolongname" + "x" * 30
    assert MENTION_RE.findall(text) == ["fox", "Owl-2"]


def test_slack_subject_commands_are_told_from_prompts() -> None:
    assert parse_subject_text("save subject Mascot") == SubjectAsk("save", "Mascot")
    assert parse_subject_text("subject  save  mascot") == SubjectAsk("save", "mascot")
    assert parse_subject_text("subject list") == SubjectAsk("list")
    assert parse_subject_text("subjects") == SubjectAsk("list")
    assert parse_subject_text("subject show fox") == SubjectAsk("show", "fox")
    assert parse_subject_text("Subject DELETE fox") == SubjectAsk("delete", "fox")
    assert parse_subject_text("save subject fox on a beach") is None
    assert parse_subject_text("a subject in a painting") is None


def test_help_texts_explain_subjects_with_examples() -> None:
    assert "save subject mascot" in HELP_TEXT and "/hidream @mascot surfing a wave" in HELP_TEXT
    assert "/subject save mascot fox1.png fox2.png" in HELP and "--subject <name>" in HELP
