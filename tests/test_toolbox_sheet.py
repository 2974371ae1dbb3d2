"""The sandbox shows the toolbox working, with no account (issue 21): each tool run at the console
against the sandbox, its input (the canvas the provider was sent, or the image itself) beside its
output. The sandbox draws the reference under its mark, so the original is recognisable in each output,
and it paints the canvas's grey, so the new area is filled.

The contact sheet is written to the test's folder; with HIDREAM_WRITE_DOCS=1 (`make docs-toolbox`) it
is written to docs/toolbox.png too, the picture the docs show."""

from __future__ import annotations

import io
import os
from pathlib import Path

from PIL import Image, ImageChops, ImageDraw, ImageFont, ImageOps

from bot import words
from bot.usecases.actions import Kind
from bot.usecases.toolbox import label
from tests.support.console import Console
from tests.support.harness import BotHarness, sandbox_of
from tests.support.region import check_blended, link_in, send_form
from tests.support.toolbox import CANVAS_KINDS, CONSOLE, GREY, expected_layout, rgb

DOCS = Path(__file__).resolve().parent.parent / "docs" / "toolbox.png"
# The rectangle the Edit region row draws on the 1360x768 original (left, top, right, bottom).
REGION = (480, 200, 880, 500)
THUMB = (360, 220)
LABEL_W = 170
HEADER = 40
# Pillow's default font has no arrows: the sheet spells the Pans' directions out.
ARROWS = {"⬅": "left", "➡": "right", "⬆": "up", "⬇": "down"}


def name_of(kind: Kind) -> str:
    text = label(kind)
    for arrow, word in ARROWS.items():
        text = text.replace(arrow, word)
    return text


def correlation(a: Image.Image, b: Image.Image) -> float:
    """Pearson correlation of two pictures' grey levels at 64x64."""
    xs = list(a.convert("L").resize((64, 64)).tobytes())
    ys = list(b.convert("L").resize((64, 64)).tobytes())
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    cov = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    vx = sum((x - mx) ** 2 for x in xs) ** 0.5
    vy = sum((y - my) ** 2 for y in ys) ** 0.5
    return cov / (vx * vy) if vx and vy else 0.0


def grey_mask(canvas: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Where the canvas was the neutral grey, at `size`."""
    scaled = canvas.resize(size, Image.Resampling.NEAREST)
    bands = [band.point(lambda v: 255 if v == GREY[0] else 0) for band in scaled.split()]
    return ImageChops.multiply(ImageChops.multiply(bands[0], bands[1]), bands[2])


def commonest_share(img: Image.Image, mask: Image.Image) -> float:
    """The share of the masked pixels that have the one commonest colour (1.0: a flat area)."""
    outside = (1, 2, 3)
    colours = Image.composite(img, Image.new("RGB", img.size, outside), mask).getcolors(1 << 24) or []
    counted = [(n, c) for n, c in colours if c != outside]
    return max(n for n, _ in counted) / sum(n for n, _ in counted)


def sheet(rows: list[tuple[str, Image.Image, Image.Image]]) -> Image.Image:
    pad = 12
    width = LABEL_W + 2 * THUMB[0] + 4 * pad
    height = HEADER + pad + (THUMB[1] + pad) * len(rows)
    out = Image.new("RGB", (width, height), (24, 24, 28))
    draw = ImageDraw.Draw(out)
    font = ImageFont.load_default(size=20)
    for text, x in (("input", LABEL_W + 2 * pad), ("output (sandbox)", LABEL_W + 3 * pad + THUMB[0])):
        draw.text((x, pad), text, font=font, fill=(230, 230, 230))
    for i, (name, before, after) in enumerate(rows):
        top = HEADER + pad + i * (THUMB[1] + pad)
        draw.text((pad, top + THUMB[1] // 2 - 10), name, font=font, fill=(240, 240, 240))
        for j, img in enumerate((before, after)):
            thumb = ImageOps.contain(img, THUMB)
            x = LABEL_W + 2 * pad + j * (THUMB[0] + pad) + (THUMB[0] - thumb.width) // 2
            out.paste(thumb, (x, top + (THUMB[1] - thumb.height) // 2))
    return out


async def test_sandbox_contact_sheet_of_every_tool(tmp_path: Path) -> None:
    console = Console(tmp_path)
    rows: list[tuple[str, Image.Image, Image.Image]] = []
    async with BotHarness(tmp_path, {}, [console.factory]) as bot:
        (made,) = await console.run(bot, "/hidream a lighthouse on a cliff at dusk --ar 16:9 --seed 11")
        original = rgb(made.read_bytes())
        key = made.name[:8]
        assert console.chat is not None
        source_id = console.chat.last_job_id or ""

        (upscaled,) = await console.run(bot, f"/upscale {key}")
        rows.append((name_of(Kind.UPSCALE), original, rgb(upscaled.read_bytes())))
        assert correlation(rgb(upscaled.read_bytes()), original) > 0.6

        for kind in CANVAS_KINDS:
            (path,) = await console.run(bot, f"{CONSOLE[kind]} {key}")
            canvas = rgb(sandbox_of(bot).received()[-1].references[0])
            output = rgb(path.read_bytes())
            rows.append((name_of(kind), canvas, output))
            # The original is drawn where it sat on the canvas...
            cw, ch, left, top = expected_layout(kind, *original.size)
            sx, sy = output.width / cw, output.height / ch
            box = (
                round(left * sx),
                round(top * sy),
                round((left + original.width) * sx),
                round((top + original.height) * sy),
            )
            assert correlation(output.crop(box), original) > 0.6, kind
            # ...and the grey around it is painted over, no longer one flat colour.
            assert commonest_share(output, grey_mask(canvas, output.size)) < 0.6, kind

        (varied,) = await console.run(bot, f"/vary {key}")
        rows.append((name_of(Kind.VARY), original, rgb(varied.read_bytes())))

        # Edit region: the link's form sent as the editor page sends it; the input shows the rectangle.
        await console.run(bot, f"/region {key}")
        accepted = await send_form(link_in(console.err.getvalue()), REGION, "a hot air balloon")
        assert accepted.status_code == 200
        await bot.runner.wait_idle()
        thread = await bot.engine.versions.thread_of("console", source_id)
        assert thread is not None
        edited = (await bot.engine.versions.live("console", thread))[-1].job
        assert edited.request.region is not None and edited.parent_job_id == source_id
        result = (await bot.engine.result_images(edited))[0].data
        assert check_blended(made.read_bytes(), result, REGION) > 0.9
        marked = original.copy()
        ImageDraw.Draw(marked).rectangle(REGION, outline=(255, 40, 40), width=6)
        rows.append((words.ACTION_REGION, marked, rgb(result)))

    picture = sheet(rows)
    assert len(rows) == len(CANVAS_KINDS) + 3
    assert picture.size == (LABEL_W + 2 * THUMB[0] + 48, HEADER + 12 + (THUMB[1] + 12) * len(rows))
    picture.save(tmp_path / "toolbox.png")
    if os.environ.get("HIDREAM_WRITE_DOCS") == "1":
        buffer = io.BytesIO()
        picture.save(buffer, "PNG", optimize=True)
        DOCS.write_bytes(buffer.getvalue())
