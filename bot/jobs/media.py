"""Images in and out: safe fetch, decoding checks, fitting to a platform's limits, signed links.

Pillow's work (decoding, re-encoding, resizing) is CPU-bound and can take seconds on a large image:
the async entry points here (`check_image`, `fit_to_limit`) run it in a worker thread, so the event
loop keeps answering while it runs."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import io
import ipaddress
import socket
import threading
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx
from PIL import Image, UnidentifiedImageError

from bot.model.errors import MediaError
from bot.transport import NotAllowed, TooLarge, Transport, TransportError

Resolver = Callable[[str, int], Awaitable[list[str]]]

ACCEPTED_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp", "GIF": "image/gif"}
MAX_REDIRECTS = 3
# The most pixels an image may claim (40 megapixels, e.g. 8000x5000). Checked from the header before
# any decoding, so a small file that claims to be huge (a decompression bomb) is refused cheaply.
# Pillow's own bomb check (Image.MAX_IMAGE_PIXELS) stays on as a second line.
MAX_PIXELS = 40_000_000
# A URL a person typed is fetched by its own client (see `typed_client`) and must finish downloading,
# redirects included, within this many seconds.
TYPED_FETCH_SECONDS = 30.0
# The typed-URL client's own pool: slow links wait for each other, never for provider traffic.
TYPED_LIMITS = httpx.Limits(max_connections=10, max_keepalive_connections=5)
# Within that pool, at most this many typed-URL downloads at once per person and per tenant: one
# person's (or one server's) slow links wait for each other, not in everyone's way.
TYPED_PER_OWNER = 2


# How many images are decoded at once, across the bot's threads (bounds the memory decoding takes).
DECODES = threading.BoundedSemaphore(2)


class ResultGate:
    """At most `slots` job results held whole in memory at once, across the bot: a result is kept
    and posted under one of these slots, taken once its download is done (a slow file host must hold
    only its own job, never a slot others wait for; the runner's `hand_over` carries the slot
    from the keeping to the post; a delivery resumed later reads the images back under a slot of its
    own), so a burst of results waits here in turn instead of filling memory (each 2 MB result was
    held several times at once by every job being worked). `held`, `most_held` and `waiting` (for a
    slot) are there to be read (tests, metrics)."""

    def __init__(self, slots: int) -> None:
        self.slots = slots
        self.held = 0
        self.most_held = 0
        self.waiting = 0
        self._free = asyncio.Semaphore(slots)

    async def take(self) -> ResultSlot:
        """A slot, held across steps (a result kept and then posted without reading it back); give it
        back with `release`, which may be called again harmlessly."""
        self.waiting += 1
        try:
            await self._free.acquire()
        finally:
            self.waiting -= 1
        self.held += 1
        self.most_held = max(self.most_held, self.held)
        return ResultSlot(self)

    def _give_back(self) -> None:
        self.held -= 1
        self._free.release()


class ResultSlot:
    """One slot of a `ResultGate`, held until `release`."""

    def __init__(self, gate: ResultGate) -> None:
        self._gate: ResultGate | None = gate

    def release(self) -> None:
        if self._gate is not None:
            self._gate._give_back()
            self._gate = None


@dataclass(frozen=True)
class SniffedImage:
    data: bytes
    content_type: str
    width: int
    height: int


def sniff_image(data: bytes, *, max_bytes: int, name: str = "The file", decode: bool = True) -> SniffedImage:
    """Check that `data` is a whole PNG, JPEG, WebP or GIF image of at most `max_bytes` and MAX_PIXELS,
    by decoding it (`decode=False`: its type and size from its header only). Blocking CPU work: from
    async code, await `check_image` instead."""
    if len(data) > max_bytes:
        raise MediaError(f"{name} is {_mb(len(data))}; the largest image accepted is {_mb(max_bytes)}.")
    try:
        img = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError:
        raise MediaError(f"{name} claims far more pixels than the bot accepts ({_megapixels()}).") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise MediaError(f"{name} is not an image the bot can read (PNG, JPEG, WebP or GIF).") from None
    with img:
        fmt = img.format or ""
        if fmt not in ACCEPTED_TYPES:
            raise MediaError(f"{name} is a {fmt or 'unknown'} image; use PNG, JPEG, WebP or GIF.")
        width, height = img.size
        if width * height > MAX_PIXELS:
            raise MediaError(
                f"{name} is {width}x{height} pixels; the largest image accepted is {_megapixels()}."
            )
        if not decode:
            return SniffedImage(data, ACCEPTED_TYPES[fmt], width, height)
        try:
            with DECODES:  # a decoded 40 MP image is ~160 MB: a burst must not decode them all at once
                img.load()  # the whole image, not only its header: a cut-off or damaged file fails here
        except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError):
            raise MediaError(
                f"{name} is damaged or cut short: the bot could not read the whole image."
            ) from None
    return SniffedImage(data, ACCEPTED_TYPES[fmt], width, height)


async def check_image(
    data: bytes, *, max_bytes: int, name: str = "The file", decode: bool = True
) -> SniffedImage:
    """`sniff_image` in a worker thread (a header alone is read at once). The size is checked before
    the thread is even started."""
    if len(data) > max_bytes:
        raise MediaError(f"{name} is {_mb(len(data))}; the largest image accepted is {_mb(max_bytes)}.")
    if not decode:
        return sniff_image(data, max_bytes=max_bytes, name=name, decode=False)
    return await asyncio.to_thread(sniff_image, data, max_bytes=max_bytes, name=name)


def _megapixels() -> str:
    return f"{MAX_PIXELS / 1_000_000:g} megapixels"


def to_data_uri(data: bytes, content_type: str) -> str:
    return f"data:{content_type};base64,{base64.b64encode(data).decode('ascii')}"


def decode_data_uri(uri: str) -> bytes:
    head, _, payload = uri.partition(",")
    if not head.startswith("data:") or not head.endswith(";base64"):
        raise MediaError("A data URI image must be base64-encoded.")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise MediaError("A data URI image is not valid base64.") from None


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
            f"The image at {_show(url)} is {_mb(int(declared))}; the largest accepted is {_mb(max_bytes)}."
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
            return await response.read()
    except TooLarge as exc:
        if exc.size is not None:
            raise MediaError(
                f"The image at {_show(url)} is {_mb(exc.size)}; the largest accepted is {_mb(max_bytes)}."
            ) from None
        raise MediaError(f"The image at {_show(url)} is larger than {_mb(max_bytes)}.") from None
    except NotAllowed:
        raise MediaError(
            f"{_show(url)} points inside a private network; only public image links can be used."
        ) from None
    except TransportError as exc:
        raise MediaError(f"Could not download the image at {_show(url)}.", detail=type(exc).__name__) from exc


# Content-Types that say nothing of what a file is: its bytes decide (`sniff_image`).
_UNTYPED = frozenset({"application/octet-stream", "binary/octet-stream"})


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
        addresses = [host] if _is_ip(host) else await resolver(host, port)
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
            raise MediaError(f"The image at {_show(url)} is larger than {_mb(max_bytes)}.")
    return bytes(buf)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _show(url: str) -> str:
    """A URL fit for a message: no query string (it may carry a token)."""
    if url.startswith("data:"):
        return "(inline image)"
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc.rsplit("@", 1)[-1], parts.path, "", ""))[:200]


def _mb(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MB"


async def fit_to_limit(data: bytes, content_type: str, max_bytes: int) -> tuple[bytes, str, bool]:
    """Make an image fit under `max_bytes`: re-encode as JPEG, then shrink. Returns (data, type, changed).
    Shrinking a 4096x4096 image takes about a second of CPU: it runs in a worker thread."""
    if len(data) <= max_bytes:
        return data, content_type, False
    return await asyncio.to_thread(_shrink, data, max_bytes)


def _shrink(data: bytes, max_bytes: int) -> tuple[bytes, str, bool]:
    with Image.open(io.BytesIO(data)) as src:
        img = src.convert("RGB")
    for _ in range(12):
        for quality in (90, 80, 70):
            out = io.BytesIO()
            img.save(out, format="JPEG", quality=quality, optimize=True)
            if out.tell() <= max_bytes:
                return out.getvalue(), "image/jpeg", True
        scale = max(0.5, min(0.9, (max_bytes / out.tell()) ** 0.5))
        img = img.resize(
            (max(1, int(img.width * scale)), max(1, int(img.height * scale))), Image.Resampling.LANCZOS
        )
    raise MediaError("The image could not be made small enough for this platform.")


class LinkSigner:
    """Short-lived signed links for GET /media/<id>?exp=<unix>&sig=<hmac>."""

    # Unix times in seconds have 10 digits until the year 2286; a longer `exp` is no link the bot made.
    EXP_DIGITS = 12

    def __init__(self, secret: bytes, base_url: str) -> None:
        self._secret = secret
        self.base_url = base_url.rstrip("/")

    def _sig(self, media_id: str, exp: int) -> str:
        return hmac.new(self._secret, f"{media_id}:{exp}".encode(), hashlib.sha256).hexdigest()

    def link(self, media_id: str, *, now: float, ttl: float) -> str:
        exp = int(now + ttl)
        return f"{self.base_url}/media/{media_id}?exp={exp}&sig={self._sig(media_id, exp)}"

    def verify(self, media_id: str, exp: str, sig: str, *, now: float) -> bool:
        """Whether the link is one this signer made and has not expired. Anything malformed is simply
        not valid: `exp` must be plain ASCII digits of a sane length (str.isdigit also accepts "²",
        which int() refuses), and compare_digest refuses non-ASCII strings, so `sig` is checked too."""
        if not (exp.isascii() and exp.isdigit() and len(exp) <= self.EXP_DIGITS) or int(exp) < now:
            return False
        if not sig.isascii():
            return False
        return hmac.compare_digest(self._sig(media_id, int(exp)), sig)
