"""Approvals, on every surface: an admin marks a channel reviewed (`policy review ...`, naming who
reviews and where their queue is); a reviewer approves or rejects a result waiting there.

Reviewers are written as the surfaces write mentions: a role `<@&id>`, a user group `<!subteam^id>`
(with or without `|name`), or people `<@id>`; the queue as a channel `<#id>` (with or without
`|name`), or their direct messages (people only). Who may press is decided here once: a
listed person, or a member of the role or group as the surface vouches (`member_of`).
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

_ROLE = re.compile(r"<@&(\d+)>")
_GROUP = re.compile(r"<!subteam\^([A-Z0-9]+)(?:\|[^>]*)?>")
_USER = re.compile(r"<@!?([A-Za-z0-9_]+)(?:\|[^>]*)?>")
_CHANNEL = re.compile(r"<#([A-Za-z0-9_]+)(?:\|[^>]*)?>")
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


def parse_review(text: str) -> Review | None:
    """`<reviewers> [to <#queue>|dm]` -> a Review; `off` -> None. Raises BadInput when it names none."""
    text = text.strip()
    if text.lower() in _OFF:
        return None
    parts = re.split(r"\s+to\s+", text, maxsplit=1)
    who, where = parts[0], parts[1].strip() if len(parts) > 1 else ""
    roles, groups, users = _ROLE.findall(who), _GROUP.findall(who), _USER.findall(_ROLE.sub("", who))
    if roles or groups:
        spec = f"role:{roles[0]}" if roles else f"group:{groups[0]}"
    elif users:
        spec = "users:" + ",".join(dict.fromkeys(users))
    else:
        raise BadInput(words.REVIEW_USAGE)
    channel = _CHANNEL.fullmatch(where)
    if channel is not None:
        return Review(spec, channel.group(1))
    if where.lower() in ("", "dm", "dms") and spec.startswith("users:"):
        return Review(spec, "dm")
    raise BadInput(words.REVIEW_NEEDS_QUEUE if not where else words.REVIEW_USAGE)


def mention(spec: str) -> str:
    """Who reviews, as a mention both platforms render."""
    kind, _, ids = spec.partition(":")
    if kind == "role":
        return f"<@&{ids}>"
    if kind == "group":
        return f"<!subteam^{ids}>"
    return ", ".join(f"<@{u}>" for u in ids.split(","))


async def set_review(approvals: Approvals, actor: Actor, text: str) -> Reply:
    """An admin's `policy review ...` in the channel it is typed in (empty text shows it)."""
    if not actor.admin:
        raise BadInput(words.POLICY_REFUSED)
    if not actor.workspace_id or not actor.channel_id:
        raise BadInput(words.REVIEW_NO_CHANNEL)
    if not text.strip():
        found = await approvals.reviewed(actor.tenant, actor.home_channel)
        return Reply(
            words.review_shown(mention(found.reviewers) if found else None, found.queue if found else "")
        )
    review = parse_review(text)
    await approvals.set_reviewed(actor.tenant, actor.home_channel, review)
    if review is None:
        return Reply(words.REVIEW_OFF)
    return Reply(words.review_set(mention(review.reviewers), review.queue))


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
    second (or one after a restart) is told who decided. An approval whose post never went out (the
    process stopped in between) is posted by the next reviewer's press, once POSTING_STALE has passed
    since the last attempt took it, still "approved by" whoever decided."""
    found = await _found(engine, actor, job_id, member_of)
    book, by = engine.approvals, actor.user_id
    decided = found.approval.state == "pending" and await book.decide(job_id, actor.tenant, "approved", by)
    if not decided:
        now = await book.get(job_id, actor.tenant) or found.approval
        unposted = now.state == "approved" and not now.posted
        if not (unposted and await book.take_posting(job_id, actor.tenant, POSTING_STALE)):
            raise _decided(now)
        by = now.decided_by
    images = await engine.result_images(found.job)
    key = await publish(found.job, images, words.approved_by(f"<@{by}>"))
    await book.posted(job_id, key)
    return Reply(words.approval_done("approved"))


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


async def approved_post(engine: Reviewing, job: Job) -> str | None:
    """The message an approval posted the job's result in (a surface's message key), for an
    operator's take-down; None when it has none."""
    approval = await engine.approvals.get(job.id, job.tenant)
    return approval.posted if approval is not None and approval.posted else None
