"""The providers' HTTP seam: one small transport of our own (its errors, its answers).

Every provider request, result download, JWKS read and sandbox callback goes through `Transport`:
`do_request` (one exchange, the whole answer: status, headers, body) and `stream` (a GET whose body
arrives in pieces under a size cap: result images). What an answer means (busy, refused, out of credit)
is decided once, in `bot.providers.responses` and `bot.providers.base`; the transport only moves bytes
and says how an exchange failed. The shape is python-telegram-bot's `BaseRequest.do_request`. It
replaced httpx's client over an aiohttp transport, which cost about twice the CPU per exchange
(docs/benchmarks.md, "Issue 18: hand-written infrastructure, measured again"). The implementation
is `bot.providers.aiohttp_transport`; `MockTransport` (bot.providers.mock_transport) answers from a
function, for tests.

The failures (`TransportError` and its kinds) say only one thing that matters to a caller: whether the
request can have reached the server. `NOTHING_SENT` (no free connection in time, refused, unknown
name, TLS handshake, connect timeout) are safe to send again even when the request makes and bills a
job; everything else may have been acted on (`HttpProvider.send`).
"""

from __future__ import annotations

import ipaddress
import json
import re
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any

from multidict import CIMultiDict, CIMultiDictProxy

USER_AGENT = "hidream-bot/0.1"


@dataclass(frozen=True)
class Timeouts:
    """Seconds: `connect` to open a connection (DNS, TCP, TLS), `read` for each read of an answer
    (headers or a piece of the body), `pool` to wait for a free connection. None: no limit."""

    connect: float | None = 10.0
    read: float | None = 30.0
    pool: float | None = 30.0


TIMEOUT = Timeouts()
Headers = CIMultiDict[str] | CIMultiDictProxy[str]


@dataclass(frozen=True)
class Request:
    """One request as the transport was given it (what an error and `MockTransport` report)."""

    method: str
    url: str
    headers: CIMultiDict[str] = field(default_factory=CIMultiDict)
    body: bytes | None = None


@dataclass(frozen=True)
class Answer:
    """A whole answer: any status (mapping statuses is the caller's part), headers, body."""

    status: int
    headers: Headers
    body: bytes
    # Where it came from, after any redirects followed.
    url: str = ""

    def json(self) -> Any:
        """The body as JSON; ValueError when it is not."""
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


class Streamed(ABC):
    """An answer whose body is still to come: status and headers now, then the body in pieces."""

    status: int
    headers: Headers
    url: str
    # The statuses of the redirects followed to get here, in order.
    redirects: tuple[int, ...]

    @abstractmethod
    def chunks(self) -> AsyncGenerator[bytes, None]:
        """The body in pieces as they arrive; `TooLarge` once they add up past the stream's cap."""

    async def read(self) -> bytes:
        """The whole body (within the cap)."""
        return b"".join([chunk async for chunk in self.chunks()])  # one copy, at the end


class Transport(ABC):
    """The seam: one exchange, and one capped download. An async context manager; `aclose` ends it."""

    @abstractmethod
    async def do_request(
        self, method: str, url: str, *, headers: Mapping[str, str] | None = None, body: bytes | None = None
    ) -> Answer:
        """Send one request and read its whole answer, whatever its status; redirects are not followed.
        Raises a `TransportError` when no answer came."""

    @abstractmethod
    def stream(
        self,
        url: str,
        *,
        max_bytes: int,
        headers: Mapping[str, str] | None = None,
        follow_redirects: bool = False,
    ) -> AbstractAsyncContextManager[Streamed]:
        """GET `url`; the answer's body is read from the `Streamed` inside the block, at most
        `max_bytes` of it (a declared Content-Length above it is refused before any is read)."""

    async def get(self, url: str, *, headers: Mapping[str, str] | None = None) -> Answer:
        return await self.do_request("GET", url, headers=headers)

    async def aclose(self) -> None:
        return None

    async def __aenter__(self) -> Transport:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


# --- how an exchange failed ----------------------------------------------------------------------


class TransportError(Exception):
    """No (whole) answer came; `request` is the request that failed."""

    def __init__(self, message: str, *, request: Request | None = None) -> None:
        super().__init__(message)
        self.request = request


class ConnectError(TransportError):
    """The connection could not be opened (refused, unknown name, TLS): nothing was sent."""


class NotAllowed(ConnectError):
    """The host's address is one this transport may not connect to (its `address_check` said no)."""


class ConnectTimeout(TransportError):
    """Opening the connection took too long: nothing was sent."""


class PoolTimeout(TransportError):
    """No connection of the pool came free in time: nothing was sent."""


class UnsupportedProtocol(TransportError):
    """Not an http(s) URL."""


class ReadTimeout(TransportError):
    """The answer, or a piece of its body, did not come within the read timeout."""


class ReadError(TransportError):
    """The connection broke while waiting for or reading the answer."""


class WriteError(TransportError):
    """The connection broke while the request was being written."""


class RemoteProtocolError(TransportError):
    """The server closed before the whole answer, or sent one that could not be parsed."""


class TooLarge(TransportError):
    """A streamed body larger than its cap; `size` is the declared length, when there was one."""

    def __init__(self, message: str, *, request: Request | None = None, size: int | None = None) -> None:
        super().__init__(message, request=request)
        self.size = size


# Nothing reached the server, so a non-idempotent request is as safe to send again as any.
NOTHING_SENT = (ConnectError, ConnectTimeout, PoolTimeout)

# A URL needs quoting when it holds anything but printable ASCII (spaces, non-ASCII letters).
_NEEDS_QUOTING = re.compile(r"[^\x21-\x7e]")


def needs_quoting(url: str) -> bool:
    return _NEEDS_QUOTING.search(url) is not None


def is_ip_literal(host: str) -> bool:
    """Whether a URL's host is an address written out (checked as it stands) rather than a name."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
