"""The providers' HTTP client: httpx's API over an aiohttp connection pool.

httpx's own transport (httpcore over anyio) was the larger part of the bot's CPU per job;
`AiohttpTransport` keeps httpx's client on top (its API, redirects, Content-Encoding decoding, the
request building every provider does) and hands each exchange to one aiohttp session, whose C parser
and larger reads cost much less (see docs/benchmarks.md, "Issue 18: hand-written infrastructure,
measured again", for the figures and for why this stays until the seam of our own replaces it).

Why not the `httpx-aiohttp` package: it maps every `aiohttp.ClientConnectionError` to
`httpx.ConnectTimeout`, and that class includes `ServerDisconnectedError` raised after the request
was sent. `HttpProvider.send` reads ConnectError/ConnectTimeout/PoolTimeout as "the provider never
got it, safe to send again", so that map could make and bill a job twice. Here only what happens
before a byte is sent (no free connection, refused, unknown name, TLS handshake, connect timeout) is
one of those three; everything later is a read, write or protocol error (`_mapped`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import httpx
from yarl import URL

USER_AGENT = "hidream-bot/0.1"
TIMEOUT = httpx.Timeout(30.0, connect=10.0)
LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)
# aiohttp's read buffer (its default is 64 KiB): a larger one means fewer pauses of the socket while
# a 2 MB result streams in. A body is handed on in what has arrived (iter_any: all that is buffered,
# up to about three times this: aiohttp stops reading past twice it): few, large pieces, since each
# costs httpx a pass through its decoders (docs/benchmarks.md, "What changed", item 2).
READ_BUFSIZE = 256 * 1024
MAX_HEADER_BYTES = 16 * 1024
# httpx writes these itself; aiohttp must not add its own beside them (or add a Content-Type httpx did
# not ask for).
_SKIP_AUTO_HEADERS = ("User-Agent", "Accept", "Accept-Encoding", "Content-Type")


def provider_client(
    *,
    timeout: httpx.Timeout | float = TIMEOUT,
    limits: httpx.Limits = LIMITS,
    user_agent: str = USER_AGENT,
) -> httpx.AsyncClient:
    """The pooled client providers (their API, their results, the sandbox's callbacks) are reached with.

    Not the client for URLs people type (bot.jobs.media.typed_client): that one pins the checked address."""
    return httpx.AsyncClient(
        transport=AiohttpTransport(limits=limits),
        timeout=timeout,
        headers={"User-Agent": user_agent},
    )


class AiohttpTransport(httpx.AsyncBaseTransport):
    """httpx transport over one `aiohttp.ClientSession`, made on the first request (inside the
    running loop) and closed by `aclose`.

    httpx does what it does for any transport: builds the request, follows redirects, decodes the
    body. Timeouts come from each request (`extensions["timeout"]`): connect -> aiohttp's connect,
    read -> sock_read (each read of headers or body), pool -> the wait for one of `max_connections`
    (our own semaphore: aiohttp cannot tell that wait from connecting). aiohttp has no write
    timeout; a stalled upload ends with the read timeout of the answer it waits for. Idle
    connections close after `keepalive_expiry`; aiohttp has no cap on how many stay idle
    (`max_keepalive_connections`), only on all of them (`max_connections`). Proxies from the
    environment (HTTPS_PROXY), which httpx's own transport honoured, are not used."""

    def __init__(self, *, limits: httpx.Limits = LIMITS, verify: bool = True) -> None:
        self._limit = limits.max_connections or 0
        self._slots = asyncio.Semaphore(self._limit) if self._limit else None
        self._keepalive = limits.keepalive_expiry
        # The trust store httpx would use (certifi, or SSL_CERT_FILE / SSL_CERT_DIR).
        self._ssl = httpx.create_ssl_context(verify=verify)
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[tuple[float | None, float | None], aiohttp.ClientTimeout] = {}

    def _open(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=self._limit,
            keepalive_timeout=self._keepalive if self._keepalive is not None else 15.0,
            ssl=self._ssl,
        )
        session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),  # httpx keeps the cookies; none twice
            skip_auto_headers=_SKIP_AUTO_HEADERS,
            auto_decompress=False,  # httpx decodes Content-Encoding
            read_bufsize=READ_BUFSIZE,
            # httpx (h11) takes a header block of up to 16 KiB; aiohttp's default is 8 KiB a line.
            max_line_size=MAX_HEADER_BYTES,
            max_field_size=MAX_HEADER_BYTES,
            trust_env=False,  # no netrc, no proxy lookup per request
            middlewares=(_sent_once,),
        )
        self._session = session
        return session

    def _timeout(self, request: httpx.Request) -> aiohttp.ClientTimeout:
        given = request.extensions.get("timeout") or {}
        key = (given.get("connect"), given.get("read"))
        found = self._timeouts.get(key)
        if found is None:
            found = self._timeouts[key] = aiohttp.ClientTimeout(total=None, connect=key[0], sock_read=key[1])
        return found

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        session = self._session or self._open()
        await self._acquire(request)
        try:
            response = await self._send(session, request)
        except BaseException:
            self._release()
            raise
        body = _Body(response, self._release, request)
        try:
            return httpx.Response(
                response.status,
                headers=response.raw_headers,
                stream=body,
                extensions={"http_version": b"HTTP/1.1", "reason_phrase": (response.reason or "").encode()},
            )
        except BaseException:
            await body.aclose()
            raise

    async def _acquire(self, request: httpx.Request) -> None:
        slots = self._slots
        if slots is None:
            return
        if not slots.locked():
            await slots.acquire()  # free: returns at once
            return
        try:
            async with asyncio.timeout((request.extensions.get("timeout") or {}).get("pool")):
                await slots.acquire()
        except TimeoutError:
            raise httpx.PoolTimeout("no free connection in time", request=request) from None

    def _release(self) -> None:
        if self._slots is not None:
            self._slots.release()

    async def _send(self, session: aiohttp.ClientSession, request: httpx.Request) -> aiohttp.ClientResponse:
        headers = request.headers.raw
        data: Any
        chunked = None
        try:
            data = request.content or None
        except httpx.RequestNotRead:  # a streamed body (an upload): aiohttp pulls it as it writes
            data = request.stream
            if request.headers.get("transfer-encoding", "").lower() == "chunked":
                # aiohttp chunks the body itself, and refuses the header when it is already there.
                headers = [(k, v) for k, v in headers if k.lower() != b"transfer-encoding"]
                chunked = True
        sni = request.extensions.get("sni_hostname")
        try:
            return await session.request(
                request.method,
                URL(str(request.url), encoded=True),  # httpx has encoded it; no second quoting
                headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in headers],
                data=data,
                chunked=chunked,
                allow_redirects=False,  # httpx's client follows them, when asked to
                timeout=self._timeout(request),
                server_hostname=sni.decode("ascii") if isinstance(sni, bytes) else sni,
            )
        except _Broken as exc:
            raise _mapped(exc.broken, request) from exc.broken
        except (aiohttp.ClientError, OSError) as exc:
            raise _mapped(exc, request) from exc

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()


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
    (on ClientOSError or ServerDisconnectedError from this handler); httpx never does, and a connect
    error on the second try would then hide that the first was sent. Raised as another error, the
    break goes past that resend to `_send`, which maps the original."""
    try:
        return await handler(request)
    except aiohttp.ClientConnectorError:  # a ClientOSError too, but never resent: nothing was sent
        raise
    except (aiohttp.ClientOSError, aiohttp.ServerDisconnectedError) as exc:
        raise _Broken(exc) from exc


class _Body(httpx.AsyncByteStream):
    """A response body in large pieces; closing it gives the connection back (or closes it when the
    body was not read to its end) and frees the pool slot, once."""

    def __init__(self, response: aiohttp.ClientResponse, release: Callable[[], None], request: httpx.Request):
        self._response = response
        self._release: Callable[[], None] | None = release
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_any():
                yield chunk
        except (aiohttp.ClientError, OSError) as exc:
            raise _mapped(exc, self._request) from exc

    async def aclose(self) -> None:
        self._response.release()
        release, self._release = self._release, None
        if release is not None:
            release()


def _mapped(exc: BaseException, request: httpx.Request) -> httpx.TransportError:
    """The httpx error for an aiohttp one. ConnectError/ConnectTimeout (like PoolTimeout, raised by
    the transport itself) only for what fails before the request is written: providers send those
    again even when the request makes and bills a job. Anything else may have reached the provider."""
    message = str(exc) or type(exc).__name__
    kind: type[httpx.TransportError]
    if isinstance(exc, aiohttp.ConnectionTimeoutError):  # connecting (pool, DNS, TCP, TLS) took too long
        kind = httpx.ConnectTimeout
    elif isinstance(exc, aiohttp.ClientConnectorError):  # refused, unknown name, TLS handshake or certificate
        kind = httpx.ConnectError
    elif isinstance(exc, aiohttp.InvalidURL | aiohttp.NonHttpUrlClientError):
        kind = httpx.UnsupportedProtocol
    elif isinstance(exc, TimeoutError):  # SocketTimeoutError: no answer, or a pause in the body
        kind = httpx.ReadTimeout
    elif isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError):
        kind = httpx.RemoteProtocolError  # closed before the whole answer, or a malformed body
    elif isinstance(exc, aiohttp.ClientResponseError):  # an answer aiohttp could not parse
        kind = httpx.RemoteProtocolError
    elif isinstance(exc, aiohttp.ClientConnectionResetError):
        kind = httpx.WriteError  # the connection closed while the request was being written
    else:  # ClientOSError (reset while waiting or reading), "Connection closed", any other
        kind = httpx.ReadError
    return kind(message, request=request)
