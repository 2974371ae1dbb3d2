"""The Slack listeners' one error boundary: a refusal is told privately in its own words; anything
else is logged and answered with the plain apology, after the ack, with the status message removed."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from slack_bolt.util.utils import get_arg_names_of_callable

from adapters.slack.boundary import Reply, guarded
from adapters.slack.translate import ACTION_REROLL
from bot.model.errors import QuotaExceeded
from bot.words import SORRY
from tests.fakes.slack import FakeSlack
from tests.support.slack_support import CHANNEL, roots, running, summaries


class Listeners:
    """A listener owner as bolt sees one: bolt passes arguments by keyword, by the names it reads."""

    def __init__(self, error: Exception | None) -> None:
        self.error = error
        self.told: list[tuple[str, str]] = []
        self.acked = False

    def reply_to(self, args: Mapping[str, Any]) -> Reply:
        async def reply(text: str) -> None:
            self.told.append((args["body"]["user"], text))

        return reply

    @guarded(reply_to)
    async def on_press(self, ack: Any, body: dict[str, Any]) -> None:
        await ack()
        if self.error is not None:
            raise self.error


async def ack() -> None:
    return None


async def test_a_refusal_is_told_privately_in_its_own_words() -> None:
    owner = Listeners(QuotaExceeded("You have used all 3 of your images today."))
    await owner.on_press(ack=ack, body={"user": "UALICE01"})
    assert owner.told == [("UALICE01", "You have used all 3 of your images today.")]


async def test_anything_else_is_logged_and_answered_with_the_apology(
    caplog: pytest.LogCaptureFixture,
) -> None:
    owner = Listeners(RuntimeError("the disk is full"))
    with caplog.at_level(logging.ERROR, logger="adapters.slack.boundary"):
        await owner.on_press(ack=ack, body={"user": "UALICE01"})
    assert owner.told == [("UALICE01", SORRY)]
    [record] = caplog.records
    assert "on_press failed" in record.getMessage() and record.exc_info is not None


async def test_a_listener_that_succeeds_is_not_answered() -> None:
    owner = Listeners(None)
    await owner.on_press(ack=ack, body={"user": "UALICE01"})
    assert owner.told == []


def test_bolt_still_reads_the_listener_s_own_argument_names() -> None:
    # bolt injects only the arguments a listener names; the boundary must not hide them.
    assert get_arg_names_of_callable(Listeners(None).on_press) == ["self", "ack", "body"]


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as f:
        yield f


async def test_a_failed_submit_removes_its_status_and_apologizes(
    tmp_path: Path, fake: FakeSlack, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken_submit(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the store is unreachable")

    async with running(tmp_path, fake, "http") as run:
        monkeypatch.setattr(run.bot.engine, "submit", broken_submit)
        assert await run.send.command(fake.slash("a cat in a hat")) == 200
        [reply] = await fake.wait_for(lambda: fake.responses)
        assert reply["text"] == SORRY
        # The status message was posted, then removed before the apology went out.
        assert fake.called("chat.postMessage") and fake.called("chat.delete")
        assert not roots(fake) and await run.job_count() == 0
    assert "the store is unreachable" in caplog.text


async def test_a_button_that_fails_is_answered_privately_in_its_thread(
    tmp_path: Path, fake: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken_job(job_id: str) -> Any:
        raise RuntimeError("the store is unreachable")

    async with running(tmp_path, fake, "http") as run:
        assert await run.send.command(fake.slash("a tiny robot")) == 200
        [summary] = await fake.wait_for(lambda: summaries(fake))
        monkeypatch.setattr(run.bot.engine, "job", broken_job)
        assert (
            await run.send.interaction(fake.button(summary, CHANNEL, ACTION_REROLL, user="UBOB0001")) == 200
        )
        [note] = await fake.wait_for(lambda: fake.ephemerals)
        assert note["user"] == "UBOB0001" and note["text"] == SORRY
        assert note["channel"] == CHANNEL and note["thread_ts"] == summary["thread_ts"]
