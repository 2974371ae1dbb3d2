"""Pillow drawing for the sandbox provider: placeholder pictures that nobody takes for HiDream output.

Everything here is a pure function of its inputs. The randomness comes from sha256 of the prompt, seed,
size, model, the references' bytes and the image's index, so the same request always gives the same
bytes (for one Pillow build), which lets the service render on demand instead of storing results.
"""

from __future__ import annotations

import colorsys
import hashlib
import io
import json
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image, ImageChops, ImageDraw, ImageFont, ImageOps
from PIL.PngImagePlugin import PngInfo

MARK = "SANDBOX"
SIDE_MIN, SIDE_MAX = 256, 4096
# Shapes are drawn on a small canvas and scaled up: cheap at 4096 px and soft-edged for free.
_SKETCH_SIDE = 384
_CAPTION_CHARS = 48
_PIL_FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}
RGB = tuple[int, int, int]
# The grey of a canvas's new area (bot/jobs/canvas.py's FILL), and how far scaling may move it.
GREY, GREY_TOLERANCE = 128, 2
# The share of the picture that must be that grey before it counts as an area to fill.
GREY_AREA = 0.05


@dataclass(frozen=True)
class ArtSpec:
    prompt: str
    seed: int
    width: int
    height: int
    model: str
    output_format: str
    keep_original_aspect: bool = False


def decode_image(data: bytes) -> Image.Image:
    """Open image bytes fully (raises OSError / ValueError for anything that is no image)."""
    img = Image.open(io.BytesIO(data))
    img.load()
    return ImageOps.exif_transpose(img).convert("RGB")


def output_size(spec: ArtSpec, refs: Sequence[Image.Image]) -> tuple[int, int]:
    """The requested size, or with keep_original_aspect the reference's ratio at about the same area."""
    if not (spec.keep_original_aspect and len(refs) == 1):
        return spec.width, spec.height
    ratio = refs[0].width / refs[0].height
    area = spec.width * spec.height
    width = math.sqrt(area * ratio)
    return _side(width), _side(width / ratio)


def _side(value: float) -> int:
    # Multiples of 16, like the real providers' sizes.
    return max(SIDE_MIN, min(SIDE_MAX, round(value / 16) * 16))


def render(spec: ArtSpec, ref_bytes: Sequence[bytes], index: int) -> bytes:
    """One finished image, encoded in spec.output_format."""
    refs = [decode_image(b) for b in ref_bytes]
    size = output_size(spec, refs)
    rng = random.Random(_digest(spec, ref_bytes, index))
    palette = _palette(rng)
    if refs:
        img = _transform(_continue(_compose(refs, size), palette, rng), palette, rng)
    else:
        img = _artwork(size, palette, rng, shapes=6 if spec.model == "dev" else 9)
    _caption(img, spec.prompt)
    _mark(img)
    return encode(img, spec.output_format)


def _digest(spec: ArtSpec, ref_bytes: Sequence[bytes], index: int) -> int:
    parts = [
        spec.prompt,
        spec.seed,
        spec.width,
        spec.height,
        spec.model,
        spec.keep_original_aspect,
        [hashlib.sha256(b).hexdigest() for b in ref_bytes],
        index,
    ]
    return int.from_bytes(hashlib.sha256(json.dumps(parts).encode()).digest(), "big")


def _palette(rng: random.Random) -> list[RGB]:
    """Five soft, related colours around a random hue."""
    hue = rng.random()
    colours = []
    for step in range(5):
        h = (hue + step * rng.uniform(0.06, 0.18)) % 1.0
        s = rng.uniform(0.3, 0.6)
        v = rng.uniform(0.75, 0.97)
        r, g, b = colorsys.hsv_to_rgb(h, s, v)
        colours.append((round(r * 255), round(g * 255), round(b * 255)))
    return colours


def _gradient(size: tuple[int, int], corners: Sequence[RGB]) -> Image.Image:
    """A four-corner blend, built at 256 px from Pillow's ramps and scaled to size."""
    ramp = Image.linear_gradient("L")
    across = ramp.rotate(90)  # left-to-right becomes the horizontal ramp

    def solid(c: RGB) -> Image.Image:
        return Image.new("RGB", (256, 256), c)

    top = Image.composite(solid(corners[0]), solid(corners[1]), across)
    bottom = Image.composite(solid(corners[2]), solid(corners[3]), across)
    return Image.composite(bottom, top, ramp).resize(size, Image.Resampling.BICUBIC)


def _artwork(
    size: tuple[int, int], palette: list[RGB], rng: random.Random, *, shapes: int, deep: bool = False
) -> Image.Image:
    """Shapes over a four-corner gradient. `deep` darkens two opposite corners, so any strip of the
    picture, however thin and in whichever direction, runs from light to dark (a filled border is
    then never one flat colour after `_transform`'s posterising)."""
    scale = _SKETCH_SIDE / max(size)
    sketch_size = (max(8, round(size[0] * scale)), max(8, round(size[1] * scale)))
    corners = rng.sample(palette, 4)
    if deep:
        corners = [c if i in (0, 3) else _dim(c) for i, c in enumerate(corners)]
    sketch = _gradient(sketch_size, corners).convert("RGBA")
    for _ in range(shapes):
        layer = Image.new("RGBA", sketch_size, (0, 0, 0, 0))
        _shape(ImageDraw.Draw(layer), sketch_size, rng.choice(palette), rng)
        sketch = Image.alpha_composite(sketch, layer)
    return sketch.convert("RGB").resize(size, Image.Resampling.BICUBIC)


def _dim(colour: RGB) -> RGB:
    r, g, b = colour
    return round(r * 0.3), round(g * 0.3), round(b * 0.3)


def _shape(draw: ImageDraw.ImageDraw, size: tuple[int, int], colour: RGB, rng: random.Random) -> None:
    w, h = size
    cx, cy = rng.uniform(0, w), rng.uniform(0, h)
    radius = rng.uniform(0.08, 0.3) * min(w, h)
    shade = tuple(max(0, min(255, round(c * rng.uniform(0.7, 1.15)))) for c in colour)
    fill = (*shade, rng.randint(90, 180))
    box = (cx - radius, cy - radius, cx + radius, cy + radius)
    kind = rng.randrange(3)
    if kind == 0:
        draw.ellipse(box, fill=fill)
    elif kind == 1:
        draw.rounded_rectangle(box, radius=radius * 0.3, fill=fill)
    else:
        turn = rng.uniform(0, 2 * math.pi)
        points = [
            (
                cx + radius * math.cos(turn + k * 2 * math.pi / 3),
                cy + radius * math.sin(turn + k * 2 * math.pi / 3),
            )
            for k in range(3)
        ]
        draw.polygon(points, fill=fill)


def _compose(refs: Sequence[Image.Image], size: tuple[int, int]) -> Image.Image:
    """One reference fitted to size, or several side by side (stacked when the output is tall)."""
    if len(refs) == 1:
        return ImageOps.fit(refs[0], size, Image.Resampling.LANCZOS)
    canvas = Image.new("RGB", size)
    k = len(refs)
    wide = size[0] >= size[1]
    for i, ref in enumerate(refs):
        if wide:
            left, right = size[0] * i // k, size[0] * (i + 1) // k
            box = (left, 0, right, size[1])
        else:
            top, bottom = size[1] * i // k, size[1] * (i + 1) // k
            box = (0, top, size[0], bottom)
        panel = ImageOps.fit(ref, (box[2] - box[0], box[3] - box[1]), Image.Resampling.LANCZOS)
        canvas.paste(panel, box[:2])
    return canvas


def _continue(img: Image.Image, palette: list[RGB], rng: random.Random) -> Image.Image:
    """The flat mid grey the bot's Zoom Out, Pan and Make Square leave around a picture
    (bot/jobs/canvas.py), painted over with sandbox shapes: the stand-in for a scene continued."""
    bands = [band.point(lambda v: 255 if abs(v - GREY) <= GREY_TOLERANCE else 0) for band in img.split()]
    mask = ImageChops.multiply(ImageChops.multiply(bands[0], bands[1]), bands[2])
    if mask.histogram()[255] < GREY_AREA * img.width * img.height:
        return img  # a few grey pixels of a picture, no empty area
    filled = img.copy()
    filled.paste(_artwork(img.size, palette, rng, shapes=6, deep=True), mask=mask)
    return filled


def _transform(img: Image.Image, palette: list[RGB], rng: random.Random) -> Image.Image:
    """Posterise and tint: obviously processed, still obviously the same picture."""
    poster = ImageOps.posterize(img, 3)
    tint = Image.new("RGB", img.size, rng.choice(palette))
    return Image.blend(poster, tint, rng.uniform(0.3, 0.4))


def _font(px: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=px)
    except (ImportError, OSError):  # Pillow built without FreeType: the small bitmap font still works
        return ImageFont.load_default()


def _label(img: Image.Image, text: str, px: int, *, corner: str, fill: RGB, ink: RGB, alpha: float) -> None:
    """Text on a translucent plate in a corner ("tr" top-right, "bl" bottom-left)."""
    font = _font(px)
    draw = ImageDraw.Draw(img)
    left, top, right, bottom = (round(v) for v in draw.textbbox((0, 0), text, font=font))
    pad, margin = max(3, px // 3), max(4, px // 2)
    plate_w = min(img.width - 2 * margin, right - left + 2 * pad)
    plate_h = bottom - top + 2 * pad
    x = img.width - margin - plate_w if corner == "tr" else margin
    y = margin if corner == "tr" else img.height - margin - plate_h
    box = (x, y, x + plate_w, y + plate_h)
    region = img.crop(box)
    img.paste(Image.blend(region, Image.new("RGB", region.size, fill), alpha), box[:2])
    draw.text((x + pad - left, y + pad - top), text, font=font, fill=ink)


def _caption(img: Image.Image, prompt: str) -> None:
    words = " ".join(prompt.split())
    if len(words) > _CAPTION_CHARS:
        words = words[: _CAPTION_CHARS - 1].rsplit(" ", 1)[0] + "…"
    px = max(10, min(img.size) // 32)
    _label(img, words, px, corner="bl", fill=(20, 20, 28), ink=(245, 245, 245), alpha=0.55)


def _mark(img: Image.Image) -> None:
    px = max(11, min(img.size) // 24)
    _label(img, MARK, px, corner="tr", fill=(255, 196, 0), ink=(30, 30, 30), alpha=0.9)


def encode(img: Image.Image, output_format: str) -> bytes:
    buf = io.BytesIO()
    fmt = _PIL_FORMATS[output_format]
    if fmt == "PNG":
        info = PngInfo()
        info.add_text("Software", "hidream-bot sandbox (placeholder, not HiDream output)")
        img.save(buf, fmt, pnginfo=info)
    elif fmt == "JPEG":
        img.save(buf, fmt, quality=90)
    else:
        img.save(buf, fmt, quality=88, method=4)
    return buf.getvalue()
