"""The bot bounds glibc's malloc arenas at start (bot/memory.py), unless the operator chose a number
with MALLOC_ARENA_MAX; tests/test_faults_memory.py measures what it is for."""

from __future__ import annotations

import pytest

from bot.memory import bound_arenas


def test_the_arenas_are_bounded_unless_the_operator_chose(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    assert bound_arenas() is True  # this project's machines run glibc (Debian)
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert bound_arenas() is False
