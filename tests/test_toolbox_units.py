"""The toolbox's pure parts: the canvases (bot/jobs/canvas.py) and their refusals, `--upscale` as the
parser reads it, and the sizes a request asks for when it follows its image or is upscaled."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from bot.jobs.canvas import CANVAS_MAX, Layout, build
from bot.model.errors import BadInput
from bot.model.requests import ImageRequest, parse_command
from bot.usecases.actions import Kind
from bot.usecases.toolbox import LAYOUTS
from tests.support.toolbox import CANVAS_KINDS, check_canvas


def png(width: int, height: int) -> bytes:
    img = Image.new("RGB", (width, height))
    img.putdata([((x * 7) % 256, (y * 5) % 256, (x * y) % 256) for y in range(height) for x in range(width)])
    out = io.BytesIO()
    img.save(out, "PNG")
    return out.getvalue()


@pytest.mark.parametrize("kind", CANVAS_KINDS)
@pytest.mark.parametrize("size", [(300, 200), (201, 333)])
def test_each_canvas_keeps_the_original_where_it_belongs(kind: Kind, size: tuple[int, int]) -> None:
    original = png(*size)
    canvas = build(LAYOUTS[kind], original)
    assert check_canvas(kind, original, canvas.png) == (canvas.width, canvas.height)
    assert canvas.inner == size


def test_too_large_and_too_narrow_canvases_are_refused() -> None:
    with pytest.raises(BadInput) as caught:
        build(Layout.ZOOM_2, png(2100, 300))
    assert f"the longest side it may have is {CANVAS_MAX}" in caught.value.user_message
    with pytest.raises(BadInput) as caught:
        build(Layout.PAN_RIGHT, png(800, 200))  # 4:1 made wider
    assert "narrower than the 1:4 to 4:1" in caught.value.user_message
    with pytest.raises(BadInput):
        build(Layout.PAN_DOWN, png(200, 800))
    assert build(Layout.SQUARE, png(800, 200)).width == 800  # a square is always a shape providers make


def test_upscale_flag() -> None:
    request = parse_command("a lighthouse --ar 9:16 --upscale").request
    assert request.largest and request.model == "full" and request.dimensions() == (1152, 2048)
    assert parse_command("a lighthouse --upscale").request.dimensions() == (2048, 2048)
    with pytest.raises(BadInput) as caught:
        parse_command("a lighthouse --upscale --model dev")
    assert "`--upscale`" in caught.value.user_message


def test_sizes_of_a_request_that_follows_its_image() -> None:
    follows = ImageRequest(prompt="x", keep_aspect=True, source=(1920, 1080))
    assert follows.follows_source and follows.sized and follows.dimensions() == (1360, 768)
    assert follows.with_changes(largest=True).dimensions() == (2048, 1152)
    # A size named on the edit wins over the image's shape.
    named = follows.with_changes(aspect=(1, 1))
    assert not named.follows_source and named.dimensions() == (1024, 1024)
    # Not yet known (before the image is fetched): the default size.
    assert ImageRequest(prompt="x", keep_aspect=True).dimensions() == (1024, 1024)
