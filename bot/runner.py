"""The steps of one job, each starting from the state the store holds.

queued      -> submit to the provider (state `submitting` is written first)
submitting  -> the request may have been sent but its answer was lost: wait for a callback
running     -> wait for the callback, or poll with backoff; fetch the results
completed   -> deliver through the surface that asked
delivering  -> deliver again (surfaces deliver idempotently per job id), then settle
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from bot.errors import MediaError, ProviderBusy, ProviderError, ProviderUnreachable, SubmitOutcomeUnknown
from bot.hidream.base import ProviderStatus, status_from_dict
from bot.jobs import TERMINAL, Job, JobState
from bot.media import fetch_image

if TYPE_CHECKING:
    from bot.engine import Engine

log = logging.getLogger(__name__)

PROGRESS_TICK = 5.0
RESULT_MAX_BYTES = 60 * 1024 * 1024
DELIVERY_ATTEMPTS = 3


async def run_job(engine: Engine, job_id: str) -> None:
    while True:
        job = await engine.store.job(job_id)
        if job is None or job.state in TERMINAL:
            return
        expired = engine.timed_out(job)
        if expired is not None and job.state in (JobState.QUEUED, JobState.SUBMITTING, JobState.RUNNING):
            await engine.fail(job, expired.user_message)
            continue
        if job.state is JobState.QUEUED:
            await _submit(engine, job)
        elif job.state is JobState.SUBMITTING:
            await _await_unknown(engine, job)
        elif job.state is JobState.RUNNING:
            await _await_result(engine, job)
        elif not await _deliver(engine, job):
            return  # parked: its surface is not running in this process


async def _submit(engine: Engine, job: Job) -> None:
    if not await engine.store.transition(job.id, (JobState.QUEUED,), JobState.SUBMITTING):
        return
    await engine.progress(job, "queued", await engine.store.queue_position(job), force=True)
    try:
        spec = engine.submit_spec(job, await engine.reference_urls(job))
        provider_job_id = await engine.provider.submit(spec)
    except SubmitOutcomeUnknown as exc:
        log.warning("job %s: submit outcome unknown (%s); not resending", job.id, exc.detail)
        await engine.store.transition(
            job.id, (JobState.SUBMITTING,), JobState.SUBMITTING, error=exc.user_message
        )
        return
    except ProviderError as exc:
        log.warning("job %s: provider refused: %s", job.id, exc)
        await engine.fail(job, exc.user_message)
        return
    except MediaError as exc:
        await engine.fail(job, exc.user_message)
        return
    await engine.store.transition(
        job.id, (JobState.SUBMITTING,), JobState.RUNNING, provider_job_id=provider_job_id, error=None
    )
    log.info("job %s submitted to %s as %s", job.id, engine.provider.name, provider_job_id)


async def _await_unknown(engine: Engine, job: Job) -> None:
    """We cannot ask the provider about a request whose id we never read. Only a callback can save it."""
    cached = await engine.store.callback_status(job.id)
    if cached is not None:
        await _settle_status(engine, job, status_from_dict(cached))
        return
    if not engine.callbacks_enabled:
        await engine.fail(
            job,
            job.error
            or "The bot restarted while sending this request, so it was not sent again; your quota was given back.",
        )
        return
    await engine.progress(job, "running")
    await engine.wait_for_wake(job.id, min(PROGRESS_TICK, job.deadline - engine.clock()))


async def _await_result(engine: Engine, job: Job) -> None:
    assert job.provider_job_id is not None
    interval = engine.provider.poll_interval
    wait = engine.callback_grace if engine.callbacks_enabled else interval
    next_poll = engine.clock() + wait
    while True:
        cached = await engine.store.callback_status(job.id)
        status: ProviderStatus | None = status_from_dict(cached) if cached is not None else None
        if status is None and engine.clock() >= next_poll:
            status = await _poll(engine, job)
            interval = min(interval * 1.5, engine.callback_grace if engine.callbacks_enabled else 15.0)
            next_poll = engine.clock() + interval
        if status is not None and status.state in ("completed", "failed"):
            await _settle_status(engine, job, status)
            return
        if status is not None:
            await engine.progress(
                job, "queued" if status.state == "queued" else "running", status.queue_position
            )
        else:
            await engine.progress(job, "running")
        if engine.timed_out(job) is not None:
            return  # the caller fails it
        timeout = min(next_poll - engine.clock(), PROGRESS_TICK, job.deadline - engine.clock() + 0.01)
        if await engine.wait_for_wake(job.id, timeout):
            next_poll = engine.clock()  # a callback arrived: read it, or poll now if it was only a hint


async def _poll(engine: Engine, job: Job) -> ProviderStatus | None:
    assert job.provider_job_id is not None
    try:
        return await engine.provider.status(job.provider_job_id)
    except (ProviderBusy, ProviderUnreachable) as exc:
        log.warning("job %s: status check failed, will retry: %s", job.id, exc)
        return None
    except ProviderError as exc:
        return ProviderStatus(state="failed", error=exc.user_message)


async def _settle_status(engine: Engine, job: Job, status: ProviderStatus) -> None:
    if status.state == "failed":
        await engine.fail(job, status.error or f"{engine.provider.name} could not make the image.")
        return
    if not status.images:
        await engine.fail(
            job, f"{engine.provider.name} finished but sent no image; your quota was given back."
        )
        return
    media_ids = []
    for image in status.images:
        try:
            fetched = await fetch_image(engine.http, image.url, typed=False, max_bytes=RESULT_MAX_BYTES)
        except MediaError as exc:
            log.warning("job %s: result could not be fetched: %s", job.id, exc)
            await engine.fail(job, "The finished image could not be downloaded from the provider.")
            return
        media_ids.append(
            await engine.store.put_media(
                fetched.data, fetched.content_type, fetched.width, fetched.height, image.nsfw
            )
        )
    from_states = (JobState.SUBMITTING, JobState.RUNNING)
    await engine.store.transition(job.id, from_states, JobState.COMPLETED, result_media=media_ids)


async def _deliver(engine: Engine, job: Job) -> bool:
    surface = engine.surfaces.get(job.surface)
    if surface is None:
        log.warning("job %s waits for surface %r, which is not running", job.id, job.surface)
        return False
    if job.state is JobState.COMPLETED:
        if not await engine.store.transition(job.id, (JobState.COMPLETED,), JobState.DELIVERING):
            return True
    await engine.progress(job, "delivering", force=True)
    images = await engine.result_images(job)
    for attempt in range(1, DELIVERY_ATTEMPTS + 1):
        try:
            posts = await surface.deliver(job, images)
            break
        except Exception:
            log.warning("job %s: delivery attempt %d failed", job.id, attempt, exc_info=True)
            await engine._sleep(attempt * 2.0)
    else:
        await engine.fail(job, "The image was made but could not be posted here; your quota was given back.")
        return True
    await engine.store.record_posts(job.id, job.surface, [(p.message_key, p.thread_key) for p in posts])
    if await engine.store.transition(job.id, (JobState.DELIVERING,), JobState.DELIVERED):
        log.info("job %s delivered (%d image(s))", job.id, len(images))
    return True
