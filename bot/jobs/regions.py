"""The pictures of a region edit (the region editor, bot/usecases/region.py), with Pillow.

The person draws a rectangle (the area) on one of their results. The bot sends the provider the area
plus a margin (MARGIN of the area's width and height on each side, clamped to the image: the crop),
so the model sees what surrounds the change, at the crop's own shape. When the edited crop comes back
it is resized to the crop box and blended into the original through a mask that is fully the edit in
the middle of the area and fades out over its last FEATHER_SHARE towards each edge: every pixel outside
the area drawn is the original's, exactly. An edge of the area that lies on the image's border is not
faded (there is no seam to hide). The margin is only the model's context; it is never pasted back.

`finish` is the hook in bot/jobs/steps.py: a region job's results are blended back as soon as they are
downloaded, before content credentials are signed and the results kept. CPU work runs in a thread.
"""

from __future__ import annotations

import asyncio
import io
import logging

from PIL import Image, ImageChops, ImageOps

from bot import words
from bot.model.errors import BadInput
from bot.model.jobs import Job
from bot.model.requests import Region
from storage.posts import NewMedia
from storage.store import Store

log = logging.getLogger(__name__)

Box = tuple[int, int, int, int]
# The context sent around the area, as a share of its width (left and right) and height (top and bottom).
MARGIN = 0.15
# The smallest area, in pixels on each side: less is too little for a model to change anything in.
AREA_MIN = 16
# The shapes providers make: a crop narrower than 1:4 or wider than 4:1 is refused.
ASPECT_MIN, ASPECT_MAX = 0.25, 4.0
# The fade along the area's inner edge: this share of its shorter side, 1 to FEATHER_MAX pixels.
FEATHER_SHARE = 0.1
FEATHER_MAX = 48


def crop_box(area: Box, size: tuple[int, int], margin: float = MARGIN) -> Box:
    """The area plus `margin` of its width and height on each side, clamped to an image of `size`."""
    left, top, right, bottom = area
    mx, my = round((right - left) * margin), round((bottom - top) * margin)
    width, height = size
    return max(0, left - mx), max(0, top - my), min(width, right + mx), min(height, bottom + my)


def check_area(area: Box, size: tuple[int, int]) -> Box:
    """The crop box of `area` on an image of `size`. Raises BadInput (in our words) for an area outside
    the image, one smaller than AREA_MIN on a side, or a crop of a shape no provider makes."""
    left, top, right, bottom = area
    width, height = size
    if not (0 <= left < right <= width and 0 <= top < bottom <= height):
        raise BadInput(words.region_outside(width, height))
    if right - left < AREA_MIN or bottom - top < AREA_MIN:
        raise BadInput(words.region_too_small(AREA_MIN))
    box = crop_box(area, size)
    if not ASPECT_MIN <= (box[2] - box[0]) / (box[3] - box[1]) <= ASPECT_MAX:
        raise BadInput(words.REGION_TOO_NARROW)
    return box


def _open(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as opened:
        image = ImageOps.exif_transpose(opened)
        alpha = image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info)
        return image.convert("RGBA" if alpha else "RGB")


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def cut(image_bytes: bytes, box: Box) -> bytes:
    """The crop `box` of the image in `image_bytes`, as PNG (what the provider is sent)."""
    return _png(_open(image_bytes).crop(box))


def _profile(length: int, start: int, end: int, fade_start: bool, fade_end: bool, feather: int) -> list[int]:
    """One row (or column) of the mask: 0 outside [start, end), 255 inside, fading over `feather`
    pixels towards each end that fades."""
    values = []
    for i in range(length):
        if not start <= i < end:
            values.append(0)
            continue
        near = min(i - start if fade_start else feather, end - 1 - i if fade_end else feather)
        values.append(min(255, round(255 * (near + 1) / (feather + 1))))
    return values


def mask(box: Box, area: Box, size: tuple[int, int]) -> Image.Image:
    """The blend's mask over the crop `box`: the area's pixels, faded along its inner edges except
    those on the image's border (of `size`); 0 everywhere outside the area."""
    left, top, right, bottom = box
    a_left, a_top, a_right, a_bottom = area
    feather = max(1, min(FEATHER_MAX, round(min(a_right - a_left, a_bottom - a_top) * FEATHER_SHARE)))
    cw, ch = right - left, bottom - top
    across = _profile(cw, a_left - left, a_right - left, a_left > 0, a_right < size[0], feather)
    down = _profile(ch, a_top - top, a_bottom - top, a_top > 0, a_bottom < size[1], feather)
    row, column = Image.new("L", (cw, 1)), Image.new("L", (1, ch))
    row.putdata(across)
    column.putdata(down)
    nearest = Image.Resampling.NEAREST
    return ImageChops.darker(row.resize((cw, ch), nearest), column.resize((cw, ch), nearest))


def blend(original_bytes: bytes, edited_bytes: bytes, region: Region) -> tuple[bytes, int, int]:
    """The original with the edited crop blended into the area (PNG), and its size. Raises ValueError
    when the region does not fit the original, OSError when either is no image."""
    original = _open(original_bytes)
    left, top, right, bottom = region.crop
    if not (0 <= left < right <= original.width and 0 <= top < bottom <= original.height):
        raise ValueError(f"crop {region.crop} outside an image of {original.size}")
    edited = _open(edited_bytes).convert(original.mode)
    edited = edited.resize((right - left, bottom - top), Image.Resampling.LANCZOS)
    out = original.copy()
    out.paste(edited, (left, top), mask(region.crop, region.area, original.size))
    return _png(out), out.width, out.height


async def finish(store: Store, job: Job, results: list[NewMedia]) -> list[NewMedia] | str:
    """A region job's results blended back into the image it edits; what its requester is told when
    that cannot be (the image is no longer held, or a result is no image)."""
    region = job.request.region
    if region is None:
        return results
    held = await store.media(region.source)
    if held is None:
        return words.REGION_SOURCE_GONE
    blended = []
    for result in results:
        try:
            # The crop is small and the whole image is drawn anew: held whole here, like the toolbox.
            edited = result.data if result.file is None else await asyncio.to_thread(result.file.read_bytes)
            data, width, height = await asyncio.to_thread(blend, held.data, edited, region)
            if result.file is not None:  # streamed: the blended image takes the download's place
                await asyncio.to_thread(result.file.write_bytes, data)
        except (OSError, ValueError) as exc:
            log.warning("job %s: the edited region could not be blended back: %s", job.id, exc)
            return words.REGION_BLEND_FAILED
        kept = b"" if result.file is not None else data
        blended.append(NewMedia(kept, "image/png", width, height, result.nsfw, file=result.file))
    return blended
