"""A finished job's images posted through the surface that asked, for `JobRunner` (bot/jobs/runner.py):

completed   -> delivering is written first, then the post
delivering  -> post again (surfaces post idempotently per job id), then settle: the posts and the move
               to `delivered` in one transaction

The images are posted under one of the `ResultGate`'s slots (HIDREAM_MAX_UPLOADS), streamed from
files, never whole in memory: those the job's own task has just kept are handed over (`hand_over`)
with their files (the media folder's own, or the spooled download the slot deletes once posted);
otherwise they are read back from the store as files (`kept_files`: a media folder's own file, or a
copy streamed from the object store or the PostgreSQL row) under a new slot.

Every write to the platform is fenced (storage/fencing.py): the progress edit follows the move to
`delivering` (or, at a redelivery, a check of its own), a failure's message the move to `failed`, and
the surface's posts its own records of them, which it makes before and after each platform call; the
store checks this replica's hold in each of those. A replica that was frozen past its lease while
another delivered the job raises `LeaseLost` at its next check, having posted nothing more.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from bot import words
from bot.jobs.images import ResultGate, ResultSlot
from bot.jobs.metrics import Metrics
from bot.jobs.steps import Shows, kept_files
from bot.jobs.versions import Versions
from bot.logs import job_fields
from bot.model.errors import StoreUnavailable
from bot.model.jobs import Job, JobState, OutputImage, Post, Reviews, Surface
from bot.providers.base import Sleep
from storage.approvals import Approvals, Review
from storage.fencing import Hold, LeaseLost, fenced_by
from storage.store import Store

log = logging.getLogger(__name__)

__all__ = ["DELIVERY_ATTEMPTS", "Delivery"]

DELIVERY_ATTEMPTS = 3


class Delivery:
    def __init__(
        self,
        store: Store,
        results: ResultGate,
        metrics: Metrics,
        *,
        clock: Callable[[], float],
        sleep: Sleep,
        fail: Callable[[Job, str], Awaitable[None]],
        progress: Shows,
        hold: Callable[[str], Hold],
    ) -> None:
        self.store = store
        self.results = results
        self.metrics = metrics
        self.clock = clock
        self.sleep = sleep
        self.fail = fail  # the worker's: the job failed, its requester told
        self.progress = progress
        self.hold = hold  # this replica's claim on a job, which fences its posts
        self.versions = Versions(store)
        self.approvals = Approvals(store)
        # A job's results just kept, still in memory under their slot, for its delivery next.
        self._fresh: dict[str, tuple[ResultSlot, list[OutputImage]]] = {}

    def hand_over(self, job_id: str, slot: ResultSlot, images: list[OutputImage]) -> None:
        """The results `job_id` just kept, still in memory under `slot`: its delivery posts them as
        they are (no read back from the store) and gives the slot back."""
        self.drop(job_id)
        self._fresh[job_id] = (slot, images)

    def drop(self, job_id: str) -> None:
        """Give back the slot of results kept but not posted (the task stopped, or the job moved on)."""
        fresh = self._fresh.pop(job_id, None)
        if fresh is not None:
            fresh[0].release()

    async def post(self, job: Job, surface: Surface) -> None:
        """Raises LeaseLost when another replica claimed the job meanwhile."""
        hold = self.hold(job.id)
        with fenced_by(hold):
            await self._post(job, surface, hold)

    async def _confirm(self, hold: Hold) -> None:
        async with self.store.database.transaction() as db:
            await hold.check(db)

    async def _post(self, job: Job, surface: Surface, hold: Hold) -> None:
        # The move to `delivering` checks the hold in its own transaction; a redelivery checks it apart.
        if job.state is JobState.COMPLETED:
            if not await self.store.transition(job.id, JobState.DELIVERING):
                return
        else:
            await self._confirm(hold)
        await self.progress(job, "delivering", milestone=True)
        posts, count = await self._post_images(job, surface)
        if posts is None:
            # The move to `failed` is fenced too: a replica that lost the job tells nobody.
            await self.fail(job, words.FAILED_NOT_POSTED)
            return
        # Numbered before the job counts as delivered: a crash in between numbers it at redelivery.
        try:
            await self.versions.record(job, posts)
        except StoreUnavailable:
            raise  # the runner waits for the database, then delivers again (the posts are not repeated)
        except Exception:
            # The images are posted: a thread's numbering that failed must not turn them into a refund.
            log.warning("job %s: could not number its version in the thread", job.id, exc_info=True)
        # The posts and the move to `delivered` in one transaction (the posts kept either way).
        if await self.store.delivered(job.id, job.surface, [(p.message_key, p.thread_key) for p in posts]):
            self.metrics.finished(job, JobState.DELIVERED, self.clock())
            log.info(
                "job %s delivered (%d image(s))",
                *(job.id, count),
                extra=job_fields(job, state=JobState.DELIVERED),
            )

    async def _queue_for_review(self, job: Job, surface: Surface, images: list[OutputImage]) -> None:
        """A job of a reviewed channel (its origin says who reviews): its approval opened, pending, and
        the images put in its reviewers' queue once (a redelivery finds it queued; a surface skips the
        reviewers it has already reached). Called once the requester has the result: a queue that
        cannot be reached is logged and the requester told, and their delivery stands (no refund)."""
        review = job.origin.get("review")
        if not review or not isinstance(surface, Reviews):
            return
        spec = Review(str(review["reviewers"]), str(review["queue"]))
        approval = await self.approvals.open(job.id, job.tenant, job.channel, spec)
        if approval.queued or approval.state != "pending":
            return
        try:
            await surface.queue_for_review(job, images)
        except (LeaseLost, StoreUnavailable):
            raise  # delivered again by whoever holds the job, or once the database is back
        except Exception as exc:
            # The class only: a platform's error text may quote what it was sent.
            log.warning("job %s: its reviewers' queue could not be reached (%s)", job.id, type(exc).__name__)
            await self._tell(job, surface, words.REVIEWERS_UNREACHABLE)
            return
        await self.approvals.queued(job.id)

    @staticmethod
    async def _tell(job: Job, surface: Reviews, text: str) -> None:
        """Privately, beside the result (a failure's `tell` would take the result's place)."""
        try:
            await surface.tell_privately(job, text)
        except (LeaseLost, StoreUnavailable):
            raise
        except Exception as exc:
            log.warning("job %s: its requester could not be told (%s)", job.id, type(exc).__name__)

    async def _post_images(self, job: Job, surface: Surface) -> tuple[list[Post] | None, int]:
        """The surface's posts (None when every attempt failed) and how many images they carried."""
        # The slot the images were kept under when this task has just made them, else a new one.
        fresh = self._fresh.pop(job.id, None)
        images: list[OutputImage] | None = None
        if fresh is not None and [image.media_id for image in fresh[1]] == job.result_media:
            slot, images = fresh
        else:
            if fresh is not None:
                fresh[0].release()
            slot = await self.results.take()
        try:
            if images is None:
                images = await kept_files(self.store, job, slot)
            count = len(images)
            for attempt in range(1, DELIVERY_ATTEMPTS + 1):
                try:
                    posts = await surface.deliver(job, images)
                    break
                except (LeaseLost, StoreUnavailable):
                    # Another replica delivers it, or the database is away (the runner waits for it and
                    # delivers again, repeating no post): no retry here, no failure.
                    raise
                except Exception:
                    log.warning("job %s: delivery attempt %d failed", job.id, attempt, exc_info=True)
                    await self.sleep(attempt * 2.0)
            else:
                return None, count
            # The requester has it: their reviewers' queue is apart, and cannot undo their delivery.
            await self._queue_for_review(job, surface, images)
            return posts, count
        finally:
            del images, fresh  # nothing of them is held once the slot is given back
            slot.release()
