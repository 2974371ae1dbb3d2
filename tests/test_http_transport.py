"""The providers' client (bot.transport) against real loopback servers.

What matters most: a request that may have reached the provider never comes back as one of the
errors `HttpProvider.send` treats as "nothing sent" (those are sent again, and a submit sent again
may be billed twice). Then what the seam promises its callers: bodies whole and decoded, redirects
followed only by a stream asked to, headers as httpx set them (what providers saw before the seam),
the pool's limit and its timeout.
"""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import os
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import aiohttp
import httpx
import pytest
from aiohttp import web
from aiohttp.client_reqrep import ConnectionKey
from PIL import Image
from pydantic_settings import SettingsConfigDict

from bot import transport
from bot.jobs.media import fetch_image
from bot.model.config import PluginSettings, Settings
from bot.model.errors import ProviderUnreachable, SubmitOutcomeUnknown
from bot.model.requests import ImageRequest, Tier
from bot.providers.aiohttp_transport import _mapped, provider_client
from bot.providers.base import (
    _NOTHING_SENT,
    HttpProvider,
    ProviderStatus,
    RetryPolicy,
    SubmitSpec,
    encode_json,
)
from bot.transport import USER_AGENT, Request, Timeouts, Transport

# --- a provider with nothing of its own, and servers to talk to ------------------------------------


class PlainSettings(PluginSettings):
    model_config = SettingsConfigDict(env_prefix="PLAIN_")


class PlainProvider(HttpProvider[PlainSettings]):
    name = "plain"
    settings_class = PlainSettings

    def cost_usd(self, request: ImageRequest, tier: Tier) -> float:
        return 0.0

    def describe(self) -> list[str]:
        return []

    async def submit(self, spec: SubmitSpec) -> str:
        raise NotImplementedError

    async def status(self, provider_job_id: str) -> ProviderStatus:
        raise NotImplementedError


def plain(client: Transport) -> PlainProvider:
    return PlainProvider(Settings(_env_file=None), client, retry=RetryPolicy(attempts=1, base_delay=0))


@asynccontextmanager
async def serving(routes: Callable[[web.Application], object]) -> AsyncIterator[str]:
    """An aiohttp server on loopback; its base URL."""
    app = web.Application()
    routes(app)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def raw_server(handle: Handler) -> AsyncIterator[str]:
    """A bare TCP server, for answers no HTTP server would give."""
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        await server.wait_closed()


async def read_request(reader: asyncio.StreamReader) -> bytes:
    """One whole request (head and Content-Length body)."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return head + await reader.readexactly(length)


# --- nothing sent, or maybe sent: what the provider may resend -------------------------------------


@pytest.mark.parametrize("idempotent", [False, True], ids=["submit", "read"])
async def test_a_refused_connection_is_unreachable_whatever_the_request(idempotent: bool) -> None:
    # Bound, not listening: the kernel refuses every connection to it.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{taken.getsockname()[1]}/v1/jobs"
        async with provider_client() as client:
            with pytest.raises(ProviderUnreachable) as caught:
                await plain(client).send("POST", url, idempotent=idempotent, json={"prompt": "x"})
    assert isinstance(caught.value.__cause__, transport.ConnectError)
    assert isinstance(caught.value.__cause__, _NOTHING_SENT)


@pytest.mark.parametrize("method", ["POST", "PUT", "GET"])
async def test_a_connection_closed_after_the_request_leaves_the_outcome_unknown(method: str) -> None:
    seen: list[bytes] = []

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await read_request(reader))
        writer.close()

    async with raw_server(hang_up) as base, provider_client() as client:
        provider = plain(client)
        with pytest.raises(SubmitOutcomeUnknown) as submit:
            await provider.send(method, f"{base}/v1/jobs", idempotent=False, json={"prompt": "x"})
        with pytest.raises(ProviderUnreachable) as read:
            await provider.send(method, f"{base}/v1/jobs/1", idempotent=True)
    for caught in (submit, read):
        assert isinstance(caught.value.__cause__, transport.TransportError)
        assert not isinstance(caught.value.__cause__, _NOTHING_SENT)
    # Each request was sent once: aiohttp's own resend of GET/PUT on a broken connection is off.
    assert len(seen) == 2 and all(s.startswith(method.encode()) for s in seen)


async def test_no_answer_within_the_read_timeout_is_not_nothing_sent() -> None:
    arrived = asyncio.Event()
    release = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        arrived.set()
        await release.wait()
        writer.close()

    async with raw_server(silent) as base, provider_client(timeout=Timeouts(read=0.2)) as client:
        try:
            with pytest.raises(SubmitOutcomeUnknown) as caught:
                await plain(client).send("POST", f"{base}/v1/jobs", idempotent=False, json={"p": 1})
        finally:
            release.set()
    assert arrived.is_set()
    assert isinstance(caught.value.__cause__, transport.ReadTimeout)


async def test_a_body_cut_short_is_a_protocol_error() -> None:
    async def short(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 10)
        await writer.drain()
        writer.close()

    async with raw_server(short) as base, provider_client() as client:
        with pytest.raises(transport.RemoteProtocolError):
            await client.get(f"{base}/image.png")


KEY = ConnectionKey("provider.example", 443, True, True, None, None, None, None)


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        (aiohttp.ConnectionTimeoutError("connecting"), transport.ConnectTimeout),
        (aiohttp.ClientConnectorError(KEY, OSError(111, "refused")), transport.ConnectError),
        (aiohttp.ClientConnectorDNSError(KEY, OSError(-2, "unknown name")), transport.ConnectError),
        (
            aiohttp.ClientConnectorCertificateError(KEY, ssl.SSLCertVerificationError("bad")),
            transport.ConnectError,
        ),
        (aiohttp.NonHttpUrlClientError("ftp://x"), transport.UnsupportedProtocol),
        (aiohttp.SocketTimeoutError("Timeout on reading data from socket"), transport.ReadTimeout),
        (aiohttp.ServerTimeoutError("timeout"), transport.ReadTimeout),
        (aiohttp.ServerDisconnectedError(), transport.RemoteProtocolError),
        (aiohttp.ClientPayloadError("Response payload is not completed"), transport.RemoteProtocolError),
        (aiohttp.ClientConnectionResetError("Cannot write to closing transport"), transport.WriteError),
        (aiohttp.ClientOSError(104, "Connection reset by peer"), transport.ReadError),
        (aiohttp.ClientConnectionError("Connection closed"), transport.ReadError),
        (ConnectionResetError(104, "reset"), transport.ReadError),
    ],
)
def test_each_aiohttp_error_has_its_counterpart(raised: Exception, expected: type[Exception]) -> None:
    """Only connect-phase errors may be "nothing sent" (ConnectError, ConnectTimeout); the rest of
    aiohttp's errors can happen after the request was written."""
    request = Request("POST", "http://127.0.0.1:1/")
    mapped = _mapped(raised, request)
    assert type(mapped) is expected and mapped.request is request
    connect_phase = isinstance(raised, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError)
    assert isinstance(mapped, _NOTHING_SENT) == connect_phase


# --- what the seam gives its callers ---------------------------------------------------------------------


async def test_a_large_chunked_body_streams_whole() -> None:
    served = os.urandom(2_300_000)

    async def chunked(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        for start in range(0, len(served), 100_000):
            await response.write(served[start : start + 100_000])
        await response.write_eof()
        return response

    async with serving(lambda app: app.router.add_get("/big", chunked)) as base, provider_client() as client:
        async with client.stream(f"{base}/big", max_bytes=len(served)) as response:
            assert response.headers["transfer-encoding"] == "chunked"
            pieces = [piece async for piece in response.chunks()]
        assert b"".join(pieces) == served
        assert len(pieces) < len(served) // 65536  # handed on in few, large pieces


async def test_a_provider_result_downloads_through_fetch_image() -> None:
    """The path each result takes (bot.jobs.media.fetch_image, typed=False) over this client."""
    noise = Image.frombytes("RGB", (1024, 1024), os.urandom(1024 * 1024 * 3))
    buffer = io.BytesIO()
    noise.save(buffer, "PNG", compress_level=0)
    png = buffer.getvalue()
    assert len(png) > 2_000_000

    async def result(request: web.Request) -> web.Response:
        return web.Response(body=png, content_type="image/png")

    async def moved(request: web.Request) -> web.Response:
        raise web.HTTPFound("/result.png")

    def routes(app: web.Application) -> None:
        app.router.add_get("/result.png", result)
        app.router.add_get("/moved", moved)

    async with serving(routes) as base, provider_client() as client:
        for path in ("/result.png", "/moved"):
            image = await fetch_image(client, base + path, typed=False, max_bytes=60 << 20, decode=False)
            assert image.data == png and (image.width, image.height) == (1024, 1024)


async def test_a_gzip_body_is_decoded() -> None:
    payload = {"state": "completed", "images": ["x" * 5000]}

    async def zipped(request: web.Request) -> web.Response:
        body = gzip.compress(json.dumps(payload).encode())
        return web.Response(
            body=body, headers={"Content-Encoding": "gzip", "Content-Type": "application/json"}
        )

    async with serving(lambda app: app.router.add_get("/s", zipped)) as base, provider_client() as client:
        response = await client.get(f"{base}/s")
    assert response.json() == payload
    assert int(response.headers["content-length"]) < len(json.dumps(payload))


async def test_a_redirect_is_followed_only_by_a_stream_asked_to() -> None:
    hits: list[str] = []

    async def moved(request: web.Request) -> web.Response:
        hits.append(request.path)
        raise web.HTTPFound("/there")

    async def there(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.json_response({"ok": True})

    def routes(app: web.Application) -> None:
        app.router.add_get("/here", moved)
        app.router.add_get("/there", there)

    async with serving(routes) as base, provider_client() as client:
        first = await client.get(f"{base}/here")
        assert first.status == 302 and first.headers["location"] == "/there"
        assert hits == ["/here"]
        async with client.stream(f"{base}/here", max_bytes=1000, follow_redirects=True) as followed:
            await followed.read()
    assert followed.status == 200 and followed.url == f"{base}/there"
    assert list(followed.redirects) == [302]
    assert hits == ["/here", "/here", "/there"]


async def test_headers_and_a_json_body_reach_the_server_as_httpx_made_them() -> None:
    received: list[tuple[list[tuple[bytes, bytes]], bytes]] = []

    async def record(request: web.Request) -> web.Response:
        received.append((list(request.raw_headers), await request.read()))
        return web.json_response({"id": "job-1"})

    body = {"prompt": "un renard roux dans la neige ✓", "seed": 7, "image_size": {"width": 1024}}
    async with (
        serving(lambda app: app.router.add_post("/v1/jobs", record)) as base,
        provider_client() as client,
    ):
        answer = await plain(client).call(
            "POST", f"{base}/v1/jobs", idempotent=False, json=body,
            headers={"Authorization": "Bearer secret-0451"},
        )  # fmt: skip
    assert answer == {"id": "job-1"}
    ((headers, sent),) = received
    named: dict[bytes, list[bytes]] = {}
    for key, value in headers:
        named.setdefault(key.lower(), []).append(value)
    assert named[b"user-agent"] == [USER_AGENT.encode()]
    assert named[b"authorization"] == [b"Bearer secret-0451"]
    assert named[b"accept-encoding"] == [b"gzip, deflate"]  # httpx's, once
    assert named[b"content-type"] == [b"application/json"]
    assert sent == httpx.Request("POST", base, json=body).content  # byte for byte what httpx encoded
    assert sent == encode_json(body)
    assert json.loads(sent) == body


async def test_aiohttp_adds_no_header_httpx_would_not_have_set() -> None:
    received: list[list[tuple[bytes, bytes]]] = []

    async def record(request: web.Request) -> web.Response:
        received.append(list(request.raw_headers))
        return web.Response()

    async with serving(lambda app: app.router.add_post("/up", record)) as base, provider_client() as client:
        await client.do_request("POST", f"{base}/up", body=b"\x89PNG raw bytes")
    # What httpx's client, as the providers' client was made before the seam, sent for the same request.
    made = httpx.AsyncClient(headers={"User-Agent": USER_AGENT}).build_request(
        "POST", f"{base}/up", content=b"\x89PNG raw bytes"
    )
    (headers,) = received
    # Exactly httpx's, each once: no Content-Type for raw bytes (aiohttp would add application/octet-stream).
    assert sorted(key.lower() for key, _ in headers) == sorted(key.lower() for key, _ in made.headers.raw)
    assert b"content-type" not in [key.lower() for key, _ in headers]


async def test_a_long_header_is_read_as_httpx_read_it() -> None:
    link = "https://cdn.example/result.png?sig=" + "a" * 12_000  # signed URLs run long

    async def redirect(request: web.Request) -> web.Response:
        return web.Response(status=302, headers={"Location": link})

    async with serving(lambda app: app.router.add_get("/r", redirect)) as base, provider_client() as client:
        response = await client.get(f"{base}/r")
    assert response.status == 302 and response.headers["location"] == link


async def test_a_non_http_url_is_refused_before_anything_is_sent() -> None:
    async with provider_client() as client:
        with pytest.raises(transport.UnsupportedProtocol):
            await client.get("ftp://127.0.0.1/file")


# --- the pool -----------------------------------------------------------------------------------------


@asynccontextmanager
async def counting_server() -> AsyncIterator[tuple[str, list[int]]]:
    """A server of 300 KB bodies that notes the client port of each request (one per connection)."""
    ports: list[int] = []

    async def body(request: web.Request) -> web.Response:
        assert request.transport is not None
        ports.append(request.transport.get_extra_info("peername")[1])
        return web.Response(body=b"z" * 300_000)

    async with serving(lambda app: app.router.add_get("/r", body)) as base:
        yield f"{base}/r", ports


async def test_with_one_connection_a_second_request_gets_a_pool_timeout_while_the_first_is_held() -> None:
    async with (
        counting_server() as (url, ports),
        provider_client(max_connections=1, timeout=Timeouts(pool=0.05)) as client,
    ):
        async with client.stream(url, max_bytes=300_000) as held:
            assert held.status == 200
            with pytest.raises(ProviderUnreachable) as caught:
                await plain(client).send("POST", url, idempotent=False)
            assert isinstance(caught.value.__cause__, transport.PoolTimeout)
            assert len(ports) == 1  # the second never reached the server
            await held.read()
        again = await client.get(url)
    assert again.status == 200 and len(again.body) == 300_000
    assert len(ports) == 2 and ports[0] == ports[1]  # the one connection, used again


async def test_a_waiting_request_goes_once_the_connection_is_free() -> None:
    async with counting_server() as (url, ports), provider_client(max_connections=1) as client:
        held = client.stream(url, max_bytes=300_000)
        streamed = await held.__aenter__()
        waiting = asyncio.create_task(client.get(url))
        # Closed before its body was read: the connection is dropped, the slot freed all the same.
        pieces = streamed.chunks()
        chunk = await anext(pieces)
        assert 0 < len(chunk) < 300_000
        await pieces.aclose()
        await held.__aexit__(None, None, None)
        second = await asyncio.wait_for(waiting, 30)
    assert second.status == 200 and len(second.body) == 300_000
    assert len(ports) == 2 and ports[0] != ports[1]  # the unfinished connection was not reused


async def test_the_session_is_made_on_first_use_and_closed_with_the_client() -> None:
    client = provider_client()
    assert client._session is None
    async with counting_server() as (url, _), client:
        await client.get(url)
        session = client._session
        assert isinstance(session, aiohttp.ClientSession) and not session.closed
    assert session.closed and client._session is None
