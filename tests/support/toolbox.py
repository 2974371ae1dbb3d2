"""Shared by the toolbox's tests: where each tool should put the original on its canvas, worked out
here apart from bot/jobs/canvas.py, and the checks of what the provider received and made."""

from __future__ import annotations

import io

from PIL import Image

from bot.model.jobs import Job
from bot.usecases.actions import Kind

GREY = (128, 128, 128)
CANVAS_KINDS = (
    Kind.ZOOM_15,
    Kind.ZOOM_2,
    Kind.PAN_LEFT,
    Kind.PAN_RIGHT,
    Kind.PAN_UP,
    Kind.PAN_DOWN,
    Kind.SQUARE,
)
# The custom ids' actions of the toolbox's buttons after Edit, in their order under a result (Edit
# region gives a link to its editor page; the others make a job at once).
TOOL_IDS = ("region", "upscale", "zoom15", "zoom2", "square", "pan_left", "pan_right", "pan_up", "pan_down")
# The console's command for each.
CONSOLE = {
    Kind.ZOOM_15: "/zoom 1.5",
    Kind.ZOOM_2: "/zoom 2",
    Kind.PAN_LEFT: "/pan left",
    Kind.PAN_RIGHT: "/pan right",
    Kind.PAN_UP: "/pan up",
    Kind.PAN_DOWN: "/pan down",
    Kind.SQUARE: "/square",
}


def expected_layout(kind: Kind, w: int, h: int) -> tuple[int, int, int, int]:
    """(canvas width, canvas height, left, top) of the original's place, as docs/toolbox.md says."""
    if kind is Kind.ZOOM_15:
        return round(1.5 * w), round(1.5 * h), (round(1.5 * w) - w) // 2, (round(1.5 * h) - h) // 2
    if kind is Kind.ZOOM_2:
        return 2 * w, 2 * h, w // 2, h // 2
    if kind is Kind.SQUARE:
        side = max(w, h)
        return side, side, (side - w) // 2, (side - h) // 2
    third_w, third_h = round(w / 3), round(h / 3)
    return {
        Kind.PAN_LEFT: (w + third_w, h, third_w, 0),  # more scene on the left: the original on the right
        Kind.PAN_RIGHT: (w + third_w, h, 0, 0),
        Kind.PAN_UP: (w, h + third_h, 0, third_h),
        Kind.PAN_DOWN: (w, h + third_h, 0, 0),
    }[kind]


def rgb(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data)).convert("RGB")


def check_canvas(kind: Kind, original: bytes, canvas: bytes) -> tuple[int, int]:
    """The canvas is the expected size, the original's pixels sit unchanged where they belong and
    everything else is the neutral grey; its size."""
    source, got = rgb(original), rgb(canvas)
    cw, ch, left, top = expected_layout(kind, *source.size)
    assert got.size == (cw, ch), (kind, got.size, (cw, ch))
    inner = got.crop((left, top, left + source.width, top + source.height))
    assert inner.tobytes() == source.tobytes(), f"{kind}: the original's pixels moved or changed"
    expected = Image.new("RGB", (cw, ch), GREY)
    expected.paste(source, (left, top))
    assert got.tobytes() == expected.tobytes(), f"{kind}: the new area is not the neutral grey"
    return cw, ch


def check_follows(job: Job, result: bytes, shape: tuple[int, int]) -> None:
    """A tool's job asked for the shape `shape` and its image has it (within rounding)."""
    assert job.request.keep_aspect and job.request.source == shape, job.request
    width, height = rgb(result).size
    assert abs(width / height - shape[0] / shape[1]) < 0.03 * shape[0] / shape[1], ((width, height), shape)
