"""The operators' page's costs and audit export, on both backends: the download is for signed-in
operators only (a bearer of the token, or a signed-in browser), streamed as chunks, parses back as CSV
and JSON Lines, keeps one tenant's rows when asked and leaves out the prompts of a tenant that
withholds them; costs by any grouping and range show on the page and under /admin/api/costs; a wrong
query is answered in plain words."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from storage.audit import COLUMNS
from storage.preferences import Preferences, TenantPolicy
from tests.support.admin_support import TOKEN
from tests.support.audit import insert_jobs, numbered_job
from tests.support.harness import BotHarness
from tests.support.jobs import NOW
from tests.support.store_backends import postgres_url

BEARER = {"Authorization": f"Bearer {TOKEN}"}
DAY = datetime.fromtimestamp(NOW, UTC).date().isoformat()
JOBS = 1_200  # several of the export's chunks
QUIET = "test:w2"


@pytest.fixture(params=["sqlite", "postgres"])
def db_env(request: pytest.FixtureRequest) -> dict[str, Any]:
    if request.param == "sqlite":
        return {}
    return {"HIDREAM_DATABASE_URL": postgres_url(request.getfixturevalue("postgres_database"))}


def client(url: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=url, follow_redirects=False, timeout=60)


async def test_the_export_download_is_for_operators_streamed_and_parses_back(
    tmp_path: Path, db_env: dict[str, Any]
) -> None:
    jobs = [numbered_job(i, workspace="w2" if i % 10 == 0 else "w1", prompt_chars=200) for i in range(JOBS)]
    async with (
        BotHarness(tmp_path, {"HIDREAM_ADMIN_TOKEN": TOKEN, **db_env}, []) as bot,
        client(bot.server_url) as http,
    ):
        await insert_jobs(bot.store, jobs)
        await Preferences(bot.store).set_policy(QUIET, TenantPolicy(withhold_prompts=True))
        query = {"since": DAY, "until": DAY, "format": "csv"}

        # Nobody else: a browser is sent to sign in, a tool without the token or with a wrong one refused.
        assert (await http.get("/admin/export", params=query)).headers.get("Location") == "/admin/login"
        wrong = await http.get("/admin/export", params=query, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and DAY not in wrong.text
        assert (await http.get("/admin/api/costs")).status_code == 401

        async with http.stream("GET", "/admin/export", params=query, headers=BEARER) as answer:
            assert answer.status_code == 200
            assert answer.headers["Content-Type"].startswith("text/csv")
            assert answer.headers["Content-Disposition"] == (
                f'attachment; filename="hidream-audit-{DAY}-to-{DAY}.csv"'
            )
            # Streamed: sent in chunks as the rows come, with no length known beforehand.
            assert "Content-Length" not in answer.headers
            assert answer.headers.get("Transfer-Encoding") == "chunked"
            body = (await answer.aread()).decode()
        rows = list(csv.DictReader(io.StringIO(body)))
        assert [r["job"] for r in rows] == [j.id for j in jobs]
        assert tuple(rows[0]) == COLUMNS
        quiet = [r for r in rows if r["tenant"] == QUIET]
        assert quiet and all(r["prompt"] == "" and r["prompt_withheld"] == "yes" for r in quiet)
        assert all(r["prompt"].startswith(f"job {int(r['job'], 16)}:") for r in rows if r["tenant"] != QUIET)

        # A signed-in browser gets it too; JSON Lines, one tenant's.
        login = await http.post("/admin/login", data={"token": TOKEN})
        cookie = {"Cookie": f"hidream_admin={login.cookies['hidream_admin']}"}
        http.cookies.clear()
        lines = await http.get(
            "/admin/export", params={"since": DAY, "tenant": QUIET, "format": "jsonl"}, headers=cookie
        )
        assert lines.status_code == 200 and lines.headers["Content-Type"].startswith("application/x-ndjson")
        got = [json.loads(line) for line in lines.text.splitlines()]
        assert [r["job"] for r in got] == [j.id for j in jobs if j.tenant == QUIET]
        assert all(r["prompt_withheld"] is True and r["prompt"] == "" for r in got)

        for bad, says in (
            ({"format": "csv"}, "since is needed"),
            ({"since": "monday", "format": "csv"}, "is not a date"),
            ({"since": DAY, "until": "2000-01-01"}, "is before since"),
            ({"since": DAY, "format": "xlsx"}, "is not one of csv, jsonl"),
            ({"since": DAY, "tenant": "<b>"}, "is not SURFACE:ID"),
        ):
            refused = await http.get("/admin/export", params=bad, headers=BEARER)
            assert refused.status_code == 400 and says in refused.json()["error"], bad


async def test_costs_by_grouping_on_the_page_and_in_the_api(tmp_path: Path, db_env: dict[str, Any]) -> None:
    jobs = [numbered_job(i, workspace="w2" if i % 10 == 0 else "w1", prompt_chars=40) for i in range(30)]
    async with (
        BotHarness(tmp_path, {"HIDREAM_ADMIN_TOKEN": TOKEN, **db_env}, []) as bot,
        client(bot.server_url) as http,
    ):
        await insert_jobs(bot.store, jobs)
        delivered = [j for j in jobs if j.state.value == "delivered"]

        async def api(**params: str) -> dict[str, Any]:
            answer = await http.get("/admin/api/costs", params=params, headers=BEARER)
            assert answer.status_code == 200, answer.text
            found: dict[str, Any] = answer.json()
            return found

        by_project = await api(since=DAY, until=DAY, by="project", tenant="test:w1")
        expected: dict[str, int] = {}
        for j in delivered:
            if j.tenant == "test:w1":
                expected[j.project] = expected.get(j.project, 0) + 1
        assert {r["key"]: r["images"] for r in by_project["rows"]} == expected
        assert (by_project["by"], by_project["tenant"]) == ("project", "test:w1")
        by_channel = await api(since=DAY, until=DAY, by="channel")
        assert sum(r["images"] for r in by_channel["rows"]) == len(delivered)
        assert {r["key"] for r in by_channel["rows"]} == {"c0", "c1", "c2"}
        assert (await api(since=DAY, by="provider"))["rows"][0]["key"] == "sandbox"
        # Outside the range nothing; a wrong grouping is refused in plain words.
        assert (await api(since="2026-01-01", until="2026-01-31"))["rows"] == []
        refused = await http.get("/admin/api/costs", params={"by": "colour"}, headers=BEARER)
        assert (
            refused.status_code == 400 and "is not one of tenant, channel, project" in refused.json()["error"]
        )

        page = await http.get("/admin", params={"since": DAY, "until": DAY, "by": "person"}, headers=BEARER)
        assert page.status_code == 200
        assert 'id="costs-form"' in page.text and 'id="export-form"' in page.text
        assert '<option value="person" selected>' in page.text
        assert f"{len(delivered)} images" in page.text and "test:u1" in page.text
        wrong = await http.get("/admin", params={"since": "soon"}, headers=BEARER)
        assert wrong.status_code == 200 and "since &#39;soon&#39; is not a date" in wrong.text
