"""Approvals, on every surface: an admin marks a channel reviewed (`policy review ...`, naming who
reviews and where their queue is); a reviewer approves or rejects a result waiting there.

`policy review <reviewers> [to <queue>|dm]`: the surface reads its own mentions (`ReviewTerms`),
checking each against the server or workspace it is typed in, into a spec: a role or a user group
(`role:<id>`, `group:<id>`) or people (`users:<id>,<id>`); the queue is one of its channels, or the
people's direct messages. Who may press is decided here once: a listed person, or a member of the
role or group as the surface vouches (`member_of`).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from bot import words
from bot.model.errors import BadInput
from bot.model.jobs import Job, OutputImage
from bot.usecases.access import Lookup, Queries
from bot.usecases.actor import Actor, Reply
from storage.approvals import Approval, Approvals, Review

_OFF = ("off", "none", "default")

MemberOf = Callable[[str], Awaitable[bool]]  # is the presser in this role or user group?
# Seconds after which an approved result's post, taken by a press but never recorded as out, may be
# taken again (its process stopped); a post takes a few seconds at most.
POSTING_STALE = 120.0


class Reviewing(Queries, Protocol):
    """The engine as approvals need it: the job queries (tenant-checked through `Lookup`) and the store's approvals."""

    @property
    def approvals(self) -> Approvals: ...

    async def result_images(self, job: Job) -> list[OutputImage]: ...


class ReviewTerms(Protocol):
    """A surface's part of `policy review ...`, for the server or workspace it is typed in: its
    mentions read, and what they name checked there (raising BadInput in our words when it is not)."""

    async def reviewers(self, text: str) -> str | None:
        """The spec of who `text` names (`role:<id>`, `group:<id>`, `users:<id>,<id>`); None: no one."""
        ...

    async def queue(self, text: str) -> str | None:
        """The id of the channel `text` names (exactly one); None when it names none."""
        ...

    def mention(self, spec: str) -> str:
        """Who reviews, as the surface mentions them."""
        ...


async def parse_review(text: str, terms: ReviewTerms) -> Review | None:
    """`<reviewers> [to <queue>|dm]` -> a Review; `off` -> None. Raises BadInput when it names none,
    or names what is not of the actor's server or workspace."""
    text = text.strip()
    if text.lower() in _OFF:
        return None
    parts = re.split(r"\s+to\s+", text, maxsplit=1)
    who, where = parts[0], parts[1].strip() if len(parts) > 1 else ""
    spec = await terms.reviewers(who)
    if spec is None:
        raise BadInput(words.REVIEW_USAGE)
    if where.lower() in ("", "dm", "dms"):
        if spec.startswith("users:"):
            return Review(spec, "dm")
        raise BadInput(words.REVIEW_NEEDS_QUEUE if not where else words.REVIEW_USAGE)
    queue = await terms.queue(where)
    if queue is None:
        raise BadInput(words.REVIEW_USAGE)
    return Review(spec, queue)


async def set_review(approvals: Approvals, actor: Actor, text: str, terms: ReviewTerms | None) -> Reply:
    """An admin's `policy review ...` in the channel it is typed in (a thread's: its parent's; empty
    text shows it). `terms`: the surface's (None where it has no reviews)."""
    if not actor.admin:
        raise BadInput(words.POLICY_REFUSED)
    if not actor.workspace_id or not actor.home_channel or terms is None:
        raise BadInput(words.REVIEW_NO_CHANNEL)
    if not text.strip():
        found = await approvals.reviewed(actor.tenant, actor.home_channel)
        return Reply(
            words.review_shown(
                terms.mention(found.reviewers) if found else None, found.queue if found else ""
            )
        )
    review = await parse_review(text, terms)
    await approvals.set_reviewed(actor.tenant, actor.home_channel, review)
    if review is None:
        return Reply(words.REVIEW_OFF)
    return Reply(words.review_set(terms.mention(review.reviewers), review.queue))


async def is_reviewer(spec: str, actor: Actor, member_of: MemberOf) -> bool:
    kind, _, ids = spec.partition(":")
    if kind == "users":
        return actor.user_id in ids.split(",")
    return await member_of(ids)


@dataclass(frozen=True)
class Pressed:
    job: Job
    approval: Approval


async def _found(engine: Reviewing, actor: Actor, job_id: str, member_of: MemberOf) -> Pressed:
    """The job and approval a reviewer pressed on, or BadInput (not found, not a reviewer)."""
    job = await Lookup(engine).job(actor, job_id)
    approval = await engine.approvals.get(job_id, actor.tenant) if job is not None else None
    if job is None or approval is None:
        raise BadInput(words.NOT_FOUND)
    if not await is_reviewer(approval.reviewers, actor, member_of):
        raise BadInput(words.NOT_A_REVIEWER)
    return Pressed(job, approval)


def _decided(approval: Approval) -> BadInput:
    if approval.state == "withdrawn":
        return BadInput(words.REVIEW_TAKEN_DOWN)
    return BadInput(words.already_decided(approval.state, f"<@{approval.decided_by}>"))


async def pressed(engine: Reviewing, actor: Actor, job_id: str, member_of: MemberOf) -> Pressed:
    """A reviewer's press on a waiting result: its job and approval, or BadInput (not found, not a
    reviewer, decided already)."""
    found = await _found(engine, actor, job_id, member_of)
    if found.approval.state != "pending":
        raise _decided(found.approval)
    return found


async def approve(
    engine: Reviewing,
    actor: Actor,
    job_id: str,
    member_of: MemberOf,
    publish: Callable[[Job, list[OutputImage], str], Awaitable[str]],
) -> Reply:
    """Post the result in its channel with "approved by", once: the first press decides and posts; a
    second (or one after a restart) is told who decided. A reviewer cannot approve their own request.
    An approval whose post never went out (the process stopped in between) is posted by the next
    reviewer's press, once POSTING_STALE has passed since the last attempt took it, still "approved
    by" whoever decided."""
    found = await _found(engine, actor, job_id, member_of)
    if not (found.approval.state == "pending" or _unposted(found.approval)):
        raise _decided(found.approval)
    if found.approval.state == "pending" and found.job.user_key == actor.key:  # a second pair of eyes
        raise BadInput(words.OWN_REQUEST_NOT_APPROVED)
    images = await _held(engine, found.job)  # before deciding: an image gone is never "approved"
    book, by = engine.approvals, actor.user_id
    decided = found.approval.state == "pending" and await book.decide(job_id, actor.tenant, "approved", by)
    if not decided:
        now = await book.get(job_id, actor.tenant) or found.approval
        if not (_unposted(now) and await book.take_posting(job_id, actor.tenant, POSTING_STALE)):
            raise _decided(now)
        by = now.decided_by
    key = await publish(found.job, images, words.approved_by(f"<@{by}>"))
    await book.posted(job_id, key)
    return Reply(words.approval_done("approved"))


def _unposted(approval: Approval) -> bool:
    return approval.state == "approved" and not approval.posted


async def _held(engine: Reviewing, job: Job) -> list[OutputImage]:
    """The job's images, or BadInput when any is gone (taken down, or deleted by retention)."""
    try:
        images = await engine.result_images(job)
    except BadInput:
        images = []
    if not images:
        raise BadInput(words.REVIEW_IMAGE_GONE)
    return images


async def reject(
    engine: Reviewing,
    actor: Actor,
    job_id: str,
    reason: str,
    member_of: MemberOf,
    tell: Callable[[Job, str], Awaitable[None]],
) -> Reply:
    """Tell the requester privately why, once."""
    found = await pressed(engine, actor, job_id, member_of)
    reason = reason.strip()[:500]
    if not await engine.approvals.decide(job_id, actor.tenant, "rejected", actor.user_id, reason):
        raise _decided(await engine.approvals.get(job_id, actor.tenant) or found.approval)
    await tell(found.job, words.rejected_told(found.job.request.prompt, f"<@{actor.user_id}>", reason))
    return Reply(words.approval_done("rejected"))


def queue_book(job: Job) -> str:
    """The `surface` a job's queue messages are recorded under among posts (storage/posts.py): apart
    from the job's own posts, so no thread, history or reply ever finds them; a take-down does."""
    return f"{job.surface}:review"


async def approved_post(engine: Reviewing, job: Job) -> str | None:
    """The message an approval posted the job's result in (a surface's message key), for an
    operator's take-down; None when it has none."""
    approval = await engine.approvals.get(job.id, job.tenant)
    return approval.posted if approval is not None and approval.posted else None
