"""The region edit's pictures and links, on their own: the crop is the rectangle plus 15% on each side,
clamped to the image; the blend keeps every pixel outside the rectangle exactly, puts the edit in its
middle and fades it in along its inner edges (not along the image's border); a rectangle outside the
image, too small or too thin is refused in our words; a link opens only as signed, until it expires,
and a media link's signature is no region link's."""

from __future__ import annotations

import io
import random
from typing import Any, cast

import pytest
from PIL import Image

from bot import words
from bot.jobs.images import LinkSigner
from bot.jobs.regions import blend, check_area, crop_box, cut, mask
from bot.model.errors import BadInput
from bot.model.requests import Region
from bot.usecases.region import LinkRefused, editor_path, read_area, read_link
from tests.support.jobs import make_job
from tests.support.region import check_blended, rgb


def noisy(width: int, height: int, seed: int = 3) -> bytes:
    """A picture in which every pixel differs from its neighbours: a moved or blurred pixel shows."""
    rng = random.Random(seed)
    image = Image.frombytes(
        "RGB", (width, height), bytes(rng.randrange(256) for _ in range(width * height * 3))
    )
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def px(image: Image.Image, xy: tuple[int, int]) -> Any:
    return cast(Any, image.getpixel(xy))


def flat(width: int, height: int, colour: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, "PNG")
    return out.getvalue()


def test_the_crop_is_the_rectangle_plus_its_margin_clamped_to_the_image() -> None:
    assert crop_box((100, 100, 300, 200), (1000, 800)) == (70, 85, 330, 215)
    assert crop_box((0, 10, 100, 50), (120, 60)) == (0, 4, 115, 56)
    assert crop_box((900, 700, 1000, 800), (1000, 800)) == (885, 685, 1000, 800)


def test_the_blend_keeps_every_pixel_outside_the_rectangle() -> None:
    original = noisy(320, 200)
    area = (100, 60, 220, 140)
    box = crop_box(area, (320, 200))
    # The provider's answer comes back at another size (its own, in the crop's shape): resized to the box.
    edited = flat(1024, 680, (255, 0, 0))
    data, width, height = blend(original, edited, Region(source="m", crop=box, area=area))
    assert (width, height) == (320, 200) and Image.open(io.BytesIO(data)).format == "PNG"
    assert check_blended(original, data, area) > 0.95
    result = rgb(data)
    assert px(result, (160, 100)) == (255, 0, 0)  # the middle: the edit itself
    # Along the inner edge: between the original and the edit, fading in.
    edge = [px(result, (100 + i, 100))[0] for i in range(12)]
    assert edge != [255] * 12 and edge[-1] == 255, edge


def test_no_fade_along_the_images_own_border() -> None:
    area = (0, 0, 64, 64)
    m = mask(crop_box(area, (200, 100)), area, (200, 100))
    assert px(m, (0, 0)) == 255 and px(m, (0, 30)) == 255  # the image's corner and left edge
    assert px(m, (63, 30)) < 255 and px(m, (64, 30)) == 0  # the rectangle's right edge fades


def test_the_crop_sent_is_the_originals_pixels() -> None:
    original = noisy(300, 200)
    box = (10, 20, 110, 90)
    assert rgb(cut(original, box)).tobytes() == rgb(original).crop(box).tobytes()


@pytest.mark.parametrize(
    ("area", "message"),
    [
        ((-1, 0, 100, 100), words.region_outside(400, 300)),
        ((300, 200, 401, 300), words.region_outside(400, 300)),
        ((10, 10, 20, 100), words.region_too_small(16)),
        ((0, 0, 400, 20), words.REGION_TOO_NARROW),
    ],
)
def test_a_rectangle_that_cannot_be_edited_is_refused(area: tuple[int, int, int, int], message: str) -> None:
    with pytest.raises(BadInput) as refused:
        check_area(area, (400, 300))
    assert refused.value.user_message == message


def test_the_forms_rectangle() -> None:
    assert read_area({"x": "5", "y": "6", "w": "50", "h": "40"}) == (5, 6, 55, 46)
    for bad in ({}, {"x": "a", "y": "1", "w": "2", "h": "3"}, {"x": "1", "y": "1", "w": "0", "h": "3"}):
        with pytest.raises(BadInput) as refused:
            read_area(bad)
        assert refused.value.user_message == words.REGION_NO_AREA


def test_a_link_opens_as_signed_until_it_expires() -> None:
    signer = LinkSigner(b"k" * 32, "http://bot.example")
    job = make_job(job_id="a" * 32)
    token = editor_path(signer, job, 0, now=1000.0).removeprefix("/edit/")
    opened = read_link(signer, token, now=1000.0 + 29 * 60)
    assert (opened.job_id, opened.index, opened.surface, opened.user_id) == (
        job.id,
        0,
        job.surface,
        job.user_id,
    )
    assert opened.actor.tenant == job.tenant

    def refused(text: str, now: float = 1000.0) -> tuple[str, int]:
        with pytest.raises(LinkRefused) as caught:
            read_link(signer, text, now=now)
        return caught.value.user_message, caught.value.status

    assert refused(token, now=1000.0 + 31 * 60) == (words.REGION_LINK_EXPIRED, 410)
    fields, exp, sig = token.split(".")
    other = editor_path(signer, make_job(job_id="b" * 32), 0, now=1000.0).removeprefix("/edit/")
    for tampered in (
        f"{other.split('.')[0]}.{exp}.{sig}",  # another job's fields under this signature
        f"{fields}.{int(exp) + 3600}.{sig}",  # a later expiry
        f"{fields}.{exp}.{'0' * len(sig)}",
        f"{fields}.{exp}",
        "",
    ):
        assert refused(tampered) == (words.REGION_LINK_INVALID, 403), tampered
    # Another key (another bot's), and a media link's signature, open nothing.
    assert refused(
        token.replace(sig, LinkSigner(b"x" * 32, "").seal("edit:" + fields, now=1000.0, ttl=1800)[1])
    ) == (
        words.REGION_LINK_INVALID,
        403,
    )
    media = signer.link(fields, now=1000.0, ttl=1800)
    media_sig = media.rsplit("sig=", 1)[1]
    assert refused(f"{fields}.{exp}.{media_sig}") == (words.REGION_LINK_INVALID, 403)
