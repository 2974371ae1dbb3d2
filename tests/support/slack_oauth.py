"""Shared by several test modules."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.fakes.slack import FakeSlack
from tests.support.sealing import KEY
from tests.support.slack_support import Running, running


async def start_install(run: Running, browser: httpx.AsyncClient) -> tuple[str, str]:
    """GET /slack/install: bolt's redirect to Slack's authorize page, and the state cookie it set."""
    started = await browser.get(f"{run.bot.server_url}/slack/install")
    assert started.status_code == 302
    cookie = started.headers["set-cookie"].split(";", 1)[0]
    return started.headers["location"], cookie


TEAM_A, TEAM_B = "TAAAA", "TBBBB"

CHANNEL_A, CHANNEL_B = "C_AAAA", "C_BBBB"


@asynccontextmanager
async def oauth_bot(tmp_path: Path, fake: FakeSlack, **env: Any) -> AsyncIterator[Running]:
    oauth = {
        "SLACK_BOT_TOKEN": None,
        "SLACK_CLIENT_ID": fake.client_id,
        "SLACK_CLIENT_SECRET": fake.client_secret,
        "HIDREAM_SECRET_KEY": KEY,
    }
    async with running(tmp_path, fake, "http", **{**oauth, **env}) as run:
        fake.redirect_url = f"{run.bot.server_url}/slack/oauth_redirect"
        yield run


async def install(run: Running, team: str) -> httpx.Response:
    """An admin of `team` installs the app: install link, Slack's Allow page, back to the redirect."""
    run.fake.installing_team = team
    async with httpx.AsyncClient() as browser:
        authorize_url, cookie = await start_install(run, browser)
        assert authorize_url.startswith(run.fake.url + "oauth/v2/authorize?")
        allowed = await browser.get(authorize_url)
        assert allowed.status_code == 302
        return await browser.get(allowed.headers["location"], headers={"Cookie": cookie})
