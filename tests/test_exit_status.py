"""The exit statuses docs/first-run.md gives (issue 20, item 5) are the ones `hidream-bot run` and
`make run` return: every row of its table is run here, and no status is returned that it leaves out.

`make run` cannot pass the bot's status through (make exits 2 whenever a recipe fails); its last line
names the bot's status instead, which this checks too. The real `make run` reuses this checkout's `.venv`
(its sync is `--inexact`: it takes nothing away), as tests/test_first_run.py's does.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.processes import Cli, process_env

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "first-run.md"
FOX = "/hidream a red fox in snow --seed 7\n"
REFUSED = "/hidream a fox --seed 1\n/hidream a fox --steps 0\n"
BAD_SETTING = {"HIDREAM_HTTP_PORT": "not-a-port"}


def documented() -> set[tuple[str, int]]:
    """(command, status) of each row of the Exit status table."""
    section = DOC.read_text().split("## Exit status", 1)[1]
    rows = re.findall(r"^\| `([^`]+)` \| (\d+) \|", section, re.M)
    return {(command, int(status)) for command, status in rows}


def test_the_table_names_the_statuses_of_both_commands() -> None:
    assert documented() == {
        ("hidream-bot run", 0),
        ("hidream-bot run", 1),
        ("hidream-bot run", 2),
        ("make run", 0),
        ("make run", 2),
    }


@pytest.mark.parametrize(
    ("stdin", "env", "status"),
    [(FOX, {}, 0), (REFUSED, {}, 1), (FOX, BAD_SETTING, 2)],
    ids=["succeeded", "refused", "bad-setting"],
)
def test_hidream_bot_run_returns_the_documented_status(
    cli: Cli, stdin: str, env: dict[str, str], status: int
) -> None:
    assert ("hidream-bot run", status) in documented()
    result = cli("run", stdin=stdin, **env)
    assert result.returncode == status, result.stderr
    if status == 2:
        [line] = result.stderr.splitlines()
        assert "HIDREAM_HTTP_PORT" in line and result.stdout == ""


def make_run(tmp_path: Path, stdin: str, **settings: str) -> subprocess.CompletedProcess[str]:
    # As a person's shell runs it: not inside a `make test` whose MAKELEVEL would change make's output.
    env = {
        k: v
        for k, v in process_env(tmp_path, **settings).items()
        if k not in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS")
    }
    env["PYTHON"] = sys.executable
    return subprocess.run(
        ["make", "run"], cwd=ROOT, env=env, input=stdin, capture_output=True, text=True, timeout=300
    )


@pytest.mark.parametrize(
    ("stdin", "env", "bot_status"),
    [(FOX, {}, 0), (REFUSED, {}, 1), (FOX, BAD_SETTING, 2)],
    ids=["succeeded", "refused", "bad-setting"],
)
def test_make_run_returns_0_or_2_and_names_the_bots_status(
    tmp_path: Path, stdin: str, env: dict[str, str], bot_status: int
) -> None:
    status = 0 if bot_status == 0 else 2
    assert ("make run", status) in documented()
    done = make_run(tmp_path, stdin, **env)
    assert done.returncode == status, done.stderr
    if bot_status == 0:
        assert len(done.stdout.split()) == 1 and "Error" not in done.stderr
        return
    # make's own last line, the only one make adds, names the bot's status.
    *bot_lines, last = done.stderr.splitlines()
    assert re.fullmatch(rf"make: \*\*\* \[Makefile:\d+: run\] Error {bot_status}", last), last
    assert not any(line.startswith("make") for line in bot_lines), bot_lines
