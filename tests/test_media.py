"""Safe fetching, type sniffing, and fitting images under a platform's limit."""

from __future__ import annotations

import io
import os
from pathlib import Path

import httpx
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from PIL import Image

from bot.jobs.images import fit_to_limit, sniff_image
from bot.jobs.media import fetch_image, is_public_address
from bot.model.errors import MediaError
from bot.providers.aiohttp_transport import provider_client


def image_bytes(fmt: str = "PNG", size: tuple[int, int] = (64, 48)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (10, 120, 200)).save(out, format=fmt)
    return out.getvalue()


@pytest.mark.parametrize(
    ("fmt", "mime"),
    [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("WEBP", "image/webp"), ("GIF", "image/gif")],
)
def test_sniff_reads_the_content_not_the_name(fmt: str, mime: str) -> None:
    sniffed = sniff_image(image_bytes(fmt), max_bytes=10**6)
    assert (sniffed.content_type, sniffed.width, sniffed.height) == (mime, 64, 48)


def test_sniff_refuses_non_images_and_oversized_files() -> None:
    with pytest.raises(MediaError, match="is not an image the bot can read"):
        sniff_image(b"%PDF-1.7 not a picture", max_bytes=10**6)
    with pytest.raises(MediaError, match="is a BMP image; use PNG, JPEG, WebP or GIF"):
        sniff_image(image_bytes("BMP"), max_bytes=10**6)
    with pytest.raises(MediaError, match=r"the largest image accepted is 0\.0 MB"):
        sniff_image(image_bytes(), max_bytes=10)


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.9",
        "192.168.1.1",
        "169.254.169.254",
        "0.0.0.0",
        "::1",
        "fe80::1",
        "fc00::1",
        "::ffff:127.0.0.1",
        "100.64.0.1",
        "224.0.0.1",
    ],
)
def test_inside_addresses_are_not_public(address: str) -> None:
    assert not is_public_address(address)


def test_public_addresses_are_public() -> None:
    assert is_public_address("93.184.216.34") and is_public_address("2606:2800:220:1:248:1893:25c8:1946")


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/a.png",
        "http://[::1]/a.png",
        "http://169.254.169.254/latest/meta-data",
        "http://10.0.0.7/a.png",
    ],
)
async def test_typed_urls_inside_the_network_are_refused_without_a_request(url: str) -> None:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200)

    async with httpx.AsyncClient(transport=httpx.MockTransport(record)) as c:
        with pytest.raises(MediaError, match="points inside a private network"):
            await fetch_image(c, url, typed=True, max_bytes=10**6)
    assert seen == []


async def test_typed_name_resolving_inside_is_refused() -> None:
    async def resolver(host: str, port: int) -> list[str]:
        return ["93.184.216.34", "192.168.0.10"]  # one bad address is enough to refuse

    async with httpx.AsyncClient(transport=httpx.MockTransport(lambda r: httpx.Response(200))) as c:
        with pytest.raises(MediaError, match="points inside a private network"):
            await fetch_image(
                c, "https://images.example/cat.png", typed=True, max_bytes=10**6, resolver=resolver
            )


async def test_typed_public_url_is_fetched_from_the_checked_address_and_redirects_are_rechecked() -> None:
    seen: list[httpx.Request] = []
    png = image_bytes()

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/moved":
            return httpx.Response(302, headers={"location": "http://127.0.0.1/admin.png"})
        return httpx.Response(200, content=png, headers={"content-type": "image/png"})

    async def resolver(host: str, port: int) -> list[str]:
        assert (host, port) == ("images.example", 443)
        return ["93.184.216.34"]

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as c:
        got = await fetch_image(
            c, "https://images.example/cat.png", typed=True, max_bytes=10**6, resolver=resolver
        )
        assert got.data == png
        assert seen[0].url.host == "93.184.216.34" and seen[0].headers["host"] == "images.example"
        assert seen[0].extensions["sni_hostname"] == "images.example"
        with pytest.raises(MediaError, match="points inside a private network"):
            await fetch_image(
                c, "https://images.example/moved", typed=True, max_bytes=10**6, resolver=resolver
            )
    assert len(seen) == 2  # the redirect target inside the network was never requested


async def test_platform_urls_are_fetched_as_given_with_their_headers_and_capped() -> None:
    png = image_bytes()
    big = os.urandom(300_000)

    async def file(request: web.Request) -> web.StreamResponse:
        if request.headers.get("Authorization") != "Bearer xoxb-test":
            return web.Response(status=403)
        if request.match_info["name"] == "big":
            # Chunked, no Content-Length: the cap must hold while streaming.
            response = web.StreamResponse()
            await response.prepare(request)
            for i in range(0, len(big), 65536):
                await response.write(big[i : i + 65536])
            await response.write_eof()
            return response
        return web.Response(body=png, content_type="image/png")

    app = web.Application()
    app.router.add_get("/files/{name}", file)
    async with TestServer(app, host="127.0.0.1") as server, provider_client() as c:
        base = str(server.make_url("/files"))
        headers = {"Authorization": "Bearer xoxb-test"}
        got = await fetch_image(c, f"{base}/cat", typed=False, max_bytes=10**6, headers=headers)
        assert got.data == png and got.content_type == "image/png"
        with pytest.raises(MediaError, match="HTTP 403"):
            await fetch_image(c, f"{base}/cat", typed=False, max_bytes=10**6)
        with pytest.raises(MediaError, match=r"is larger than 0\.1 MB"):
            await fetch_image(c, f"{base}/big", typed=False, max_bytes=100_000, headers=headers)


async def test_fit_to_limit_shrinks_only_what_is_too_big(tmp_path: Path) -> None:
    noisy = Image.frombytes("RGB", (1024, 1024), os.urandom(1024 * 1024 * 3))
    out = io.BytesIO()
    noisy.save(out, format="PNG")
    data = out.getvalue()
    assert len(data) > 3_000_000
    same, mime, changed = await fit_to_limit(data, "image/png", len(data))
    assert (same, mime, changed) == (data, "image/png", False)
    fitted, mime, changed = await fit_to_limit(data, "image/png", 400_000)
    assert changed and mime == "image/jpeg" and len(fitted) <= 400_000
    with Image.open(io.BytesIO(fitted)) as img:
        assert img.format == "JPEG" and img.width == img.height
