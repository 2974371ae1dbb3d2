"""Shared by the region editor's tests: the link in an answer, the form sent as a browser sends it, and
the check of a blended result against its original."""

from __future__ import annotations

import io
import re
from urllib.parse import urlsplit

import httpx
from PIL import Image, ImageChops

LINK_RE = re.compile(r"https?://\S+/edit/[A-Za-z0-9_-]+\.\d+\.[0-9a-f]+")


def link_in(text: str) -> str:
    found = LINK_RE.findall(text)
    assert found, text
    return str(found[-1])


def token_of(link: str) -> str:
    return urlsplit(link).path.removeprefix("/edit/")


async def send_form(link: str, area: tuple[int, int, int, int], text: str) -> httpx.Response:
    """The editor's form as a browser posts it: the link's own pass, the rectangle (left, top, right,
    bottom) as x, y, w, h, and the instruction."""
    left, top, right, bottom = area
    fields = {
        "token": token_of(link),
        "x": str(left),
        "y": str(top),
        "w": str(right - left),
        "h": str(bottom - top),
        "text": text,
    }
    async with httpx.AsyncClient(timeout=30) as http:
        return await http.post(link, data=fields)


def rgb(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data)).convert("RGB")


def check_blended(original: bytes, result: bytes, area: tuple[int, int, int, int]) -> float:
    """Every pixel outside `area` is the original's, exactly; the share of the area's pixels that
    changed (returned) is checked by the caller."""
    before, after = rgb(original), rgb(result)
    assert after.size == before.size, (after.size, before.size)
    hole = Image.new("RGB", (area[2] - area[0], area[3] - area[1]))
    outside_before, outside_after = before.copy(), after.copy()
    outside_before.paste(hole, area[:2])
    outside_after.paste(hole, area[:2])
    assert outside_after.tobytes() == outside_before.tobytes(), "a pixel outside the region changed"
    diff = ImageChops.difference(before.crop(area), after.crop(area)).convert("L")
    # The sandbox's edit posterises and tints its reference: every pixel moves, some only a little.
    changed = sum(count for value, count in enumerate(diff.histogram()) if value > 0)
    return changed / (diff.width * diff.height)
