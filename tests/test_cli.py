"""`hidream-bot` as a user runs it: the console chat, check, quota, and a SIGKILL in the middle of a job."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from PIL import Image

TIMEOUT = 60


def bot_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    keep = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(
            ("HIDREAM_", "DISCORD_", "SLACK_", "PIXAZO_", "ATLASCLOUD_", "FAL_", "WAVESPEED_")
        )
    }
    keep.update(
        HIDREAM_DB_PATH=str(tmp_path / "bot.db"),
        HIDREAM_HTTP_PORT="0",
        HIDREAM_OUTPUT_DIR=str(tmp_path / "out"),
        HIDREAM_SANDBOX_DELAY_SECONDS="0",
    )
    keep.update(extra)
    return keep


def run_cli(tmp_path: Path, *args: str, stdin: str = "", **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=bot_env(tmp_path, **env),
        timeout=TIMEOUT,
        check=False,
    )


def test_console_makes_a_16_9_image_and_the_same_line_gives_the_same_bytes(tmp_path: Path) -> None:
    line = "/hidream a red fox in snow --ar 16:9 --seed 7\n"
    first = run_cli(tmp_path, "run", stdin=line)
    assert first.returncode == 0, first.stderr
    [path] = first.stdout.split()
    with Image.open(path) as img:
        assert img.format == "PNG"
        assert abs(img.width / img.height - 16 / 9) < 0.02
    second = run_cli(tmp_path, "run", stdin=line)
    assert second.returncode == 0, second.stderr
    [path2] = second.stdout.split()
    assert path2 != path and Path(path2).read_bytes() == Path(path).read_bytes()


def test_console_bad_flag_is_explained_and_writes_nothing(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "run", stdin="/hidream a red fox --n 9\n")
    assert result.returncode == 0
    assert "`--n 9` is out of range: use a whole number from 1 to 4." in result.stderr
    assert result.stdout == ""
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_console_edit_of_the_last_result_and_of_a_file(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "run", stdin="/hidream a castle --seed 1\n/edit last make it night\n/quota\n")
    assert result.returncode == 0, result.stderr
    paths = result.stdout.split()
    assert len(paths) == 2 and Path(paths[0]).read_bytes() != Path(paths[1]).read_bytes()
    assert "You have 23 of 25 images left today" in result.stderr
    again = run_cli(tmp_path, "run", stdin=f"/edit {paths[1]} add a moon --keep-aspect\n")
    assert again.returncode == 0, again.stderr
    [edited] = again.stdout.split()
    with Image.open(edited) as img, Image.open(paths[1]) as src:
        assert abs(img.width / img.height - src.width / src.height) < 0.05


def test_check_names_what_would_start_and_bad_settings(tmp_path: Path) -> None:
    ok = run_cli(tmp_path, "check")
    assert ok.returncode == 0, ok.stderr
    assert "provider:  sandbox" in ok.stdout and "jobs are polled" in ok.stdout and "console" in ok.stdout
    bad = run_cli(tmp_path, "check", HIDREAM_HTTP_PORT="eighty")
    assert bad.returncode == 2 and "HIDREAM_HTTP_PORT" in bad.stderr
    missing = run_cli(tmp_path, "check", HIDREAM_PROVIDER="pixazo")
    assert missing.returncode == 2 and "PIXAZO_API_KEY" in missing.stderr


def test_quota_operator_commands(tmp_path: Path) -> None:
    run_cli(tmp_path, "run", stdin="/hidream a tree --n 2\n")
    shown = run_cli(tmp_path, "quota", "show", "--user", "console:local")
    assert "2 used of 25 today, 23 left" in shown.stdout, shown.stderr
    assert run_cli(tmp_path, "quota", "set", "--user", "console:local", "--limit", "3").returncode == 0
    assert "2 used of 3 today, 1 left" in run_cli(tmp_path, "quota", "show", "--user", "console:local").stdout
    refused = run_cli(tmp_path, "run", stdin="/hidream a tree --n 2\n")
    assert "you have 1 of 3 left today" in refused.stderr and refused.stdout == ""
    run_cli(tmp_path, "quota", "grant", "--user", "console:local", "--images", "4")
    assert "2 used of 7 today, 5 left" in run_cli(tmp_path, "quota", "show", "--user", "console:local").stdout
    run_cli(tmp_path, "quota", "reset", "--user", "console:local")
    assert "0 used of 7 today" in run_cli(tmp_path, "quota", "show", "--user", "console:local").stdout
    ws = run_cli(tmp_path, "quota", "set", "--workspace", "console:local", "--limit", "9")
    assert "workspace console:local: daily limit set to 9" in ws.stdout


def _job_states(db: Path) -> list[str]:
    if not db.exists():
        return []
    with sqlite3.connect(db) as conn:
        try:
            return [r[0] for r in conn.execute("SELECT state FROM jobs")]
        except sqlite3.OperationalError:
            return []


async def test_sigkill_mid_job_then_restart_delivers_exactly_once(tmp_path: Path) -> None:
    db = tmp_path / "bot.db"
    # The sandbox would take an hour: the job is surely in flight when the process dies.
    env = bot_env(tmp_path, HIDREAM_SANDBOX_DELAY_SECONDS="3600")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot.cli",
        "run",
        cwd=tmp_path,
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdin is not None
    proc.stdin.write(b"/hidream a phoenix --seed 9 --n 2\n")
    await proc.stdin.drain()
    assert proc.stderr is not None
    async with asyncio.timeout(TIMEOUT):
        # The runner logs this line once the job is stored as running at the provider.
        while b"submitted to sandbox as" not in await proc.stderr.readline():
            pass
    assert _job_states(db) == ["running"]
    proc.send_signal(signal.SIGKILL)
    await proc.wait()
    assert not (tmp_path / "out").exists()

    # Same database, and now the sandbox finishes at once: the restarted bot polls and delivers.
    restarted = await asyncio.to_thread(run_cli, tmp_path, "run", HIDREAM_SANDBOX_DELAY_SECONDS="0")
    assert restarted.returncode == 0, restarted.stderr
    assert "resumed 1 unfinished job" in restarted.stderr
    files = sorted((tmp_path / "out").iterdir())
    assert len(files) == 2 and restarted.stdout.split() == [str(f) for f in files]
    assert _job_states(db) == ["delivered"]
    # A third start has nothing left to do and posts nothing again.
    third = await asyncio.to_thread(run_cli, tmp_path, "run")
    assert third.returncode == 0 and third.stdout == ""
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT state, images FROM ledger").fetchall() == [("committed", 2)]


def test_a_copied_env_example_is_a_valid_sandbox_configuration(tmp_path: Path) -> None:
    example = Path(__file__).resolve().parent.parent / ".env.example"
    (tmp_path / ".env").write_text(example.read_text())
    result = run_cli(tmp_path, "check")
    assert result.returncode == 0, result.stderr
    assert "provider:  sandbox" in result.stdout and "console (no chat credentials set)" in result.stdout
    documented = {
        line.split("=", 1)[0] for line in example.read_text().splitlines() if "=" in line and line[0] != "#"
    }
    from bot.config import Settings
    from tests.harness import SETTINGS_ENV

    assert documented == set(SETTINGS_ENV) == {f.alias for f in Settings.model_fields.values()}


def test_a_busy_port_is_named_not_a_traceback(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        result = run_cli(tmp_path, "run", stdin="", HIDREAM_HTTP_PORT=port)
    assert result.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr and "HIDREAM_HTTP_PORT" in result.stderr
    assert "Traceback" not in result.stderr
