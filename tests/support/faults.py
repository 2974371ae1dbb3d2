"""Shared by the fault tests (tests/test_faults_*.py): the bot's log records captured whole, the check
that no line repeats more than once a second, and the tally of what became of each request.

Figures: each fault test writes what it counted to `FAULT_FIGURES_DIR` (when set) as one JSON file,
so the figures of docs/reliability.md come from runs, not from memory.
"""

from __future__ import annotations

import json
import logging
import os
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tests.support.harness import until


class LogCapture(logging.Handler):
    """`with LogCapture() as logs:` every record any logger of the process emits at INFO or above
    (the root logger is set to INFO within, as `hidream-bot run` sets it), but the access log."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        # Not the access log: the bot's server and the fakes' share it in one process (a line per
        # request the fakes serve is no line of the bot's).
        if record.name != "aiohttp.access":
            self.records.append(record)

    def __enter__(self) -> LogCapture:
        root = logging.getLogger()
        self._level = root.level
        root.setLevel(logging.INFO)
        root.addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        root = logging.getLogger()
        root.removeHandler(self)
        root.setLevel(self._level)

    def matching(self, logger: str, needle: str) -> list[logging.LogRecord]:
        return [r for r in self.records if r.name.startswith(logger) and needle in r.getMessage()]

    async def wait_for(
        self, logger: str, needle: str, count: int = 1, within: float = 60.0
    ) -> logging.LogRecord:
        """The `count`-th record of `logger` that contains `needle`, once logged (bounded wait)."""
        try:
            await until(lambda: len(self.matching(logger, needle)) >= count, within)
        except TimeoutError:
            raise AssertionError(
                f"{logger} did not log {needle!r} {count} time(s) within {within:.0f} s; "
                f"it did {len(self.matching(logger, needle))}"
            ) from None
        return self.matching(logger, needle)[count - 1]

    def most_in_a_second(self) -> tuple[int, str]:
        """The most times one message text (the formatted line) appears within any 1-second window of
        the records' own timestamps, and that text."""
        times: dict[str, list[float]] = defaultdict(list)
        for record in self.records:
            times[record.getMessage()].append(record.created)
        most, which = 0, ""
        for text, stamps in times.items():
            stamps.sort()
            start = 0
            for end, stamp in enumerate(stamps):
                while stamp - stamps[start] >= 1.0:
                    start += 1
                if end - start + 1 > most:
                    most, which = end - start + 1, text
        return most, which


@dataclass
class Tally:
    """What became of the requests of a fault test. `lost` is what no other figure accounts for."""

    fault: str
    requests: int = 0  # commands sent
    admitted: int = 0  # jobs stored (charged when stored, given back if they fail)
    delivered_once: int = 0
    delivered_twice_or_more: int = 0
    failed_refunded: int = 0
    refused_nothing_charged: int = 0  # told at admission that nothing was kept or charged
    unfinished: int = 0
    max_line_repeats_per_second: int = 0
    repeated_line: str = ""
    serve_after_return_s: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def lost(self) -> int:
        accounted = self.delivered_once + self.failed_refunded + self.refused_nothing_charged
        return self.requests - accounted

    def write(self) -> None:
        where = os.environ.get("FAULT_FIGURES_DIR")
        if where:
            path = Path(where) / f"{self.fault}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({**asdict(self), "lost": self.lost}, indent=2) + "\n")
