"""A start that cannot succeed ends in one line naming the setting, not a traceback.

`hidream-bot run` runs in this process (`bot.cli.main`), against loopback fakes of Discord and Slack
served from a thread of their own; each fake answers a wrong token the way its platform documents.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

import adapters.discord.client
import adapters.slack.adapter
from tests.fakes.discord import FakeDiscord
from tests.fakes.slack import FakeSlack
from tests.support.background import background
from tests.support.harness import closed_port
from tests.support.startup import discord_env, run_fails
from tests.support.startup import level as level


@contextmanager
def silent_port() -> Iterator[int]:
    """A loopback port that takes connections (the kernel's backlog) and never answers: a hung server."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        yield int(s.getsockname()[1])


def slack_env(fake: FakeSlack, **extra: str) -> dict[str, str]:
    return {
        "SLACK_BOT_TOKEN": fake.bot_token,
        "SLACK_APP_TOKEN": fake.app_token,
        "SLACK_API_BASE_URL": fake.api_url,
        **extra,
    }


def test_a_wrong_discord_token(monkeypatch, capsys, tmp_path, level) -> None:
    with background() as bg:
        fake = bg.enter(FakeDiscord())
        line = run_fails(
            monkeypatch, capsys, tmp_path, level, **discord_env(fake, DISCORD_TOKEN="MTE4.wrong.token")
        )
        refused = [c for c in fake.calls if c.path == "/users/@me"]
    assert line.startswith("hidream-bot: DISCORD_TOKEN: ") and "401" in line
    assert "MTE4.wrong.token" not in line
    assert refused and not fake.identified.is_set()


def test_a_discord_token_the_gateway_refuses(monkeypatch, capsys, tmp_path, level) -> None:
    with background() as bg:
        fake = bg.enter(FakeDiscord())
        # REST lets this token in; the gateway does not (close code 4004), as for a token reset meanwhile.
        monkeypatch.setattr(fake, "_check_auth", lambda request: None)
        line = run_fails(
            monkeypatch, capsys, tmp_path, level, **discord_env(fake, DISCORD_TOKEN="MTE4.reset.token")
        )
    assert line.startswith("hidream-bot: DISCORD_TOKEN: ") and "4004" in line


def test_an_unreachable_discord_api(monkeypatch, capsys, tmp_path, level) -> None:
    url = f"http://127.0.0.1:{closed_port()}/api/v10"
    line = run_fails(
        monkeypatch, capsys, tmp_path, level, DISCORD_TOKEN="MTE4.some.token", DISCORD_API_BASE_URL=url
    )
    assert line.startswith("hidream-bot: DISCORD_API_BASE_URL: ") and url in line


def test_an_unreachable_discord_gateway(monkeypatch, capsys, tmp_path, level) -> None:
    gateway = f"ws://127.0.0.1:{closed_port()}/gateway"
    with background() as bg:
        fake = bg.enter(FakeDiscord())
        line = run_fails(
            monkeypatch, capsys, tmp_path, level, **discord_env(fake, DISCORD_GATEWAY_URL=gateway)
        )
    assert line.startswith("hidream-bot: DISCORD_GATEWAY_URL: ") and gateway in line


def test_a_wrong_slack_bot_token(monkeypatch, capsys, tmp_path, level) -> None:
    with background() as bg:
        fake = bg.enter(FakeSlack())
        line = run_fails(
            monkeypatch, capsys, tmp_path, level, **slack_env(fake, SLACK_BOT_TOKEN="xoxb-wrong-one")
        )
    assert line.startswith("hidream-bot: SLACK_BOT_TOKEN: ") and "invalid_auth" in line
    assert "xoxb-wrong-one" not in line


def test_a_wrong_slack_app_token(monkeypatch, capsys, tmp_path, level) -> None:
    with background() as bg:
        fake = bg.enter(FakeSlack())
        line = run_fails(
            monkeypatch, capsys, tmp_path, level, **slack_env(fake, SLACK_APP_TOKEN="xapp-wrong-one")
        )
        opened = fake.called("apps.connections.open")
    assert line.startswith("hidream-bot: SLACK_APP_TOKEN: ") and "invalid_auth" in line
    assert not opened  # refused: the fake records only calls it let in


def test_an_unreachable_slack_api(monkeypatch, capsys, tmp_path, level) -> None:
    url = f"http://127.0.0.1:{closed_port()}/api/"
    line = run_fails(
        monkeypatch,
        capsys,
        tmp_path,
        level,
        SLACK_BOT_TOKEN="xoxb-some-token",
        SLACK_APP_TOKEN="xapp-some-token",
        SLACK_API_BASE_URL=url,
    )
    assert line.startswith("hidream-bot: SLACK_API_BASE_URL: ") and url in line


@pytest.mark.parametrize("where", ["under a file", "a folder"])
def test_a_database_path_that_cannot_be_opened(monkeypatch, capsys, tmp_path, level, where) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    (tmp_path / "a-folder").mkdir()
    path = tmp_path / "a-file" / "bot.db" if where == "under a file" else tmp_path / "a-folder"
    line = run_fails(monkeypatch, capsys, tmp_path, level, HIDREAM_DB_PATH=str(path))
    assert line.startswith("hidream-bot: HIDREAM_DB_PATH: ") and str(path) in line


def test_a_platform_that_never_answers(monkeypatch, capsys, tmp_path, level) -> None:
    """A hung server ends the start at its limit (25 s; 1 s here), naming the address."""
    monkeypatch.setattr(adapters.discord.client, "START_TIMEOUT", 1.0)
    monkeypatch.setattr(adapters.slack.adapter, "START_TIMEOUT", 1.0)
    with silent_port() as port:
        url = f"http://127.0.0.1:{port}/api/v10"
        line = run_fails(
            monkeypatch, capsys, tmp_path, level, DISCORD_TOKEN="MTE4.some.token", DISCORD_API_BASE_URL=url
        )
        assert line == f"hidream-bot: DISCORD_API_BASE_URL: no answer from {url} within 1 s"
        slack = f"http://127.0.0.1:{port}/api/"
        line = run_fails(
            monkeypatch,
            capsys,
            tmp_path,
            level,
            SLACK_BOT_TOKEN="xoxb-some-token",
            SLACK_APP_TOKEN="xapp-some-token",
            SLACK_API_BASE_URL=slack,
        )
        assert line == f"hidream-bot: SLACK_API_BASE_URL: Slack did not answer at {slack} within 1 s"
