"""HTTP mode: every request to /slack/events is signed; a bad or stale one gets 401 and nothing runs."""

from __future__ import annotations

import logging
import time
import urllib.parse
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from slack_sdk.signature import Clock, SignatureVerifier

from tests.fakes.slack import FakeSlack, sign
from tests.support.slack_support import HttpSender, roots, running, summaries

# Slack's own published example (api.slack.com, "Verifying requests from Slack").
EXAMPLE_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
EXAMPLE_TIMESTAMP = "1531420618"
EXAMPLE_BODY = (
    b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V"
    b"&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text="
    b"&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN"
    b"&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
)
EXAMPLE_SIGNATURE = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
FORM = "application/x-www-form-urlencoded"


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack(signing_secret=EXAMPLE_SECRET) as f:
        yield f


class FixedClock(Clock):
    def __init__(self, now: float) -> None:
        self._now = now

    def now(self) -> float:
        return self._now


def test_published_example_signature() -> None:
    assert sign(EXAMPLE_SECRET, EXAMPLE_TIMESTAMP, EXAMPLE_BODY) == EXAMPLE_SIGNATURE
    # bolt's own verifier agrees, when its clock is at the example's time...
    at_the_time = SignatureVerifier(EXAMPLE_SECRET, clock=FixedClock(int(EXAMPLE_TIMESTAMP) + 30))
    assert at_the_time.is_valid(EXAMPLE_BODY, EXAMPLE_TIMESTAMP, EXAMPLE_SIGNATURE)
    # ...and refuses a changed body or a changed secret.
    assert not at_the_time.is_valid(EXAMPLE_BODY + b"&x=1", EXAMPLE_TIMESTAMP, EXAMPLE_SIGNATURE)
    other = SignatureVerifier(EXAMPLE_SECRET[:-1] + "6", clock=FixedClock(int(EXAMPLE_TIMESTAMP)))
    assert not other.is_valid(EXAMPLE_BODY, EXAMPLE_TIMESTAMP, EXAMPLE_SIGNATURE)


async def test_stale_published_example_is_refused_by_the_server(tmp_path: Path, fake: FakeSlack) -> None:
    async with running(tmp_path, fake, "http") as run:
        headers = {
            "Content-Type": FORM,
            "X-Slack-Request-Timestamp": EXAMPLE_TIMESTAMP,
            "X-Slack-Signature": EXAMPLE_SIGNATURE,
        }
        resp = await run.web.post(f"{run.bot.server_url}/slack/events", content=EXAMPLE_BODY, headers=headers)
        # Correctly signed, but from 2018: a replay.
        assert resp.status_code == 401


async def test_bad_or_missing_signature_is_refused_and_nothing_runs(tmp_path: Path, fake: FakeSlack) -> None:
    form = urllib.parse.urlencode(fake.slash("a red fox")).encode()
    async with running(tmp_path, fake, "http") as run:
        sender = run.send
        assert isinstance(sender, HttpSender)
        wrong = await sender.post(form, FORM, secret="not-the-secret")
        assert wrong.status_code == 401
        stale_ts = str(int(time.time()) - 600)
        stale = await sender.post(form, FORM, timestamp=stale_ts)
        assert stale.status_code == 401
        unsigned = await run.web.post(sender.events_url, content=form, headers={"Content-Type": FORM})
        assert unsigned.status_code == 401
        tampered_body = form.replace(b"a+red+fox", b"a+blue+fox")
        ts = str(int(time.time()))
        tampered = await run.web.post(
            sender.events_url,
            content=tampered_body,
            headers={
                "Content-Type": FORM,
                "X-Slack-Request-Timestamp": ts,
                "X-Slack-Signature": sign(fake.signing_secret, ts, form),
            },
        )
        assert tampered.status_code == 401
        assert await run.job_count() == 0
        assert not fake.called("chat.postMessage") and not fake.responses
        # The same request, correctly signed and fresh, runs.
        assert (await sender.post(form, FORM)).status_code == 200
        await fake.wait_for(lambda: summaries(fake))
        assert len(roots(fake)) == 1 and await run.job_count() == 1


async def test_socket_mode_serves_no_http_route(tmp_path: Path, fake: FakeSlack) -> None:
    async with running(tmp_path, fake, "socket") as run:
        resp = await run.web.post(f"{run.bot.server_url}/slack/events", content=b"{}")
        assert resp.status_code in (404, 405)
        assert fake.called("apps.connections.open")


class Everything(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.name} {record.getMessage()}")


async def test_refused_requests_never_reach_bolt_even_with_its_loggers_wide_open(
    tmp_path: Path, fake: FakeSlack
) -> None:
    """Embedded without bot/cli.py, nothing holds bolt's loggers down; the adapter refuses an
    unsigned, wrongly signed or stale request before bolt (which logs the body it refuses) sees it."""
    marker = "a+secret+marker+fox"
    form = urllib.parse.urlencode(fake.slash("a secret marker fox")).encode()
    assert marker.encode() in form
    bolt = logging.getLogger("slack_bolt")
    seen = Everything()
    level = bolt.level
    bolt.addHandler(seen)
    bolt.setLevel(logging.DEBUG)
    try:
        async with running(tmp_path, fake, "http") as run:
            sender = run.send
            assert isinstance(sender, HttpSender)
            logging.getLogger("slack_bolt.hidream").setLevel(logging.DEBUG)
            unsigned = await run.web.post(sender.events_url, content=form, headers={"Content-Type": FORM})
            wrong = await sender.post(form, FORM, secret="not-the-secret")
            stale = await sender.post(form, FORM, timestamp=str(int(time.time()) - 600))
            garbled = await run.web.post(
                sender.events_url,
                content=form,
                headers={
                    "Content-Type": FORM,
                    "X-Slack-Request-Timestamp": "soon",
                    "X-Slack-Signature": "v0=1",
                },
            )
            assert [r.status_code for r in (unsigned, wrong, stale, garbled)] == [401, 401, 401, 401]
            assert unsigned.json() == {"error": "invalid request"}
            assert await run.job_count() == 0
            assert not any(marker in line for line in seen.lines), seen.lines
            # The handler does hear bolt: the signed request is logged at DEBUG on its way in.
            assert (await sender.post(form, FORM)).status_code == 200
            await fake.wait_for(lambda: summaries(fake))
            assert any("slack_bolt" in line for line in seen.lines)
    finally:
        bolt.removeHandler(seen)
        bolt.setLevel(level)
        logging.getLogger("slack_bolt.hidream").setLevel(logging.NOTSET)
