"""The core knows no chat platform and no provider by name (issue 18): not in code, comments or examples.

Each provider's own module under bot/providers/ names its provider; nothing else in bot/ or storage/ may."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NAMES = re.compile(r"\b(discord|slack|bolt|pixazo|atlas\s?cloud|fal|wavespeed)\b", re.IGNORECASE)
PROVIDER_MODULES = {"atlascloud", "fal", "pixazo", "wavespeed"}


def core_modules() -> list[Path]:
    found = sorted([*(ROOT / "bot").rglob("*.py"), *(ROOT / "storage").rglob("*.py")])
    return [
        path
        for path in found
        if not (path.parent == ROOT / "bot" / "providers" and path.stem in PROVIDER_MODULES)
    ]


def test_no_core_module_names_a_platform_or_a_provider() -> None:
    named = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in core_modules()
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if NAMES.search(line)
    ]
    assert named == [], "\n".join(named)


def test_the_check_reads_the_whole_core() -> None:
    paths = {path.relative_to(ROOT).as_posix() for path in core_modules()}
    assert {"bot/cli.py", "bot/jobs/engine.py", "bot/providers/base.py"} <= paths
    assert "bot/providers/fal.py" not in paths
    assert NAMES.search("the Slack plugin") and NAMES.search("Atlas Cloud's") and not NAMES.search("a falcon")
