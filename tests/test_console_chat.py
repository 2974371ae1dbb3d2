"""The console reads like a chat (issue 20, item 6): the prompt stays below what jobs print on a
terminal, a line that is no command gets one line naming the command meant, the console says "this
console" where other surfaces name a server, a failed job says its quota was given back, ranges and
money read sensibly, Ctrl-C says what resumes, and no message carries a library's wording.

The terminal tests run `hidream-bot run` in a child process on a pseudo-terminal, as a person starts it.
"""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import sqlite3
import subprocess
import sys
import time
import typing
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from bot import words
from bot.cli import main
from bot.model.config import Settings, env_names
from bot.plugins import discover
from tests.support.console import console_in, say
from tests.support.harness import BotHarness
from tests.support.processes import Cli, bot_env, logging_as_in_a_fresh_process, process_env

ROOT = Path(__file__).resolve().parents[1]
# What a library says where our words should be.
LEAKS = ("Value error", "Input should be", "pydantic", "Traceback", "validation error", "invalid literal")
# How long a terminal test waits for what it expects before it fails (never a condition to pass).
PATIENCE = 60.0
JOB_LINE = re.compile(r"\[[0-9a-f]{8}\] ")


def screen(raw: str) -> list[str]:
    """The lines a terminal shows for this output: a carriage return goes back to the line's start and
    ESC [K clears from there; the last entry is the line the cursor is on."""
    lines: list[str] = []
    line: list[str] = []
    col = 0
    i = 0
    while i < len(raw):
        if raw.startswith("\x1b[K", i):
            del line[col:]
            i += 3
            continue
        ch = raw[i]
        i += 1
        if ch == "\r":
            col = 0
        elif ch == "\n":
            lines.append("".join(line))
            line, col = [], 0
        else:
            if col < len(line):
                line[col] = ch
            else:
                line.append(ch)
            col += 1
    return [*lines, "".join(line)]


class Terminal:
    """`hidream-bot run` on a pseudo-terminal: standard input, output and error are all the terminal."""

    def __init__(self, tmp_path: Path, **env: str) -> None:
        self.master, slave = pty.openpty()
        self.raw = ""
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "run"],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            cwd=tmp_path,
            env=process_env(tmp_path, PYTHONPATH=str(ROOT), **env),
            start_new_session=True,
        )
        os.close(slave)

    def type(self, text: str) -> None:
        os.write(self.master, text.encode())

    def wait_for(self, shows: Callable[[list[str]], bool], what: str) -> list[str]:
        """Read until the screen shows what is expected; fail (with the screen) at PATIENCE."""
        deadline = time.monotonic() + PATIENCE
        while not shows(screen(self.raw)):
            left = deadline - time.monotonic()
            assert (left > 0 and self.proc.poll() is None) or shows(screen(self.raw)), (what, self.raw)
            ready, _, _ = select.select([self.master], [], [], min(left, 1.0))
            if ready:
                try:
                    self.raw += os.read(self.master, 65536).decode(errors="replace")
                except OSError:  # the child closed the terminal
                    assert shows(screen(self.raw)), (what, self.raw)
        return screen(self.raw)

    def finish(self) -> int:
        code = self.proc.wait(timeout=PATIENCE)
        while True:  # what is left on the terminal
            ready, _, _ = select.select([self.master], [], [], 0)
            if not ready:
                break
            try:
                chunk = os.read(self.master, 65536)
            except OSError:
                break
            if not chunk:
                break
            self.raw += chunk.decode(errors="replace")
        return code

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self.master)


@contextmanager
def terminal(tmp_path: Path, **env: str) -> Iterator[Terminal]:
    term = Terminal(tmp_path, **env)
    try:
        yield term
    finally:
        term.close()


def job_states(tmp_path: Path) -> list[str]:
    """The states of the jobs in the bot's database (read only, beside the running bot)."""
    path = tmp_path / "bot.db"
    if not path.exists():
        return []
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        try:
            return [state for (state,) in db.execute("SELECT state FROM jobs")]
        except sqlite3.OperationalError:  # not made yet
            return []


def prompting(lines: list[str]) -> bool:
    return lines[-1] == "hidream> "


def test_the_prompt_stays_below_what_jobs_print(tmp_path: Path) -> None:
    with terminal(tmp_path) as term:
        term.wait_for(prompting, "the first prompt")
        term.type("/hidream a red fox --seed 3\n")
        shown = term.wait_for(
            lambda s: any("done:" in line for line in s) and prompting(s), "done, then the prompt"
        )
        jobs = [line for line in shown if JOB_LINE.search(line)]
        assert any("accepted" in line for line in jobs) and any("Saving" in line for line in jobs)
        # Every line of the job's starts its own line: none is written after a waiting prompt.
        assert all(JOB_LINE.match(line) for line in jobs), shown
        [path] = [line for line in shown if line.endswith(".png")]
        assert Path(tmp_path, path).is_file() or Path(path).is_file()
        term.type("/quota\n")
        shown = term.wait_for(
            lambda s: any(line.startswith("You have") for line in s) and prompting(s), "quota"
        )
        term.type("\x04")  # Ctrl-D
        assert term.finish() == 0
    assert "Traceback" not in term.raw


def test_ctrl_c_says_that_unfinished_jobs_resume_and_they_do(tmp_path: Path, cli: Cli) -> None:
    # The sandbox takes its time: the job is still at the provider when the person presses Ctrl-C.
    with terminal(tmp_path, HIDREAM_SANDBOX_DELAY_SECONDS="600") as term:
        term.wait_for(prompting, "the first prompt")
        term.type("/hidream a patient fox --seed 5\n")
        term.wait_for(lambda s: any("accepted" in line for line in s) and prompting(s), "accepted")
        term.wait_for(lambda s: job_states(tmp_path) == ["running"], "the job at the provider")
        term.proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
        code = term.finish()
    shown = screen(term.raw)
    assert code == 130, term.raw
    assert words.stopped(1) in shown, shown
    assert (
        words.stopped(1) == "Stopped: 1 unfinished job resumes when the bot next starts with this database."
    )
    assert "Traceback" not in term.raw
    # The next start (same database, no delay now) finishes it: its image is written.
    resumed = cli("run", stdin="")
    assert resumed.returncode == 0, resumed.stderr
    [path] = resumed.stdout.split()
    assert Path(path).is_file()


async def test_a_line_that_is_no_command_gets_one_line_with_the_command_meant(tmp_path: Path) -> None:
    made, err, factory = console_in(tmp_path)
    async with BotHarness(tmp_path, surfaces=[factory]):
        [chat] = made
        for line in ("hello there", "/hidrem a fox --n 2", "/quotaa", "/frobnicate now"):
            before = len(err.getvalue())
            await chat.handle(line)
            said = err.getvalue()[before:].splitlines()
            assert len(said) == 1, said  # not the whole help
        lines = err.getvalue().splitlines()
    assert lines == [
        "Commands start with /: did you mean /hidream hello there? (/help lists them)",
        "Unknown command /hidrem: did you mean /hidream a fox --n 2?",
        "Unknown command /quotaa: did you mean /quota?",
        "Unknown command /frobnicate: /help lists them.",
    ]
    assert (
        words.did_you_mean("/hidream hello there", instead_of=None).count("`") == 2
    )  # code on chat surfaces


async def test_the_console_names_itself_where_others_name_a_server(tmp_path: Path) -> None:
    made, err, factory = console_in(tmp_path)
    async with BotHarness(tmp_path, surfaces=[factory]) as bot:
        [chat] = made
        await say(chat, "/policy ban dragon", "/hidream a dragon at dawn")
        await bot.engine.store.set_limit("console:local", "ceiling", "", 1, by="operator")
        await say(chat, "/hidream a cat", "/hidream a dog", "/quota")
    said = err.getvalue()
    assert "this console's policy blocks" in said and "Rephrase it" in said
    assert "This console has made 1 of the 1 images it may make today" in said
    assert "This console has made 1 of its 1 today" in said  # /quota
    assert not re.search(r"server|workspace|admins", said), said


async def test_a_failed_job_says_its_quota_was_given_back(tmp_path: Path) -> None:
    made, err, factory = console_in(tmp_path)
    async with BotHarness(tmp_path, surfaces=[factory]) as bot:
        [chat] = made
        await say(chat, "/hidream a fox sandbox-fail")
        status = await bot.engine.quota("console", "local", "local")
    failed = [line for line in err.getvalue().splitlines() if "asked to fail" in line]
    assert failed and failed[0].endswith("(the prompt says sandbox-fail). Your quota was given back."), failed
    assert status.used == 0  # and it was


async def test_a_one_image_job_has_no_numbers_to_choose_from(tmp_path: Path) -> None:
    made, err, factory = console_in(tmp_path)
    async with BotHarness(tmp_path, surfaces=[factory]):
        [chat] = made
        await say(chat, "/hidream a fox --seed 1", "/edit last#2 make it blue")
        job = chat.last_job_id
        await say(chat, "/hidream a fox --seed 1 --n 3", "/edit last#4 make it blue")
        three = chat.last_job_id
    assert job is not None and three is not None
    said = err.getvalue()
    assert f"✗ {job[:8]} has only one image: leave out the #, e.g. /edit {job[:8]} make it blue." in said
    assert f"✗ {three[:8]} has 3 images: choose #1 to #3, or #all." in said
    assert "#1 to #1" not in said and "image(s): choose" not in said


def test_budgets_are_refused_below_zero_and_written_as_money(cli: Cli, capsys: Any) -> None:
    negative = cli("quota", "budget", "--tenant", "console:local", "--usd", "-3")
    assert negative.returncode == 2 and "$-3" not in negative.stderr and "-3.0" not in negative.stderr
    assert negative.stderr.strip() == (
        "hidream-bot quota: -3 is out of range: a budget is 0 or more dollars a month, up to $1,000,000.00 "
        "(e.g. 25 or 12.50)."
    )
    ok = cli("quota", "budget", "--tenant", "console:local", "--usd", "3")
    assert ok.returncode == 0 and ok.stdout.strip() == "workspace console:local: monthly budget set to $3.00"
    shown = cli("quota", "show", "--tenant", "console:local")
    assert "of $3.00" in shown.stdout and "3.0 " not in shown.stdout
    # What is no number at all is refused before anything is opened, in our words, not argparse's.
    for args, said in [
        (["budget", "--tenant", "console:local", "--usd", "three"], "'three' is not an amount of dollars"),
        (["budget", "--tenant", "console:local", "--usd", "nan"], "'nan' is not an amount of dollars"),
        (
            ["grant", "--user", "console:x", "--tenant", "console:local", "--images", "2.5"],
            "'2.5' is not a whole",
        ),
    ]:
        capsys.readouterr()
        with pytest.raises(SystemExit) as exited:
            main(["quota", *args])
        err = capsys.readouterr().err
        assert exited.value.code == 2 and said in err, err
        assert "invalid float value" not in err and "invalid int value" not in err


# --- no library wording: every setting, every command --------------------------------------------------


def _settings() -> list[tuple[str, Any]]:
    """Every setting the bot reads (its own and every plugin's), with its type, from the settings models."""
    plugins = discover()
    classes = [Settings, *(p.settings_class for p in [*plugins.surfaces, *plugins.providers])]
    found: dict[str, Any] = {}
    for settings_class in classes:
        names = env_names(settings_class)
        for field, info in settings_class.model_fields.items():
            found.setdefault(names[field], info.annotation)
    return sorted(found.items())


def _bad_values(annotation: Any) -> list[tuple[str, bool]]:
    """Values of the wrong kind for a setting of this type, each with whether it must be refused
    (a value of the wrong type is; text settings get values their validators, if any, refuse)."""
    kinds = set(typing.get_args(annotation)) or {annotation}
    kinds.discard(type(None))
    if typing.get_origin(annotation) is typing.Literal:
        return [("no-such-choice", True)]
    if bool in kinds:
        return [("maybe", True)]
    if int in kinds:
        return [("many", True), ("2.5", True), ("-7", True), ("99999999999999999999", False)]
    if float in kinds:
        return [("soon", True), ("-1", False), ("nan", False)]
    if kinds & {str, Path, SecretStr}:
        return [("not, a ,, good value", False), ("x", False)]
    raise AssertionError(f"a setting of a type this test does not know: {annotation}")


SETTINGS = _settings()


def test_every_setting_is_listed() -> None:
    names = [name for name, _ in SETTINGS]
    assert len(names) > 50 and {"HIDREAM_SHOW_SPEND", "DISCORD_TOKEN", "SLACK_BOT_TOKEN", "FAL_KEY"} <= set(
        names
    )


@pytest.mark.parametrize(("variable", "annotation"), SETTINGS, ids=[name for name, _ in SETTINGS])
def test_a_bad_value_of_any_setting_is_said_in_our_words(
    variable: str, annotation: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    for value, refused in _bad_values(annotation):
        capsys.readouterr()
        with monkeypatch.context() as patch, logging_as_in_a_fresh_process():
            for name, setting in bot_env(tmp_path, **{variable: value}).items():
                patch.setenv(name, setting)
            code = main(["check"])
        out, err = capsys.readouterr()
        leaked = [leak for leak in LEAKS if leak.lower() in (out + err).lower()]
        assert not leaked, (variable, value, err)
        assert code in (0, 2), (variable, value, code, err)
        if refused:  # in one line that names the setting
            assert code == 2 and err.startswith(f"hidream-bot: invalid setting: {variable}: "), (value, err)
            assert len(err.strip().splitlines()) == 1, err


# Arguments no command takes: missing or malformed flags, values out of range, unknown jobs and
# subjects, numbers past a job's images, files that are no images, URLs inside the network.
BAD_ARGUMENTS = [
    "",
    "--n 99",
    "--n",
    "--seed abc",
    "--seed -4",
    "--steps 0",
    "--cfg lots",
    "--ar 0:0",
    "--ar wide",
    "--size 1x1",
    "--format gif",
    "--model huge",
    "--bogus",
    "--subject",
    "@",
    "x" * 6000,
    "nosuchjob",
    "nosuchjob#2",
    "last#0",
    "last#99",
    "last#all",
    "ban",
    "ban " + "y" * 300,
    "unban never-banned",
    "nsfw maybe",
    "tier ultra",
    "provider nowhere",
    "save",
    "save bad/name nosuchjob",
    "show nobody",
    "delete nobody",
    "/etc/hostname make it blue",
    "http://127.0.0.1:9/x.png a fox",
    "a fox --provider nowhere",
    "a fox --n 2 --n 3",
]


async def test_every_command_with_bad_arguments_answers_in_our_words(tmp_path: Path) -> None:
    made, err, factory = console_in(tmp_path)
    async with BotHarness(tmp_path, surfaces=[factory]):
        [chat] = made
        assert {"/hidream", "/edit", "/subject", "/vary", "/policy", "/help"} <= set(chat.commands)
        await say(chat, "/hidream a fox to edit --seed 1")
        for command in chat.commands:
            for arguments in BAD_ARGUMENTS:
                await say(chat, f"{command} {arguments}")
        said = err.getvalue()
    leaked = [line for line in said.splitlines() if any(leak.lower() in line.lower() for leak in LEAKS)]
    assert leaked == []
    assert said.count("✗ ") > len(BAD_ARGUMENTS)  # the bad arguments were refused, each in a line
