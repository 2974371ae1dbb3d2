"""The seam's download (`Transport.stream`) under its cap, over aiohttp and in memory, and as
`fetch_image` reports what goes wrong with it."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bot.jobs.media import fetch_image
from bot.model.errors import MediaError
from bot.providers.aiohttp_transport import provider_client
from bot.providers.mock_transport import MockTransport, answer
from bot.transport import Answer, RemoteProtocolError, Request, TooLarge


async def test_a_declared_length_above_the_cap_is_refused_unread_and_the_connection_freed() -> None:
    sent: list[int] = []

    async def big(request: web.Request) -> web.Response:
        sent.append(1)
        return web.Response(body=b"z" * 300_000, content_type="image/png")

    app = web.Application()
    app.router.add_get("/big", big)
    async with TestServer(app, host="127.0.0.1") as server, provider_client(max_connections=1) as client:
        base = str(server.make_url("")).rstrip("/")
        with pytest.raises(MediaError, match=r"is 0\.3 MB; the largest accepted is 0\.1 MB"):
            await fetch_image(client, f"{base}/big", typed=False, max_bytes=100_000)
        async with client.stream(f"{base}/big", max_bytes=100_000) as streamed:
            with pytest.raises(TooLarge) as caught:
                await streamed.read()
        assert caught.value.size == 300_000
        # The one connection's slot came back each time: a third request is not left waiting.
        again = await asyncio.wait_for(client.get(f"{base}/big"), 30)
    assert again.status == 200 and len(again.body) == 300_000
    assert len(sent) == 3


async def test_a_body_cut_short_while_streaming_is_a_protocol_error() -> None:
    async def short(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 10)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(short, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/result.png"
    try:
        async with provider_client() as client:
            async with client.stream(url, max_bytes=10_000) as streamed:
                with pytest.raises(RemoteProtocolError):
                    await streamed.read()
            with pytest.raises(MediaError, match="Could not download the image") as caught:
                await fetch_image(client, url, typed=False, max_bytes=10_000)
    finally:
        server.close()
        await server.wait_closed()
    assert caught.value.detail == "RemoteProtocolError"


async def test_a_typed_url_is_never_fetched_over_the_providers_transport() -> None:
    seen: list[Request] = []

    def record(request: Request) -> Answer:
        seen.append(request)
        return answer(200)

    with pytest.raises(TypeError, match="typed_client"):
        await fetch_image(MockTransport(record), "https://images.example/cat.png", typed=True, max_bytes=10)
    assert seen == []


async def test_the_mock_follows_redirects_only_when_asked_and_keeps_the_cap() -> None:
    seen: list[str] = []

    def handler(request: Request) -> Answer:
        seen.append(request.url)
        if request.url.endswith("/moved"):
            return answer(302, headers={"Location": "/there"})
        return answer(200, b"x" * 50)

    mock = MockTransport(handler)
    async with mock.stream("http://provider.example/moved", max_bytes=100) as kept:
        assert kept.status == 302 and kept.redirects == ()
    async with mock.stream("http://provider.example/moved", max_bytes=100, follow_redirects=True) as followed:
        assert await followed.read() == b"x" * 50
    assert followed.redirects == (302,) and followed.url == "http://provider.example/there"
    async with mock.stream("http://provider.example/there", max_bytes=10) as capped:
        with pytest.raises(TooLarge):
            await capped.read()
    assert seen == [
        "http://provider.example/moved",
        "http://provider.example/moved",
        "http://provider.example/there",
        "http://provider.example/there",
    ]
