"""What the core asks of a store, whatever database keeps it: jobs and their guarded state changes,
the usage ledger and its limits, media, the posts that carry each job, and kept secrets.

Two backends keep this contract: storage/sqlite.py (the embedded default) and storage/postgres.py.
One test suite (tests/support/store_backends.py) runs against both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol, Self

from bot.model.jobs import Job, JobState
from storage.quota import By, Charge, QuotaStatus, Scope
from storage.schema import Lease


@dataclass(frozen=True)
class StoredMedia:
    id: str
    data: bytes
    content_type: str
    width: int
    height: int
    nsfw: bool


@dataclass(frozen=True)
class NewMedia:
    """An image to keep (a job's result), before it has an id."""

    data: bytes
    content_type: str
    width: int
    height: int
    nsfw: bool = False


class Store(Protocol):
    clock: Any

    async def __aenter__(self) -> Self: ...

    async def __aexit__(self, *exc: object) -> None: ...

    async def schema_version(self) -> int: ...

    async def secret(self, name: str) -> bytes: ...

    # --- quota ---
    async def quota(self, user_key: str, tenant: str) -> QuotaStatus: ...

    async def check(self, charge: Charge) -> None: ...

    async def set_limit(
        self, tenant: str, scope: Scope, subject: str, limit: int | None, *, by: By
    ) -> None: ...

    async def grant(self, tenant: str, user_key: str, images: int) -> None: ...

    async def reset(self, tenant: str, user_key: str) -> None: ...

    async def set_budget(self, tenant: str, monthly_usd: float | None) -> None: ...

    async def tenants_of(self, user_key: str) -> list[str]: ...

    async def limits(self, tenant: str) -> list[tuple[str, str, int, str]]: ...

    async def spend(self, key: str, *, scope: Literal["user", "workspace"]) -> tuple[int, float]: ...

    # --- jobs ---
    async def admit(
        self, job: Job, *, workspace_key: str, dedup_key: str | None, lease: Lease | None = None
    ) -> Job: ...

    async def transition(self, job_id: str, to: JobState, **fields: Any) -> bool: ...

    async def annotate(self, job_id: str, state: JobState, **fields: Any) -> bool: ...

    async def record_callback(self, job_id: str, status: dict[str, Any]) -> bool: ...

    async def job(self, job_id: str) -> Job | None: ...

    async def job_by_dedup(self, dedup_key: str) -> Job | None: ...

    async def job_by_prefix(self, prefix: str, *, surface: str) -> Job | None: ...

    async def job_by_token(self, token: str) -> Job | None: ...

    async def callback_status(self, job_id: str) -> dict[str, Any] | None: ...

    async def unfinished_jobs(self) -> list[Job]: ...

    async def queue_position(self, job: Job) -> int: ...

    # --- media and posts ---
    async def put_media(
        self, data: bytes, content_type: str, width: int, height: int, nsfw: bool = False
    ) -> str: ...

    async def media(self, media_id: str) -> StoredMedia | None: ...

    async def record_posts(self, job_id: str, surface: str, posts: list[tuple[str, str | None]]) -> None: ...

    async def complete(self, job_id: str, images: list[NewMedia]) -> list[str] | None:
        """Keep a job's result images and move it to `completed` naming them, in one transaction;
        their ids, or None (nothing kept) when the job may not complete from its state."""
        ...

    async def delivered(self, job_id: str, surface: str, posts: list[tuple[str, str | None]]) -> bool:
        """Record the posts that carry a job and move it to `delivered`, in one transaction. The posts
        are kept even when the move is refused (they are on the platform); True when it moved."""
        ...

    async def remember_post(
        self, job_id: str, surface: str, message_key: str, thread_key: str | None
    ) -> None: ...

    async def posts_of(self, job_id: str, surface: str) -> list[str]: ...

    async def job_for_post(self, surface: str, message_key: str) -> Job | None: ...

    async def latest_job_in_thread(self, surface: str, thread_key: str) -> Job | None: ...

    async def forget_posts(self, job_id: str) -> None: ...


class Sweeps(Protocol):
    """Retention's work in a store (storage/retention.py picks the backend's): each batch call is one
    bounded transaction; what quotas, spend and the buttons under old posts need stays."""

    async def prepare(self) -> bool:
        """Once at start: make the database able to give space back. True when it changed it now."""
        ...

    async def touch_media(self, media_id: str) -> bool:
        """Mark a held image as used now (a new job takes it); False when it is no longer held."""
        ...

    async def delete_old_media(self, used_before: float, limit: int) -> int:
        """Delete up to `limit` images last used before `used_before`, except those an unfinished
        job still names. Returns how many."""
        ...

    async def clear_finished_jobs(self, finished_before: float, limit: int) -> int:
        """Clear the bulky columns of up to `limit` jobs finished before `finished_before`."""
        ...

    async def give_back(self) -> int:
        """Give freed space back after a sweep; how many pages were given back."""
        ...
