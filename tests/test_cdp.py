"""The browser helper (tests/support/cdp.py) stops the browser it started whatever goes wrong: a browser
that exits at once, one that never writes its DevTools port, one whose port cannot be reached, and a start
cancelled half way. After each, no process of the browser's group is left, nor any naming its profile.
"""

from __future__ import annotations

import asyncio
import socket
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cdp import CHROMIUM, FLAGS, Browser
from tests.support.harness import skip_unless_ci

# Chromium without a DevTools port: it runs, but never writes DevToolsActivePort.
NO_PORT = tuple(f for f in FLAGS if not f.startswith("--remote-debugging-port"))


@pytest.fixture
def chromium() -> Path:
    if not CHROMIUM.exists():
        skip_unless_ci(f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium; .ci/run installs it)")
    return CHROMIUM


def processes() -> Iterator[tuple[int, int, str]]:
    """(pid, process group, command line) of every process still running (zombies and processes
    on their way out left out)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # it ended while being read
        # A zombie has ended; so has a process with no command line left, whose memory the kernel
        # already took back on its way out (kernel threads have none either, in no group of ours).
        if fields[0] not in ("Z", "X") and cmdline:
            yield int(entry.name), int(fields[2]), cmdline


def left_of(group: int, profile: Path) -> list[tuple[int, str]]:
    return [(pid, cmd) for pid, pgrp, cmd in processes() if pgrp == group or str(profile) in cmd]


def standin(tmp_path: Path, body: str) -> Path:
    """A stand-in for the browser: a shell script given Chromium's arguments."""
    script = tmp_path / "browser.sh"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


async def test_a_browser_whose_port_cannot_be_reached_is_stopped_with_its_children(tmp_path: Path) -> None:
    # A port nobody listens on: bound by this test, never listening, so a connection is refused.
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        profile = tmp_path / "profile"
        profile.mkdir()
        pids = tmp_path / "pids"
        # It starts a helper of its own (as Chromium does), then writes the port as Chromium would.
        script = standin(
            tmp_path,
            f"sleep 600 & echo $$ $! > {pids}\n"
            f"printf '{port}\\n/devtools/browser/x\\n' > {profile}/DevToolsActivePort\n"
            "exec sleep 600",
        )
        browser = Browser(profile, executable=script)
        with pytest.raises(OSError):
            async with browser:
                pytest.fail("the browser could not be reached: entering must fail")
    main, child = (int(x) for x in pids.read_text().split())
    assert browser.pid == main
    assert left_of(main, profile) == []
    # Both ended (a zombie waiting for init to reap it does not count as running).
    assert {main, child}.isdisjoint(pid for pid, _, _ in processes())


async def test_a_browser_that_exits_at_start_says_so(tmp_path: Path) -> None:
    script = standin(tmp_path, "exit 3")
    with pytest.raises(RuntimeError, match="chromium exited at start with status 3"):
        async with Browser(tmp_path / "profile", executable=script):
            pytest.fail("the browser exited: entering must fail")


async def test_chromium_that_never_writes_its_port_is_stopped(tmp_path: Path, chromium: Path) -> None:
    profile = tmp_path / "profile"
    browser = Browser(profile, flags=NO_PORT, start_timeout=3)
    with pytest.raises(RuntimeError, match="wrote no DevTools port"):
        async with browser:
            pytest.fail("no port: entering must fail")
    assert browser.pid is not None
    assert left_of(browser.pid, profile) == []


async def test_chromium_is_stopped_when_its_start_is_cancelled(tmp_path: Path, chromium: Path) -> None:
    profile = tmp_path / "profile"
    browser = Browser(profile, flags=NO_PORT)
    entering = asyncio.create_task(browser.__aenter__())
    # Chromium is up when its group holds its helpers too (zygote, utility processes): a real browser.
    async with asyncio.timeout(60):
        while browser.pid is None or len(left_of(browser.pid, profile)) < 2:
            assert not entering.done(), entering
            await asyncio.sleep(0.05)
    running = left_of(browser.pid, profile)
    assert any(str(chromium) in cmd or "chrom" in cmd for _, cmd in running), running
    entering.cancel()
    with pytest.raises(asyncio.CancelledError):
        await entering
    assert left_of(browser.pid, profile) == []
