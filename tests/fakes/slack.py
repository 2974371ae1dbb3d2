"""A loopback fake of the Slack platform that the real slack-sdk / slack-bolt talk to.

It serves, on 127.0.0.1 and an ephemeral port:
  /api/<method>                 the Web API methods the bot uses, with Slack's documented shapes
  /upload/<file_id>             the upload URL files.getUploadURLExternal hands out
  /files-pri/<team>-<id>/...    private file downloads (bearer token required, as on Slack)
  /response/<id>                response_url targets of slash commands
  /socket                       the Socket Mode websocket apps.connections.open points to
  /oauth/v2/authorize           Slack's authorize page, for installs by OAuth (tests/fakes/slack_oauth.py)
Besides the one bot token it starts with (team T0001), each team installed by OAuth has its own;
every call records the team whose token it used (`team_calls`).
It also builds the payloads Slack sends and pushes envelopes over the websocket (Socket Mode);
tests/support/slack_support.py sends them as signed HTTP requests (HTTP mode) or envelopes.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from tests.fakes.loopback import serve
from tests.fakes.slack_oauth import OAuthFake, bot_user_of
from tests.fakes.slack_payloads import BOT_USER, TEAM, SlackPayloads

BOT_ID = "B0001"
__all__ = ["BOT_ID", "BOT_USER", "TEAM", "FakeFile", "FakeSlack", "sign"]


@dataclass
class FakeFile:
    id: str
    name: str
    mimetype: str
    data: bytes = b""
    user: str = BOT_USER
    title: str = ""

    def as_object(self, base: str) -> dict[str, Any]:
        private = f"{base}files-pri/{TEAM}-{self.id}/{self.name}"
        return {
            "id": self.id,
            "name": self.name,
            "title": self.title or self.name,
            "mimetype": self.mimetype,
            "filetype": self.name.rsplit(".", 1)[-1],
            "size": len(self.data),
            "user": self.user,
            "mode": "hosted",
            "url_private": private,
            "url_private_download": f"{base}files-pri/{TEAM}-{self.id}/download/{self.name}",
        }


@dataclass
class FakeSlack(OAuthFake, SlackPayloads):
    bot_token: str = "xoxb-fake-bot-token"
    app_token: str = "xapp-fake-app-token"
    signing_secret: str = "fake-signing-secret"
    admins: set[str] = field(default_factory=set)
    messages: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    files: dict[str, FakeFile] = field(default_factory=dict)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    ephemerals: list[dict[str, Any]] = field(default_factory=list)
    responses: list[dict[str, Any]] = field(default_factory=list)
    views: list[dict[str, Any]] = field(default_factory=list)
    downloads: list[tuple[str, bool]] = field(default_factory=list)
    # The Home tab each user was last shown (views.publish), by user id.
    homes: dict[str, dict[str, Any]] = field(default_factory=dict)
    # User groups (subteams) by id and their members' user ids, for usergroups.users.list.
    usergroups: dict[str, list[str]] = field(default_factory=dict)
    # Channels and people of another workspace: conversations.info and users.info do not find them.
    foreign_channels: set[str] = field(default_factory=set)
    # Channels the bot was removed from: posting there answers not_in_channel.
    closed_channels: set[str] = field(default_factory=set)
    outsiders: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._ids = itertools.count(1)
        self._oauth_init()
        self.tokens = {self.bot_token: TEAM}
        # (method, team of the token it used, params) for every bot-token call.
        self.team_calls: list[tuple[str, str, dict[str, Any]]] = []
        self._caller = TEAM
        self._changed = asyncio.Condition()
        self._acks: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._sockets: list[web.WebSocketResponse] = []
        self._socket_ready = asyncio.Event()
        self._stack = AsyncExitStack()
        # Tests may close this gate to hold private file downloads (e.g. to prove the ack came first).
        self.download_gate = asyncio.Event()
        self.download_gate.set()
        self.url = ""

    # --- lifecycle ------------------------------------------------------------------------------

    async def __aenter__(self) -> FakeSlack:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_post("/upload/{file_id}", self._upload)
        app.router.add_get("/files-pri/{key}/{rest:.*}", self._download)
        app.router.add_post("/response/{rid}", self._response)
        app.router.add_get("/socket", self._socket)
        app.router.add_get("/oauth/v2/authorize", self._authorize)
        self.url = await self._stack.enter_async_context(serve(app)) + "/"
        return self

    async def __aexit__(self, *exc: object) -> None:
        for ws in list(self._sockets):
            await ws.close()
        await self._stack.aclose()

    @property
    def api_url(self) -> str:
        return f"{self.url}api/"

    # --- what tests set up and look at ----------------------------------------------------------

    def _ts(self) -> str:
        n = next(self._ids)
        return f"{1700000000 + n}.{n:06d}"

    def add_file(self, name: str, data: bytes, mimetype: str, user: str = "UALICE01") -> dict[str, Any]:
        f = FakeFile(id=f"F{next(self._ids):08d}", name=name, mimetype=mimetype, data=data, user=user)
        self.files[f.id] = f
        return f.as_object(self.url)

    def add_message(self, channel: str, user: str, text: str, **extra: Any) -> dict[str, Any]:
        msg = {"type": "message", "user": user, "text": text, "ts": self._ts(), **extra}
        self.messages.setdefault(channel, []).append(msg)
        return msg

    def thread(self, channel: str, thread_ts: str) -> list[dict[str, Any]]:
        return [
            m
            for m in self.messages.get(channel, [])
            if m["ts"] == thread_ts or m.get("thread_ts") == thread_ts
        ]

    def find(self, channel: str, ts: str) -> dict[str, Any] | None:
        return next((m for m in self.messages.get(channel, []) if m["ts"] == ts), None)

    def called(self, method: str) -> list[dict[str, Any]]:
        return [params for name, params in self.calls if name == method]

    async def wait_for(self, check: Callable[[], Any], within: float = 30.0) -> Any:
        """Wait until `check()` returns something truthy after any change the fake sees."""
        async with asyncio.timeout(within):
            async with self._changed:
                while not (result := check()):
                    await self._changed.wait()
                return result

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    # --- the Web API ----------------------------------------------------------------------------

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params: dict[str, Any] = dict(request.query)
        if request.can_read_body:
            if request.content_type == "application/json":
                params.update(await request.json())
            else:
                params.update(dict(await request.post()))
        params.pop("token", None)
        if method == "oauth.v2.access":  # the app's credentials, not a token
            self.calls.append((method, params))
            granted = self.oauth_v2_access(params, request.headers)
            await self._notify()
            return web.json_response({"ok": "error" not in granted, **granted})
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if not token:
            return web.json_response({"ok": False, "error": "not_authed"})
        if method == "apps.connections.open":
            if not hmac.compare_digest(token, self.app_token):
                return web.json_response({"ok": False, "error": "invalid_auth"})
        elif token not in self.tokens:
            return web.json_response(
                {"ok": False, "error": "token_revoked" if token in self.revoked else "invalid_auth"}
            )
        self._caller = self.tokens.get(token, TEAM)
        self.calls.append((method, params))
        self.team_calls.append((method, self._caller, params))
        handler = getattr(self, "m_" + method.replace(".", "_"), None)
        if handler is None:
            return web.json_response({"ok": False, "error": "unknown_method"})
        result: dict[str, Any] = handler(params)
        await self._notify()
        return web.json_response({"ok": "error" not in result, **result})

    def m_auth_test(self, p: dict[str, Any]) -> dict[str, Any]:
        team = self._caller
        return {
            "url": "https://fake.slack.com/",
            "team": "Fake",
            "user": "hidream",
            "team_id": team,
            "user_id": BOT_USER if team == TEAM else bot_user_of(team),
            "bot_id": BOT_ID if team == TEAM else f"B{team}",
        }

    def m_apps_connections_open(self, p: dict[str, Any]) -> dict[str, Any]:
        return {"url": self.url.replace("http://", "ws://") + "socket"}

    def _bot_message(self, p: dict[str, Any]) -> dict[str, Any]:
        blocks = p.get("blocks")
        metadata = p.get("metadata")
        msg: dict[str, Any] = {
            "type": "message",
            "subtype": "bot_message",
            "user": BOT_USER,
            "bot_id": BOT_ID,
            "text": p.get("text", ""),
            "ts": self._ts(),
            "blocks": json.loads(blocks) if isinstance(blocks, str) else blocks or [],
        }
        if p.get("thread_ts"):
            msg["thread_ts"] = p["thread_ts"]
        if metadata:
            msg["metadata"] = json.loads(metadata) if isinstance(metadata, str) else metadata
        return msg

    def m_chat_postMessage(self, p: dict[str, Any]) -> dict[str, Any]:
        channel = p["channel"]
        if channel in self.closed_channels:
            return {"error": "not_in_channel"}
        if p.get("thread_ts") and not self.find(channel, p["thread_ts"]):
            return {"error": "thread_not_found"}
        msg = self._bot_message(p)
        self.messages.setdefault(channel, []).append(msg)
        return {"channel": channel, "ts": msg["ts"], "message": msg}

    def m_chat_update(self, p: dict[str, Any]) -> dict[str, Any]:
        msg = self.find(p["channel"], p["ts"])
        if msg is None:
            return {"error": "message_not_found"}
        if msg.get("user") != BOT_USER:
            return {"error": "cant_update_message"}
        new = self._bot_message(p)
        msg.update(text=new["text"], blocks=new["blocks"], edited={"user": BOT_USER})
        return {"channel": p["channel"], "ts": p["ts"], "text": msg["text"]}

    def m_chat_delete(self, p: dict[str, Any]) -> dict[str, Any]:
        msg = self.find(p["channel"], p["ts"])
        if msg is None:
            return {"error": "message_not_found"}
        if msg.get("user") != BOT_USER:
            return {"error": "cant_delete_message"}
        self.messages[p["channel"]].remove(msg)
        return {"channel": p["channel"], "ts": p["ts"]}

    def m_chat_postEphemeral(self, p: dict[str, Any]) -> dict[str, Any]:
        self.ephemerals.append(p)
        return {"message_ts": self._ts()}

    def m_views_open(self, p: dict[str, Any]) -> dict[str, Any]:
        view = json.loads(p["view"]) if isinstance(p["view"], str) else p["view"]
        if not p.get("trigger_id"):
            return {"error": "invalid_trigger_id"}
        if not _view_within_limits(view):
            return {"error": "invalid_arguments"}
        view = {**view, "id": f"V{next(self._ids):06d}"}
        self.views.append(view)
        return {"view": view}

    def m_views_publish(self, p: dict[str, Any]) -> dict[str, Any]:
        # Slack's documented arguments: `user_id` and a `view` of type home (JSON text or an object);
        # a view over Slack's limits is refused as Slack refuses it.
        raw = p.get("view")
        view = json.loads(raw) if isinstance(raw, str) else raw
        if not p.get("user_id") or not isinstance(view, dict) or view.get("type") != "home":
            return {"error": "invalid_arguments"}
        if not _within_limits(view.get("blocks") or []):
            return {"error": "invalid_blocks"}
        published = {**view, "id": f"V{next(self._ids):06d}", "team_id": self._caller}
        self.homes[str(p["user_id"])] = published
        return {"view": published}

    def m_conversations_open(self, p: dict[str, Any]) -> dict[str, Any]:
        # The bot's direct message with one person: a channel id of its own, made on first use.
        users = str(p.get("users", ""))
        if not users or "," in users:
            return {"error": "invalid_arguments"}
        channel = f"D{users}"
        self.messages.setdefault(channel, [])
        return {"channel": {"id": channel}}

    def m_usergroups_users_list(self, p: dict[str, Any]) -> dict[str, Any]:
        # Slack's documented arguments: `usergroup` (required); the answer lists its members' ids.
        group = str(p.get("usergroup", ""))
        if not group:
            return {"error": "invalid_arguments"}
        if group not in self.usergroups:
            return {"error": "no_such_subteam"}
        return {"users": list(self.usergroups[group])}

    def m_conversations_info(self, p: dict[str, Any]) -> dict[str, Any]:
        # Slack's documented argument `channel`; a channel of another workspace is not found.
        channel = str(p.get("channel", ""))
        if not channel or channel in self.foreign_channels:
            return {"error": "channel_not_found"}
        return {
            "channel": {"id": channel, "is_channel": channel.startswith("C"), "context_team_id": self._caller}
        }

    def m_users_info(self, p: dict[str, Any]) -> dict[str, Any]:
        if p["user"] in self.outsiders:
            return {"error": "user_not_found"}
        admin = p["user"] in self.admins
        return {"user": {"id": p["user"], "team_id": self._caller, "is_admin": admin, "is_owner": False}}

    def m_files_getUploadURLExternal(self, p: dict[str, Any]) -> dict[str, Any]:
        if not p.get("filename") or not str(p.get("length", "")).isdigit():
            return {"error": "invalid_arguments"}
        f = FakeFile(id=f"F{next(self._ids):08d}", name=p["filename"], mimetype="")
        self.files[f.id] = f
        return {"upload_url": f"{self.url}upload/{f.id}", "file_id": f.id}

    def m_files_completeUploadExternal(self, p: dict[str, Any]) -> dict[str, Any]:
        entries = json.loads(p["files"]) if isinstance(p["files"], str) else p["files"]
        done = []
        for entry in entries:
            f = self.files.get(entry["id"])
            if f is None or not f.data:
                return {"error": "file_not_found"}
            f.title = entry.get("title") or f.name
            done.append(f)
        channel = p.get("channel_id")
        if channel:
            if p.get("thread_ts") and not self.find(channel, p["thread_ts"]):
                return {"error": "thread_not_found"}
            msg = self._bot_message({"text": p.get("initial_comment", ""), "thread_ts": p.get("thread_ts")})
            msg.update(files=[f.as_object(self.url) for f in done], upload=True)
            self.messages.setdefault(channel, []).append(msg)
        return {"files": [{"id": f.id, "title": f.title} for f in done]}

    def m_files_info(self, p: dict[str, Any]) -> dict[str, Any]:
        f = self.files.get(p["file"])
        return {"error": "file_not_found"} if f is None else {"file": f.as_object(self.url)}

    def m_files_delete(self, p: dict[str, Any]) -> dict[str, Any]:
        return {} if self.files.pop(p["file"], None) else {"error": "file_not_found"}

    def m_conversations_replies(self, p: dict[str, Any]) -> dict[str, Any]:
        found = self.thread(p["channel"], p["ts"])
        if not found:
            return {"error": "thread_not_found"}
        with_meta = str(p.get("include_all_metadata", "")).lower() in ("1", "true")
        out = [m if with_meta else {k: v for k, v in m.items() if k != "metadata"} for m in found]
        return {"messages": out, "has_more": False}

    # --- uploads, downloads, responses ------------------------------------------------------------

    async def _upload(self, request: web.Request) -> web.Response:
        f = self.files.get(request.match_info["file_id"])
        if f is None:
            return web.Response(status=404)
        f.data = await request.read()
        f.mimetype = _sniff(f.data)
        return web.Response(text=f"OK - {len(f.data)}")

    async def _download(self, request: web.Request) -> web.Response:
        team, file_id = request.match_info["key"].split("-", 1)
        f = self.files.get(file_id)
        # A file is private to its workspace: only that workspace's bot token fetches it.
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        authorized = bool(token) and self.tokens.get(token) == team
        self.downloads.append((file_id, authorized))
        await self._notify()
        await self.download_gate.wait()
        if f is None:
            return web.Response(status=404)
        if not authorized:
            # What Slack does too: no error status, a sign-in page instead of the file.
            return web.Response(text="<html><body>Sign in to Slack</body></html>", content_type="text/html")
        return web.Response(body=f.data, content_type=f.mimetype)

    async def _response(self, request: web.Request) -> web.Response:
        self.responses.append({"rid": request.match_info["rid"], **await request.json()})
        await self._notify()
        return web.Response(text="ok")

    # --- Socket Mode ------------------------------------------------------------------------------

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._sockets.append(ws)
        await ws.send_json(
            {"type": "hello", "num_connections": len(self._sockets), "connection_info": {"app_id": "A0001"}}
        )
        self._socket_ready.set()
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    data = json.loads(msg.data)
                    fut = self._acks.get(data.get("envelope_id", ""))
                    if fut is not None and not fut.done():
                        fut.set_result({**data, "acked_at": time.monotonic()})
        finally:
            self._sockets.remove(ws)
            if not self._sockets:
                self._socket_ready.clear()
        return ws

    async def send_envelope(
        self, kind: str, payload: dict[str, Any], *, retry_attempt: int = 0, within: float = 30.0
    ) -> dict[str, Any]:
        """Send an envelope to the connected app; returns its acknowledgement (with `acked_at`)."""
        async with asyncio.timeout(within):
            await self._socket_ready.wait()
        envelope_id = f"env-{next(self._ids)}"
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._acks[envelope_id] = fut
        envelope: dict[str, Any] = {
            "envelope_id": envelope_id,
            "type": kind,
            "payload": payload,
            "accepts_response_payload": kind != "events_api",
        }
        if kind == "events_api":
            envelope.update(retry_attempt=retry_attempt, retry_reason="timeout" if retry_attempt else "")
        await self._sockets[-1].send_json(envelope)
        return await asyncio.wait_for(fut, within)


def _within_limits(blocks: list[dict[str, Any]]) -> bool:
    """Slack's limits on a view: 100 blocks; a section's text 3000 characters, a header's 150."""
    if len(blocks) > 100:
        return False
    for block in blocks:
        text = str((block.get("text") or {}).get("text", ""))
        if len(text) > {"header": 150, "section": 3000}.get(str(block.get("type")), 3000):
            return False
    return True


def _view_within_limits(view: dict[str, Any]) -> bool:
    """Slack's limits on a modal as views.open checks them: title, submit and close at most 24
    characters, private_metadata 3000; an input's text field no longer than its max_length (3000 at
    most); a checkbox group of 1 to 10 options (text and description 75 characters each), the ticked
    ones among them."""
    names = [str((view.get(k) or {}).get("text", "")) for k in ("title", "submit", "close")]
    if any(len(n) > 24 for n in names) or len(str(view.get("private_metadata", ""))) > 3000:
        return False
    for block in view.get("blocks") or []:
        element = block.get("element") or {}
        if element.get("type") == "plain_text_input":
            most = int(element.get("max_length", 3000))
            if most > 3000 or len(str(element.get("initial_value", ""))) > most:
                return False
        if element.get("type") == "checkboxes":
            options = element.get("options") or []
            texts = [str((o.get(k) or {}).get("text", "")) for o in options for k in ("text", "description")]
            if not 1 <= len(options) <= 10 or any(len(x) > 75 for x in texts):
                return False
            if any(o not in options for o in element.get("initial_options") or []):
                return False
    return _within_limits(view.get("blocks") or [])


def _sniff(data: bytes) -> str:
    if data.startswith(b"\x89PNG"):
        return "image/png"
    if data.startswith(b"\xff\xd8"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return "application/octet-stream"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """Slack's request signature: v0=HMAC-SHA256(secret, "v0:<timestamp>:<body>")."""
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
