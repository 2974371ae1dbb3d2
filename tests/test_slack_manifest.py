"""The shipped app manifest names what the adapter listens for, with the scopes its calls need: its
bot events, slash command and shortcut are compared with the listeners of the adapter's bolt App as
built (one SLACK_BOT_TOKEN, and OAuth installs), its scopes with what an OAuth install asks for."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from adapters.slack import SlackSettings
from adapters.slack import translate as t
from bot import words
from bot.model.jobs import JobState
from tests.fakes.slack import TEAM, FakeSlack
from tests.support.declared import Listeners, Manifest
from tests.support.harness import until
from tests.support.slack_oauth import oauth_bot
from tests.support.slack_support import Running, running

MANIFEST = (Path(__file__).parent.parent / "slack-app-manifest.yml").read_text()


def values(key: str) -> list[str]:
    return [m.strip().strip('"') for m in re.findall(rf"^\s*-?\s*{key}:\s*(.+?)\s*(?:#.*)?$", MANIFEST, re.M)]


def bot_scopes() -> set[str]:
    return set(Manifest.read().bot_scopes)


def test_command_shortcut_and_event_match_the_adapter() -> None:
    assert values("command") == ["/hidream"]
    assert values("callback_id") == [t.SHORTCUT_EDIT]
    assert "app_mention" in re.findall(r"^\s*-\s*(\w+)\s*$", MANIFEST.split("bot_events:", 1)[1], re.M)
    assert values("should_escape") == ["true"]  # admin commands read <@U...> ids


def bot_events() -> list[str]:
    return Manifest.read().bot_events


def test_home_tab_is_enabled_and_refreshed_when_opened() -> None:
    features = MANIFEST.split("\nfeatures:\n", 1)[1].split("\noauth_config:", 1)[0]
    app_home = features.split("\n  app_home:\n", 1)[1].split("\n  slash_commands:", 1)[0]
    assert re.search(r"^    home_tab_enabled: true$", app_home, re.M)
    # Private results arrive in the bot's direct messages: the Messages tab stays.
    assert re.search(r"^    messages_tab_enabled: true$", app_home, re.M)
    assert {"app_mention", "app_home_opened"} <= set(bot_events())


def test_scopes_cover_the_web_api_methods_the_adapter_calls() -> None:
    needed = {
        "commands",
        "app_mentions:read",
        "chat:write",
        "files:read",
        "files:write",
        "channels:history",
        "groups:history",
        "im:history",
        "im:write",
        "mpim:history",
        "users:read",
        "usergroups:read",
        "channels:read",  # conversations.info: policy review's queue is this workspace's channel
        "groups:read",
    }
    assert needed <= bot_scopes()


def test_shipped_mode_is_socket_and_http_urls_point_at_slack_events() -> None:
    assert values("socket_mode_enabled") == ["true"]
    urls = re.findall(r"#\s*(?:url|request_url):\s*(\S+)", MANIFEST)
    assert len(urls) == 3 and all(u.endswith("/slack/events") for u in urls)


def test_scopes_are_what_an_oauth_install_asks_for() -> None:
    # Slack grants a workspace the scopes of the install request (SLACK_SCOPES' default) and of the
    # app's settings (the manifest): the two lists are one list.
    manifest = Manifest.read().bot_scopes
    assert len(manifest) == len(set(manifest))
    assert set(manifest) == set(SlackSettings().scope_list())


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as f:
        yield f


@asynccontextmanager
async def built(tmp_path: Path, fake: FakeSlack, how: str) -> AsyncIterator[Running]:
    if how == "oauth":
        async with oauth_bot(tmp_path, fake) as run:
            yield run
    else:
        async with running(tmp_path, fake, how) as run:
            yield run


@pytest.mark.parametrize("how", ["http", "socket", "oauth"])
async def test_the_manifest_subscribes_every_event_the_adapter_listens_for(
    tmp_path: Path, fake: FakeSlack, how: str
) -> None:
    manifest = Manifest.read()
    async with built(tmp_path, fake, how) as run:
        listening = await Listeners.of(run.adapter.app)
    # Slack sends an event only when the app subscribes it: an event with a listener but no
    # subscription never arrives; a subscription without a listener is answered by nobody.
    assert len(manifest.bot_events) == len(set(manifest.bot_events))
    assert set(manifest.bot_events) == listening.events - set(t.IGNORED_EVENTS)
    assert not set(manifest.bot_events) & set(t.IGNORED_EVENTS)
    assert set(manifest.commands) == listening.commands
    assert set(manifest.shortcuts) == listening.shortcuts
    # What a workspace removing the app sends is among them, whatever the mode.
    assert {t.EVENT_UNINSTALLED, t.EVENT_TOKENS_REVOKED} <= listening.events


@pytest.mark.parametrize("removal", ["uninstall", "revoke_bot_token"])
async def test_with_one_bot_token_a_removal_refunds_the_workspaces_unfinished_job(
    tmp_path: Path, fake: FakeSlack, removal: str, caplog: pytest.LogCaptureFixture
) -> None:
    # The sandbox takes an hour: the job is still at the provider when the workspace leaves.
    async with running(
        tmp_path, fake, "http", HIDREAM_SANDBOX_DELAY_SECONDS=3600, HIDREAM_DAILY_IMAGE_QUOTA=5
    ) as run:
        await run.send.command(fake.slash("a slow cat --n 2"))
        await fake.wait_for(lambda: fake.called("chat.update"))
        [job] = await run.bot.store.unfinished_jobs()
        assert (await run.bot.engine.quota("slack", job.user_id, TEAM)).remaining == 3

        with caplog.at_level(logging.ERROR, logger="adapters.slack.oauth"):
            assert await run.send.event(getattr(fake, removal)(TEAM)) == 200
            await until(lambda: "SLACK_BOT_TOKEN no longer works" in caplog.text)
        failed = await run.bot.store.job(job.id)
        assert failed is not None and failed.state is JobState.FAILED
        assert failed.error == words.APP_REMOVED
        assert (await run.bot.engine.quota("slack", job.user_id, TEAM)).remaining == 5
        assert TEAM in caplog.text and fake.bot_token not in caplog.text
