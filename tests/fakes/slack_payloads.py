"""The payloads Slack sends (slash commands, mentions, button presses, shortcuts, view submissions),
as the Slack fake builds them: mixed into FakeSlack, which provides `_ids`, `url` and `add_message`."""

from __future__ import annotations

import itertools
import time
from typing import Any

TEAM = "T0001"
BOT_USER = "UBOT0001"


class SlackPayloads:
    _ids: itertools.count[int]
    url: str

    def add_message(self, channel: str, user: str, text: str, **extra: Any) -> dict[str, Any]:
        raise NotImplementedError

    def slash(
        self, text: str, user: str = "UALICE01", channel: str = "C_GENERAL", team: str = TEAM
    ) -> dict[str, str]:
        n = next(self._ids)
        return {
            "token": "legacy",
            "team_id": team,
            "team_domain": "fake",
            "channel_id": channel,
            "channel_name": "general",
            "user_id": user,
            "user_name": user.lower(),
            "command": "/hidream",
            "text": text,
            "api_app_id": "A0001",
            "is_enterprise_install": "false",
            "response_url": f"{self.url}response/{n}",
            "trigger_id": f"{n}.{n}.trigger{n}",
        }

    def mention(
        self,
        channel: str,
        user: str,
        text: str,
        *,
        thread_ts: str | None = None,
        files: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """Posts the user's message into the fake and returns the event_callback Slack would send."""
        extra: dict[str, Any] = {"files": files} if files else {}
        if thread_ts:
            extra["thread_ts"] = thread_ts
        msg = self.add_message(channel, user, f"<@{BOT_USER}> {text}", **extra)
        event = {**msg, "type": "app_mention", "channel": channel, "event_ts": msg["ts"], "team": TEAM}
        return {
            "token": "legacy",
            "team_id": TEAM,
            "api_app_id": "A0001",
            "event": event,
            "type": "event_callback",
            "event_id": f"Ev{next(self._ids):08d}",
            "event_time": int(time.time()),
            "authorizations": [{"team_id": TEAM, "user_id": BOT_USER, "is_bot": True}],
        }

    def home_opened(self, user: str, tab: str = "home", team: str = TEAM) -> dict[str, Any]:
        """The event_callback Slack sends when `user` opens the app's Home (or Messages) tab."""
        event = {
            "type": "app_home_opened",
            "user": user,
            "channel": f"D{user}",
            "tab": tab,
            "event_ts": f"{int(time.time())}.{next(self._ids):06d}",
        }
        return {
            "token": "legacy",
            "team_id": team,
            "api_app_id": "A0001",
            "event": event,
            "type": "event_callback",
            "event_id": f"Ev{next(self._ids):08d}",
            "event_time": int(time.time()),
            "authorizations": [{"team_id": team, "user_id": BOT_USER, "is_bot": True}],
        }

    def button(
        self, message: dict[str, Any], channel: str, action_id: str, user: str = "UALICE01"
    ) -> dict[str, Any]:
        n = next(self._ids)
        value = next(
            e["value"]
            for b in message.get("blocks", [])
            for e in b.get("elements", [])
            if e.get("action_id") == action_id
        )
        payload = self.button_like(message, channel, n, user)
        payload["actions"] = [
            {
                "action_id": action_id,
                "block_id": "hidream_buttons",
                "value": value,
                "type": "button",
                "action_ts": f"{time.time():.6f}",
            }
        ]
        return payload

    def overflow(
        self, message: dict[str, Any], channel: str, action_id: str, value: str, user: str = "UALICE01"
    ) -> dict[str, Any]:
        """An option chosen in the message's overflow menu `action_id` (the option must be there), as
        Slack's block_actions payload carries it: `selected_option` in place of a button's `value`."""
        n = next(self._ids)
        option = next(
            o
            for b in message.get("blocks", [])
            for e in b.get("elements", [])
            if e.get("type") == "overflow" and e.get("action_id") == action_id
            for o in e["options"]
            if o["value"] == value
        )
        payload = self.button_like(message, channel, n, user)
        payload["actions"] = [
            {
                "action_id": action_id,
                "block_id": "hidream_buttons",
                "selected_option": option,
                "type": "overflow",
                "action_ts": f"{time.time():.6f}",
            }
        ]
        return payload

    def button_like(self, message: dict[str, Any], channel: str, n: int, user: str) -> dict[str, Any]:
        """A block_actions payload from `message`, without its `actions` (a button's, a menu's)."""
        return {
            "type": "block_actions",
            "user": {"id": user, "team_id": TEAM},
            "team": {"id": TEAM},
            "api_app_id": "A0001",
            "trigger_id": f"{n}.{n}.trigger{n}",
            "channel": {"id": channel},
            "container": {
                "type": "message",
                "message_ts": message["ts"],
                "channel_id": channel,
                "thread_ts": message.get("thread_ts"),
            },
            "message": message,
            "response_url": f"{self.url}response/{n}",
        }

    def shortcut(self, message: dict[str, Any], channel: str, user: str = "UALICE01") -> dict[str, Any]:
        n = next(self._ids)
        return {
            "type": "message_action",
            "callback_id": "hidream_edit_message",
            "trigger_id": f"{n}.{n}.t{n}",
            "team": {"id": TEAM},
            "user": {"id": user, "team_id": TEAM},
            "channel": {"id": channel},
            "message_ts": message["ts"],
            "message": message,
            "response_url": f"{self.url}response/{n}",
            "action_ts": f"{time.time():.6f}",
        }

    def submission(
        self, view: dict[str, Any], values: dict[str, Any], user: str = "UALICE01"
    ) -> dict[str, Any]:
        """The view_submission for a modal this fake opened, filled in with `values` (Slack's state shape)."""
        return {
            "type": "view_submission",
            "team": {"id": TEAM},
            "user": {"id": user, "team_id": TEAM},
            "api_app_id": "A0001",
            "trigger_id": f"{next(self._ids)}.sub",
            "view": {**view, "state": {"values": values}},
            "response_urls": [],
        }
