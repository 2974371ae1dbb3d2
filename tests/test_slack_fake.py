"""The fake itself keeps Slack's rules that the adapter relies on."""

from __future__ import annotations

import httpx
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from tests.fakes.slack import FakeSlack


async def test_private_files_need_the_bot_token() -> None:
    async with FakeSlack() as fake, httpx.AsyncClient() as http:
        f = fake.add_file("cat.png", b"\x89PNG fake", "image/png")
        anonymous = await http.get(f["url_private_download"])
        assert anonymous.status_code == 200 and anonymous.headers["content-type"].startswith("text/html")
        authorized = await http.get(
            f["url_private_download"], headers={"Authorization": f"Bearer {fake.bot_token}"}
        )
        assert authorized.content == b"\x89PNG fake"
        assert fake.downloads == [(f["id"], False), (f["id"], True)]


async def test_upload_v2_round_trip_and_wrong_token() -> None:
    async with FakeSlack() as fake:
        root = fake.add_message("C1", "UALICE01", "hello")
        client = AsyncWebClient(token=fake.bot_token, base_url=fake.api_url)
        done = await client.files_upload_v2(
            channel="C1", thread_ts=root["ts"], file_uploads=[{"content": b"\x89PNG x", "filename": "a.png"}]
        )
        assert done["files"][0]["title"] == "a.png"
        [shared] = [m for m in fake.thread("C1", root["ts"]) if m.get("files")]
        assert shared["thread_ts"] == root["ts"] and shared["files"][0]["mimetype"] == "image/png"
        bad = AsyncWebClient(token="xoxb-wrong", base_url=fake.api_url)
        with pytest.raises(SlackApiError) as refused:
            await bad.auth_test()
        assert refused.value.response["error"] == "invalid_auth"
