"""Fencing: a replica writes to a chat platform for a job only while it still holds the job's lease.

A lease alone cannot stop a replica that was frozen (SIGSTOP, a stalled VM) past its lease: when it
wakes, its next platform call goes out before its next renewal tells it another replica took the job.
So each claim stamps the job's row with a new generation (`lease_gen`, storage/replicas.py), and
every write to a platform is preceded by a statement that compares this replica's name and the
generation it claimed with the row's: `Hold.check`. A match also extends the lease, so the write that
follows has a whole lease before any other replica may claim the job.

The delivery marks the writes it makes (`fenced_by`); then the store checks the hold in the same
transaction as each of the job's moves (storage/store.py) and each record of a post, which a surface
makes before and after each platform call (storage/posts.py), and in the same statement as a read of
the job's posts (a surface's first look), and raises `LeaseLost` when it is gone. What no check can
close is a freeze between the check and the platform call itself: that lasts a whole lease, not a
moment.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from storage.connections import Queries

__all__ = ["Hold", "LeaseLost", "fenced_by", "holding"]


class LeaseLost(Exception):
    """Another replica claimed the job since this one did: this one writes nothing more for it."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"job {job_id}: another replica holds its lease now")
        self.job_id = job_id


@dataclass(frozen=True)
class Hold:
    """This replica's claim on a job: its name, the generation its last claim stamped (read at each
    check: a replica may claim its own job again after a stall, and nobody else came between then,
    or the row would name them), and how long a confirmed hold lasts from its confirmation."""

    job_id: str
    owner: str
    generation: Callable[[], int]
    seconds: float
    now: Callable[[], float]

    async def check(self, db: Queries) -> None:
        """Confirm the hold (and extend it) within `db`'s transaction; LeaseLost when it is gone."""
        held = await db.execute(
            "UPDATE jobs SET lease_until=? WHERE id=? AND owner=? AND lease_gen=?",
            *(self.now() + self.seconds, self.job_id, self.owner, self.generation()),
        )
        if held != 1:
            raise LeaseLost(self.job_id)


# The hold that fences the current task's writes for one job (set by the delivery, read by the store).
_current: ContextVar[Hold | None] = ContextVar("hold", default=None)


@contextmanager
def fenced_by(hold: Hold) -> Iterator[None]:
    """Within: the store's records of this job's posts check `hold` first."""
    token = _current.set(hold)
    try:
        yield
    finally:
        _current.reset(token)


def holding(job_id: str) -> Hold | None:
    """The hold that fences the current task's writes for `job_id`, if any."""
    hold = _current.get()
    return hold if hold is not None and hold.job_id == job_id else None
