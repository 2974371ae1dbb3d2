"""Approvals in the store: a tenant's reviewed channels (who reviews there and where their queue is)
and each reviewed job's approval. A job in a reviewed channel is opened `pending` when it is delivered
privately; a reviewer's press moves it once, to `approved` or `rejected` (`decide` is a compare and
set, so a double press or a press repeated after a restart decides nothing more); the approved post's
message is written down once it is out. The operators' page lists those still pending."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from bot.model.requests import ImageRequest
from storage.store import Store

# `withdrawn`: an operator took the job down while it waited (nothing is left to approve).
State = Literal["pending", "approved", "rejected", "withdrawn"]


@dataclass(frozen=True)
class Review:
    """Who reviews a channel's requests (a spec as the surface wrote it: `role:<id>`, `group:<id>`
    or `users:<id>,<id>`) and where their queue is (a channel id, or `dm`)."""

    reviewers: str
    queue: str


@dataclass(frozen=True)
class Approval:
    job_id: str
    tenant: str
    channel: str
    state: State
    reviewers: str
    queued: bool
    decided_by: str
    reason: str
    posted: str
    created_at: float


@dataclass(frozen=True)
class Pending:
    """A pending approval as the operators' page shows it."""

    job_id: str
    tenant: str
    channel: str
    requester: str
    prompt: str
    created_at: float


_COLUMNS = "job_id, tenant, channel, state, reviewers, queued, decided_by, reason, posted, created_at"


class Approvals:
    def __init__(self, store: Store) -> None:
        self.store = store

    # --- reviewed channels ----------------------------------------------------------------------

    async def reviewed(self, tenant: str, channel: str) -> Review | None:
        if not channel:
            return None
        row = await self.store.database.fetchrow(
            "SELECT reviewers, queue FROM reviewed_channels WHERE tenant=? AND channel=?", tenant, channel
        )
        return None if row is None else Review(str(row[0]), str(row[1]))

    async def set_reviewed(self, tenant: str, channel: str, review: Review | None) -> None:
        """Mark `channel` reviewed (or, with None, no longer)."""
        if review is None:
            await self.store.write(
                "DELETE FROM reviewed_channels WHERE tenant=? AND channel=?", tenant, channel
            )
            return
        await self.store.write(
            "INSERT INTO reviewed_channels (tenant, channel, reviewers, queue, updated_at) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (tenant, channel) DO UPDATE SET "
            "reviewers=excluded.reviewers, queue=excluded.queue, updated_at=excluded.updated_at",
            *(tenant, channel, review.reviewers, review.queue, self.store.now()),
        )

    # --- approvals ------------------------------------------------------------------------------

    async def open(self, job_id: str, tenant: str, channel: str, review: Review) -> Approval:
        """The job's approval, opened `pending` the first time (kept as it is after that)."""
        await self.store.write(
            "INSERT INTO approvals (job_id, tenant, channel, state, reviewers, created_at) "
            "VALUES (?, ?, ?, 'pending', ?, ?) ON CONFLICT (job_id) DO NOTHING",
            *(job_id, tenant, channel, review.reviewers, self.store.now()),
        )
        found = await self.get(job_id, tenant)
        assert found is not None
        return found

    async def get(self, job_id: str, tenant: str) -> Approval | None:
        """The job's approval in `tenant` (None in any other)."""
        row = await self.store.database.fetchrow(
            f"SELECT {_COLUMNS} FROM approvals WHERE job_id=? AND tenant=?", job_id, tenant
        )
        if row is None:
            return None
        return Approval(
            str(row[0]), str(row[1]), str(row[2]), row[3], str(row[4]), bool(row[5]),
            str(row[6]), str(row[7]), str(row[8]), float(row[9]),
        )  # fmt: skip

    async def queued(self, job_id: str) -> None:
        """Its reviewers' queue has it (a redelivery does not post it there again)."""
        await self.store.write("UPDATE approvals SET queued=1 WHERE job_id=?", job_id)

    async def decide(self, job_id: str, tenant: str, state: State, by: str, reason: str = "") -> bool:
        """Move a pending approval to `state`; False when it was not pending (decided already). An
        approval is also taken for posting (see `take_posting`) by the same write."""
        now = self.store.now()
        moved = await self.store.write(
            "UPDATE approvals SET state=?, decided_by=?, reason=?, decided_at=?, posting_at=? "
            "WHERE job_id=? AND tenant=? AND state='pending'",
            *(state, by, reason, now, now if state == "approved" else None, job_id, tenant),
        )
        return moved == 1

    async def withdraw(self, job_id: str) -> None:
        """An operator took the job down: a pending approval can no longer be decided (one decided
        keeps its decision, for the audit)."""
        await self.store.write(
            "UPDATE approvals SET state='withdrawn', decided_at=? WHERE job_id=? AND state='pending'",
            self.store.now(),
            job_id,
        )

    async def take_posting(self, job_id: str, tenant: str, stale_after: float) -> bool:
        """Take over the post of an approved result whose post is not out, when whoever took it last
        did so over `stale_after` seconds ago (it stopped: a crash, a restart): one press at a time."""
        now = self.store.now()
        taken = await self.store.write(
            "UPDATE approvals SET posting_at=? WHERE job_id=? AND tenant=? AND state='approved' "
            "AND posted='' AND (posting_at IS NULL OR posting_at < ?)",
            *(now, job_id, tenant, now - stale_after),
        )
        return taken == 1

    async def posted(self, job_id: str, message_key: str) -> None:
        """The approved image's post in its channel."""
        await self.store.write("UPDATE approvals SET posted=? WHERE job_id=?", message_key, job_id)

    async def pending(self, limit: int = 100) -> list[Pending]:
        """Pending approvals across tenants, oldest first (for the operators' page)."""
        rows = await self.store.database.fetch(
            "SELECT a.job_id, a.tenant, a.channel, j.surface, j.user_id, j.request, a.created_at "
            "FROM approvals a JOIN jobs j ON j.id = a.job_id WHERE a.state='pending' "
            "ORDER BY a.created_at, a.job_id LIMIT ?",
            limit,
        )
        return [
            Pending(str(r[0]), str(r[1]), str(r[2]), f"{r[3]}:{r[4]}", _prompt(str(r[5])), float(r[6]))
            for r in rows
        ]


def _prompt(request_json: str) -> str:
    return ImageRequest.model_validate_json(request_json).prompt


async def pending_approvals(store: Store) -> list[dict[str, object]]:
    """The operators' page's list (and `/admin/api/approvals`): each pending approval, oldest first."""
    return [
        {
            "job": p.job_id,
            "tenant": p.tenant,
            "channel": p.channel,
            "requester": p.requester,
            "prompt": p.prompt,
            "created_at": p.created_at,
        }
        for p in await Approvals(store).pending()
    ]
