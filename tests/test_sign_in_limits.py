"""Sign-in limits that cannot lock the operators out (issue 19, item 2): wrong tokens are limited per
address and per guess, the right token always gets in, and `X-Forwarded-For` is believed only from a
proxy named in HIDREAM_TRUSTED_PROXIES. Through the bot's real server, and the pieces on their own."""

from __future__ import annotations

import ipaddress
import logging
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.model.config import load_settings
from bot.model.errors import ConfigError
from bot.web.gate import FailureCounts, client_address, limit_key
from tests.support.admin_support import TOKEN
from tests.support.harness import BotHarness

BEARER = {"Authorization": f"Bearer {TOKEN}"}
LOOPBACK_PROXY = {"HIDREAM_TRUSTED_PROXIES": "127.0.0.1"}


def admin_bot(tmp_path: Path, **env: Any) -> BotHarness:
    return BotHarness(tmp_path, {"HIDREAM_ADMIN_TOKEN": TOKEN, **env}, [])


def client(url: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=url, follow_redirects=False, timeout=30)


def via(address: str) -> dict[str, str]:
    return {"X-Forwarded-For": address}


async def sign_in(http: httpx.AsyncClient, token: str, address: str | None = None) -> int:
    answer = await http.post("/admin/login", data={"token": token}, headers=via(address) if address else {})
    http.cookies.clear()
    return answer.status_code


async def test_forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy(tmp_path: Path) -> None:
    async with admin_bot(tmp_path) as bot, client(bot.server_url) as http:
        # Each guess claims another address: without a trusted proxy the claim is not believed.
        for n in range(10):
            assert await sign_in(http, f"wrong-guess-{n:04}-xxxxxxx", f"198.51.100.{n}") == 401
        assert await sign_in(http, "wrong-guess-9999-xxxxxxx", "203.0.113.77") == 429
        assert await sign_in(http, TOKEN, "203.0.113.77") == 303


async def test_behind_a_trusted_proxy_each_visitor_has_their_own_limit(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="bot.web.gate")
    async with admin_bot(tmp_path, **LOOPBACK_PROXY) as bot, client(bot.server_url) as http:
        for n in range(10):
            assert await sign_in(http, f"wrong-guess-{n:04}-xxxxxxx", "198.51.100.7") == 401
        assert await sign_in(http, "wrong-guess-9999-xxxxxxx", "198.51.100.7") == 429
        # A spoofed hop written by the visitor, left of what the proxy appended, changes nothing.
        assert await sign_in(http, "wrong-guess-8888-xxxxxxx", "10.9.9.9, 198.51.100.7") == 429
        # Another visitor through the same proxy is not held back by the first one's guesses ...
        assert await sign_in(http, "wrong-guess-7777-xxxxxxx", "198.51.100.8") == 401
        # ... and the operator gets in from anywhere, the guesser's own address included.
        assert await sign_in(http, TOKEN, "198.51.100.7") == 303
        assert (
            await http.get("/admin/api/queue", headers={**BEARER, **via("198.51.100.7")})
        ).status_code == 200
    logged = [r.getMessage() for r in caplog.records if "wrong operators' token" in r.getMessage()]
    # One line per counted guess, naming the visitor, not the proxy; none for the refused ones.
    assert logged.count("admin sign-in: a wrong operators' token from 198.51.100.7") == 10
    assert logged == [m for m in logged if "127.0.0.1" not in m] and len(logged) == 11


async def test_one_wrong_token_is_limited_from_every_address(tmp_path: Path) -> None:
    async with admin_bot(tmp_path, **LOOPBACK_PROXY) as bot, client(bot.server_url) as http:
        stale = {"Authorization": "Bearer an-old-token-0123456789"}
        for n in range(10):
            answer = await http.get("/admin/api/queue", headers={**stale, **via(f"198.51.100.{n}")})
            assert answer.status_code == 401
        again = await http.get("/admin/api/queue", headers={**stale, **via("198.51.100.200")})
        assert again.status_code == 429 and int(again.headers["Retry-After"]) > 0
        # Another guess from that fresh address is only counted, and the right token gets in.
        other = {"Authorization": "Bearer another-token-0123456789"}
        assert (
            await http.get("/admin/api/queue", headers={**other, **via("198.51.100.200")})
        ).status_code == 401
        assert (
            await http.get("/admin/api/queue", headers={**BEARER, **via("198.51.100.3")})
        ).status_code == 200


async def test_an_ipv6_visitor_is_limited_by_their_64(tmp_path: Path) -> None:
    async with admin_bot(tmp_path, **LOOPBACK_PROXY) as bot, client(bot.server_url) as http:
        for n in range(10):
            assert await sign_in(http, f"wrong-guess-{n:04}-xxxxxxx", f"2001:db8:1:2::{n + 1:x}") == 401
        assert await sign_in(http, "wrong-guess-9999-xxxxxxx", "2001:db8:1:2:ffff::1") == 429
        assert await sign_in(http, "wrong-guess-9998-xxxxxxx", "2001:db8:1:3::1") == 401


def test_a_trusted_proxy_setting_that_names_no_address_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings(_env_file=None, HIDREAM_TRUSTED_PROXIES="10.0.0.1, proxy.internal")
    assert "HIDREAM_TRUSTED_PROXIES" in str(refused.value) and "proxy.internal" in str(refused.value)
    settings = load_settings(_env_file=None, HIDREAM_TRUSTED_PROXIES=" 10.0.0.1 , 172.16.0.0/12,::1")
    assert settings.trusted_proxies == "10.0.0.1/32,172.16.0.0/12,::1/128"
    assert load_settings(_env_file=None).trusted_proxy_networks == ()


def test_the_client_address_is_the_rightmost_hop_no_trusted_proxy_wrote() -> None:
    trusted = (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("::1/128"))
    assert client_address("192.0.2.1", ["198.51.100.1"], trusted) == "192.0.2.1"  # not a proxy
    assert client_address("10.0.0.5", [], trusted) == "10.0.0.5"
    assert client_address("10.0.0.5", ["198.51.100.1"], trusted) == "198.51.100.1"
    # Two proxies in a row, and a visitor's own claim left of them.
    assert client_address("10.0.0.5", ["1.2.3.4, 198.51.100.1, 10.0.0.9"], trusted) == "198.51.100.1"
    # Several header lines read as one list; an IPv4-mapped peer read as IPv4.
    assert client_address("::ffff:10.0.0.5", ["1.2.3.4", "198.51.100.2"], trusted) == "198.51.100.2"
    assert client_address("::1", ["[2001:db8::7]"], trusted) == "2001:db8::7"
    # A hop that is no address was not written by a trusted proxy: the last trusted hop stands.
    assert client_address("10.0.0.5", ["198.51.100.1, unknown"], trusted) == "10.0.0.5"
    assert client_address(None, ["198.51.100.1"], trusted) == "?"


def test_failures_are_forgotten_after_the_window_and_memory_is_bounded() -> None:
    now = [1000.0]
    counts = FailureCounts(3, 300.0, lambda: now[0], remembered=5)
    for _ in range(3):
        assert counts.wait("a") == 0
        counts.fail("a")
        now[0] += 10
    assert counts.wait("a") == pytest.approx(300 - 30)
    now[0] = 1000.0 + 300
    assert counts.wait("a") == 0  # the first failure has aged out
    for n in range(20):
        counts.fail(f"k{n}")
    assert len(counts._recent) == 5 and "k19" in counts._recent and "a" not in counts._recent
    assert limit_key("2001:db8:1:2::1") == limit_key("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert limit_key("198.51.100.1") == "198.51.100.1"
