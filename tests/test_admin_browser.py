"""The operators' page in a real headless Chromium: refused without the token, signed into through its
form, its chart showing the jobs this test ran, markup in a prompt inert, and a screenshot kept; at a
phone's 400 pixels nothing sticks out of the window and no chart label is smaller than 10 pixels; its
refresh reloads the page where the reader had scrolled to.

The screenshot is written to the test's tmp dir and to `test-artifacts/` (ignored by git); with
HIDREAM_SCREENSHOT_DOCS=1 also to docs/operators-page.png, the one docs/operating.md shows.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from bot.model.jobs import TERMINAL, JobState
from bot.model.requests import ChatRequest, parse_command
from bot.web import admin_page
from storage.quota import utc_day
from tests.fakes.surface import RecordingSurface
from tests.support.admin_support import TOKEN
from tests.support.cdp import CHROMIUM, Browser
from tests.support.harness import BotHarness, skip_unless_ci, until

ROOT = Path(__file__).resolve().parent.parent
PROMPTS = [
    "a red fox in snow",
    "a lighthouse at dusk",
    "<script>window.pwned = 1</script> a cat",
    "sandbox-fail please",
]

# What the page shows, read from its DOM.
READ_PAGE = """({
  bars: [...document.querySelectorAll('#images-chart rect[data-provider]')]
          .map(r => [r.dataset.day, r.dataset.provider, Number(r.dataset.value)]),
  totals: [...document.querySelectorAll('#images-chart text.total')].map(t => [t.dataset.day, t.textContent]),
  legend: document.querySelector('#legend').textContent,
  images: document.querySelector('#cards-images b').textContent,
  failures: [...document.querySelectorAll('#failures tr')].slice(1).map(r => r.cells[0].textContent),
  ids: [...document.querySelectorAll('#jobs tr')].slice(1).map(r => r.cells[0].textContent),
  prompts: [...document.querySelectorAll('#jobs tr')].slice(1).map(r => r.cells[6].textContent),
  states: [...document.querySelectorAll('#jobs tr')].slice(1).map(r => r.cells[2].textContent),
  scripts: document.scripts.length,
  pwned: window.pwned === undefined ? null : window.pwned,
})"""


# At a phone's width: every element whose box reaches past the window's right edge, except those inside
# a box that scrolls sideways on its own (the wide tables, the charts below their narrowest width); and
# each chart label's size as drawn (those not hidden), in CSS pixels (its font size times the SVG's scale).
READ_NARROW = """(() => {
  const width = document.documentElement.clientWidth;
  const scrolls = el => { for (let p = el.parentElement; p; p = p.parentElement) {
    if (getComputedStyle(p).overflowX === 'auto') return true; } return false; };
  const outside = [...document.body.querySelectorAll('*')]
    .filter(el => el.getBoundingClientRect().right > width + 0.5 && !scrolls(el))
    .map(el => el.tagName + (el.id ? '#' + el.id : '') + (el.className ? '.' + el.className : ''));
  const labels = [...document.querySelectorAll('svg text')].filter(t => t.getClientRects().length > 0)
    .map(t => [t.textContent, parseFloat(getComputedStyle(t).fontSize) * t.getScreenCTM().a]);
  return {width, scroll: document.documentElement.scrollWidth, outside, labels};
})()"""


def chat(text: str) -> ChatRequest:
    return ChatRequest(
        surface="test",
        user_id="u1",
        workspace_id="w1",
        origin={"thread": "t1"},
        request=parse_command(text).request,
        references=[],
    )


def keep(shot: bytes, tmp_path: Path, name: str) -> None:
    targets = [tmp_path / name, ROOT / "test-artifacts" / name]
    if os.environ.get("HIDREAM_SCREENSHOT_DOCS") == "1" and name == "operators-page.png":
        targets.append(ROOT / "docs" / name)
    for target in targets:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(shot)


@pytest.fixture
def chromium() -> Path:
    if not CHROMIUM.exists():
        skip_unless_ci(f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium; .ci/run installs it)")
    return CHROMIUM


async def run_jobs(bot: Any) -> list[str]:
    """Three delivered and one failed, through the engine and the sandbox provider."""
    ids = [(await bot.engine.submit(chat(prompt))).id for prompt in PROMPTS]

    async with asyncio.timeout(60):
        while True:
            found = [job.state for job in [await bot.store.job(i) for i in ids] if job is not None]
            if len(found) == len(ids) and all(state in TERMINAL for state in found):
                break
            await asyncio.sleep(0.02)
    assert sorted(found) == sorted([JobState.DELIVERED] * 3 + [JobState.FAILED])
    return ids


async def test_the_page_in_a_browser(tmp_path: Path, chromium: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # No reload in the middle of reading the page (the next test shows the reload).
    monkeypatch.setattr(admin_page, "REFRESH_SECONDS", 3600)
    surface = RecordingSurface()
    env = {"HIDREAM_ADMIN_TOKEN": TOKEN}
    (tmp_path / "bot").mkdir()
    async with (
        BotHarness(tmp_path / "bot", env, [surface.factory]) as bot,
        Browser(tmp_path / "profile") as page,
    ):
        ids = await run_jobs(bot)
        await until(lambda: len(surface.deliveries) == 3)
        base = bot.server_url
        await page.call("Page.enable")
        await page.call("Network.enable")
        # Without the token: the JSON is refused, and the page sends the browser to its sign-in form.
        await page.goto(f"{base}/admin/api/overview", "/admin/api/overview")
        assert page.statuses(f"{base}/admin/api/overview") == [401]
        assert "sign in" in await page.evaluate("document.body.textContent")
        await page.goto(f"{base}/admin", "/admin/login")
        assert await page.evaluate("document.querySelector('#login input[name=token]') !== null")
        # Sign in through the form, as a person would.
        await page.evaluate(
            f"document.querySelector('#login input[name=token]').value = {json.dumps(TOKEN)};"
            "document.querySelector('#login').requestSubmit(); true"
        )
        await page.loaded("/admin")
        shown = await page.evaluate(READ_PAGE)
        async with httpx.AsyncClient(base_url=base) as http:
            failures = (
                await http.get("/admin/api/failures", headers={"Authorization": f"Bearer {TOKEN}"})
            ).json()
        keep(await page.screenshot(1100), tmp_path, "operators-page.png")
        narrow_shot = await page.screenshot(400, mobile=True)
        narrow = await page.evaluate(READ_NARROW)
        keep(narrow_shot, tmp_path, "operators-page-narrow.png")
    today = utc_day(time.time())
    assert shown["bars"] == [[today, "sandbox", 3]]
    assert shown["totals"] == [[today, "3"]]
    assert "sandbox: 3 images" in shown["legend"] and shown["images"] == "3"
    assert shown["failures"] == [f["cause"] for f in failures] and len(failures) == 1
    assert "sandbox-fail" in failures[0]["cause"]
    assert sorted(shown["states"]) == ["delivered", "delivered", "delivered", "failed"]
    # Each job by its id, as the logs and the JSON name it.
    assert sorted(shown["ids"]) == sorted(ids)
    # The markup in a prompt is shown as text, and nothing ran.
    assert PROMPTS[2] in shown["prompts"] and shown["scripts"] == 0 and shown["pwned"] is None
    # A phone's width: the page itself never scrolls sideways (wide tables scroll inside their box),
    # nothing else reaches past the window, and every chart label is drawn at 10 pixels or more.
    assert narrow["width"] == 400 and narrow["scroll"] <= narrow["width"], narrow
    assert narrow["outside"] == [], narrow["outside"]
    assert len(narrow["labels"]) >= 2 * (5 + 7), narrow["labels"]  # two charts: a scale, days, totals
    small = [(text, round(size, 1)) for text, size in narrow["labels"] if size < 10]
    assert small == [], small
    wide = Image.open(io.BytesIO((tmp_path / "operators-page.png").read_bytes()))
    assert wide.format == "PNG" and wide.width == 1100
    assert Image.open(io.BytesIO(narrow_shot)).width == 400


async def test_the_refresh_reloads_the_page_where_the_reader_was(
    tmp_path: Path, chromium: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The page's own meta refresh, every second instead of every 30, so the test need not wait long.
    monkeypatch.setattr(admin_page, "REFRESH_SECONDS", 1)
    (tmp_path / "bot").mkdir()
    async with (
        BotHarness(tmp_path / "bot", {"HIDREAM_ADMIN_TOKEN": TOKEN}, [RecordingSurface().factory]) as bot,
        Browser(tmp_path / "profile") as page,
    ):
        await run_jobs(bot)
        base = bot.server_url
        await page.call("Page.enable")
        await page.call("Network.enable")
        await page.goto(f"{base}/admin/login", "/admin/login")
        await page.evaluate(
            f"document.querySelector('#login input[name=token]').value = {json.dumps(TOKEN)};"
            "document.querySelector('#login').requestSubmit(); true"
        )
        await page.loaded("/admin")
        # A short window, scrolled down to the recent jobs; a mark that only this document carries.
        await page.resize(1100, 400)
        target = await page.evaluate(
            "window.scrollTo(0, document.querySelector('#jobs').getBoundingClientRect().top + scrollY - 20);"
            "window.reloadMark = 1; scrollY"
        )
        assert target > 300
        loads = len(page.statuses(f"{base}/admin"))
        # A new document (the mark is gone) loaded by the browser from the server, back at the same place.
        reloaded = "window.reloadMark === undefined && document.readyState === 'complete' && scrollY"
        async with asyncio.timeout(60):
            while await page.evaluate(reloaded) != target:  # noqa: ASYNC110 (the browser changes it)
                await asyncio.sleep(0.05)
        assert len(page.statuses(f"{base}/admin")) > loads
        assert all(status == 200 for status in page.statuses(f"{base}/admin"))
        assert await page.evaluate("location.pathname") == "/admin"
