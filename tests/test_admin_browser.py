"""The operators' page in a real headless Chromium: refused without the token, signed into through its
form, its chart showing the jobs this test ran, markup in a prompt inert, and a screenshot kept.

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
  prompts: [...document.querySelectorAll('#jobs tr')].slice(1).map(r => r.cells[5].textContent),
  states: [...document.querySelectorAll('#jobs tr')].slice(1).map(r => r.cells[1].textContent),
  scripts: document.scripts.length,
  pwned: window.pwned === undefined ? null : window.pwned,
})"""


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


async def test_the_page_in_a_browser(tmp_path: Path, chromium: Path) -> None:
    surface = RecordingSurface()
    env = {"HIDREAM_ADMIN_TOKEN": TOKEN}
    (tmp_path / "bot").mkdir()
    async with (
        BotHarness(tmp_path / "bot", env, [surface.factory]) as bot,
        Browser(tmp_path / "profile") as page,
    ):
        await run_jobs(bot)
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
        narrow_shot = await page.screenshot(380, mobile=True)
        narrow = await page.evaluate(
            "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
        )
        keep(narrow_shot, tmp_path, "operators-page-narrow.png")
    today = utc_day(time.time())
    assert shown["bars"] == [[today, "sandbox", 3]]
    assert shown["totals"] == [[today, "3"]]
    assert "sandbox: 3 images" in shown["legend"] and shown["images"] == "3"
    assert shown["failures"] == [f["cause"] for f in failures] and len(failures) == 1
    assert "sandbox-fail" in failures[0]["cause"]
    assert sorted(shown["states"]) == ["delivered", "delivered", "delivered", "failed"]
    # The markup in a prompt is shown as text, and nothing ran.
    assert PROMPTS[2] in shown["prompts"] and shown["scripts"] == 0 and shown["pwned"] is None
    # A narrow window: the page itself never scrolls sideways (wide tables scroll inside their box).
    assert narrow[0] <= narrow[1], narrow
    wide = Image.open(io.BytesIO((tmp_path / "operators-page.png").read_bytes()))
    assert wide.format == "PNG" and wide.width == 1100
    assert Image.open(io.BytesIO(narrow_shot)).width <= 380
