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


def row_to_job(row: Columns) -> Job:
    """A stored job row (SQLite's or PostgreSQL's: both are read by column name) as a Job."""
    return Job(
        id=row["id"],
        surface=row["surface"],
        user_id=row["user_id"],
        workspace_id=row["workspace_id"],
        origin=json.loads(row["origin"]),
        request=ImageRequest.model_validate_json(row["request"]),
        tier=row["tier"],
        provider=row["provider"],
        state=JobState(row["state"]),
        callback_token=row["callback_token"],
        created_at=row["created_at"],
        deadline=row["deadline"],
        provider_job_id=row["provider_job_id"],
        parent_job_id=row["parent_job_id"],
        reference_media=json.loads(row["reference_media"]),
        result_media=json.loads(row["result_media"]),
        error=row["error"],
        seed=row["seed"],
        cost_usd=row["cost_usd"],
    )


@dataclass(frozen=True)
class Lease:
    """The replica that admits a job holds it from the start, so no other replica's look for free
    jobs takes it before its first step."""

    owner: str
    seconds: float


# The columns a new job is stored with, and the ledger row that reserves its images.
JOB_COLUMNS = (
    "id, surface, user_id, workspace_id, origin, request, tier, provider, state, callback_token, "
    "parent_job_id, reference_media, seed, cost_usd, dedup_key, created_at, updated_at, deadline, "
    "owner, lease_until"
)
LEDGER_COLUMNS = "job_id, user_key, workspace_key, day, images, state, cost_usd, created_at"


def job_values(job: Job, dedup_key: str | None, lease: Lease | None, now: float) -> tuple[Any, ...]:
    """The values of JOB_COLUMNS for a new job (times and money as floats: PostgreSQL's columns are),
    held from the start by the replica `lease` names, if any."""
    return (
        job.id,
        job.surface,
        job.user_id,
        job.workspace_id,
        json.dumps(job.origin),
        job.request.model_dump_json(),
        job.tier,
        job.provider,
        job.state.value,
        job.callback_token,
        job.parent_job_id,
        json.dumps(job.reference_media),
        job.seed,
        float(job.cost_usd),
        dedup_key,
        float(job.created_at),
        float(job.created_at),
        float(job.deadline),
        lease.owner if lease is not None else None,
        now + lease.seconds if lease is not None else None,
    )


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
    )
