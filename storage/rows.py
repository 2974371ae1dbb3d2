"""Jobs as rows: a stored row (SQLite's or PostgreSQL's: both are read by column name) as a Job, and
the values a new job and its reservation are inserted with."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

from bot.model.jobs import Job, JobState, LedgerState
from bot.model.requests import ImageRequest


class Columns(Protocol):
    """A row read by column name: sqlite3.Row and asyncpg.Record both are."""

    def __getitem__(self, name: str) -> Any: ...


# Job fields stored as they are, as floats (PostgreSQL's columns are), and as JSON text; `request` and
# `state` are the others.
_PLAIN = (
    "id surface user_id workspace_id tier provider callback_token provider_job_id parent_job_id error seed "
    "channel project home_channel"
).split()
_FLOATS = ("created_at", "deadline", "cost_usd")
_JSON = ("origin", "reference_media", "result_media")


def row_to_job(row: Columns) -> Job:
    """A stored job row (SQLite's or PostgreSQL's: both are read by column name) as a Job."""
    return Job(
        **{name: row[name] for name in (*_PLAIN, *_FLOATS)},
        **{name: json.loads(row[name]) for name in _JSON},
        request=ImageRequest.model_validate_json(row["request"]),
        state=JobState(row["state"]),
    )


@dataclass(frozen=True)
class Lease:
    """The replica that admits a job holds it from the start, so no other replica's look for free
    jobs takes it before its first step."""

    owner: str
    seconds: float


def job_values(job: Job, dedup_key: str | None, lease: Lease | None, now: float) -> dict[str, Any]:
    """The columns a new job is stored with, held from the start by the replica `lease` names, if any."""
    return {
        **{name: getattr(job, name) for name in _PLAIN},
        **{name: float(getattr(job, name)) for name in _FLOATS},
        **{name: json.dumps(getattr(job, name)) for name in _JSON},
        "request": job.request.model_dump_json(),
        "state": job.state.value,
        "dedup_key": dedup_key,
        "updated_at": float(job.created_at),
        "owner": lease.owner if lease is not None else None,
        "lease_until": now + lease.seconds if lease is not None else None,
    }


# The ledger row that reserves a new job's images.
LEDGER_COLUMNS = "job_id, user_key, workspace_key, day, images, state, cost_usd, created_at, project"


def ledger_values(job: Job, tenant: str, day: str) -> tuple[Any, ...]:
    """The values of LEDGER_COLUMNS for the job's reservation."""
    return (
        job.id,
        job.user_key,
        tenant,
        day,
        job.request.n,
        LedgerState.RESERVED.value,
        float(job.cost_usd),
        float(job.created_at),
        job.project,
    )
