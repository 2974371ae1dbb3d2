"""No module of adapters/ imports one that imports it back, counting imports under TYPE_CHECKING and
inside functions too: a cycle hidden from the interpreter still ties two modules together."""

from __future__ import annotations

import ast
import re
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def adapter_modules() -> dict[str, Path]:
    found = {}
    for path in sorted((ROOT / "adapters").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports_of(path: Path, modules: dict[str, Path]) -> set[str]:
    """The adapter modules `path` names in any import statement."""

    def known(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    names: set[str | None] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {known(alias.name) for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from adapters.slack import blocks` imports the module adapters.slack.blocks.
            names |= {known(f"{node.module}.{alias.name}") or known(node.module) for alias in node.names}
    return {n for n in names if n is not None}


def test_adapter_modules_import_each_other_one_way_only() -> None:
    modules = adapter_modules()
    graph = {name: imports_of(path, modules) - {name} for name, path in modules.items()}
    assert "adapters.slack.handlers" in graph and "adapters.discord.interactions" in graph
    try:
        tuple(TopologicalSorter(graph).static_order())
    except CycleError as err:
        raise AssertionError(f"import cycle: {' -> '.join(err.args[1])}") from None


def test_only_the_package_imports_the_discord_client() -> None:
    modules = adapter_modules()
    importers = {
        name for name, path in modules.items() if "adapters.discord.client" in imports_of(path, modules)
    }
    assert importers == {"adapters.discord"}


def test_adapters_reach_jobs_only_through_the_tenant_checked_lookup() -> None:
    """bot/usecases/access.py is the one way to a job: an adapter that asked the engine or the store
    for one by id, post, thread or prefix would skip the tenant check."""
    unscoped = re.compile(r"(engine|store)\.(job|job_for_post|latest_job_in_thread|job_by_prefix)\(")
    offenders = [
        f"{path.relative_to(ROOT)}:{n}"
        for path in adapter_modules().values()
        for n, line in enumerate(path.read_text().splitlines(), start=1)
        if unscoped.search(line)
    ]
    assert offenders == []
