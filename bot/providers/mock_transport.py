"""The seam answered in memory: `MockTransport(handler)`, as httpx's MockTransport, for tests of
what providers do with answers (status mapping, retries, the resend policy) without a server."""

from __future__ import annotations

import inspect
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from urllib.parse import urljoin

from multidict import CIMultiDict

from bot.transport import Answer, Request, Streamed, TooLarge, Transport

# Answers a request, or raises a `TransportError` as a broken exchange would.
Handler = Callable[[Request], Answer | Awaitable[Answer]]
_REDIRECTS = (301, 302, 303, 307, 308)


def answer(status: int, body: bytes = b"", headers: Mapping[str, str] | None = None) -> Answer:
    """An answer for a handler to return."""
    return Answer(status, CIMultiDict(headers or {}), body)


class MockTransport(Transport):
    def __init__(self, handler: Handler) -> None:
        self.handler = handler

    async def do_request(
        self, method: str, url: str, *, headers: Mapping[str, str] | None = None, body: bytes | None = None
    ) -> Answer:
        return await self._handle(Request(method, url, CIMultiDict(headers or {}), body))

    async def _handle(self, request: Request) -> Answer:
        got = self.handler(request)
        found = await got if inspect.isawaitable(got) else got
        return Answer(found.status, found.headers, found.body, request.url)

    @asynccontextmanager
    async def stream(
        self,
        url: str,
        *,
        max_bytes: int,
        headers: Mapping[str, str] | None = None,
        follow_redirects: bool = False,
    ) -> AsyncIterator[Streamed]:
        request = Request("GET", url, CIMultiDict(headers or {}))
        found = await self._handle(request)
        redirects: list[int] = []
        while follow_redirects and found.status in _REDIRECTS and "location" in found.headers:
            redirects.append(found.status)
            request = Request("GET", urljoin(request.url, found.headers["location"]), request.headers)
            found = await self._handle(request)
        yield _Whole(found, request, max_bytes, tuple(redirects))


class _Whole(Streamed):
    def __init__(self, found: Answer, request: Request, max_bytes: int, redirects: tuple[int, ...]) -> None:
        self.status, self.headers, self.url, self.redirects = (
            found.status,
            found.headers,
            found.url,
            redirects,
        )
        self._body = found.body
        self._request = request
        self._max = max_bytes

    async def chunks(self) -> AsyncGenerator[bytes, None]:
        if len(self._body) > self._max:
            raise TooLarge("larger than the cap", request=self._request)
        yield self._body
