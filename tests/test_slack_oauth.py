"""Slack OAuth distribution: installs into several workspaces through /slack/install and
/slack/oauth_redirect (real bolt, httpx, the Slack fake's oauth.v2.access), each workspace answered
with its own token; uninstalls and revoked tokens; bad and replayed states; token rotation. Each
runs with its installations in SQLite and in PostgreSQL (`db_env`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path

import httpx
import pytest

from adapters.slack import SlackSettings, plugin
from bot.model.config import Settings
from bot.model.errors import ConfigError
from bot.model.jobs import JobState
from bot.model.secrets import PREFIX, Sealer
from storage.installations import Installations, plain_tokens
from tests.fakes.slack import FakeSlack
from tests.support.harness import sqlite_of
from tests.support.sealing import KEY, NEW_KEY, SEALER
from tests.support.slack_oauth import CHANNEL_A, CHANNEL_B, TEAM_A, TEAM_B, install, oauth_bot, start_install
from tests.support.slack_support import CHANNEL, Running, job_id_of, running, summaries
from tests.support.store_backends import postgres_url


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as f:
        yield f


@pytest.fixture
def db_env(backend: str, request: pytest.FixtureRequest) -> dict[str, str]:
    """The bot's database: SQLite (nothing to set), or a fresh PostgreSQL schema by HIDREAM_DATABASE_URL."""
    if backend == "sqlite":
        return {}
    return {"HIDREAM_DATABASE_URL": postgres_url(request.getfixturevalue("postgres_database"))}


async def stored(run: Running, team: str) -> str | None:
    found = await Installations(run.bot.store, SEALER).find("", team)
    return None if found is None else found.bot_token


async def test_two_workspaces_are_installed_and_each_is_answered_with_its_own_token(
    tmp_path: Path, fake: FakeSlack, db_env: dict[str, str]
) -> None:
    async with oauth_bot(tmp_path, fake, **db_env) as run:
        for team in (TEAM_A, TEAM_B):
            done = await install(run, team)
            assert done.status_code == 200
            token = await stored(run, team)
            assert token is not None and fake.tokens[token] == team
        query = fake.authorize_queries[0]
        assert "chat:write" in query["scope"].split(",") and query["client_id"] == fake.client_id

        for team, channel in ((TEAM_A, CHANNEL_A), (TEAM_B, CHANNEL_B)):
            assert await run.send.command(fake.slash(f"a cat in {team}", channel=channel, team=team)) == 200
            [summary] = await fake.wait_for(partial(summaries, fake, channel))
            job = await run.bot.engine.job(job_id_of(summary))
            assert job is not None and job.workspace_id == team

        # Every write into a channel went out with the token of the channel's workspace.
        for method in ("chat.postMessage", "chat.update", "files.completeUploadExternal"):
            used = {
                (p.get("channel") or p.get("channel_id"), team)
                for m, team, p in fake.team_calls
                if m == method
            }
            assert used == {(CHANNEL_A, TEAM_A), (CHANNEL_B, TEAM_B)}, method
        # Delivery relied on what the bot recorded, not on reading the thread back.
        assert not fake.called("conversations.replies")


@pytest.mark.parametrize("removal", ["uninstall", "revoke_bot_token"])
async def test_a_removed_workspace_loses_its_token_and_its_unfinished_job_is_refunded(
    tmp_path: Path, fake: FakeSlack, removal: str, db_env: dict[str, str]
) -> None:
    # The sandbox takes an hour: the job is still at the provider when the workspace leaves.
    async with oauth_bot(
        tmp_path, fake, HIDREAM_SANDBOX_DELAY_SECONDS=3600, HIDREAM_DAILY_IMAGE_QUOTA=5, **db_env
    ) as run:
        for team in (TEAM_A, TEAM_B):
            assert (await install(run, team)).status_code == 200
        await run.send.command(fake.slash("a slow cat --n 2", channel=CHANNEL_A, team=TEAM_A))
        # Its status shows progress once the job is admitted.
        await fake.wait_for(lambda: fake.called("chat.update"))
        [job] = await run.bot.store.unfinished_jobs()
        assert (await run.bot.engine.quota("slack", "UALICE01", TEAM_A)).remaining == 3

        assert await run.send.event(getattr(fake, removal)(TEAM_A)) == 200
        for _ in range(400):  # bounded: the listener runs after bolt's ack
            failed = await run.bot.store.job(job.id)
            if failed is not None and failed.state is JobState.FAILED:
                break
            await asyncio.sleep(0.025)
        assert failed is not None and failed.state is JobState.FAILED
        assert await stored(run, TEAM_A) is None
        assert (await run.bot.engine.quota("slack", "UALICE01", TEAM_A)).remaining == 5
        # The other workspace keeps its token and is still answered.
        assert await stored(run, TEAM_B) is not None
        await run.send.command(fake.slash("usage", channel=CHANNEL_B, team=TEAM_B))
        await fake.wait_for(lambda: fake.responses)


async def test_a_bad_or_replayed_state_is_refused(
    tmp_path: Path, fake: FakeSlack, db_env: dict[str, str]
) -> None:
    async with oauth_bot(tmp_path, fake, **db_env) as run, httpx.AsyncClient() as browser:
        fake.installing_team = TEAM_A
        authorize_url, cookie = await start_install(run, browser)
        back = (await browser.get(authorize_url)).headers["location"]
        assert (await browser.get(back, headers={"Cookie": cookie})).status_code == 200
        exchanges = len(fake.called("oauth.v2.access"))

        replayed = await browser.get(back, headers={"Cookie": cookie})
        assert replayed.status_code == 401
        # A state the bot never issued, even with a matching cookie, is refused too.
        fake.installing_team = TEAM_B
        forged = (await browser.get(authorize_url.replace("state=", "state=forged"))).headers["location"]
        state = httpx.URL(forged).params["state"]
        refused = await browser.get(forged, headers={"Cookie": f"slack-app-oauth-state={state}"})
        assert refused.status_code == 401
        # And without the installer's cookie, the state is not taken at all.
        no_cookie = await browser.get(forged)
        assert no_cookie.status_code == 400
        assert len(fake.called("oauth.v2.access")) == exchanges
        assert await stored(run, TEAM_B) is None


async def test_a_rotating_token_is_refreshed_before_use(
    tmp_path: Path, fake: FakeSlack, db_env: dict[str, str]
) -> None:
    fake.rotation, fake.rotation_seconds = True, 600  # expires within bolt's two-hour margin
    async with oauth_bot(tmp_path, fake, **db_env) as run:
        assert (await install(run, TEAM_A)).status_code == 200
        first = await stored(run, TEAM_A)
        assert first is not None and first.startswith("xoxe.xoxb-")
        assert await run.send.command(fake.slash("a cat", channel=CHANNEL_A, team=TEAM_A)) == 200
        await fake.wait_for(lambda: summaries(fake, CHANNEL_A))
        refreshed = [p for p in fake.called("oauth.v2.access") if p.get("grant_type") == "refresh_token"]
        assert refreshed and first in fake.revoked
        now = await stored(run, TEAM_A)
        assert now is not None and now != first and fake.tokens.get(now) == TEAM_A


def test_oauth_settings_mean_http_mode_without_a_bot_token() -> None:
    def slack(**env: str) -> SlackSettings:
        return Settings(_env_file=None, **env).section(SlackSettings)

    s = slack(
        SLACK_CLIENT_ID="1.2", SLACK_CLIENT_SECRET="x", SLACK_SIGNING_SECRET="y", SLACK_APP_TOKEN="xapp-1"
    )
    assert s.oauth and s.enabled and s.mode == "http" and plugin.enabled(s)
    assert "GET /slack/install" in plugin.summary(s)
    warned = plugin.warnings(s)
    assert any("SLACK_APP_TOKEN is not used" in w for w in warned)
    assert any("/slack/oauth_redirect" in w and "Socket Mode" not in w for w in warned)
    half = slack(SLACK_CLIENT_ID="1.2", SLACK_SIGNING_SECRET="y")
    assert not half.enabled and any("go together" in w for w in plugin.warnings(half))


async def test_delivery_reads_the_thread_only_to_recover_an_attempt_cut_off(
    tmp_path: Path, fake: FakeSlack
) -> None:
    # Single-token mode, as before: the one token, no install.
    async with running(tmp_path, fake, "http") as run:
        assert await run.send.command(fake.slash("a red fox")) == 200
        [summary] = await fake.wait_for(lambda: summaries(fake))
        assert not fake.called("conversations.replies")
        job = await run.bot.runner.wait_job(job_id_of(summary))
        assert job is not None and job.state is JobState.DELIVERED
        # As if the process died after Slack took the summary but before it was recorded: only the
        # marks that an attempt started and its files are up remain.
        async with sqlite_of(run.bot.store).transaction() as db:
            await db.execute(
                "DELETE FROM posts WHERE job_id=? AND message_key NOT LIKE '%-' || job_id", (job.id,)
            )
        kept = await run.bot.store.posts_of(job.id, "slack")
        assert kept and all(job.id in k for k in kept)
        posts = await run.adapter.deliver(job, await run.bot.engine.result_images(job))
        assert posts[0].message_key == f"{CHANNEL}:{summary['ts']}"
        assert len(summaries(fake)) == 1 and len(fake.called("files.completeUploadExternal")) == 1
        assert len(fake.called("conversations.replies")) == 1
        # Now recorded again: a further call reads nothing.
        await run.adapter.deliver(job, await run.bot.engine.result_images(job))
        assert len(fake.called("conversations.replies")) == 1 and len(summaries(fake)) == 1


async def test_an_install_with_slack_out_of_reach_gets_a_plain_page_and_one_log_line(
    tmp_path: Path, fake: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    async with oauth_bot(tmp_path, fake) as run, httpx.AsyncClient() as browser:
        fake.installing_team = TEAM_A
        authorize_url, cookie = await start_install(run, browser)
        back = (await browser.get(authorize_url)).headers["location"]
        # Slack's port closes between its Allow page and the code's exchange at oauth.v2.access.
        await fake.__aexit__(None, None, None)
        caplog.clear()
        with caplog.at_level(logging.DEBUG):
            answer = await browser.get(back, headers={"Cookie": cookie})
        assert answer.status_code == 502 and answer.headers["content-type"].startswith("text/html")
        assert "The install did not complete" in answer.text and "try again" in answer.text
        assert 'href="/slack/install"' in answer.text
        assert await stored(run, TEAM_A) is None
        told = [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert [r.getMessage().split(" (")[0] for r in told] == [
            "a Slack install did not complete: Slack could not be reached"
        ]
        assert "\n" not in told[0].getMessage()
        assert not any(r.exc_info for r in caplog.records) and "Traceback" not in caplog.text


async def test_without_a_secret_key_the_oauth_surface_does_not_start(tmp_path: Path, fake: FakeSlack) -> None:
    with pytest.raises(ConfigError) as refused:
        async with oauth_bot(tmp_path, fake, HIDREAM_SECRET_KEY=""):
            pass
    assert str(refused.value).startswith("HIDREAM_SECRET_KEY is not set: ")
    assert "openssl rand -base64 32 | tr '+/' '-_'" in str(refused.value)
    assert not fake.called("oauth.v2.access")


async def test_plain_tokens_are_sealed_at_start_and_a_new_key_takes_over(
    tmp_path: Path, fake: FakeSlack, db_env: dict[str, str]
) -> None:
    async with oauth_bot(tmp_path, fake, **db_env) as run:
        assert (await install(run, TEAM_A)).status_code == 200
        token = await stored(run, TEAM_A)
        assert token is not None
        # As a previous release kept it: in clear.
        await run.bot.store.write("UPDATE slack_installations SET bot_token=? WHERE team_id=?", token, TEAM_A)
        assert await plain_tokens(run.bot.store) == 1

    async def answered(run: Running, key: str) -> None:
        [(row,)] = await run.bot.store.database.fetch("SELECT bot_token FROM slack_installations")
        assert row.startswith(PREFIX) and token not in row
        assert await Installations(run.bot.store, Sealer(key)).find("", TEAM_A) is not None
        fake.messages.clear()
        assert await run.send.command(fake.slash("a cat", channel=CHANNEL_A, team=TEAM_A)) == 200
        await fake.wait_for(partial(summaries, fake, CHANNEL_A))
        # Delivered before this bot stops, so that the next start has nothing of it to resume.
        await run.bot.runner.wait_idle()

    async with oauth_bot(tmp_path, fake, **db_env) as run:
        await answered(run, KEY)
    async with oauth_bot(
        tmp_path, fake, HIDREAM_SECRET_KEY=NEW_KEY, HIDREAM_SECRET_KEY_OLD=KEY, **db_env
    ) as run:
        await answered(run, NEW_KEY)
    # The old key is no longer needed.
    async with oauth_bot(tmp_path, fake, HIDREAM_SECRET_KEY=NEW_KEY, **db_env) as run:
        await answered(run, NEW_KEY)
