"""The Slack fake's OAuth side: several workspaces, each with its own bot token, as Slack issues them.

  GET /oauth/v2/authorize   Slack's authorize page: the installer "allows" at once, and is sent back
                            to the redirect URL with a one-use `code` and the app's `state`
  oauth.v2.access           exchanges the code (or, with token rotation, a refresh token) for a bot
                            token, with the response fields Slack documents
It also builds the `app_uninstalled` and `tokens_revoked` events, revoking the team's tokens as Slack does.
"""

from __future__ import annotations

import base64
import hmac
import itertools
import time
import urllib.parse
from collections.abc import Mapping
from typing import Any

from aiohttp import web

APP_ID = "A0001"
# What Slack gives a rotating bot token to live (12 hours); a test sets less to have it rotated.
ROTATING_SECONDS = 43200


def bot_user_of(team: str) -> str:
    return f"UBOT{team}"


class OAuthFake:
    """Mixed into FakeSlack, which provides `tokens` (token -> team) and `_notify`."""

    client_id = "1111.2222"
    client_secret = "fake-client-secret"
    tokens: dict[str, str]
    calls: list[tuple[str, dict[str, Any]]]

    def _oauth_init(self) -> None:
        self._n = itertools.count(1)
        self.codes: dict[str, str] = {}
        self.refresh_tokens: dict[str, str] = {}
        self.revoked: dict[str, str] = {}
        # Who the next install is for: the workspace the installer picks on Slack's page.
        self.installing_team = "TAAAA"
        self.redirect_url = ""
        self.rotation = False
        self.rotation_seconds = ROTATING_SECONDS
        self.authorize_queries: list[dict[str, str]] = []

    def tokens_of(self, team: str) -> list[str]:
        return [token for token, owner in self.tokens.items() if owner == team]

    async def _authorize(self, request: web.Request) -> web.Response:
        query = dict(request.query)
        self.authorize_queries.append(query)
        if query.get("client_id") != self.client_id:
            return web.Response(status=400, text="invalid client_id")
        redirect = query.get("redirect_uri") or self.redirect_url
        code = f"code-{next(self._n)}-{self.installing_team}"
        self.codes[code] = self.installing_team
        back = urllib.parse.urlencode({"code": code, "state": query.get("state", "")})
        raise web.HTTPFound(f"{redirect}?{back}")

    def oauth_v2_access(self, p: dict[str, Any], headers: Mapping[str, str]) -> dict[str, Any]:
        if not self._client_ok(p, headers):
            return {"error": "invalid_client"}
        if p.get("grant_type") == "refresh_token":
            team = self.refresh_tokens.pop(str(p.get("refresh_token", "")), None)
            if team is None:
                return {"error": "invalid_refresh_token"}
            for old in self.tokens_of(team):  # the token it replaces stops working
                self.revoked[old] = self.tokens.pop(old)
            return self._grant(team)
        team = self.codes.pop(str(p.get("code", "")), None)
        if team is None:
            return {"error": "invalid_code"}
        return {**self._grant(team), "authed_user": {"id": f"UADMIN{team}"}}

    def _client_ok(self, p: Mapping[str, Any], headers: Mapping[str, str]) -> bool:
        # slack_sdk sends the app's credentials as HTTP Basic auth; Slack also takes them in the form.
        given = f"{p.get('client_id', '')}:{p.get('client_secret', '')}"
        auth = headers.get("Authorization", "")
        if auth.startswith("Basic "):
            given = base64.b64decode(auth.removeprefix("Basic ")).decode()
        return hmac.compare_digest(given, f"{self.client_id}:{self.client_secret}")

    def _grant(self, team: str) -> dict[str, Any]:
        n = next(self._n)
        token = f"xoxe.xoxb-{team}-{n}" if self.rotation else f"xoxb-{team}-{n}"
        self.tokens[token] = team
        granted: dict[str, Any] = {
            "access_token": token,
            "token_type": "bot",
            "scope": "commands,chat:write,files:read,files:write",
            "bot_user_id": bot_user_of(team),
            "app_id": APP_ID,
            "team": {"id": team, "name": f"Team {team}"},
            "enterprise": None,
            "is_enterprise_install": False,
        }
        if self.rotation:
            refresh = f"xoxe-1-{team}-{n}"
            self.refresh_tokens[refresh] = team
            granted.update(refresh_token=refresh, expires_in=self.rotation_seconds)
        return granted

    def _revoke(self, team: str) -> None:
        for token in self.tokens_of(team):
            self.revoked[token] = self.tokens.pop(token)

    def _team_event(self, team: str, event: dict[str, Any]) -> dict[str, Any]:
        return {
            "token": "legacy",
            "team_id": team,
            "api_app_id": APP_ID,
            "event": event,
            "type": "event_callback",
            "event_id": f"Ev{next(self._n):08d}",
            "event_time": int(time.time()),
        }

    def uninstall(self, team: str) -> dict[str, Any]:
        """The team removes the app: its tokens stop working; the event Slack then sends."""
        self._revoke(team)
        return self._team_event(team, {"type": "app_uninstalled"})

    def revoke_bot_token(self, team: str) -> dict[str, Any]:
        self._revoke(team)
        event = {"type": "tokens_revoked", "tokens": {"oauth": [], "bot": [bot_user_of(team)]}}
        return self._team_event(team, event)
