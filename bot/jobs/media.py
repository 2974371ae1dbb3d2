"""Images in: fetching what a platform, a provider or a person names, safely (addresses checked, sizes
capped, time bounded); the checks each image then passes are in bot/jobs/images.py."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx

from bot.jobs.images import SniffedImage, check_image, decode_data_uri, mb, sniff_file
from bot.model.errors import MediaError
from bot.transport import NotAllowed, Streamed, TooLarge, Transport, TransportError, is_ip_literal

Resolver = Callable[[str, int], Awaitable[list[str]]]

MAX_REDIRECTS = 3
# A URL a person typed is fetched by its own client (see `typed_client`) and must finish downloading,
# redirects included, within this many seconds.
TYPED_FETCH_SECONDS = 30.0
# The typed-URL client's own pool: slow links wait for each other, never for provider traffic.
TYPED_LIMITS = httpx.Limits(max_connections=10, max_keepalive_connections=5)
# Within that pool, at most this many typed-URL downloads at once per person and per tenant: one
# person's (or one server's) slow links wait for each other, not in everyone's way.
TYPED_PER_OWNER = 2


async def system_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


# IPv6 ranges whose last 32 bits are an IPv4 address that a translator or the host itself will reach:
# NAT64's well-known prefix (RFC 6052), IPv4-compatible (RFC 4291, deprecated), IPv4-translated (RFC 2765).
# IPv4-mapped (::ffff:0:0/96) and 6to4 (2002::/16) are read by the ipaddress module itself.
_TAIL_IPV4 = (
    ipaddress.IPv6Network("64:ff9b::/96"),
    ipaddress.IPv6Network("::/96"),
    ipaddress.IPv6Network("::ffff:0:0:0/96"),
)
# Refused whatever they carry: local-use NAT64 (RFC 8215), where the network's operator decides where
# the IPv4 address sits, and Teredo (RFC 4380), whose client is reached only through a relay.
_REFUSED_V6 = (ipaddress.IPv6Network("64:ff9b:1::/48"), ipaddress.IPv6Network("2001::/32"))
# Only 2000::/3 is allocated as global unicast (IANA's IPv6 Address Space registry); the rest is
# reserved, ULA, link-local, the deprecated site-local fec0::/10 (RFC 3879) or multicast.
_GLOBAL_UNICAST_V6 = ipaddress.IPv6Network("2000::/3")
# Not globally reachable per IANA's IPv6 Special-Purpose Address Registry (checked 2026): written out
# rather than left to `ipaddress.is_global`, whose list depends on the Python release (3.11 misses
# fec0::/10, 3fff::/20, 5f00::/16, 100:0:0:1::/64). All of 2001::/23 is refused, its few globally
# reachable anycast services (PCP, TURN, AMT, AS112, ORCHIDv2, drone ids) included: they serve no images.
_SPECIAL_V6 = tuple(
    ipaddress.IPv6Network(net)
    for net in (
        "::/128", "::1/128", "100::/64", "100:0:0:1::/64", "2001::/23", "2001:db8::/32",
        "3fff::/20", "5f00::/16", "fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8",
    )
)  # fmt: skip


def is_public_address(address: str) -> bool:
    """True for an address on the public internet. An IPv6 address that carries an IPv4 one inside it
    (mapped, 6to4, NAT64, IPv4-compatible) is judged by the IPv4 address: that is where it leads."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address):
        if any(ip in net for net in _REFUSED_V6):
            return False
        inner = _embedded_ipv4(ip)
        if inner is not None:
            return _is_public(inner)
        if ip not in _GLOBAL_UNICAST_V6 or any(ip in net for net in _SPECIAL_V6):
            return False
    return _is_public(ip)


def result_address_check(trusted_hosts: str) -> Callable[[str, int, str], bool]:
    """The check for the transport that downloads providers' results (`provider_client`'s
    `address_check`): a host the operator named in HIDREAM_TRUSTED_RESULT_HOSTS (comma-separated
    names, each maybe with `:port`) is reached wherever it resolves; any other only at public
    addresses, like a typed URL, redirects included."""
    trusted = frozenset(h.strip().lower() for h in trusted_hosts.split(",") if h.strip())

    def allowed(host: str, port: int, address: str) -> bool:
        name = host.lower()
        shown = f"[{name}]" if ":" in name else name
        return name in trusted or f"{shown}:{port}" in trusted or is_public_address(address)

    return allowed


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if any(ip in net for net in _TAIL_IPV4):
        return ipaddress.IPv4Address(int(ip) & 0xFFFF_FFFF)
    return None


def _is_public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return ip.is_global and not ip.is_multicast


async def fetch_image(
    client: Transport | httpx.AsyncClient,
    url: str,
    *,
    typed: bool,
    max_bytes: int,
    headers: Mapping[str, str] | None = None,
    resolver: Resolver = system_resolver,
    total_seconds: float | None = None,
    decode: bool = True,
    image_types_only: bool = False,
) -> SniffedImage:
    """Fetch an image and check that it decodes. `typed=True` (a URL a person wrote): public addresses
    only, checked at every hop and connected to by the checked address, so a name that re-resolves
    inside the network gets nowhere. `total_seconds`: the most the whole download may take, redirects
    and a body that trickles in included (httpx's timeouts apply to each read, not to the sum).
    `decode=False`: type and size from the header, for the provider's results (a full decode of each
    2 MB result was the largest cost of a burst); what people send is always decoded whole.
    `image_types_only`: an answer whose Content-Type says it is no image (a page, JSON) is refused
    before its body is read.
    `client`: the providers' `Transport` for their results and platform attachments (redirects
    followed), `typed_client` for typed URLs, whose checks need its pinned connections."""
    if url.startswith("data:"):
        return await check_image(decode_data_uri(url), max_bytes=max_bytes, name="The image", decode=decode)
    try:
        async with asyncio.timeout(total_seconds):
            if isinstance(client, httpx.AsyncClient):
                data, url = await _download(
                    client, url, typed=typed, max_bytes=max_bytes, headers=headers, resolver=resolver
                )
            elif typed:
                raise TypeError("a typed URL is fetched with typed_client, which pins checked addresses")
            else:
                data = await _stream(
                    client, url, max_bytes=max_bytes, headers=headers, image_types_only=image_types_only
                )
    except TimeoutError:
        raise MediaError(
            f"The image at {_show(url)} took longer than {total_seconds:g} seconds to download; "
            "use a faster host, or attach the image instead."
        ) from None
    return await check_image(data, max_bytes=max_bytes, name=f"The file at {_show(url)}", decode=decode)


async def _download(
    client: httpx.AsyncClient,
    url: str,
    *,
    typed: bool,
    max_bytes: int,
    headers: Mapping[str, str] | None,
    resolver: Resolver,
) -> tuple[bytes, str]:
    """The body at `url` (after redirects, each rechecked when typed) and the URL it came from."""
    for _ in range(MAX_REDIRECTS + 1):
        request = await _build_request(client, url, typed=typed, headers=headers, resolver=resolver)
        try:
            response = await client.send(request, stream=True, follow_redirects=not typed)
            try:
                if typed and response.is_redirect and "location" in response.headers:
                    url = urljoin(url, response.headers["location"])
                    continue
                return await _read_body(response, max_bytes, url), url
            finally:
                await response.aclose()
        except httpx.HTTPError as exc:
            raise MediaError(
                f"Could not download the image at {_show(url)}.", detail=type(exc).__name__
            ) from exc
    raise MediaError(f"The image at {_show(url)} redirects too many times.")


async def _read_body(response: httpx.Response, max_bytes: int, url: str) -> bytes:
    if response.status_code != 200:
        raise MediaError(f"Could not download the image at {_show(url)} (HTTP {response.status_code}).")
    declared = response.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise MediaError(
            f"The image at {_show(url)} is {mb(int(declared))}; the largest accepted is {mb(max_bytes)}."
        )
    return await _read_capped(response, max_bytes, url)


async def _stream(
    client: Transport,
    url: str,
    *,
    max_bytes: int,
    headers: Mapping[str, str] | None,
    image_types_only: bool = False,
) -> bytes:
    """The body at `url` over the providers' transport, redirects followed, capped as it arrives."""
    async with _checked(client, url, max_bytes, headers, image_types_only) as response:
        return await response.read()


@contextlib.asynccontextmanager
async def _checked(
    client: Transport,
    url: str,
    max_bytes: int,
    headers: Mapping[str, str] | None,
    image_types_only: bool,
) -> AsyncIterator[Streamed]:
    """The answer at `url` (an http(s) link, redirects followed, capped as it arrives), once its status
    and type are an image's; the transport's refusals, here and while the body is read, as MediaError."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise MediaError(f"{_show(url)} is not an http(s) link to an image.")
    try:
        async with client.stream(
            url, max_bytes=max_bytes, headers=headers, follow_redirects=True
        ) as response:
            if response.status != 200:
                raise MediaError(f"Could not download the image at {_show(url)} (HTTP {response.status}).")
            kind = response.headers.get("Content-Type", "").partition(";")[0].strip().lower()
            if image_types_only and kind and not (kind.startswith("image/") or kind in _UNTYPED):
                raise MediaError(f"The file at {_show(url)} is not an image ({kind[:60]}).")
            yield response
    except TooLarge as exc:
        if exc.size is not None:
            raise MediaError(
                f"The image at {_show(url)} is {mb(exc.size)}; the largest accepted is {mb(max_bytes)}."
            ) from None
        raise MediaError(f"The image at {_show(url)} is larger than {mb(max_bytes)}.") from None
    except NotAllowed:
        raise MediaError(
            f"{_show(url)} points inside a private network; only public image links can be used."
        ) from None
    except TransportError as exc:
        raise MediaError(f"Could not download the image at {_show(url)}.", detail=type(exc).__name__) from exc


# Content-Types that say nothing of what a file is: its bytes decide (`sniff_image`).
_UNTYPED = frozenset({"application/octet-stream", "binary/octet-stream"})


# Bytes gathered before each write of a streamed download to its file (one thread hop per write): the
# size of the transport's read buffer, so 64 downloads at once hold at most 16 MB of it.
WRITE_BATCH = 256 * 1024


Write = Callable[[BinaryIO, bytes | bytearray], object]


def _write(handle: BinaryIO, data: bytes | bytearray) -> None:
    handle.write(data)


@dataclass(frozen=True)
class SpooledImage:
    """An image streamed into a file (never whole in memory): where, and what its header says."""

    file: Path
    content_type: str
    width: int
    height: int


async def fetch_to_file(
    client: Transport,
    url: str,
    file: Path,
    *,
    max_bytes: int,
    image_types_only: bool = False,
    write: Write = _write,
) -> SpooledImage:
    """`fetch_image` for a provider's result (`typed=False, decode=False`), streamed into `file` (an
    empty file the caller made and deletes) in chunks as they arrive: type and size from the header.
    A data URI (a provider that answers with the bytes themselves) is written as it is. `write`: one
    write into the file (blocking; the store's, which tells a full disk from a failure)."""
    if url.startswith("data:"):
        await write_batched(_one(decode_data_uri(url)), file, write)
        shown = "The image"
    else:
        await _stream_to(client, url, file, max_bytes, image_types_only, write)
        shown = f"The file at {_show(url)}"
    found = await asyncio.to_thread(sniff_file, file, max_bytes=max_bytes, name=shown)
    return SpooledImage(file, found.content_type, found.width, found.height)


async def _stream_to(
    client: Transport, url: str, file: Path, max_bytes: int, image_types_only: bool, write: Write
) -> None:
    """`_stream`, the body written to `file` in batches of WRITE_BATCH."""
    async with _checked(client, url, max_bytes, None, image_types_only) as response:
        await write_batched(response.chunks(), file, write)


async def _one(data: bytes) -> AsyncGenerator[bytes, None]:
    yield data


async def write_batched(chunks: AsyncGenerator[bytes, None], file: Path, write: Write) -> None:
    """`chunks` written to `file`, gathered into writes of about WRITE_BATCH, each by `write` in a
    thread."""
    handle = await asyncio.to_thread(file.open, "wb")
    try:
        batch = bytearray()
        async for chunk in chunks:
            batch += chunk
            if len(batch) >= WRITE_BATCH:
                await asyncio.to_thread(write, handle, batch)
                batch = bytearray()
        if batch:
            await asyncio.to_thread(write, handle, batch)
    finally:
        await asyncio.to_thread(handle.close)


def typed_client(transport: httpx.AsyncBaseTransport | None = None) -> httpx.AsyncClient:
    """The client for URLs people type, apart from the one providers and platforms use: its own small
    pool, so a hundred slow links wait for each other and never hold up a provider's status call."""
    return httpx.AsyncClient(
        transport=transport or httpx.AsyncHTTPTransport(limits=TYPED_LIMITS),
        timeout=httpx.Timeout(15.0, connect=5.0, pool=TYPED_FETCH_SECONDS),
        headers={"User-Agent": "hidream-bot/0.1"},
    )


async def _build_request(
    client: httpx.AsyncClient, url: str, *, typed: bool, headers: Mapping[str, str] | None, resolver: Resolver
) -> httpx.Request:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise MediaError(f"{_show(url)} is not an http(s) link to an image.")
    if not typed:
        return client.build_request("GET", url, headers=dict(headers or {}))
    host = parts.hostname
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        addresses = [host] if is_ip_literal(host) else await resolver(host, port)
    except OSError:
        raise MediaError(f"The address {host} could not be found.") from None
    if not addresses or not all(is_public_address(a) for a in addresses):
        raise MediaError(
            f"{_show(url)} points inside a private network; only public image links can be used."
        )
    pinned = addresses[0]
    netloc = f"[{pinned}]" if ":" in pinned else pinned
    if parts.port:
        netloc += f":{parts.port}"
    target = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
    hdrs = {"Host": parts.netloc.rsplit("@", 1)[-1]}
    return client.build_request("GET", target, headers=hdrs, extensions={"sni_hostname": host})


async def _read_capped(response: httpx.Response, max_bytes: int, url: str) -> bytes:
    buf = bytearray()
    async for chunk in response.aiter_bytes():
        buf.extend(chunk)
        if len(buf) > max_bytes:
            raise MediaError(f"The image at {_show(url)} is larger than {mb(max_bytes)}.")
    return bytes(buf)


def _show(url: str) -> str:
    """A URL fit for a message: no query string (it may carry a token)."""
    if url.startswith("data:"):
        return "(inline image)"
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc.rsplit("@", 1)[-1], parts.path, "", ""))[:200]
