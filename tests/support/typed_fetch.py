"""Shared by several test modules."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
from aiohttp import web

from bot.jobs.media import TYPED_LIMITS
from bot.model.requests import ChatRequest, ImageRef, parse_command

PRETEND_PUBLIC = "93.184.216.34"


class TrickleServer:
    """A loopback host whose images never finish: it counts the downloads it holds open."""

    def __init__(self) -> None:
        self.open = 0
        self.cut = 0
        self.changed = asyncio.Condition()
        self.app = web.Application()
        self.app.router.add_get("/{name}", self._slow)

    async def _slow(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "image/png"})
        await response.prepare(request)
        await self._count(open=1)
        try:
            while True:
                await response.write(b"\x89")
                await asyncio.sleep(0.02)
        except (ConnectionError, asyncio.CancelledError):
            await self._count(open=-1, cut=1)
            raise

    async def _count(self, *, open: int = 0, cut: int = 0) -> None:
        async with self.changed:
            self.open += open
            self.cut += cut
            self.changed.notify_all()

    async def wait_until(self, condition: Callable[[], bool]) -> None:
        async with self.changed:
            await asyncio.wait_for(self.changed.wait_for(condition), 30)


class ToLoopback(httpx.AsyncBaseTransport):
    """Tests never leave the machine: requests the bot pinned to the pretend public address are carried
    to the loopback server instead, through the typed-URL pool the bot uses (TYPED_LIMITS)."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport(limits=TYPED_LIMITS)
        self.requests: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        assert request.url.host == PRETEND_PUBLIC
        self.requests.append(request)
        request.url = request.url.copy_with(host="127.0.0.1")
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def public(host: str, port: int) -> list[str]:
    return [PRETEND_PUBLIC]


def chat(text: str, user: str = "u1", workspace: str = "w1") -> ChatRequest:
    """As a surface builds it: URLs written in the text are typed references."""
    parsed = parse_command(text)
    return ChatRequest(
        surface="test", user_id=user, workspace_id=workspace, origin={}, request=parsed.request,
        references=[ImageRef(url=u, typed=True) for u in parsed.urls],
    )  # fmt: skip
