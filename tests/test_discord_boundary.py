"""The Discord handlers' one error boundary: a refusal is told in its own words, anything else is
logged and answered with the plain apology; ephemerally for interactions (the deferred "thinking…"
answer removed), in the bot's progress reply for chat messages."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from adapters.discord.boundary import guarded
from bot.model.errors import BadInput
from bot.words import SORRY
from tests.fakes.discord import FakeDiscord
from tests.fakes.discord_harness import discord_bot, with_files
from tests.support.harness import sandbox_of


class Handlers:
    def __init__(self, error: Exception | None) -> None:
        self.error = error
        self.told: list[tuple[str, str]] = []

    async def tell(self, subject: str, text: str) -> None:
        self.told.append((subject, text))


def handlers_with(error: Exception | None) -> tuple[Handlers, Any]:
    owner = Handlers(error)

    class Guarded:
        @guarded(owner.tell)
        async def on_thing(self, subject: str, extra: int) -> None:
            if owner.error is not None:
                raise owner.error

    return owner, Guarded()


async def test_a_refusal_is_told_to_whoever_asked_in_its_own_words() -> None:
    owner, handlers = handlers_with(BadInput("`notes.txt` is not an image."))
    await handlers.on_thing("interaction-1", 3)
    assert owner.told == [("interaction-1", "`notes.txt` is not an image.")]


async def test_anything_else_is_logged_and_answered_with_the_apology(
    caplog: pytest.LogCaptureFixture,
) -> None:
    owner, handlers = handlers_with(KeyError("custom_id"))
    with caplog.at_level(logging.ERROR, logger="adapters.discord.boundary"):
        await handlers.on_thing("interaction-2", 3)
    assert owner.told == [("interaction-2", SORRY)]
    [record] = caplog.records
    assert "on_thing failed" in record.getMessage() and record.exc_info is not None


async def test_a_handler_that_succeeds_is_not_answered() -> None:
    owner, handlers = handlers_with(None)
    await handlers.on_thing("interaction-3", 3)
    assert owner.told == []


async def broken(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("the store is unreachable")


async def test_a_failing_button_answers_privately_and_removes_its_thinking_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async with FakeDiscord() as fake, discord_bot(tmp_path, fake) as (bot, _):
        payload = await fake.interact(fake.slash_payload({"prompt": "a glass city"}))
        result = await fake.wait_for(
            lambda: (m := fake.messages.get(fake.originals.get(payload["token"], ""))) and with_files(m) and m
        )
        await bot.runner.wait_idle()
        job = await bot.engine.job_for_post("discord", result["id"])
        assert job is not None
        monkeypatch.setattr(bot.engine, "submit", broken)  # a reroll is admitted by submit

        click = await fake.interact(fake.click_payload(result, f"hidream:reroll:{job.id}"))
        assert await fake.wait_for(lambda: fake.ephemeral_texts()) == [SORRY]
        assert fake.acks[click["id"]][0] == 5  # deferred first, as before
        assert fake.messages[fake.originals[click["token"]]].get("deleted")
    assert "the store is unreachable" in caplog.text


async def test_a_failing_usage_command_apologizes_instead_of_thinking_forever(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with FakeDiscord() as fake, discord_bot(tmp_path, fake) as (bot, _):
        monkeypatch.setattr(bot.engine, "quota", broken)
        await fake.interact(fake.slash_payload({}, name="hidream-usage"))
        assert await fake.wait_for(lambda: fake.ephemeral_texts()) == [SORRY]


async def test_a_failing_submit_from_a_message_says_so_in_the_progress_reply(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with FakeDiscord() as fake, discord_bot(tmp_path, fake) as (bot, _):
        monkeypatch.setattr(bot.engine, "submit", broken)
        ask = fake.user_message_payload(f"<@{fake.bot_id}> a paper boat")
        await fake.post_user_message(ask)
        [progress] = await fake.wait_for(
            lambda: [
                m
                for m in fake.visible()
                if (m.get("message_reference") or {}).get("message_id") == ask["id"]
                and m["content"].startswith("⚠️")
            ]
        )
        assert progress["content"] == f"⚠️ {SORRY}"
        assert sandbox_of(bot).submits == 0
