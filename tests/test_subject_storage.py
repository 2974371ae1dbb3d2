"""Subject storage bounded (issue 19, item 1), through the console against the sandbox: at most
HIDREAM_MAX_SUBJECTS per tenant and HIDREAM_SUBJECT_STORAGE_MB of their images, a save past either
refused in plain words with nothing stored; a subject unused for HIDREAM_SUBJECT_RETENTION_DAYS
deleted with its images; the operators' page shows each tenant's subject storage."""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

import httpx
from PIL import Image

from bot.app import Bot
from bot.jobs.retention import DAY
from tests.fakes.discord_harness import png
from tests.support.admin_support import TOKEN
from tests.support.console import Console
from tests.support.harness import BotHarness, sandbox_of

MB = 1024 * 1024


def noise(side: int) -> bytes:
    """A PNG that does not compress: about 3 bytes a pixel."""
    buf = io.BytesIO()
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(buf, "PNG")
    return buf.getvalue()


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


async def held_images(bot: Bot) -> int:
    row = await bot.store.database.fetchrow("SELECT COUNT(*) FROM media")
    assert row is not None
    return int(row[0])


async def test_a_save_past_the_number_of_subjects_is_refused_with_nothing_stored(tmp_path: Path) -> None:
    console = Console(tmp_path)
    paths = [write(tmp_path, f"r{i}.png", png(40 + i, 40, (i * 60, 20, 20))) for i in range(3)]
    async with BotHarness(tmp_path, {"HIDREAM_MAX_SUBJECTS": 2}, surfaces=[console.factory]) as bot:
        await console.run(bot, f"/subject save fox {paths[0]}")
        await console.run(bot, f"/subject save owl {paths[1]}")
        before = await held_images(bot)
        await console.run(bot, f"/subject save cat {paths[2]}")
        assert "Nothing was saved: 2 subjects are saved here, the most the bot keeps for one place." in (
            console.err.getvalue()
        )
        assert await held_images(bot) == before == 2
        await console.run(bot, "/subject list")
        assert "cat:" not in console.err.getvalue()
        # A result saved as a subject is refused the same way.
        await console.run(bot, "/hidream a lighthouse --seed 3")
        await console.run(bot, "/subject save tower last")
        assert console.err.getvalue().count("Nothing was saved: 2 subjects") == 2
        assert sandbox_of(bot).submits == 1
        # Deleting one makes room again.
        await console.run(bot, "/subject delete owl")
        await console.run(bot, f"/subject save cat {paths[2]}")
        assert "Saved subject cat (1 image(s))" in console.err.getvalue()


async def test_a_save_past_the_byte_budget_is_refused_and_its_fetched_images_deleted(tmp_path: Path) -> None:
    console = Console(tmp_path)
    big = [noise(450) for _ in range(3)]  # about 0.6 MB each
    assert all(0.55 * MB < len(b) < 0.75 * MB for b in big)
    paths = [write(tmp_path, f"n{i}.png", data) for i, data in enumerate(big)]
    async with BotHarness(tmp_path, {"HIDREAM_SUBJECT_STORAGE_MB": 1}, surfaces=[console.factory]) as bot:
        await console.run(bot, f"/subject save first {paths[0]}")
        assert "Saved subject first (1 image(s))" in console.err.getvalue()
        before = await held_images(bot)
        await console.run(bot, f"/subject save more {paths[1]} {paths[2]}")
        used, adding = len(big[0]) / MB, (len(big[1]) + len(big[2])) / MB
        assert (
            f"Nothing was saved: the subjects saved here take {used:.1f} MB of their 1 MB, and these "
            f"images take {adding:.1f} MB more."
        ) in console.err.getvalue()
        assert await held_images(bot) == before == 1  # the two images it fetched are gone again
        await console.run(bot, "/subject show more")
        assert "There is no subject named more here" in console.err.getvalue()
        # What fits still fits.
        small = write(tmp_path, "small.png", png(30, 30))
        await console.run(bot, f"/subject save small {small}")
        assert "Saved subject small (1 image(s))" in console.err.getvalue()


async def test_a_subject_nobody_uses_is_deleted_with_its_images(tmp_path: Path) -> None:
    console = Console(tmp_path)
    paths = [write(tmp_path, f"r{i}.png", png(40 + i, 40)) for i in range(2)]
    env = {"HIDREAM_SUBJECT_RETENTION_DAYS": 100, "HIDREAM_MEDIA_RETENTION_DAYS": 0}
    async with BotHarness(tmp_path, env, surfaces=[console.factory]) as bot:
        await console.run(bot, f"/subject save fox {paths[0]} {paths[1]}")
        assert await held_images(bot) == 2
        assert (await bot.retention.sweep(now=time.time() + 99 * DAY)).subjects == 0
        swept = await bot.retention.sweep(now=time.time() + 101 * DAY)
        assert (swept.subjects, swept.media) == (1, 2) and await held_images(bot) == 0
        await console.run(bot, "/subject list")
        assert "No subjects are saved here yet." in console.err.getvalue()


async def test_the_operators_page_shows_each_tenants_subject_storage(tmp_path: Path) -> None:
    console = Console(tmp_path)
    image = noise(300)
    path = write(tmp_path, "n.png", image)
    env = {"HIDREAM_ADMIN_TOKEN": TOKEN, "HIDREAM_MAX_SUBJECTS": 7, "HIDREAM_SUBJECT_STORAGE_MB": 30}
    async with BotHarness(tmp_path, env, surfaces=[console.factory]) as bot:
        await console.run(bot, f"/subject save fox {path}")
        await console.run(bot, f"/subject save owl {path}")
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with httpx.AsyncClient(base_url=bot.server_url, headers=headers) as http:
            figures = (await http.get("/admin/api/tenants")).json()
            page = (await http.get("/admin")).text
    (tenant,) = [t for t in figures["tenants"] if t["subjects"]]
    assert tenant["subjects"] == 2 and tenant["subject_mb"] == round(2 * len(image) / MB, 2)
    assert (figures["max_subjects"], figures["subject_storage_mb"]) == (7, 30)
    assert "at most 7 per tenant, 30 MB of images" in page
    row = page[page.index(f">{tenant['tenant']}<") :]
    row = row[: row.index("</tr>")]
    assert ">2<" in row and f">{tenant['subject_mb']:.1f}<" in row
