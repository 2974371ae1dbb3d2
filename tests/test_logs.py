"""JSON log lines name the job a task works on, and only in that task: the job a line is about comes
from the task's own context (or the line's `extra`), never from another job's."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from typing import Any

from bot.logs import JsonFormatter, Throttle, bind_job, job_fields
from bot.model.jobs import JobState
from tests.support.jobs import make_job


def lines_of(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


async def test_each_task_logs_its_own_job_and_extra_wins() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("tests.logs.json")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    first, second = make_job(), make_job()
    both_bound = asyncio.Event()

    async def work(job: Any) -> None:
        bind_job(job)
        if job is first:
            both_bound.set()
        await both_bound.wait()  # both tasks hold a job at once: neither sees the other's
        logger.info("working on it")

    try:
        await asyncio.gather(work(second), work(first))
        logger.info("outside any job")
        logger.warning("told", extra=job_fields(first, state=JobState.FAILED))
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    working, outside, told = lines_of(stream)[0:2], lines_of(stream)[2], lines_of(stream)[3]
    assert {line["job_id"] for line in working} == {first.id, second.id}
    for line in working:
        job = first if line["job_id"] == first.id else second
        assert (line["tenant"], line["provider"], line["state"]) == (job.tenant, job.provider, "queued")
        assert line["level"] == "INFO" and line["logger"] == "tests.logs.json"
    assert "job_id" not in outside and outside["message"] == "outside any job"
    assert (told["job_id"], told["state"], told["level"]) == (first.id, "failed", "WARNING")
    assert told["time"].endswith("+00:00")


def test_a_throttled_line_passes_once_per_interval_and_counts_the_rest() -> None:
    now = [100.0]
    throttle = Throttle(30.0, clock=lambda: now[0])
    assert throttle.allow()
    now[0] += 29.9
    assert not throttle.allow() and not throttle.allow()
    assert throttle.take_held() == 2 and throttle.take_held() == 0
    now[0] += 0.1
    assert throttle.allow()  # 30 s after the first
    assert not throttle.allow()
