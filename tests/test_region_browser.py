"""The region editor in a real headless Chromium, from the console's `/region last`: the page opens
from the link, a rectangle is dragged over the picture with the mouse (and, at a phone's width, with a
finger), an instruction typed and the form sent with its button; the page says it was accepted, the
provider got the rectangle plus its margin, and the result delivered is the original with every pixel
outside the rectangle unchanged and the rectangle changed. The page runs only the bot's own script.

A screenshot of the page with its rectangle drawn is written to the test's tmp dir and to
`test-artifacts/` (ignored by git); with HIDREAM_SCREENSHOT_DOCS=1 also to docs/region-editor.png, the one
docs/toolbox.md shows."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from bot import words
from bot.jobs.regions import crop_box
from tests.support.cdp import CHROMIUM, Browser
from tests.support.console import Console
from tests.support.harness import BotHarness, sandbox_of, skip_unless_ci
from tests.support.region import check_blended, link_in, rgb, token_of

ROOT = Path(__file__).resolve().parent.parent
PICTURE_DONE = "(() => { const i = document.getElementById('picture'); return !!i && i.complete && i.naturalWidth > 0; })()"
PICTURE_BOX = "(() => { const r = document.getElementById('picture').getBoundingClientRect(); return [r.left, r.top, r.width, r.height]; })()"
BUTTON_AT = "(() => { const r = document.getElementById('send').getBoundingClientRect(); return [r.left + r.width / 2, r.top + r.height / 2]; })()"
FORM = "Object.fromEntries(['x', 'y', 'w', 'h', 'text'].map(n => [n, document.getElementById('region-form').elements[n].value]))"


@pytest.fixture
def chromium() -> Path:
    if not CHROMIUM.exists():
        skip_unless_ci(f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium; .ci/run installs it)")
    return CHROMIUM


async def wait_for(page: Browser, expression: str) -> None:
    async with asyncio.timeout(60):
        while not await page.evaluate(expression):  # noqa: ASYNC110 (the browser changes it)
            await asyncio.sleep(0.05)


async def drag(page: Browser, start: tuple[float, float], end: tuple[float, float], *, touch: bool) -> None:
    """A press at `start`, a move in steps, a release at `end` (window pixels)."""
    steps = [
        (start[0] + (end[0] - start[0]) * k / 8, start[1] + (end[1] - start[1]) * k / 8) for k in range(9)
    ]
    if touch:
        await page.call(
            "Input.dispatchTouchEvent", type="touchStart", touchPoints=[{"x": start[0], "y": start[1]}]
        )
        for x, y in steps[1:]:
            await page.call("Input.dispatchTouchEvent", type="touchMove", touchPoints=[{"x": x, "y": y}])
        await page.call("Input.dispatchTouchEvent", type="touchEnd", touchPoints=[])
        return
    mouse: dict[str, Any] = {"button": "left", "clickCount": 1}
    await page.call(
        "Input.dispatchMouseEvent", type="mousePressed", x=start[0], y=start[1], buttons=1, **mouse
    )
    for x, y in steps[1:]:
        await page.call("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y, buttons=1, button="left")
    await page.call("Input.dispatchMouseEvent", type="mouseReleased", x=end[0], y=end[1], buttons=0, **mouse)


def keep(shot: bytes, tmp_path: Path) -> None:
    targets = [tmp_path / "region-editor.png", ROOT / "test-artifacts" / "region-editor.png"]
    if os.environ.get("HIDREAM_SCREENSHOT_DOCS") == "1":
        targets.append(ROOT / "docs" / "region-editor.png")
    for target in targets:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(shot)


def on_screen(box: list[float], size: tuple[int, int], point: tuple[int, int]) -> tuple[float, float]:
    """Where the image's pixel `point` is drawn in the window."""
    left, top, width, height = box
    return left + point[0] * width / size[0], top + point[1] * height / size[1]


async def test_drag_type_and_send_in_chromium(tmp_path: Path, chromium: Path) -> None:
    console = Console(tmp_path)
    async with BotHarness(tmp_path, {}, [console.factory]) as bot, Browser(tmp_path / "profile") as page:
        (made,) = await console.run(bot, "/hidream a lighthouse on a cliff --ar 16:9 --seed 4")
        original = made.read_bytes()
        size = rgb(original).size
        assert size == (1360, 768)
        await console.run(bot, "/region last")
        link = link_in(console.err.getvalue())
        path = urlsplit(link).path
        await page.call("Page.enable")
        await page.call("Network.enable")
        await page.resize(1100, 900)
        await page.goto(link, path)
        await wait_for(page, PICTURE_DONE)
        assert page.statuses(link) == [200]

        # At a phone's width a finger draws a rectangle too (the page takes pointer events).
        await page.resize(400, 800, mobile=True)
        await page.call("Emulation.setTouchEmulationEnabled", enabled=True, maxTouchPoints=1)
        box = await page.evaluate(PICTURE_BOX)
        assert box[2] <= 400
        await drag(page, on_screen(box, size, (100, 100)), on_screen(box, size, (700, 500)), touch=True)
        touched = await page.evaluate(FORM)
        assert int(touched["w"]) > 500 and int(touched["h"]) > 300, touched
        await page.call("Emulation.setTouchEmulationEnabled", enabled=False)

        # With the mouse, on a wide window: this rectangle is the one sent.
        await page.resize(1100, 900)
        box = await page.evaluate(PICTURE_BOX)
        await drag(page, on_screen(box, size, (420, 180)), on_screen(box, size, (780, 470)), touch=False)
        await page.evaluate("document.getElementById('text').focus()")
        await page.call("Input.insertText", text="a hot air balloon in the sky")
        form = await page.evaluate(FORM)
        keep(await page.screenshot(640), tmp_path)
        await page.resize(1100, 900)
        area = (
            int(form["x"]),
            int(form["y"]),
            int(form["x"]) + int(form["w"]),
            int(form["y"]) + int(form["h"]),
        )
        # The rectangle as dragged, in the image's pixels (within a pixel or two of the window's rounding).
        assert all(abs(a - b) <= 3 for a, b in zip(area, (420, 180, 780, 470), strict=True)), area
        assert form["text"] == "a hot air balloon in the sky"
        before = sandbox_of(bot).submits
        x, y = await page.evaluate(BUTTON_AT)
        await page.call(
            "Input.dispatchMouseEvent", type="mousePressed", x=x, y=y, button="left", clickCount=1
        )
        await page.call(
            "Input.dispatchMouseEvent", type="mouseReleased", x=x, y=y, button="left", clickCount=1
        )
        await wait_for(page, "document.getElementById('accepted') !== null")
        accepted = await page.evaluate("document.getElementById('accepted').textContent")
        scripts = await page.evaluate("[...document.scripts].map(s => s.src)")
        await asyncio.wait_for(bot.runner.wait_idle(), 60)

        job = await bot.store.job_by_dedup(f"region:{token_of(link).rsplit('.', 1)[1]}")
        assert job is not None and job.state == "delivered", job
        result = (await bot.engine.result_images(job))[0].data
        sent = sandbox_of(bot).received()[-1]
    assert accepted == words.REGION_ACCEPTED
    assert scripts == []  # the accepted page runs nothing
    assert sandbox_of(bot).submits == before + 1
    # The job: the next version of the image, its region recorded, the rectangle plus its margin sent.
    source_id = job.parent_job_id
    assert source_id is not None and job.request.region is not None
    assert job.request.region.area == area
    crop = crop_box(area, size)
    assert job.request.region.crop == crop
    assert sent.prompt == "a hot air balloon in the sky" and len(sent.references) == 1
    assert rgb(sent.references[0]).tobytes() == rgb(original).crop(crop).tobytes()
    # Outside the rectangle every pixel is the original's; inside, the picture changed.
    changed = check_blended(original, result, area)
    assert changed > 0.9, changed
    # The console wrote the result as it writes every image.
    assert (tmp_path / "out" / f"{job.id}-1.png").read_bytes() == result
