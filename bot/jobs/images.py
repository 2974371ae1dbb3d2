"""Images the bot holds: the checks every image passes (type, size, a decoding bomb), fitting one to a
platform's limit, data URIs, the results held in memory at once, and signed links to stored images.

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
import threading
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from bot.model.errors import MediaError

ACCEPTED_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp", "GIF": "image/gif"}


# The most pixels an image may claim (40 megapixels, e.g. 8000x5000). Checked from the header before
# any decoding, so a small file that claims to be huge (a decompression bomb) is refused cheaply.
# Pillow's own bomb check (Image.MAX_IMAGE_PIXELS) stays on as a second line.
MAX_PIXELS = 40_000_000


# How many images are decoded at once, across the bot's threads (bounds the memory decoding takes).
DECODES = threading.BoundedSemaphore(2)


class ResultGate:
    """At most `slots` job results kept and posted at once, across the bot (HIDREAM_MAX_UPLOADS): a
    result is kept and posted under one of these slots, taken once its download is done (a slow file
    host must hold only its own job, never a slot others wait for; the runner's `hand_over` carries
    the slot from the keeping to the post; a delivery resumed later reads the images back under a slot
    of its own). Results are streamed (a spooled file, never whole in memory), so a slot costs a few
    buffers, not an image: the bound is on uploads at once, set by the network, not by memory. The
    places that still need whole bytes (a PostgreSQL row, shrinking for a platform's limit) hold at
    most one image per slot. `held`, `most_held` and `waiting` (for a slot) are there to be read."""

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
    """One slot of a `ResultGate`, held until `release`, which also deletes the spooled files put in
    its care (`spooled`: copies of results made for their post, not the store's own files)."""

    def __init__(self, gate: ResultGate) -> None:
        self._gate: ResultGate | None = gate
        self.spooled: list[Path] = []

    def release(self) -> None:
        for path in self.spooled:
            path.unlink(missing_ok=True)
        self.spooled = []
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
        raise MediaError(f"{name} is {mb(len(data))}; the largest image accepted is {mb(max_bytes)}.")
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


def sniff_file(path: Path, *, max_bytes: int, name: str = "The file") -> SniffedImage:
    """`sniff_image` with `decode=False` for an image in a file: its type and size from its header,
    the file never read whole (`data` is empty). Blocking: run it in a thread."""
    size = path.stat().st_size
    if size > max_bytes:
        raise MediaError(f"{name} is {mb(size)}; the largest image accepted is {mb(max_bytes)}.")
    try:
        img = Image.open(path)
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
        raise MediaError(f"{name} is {width}x{height} pixels; the largest image accepted is {_megapixels()}.")
    return SniffedImage(b"", ACCEPTED_TYPES[fmt], width, height)


async def check_image(
    data: bytes, *, max_bytes: int, name: str = "The file", decode: bool = True
) -> SniffedImage:
    """`sniff_image` in a worker thread (a header alone is read at once). The size is checked before
    the thread is even started."""
    if len(data) > max_bytes:
        raise MediaError(f"{name} is {mb(len(data))}; the largest image accepted is {mb(max_bytes)}.")
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
        return self.base_url + self.path(media_id, now=now, ttl=ttl)

    def path(self, media_id: str, *, now: float, ttl: float) -> str:
        """The link without the server's address: for pages served by this same server."""
        exp = int(now + ttl)
        return f"/media/{media_id}?exp={exp}&sig={self._sig(media_id, exp)}"

    def seal(self, name: str, *, now: float, ttl: float) -> tuple[int, str]:
        """An expiry and a signature for `name`, made as a media link's are: for a link to something
        else (the region editor's), whose `name` starts with a word of its own (`edit:`), so that no
        media link's signature is ever one of its, nor the other way round."""
        exp = int(now + ttl)
        return exp, self._sig(name, exp)

    def check(self, name: str, exp: str, sig: str, *, now: float) -> str:
        """One of "ok", "expired" (signed here, but too late) or "invalid" (anything else)."""
        if not (exp.isascii() and exp.isdigit() and len(exp) <= self.EXP_DIGITS) or not sig.isascii():
            return "invalid"
        if not hmac.compare_digest(self._sig(name, int(exp)), sig):
            return "invalid"
        return "expired" if int(exp) < now else "ok"

    def verify(self, media_id: str, exp: str, sig: str, *, now: float) -> bool:
        """Whether the link is one this signer made and has not expired. Anything malformed is simply
        not valid: `exp` must be plain ASCII digits of a sane length (str.isdigit also accepts "²",
        which int() refuses), and compare_digest refuses non-ASCII strings, so `sig` is checked too."""
        if not (exp.isascii() and exp.isdigit() and len(exp) <= self.EXP_DIGITS) or int(exp) < now:
            return False
        if not sig.isascii():
            return False
        return hmac.compare_digest(self._sig(media_id, int(exp)), sig)


def mb(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MB"
