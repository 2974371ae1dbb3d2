"""A newcomer's first run (issue 12, point 5), outside the console chat itself: `make run` keeps standard
output for image paths and installs no test tools; the README says how to go on; a console-only run
moves off a taken default port (never off one that was set) and logs only warnings unless asked;
`.gitignore` covers everything a run leaves behind.

The Makefile is checked twice: by reading its recipes (every line of the run path silent, the install
without dev dependencies), and by one real `make run` piped a line. That real run reuses this checkout's
`.venv`: its sync is `--inexact`, so it takes nothing away from the environment the tests run in, and a
synced environment makes it quick; a copy of the repository would install everything again.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
import pytest

import bot.model.config
from bot.app import select, start_bot
from bot.cli import _log_level
from bot.model.config import Settings
from tests.support.processes import Cli, process_env

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 120


def recipes(target: str) -> list[str]:
    """The recipe lines of `target` in the Makefile, as written (a continued line joined to its start)."""
    lines = (ROOT / "Makefile").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(rf"^{re.escape(target)}:", line))
    body: list[str] = []
    for line in lines[start + 1 :]:
        if not line.startswith("\t"):
            break
        if body and body[-1].endswith("\\"):  # a line continued: one command
            body[-1] = body[-1][:-1] + line.strip()
        else:
            body.append(line[1:])
    return body


def prerequisites(target: str) -> list[str]:
    line = next(x for x in (ROOT / "Makefile").read_text().splitlines() if x.startswith(f"{target}:"))
    return line.split(":", 1)[1].split()


def test_make_run_and_check_echo_no_recipe_and_install_no_test_tools() -> None:
    for target in ("run", "check"):
        chain = [target, *prerequisites(target)]
        assert "setup" not in chain, f"{target} must not install the dev dependencies"
        seen = [t for name in chain for t in [name, *prerequisites(name)]]
        lines = [line for name in dict.fromkeys(seen) for line in recipes(name)]
        assert lines, target
        # `@`: make does not print the command on standard output before running it.
        assert all(line.startswith("@") for line in lines), lines
        syncs = [line for line in lines if " sync " in line]
        assert syncs and all("--no-dev" in s and "--quiet" in s and s.endswith(">&2") for s in syncs)
        [started] = [line for line in recipes(target) if "hidream-bot" in line]
        assert "--no-dev" in started and "--quiet" in started and started.endswith(f"hidream-bot {target}")
    # The first run may make the tool environment (.tools/, uv in it): silent too, its tools' chatter on
    # standard error, and `uv` depends on it exactly when no uv was found.
    bootstrap = recipes("$(TOOLS)/bin/uv")
    assert bootstrap and all(line.startswith("@") for line in bootstrap), bootstrap
    installs = [line for line in bootstrap if "-m venv" in line or "pip install" in line]
    assert installs and all(">&2" in line for line in installs), installs
    assert prerequisites("uv") == ["$(if", "$(filter", "$(TOOLS)/bin/uv,$(UV)),$(TOOLS)/bin/uv)"]
    # make's own view agrees: the run path syncs without dev dependencies.
    dry = subprocess.run(["make", "-n", "run"], cwd=ROOT, capture_output=True, text=True, check=True)
    assert re.search(r"sync --frozen --no-dev\b", dry.stdout), dry.stdout
    # The test tools are still installed by the targets that need them.
    assert any(line.endswith("sync --frozen") for line in recipes("setup"))
    assert "setup" in prerequisites("lint")


def test_piped_make_run_prints_only_the_image_path_on_stdout(tmp_path: Path) -> None:
    if (ROOT / ".env").exists():
        pytest.skip(f"{ROOT / '.env'} would configure the bot this test starts from the checkout")
    if shutil.which("make") is None:
        pytest.fail("make is not installed: `make run` is the documented first step")
    # As a person's shell runs it: not inside the `make test` that may be running this test, whose
    # MAKELEVEL and MAKEFLAGS would make this make name the folder it enters on standard output.
    env = {k: v for k, v in process_env(tmp_path).items() if k not in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS")}
    env["PYTHON"] = sys.executable
    done = subprocess.run(
        ["make", "run"],
        cwd=ROOT,
        env=env,
        input="/hidream a red fox in snow --ar 16:9 --seed 7\n",
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert done.returncode == 0, done.stderr
    [path] = done.stdout.splitlines()
    assert Path(path).is_file() and Path(path).parent == tmp_path / "out"
    # The recipes were run (the bot said what it made), but none of them was echoed anywhere.
    assert "done: 1 image(s) by sandbox" in done.stderr
    assert "hidream-bot run" not in done.stdout + done.stderr


def test_readme_tells_a_newcomer_how_to_go_on() -> None:
    readme = (ROOT / "README.md").read_text()
    top = readme.split("## Contents", 1)[0]
    for needle in (
        "uv run --no-dev hidream-bot",
        ".venv/bin/hidream-bot",
        "make check",
        "Ctrl-D",
        "127.0.0.1:8080",
        "HIDREAM_HTTP_PORT",
        "HIDREAM_LOG_LEVEL",
    ):
        assert needle in top, needle
    assert recipes("check"), "the README names `make check`: it exists"


@pytest.fixture
def held_default_port(monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """A port this test holds open, standing in for the default 8080 (never the real one)."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port: int = taken.getsockname()[1]
        monkeypatch.setattr(bot.model.config, "DEFAULT_HTTP_PORT", port)
        yield port


def test_a_console_run_moves_off_a_taken_default_port_and_says_so(held_default_port: int, cli: Cli) -> None:
    # Empty is "not set" (as in a copied .env.example): the default port, taken.
    result = cli("run", stdin="/hidream a fox\n", HIDREAM_HTTP_PORT="")
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.split()) == 1
    moved = re.search(
        rf"port {held_default_port} is taken: .* listens on http://127\.0\.0\.1:(\d+) ", result.stderr
    )
    assert moved is not None, result.stderr
    assert int(moved[1]) not in (held_default_port, 0)
    assert "HIDREAM_HTTP_PORT" in result.stderr


async def test_the_moved_server_answers_on_its_new_port(held_default_port: int, tmp_path: Path) -> None:
    settings = Settings(_env_file=None, HIDREAM_DB_PATH=str(tmp_path / "bot.db"))
    assert settings.http_port == held_default_port and not settings.chosen("http_port")
    async with AsyncExitStack() as stack:
        running = await start_bot(settings, stack)
        assert running.server.port != held_default_port
        async with httpx.AsyncClient() as client:
            health = await client.get(f"{running.server_url}/healthz")
        assert health.status_code == 200 and health.json()["surfaces"] == ["console"]


def test_a_port_that_was_set_is_never_moved(held_default_port: int, cli: Cli) -> None:
    result = cli("run", stdin="/hidream a fox\n", HIDREAM_HTTP_PORT=str(held_default_port))
    assert result.returncode == 2 and result.stdout == ""
    [line] = result.stderr.splitlines()
    assert f"cannot listen on 127.0.0.1:{held_default_port}" in line and "HIDREAM_HTTP_PORT" in line


def test_a_chat_platform_run_never_moves_off_its_port(held_default_port: int, cli: Cli) -> None:
    # Slack (HTTP mode) posts to this port: moving would lose its requests. It stops before connecting.
    result = cli(
        "run",
        HIDREAM_HTTP_PORT="",
        SLACK_BOT_TOKEN="xoxb-1-first-run-test",
        SLACK_SIGNING_SECRET="first-run-test-signing-secret",
    )
    assert result.returncode == 2
    assert f"cannot listen on 127.0.0.1:{held_default_port}" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_console_run_logs_only_warnings_unless_asked(cli: Cli) -> None:
    quiet = cli("run", stdin="/hidream a fox\n")
    assert quiet.returncode == 0, quiet.stderr
    assert " INFO " not in quiet.stderr and "done: 1 image(s)" in quiet.stderr
    asked = cli("run", stdin="/hidream a fox\n", HIDREAM_LOG_LEVEL="INFO")
    assert asked.returncode == 0, asked.stderr
    assert " INFO hidream-bot: ready: provider sandbox" in asked.stderr


def test_a_chat_platform_run_keeps_info_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [k for k in os.environ if k.startswith(("HIDREAM_", "SLACK_", "DISCORD_"))]:
        monkeypatch.delenv(name)
    console = Settings(_env_file=None)
    assert _log_level(console, select(console)) == "WARNING"
    chosen = Settings(_env_file=None, HIDREAM_LOG_LEVEL="debug")
    assert _log_level(chosen, select(chosen)) == "DEBUG"
    slack = Settings(_env_file=None, SLACK_BOT_TOKEN="xoxb-1-test", SLACK_APP_TOKEN="xapp-1-test")
    assert _log_level(slack, select(slack)) == "INFO"


def test_gitignore_covers_everything_a_run_leaves(tmp_path: Path, cli: Cli) -> None:
    shutil.copy(ROOT / ".gitignore", tmp_path / ".gitignore")
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    # The defaults (empty is "not set"): the database and the images land in the working directory.
    result = cli(
        "run",
        stdin="/hidream a fox --n 2\n/edit last make it night\n",
        HIDREAM_DB_PATH="",
        HIDREAM_OUTPUT_DIR="",
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "hidream-bot.db").is_file() and (tmp_path / "hidream-output").is_dir()
    left = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert left.stdout.splitlines() == ["?? .gitignore"]
    # What a run may leave that this one did not (SQLite's files while it runs; tools' caches).
    others = [
        "hidream-bot.db-wal",
        "hidream-bot.db-shm",
        "hidream-bot.db.fal/state",
        ".venv/bin/python",
        "bot/__pycache__/app.cpython-311.pyc",
        ".pytest_cache/v/cache",
        ".mypy_cache/3.11/x.json",
        ".ruff_cache/x",
        "test-artifacts/admin.png",
        "bench-results/x.json",
    ]
    ignored = subprocess.run(
        ["git", "check-ignore", "--no-index", *others], cwd=tmp_path, capture_output=True, text=True
    )
    assert ignored.stdout.splitlines() == others
