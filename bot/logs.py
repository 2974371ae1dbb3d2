"""Log lines as text or as JSON objects (HIDREAM_LOG_FORMAT), with the job a line is about.

A job's task binds the job (`bind_job`) in its own context, so every line logged while it works, by
the runner, a provider or an HTTP client, carries its id, tenant, provider and state without each call
naming them. Lines about a job logged elsewhere (admission, a failure told from another task) pass
`job_fields(job)` as `extra=`; what a record carries itself wins over the bound job.

A trouble met again and again (a database that does not answer, for each job that waits on it) is said
once and then at most every so often (`Throttle`), never once per attempt.

The JSON formatter writes only the message, the traceback and the fields named here: the CLI's
redacting filter, on the same handler, has masked secrets in all three before this formats them.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Protocol

# What a masked secret reads as in a log line.
REDACTED = "<redacted>"

JOB_FIELDS = ("job_id", "tenant", "provider", "state")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_bound: ContextVar[dict[str, str] | None] = ContextVar("hidream_job", default=None)


class JobLike(Protocol):
    id: str
    provider: str
    state: Any

    @property
    def tenant(self) -> str: ...


def job_fields(job: JobLike, **changed: str) -> dict[str, str]:
    """The fields a log line about `job` carries (`changed`: a state it has just entered)."""
    fields = {"job_id": job.id, "tenant": job.tenant, "provider": job.provider, "state": str(job.state)}
    fields.update(changed)
    return fields


def bind_job(job: JobLike) -> None:
    """Lines logged from now on in this task (and the tasks it starts) are about `job`."""
    _bound.set(job_fields(job))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the job's fields, and any traceback."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        bound = _bound.get() or {}
        for name in JOB_FIELDS:
            value = getattr(record, name, None) or bound.get(name)
            if value:
                entry[name] = str(value)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        return json.dumps(entry, ensure_ascii=False)


def formatter(log_format: str) -> logging.Formatter:
    return JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)


class Throttle:
    """Lets a line that would repeat (the same trouble, met again and again) through at most once
    every `seconds` on `clock`; `held` counts the times it was held back since the last one."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self.clock = clock
        self.held = 0
        self._last: float | None = None

    def allow(self) -> bool:
        now = self.clock()
        if self._last is not None and now - self._last < self.seconds:
            self.held += 1
            return False
        self._last = now
        return True

    def take_held(self) -> int:
        """How many were held back since the last call (and start counting again)."""
        held, self.held = self.held, 0
        return held
