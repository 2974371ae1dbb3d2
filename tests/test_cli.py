"""`hidream-bot` as a user runs it: the console chat, check, quota, and a SIGKILL in the middle of a job.

Most tests call `bot.cli.main([...])` in this process (the `cli` fixture): what it prints and logs is read
back as the process's stdout and stderr, and its return value is the exit code. Two tests start real
processes: the smoke test of the installed `hidream-bot` script, and the SIGKILL test, which must kill one.
"""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from PIL import Image

from tests.support.credentials import png_chunks, without_credentials
from tests.support.processes import Cli, process_env

TIMEOUT = 60


def test_installed_script_makes_a_16_9_image_and_the_same_line_gives_the_same_bytes(
    tmp_path: Path, cli: Cli
) -> None:
    """The one smoke test of the installed entry point: a line piped into `hidream-bot run`, end to end."""
    script = Path(sys.executable).with_name("hidream-bot")
    assert script.is_file(), f"{script} is not installed: run `make setup`"
    line = "/hidream a red fox in snow --ar 16:9 --seed 7\n"
    first = subprocess.run(
        [str(script), "run"],
        input=line,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=process_env(tmp_path),
        timeout=TIMEOUT,
        check=False,
    )
    assert first.returncode == 0, first.stderr
    [path] = first.stdout.split()
    with Image.open(path) as img:
        assert img.format == "PNG"
        assert abs(img.width / img.height - 16 / 9) < 0.02
    second = cli("run", stdin=line)
    assert second.returncode == 0, second.stderr
    [path2] = second.stdout.split()
    # The same image, byte for byte; each file carries content credentials of its own (a manifest
    # signed anew, in its `caBX` chunk), which is all that tells the two files apart.
    signed = [Path(p).read_bytes() for p in (path, path2)]
    assert all(b"caBX" in [kind for kind, _ in png_chunks(data)] for data in signed)
    assert path2 != path and without_credentials(signed[1]) == without_credentials(signed[0])


def test_console_bad_flag_is_explained_and_writes_nothing(tmp_path: Path, cli: Cli) -> None:
    result = cli("run", stdin="/hidream a red fox --n 9\n")
    assert result.returncode == 1  # INTERFACE.md: 1 when any command was refused or failed
    # Plain text on the console: the shared message's Markdown backticks are taken out.
    assert "--n 9 is out of range: use a whole number from 1 to 4." in result.stderr
    assert "`" not in result.stderr
    assert result.stdout == ""
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_console_edit_of_the_last_result_and_of_a_file(cli: Cli) -> None:
    result = cli("run", stdin="/hidream a castle --seed 1\n/edit last make it night\n/quota\n")
    assert result.returncode == 0, result.stderr
    paths = result.stdout.split()
    assert len(paths) == 2 and Path(paths[0]).read_bytes() != Path(paths[1]).read_bytes()
    assert "You have 23 of 25 images left today" in result.stderr
    again = cli("run", stdin=f"/edit {paths[1]} add a moon --keep-aspect\n")
    assert again.returncode == 0, again.stderr
    [edited] = again.stdout.split()
    with Image.open(edited) as img, Image.open(paths[1]) as src:
        assert abs(img.width / img.height - src.width / src.height) < 0.05


def test_check_names_what_would_start_and_bad_settings(cli: Cli) -> None:
    ok = cli("check")
    assert ok.returncode == 0, ok.stderr
    assert "provider:  sandbox" in ok.stdout and "jobs are polled" in ok.stdout and "console" in ok.stdout
    bad = cli("check", HIDREAM_HTTP_PORT="eighty")
    assert bad.returncode == 2 and "HIDREAM_HTTP_PORT" in bad.stderr
    missing = cli("check", HIDREAM_PROVIDER="pixazo")
    assert missing.returncode == 2 and "PIXAZO_API_KEY" in missing.stderr


def test_quota_operator_commands(cli: Cli) -> None:
    cli("run", stdin="/hidream a tree --n 2\n")
    shown = cli("quota", "show", "--user", "console:local")
    assert "2 used of 25 today, 23 left" in shown.stdout, shown.stderr
    assert cli("quota", "set", "--user", "console:local", "--limit", "3").returncode == 0
    assert "2 used of 3 today, 1 left" in cli("quota", "show", "--user", "console:local").stdout
    refused = cli("run", stdin="/hidream a tree --n 2\n")
    assert "you have 1 of 3 left today" in refused.stderr and refused.stdout == "" and refused.returncode == 1
    cli("quota", "grant", "--user", "console:local", "--tenant", "console:local", "--images", "4")
    assert "2 used of 7 today, 5 left" in cli("quota", "show", "--user", "console:local").stdout
    cli("quota", "reset", "--user", "console:local", "--tenant", "console:local")
    assert "0 used of 7 today" in cli("quota", "show", "--user", "console:local").stdout
    ws = cli("quota", "set", "--workspace", "console:local", "--limit", "9")
    assert "workspace console:local: daily limit set to 9" in ws.stdout


def _job_states(db: Path) -> list[str]:
    if not db.exists():
        return []
    with sqlite3.connect(db) as conn:
        try:
            return [r[0] for r in conn.execute("SELECT state FROM jobs")]
        except sqlite3.OperationalError:
            return []


async def _start_a_job_then_sigkill(tmp_path: Path, db: Path) -> None:
    # The sandbox would take an hour: the job is surely in flight when the process dies.
    # INFO: a console-only run shows only warnings unless asked, and the test waits for an INFO line.
    env = process_env(tmp_path, HIDREAM_SANDBOX_DELAY_SECONDS="3600", HIDREAM_LOG_LEVEL="INFO")
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


def test_sigkill_mid_job_then_restart_delivers_exactly_once(tmp_path: Path, cli: Cli) -> None:
    db = tmp_path / "bot.db"
    # A real process, killed for real: nothing of it may run on (no finally, no atexit, no flush).
    asyncio.run(_start_a_job_then_sigkill(tmp_path, db))
    assert not (tmp_path / "out").exists()

    # Same database, and now the sandbox finishes at once: the restarted bot polls and delivers.
    restarted = cli("run", HIDREAM_SANDBOX_DELAY_SECONDS="0", HIDREAM_LOG_LEVEL="INFO")
    assert restarted.returncode == 0, restarted.stderr
    assert "resumed 1 unfinished job" in restarted.stderr
    files = sorted((tmp_path / "out").iterdir())
    assert len(files) == 2 and restarted.stdout.split() == [str(f) for f in files]
    assert _job_states(db) == ["delivered"]
    # A third start has nothing left to do and posts nothing again.
    third = cli("run")
    assert third.returncode == 0 and third.stdout == ""
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT state, images FROM ledger").fetchall() == [("committed", 2)]


def test_a_copied_env_example_is_a_valid_sandbox_configuration(tmp_path: Path, cli: Cli) -> None:
    example = Path(__file__).resolve().parent.parent / ".env.example"
    (tmp_path / ".env").write_text(example.read_text())
    result = cli("check")
    assert result.returncode == 0, result.stderr
    assert "provider:  sandbox" in result.stdout and "console (no chat credentials set)" in result.stdout
    documented = {
        line.split("=", 1)[0] for line in example.read_text().splitlines() if "=" in line and line[0] != "#"
    }
    from bot.model.config import Settings, env_names
    from bot.plugins import discover
    from tests.support.harness import SETTINGS_ENV

    plugins = discover()
    classes = [Settings] + [p.settings_class for p in [*plugins.surfaces, *plugins.providers]]
    read = {name for cls in classes for name in env_names(cls).values()}
    assert documented == set(SETTINGS_ENV) == read


def test_a_busy_port_is_named_not_a_traceback(cli: Cli) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        result = cli("run", stdin="", HIDREAM_HTTP_PORT=port)
    assert result.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr and "HIDREAM_HTTP_PORT" in result.stderr
    assert "Traceback" not in result.stderr


def test_operator_quota_commands_work_per_tenant_and_name_the_source(cli: Cli) -> None:
    cli("run", stdin="/hidream a tree --n 2\n")
    wrong = cli("quota", "show", "--user", "local")
    assert wrong.returncode == 2 and "is not SURFACE:ID" in wrong.stderr
    assert (
        cli("quota", "set", "--user", "console:local", "--tenant", "console:local", "--limit", "4").returncode
        == 0
    )
    shown = cli("quota", "show", "--user", "console:local").stdout
    assert "console:local in console:local: 2 used of 4 today, 2 left" in shown
    assert "limit 4 from your own limit, set by an operator" in shown
    assert cli("quota", "ceiling", "--tenant", "console:local", "--limit", "3").returncode == 0
    assert cli("quota", "budget", "--tenant", "console:local", "--usd", "12.5").returncode == 0
    tenant = cli("quota", "show", "--tenant", "console:local").stdout
    assert "ceiling 2 of 3 made today" in tenant and "monthly budget $0.0000 of $12.50" in tenant
    assert "user console:local: 4 a day, set by an operator" in tenant
    refused = cli("run", stdin="/hidream two more --n 2\n")
    assert refused.returncode == 1 and "has made 2 of the 3 images it may make today" in refused.stderr
    huge = cli(
        "quota",
        "grant",
        "--user",
        "console:local",
        "--tenant",
        "console:local",
        "--images",
        "99999999999999999999",
    )
    assert huge.returncode == 2 and "out of range" in huge.stderr


def test_operators_set_the_most_a_tenants_admins_may_give(cli: Cli) -> None:
    def most(**env: str) -> str:
        shown = cli("quota", "show", "--tenant", "console:team1", **env)
        assert shown.returncode == 0, shown.stderr
        return shown.stdout

    assert "admins may give a member at most 25 a day" in most()  # the daily quota
    assert "admins may give a member at most 40 a day" in most(HIDREAM_ADMIN_MAX_LIMIT="40")
    raised = cli("quota", "admin-max", "--tenant", "console:team1", "--limit", "60")
    assert (
        raised.returncode == 0 and "the highest limit its admins may give a member set to 60" in raised.stdout
    )
    assert "admins may give a member at most 60 a day" in most(HIDREAM_ADMIN_MAX_LIMIT="40")
    assert "admin_max (every member): 60 a day, set by an operator" in most()
    assert cli("quota", "admin-max", "--tenant", "console:team1", "--clear").returncode == 0
    assert "admins may give a member at most 40 a day" in most(HIDREAM_ADMIN_MAX_LIMIT="40")
    assert cli("quota", "admin-max", "--tenant", "console:team1", "--limit", "-1").returncode == 2
    capped = cli(
        "quota",
        "show",
        "--user",
        "console:local",
        "--tenant",
        "console:local",
        HIDREAM_DAILY_PERSON_QUOTA="9",
    )
    assert "in every tenant: 0 of 9 made today" in capped.stdout
