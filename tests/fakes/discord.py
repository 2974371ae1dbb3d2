"""A loopback Discord: gateway websocket, REST and CDN on 127.0.0.1 (port 0), for the real discord.py.

It follows the documented payloads closely enough for discord.py to parse them: HELLO / IDENTIFY /
READY / GUILD_CREATE on the gateway, sharded as Discord shards (IDENTIFY's `shard: [id, count]`; a
guild's events go to the connection of shard (guild_id >> 22) % count only, direct messages to
shard 0; each connection's READY lists its own guilds); REST answers with exactly `application/json`; interaction
callbacks honour `with_response`; followups honour `wait`; channel messages honour
`enforce_nonce` for NONCE_WINDOW seconds of `clock`, as Discord keeps a nonce for a few minutes.
Every REST call is recorded, and tests wait on conditions over the record.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

from aiohttp import BodyPartReader, web

from tests.fakes.discord_payloads import TIMESTAMP, Payloads
from tests.fakes.loopback import serve

API = "/api/v10"
LOADING, EPHEMERAL = 128, 64
# How long `enforce_nonce` finds an earlier message with the same nonce ("a few minutes", per Discord).
NONCE_WINDOW = 5 * 60.0
JSON = "application/json"


@dataclass
class Call:
    method: str
    path: str
    query: dict[str, str]
    body: Any
    files: list[tuple[str, bytes, str]] = field(default_factory=list)
    at: float = field(default_factory=time.monotonic)


class DiscordError(Exception):
    """An error answer in Discord's JSON shape: {"code": ..., "message": ...}."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.body = json.dumps({"code": code, "message": message}).encode()


# What a label (type 18) may hold in a modal, per Discord's component reference: a text input, the
# selects, a file upload, a radio group, a checkbox group or a checkbox.
LABELLED = {3, 4, 5, 6, 7, 8, 19, 21, 22, 23}


def _invalid(why: str) -> DiscordError:
    return DiscordError(400, 50035, f"Invalid Form Body: {why}")


def check_modal(data: dict[str, Any]) -> None:
    """A MODAL callback's data as Discord checks it: a custom id and a title within their limits, one
    to five top-level components (labels, text displays, or rows of one text input), each label with
    one component it may hold, each text input's value within 4000 characters."""
    if not 1 <= len(str(data.get("custom_id", ""))) <= 100 or not 1 <= len(str(data.get("title", ""))) <= 45:
        raise _invalid("custom_id or title")
    components = data.get("components") or []
    if not 1 <= len(components) <= 5:
        raise _invalid("components: 1 to 5")
    for top in components:
        if top.get("type") == 18:
            if not 1 <= len(str(top.get("label", ""))) <= 45 or len(str(top.get("description") or "")) > 100:
                raise _invalid("label or description")
            inner = [top.get("component") or {}]
            if inner[0].get("type") not in LABELLED or (inner[0].get("type") == 4 and "label" in inner[0]):
                raise _invalid("a label's component")
        elif top.get("type") == 1:
            inner = top.get("components") or []
            if len(inner) != 1 or inner[0].get("type") != 4:
                raise _invalid("an action row in a modal holds one text input")
        elif top.get("type") == 10:
            inner = []
        else:
            raise _invalid(f"component type {top.get('type')} in a modal")
        for c in inner:
            if c.get("type") == 4 and len(str(c.get("value") or "")) > 4000:
                raise _invalid("a text input's value is at most 4000 characters")
            if c.get("type") == 23 and not isinstance(c.get("default", False), bool):
                raise _invalid("a checkbox's default")


class FakeDiscord(Payloads):
    """Start with `async with FakeDiscord() as fake:`; point DISCORD_API_BASE_URL at `fake.api_url`."""

    def __init__(self, *, token: str = "MTE4.fake-bot.token", upload_limit: int = 10 * 1024 * 1024) -> None:
        super().__init__()
        self.token = token
        self.upload_limit = upload_limit
        self.calls: list[Call] = []
        self.messages: dict[str, dict[str, Any]] = {}
        self.threads: dict[str, dict[str, Any]] = {}
        self.cdn: dict[str, tuple[bytes, str]] = {}
        self.commands: dict[str, list[dict[str, Any]]] = {}
        self.acks: dict[str, tuple[int, float]] = {}  # interaction id -> (callback type, when)
        self.originals: dict[str, str] = {}  # interaction token -> original response message id
        self.dms: dict[str, str] = {}  # user id -> the bot's DM channel with them
        self.expired_tokens: set[str] = set()
        # Channels the bot may no longer see (its access removed): every call there answers 403.
        self.closed_channels: set[str] = set()
        # People who are members of none of the fake's servers (Get Guild Member: Unknown Member).
        self.outsiders: set[str] = set()
        self.identified = asyncio.Event()
        self.identifies: list[tuple[int, int]] = []  # each IDENTIFY's shard [id, count]
        self.routed: list[tuple[str, str, int]] = []  # each event sent: (event, guild id, shard id)
        # Cleared by a test to hold every CDN download (a slow or stuck file host).
        self.cdn_gate = asyncio.Event()
        self.cdn_gate.set()
        self.cdn_hits: list[str] = []
        # False: IDENTIFY with the message-content intent is refused with 4014, as for an app without it.
        self.allow_message_content = True
        self._events: list[tuple[str, dict[str, Any]]] = []
        self._changed = asyncio.Condition()
        # Each open gateway connection and its shard [id, count] ([0, 1] when it did not ask for one).
        self._sockets: dict[web.WebSocketResponse, tuple[int, int]] = {}
        self._open: list[web.WebSocketResponse] = []
        # What GET /gateway/bot recommends; None: one shard per 1,000 guilds, as Discord roughly does.
        self.recommended_shards: int | None = None
        self._seq = itertools.count(1)
        # channel and nonce -> (message id, when): Discord keeps nonces for a few minutes only.
        self._nonces: dict[tuple[str, str], tuple[str, float]] = {}
        self.clock: Callable[[], float] = time.monotonic
        self._stack = AsyncExitStack()
        self.base_url = ""

    # ---- lifecycle -------------------------------------------------------------------------
    async def __aenter__(self) -> FakeDiscord:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get("/gateway", self._gateway)
        app.router.add_get("/cdn/{path:.*}", self._cdn)
        app.router.add_route("*", API + "/{path:.*}", self._rest)
        self.base_url = await self._stack.enter_async_context(serve(app))
        return self

    async def __aexit__(self, *exc: object) -> None:
        for ws in list(self._open):
            await ws.close()
        await self._stack.aclose()

    @property
    def api_url(self) -> str:
        return self.base_url + API

    @property
    def gateway_url(self) -> str:
        return self.base_url.replace("http://", "ws://") + "/gateway"

    # ---- waiting ---------------------------------------------------------------------------
    async def _touch(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def wait_for(self, predicate: Callable[[], Any], within: float = 30.0) -> Any:
        """Wait until predicate() is truthy (re-checked after every REST call); return its value."""

        async def waiter() -> Any:
            async with self._changed:
                while not (value := predicate()):
                    await self._changed.wait()
                return value

        return await asyncio.wait_for(waiter(), within)

    def find(self, method: str, fragment: str) -> list[Call]:
        return [c for c in self.calls if c.method == method and fragment in c.path]

    # ---- gateway ---------------------------------------------------------------------------
    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._open.append(ws)
        await ws.send_json({"op": 10, "d": {"heartbeat_interval": 41250}, "s": None, "t": None})
        try:
            async for msg in ws:
                data = json.loads(msg.data)
                if data["op"] == 1:
                    await ws.send_json({"op": 11, "d": None, "s": None, "t": None})
                elif data["op"] == 2 and not await self._identify(ws, data["d"]):
                    break
        finally:
            self._open.remove(ws)
            self._sockets.pop(ws, None)
        return ws

    async def _identify(self, ws: web.WebSocketResponse, identify: dict[str, Any]) -> bool:
        """Answer an IDENTIFY: READY and a GUILD_CREATE per guild of its shard; False if refused."""
        if identify["token"] != self.token:
            await ws.close(code=4004, message=b"Authentication failed.")
            return False
        self.intents = int(identify["intents"])
        if self.intents & (1 << 15) and not self.allow_message_content:
            await ws.close(code=4014, message=b"Disallowed intent(s).")
            return False
        shard = identify.get("shard")
        shard_id, count = (int(shard[0]), int(shard[1])) if shard else (0, 1)
        if not 0 <= shard_id < count:
            await ws.close(code=4010, message=b"Invalid shard.")
            return False
        self._sockets[ws] = (shard_id, count)
        self.identifies.append((shard_id, count))
        guilds = [g for g in self.all_guilds() if self.shard_of(g, count) == shard_id]
        await self._send(
            ws, "READY", self.ready_payload(self.gateway_url, guilds, [shard_id, count] if shard else None)
        )
        for guild_id in guilds:
            await self._send(ws, "GUILD_CREATE", self.guild_payload(guild_id))
        self.identified.set()
        return True

    @staticmethod
    def shard_of(guild_id: str | None, count: int) -> int:
        """The shard Discord sends a guild's events to (direct messages: shard 0)."""
        return (int(guild_id) >> 22) % count if guild_id else 0

    async def _send(self, ws: web.WebSocketResponse, event: str, data: dict[str, Any]) -> None:
        await ws.send_json({"op": 0, "t": event, "s": next(self._seq), "d": data})

    async def dispatch(self, event: str, data: dict[str, Any]) -> None:
        """Send an event to the connection of the shard that owns its guild."""
        await asyncio.wait_for(self.identified.wait(), 30)
        guild_id = data.get("guild_id")
        for ws, (shard_id, count) in list(self._sockets.items()):
            if self.shard_of(guild_id, count) == shard_id:
                self.routed.append((event, str(guild_id), shard_id))
                await self._send(ws, event, data)

    async def interact(self, payload: dict[str, Any]) -> dict[str, Any]:
        await self.dispatch("INTERACTION_CREATE", payload)
        return payload

    async def post_user_message(self, payload: dict[str, Any]) -> dict[str, Any]:
        self.messages[payload["id"]] = payload
        await self.dispatch("MESSAGE_CREATE", payload)
        return payload

    # ---- CDN -------------------------------------------------------------------------------
    def host_file(self, channel_id: str, filename: str, data: bytes, content_type: str) -> dict[str, Any]:
        """Put a file on the fake CDN and return its attachment payload."""
        att_id = self.snowflake()
        path = f"attachments/{channel_id}/{att_id}/{filename}"
        self.cdn[path] = (data, content_type)
        url = f"{self.base_url}/cdn/{path}?ex=1&is=2&hm=3"
        return {"id": att_id, "filename": filename, "size": len(data), "url": url, "proxy_url": url,
                "content_type": content_type}  # fmt: skip

    async def _cdn(self, request: web.Request) -> web.Response:
        self.cdn_hits.append(request.match_info["path"])
        await self._touch()
        await self.cdn_gate.wait()
        hit = self.cdn.get(request.match_info["path"])
        if hit is None:
            return web.Response(status=404, text="Not Found")
        return web.Response(body=hit[0], content_type=hit[1])

    # ---- REST ------------------------------------------------------------------------------
    async def _rest(self, request: web.Request) -> web.StreamResponse:
        call = await self._record(request)
        parts = call.path.strip("/").split("/")
        try:
            result = await self._route(request, call, parts)
            # Gateway events a REST call causes (THREAD_CREATE) reach the bot before the answer does.
            while self._events:
                await self.dispatch(*self._events.pop(0))
        except DiscordError as err:
            return web.Response(status=err.status, body=err.body, headers={"Content-Type": JSON})
        finally:
            await self._touch()
        if result is None:
            return web.Response(status=204)
        # Exactly `application/json`: discord.py parses the body only when the header says so, to the letter.
        return web.Response(body=json.dumps(result).encode(), headers={"Content-Type": JSON})

    async def _record(self, request: web.Request) -> Call:
        body: Any = None
        files: list[tuple[str, bytes, str]] = []
        if request.content_type == "multipart/form-data":
            reader = await request.multipart()
            async for part in reader:
                if not isinstance(part, BodyPartReader):
                    continue
                raw = await part.read()
                if part.name == "payload_json":
                    body = json.loads(raw)
                else:
                    ctype = part.headers.get("Content-Type", "application/octet-stream")
                    files.append((part.filename or "file", bytes(raw), ctype))
        elif request.can_read_body:
            body = await request.json()
        call = Call(request.method, request.path[len(API) :], dict(request.query), body, files)
        self.calls.append(call)
        return call

    def _check_auth(self, request: web.Request) -> None:
        if request.headers.get("Authorization") != f"Bot {self.token}":
            raise DiscordError(401, 0, "401: Unauthorized")

    async def _route(self, request: web.Request, call: Call, p: list[str]) -> Any:
        m = call.method
        if p[0] == "interactions":
            return self._callback(p[1], p[2], call)
        if p[0] == "webhooks":
            return self._webhook(m, p[2], p[3:], call)
        self._check_auth(request)
        if p == ["users", "@me", "channels"] and m == "POST":
            return self._dm_channel(str((call.body or {})["recipient_id"]))
        if p == ["users", "@me"]:
            return self.bot_user()
        if p == ["oauth2", "applications", "@me"]:
            return self.application()
        if p[0] == "gateway":
            shards = self.recommended_shards or max(1, -(-len(self.all_guilds()) // 1000))
            return {"url": self.gateway_url, "shards": shards,
                    "session_start_limit": {"total": 1000, "remaining": 999, "reset_after": 0, "max_concurrency": 1}}  # fmt: skip
        if p[0] == "applications" and p[-1] == "commands" and m == "PUT":
            scope = p[3] if len(p) == 5 else "global"
            self.commands[scope] = [{"description": "", **c, "id": self.snowflake(), "application_id": self.app_id,
                                     "version": "1", "default_member_permissions": c.get("default_member_permissions")}
                                    for c in call.body or []]  # fmt: skip
            return self.commands[scope]
        if p[0] == "channels":
            return self._channel(m, p[1], p[2:], call)
        if p[0] == "guilds" and len(p) == 4 and p[2] == "members" and m == "GET":
            return self._member(p[1], p[3])
        raise DiscordError(404, 0, "404: Not Found")

    def _member(self, guild_id: str, user_id: str) -> dict[str, Any]:
        """Get Guild Member: a person of the server (everyone but `outsiders`), else Unknown Member."""
        if guild_id not in self.all_guilds() or user_id in self.outsiders:
            raise DiscordError(404, 10007, "Unknown Member")
        return {"user": self.user(user_id, f"user{user_id[-2:]}"), "roles": [], "joined_at": TIMESTAMP,
                "deaf": False, "mute": False, "flags": 0}  # fmt: skip

    def _dm_channel(self, user_id: str) -> dict[str, Any]:
        """Create DM (POST /users/@me/channels, {recipient_id}): the bot's DM channel with a person,
        made on first use, the same one after."""
        channel_id = self.dms.setdefault(user_id, self.snowflake())
        return {"id": channel_id, "type": 1, "last_message_id": None, "flags": 0,
                "recipients": [self.user(user_id, f"user{user_id[-2:]}")]}  # fmt: skip

    def _callback(self, interaction_id: str, token: str, call: Call) -> Any:
        if interaction_id in self.acks:
            raise DiscordError(400, 40060, "Interaction has already been acknowledged.")
        kind = int((call.body or {})["type"])
        self.acks[interaction_id] = (kind, time.monotonic())
        data = (call.body or {}).get("data") or {}
        source = self.interactions.get(interaction_id, {})
        resource: dict[str, Any] = {"type": kind}
        if kind == 9:
            check_modal(data)
        if kind in (4, 5):
            flags = int(data.get("flags") or 0) | (LOADING if kind == 5 else 0)
            msg = self.store_message(source.get("channel_id", self.channel_id), data, call.files, flags=flags,
                                     interaction_id=interaction_id)  # fmt: skip
            self.originals[token] = msg["id"]
            resource["message"] = msg
        elif kind == 7 and "message" in source:
            msg = self.messages[source["message"]["id"]]
            self._apply_edit(msg, data, call.files)
            resource["message"] = msg
        answer: dict[str, Any] = {"interaction": {"id": interaction_id, "type": source.get("type", 2)}}
        if "message" in resource:
            answer["interaction"]["response_message_id"] = resource["message"]["id"]
            answer["interaction"]["response_message_loading"] = kind == 5
            answer["interaction"]["response_message_ephemeral"] = bool(
                int(resource["message"].get("flags", 0)) & EPHEMERAL
            )
        if call.query.get("with_response") in ("1", "true", "True"):
            answer["resource"] = resource
            return answer
        return None

    def _webhook(self, method: str, token: str, rest: list[str], call: Call) -> Any:
        if token in self.expired_tokens:
            raise DiscordError(401, 50027, "Invalid Webhook Token")
        if not rest:  # a followup
            source = self.interaction_for_token(token)
            flags = int((call.body or {}).get("flags") or 0)
            msg = self.store_message(source.get("channel_id", self.channel_id), call.body or {}, call.files,
                                     flags=flags)  # fmt: skip
            return msg if call.query.get("wait") in ("1", "true", "True") else None
        msg_id = self.originals.get(token) if rest[1] == "@original" else rest[1]
        if msg_id is None or msg_id not in self.messages:
            raise DiscordError(404, 10008, "Unknown Message")
        msg = self.messages[msg_id]
        if method == "DELETE":
            msg["deleted"] = True
            return None
        if method == "PATCH":
            self._apply_edit(msg, call.body or {}, call.files)
            msg["flags"] = int(msg.get("flags", 0)) & ~LOADING
        return msg

    def _channel(self, method: str, channel_id: str, rest: list[str], call: Call) -> Any:
        if channel_id in self.closed_channels:
            raise DiscordError(403, 50001, "Missing Access")
        if not rest and method == "GET":  # Get Channel: a thread with its parent, else a text channel
            return self._channel_of(channel_id)
        if rest == ["messages"] and method == "POST":
            body = call.body or {}
            nonce_key = (channel_id, str(body.get("nonce")))
            seen = self._nonces.get(nonce_key)
            if body.get("enforce_nonce") and seen and self.clock() - seen[1] < NONCE_WINDOW:
                return self.messages[seen[0]]
            msg = self.store_message(channel_id, body, call.files)
            if body.get("nonce") is not None:
                self._nonces[nonce_key] = (msg["id"], self.clock())
            return msg
        if len(rest) == 3 and rest[2] == "threads" and method == "POST":
            return self._start_thread(channel_id, rest[1], call.body or {})
        if len(rest) == 2 and rest[0] == "messages":
            found = self.messages.get(rest[1])
            if found is None or found.get("deleted"):
                raise DiscordError(404, 10008, "Unknown Message")
            if method == "DELETE":
                found["deleted"] = True
                return None
            if method == "PATCH":
                self._apply_edit(found, call.body or {}, call.files)
            return found
        if rest == ["typing"]:
            return None
        raise DiscordError(404, 0, "404: Not Found")

    def _start_thread(self, channel_id: str, message_id: str, body: dict[str, Any]) -> dict[str, Any]:
        if message_id in self.threads:
            raise DiscordError(400, 160004, "A thread has already been created for this message")
        thread = self.thread_payload(message_id, channel_id, str(body.get("name", "thread")))
        self.threads[message_id] = thread
        self._events.append(("THREAD_CREATE", {**thread, "newly_created": True}))
        return thread

    # ---- messages --------------------------------------------------------------------------
    def _check_size(self, files: list[tuple[str, bytes, str]]) -> None:
        if any(len(f[1]) > self.upload_limit for f in files):
            raise DiscordError(413, 40005, "Request entity too large")

    def _attachments(self, channel_id: str, body: dict[str, Any], files: list[tuple[str, bytes, str]]) -> Any:
        self._check_size(files)
        if "attachments" not in body:
            return [self.host_file(channel_id, name, data, ctype) for name, data, ctype in files]
        out = []
        for i, spec in enumerate(body["attachments"]):
            if i < len(files) and str(spec.get("id")) == str(i):
                name, data, ctype = files[i]
                out.append(self.host_file(channel_id, spec.get("filename") or name, data, ctype))
        return out

    def store_message(
        self,
        channel_id: str,
        body: dict[str, Any],
        files: list[tuple[str, bytes, str]],
        *,
        flags: int = 0,
        interaction_id: str | None = None,
    ) -> dict[str, Any]:
        msg = self.message_payload(channel_id, author=self.bot_user(), content=body.get("content") or "")
        msg.update(
            flags=flags | int(body.get("flags") or 0), components=copy.deepcopy(body.get("components") or [])
        )
        msg["attachments"] = self._attachments(channel_id, body, files)
        if body.get("message_reference"):
            ref = body["message_reference"]
            # Snowflakes go out as strings, whatever type the client sent.
            msg["message_reference"] = {k: str(v) if k.endswith("_id") else v for k, v in ref.items()}
            msg["type"] = 19
        if body.get("nonce") is not None:
            msg["nonce"] = body["nonce"]
        if interaction_id is not None:
            msg["type"] = 20
        self.messages[msg["id"]] = msg
        return msg

    def _apply_edit(
        self, msg: dict[str, Any], body: dict[str, Any], files: list[tuple[str, bytes, str]]
    ) -> None:
        if "content" in body:
            msg["content"] = body["content"] or ""
        if "components" in body:
            msg["components"] = copy.deepcopy(body["components"] or [])
        if "attachments" in body or files:
            keep = {str(a.get("id")) for a in body.get("attachments", [])}
            old = [a for a in msg["attachments"] if a["id"] in keep]
            msg["attachments"] = old + self._attachments(msg["channel_id"], body, files)
        msg["edited_timestamp"] = "2024-06-01T12:00:01.000000+00:00"

    def visible(self, channel_id: str | None = None) -> list[dict[str, Any]]:
        """Messages a person would see now (not deleted, not ephemeral, not still loading)."""
        return [
            m for m in self.messages.values()
            if not m.get("deleted") and not int(m.get("flags", 0)) & (EPHEMERAL | LOADING)
            and (channel_id is None or m["channel_id"] == channel_id)
        ]  # fmt: skip

    def ephemeral_texts(self) -> list[str]:
        """What people were told privately (a loading "thinking" answer says nothing yet)."""
        return [
            str(m.get("content")) for m in self.messages.values()
            if int(m.get("flags", 0)) & EPHEMERAL and not int(m.get("flags", 0)) & LOADING and not m.get("deleted")
        ]  # fmt: skip
