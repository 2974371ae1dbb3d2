"""The operators' page without a browser: who may read it, what its JSON says, its session cookie."""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.cli import secret_values
from bot.model.config import load_settings
from bot.model.errors import ConfigError
from bot.model.jobs import JobState
from storage.quota import utc_day
from tests.support.admin_support import TOKEN, fill, job, stored
from tests.support.harness import BotHarness, settings_for_test
from tests.support.store_backends import postgres_url

BEARER = {"Authorization": f"Bearer {TOKEN}"}
PATHS = ["/admin", "/admin/login", "/admin/api/overview", "/admin/api/daily", "/admin/api/jobs", "/admin/x"]


@pytest.fixture(params=["sqlite", "postgres"])
def db_env(request: pytest.FixtureRequest) -> dict[str, Any]:
    if request.param == "sqlite":
        return {}
    return {"HIDREAM_DATABASE_URL": postgres_url(request.getfixturevalue("postgres_database"))}


def admin_bot(tmp_path: Path, **env: Any) -> BotHarness:
    return BotHarness(tmp_path, {"HIDREAM_ADMIN_TOKEN": TOKEN, **env}, [])


def client(url: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=url, follow_redirects=False, timeout=30)


def cookie(value: str) -> dict[str, str]:
    """The session cookie as a header: each request says exactly which cookie it sends."""
    return {"Cookie": f"hidream_admin={value}"}


async def sign_in(http: httpx.AsyncClient) -> dict[str, str]:
    answer = await http.post("/admin/login", data={"token": TOKEN})
    assert answer.status_code == 303
    http.cookies.clear()  # not kept by the client: sent only where a test names it
    return cookie(answer.cookies["hidream_admin"])


async def test_without_a_token_nothing_of_it_is_served(tmp_path: Path) -> None:
    async with BotHarness(tmp_path, {}, []) as bot, client(bot.server_url) as http:
        for path in PATHS:
            assert (await http.get(path, headers=BEARER)).status_code == 404, path
        assert (await http.post("/admin/login", data={"token": TOKEN})).status_code == 404
        assert (await http.get("/healthz")).status_code == 200


def test_a_short_token_is_refused_without_echoing_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings(_env_file=None, HIDREAM_ADMIN_TOKEN="short-secret")
    assert "HIDREAM_ADMIN_TOKEN" in str(refused.value) and "short-secret" not in str(refused.value)
    assert settings_for_test(tmp_path).admin_token.get_secret_value() == ""
    # A secret setting: the log handler masks it wherever it would appear.
    assert TOKEN in secret_values(settings_for_test(tmp_path, HIDREAM_ADMIN_TOKEN=TOKEN))


async def test_no_credentials_or_a_wrong_bearer_are_refused(tmp_path: Path) -> None:
    async with admin_bot(tmp_path) as bot, client(bot.server_url) as http:
        for path in PATHS[2:]:
            bare = await http.get(path)
            assert bare.status_code == 401 and "Bearer" in bare.headers["WWW-Authenticate"], path
            wrong = await http.get(path, headers={"Authorization": "Bearer " + TOKEN[:-1] + "x"})
            assert wrong.status_code == 401, path
        page = await http.get("/admin")
        assert page.status_code == 303 and page.headers["Location"] == "/admin/login"
        assert (await http.get("/admin", headers={"Authorization": "Bearer nope"})).status_code == 401
        form = await http.get("/admin/login")
        assert form.status_code == 200 and 'name="token"' in form.text and TOKEN not in form.text
        # Any other path under /admin: refused without credentials, unknown with them.
        assert (await http.get("/admin/x", headers=BEARER)).status_code == 404


async def test_the_json_has_the_figures_of_the_stored_jobs(tmp_path: Path, db_env: dict[str, Any]) -> None:
    async with admin_bot(tmp_path, **db_env) as bot, client(bot.server_url) as http:
        await fill(bot.store)
        got = (await http.get("/admin/api/overview", headers=BEARER)).json()
        daily = (await http.get("/admin/api/daily", headers=BEARER)).json()
    assert got["daily"] == daily and len(daily["days"]) == 30
    today, two_ago = utc_day(time.time()), utc_day(time.time() - 2 * 86400)
    days = {d["day"]: d["providers"] for d in daily["days"]}
    assert days[today] == {"fal": {"images": 3, "usd": pytest.approx(0.15)}}
    assert days[two_ago] == {"wavespeed": {"images": 1, "usd": pytest.approx(0.03)}}
    assert daily["providers"] == ["fal", "wavespeed"]
    assert [(t["tenant"], t["images"], t["usd"]) for t in got["top"]["tenants"]] == [
        ("paper:w1", 3, pytest.approx(0.13)),
        ("paper:w2", 1, pytest.approx(0.05)),
    ]
    assert [u["user"] for u in got["top"]["users"]] == ["paper:u1", "paper:u3", "paper:u2"]
    assert [(f["cause"], f["jobs"]) for f in got["failures"]] == [("fal is out of credit", 1)]
    assert got["queue"]["queued"] == 1 and got["queue"]["active"] == 0
    # This replica's provider (the sandbox here) and its circuit breaker.
    assert [(p["provider"], p["state"], p["failures"]) for p in got["providers"]] == [
        ("sandbox", "closed", 0)
    ]
    states = sorted(j["state"] for j in got["jobs"])
    assert states == ["delivered", "delivered", "delivered", "failed", "queued"]
    assert any(j["prompt"] == "<script>alert(1)</script>" for j in got["jobs"])
    tenants = {t["tenant"]: t for t in got["tenants"]["tenants"]}
    assert tenants["paper:w1"]["budget_usd"] == 40.0
    assert tenants["paper:w1"]["limits"] == [
        {"scope": "ceiling", "subject": "", "daily_limit": 50, "set_by": "operator"}
    ]
    # This month's spend counts what a budget counts: made, and reserved by the job still waiting.
    assert (
        tenants["paper:w2"]["month_usd"] == pytest.approx(0.07) and tenants["paper:w2"]["today_images"] == 2
    )
    assert got["tenants"]["default_user_limit"] == 25


async def test_the_page_escapes_what_people_typed(tmp_path: Path) -> None:
    async with admin_bot(tmp_path) as bot, client(bot.server_url) as http:
        await fill(bot.store)
        page = await http.get("/admin", headers=BEARER)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert "<script" not in page.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert "script-src" not in page.headers["Content-Security-Policy"]  # default-src 'none' forbids scripts
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]
    assert TOKEN not in page.text


def signed(key: bytes, session_id: str, expires: int) -> str:
    body = f"{session_id}.{expires}"
    return f"{body}.{hmac.new(key, body.encode(), hashlib.sha256).hexdigest()}"


async def test_sign_in_sets_a_strict_http_only_cookie_that_is_not_the_token(tmp_path: Path) -> None:
    async with admin_bot(tmp_path) as bot, client(bot.server_url) as http:
        wrong = await http.post("/admin/login", data={"token": "not-the-token-at-all"})
        assert (
            wrong.status_code == 401
            and "not the admin token" in wrong.text
            and "set-cookie" not in wrong.headers
        )
        signed_in = await http.post("/admin/login", data={"token": TOKEN})
        assert signed_in.status_code == 303 and signed_in.headers["Location"] == "/admin"
        set_cookie = signed_in.headers["Set-Cookie"]
        assert "HttpOnly" in set_cookie and "SameSite=Strict" in set_cookie and "Path=/admin" in set_cookie
        assert "Secure" not in set_cookie and TOKEN not in set_cookie
        http.cookies.clear()
        page = await http.get("/admin", headers=cookie(signed_in.cookies["hidream_admin"]))
        assert page.status_code == 200 and "Images per day" in page.text
        api = await http.get("/admin/api/queue", headers=cookie(signed_in.cookies["hidream_admin"]))
        assert api.status_code == 200 and api.json()["queued"] == 0


async def test_the_cookie_is_secure_behind_https(tmp_path: Path) -> None:
    async with (
        admin_bot(tmp_path, HIDREAM_PUBLIC_URL="https://bot.example.org") as bot,
        client(bot.server_url) as http,
    ):
        signed_in = await http.post("/admin/login", data={"token": TOKEN})
    assert signed_in.status_code == 303 and "Secure" in signed_in.headers["Set-Cookie"]


async def test_a_forged_or_expired_cookie_is_refused(tmp_path: Path) -> None:
    async with admin_bot(tmp_path) as bot, client(bot.server_url) as http:
        key = hmac.new(await bot.store.secret("admin-session"), TOKEN.encode(), hashlib.sha256).digest()
        now = int(time.time())
        assert (
            await http.get("/admin/api/queue", headers=cookie(signed(key, "s1", now + 600)))
        ).status_code == 200
        refused = {
            "expired": signed(key, "s1", now - 1),
            "other key": signed(b"k" * 32, "s1", now + 600),
            "the token": TOKEN,
            "changed expiry": signed(key, "s1", now + 600).replace(f".{now + 600}.", f".{now + 6000}."),
            "garbage": "a.b.c",
        }
        for why, value in refused.items():
            answer = await http.get("/admin/api/queue", headers=cookie(value))
            assert answer.status_code == 401, why
            assert (await http.get("/admin", headers=cookie(value))).status_code == 303, why


async def test_sign_out_ends_the_session_even_for_a_copied_cookie(tmp_path: Path) -> None:
    async with admin_bot(tmp_path) as bot, client(bot.server_url) as http:
        cookies = await sign_in(http)
        assert (await http.get("/admin/api/queue", headers=cookies)).status_code == 200
        out = await http.post("/admin/logout", headers=cookies)
        assert out.status_code == 303 and out.headers["Location"] == "/admin/login"
        assert 'hidream_admin=""' in out.headers["Set-Cookie"] and "Max-Age=0" in out.headers["Set-Cookie"]
        assert (await http.get("/admin/api/queue", headers=cookies)).status_code == 401
        # A new sign-in works again.
        again = await sign_in(http)
        assert (await http.get("/admin/api/queue", headers=again)).status_code == 200


async def test_sign_in_failures_are_limited_and_its_body_is_capped(tmp_path: Path) -> None:
    async with admin_bot(tmp_path) as bot, client(bot.server_url) as http:
        huge = await http.post("/admin/login", data={"token": "x" * 10_000})
        assert huge.status_code == 413
        for _ in range(10):
            assert (
                await http.post("/admin/login", data={"token": "wrong-token-guess-0000"})
            ).status_code == 401
        # The lockout that must not happen: after 10 wrong sign-ins from here, the right token gets in.
        signed_in = await http.post("/admin/login", data={"token": TOKEN})
        assert signed_in.status_code == 303 and "hidream_admin=" in signed_in.headers["Set-Cookie"]
        http.cookies.clear()
        # Wrong guesses stay limited (issue 19 turned the right token's 429 into this one's).
        limited = await http.post("/admin/login", data={"token": "wrong-token-guess-0001"})
        assert (
            limited.status_code == 429 and "Too many" in limited.text and "set-cookie" not in limited.headers
        )
        assert 0 < int(limited.headers["Retry-After"]) <= 300
        assert (await http.post("/admin/login", data={"token": TOKEN})).status_code == 303
        http.cookies.clear()
        # Tools with the token are not locked out by someone guessing at the form.
        assert (await http.get("/admin/api/queue", headers=BEARER)).status_code == 200
        # Guessing with bearer tokens is limited the same way.
        wrong = {"Authorization": "Bearer wrong-token-guess-0000"}
        assert (await http.get("/admin/api/queue", headers=wrong)).status_code == 429
        assert (await http.get("/admin/api/queue", headers=BEARER)).status_code == 200


async def test_wrong_bearer_tokens_are_limited_too(tmp_path: Path) -> None:
    async with admin_bot(tmp_path) as bot, client(bot.server_url) as http:
        wrong = {"Authorization": "Bearer wrong-token-guess-0000"}
        for _ in range(10):
            assert (await http.get("/admin/api/daily", headers=wrong)).status_code == 401
        assert (await http.get("/admin/api/daily", headers=wrong)).status_code == 429
        assert (await http.get("/admin/api/daily", headers=BEARER)).status_code == 200


def bars(page: str, chart_id: str) -> list[tuple[str, str, str]]:
    svg = page[page.index(f'<svg id="{chart_id}"') :]
    svg = svg[: svg.index("</svg>")]
    return re.findall(r'data-day="([^"]+)" data-provider="([^"]+)" data-value="([^"]+)"', svg)


async def test_the_charts_stack_each_day_by_provider(tmp_path: Path) -> None:
    async with admin_bot(tmp_path) as bot, client(bot.server_url) as http:
        await fill(bot.store)
        await stored(
            bot.store, job("u9", "w1", "wavespeed", n=2, cost=0.04), "paper:w1", to=JobState.DELIVERED
        )
        page = (await http.get("/admin", headers=BEARER)).text
    today, two_ago = utc_day(time.time()), utc_day(time.time() - 2 * 86400)
    assert bars(page, "images-chart") == [
        (two_ago, "wavespeed", "1"),
        (today, "fal", "3"),
        (today, "wavespeed", "2"),
    ]
    assert bars(page, "spend-chart") == [
        (two_ago, "wavespeed", "0.03"),
        (today, "fal", "0.15"),
        (today, "wavespeed", "0.04"),
    ]
    assert f'data-day="{today}">5</text>' in page
    assert "fal: 3 images, $0.15" in page and "wavespeed: 3 images, $0.07" in page


async def test_the_page_lists_every_tenants_kits_without_their_prompts(
    tmp_path: Path, db_env: dict[str, Any]
) -> None:
    from storage.kits import Kit, Kits

    async with admin_bot(tmp_path, **db_env) as bot, client(bot.server_url) as http:
        kits = Kits(bot.store)
        await kits.save(Kit("discord:g1", "House", prefix="secret prefix of", created_by="discord:ada"))
        await kits.save(Kit("discord:g1", "House", prefix="secret prefix of", created_by="discord:bob"))
        await kits.save(Kit("discord:g1", "gone", created_by="discord:ada"))
        await kits.delete("discord:g1", "gone")
        await kits.save(Kit("slack:T1", "noir", suffix="hidden suffix", created_by="slack:U1"))
        await kits.bind("discord:g1", "c1", "House")
        await kits.bind("discord:g1", "c2", "House")
        listed = (await http.get("/admin/api/kits", headers=BEARER)).json()
        overview = (await http.get("/admin/api/overview", headers=BEARER)).json()
        page = await http.get("/admin", headers=BEARER)
    assert [(k["tenant"], k["kit"], k["version"], k["saved_by"], k["bound_channels"]) for k in listed] == [
        ("discord:g1", "House", 2, "discord:bob", 2),
        ("slack:T1", "noir", 1, "slack:U1", 0),
    ]
    assert overview["kits"] == listed
    table = page.text.split('<table id="kits">', 1)[1].split("</table>", 1)[0]
    assert "House" in table and "noir" in table and "v2" in table and "gone" not in table
    for prompt in ("secret prefix", "hidden suffix"):
        assert prompt not in page.text and prompt not in str(listed)
