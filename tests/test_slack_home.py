"""The Slack App Home tab against the fake (HTTP mode and Socket Mode): opening it publishes, for that
person alone, their images left today, their recent results with links, their saved subjects and
their defaults; the Messages tab publishes nothing; a refused publish is logged, not fatal. The
view's own limits and escaping are checked on the pure builder."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from adapters.slack.home import MAX_BLOCKS, RECENT_SHOWN, home_view
from adapters.slack.translate import permalink
from bot.model.jobs import JobState
from bot.model.requests import ImageRequest
from bot.usecases.home import HomeState
from storage.history import Recent
from storage.quota import QuotaStatus
from tests.fakes.slack import FakeSlack
from tests.support.jobs import make_job
from tests.support.slack_oauth import CHANNEL_A, TEAM_A, TEAM_B, install, oauth_bot
from tests.support.slack_support import CHANNEL, command_to_result, running, summaries

ALICE, BOB = "UALICE01", "UBOB0001"


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as f:
        yield f


def view_text(view: dict[str, Any]) -> str:
    return "\n".join(str((b.get("text") or {}).get("text", "")) for b in view["blocks"])


async def home_of(fake: FakeSlack, user: str, count: int = 1) -> dict[str, Any]:
    """The view published for `user` once `count` publishes for them have been made."""
    await fake.wait_for(
        lambda: len([p for p in fake.called("views.publish") if p["user_id"] == user]) >= count
    )
    return fake.homes[user]


@pytest.mark.parametrize("mode", ["http", "socket"])
async def test_opening_home_shows_quota_results_subjects_and_defaults(
    tmp_path: Path, fake: FakeSlack, mode: str
) -> None:
    async with running(tmp_path, fake, mode, HIDREAM_DAILY_IMAGE_QUOTA=5) as run:
        mine = await command_to_result(run, "a red fox in snow --n 2 --seed 7", user=ALICE)
        theirs = await command_to_result(run, "a blue owl at dusk", user=BOB)
        await run.send.event(fake.mention(CHANNEL, ALICE, "save subject foxy", thread_ts=mine["thread_ts"]))
        await fake.wait_for(lambda: [e for e in fake.ephemerals if "Saved subject `foxy`" in e["text"]])
        await run.send.event(fake.mention(CHANNEL, BOB, "save subject owlet", thread_ts=theirs["thread_ts"]))
        await fake.wait_for(lambda: [e for e in fake.ephemerals if "Saved subject `owlet`" in e["text"]])
        await run.send.command(fake.slash("settings --ar 16:9 --format webp", user=ALICE))
        await fake.wait_for(lambda: [r for r in fake.responses if "Your defaults here" in r["text"]])
        await run.bot.runner.wait_idle()

        assert await run.send.event(fake.home_opened(ALICE)) == 200
        view = await home_of(fake, ALICE)
        text = view_text(view)
        assert view["type"] == "home" and view["team_id"] == "T0001"
        # Two images of five used today: three left.
        assert "*3* of 5 images left today (used 2)" in text
        assert "a red fox in snow" in text and "done · 2 images" in text
        link = permalink(CHANNEL, mine["ts"], mine["thread_ts"])
        assert f"<{link}|Open>" in text
        assert "`foxy`" in text and "1 more saved here by others" in text
        assert "--ar 16:9 --format webp" in text
        # Bob's work is his own: neither his prompt, nor his result's link, nor his subject's name.
        assert "blue owl" not in text and theirs["ts"].replace(".", "") not in text and "owlet" not in text
        assert BOB not in fake.homes

        # Opened again after another result, it is built afresh.
        await command_to_result(run, "a green frog", user=ALICE)
        await run.bot.runner.wait_idle()
        await run.send.event(fake.home_opened(ALICE))
        again = view_text(await home_of(fake, ALICE, 2))
        assert "*2* of 5 images left today" in again
        assert again.index("a green frog") < again.index("a red fox in snow")


@pytest.mark.parametrize("mode", ["http", "socket"])
async def test_the_messages_tab_publishes_nothing(tmp_path: Path, fake: FakeSlack, mode: str) -> None:
    async with running(tmp_path, fake, mode) as run:
        await run.send.event(fake.home_opened(ALICE, tab="messages"))
        # Events are handled in the order they came: once Bob's Home is published, Alice's Messages
        # tab event has been handled too.
        await run.send.event(fake.home_opened(BOB))
        await home_of(fake, BOB)
        assert [p["user_id"] for p in fake.called("views.publish")] == [BOB]
        assert ALICE not in fake.homes


async def test_each_workspace_publishes_with_its_own_token_and_shows_its_own_results(
    tmp_path: Path, fake: FakeSlack
) -> None:
    async with oauth_bot(tmp_path, fake) as run:
        for team in (TEAM_A, TEAM_B):
            assert (await install(run, team)).status_code == 200
        # The same person in two workspaces (an Enterprise Grid user id is one across them).
        await run.send.command(fake.slash("a cat in A", user=ALICE, channel=CHANNEL_A, team=TEAM_A))
        await fake.wait_for(partial(summaries, fake, CHANNEL_A))
        await run.bot.runner.wait_idle()
        await run.send.event(fake.home_opened(ALICE, team=TEAM_B))
        in_b = await home_of(fake, ALICE)
        assert in_b["team_id"] == TEAM_B and "a cat in A" not in view_text(in_b)
        assert "Nothing yet" in view_text(in_b)
        await run.send.event(fake.home_opened(ALICE, team=TEAM_A))
        in_a = await home_of(fake, ALICE, 2)
        assert in_a["team_id"] == TEAM_A and "a cat in A" in view_text(in_a)
        teams = [team for m, team, p in fake.team_calls if m == "views.publish"]
        assert teams == [TEAM_B, TEAM_A]


class _Seen(logging.Handler):
    """Sets `event` when a record holding `needle` is logged."""

    def __init__(self, needle: str) -> None:
        super().__init__(logging.WARNING)
        self.needle, self.event = needle, asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.needle in record.getMessage():
            self.event.set()


async def test_a_refused_publish_is_logged_and_the_bot_goes_on(tmp_path: Path, fake: FakeSlack) -> None:
    seen = _Seen("could not publish the Home tab")
    logging.getLogger("adapters.slack.home").addHandler(seen)
    try:
        async with running(tmp_path, fake, "http") as run:
            publish = fake.m_views_publish
            fake.m_views_publish = lambda p: {"error": "not_enabled"}  # type: ignore[method-assign]
            assert await run.send.event(fake.home_opened(ALICE)) == 200
            await asyncio.wait_for(seen.event.wait(), 30)
            assert ALICE not in fake.homes
            fake.m_views_publish = publish  # type: ignore[method-assign]
            await command_to_result(run, "a red fox in snow", user=ALICE)
            await run.send.event(fake.home_opened(ALICE))
            assert "a red fox in snow" in view_text(await home_of(fake, ALICE, 2))
    finally:
        logging.getLogger("adapters.slack.home").removeHandler(seen)


def _status(remaining: int = 3) -> QuotaStatus:
    return QuotaStatus(5 - remaining, 5, remaining, datetime(2026, 1, 2, tzinfo=UTC), 1767225600.0)


def test_the_view_keeps_within_slack_limits_and_escapes_what_people_typed() -> None:
    hostile = "<!channel> & <https://evil.example|click> " + "x" * 4900
    jobs = []
    for i in range(RECENT_SHOWN):
        request = ImageRequest(prompt=hostile if i == 0 else f"prompt {i}", n=1, seed=1)
        job = replace(make_job(), request=request, state=JobState.DELIVERED)
        jobs.append(Recent(job, f"C1:17000000{i:02d}.000200", f"C1:17000000{i:02d}.000100"))
    state = HomeState(_status(), jobs, ["a" * 32] * 200, 0, {"ar": "16:9", "format": "<png>"})
    view = home_view(state)
    assert len(view["blocks"]) <= MAX_BLOCKS
    for block in view["blocks"]:
        text = str((block.get("text") or {}).get("text", ""))
        assert len(text) <= (150 if block["type"] == "header" else 3000)
    text = view_text(view)
    assert "<!channel>" not in text and "&lt;!channel&gt; &amp; &lt;https://evil.example|click&gt;" in text
    assert "--format &lt;png&gt;" in text
    assert f"<{permalink('C1', '1700000000.000200', '1700000000.000100')}|Open>" in text
    # Nothing was made yet: the view says how to start.
    empty = view_text(home_view(HomeState(_status(5), [], [], 0, {})))
    assert "*5* of 5 images left today" in empty and "Nothing yet" in empty
