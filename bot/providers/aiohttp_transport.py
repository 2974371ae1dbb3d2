"""The seam's implementation (`bot.transport.Transport`) over one aiohttp session.

aiohttp's C parser and large reads are why: per small JSON exchange and per 2 MB result this costs
a fraction of httpx's own transport (docs/benchmarks.md, "Issue 18: hand-written infrastructure,
measured again").

Why the errors are mapped here by hand: aiohttp's `ClientConnectionError` family mixes errors before
a byte was sent with ones after (`ServerDisconnectedError` once the request went out). `HttpProvider.send`
reads `NOTHING_SENT` as "the provider never got it, safe to send again", so only what happens before
the request is written (no free connection, refused, unknown name, TLS handshake, connect timeout)
is one of those; everything later is a read, write or protocol error (`_mapped`).
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import certifi
from multidict import CIMultiDict
from yarl import URL

from bot.transport import (
    USER_AGENT,
    Answer,
    ConnectError,
    ConnectTimeout,
    NotAllowed,
    PoolTimeout,
    ReadError,
    ReadTimeout,
    RemoteProtocolError,
    Request,
    Streamed,
    Timeouts,
    TooLarge,
    Transport,
    TransportError,
    UnsupportedProtocol,
    WriteError,
    is_ip_literal,
    needs_quoting,
)

TIMEOUT = Timeouts()
MAX_CONNECTIONS = 100
KEEPALIVE_SECONDS = 5.0
# aiohttp's read buffer (its default is 64 KiB): a larger one means fewer pauses of the socket while
# a 2 MB result streams in; a body is handed on in what has arrived (iter_any), so in few large pieces.
READ_BUFSIZE = 256 * 1024
# Signed result URLs in a Location header run long; aiohttp's default is 8 KiB a line.
MAX_HEADER_BYTES = 16 * 1024
# What every request says besides its own headers (aiohttp decodes gzip and deflate bodies itself).
_DEFAULT_HEADERS = {
    "Accept": "*/*",
    "Accept-Encoding": "gzip, deflate",
    "Connection": "keep-alive",
}
# aiohttp must not add its own beside ours (nor a Content-Type the caller did not ask for).
_SKIP_AUTO_HEADERS = ("User-Agent", "Accept", "Accept-Encoding", "Content-Type")
# Redirects a stream follows when asked to (httpx's limit, which this replaced).
MAX_REDIRECTS = 20
# Whether a host may be reached at an address: (host as in the URL, its port, an address it resolved to).
AddressCheck = Callable[[str, int, str], bool]


def provider_client(
    *,
    timeout: Timeouts | float = TIMEOUT,
    max_connections: int = MAX_CONNECTIONS,
    user_agent: str = USER_AGENT,
    address_check: AddressCheck | None = None,
) -> AiohttpTransport:
    """The pooled transport providers (their API, the sandbox's callbacks) are reached with; with an
    `address_check`, the one their result files are downloaded with. Not the client for URLs people
    type (bot.jobs.media.typed_client)."""
    if not isinstance(timeout, Timeouts):
        timeout = Timeouts(connect=timeout, read=timeout, pool=timeout)
    return AiohttpTransport(
        timeout=timeout, max_connections=max_connections, user_agent=user_agent, address_check=address_check
    )


def trust_store() -> ssl.SSLContext:
    """The certificates httpx trusted (so the providers' client trusts what it did): SSL_CERT_FILE or
    SSL_CERT_DIR when set, else certifi's."""
    if os.environ.get("SSL_CERT_FILE"):
        return ssl.create_default_context(cafile=os.environ["SSL_CERT_FILE"])
    if os.environ.get("SSL_CERT_DIR"):
        return ssl.create_default_context(capath=os.environ["SSL_CERT_DIR"])
    return ssl.create_default_context(cafile=certifi.where())


class AiohttpTransport(Transport):
    """The seam over one `aiohttp.ClientSession`, made on the first request (inside the running loop)
    and closed by `aclose`.

    `timeout.connect` -> aiohttp's connect, `read` -> sock_read (each read of headers or body), `pool`
    -> the wait for one of `max_connections` (our own semaphore: aiohttp cannot tell that wait from
    connecting). aiohttp has no write timeout; a stalled upload ends with the read timeout of the
    answer it waits for. Proxies from the environment (HTTPS_PROXY) are not used.

    `address_check`: every host this transport connects to, redirects included, must pass it, or the
    request fails with `NotAllowed` before a byte is sent. A name is checked on the addresses it
    resolved to, the very ones aiohttp then connects to (so a name that resolves elsewhere the next
    time gets nowhere); an address written in the URL (which aiohttp does not resolve) is checked at
    each hop by `_checked_hop`."""

    def __init__(
        self,
        *,
        timeout: Timeouts = TIMEOUT,
        max_connections: int = MAX_CONNECTIONS,
        user_agent: str = USER_AGENT,
        address_check: AddressCheck | None = None,
    ) -> None:
        self._check = address_check
        self._limit = max_connections
        self._slots = asyncio.Semaphore(max_connections) if max_connections else None
        self._pool_timeout = timeout.pool
        self._timeout = aiohttp.ClientTimeout(total=None, connect=timeout.connect, sock_read=timeout.read)
        self._headers = {"User-Agent": user_agent, **_DEFAULT_HEADERS}
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=self._limit,
            keepalive_timeout=KEEPALIVE_SECONDS,
            ssl=trust_store(),
            resolver=_CheckedResolver(self._check) if self._check is not None else None,
        )
        middlewares: tuple[Any, ...] = (_sent_once,)
        if self._check is not None:
            middlewares = (_checked_hop(self._check), _sent_once)
        session = aiohttp.ClientSession(
            connector=connector,
            headers=self._headers,
            cookie_jar=aiohttp.DummyCookieJar(),  # providers keep no cookies with us
            skip_auto_headers=_SKIP_AUTO_HEADERS,
            read_bufsize=READ_BUFSIZE,
            max_line_size=MAX_HEADER_BYTES,
            max_field_size=MAX_HEADER_BYTES,
            timeout=self._timeout,
            trust_env=False,  # no netrc, no proxy lookup per request
            middlewares=middlewares,
        )
        self._session = session
        return session

    async def do_request(
        self, method: str, url: str, *, headers: Mapping[str, str] | None = None, body: bytes | None = None
    ) -> Answer:
        request = Request(method, url, CIMultiDict(headers or {}), body)
        session = self._session or self._open()
        await self._acquire(request)
        try:
            async with _mapping(request):
                response = await self._send(session, request, follow_redirects=False)
                try:
                    data = await response.read()
                finally:
                    response.release()
        finally:
            self._release()
        return Answer(response.status, response.headers, data, url)

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
        session = self._session or self._open()
        await self._acquire(request)
        try:
            async with _mapping(request):
                response = await self._send(session, request, follow_redirects=follow_redirects)
            try:
                yield _Streamed(response, request, max_bytes)
            finally:
                # Read to its end, the connection goes back to the pool; otherwise it is closed.
                response.release()
        finally:
            self._release()

    async def _acquire(self, request: Request) -> None:
        slots = self._slots
        if slots is None:
            return
        if not slots.locked():
            await slots.acquire()  # free: returns at once
            return
        try:
            async with asyncio.timeout(self._pool_timeout):
                await slots.acquire()
        except TimeoutError:
            raise PoolTimeout("no free connection in time", request=request) from None

    def _release(self) -> None:
        if self._slots is not None:
            self._slots.release()

    async def _send(
        self, session: aiohttp.ClientSession, request: Request, *, follow_redirects: bool
    ) -> aiohttp.ClientResponse:
        url = request.url
        return await session.request(
            request.method,
            URL(url) if needs_quoting(url) else URL(url, encoded=True),
            headers=request.headers,
            data=request.body,
            allow_redirects=follow_redirects,
            max_redirects=MAX_REDIRECTS,
        )

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()


class _Streamed(Streamed):
    def __init__(self, response: aiohttp.ClientResponse, request: Request, max_bytes: int) -> None:
        self.status = response.status
        self.headers = response.headers
        self.url = str(response.url)
        self.redirects = tuple(r.status for r in response.history)
        self._response = response
        self._request = request
        self._max = max_bytes

    async def chunks(self) -> AsyncGenerator[bytes, None]:
        declared = self._response.content_length
        if declared is not None and declared > self._max:
            raise TooLarge("declared larger than the cap", request=self._request, size=declared)
        seen = 0
        async with _mapping(self._request):
            async for chunk in self._response.content.iter_any():
                seen += len(chunk)
                if seen > self._max:
                    raise TooLarge("larger than the cap", request=self._request)
                yield chunk


class _CheckedResolver(aiohttp.ThreadedResolver):
    """The system's resolver, refusing a name any of whose addresses fails the check. `NotAllowed` is
    no OSError, so aiohttp lets it through as it is (not as a connect error of its own)."""

    def __init__(self, check: AddressCheck) -> None:
        super().__init__()
        self._check = check

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[aiohttp.abc.ResolveResult]:
        found = await super().resolve(host, port, family)
        if not found or not all(self._check(host, port, str(info["host"])) for info in found):
            raise NotAllowed(f"{host} resolves to an address that may not be reached")
        return found


def _checked_hop(check: AddressCheck) -> Any:
    """A middleware (run for the first request and for each redirect) refusing an address in the URL."""

    async def checked(
        request: aiohttp.ClientRequest,
        handler: Callable[[aiohttp.ClientRequest], Awaitable[aiohttp.ClientResponse]],
    ) -> aiohttp.ClientResponse:
        host = (request.url.host or "").strip("[]")
        if is_ip_literal(host) and not check(host, request.url.port or 0, host):
            raise NotAllowed(f"{host} may not be reached")
        return await handler(request)

    return checked


@asynccontextmanager
async def _mapping(request: Request) -> AsyncIterator[None]:
    """aiohttp's errors inside the block as the seam's."""
    try:
        yield
    except _Broken as exc:
        raise _mapped(exc.broken, request) from exc.broken
    except (aiohttp.ClientError, OSError) as exc:
        raise _mapped(exc, request) from exc


class _Broken(aiohttp.ClientError):
    """A connection that broke during an exchange, carried past aiohttp's own resend."""

    def __init__(self, broken: aiohttp.ClientOSError | aiohttp.ServerDisconnectedError) -> None:
        super().__init__(str(broken))
        self.broken = broken


async def _sent_once(
    request: aiohttp.ClientRequest,
    handler: Callable[[aiohttp.ClientRequest], Awaitable[aiohttp.ClientResponse]],
) -> aiohttp.ClientResponse:
    """aiohttp sends an idempotent-method request again when a kept-alive connection breaks under it
    (on ClientOSError or ServerDisconnectedError from this handler); a connect error on the second try
    would then hide that the first was sent. Raised as another error, the break goes past that resend
    to `_mapping`, which maps the original."""
    try:
        return await handler(request)
    except aiohttp.ClientConnectorError:  # a ClientOSError too, but never resent: nothing was sent
        raise
    except (aiohttp.ClientOSError, aiohttp.ServerDisconnectedError) as exc:
        raise _Broken(exc) from exc


def _mapped(exc: BaseException, request: Request) -> TransportError:
    """The seam's error for an aiohttp one. ConnectError/ConnectTimeout (like PoolTimeout, raised by
    the transport itself) only for what fails before the request is written: providers send those
    again even when the request makes and bills a job. Anything else may have reached the provider."""
    message = str(exc) or type(exc).__name__
    kind: type[TransportError]
    if isinstance(exc, aiohttp.ConnectionTimeoutError):  # connecting (DNS, TCP, TLS) took too long
        kind = ConnectTimeout
    elif isinstance(exc, aiohttp.ClientConnectorError):  # refused, unknown name, TLS handshake or certificate
        kind = ConnectError
    elif isinstance(exc, aiohttp.InvalidURL | aiohttp.NonHttpUrlClientError):
        kind = UnsupportedProtocol
    elif isinstance(exc, TimeoutError):  # SocketTimeoutError: no answer, or a pause in the body
        kind = ReadTimeout
    elif isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError):
        kind = RemoteProtocolError  # closed before the whole answer, or a malformed body
    elif isinstance(
        exc, aiohttp.ClientResponseError
    ):  # an answer aiohttp could not parse, too many redirects
        kind = RemoteProtocolError
    elif isinstance(exc, aiohttp.ClientConnectionResetError):
        kind = WriteError  # the connection closed while the request was being written
    else:  # ClientOSError (reset while waiting or reading), "Connection closed", any other
        kind = ReadError
    return kind(message, request=request)
