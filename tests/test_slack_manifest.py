"""The shipped app manifest names what the adapter listens for, with the scopes its calls need."""

from __future__ import annotations

import re
from pathlib import Path

from adapters.slack import translate as t

MANIFEST = (Path(__file__).parent.parent / "slack-app-manifest.yml").read_text()


def values(key: str) -> list[str]:
    return [m.strip().strip('"') for m in re.findall(rf"^\s*-?\s*{key}:\s*(.+?)\s*(?:#.*)?$", MANIFEST, re.M)]


def bot_scopes() -> set[str]:
    block = MANIFEST.split("    bot:\n", 1)[1].split("settings:", 1)[0]
    return set(re.findall(r"^\s*-\s*([a-z_.:]+)", block, re.M))


def test_command_shortcut_and_event_match_the_adapter() -> None:
    assert values("command") == ["/hidream"]
    assert values("callback_id") == [t.SHORTCUT_EDIT]
    assert "app_mention" in re.findall(r"^\s*-\s*(\w+)\s*$", MANIFEST.split("bot_events:", 1)[1], re.M)
    assert values("should_escape") == ["true"]  # admin commands read <@U...> ids


def bot_events() -> list[str]:
    block = MANIFEST.split("bot_events:", 1)[1].split("interactivity:", 1)[0]
    return re.findall(r"^\s*-\s*(\w+)\s*$", block, re.M)


def test_home_tab_is_enabled_and_refreshed_when_opened() -> None:
    features = MANIFEST.split("\nfeatures:\n", 1)[1].split("\noauth_config:", 1)[0]
    app_home = features.split("\n  app_home:\n", 1)[1].split("\n  slash_commands:", 1)[0]
    assert re.search(r"^    home_tab_enabled: true$", app_home, re.M)
    # Private results arrive in the bot's direct messages: the Messages tab stays.
    assert re.search(r"^    messages_tab_enabled: true$", app_home, re.M)
    assert bot_events() == ["app_mention", "app_home_opened"]


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
    }
    assert needed <= bot_scopes()


def test_shipped_mode_is_socket_and_http_urls_point_at_slack_events() -> None:
    assert values("socket_mode_enabled") == ["true"]
    urls = re.findall(r"#\s*(?:url|request_url):\s*(\S+)", MANIFEST)
    assert len(urls) == 3 and all(u.endswith("/slack/events") for u in urls)
