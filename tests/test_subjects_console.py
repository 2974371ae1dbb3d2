"""Saved subjects on the console, end to end against the sandbox provider: save from image files and
from a job, use by `--subject` and by `@name` (the provider receives the subject's images as
references), list, show and delete; bad names, duplicates and too many images are refused with
nothing spent and no provider call."""

from __future__ import annotations

from pathlib import Path

from bot.app import Bot
from tests.fakes.discord_harness import png
from tests.support.console import Console
from tests.support.harness import BotHarness, sandbox_of


def files(tmp_path: Path, *images: bytes) -> list[Path]:
    paths = []
    for i, data in enumerate(images):
        path = tmp_path / f"ref{i}.png"
        path.write_bytes(data)
        paths.append(path)
    return paths


async def last_job_mode(bot: Bot, console: Console) -> str:
    assert console.chat is not None and console.chat.last_job_id is not None
    job = await bot.engine.job(console.chat.last_job_id)
    assert job is not None
    return job.mode


async def test_console_saves_a_subject_and_uses_it_by_flag_and_by_name(tmp_path: Path) -> None:
    console = Console(tmp_path)
    fox, owl = png(color=(200, 90, 10)), png(70, 70, (90, 90, 200))
    a, b = files(tmp_path, fox, owl)
    async with BotHarness(tmp_path, surfaces=[console.factory]) as bot:
        assert await console.run(bot, f"/subject save mascot {a} {b}") == []
        # The console shows the shared messages as plain text (no Markdown backticks).
        assert "Saved subject mascot (2 image(s))" in console.err.getvalue()
        assert sandbox_of(bot).submits == 0  # saving calls no provider
        status = await bot.engine.quota("console", "local", "local")
        assert status.used == 0  # and spends no quota

        made = await console.run(bot, "/hidream the mascot surfing --subject mascot")
        assert len(made) == 1 and await last_job_mode(bot, console) == "personalization"
        made = await console.run(bot, "/hidream @MASCOT at a tea party")
        assert len(made) == 1 and await last_job_mode(bot, console) == "personalization"
        received = {j.prompt: j for j in sandbox_of(bot).received()}
        assert received["the mascot surfing"].references == [fox, owl]
        assert received["@MASCOT at a tea party"].references == [fox, owl]

        # A subject saved from a result (one image): an edit of it.
        await console.run(bot, "/hidream a lighthouse --seed 3")
        await console.run(bot, "/subject save tower last")
        await console.run(bot, "/hidream @tower at night")
        assert await last_job_mode(bot, console) == "edit"

        await console.run(bot, "/subject list")
        assert (
            "mascot: 2 image(s)" in console.err.getvalue() and "tower: 1 image(s)" in console.err.getvalue()
        )
        shown = await console.run(bot, "/subject show mascot")
        assert [p.read_bytes() for p in shown] == [fox, owl]


async def test_console_refuses_bad_names_duplicates_unknown_and_too_many(tmp_path: Path) -> None:
    console = Console(tmp_path)
    images = [png(40 + i, 40, (i * 50, 10, 10)) for i in range(4)]
    paths = files(tmp_path, *images)
    async with BotHarness(tmp_path, surfaces=[console.factory]) as bot:
        await console.run(bot, f"/subject save team {paths[0]} {paths[1]} {paths[2]}")
        await console.run(bot, f"/subject save bad/name {paths[0]}")
        assert "bad/name is not a subject name" in console.err.getvalue()
        await console.run(bot, f"/subject save {'x' * 33} {paths[0]}")
        assert "is not a subject name: use 1 to 32 letters" in console.err.getvalue()
        await console.run(bot, f"/subject save TEAM {paths[3]}")
        assert "A subject named team already exists here" in console.err.getvalue()

        await console.run(bot, "/hidream a party --subject nobody")
        assert "There is no subject named nobody here. Saved here: team." in console.err.getvalue()
        # Three subject images and two typed references: five in all, refused before any fetch.
        await console.run(bot, f"/edit {paths[3]} @team dancing --subject team")
        assert "That is 4 images in all" not in console.err.getvalue()
        await console.run(bot, "/hidream @team and https://example.com/a.png https://example.com/b.png")
        assert "That is 5 images in all: subjects team (3) and 2 attached" in console.err.getvalue()
        # A request naming no saved subject keeps its `@` text as written.
        await console.run(bot, "/hidream a sign that says @home")
        received = {j.prompt: j for j in sandbox_of(bot).received()}
        assert received["a sign that says @home"].references == []
        assert received["@team dancing"].references == [*images[:3], images[3]]
        assert sandbox_of(bot).submits == 2
        status = await bot.engine.quota("console", "local", "local")
        assert status.used == 2

        await console.run(bot, "/subject delete team")
        assert "Deleted subject team." in console.err.getvalue()
        await console.run(bot, "/hidream again --subject team")
        assert "There is no subject named team here. None are saved here yet." in console.err.getvalue()
