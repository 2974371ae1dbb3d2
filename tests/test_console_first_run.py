"""The console chat as a newcomer meets it (issue 12, point 5): exit status, a prompt only for a person,
plain text, "Saving…", the delivered pixel size, and `/edit` messages that fit `/edit`."""

from __future__ import annotations

import asyncio
import io
import re
from pathlib import Path

import pytest
from PIL import Image

from adapters.console import PROMPT, ConsoleChat
from bot.app import Bot
from tests.support.console import console_in, say
from tests.support.harness import BotHarness
from tests.support.processes import Cli


def test_the_scripted_console_exits_0_when_all_succeeded_and_1_on_a_refusal_or_a_failure(
    cli: Cli,
) -> None:
    ok = cli("run", stdin="/hidream a fox --seed 1\n/edit last make it night\n/quota\n")
    assert ok.returncode == 0, ok.stderr
    assert len(ok.stdout.split()) == 2
    refused = cli("run", stdin="/hidream a fox --seed 1\n/hidream a fox --steps 0\n")
    assert refused.returncode == 1 and len(refused.stdout.split()) == 1
    # The sandbox fails a job whose prompt says so: accepted, then failed at the provider.
    failed = cli("run", stdin="/hidream a fox sandbox-fail\n/hidream a cat\n")
    assert failed.returncode == 1 and len(failed.stdout.split()) == 1
    assert "The sandbox was asked to fail" in failed.stderr


class Terminal(io.StringIO):
    """Standard input as a person at a terminal gives it."""

    def isatty(self) -> bool:
        return True


async def test_a_person_at_a_terminal_gets_a_prompt_on_stderr(tmp_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()

    def factory(bot: Bot) -> ConsoleChat:
        stdin = Terminal("/hidream a fox\n/quota\n")
        return ConsoleChat(
            bot.engine,
            tmp_path / "out",
            runner=bot.runner,
            stdin=stdin,
            out=out,
            err=err,
            server_url=bot.server_url,
        )

    async with BotHarness(tmp_path, surfaces=[factory]) as bot:
        [chat] = bot.surfaces
        assert isinstance(chat, ConsoleChat)
        assert await chat.run_until_done() == 0
        url = bot.server_url
    # One prompt before each line and one before the end of input; none on standard output.
    assert err.getvalue().count(PROMPT) == 3 and PROMPT == "hidream> "
    assert f"its HTTP server at {url}" in err.getvalue() and "Ctrl-D to quit" in err.getvalue()
    [path] = out.getvalue().split()
    assert await asyncio.to_thread(Path(path).is_file)


def test_a_script_gets_no_prompt_and_plain_text(cli: Cli) -> None:
    result = cli("run", stdin="/help\n/hidream a fox\n")
    assert result.returncode == 0, result.stderr
    assert "hidream>" not in result.stderr
    # /help's examples and every shared message lose their Markdown backticks on the console.
    assert "e.g. /hidream a red fox --provider fal" in result.stderr and "`" not in result.stderr
    # The console saves files: it never says it uploads.
    assert re.search(r"\] Saving… \(\d+s\)", result.stderr) and "Uploading" not in result.stderr


@pytest.mark.parametrize("size", ["--ar 16:9", "--size landscape_16_9"])
def test_the_result_line_gives_the_delivered_pixel_size(size: str, cli: Cli) -> None:
    result = cli("run", stdin=f"/hidream a fox {size}\n")
    assert result.returncode == 0, result.stderr
    [path] = result.stdout.split()
    with Image.open(path) as image:
        pixels = f"{image.width}x{image.height}"
    [done] = [line for line in result.stderr.splitlines() if "] done:" in line]
    assert f"full model, {pixels}. Edit with" in done
    assert "16:9" not in done and "landscape" not in done


def test_edit_messages_fit_edit(tmp_path: Path, cli: Cli) -> None:
    (tmp_path / "notes.txt").write_text("not a picture")
    result = cli(
        "run",
        stdin=f"/edit last make it night\n/edit {tmp_path / 'notes.txt'} make it night\n"
        "/hidream a fox\n/edit last\n/edit last --ar 16:9\n",
    )
    assert result.returncode == 1 and len(result.stdout.split()) == 1
    lines = result.stderr.splitlines()
    assert "✗ There is no finished image yet: make one first, e.g. /hidream a red fox in snow" in lines
    assert f"✗ {tmp_path / 'notes.txt'} is not an image the bot can read (PNG, JPEG, WebP or GIF)." in lines
    example = (
        "✗ Say what to change, e.g. /edit last make it night (or /edit <job id>#2 ... for its second image)."
    )
    assert lines.count(example) == 2


def test_edit_expands_the_home_directory(
    tmp_path: Path,
    cli: Cli,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made = cli("run", stdin="/hidream a fox\n")
    [path] = made.stdout.split()
    home = tmp_path / "home"
    home.mkdir()
    Path(path).rename(home / "fox.png")
    monkeypatch.setenv("HOME", str(home))
    edited = cli("run", stdin="/edit ~/fox.png make it night\n")
    assert edited.returncode == 0, edited.stderr
    assert "accepted: edit" in edited.stderr and len(edited.stdout.split()) == 1


async def test_edit_takes_one_image_of_a_multi_image_job_and_says_which(tmp_path: Path) -> None:
    made, err, factory = console_in(tmp_path)
    async with BotHarness(tmp_path, surfaces=[factory]) as bot:
        chat = made[0]
        await say(chat, "/hidream two foxes --n 2 --seed 3")
        parent = await bot.engine.job(chat.last_job_id or "")
        assert parent is not None and len(parent.result_media) == 2
        await say(chat, "/edit last make it night")
        assert (
            f"[{parent.id[:8]}] editing image 1 of 2; another: /edit {parent.id[:8]}#2 ..., all 2 combined"
            in err.getvalue()
        )
        first = await bot.engine.job(chat.last_job_id or "")
        assert first is not None and first.mode == "edit"
        assert first.reference_media == parent.result_media[:1] and first.parent_job_id == parent.id
        await say(chat, f"/edit {parent.id[:8]}#2 add snow")
        second = await bot.engine.job(chat.last_job_id or "")
        assert second is not None and second.mode == "edit"
        assert second.reference_media == parent.result_media[1:]
        await say(chat, f"/edit {parent.id[:8]}#3 add snow")
        assert f"{parent.id[:8]} has 2 images: choose #1 to #2, or #all." in err.getvalue()
        assert chat.failures == 1
        await say(chat, f"/edit {parent.id[:8]}#all the two foxes at night")
        both = await bot.engine.job(chat.last_job_id or "")
        assert both is not None and both.mode == "personalization"
        assert both.reference_media == parent.result_media
