"""A job as the store keeps it, its states, and the small protocol every chat surface implements."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from bot import words
from bot.model.requests import ImageRequest, Tier


class JobState(StrEnum):
    """A job's life. Every change is a guarded transition in the store, allowed by `TRANSITIONS`.

    queued -> submitting -> running -> completed -> delivering -> delivered
       any state that is not terminal -> failed
    `submitting` is written before the provider is asked, so a crash mid-submit is known to be one.
    `delivering` is written before posting; a surface's `deliver` is idempotent per job id.
    """

    QUEUED = "queued"
    SUBMITTING = "submitting"
    RUNNING = "running"
    COMPLETED = "completed"
    DELIVERING = "delivering"
    DELIVERED = "delivered"
    FAILED = "failed"


TERMINAL = frozenset({JobState.DELIVERED, JobState.FAILED})
UNFINISHED = frozenset(JobState) - TERMINAL
# Waiting for the provider to take the job: counted for a queue position.
WAITING = frozenset({JobState.QUEUED, JobState.SUBMITTING})

# For each state, the states a job may enter it from. The store derives every guard from this table.
TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.QUEUED: frozenset(),
    JobState.SUBMITTING: frozenset({JobState.QUEUED}),
    JobState.RUNNING: frozenset({JobState.SUBMITTING}),
    # A result can arrive by callback while the submit's answer was lost (still `submitting`).
    JobState.COMPLETED: frozenset({JobState.SUBMITTING, JobState.RUNNING}),
    JobState.DELIVERING: frozenset({JobState.COMPLETED}),
    JobState.DELIVERED: frozenset({JobState.DELIVERING}),
    # Anything unfinished may fail, including a delivery that could not be posted.
    JobState.FAILED: UNFINISHED,
}


class LedgerState(StrEnum):
    """A job's row in the usage ledger: reserved at admission, then committed or released."""

    RESERVED = "reserved"
    COMMITTED = "committed"
    RELEASED = "released"
    # An operator forgot the day's usage: still spent, no longer counted against today's limit.
    RESET = "reset"


# What entering a state does to the job's reserved ledger row, in the same transaction.
LEDGER_EFFECT: dict[JobState, LedgerState] = {
    JobState.DELIVERED: LedgerState.COMMITTED,
    JobState.FAILED: LedgerState.RELEASED,
}
# Ledger rows that count against today's limit, and rows that count as money spent.
COUNTED = (LedgerState.RESERVED, LedgerState.COMMITTED)
SPENT = (LedgerState.COMMITTED, LedgerState.RESET)


def tenant_of(surface: str, workspace_id: str, user_id: str) -> str:
    """The tenant a request counts in: its server or workspace; a DM or the console: its user."""
    return f"{surface}:{workspace_id}" if workspace_id else f"{surface}:dm:{user_id}"


@dataclass
class Job:
    id: str
    surface: str
    user_id: str
    workspace_id: str
    origin: dict[str, Any]
    request: ImageRequest
    tier: Tier
    provider: str
    state: JobState
    callback_token: str
    created_at: float
    deadline: float
    provider_job_id: str | None = None
    parent_job_id: str | None = None
    reference_media: list[str] = field(default_factory=list)
    result_media: list[str] = field(default_factory=list)
    error: str | None = None
    seed: int | None = None
    cost_usd: float = 0.0
    # Where it was asked (the platform's channel id; empty on the console and for jobs made before
    # channels were kept) and the project it is counted under (empty: none).
    channel: str = ""
    project: str = ""
    # The channel `channel` is a thread of, when it is one (empty otherwise): whose policies hold.
    home_channel: str = ""

    @property
    def user_key(self) -> str:
        return f"{self.surface}:{self.user_id}"

    @property
    def tenant(self) -> str:
        return tenant_of(self.surface, self.workspace_id, self.user_id)

    @property
    def mode(self) -> str:
        n = len(self.reference_media)
        return "text-to-image" if n == 0 else "edit" if n == 1 else "personalization"


@dataclass(frozen=True)
class OutputImage:
    """One finished image, held by the bot (so edits of it never depend on a provider's URL).

    A result on its way to a post is not in memory: `file` names where its bytes are (its file in the
    media store, or a spooled copy the delivery deletes once posted), and `data` is empty. Surfaces
    stream `file` to the platform; `loaded` reads it whole, for readers that need bytes."""

    media_id: str
    data: bytes
    content_type: str
    width: int
    height: int
    nsfw: bool = False
    file: Path | None = None

    async def loaded(self) -> OutputImage:
        """The image with its bytes in `data` (read in a thread when they are in `file`)."""
        if self.file is None:
            return self
        return replace(self, data=await asyncio.to_thread(self.file.read_bytes), file=None)

    async def size(self) -> int:
        if self.file is None:
            return len(self.data)
        return (await asyncio.to_thread(self.file.stat)).st_size

    @property
    def extension(self) -> str:
        return {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}.get(self.content_type, "bin")


@dataclass(frozen=True)
class Progress:
    stage: str  # "queued", "running", "delivering"
    elapsed: float
    queue_position: int | None = None

    def text(self, *, delivering: str = words.UPLOADING) -> str:
        """`delivering`: the word for the last step where it is not an upload (the console saves files)."""
        return words.progress(self.stage, self.elapsed, self.queue_position, delivering=delivering)


@dataclass(frozen=True)
class Post:
    """A platform message that carries a job: how a reply or a button finds the job later."""

    message_key: str
    thread_key: str | None = None


class Surface(Protocol):
    """What the engine needs from a chat surface. It never asks which platform it talks to."""

    name: str

    async def deliver(self, job: Job, images: list[OutputImage]) -> list[Post]:
        """Post the images where the job was asked. Must be idempotent per job id: after a crash in
        the middle of a delivery the engine calls it again."""
        ...

    async def tell(self, job: Job, text: str) -> None:
        """Tell the requester something in plain words (a failure, a refusal)."""
        ...

    async def progress(self, job: Job, progress: Progress) -> None:
        """Show how the job is doing. The engine calls this at most once every 2 seconds per job."""
        ...


@runtime_checkable
class Reviews(Protocol):
    """A surface that can put a result in front of its channel's reviewers (bot/usecases/approvals.py)."""

    async def queue_for_review(self, job: Job, images: list[OutputImage]) -> None:
        """Post the images, with Approve and Reject buttons, in the queue `job.origin["review"]` names,
        once per reviewer or channel (a second call skips those it reached)."""
        ...

    async def tell_privately(self, job: Job, text: str) -> None:
        """Tell the requester something beside their result, where only they see it."""
        ...


@runtime_checkable
class Withdraws(Protocol):
    """A surface that can take a delivered job's posts down again (the moderation view's delete)."""

    async def withdraw(self, job: Job) -> int:
        """Delete the job's posts from the platform; how many messages went (0: none left there)."""
        ...


@runtime_checkable
class Continues(Protocol):
    """A surface that can post a new version of one of its jobs asked for away from the chat (the
    region editor's page, bot/usecases/region.py), where the job's next version belongs."""

    async def followup_origin(self, parent: Job, thread_key: str | None) -> dict[str, Any] | None:
        """The origin of a new job whose result goes in `parent`'s thread (`thread_key`: the one the
        store knows for it, if any), without a message of the chat to answer; None when there is
        nowhere left to post it (its origin was cleared)."""
        ...
