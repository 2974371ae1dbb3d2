"""`make run` on a machine as a newcomer has it (issue 20, item 1): a system Python that refuses installs
(PEP 668's EXTERNALLY-MANAGED, as Debian's and Ubuntu's do), no uv anywhere on PATH, a fresh copy of the
repository. The Makefile makes its own tool environment (.tools/, a venv of that Python) with uv in it,
installs the bot's locked dependencies without the test tools, and the console makes an image through the
sandbox; nothing is installed into the system Python. Then the statuses a refused command gives through
make, directly, and through the `uv run --no-dev` line docs/first-run.md gives (which installs no test
tools either).

A Python too old, or without its venv module (Debian's python3-venv), stops make with one line saying what
to install.

This is the one test that reaches a package registry: pip in .tools/ fetches uv from PyPI, and uv the
bot's dependencies (from uv's cache when they are there). It takes a minute or two the first time.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from tests.support.harness import skip_unless_ci
from tests.support.processes import process_env

ROOT = Path(__file__).resolve().parent.parent
# Debian's own directories only: its python3, make, a shell; no pyenv, no ~/.local/bin, no uv.
SYSTEM_PATH = "/usr/bin:/bin"
INSTALL_TIMEOUT = 1500
FOX = "/hidream a red fox in snow --ar 16:9 --seed 7\n"
REFUSED = "/hidream a fox --seed 1\n/hidream a fox --steps 0\n"


def python_says(python: str, code: str, path: str = SYSTEM_PATH) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [python, "-c", code], env={"PATH": path}, capture_output=True, text=True, timeout=60
    )


def marker_of(python: str) -> Path:
    """Where PEP 668 puts the marker of an externally managed Python: its stdlib directory."""
    stdlib = python_says(python, "import sysconfig; print(sysconfig.get_path('stdlib'))").stdout.strip()
    return Path(stdlib) / "EXTERNALLY-MANAGED"


def copy_of_repository(target: Path) -> Path:
    """The repository as a fresh clone of this work would hold it: every file git tracks or would add
    (this checkout's versions, committed or not), none it ignores (.venv/, .tools/, .env, caches)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, (n.decode() for n in listed)):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


def newcomer_env(tmp_path: Path) -> dict[str, str]:
    """This process's environment less what would point make, uv or Python elsewhere, with the system's
    PATH, and the bot's test settings (its database and images in tmp_path)."""
    drop = ("MAKELEVEL", "MAKEFLAGS", "MFLAGS", "VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "UV_PYTHON")
    env = {k: v for k, v in process_env(tmp_path).items() if k not in drop and not k.startswith("UV_PROJECT")}
    env["PATH"] = SYSTEM_PATH
    return env


@pytest.fixture
def system_python() -> str:
    """Debian's (or Ubuntu's) python3: 3.11 or newer, PEP 668 marked, and no uv of its own."""
    python = shutil.which("python3", path=SYSTEM_PATH)
    if python is None or not marker_of(python).is_file():
        skip_unless_ci(f"no externally managed python3 (PEP 668) on {SYSTEM_PATH}")
    assert python_says(python, "import sys; assert sys.version_info >= (3, 11)").returncode == 0
    assert shutil.which("uv", path=SYSTEM_PATH) is None, f"uv is on {SYSTEM_PATH}: nothing to bootstrap"
    assert python_says(python, "import uv").returncode != 0, f"{python} has uv already"
    # It refuses a system install: what the Makefile used to do and must not do.
    if python_says(python, "import pip").returncode == 0:
        refused = python_says(
            python,
            "import subprocess, sys; sys.exit(subprocess.call("
            "[sys.executable, '-m', 'pip', 'install', '--dry-run', '--quiet', 'uv']))",
        )
        assert refused.returncode != 0 and "externally-managed-environment" in refused.stderr, refused.stderr
    return python


def make(repo: Path, env: dict[str, str], stdin: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", *args],
        cwd=repo,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT,
    )


@pytest.mark.timeout(3 * INSTALL_TIMEOUT)
def test_make_run_installs_itself_beside_a_pep_668_python_without_uv(
    tmp_path: Path, system_python: str
) -> None:
    if shutil.which("make", path=SYSTEM_PATH) is None:
        pytest.fail("make is not installed: `make run` is the documented first step")
    repo = copy_of_repository(tmp_path / "repo")
    env = newcomer_env(tmp_path)

    first = make(repo, env, FOX, "run")
    assert first.returncode == 0, first.stderr
    # Standard output: the image's path, nothing else (no make, pip or uv chatter).
    [path] = first.stdout.splitlines()
    assert Path(path).parent == tmp_path / "out"
    with Image.open(path) as image:
        assert image.size[0] > image.size[1]  # 16:9, made by the sandbox
    assert "done: 1 image(s) by sandbox" in first.stderr
    # make's own uv, in its own venv of the system Python; the bot's environment without the test tools.
    uv = repo / ".tools" / "bin" / "uv"
    assert uv.is_file()
    assert (repo / ".tools" / "pyvenv.cfg").read_text().count(str(Path(system_python).parent)) >= 1
    assert (repo / ".venv" / "bin" / "hidream-bot").is_file()
    assert not list((repo / ".venv").glob("lib/python3*/site-packages/pytest"))
    # Nothing went into the system Python.
    assert python_says(system_python, "import uv").returncode != 0
    # And git would not offer to commit any of it.
    ignored = subprocess.run(
        ["git", "check-ignore", "--no-index", ".tools/bin/uv", ".venv/bin/python"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert ignored.stdout.split() == [".tools/bin/uv", ".venv/bin/python"]

    # A refused command: through make, make's status 2 after its line naming the bot's status 1.
    made_before = uv.stat().st_mtime_ns
    refused = make(repo, env, REFUSED, "run")
    assert refused.returncode == 2 and len(refused.stdout.split()) == 1, refused.stderr
    assert refused.stderr.splitlines()[-1].endswith("] Error 1"), refused.stderr
    assert uv.stat().st_mtime_ns == made_before  # the tool environment is made once
    # The same command directly: the bot's own status, 1.
    direct = subprocess.run(
        [str(repo / ".venv" / "bin" / "hidream-bot"), "run"],
        cwd=repo,
        env=env,
        input=REFUSED,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert direct.returncode == 1 and len(direct.stdout.split()) == 1, direct.stderr
    # Through uv as docs/first-run.md writes it: the same status, and still no test tools installed.
    through_uv = subprocess.run(
        [str(uv), "run", "--no-dev", "hidream-bot", "run"],
        cwd=repo,
        env=env,
        input=REFUSED,
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT,
    )
    assert through_uv.returncode == 1 and len(through_uv.stdout.split()) == 1, through_uv.stderr
    assert not list((repo / ".venv").glob("lib/python3*/site-packages/pytest"))
    assert "uv run --no-dev hidream-bot run" in (ROOT / "docs" / "first-run.md").read_text()


@pytest.fixture
def stand_ins(tmp_path: Path, system_python: str) -> dict[str, Path]:
    """Folders that, on PYTHONPATH, make the system Python look 3.9 or lack ensurepip (as Debian's does
    without python3-venv): Python reads sitecustomize, and modules, from PYTHONPATH before its own."""
    old = tmp_path / "old"
    old.mkdir()
    (old / "sitecustomize.py").write_text("import sys\nsys.version_info = (3, 9, 2, 'final', 0)\n")
    no_venv = tmp_path / "no-venv" / "ensurepip"
    no_venv.mkdir(parents=True)
    (no_venv / "__init__.py").write_text("raise ImportError('ensurepip is not installed')\n")
    return {"old": old, "no-venv": no_venv.parent}


@pytest.mark.parametrize(
    ("case", "says"),
    [
        ("old", "hidream-bot needs Python 3.11 or newer, and `python3` is 3.9.2: install a newer one"),
        ("no-venv", "install python3-venv (Debian, Ubuntu: apt-get install python3-venv)"),
        ("missing", "hidream-bot needs Python 3.11 or newer, and `python3.99` does not run: install Python"),
    ],
)
def test_a_python_that_cannot_make_the_tools_says_what_to_install_in_one_line(
    tmp_path: Path, stand_ins: dict[str, Path], case: str, says: str
) -> None:
    repo = copy_of_repository(tmp_path / "repo")
    env = newcomer_env(tmp_path)
    args = ["run"]
    if case == "missing":
        args.append("PYTHON=python3.99")
    else:
        env["PYTHONPATH"] = str(stand_ins[case])
    done = make(repo, env, FOX, *args)
    assert done.returncode == 2 and done.stdout == ""
    [line] = done.stderr.splitlines()
    assert says in line, line
    assert not (repo / ".tools").exists() and not (repo / ".venv").exists()
