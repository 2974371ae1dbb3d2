"""The larger canvases of the toolbox's Zoom Out, Pan and Make Square, built by the bot with Pillow.

The original image is pasted pixel for pixel (never scaled) onto a bigger canvas whose new area is
filled with one neutral mid grey (FILL); the provider gets this canvas as the one reference with an
instruction to fill the grey and leave the rest. A canvas whose long side would pass CANVAS_MAX is
refused rather than scaled, and so is one narrower than the 1:4 to 4:1 that providers take.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from enum import Enum

from PIL import Image, ImageOps

from bot import words
from bot.model.errors import BadInput

# Mid grey: neither dark nor light, so it pulls the provider's fill towards no colour of its own.
FILL = (128, 128, 128)
# The longest side a canvas may have: twice the largest side any provider makes.
CANVAS_MAX = 4096
ASPECT_MIN, ASPECT_MAX = 0.25, 4.0


class Layout(Enum):
    """Where the original sits on its new canvas."""

    ZOOM_15 = "zoom15"
    ZOOM_2 = "zoom2"
    PAN_LEFT = "pan_left"
    PAN_RIGHT = "pan_right"
    PAN_UP = "pan_up"
    PAN_DOWN = "pan_down"
    SQUARE = "square"


@dataclass(frozen=True)
class Canvas:
    png: bytes
    width: int
    height: int
    # Where the original's top-left corner sits on the canvas, and the original's size.
    left: int
    top: int
    inner: tuple[int, int]


def placement(layout: Layout, width: int, height: int) -> tuple[int, int, int, int]:
    """The canvas's (width, height) and where the original's corner goes (left, top) for an
    original of `width` x `height`: centred for zoom and square; for a pan against the edge opposite
    the direction, a third more canvas on the side the view moves to."""
    if layout in (Layout.ZOOM_15, Layout.ZOOM_2):
        factor = 1.5 if layout is Layout.ZOOM_15 else 2.0
        cw, ch = round(width * factor), round(height * factor)
        return cw, ch, (cw - width) // 2, (ch - height) // 2
    if layout is Layout.SQUARE:
        side = max(width, height)
        return side, side, (side - width) // 2, (side - height) // 2
    if layout in (Layout.PAN_LEFT, Layout.PAN_RIGHT):
        extra = round(width / 3)
        return width + extra, height, extra if layout is Layout.PAN_LEFT else 0, 0
    extra = round(height / 3)
    return width, height + extra, 0, extra if layout is Layout.PAN_UP else 0


def build(layout: Layout, image_bytes: bytes) -> Canvas:
    """The canvas for `layout` around the image in `image_bytes` (any format Pillow reads), as PNG.
    Raises BadInput when the canvas would be too large or too narrow for a provider."""
    with Image.open(io.BytesIO(image_bytes)) as opened:
        original = ImageOps.exif_transpose(opened).convert("RGB")
    width, height = original.size
    cw, ch, left, top = placement(layout, width, height)
    if max(cw, ch) > CANVAS_MAX:
        raise BadInput(words.canvas_too_large(cw, ch, CANVAS_MAX))
    if not ASPECT_MIN <= cw / ch <= ASPECT_MAX:
        raise BadInput(words.canvas_too_narrow(cw, ch))
    canvas = Image.new("RGB", (cw, ch), FILL)
    canvas.paste(original, (left, top))
    out = io.BytesIO()
    canvas.save(out, "PNG")
    return Canvas(out.getvalue(), cw, ch, left, top, (width, height))
