"""What a job in `submitting` knows about its requests at the provider, kept in the store so that a
lost answer to a submit can still be recovered from the provider's callback after a restart.

The record lives in the job's `callback_status` column while the job is `submitting` (the column
otherwise holds a verified callback's status, which has a `state`; a record has `submit` instead):

- `started`: the ids of the job's requests whose answers were read;
- `settled`: the submit call ended with a lost answer, so exactly one request (the one after
  `started`) is in doubt; the requests after it were never sent. Without it (the bot stopped during
  the submit) as many requests as the job still needed may be in doubt;
- `candidates`: ids that callbacks on the job's own URL named and that are none of `started`, not yet
  checked with the provider; `refused`: those a status read did not confirm;
- `early`: a final status a verified callback carried, by the id it named. It is taken only once the
  job's submit answers with that very id (`early_for`): a signature says that the provider sent a
  callback, not that it is for a request this bot made.

A callback's id is bound to the job only when exactly one request is in doubt, so it can only be
that one, and only after a status read with our own key shows that the provider knows it
(`SubmitRecords.recover`); then the runner sends the job's remaining requests, if any, or moves it
on to `running` with its ids.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from bot.model.errors import ProviderBusy, ProviderError, ProviderUnreachable
from bot.model.jobs import Job, JobState
from bot.providers.base import Provider, ProviderStatus, status_from_dict
from storage.store import Store

log = logging.getLogger(__name__)

# A forged or foreign callback must not grow the record without bound.
MAX_NAMED = 8


def final_status(cached: Mapping[str, Any] | None) -> ProviderStatus | None:
    """A verified callback's status when it is final (completed or failed); else None."""
    if cached is None or cached.get("state") not in ("completed", "failed"):
        return None
    return status_from_dict(cached)


def recorded_status(cached: Mapping[str, Any] | None) -> ProviderStatus | None:
    """A verified callback's status, whatever its state; None for nothing or a submit record."""
    if cached is None or "state" not in cached:
        return None
    return status_from_dict(cached)


@dataclass
class SubmitRecord:
    started: list[str] = field(default_factory=list)
    settled: bool = False
    candidates: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    early: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def read(cls, cached: Mapping[str, Any] | None) -> SubmitRecord:
        raw = cached.get("submit") if cached is not None else None
        if not isinstance(raw, dict):
            return cls()
        return cls(
            started=[str(i) for i in raw.get("started", [])],
            settled=bool(raw.get("settled")),
            candidates=[str(i) for i in raw.get("candidates", [])],
            refused=[str(i) for i in raw.get("refused", [])],
            early={str(k): v for k, v in (raw.get("early") or {}).items() if isinstance(v, dict)},
        )

    def in_doubt(self, requests: int) -> int:
        """How many of the job's `requests` may have been made without our knowing their ids."""
        return 1 if self.settled else max(0, requests - len(self.started))

    def add_candidate(self, named: str) -> bool:
        known = (*self.started, *self.candidates, *self.refused)
        if named in known or len(self.candidates) >= MAX_NAMED:
            return False
        self.candidates.append(named)
        return True

    def add_early(self, named: str, status: dict[str, Any]) -> bool:
        if named in self.early or len(self.early) >= MAX_NAMED:
            return False
        self.early[named] = status
        return True

    def early_for(self, provider_job_id: str) -> ProviderStatus | None:
        """The final status an early callback carried for exactly this provider job id, if any."""
        status = self.early.get(provider_job_id)
        return status_from_dict(status) if status is not None else None

    def lost(self, started: list[str]) -> bool:
        self.started = list(started)
        self.settled = True
        self.candidates = [c for c in self.candidates if c not in self.started]
        return True

    def sending(self, started: list[str]) -> bool:
        self.started = list(started)
        self.settled = False
        self.candidates = []
        return True

    def refuse(self, named: str) -> bool:
        if named not in self.candidates:
            return False
        self.candidates.remove(named)
        self.refused = [*self.refused, named][-MAX_NAMED:]
        return True


class SubmitRecords:
    """Reads and changes the records; one change at a time, since callbacks and the job's own task
    both change them."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._lock = asyncio.Lock()
        # Jobs whose callbacks cannot be bound (several requests in doubt): said once in the log.
        self._unbindable: set[str] = set()

    def forget(self, job_id: str) -> None:
        self._unbindable.discard(job_id)

    async def recover(self, provider: Provider, job: Job, record: SubmitRecord) -> list[str] | None:
        """The job's requests so far, ending with the first candidate that the provider confirms
        (the one whose answer was lost); None when there is none yet."""
        if not record.candidates:
            return None
        doubt = record.in_doubt(provider.requests_for(job.request))
        if doubt != 1:
            if job.id not in self._unbindable:
                self._unbindable.add(job.id)
                log.warning(
                    "job %s: a callback names %s, but %d requests may have been made unseen, so it "
                    "cannot be told which; the job waits for its deadline",
                    job.id,
                    record.candidates[0],
                    doubt,
                )
            return None
        for named in record.candidates:
            confirmed = await _confirm(provider, job, named)
            if confirmed is None:
                return None  # the provider could not be asked now: again at the job's next look
            if confirmed:
                return [*record.started, named]
            await self.refuse(job.id, named)
        return None

    async def note(self, job_id: str, named: str, final: dict[str, Any] | None = None) -> None:
        """A callback named `named` (carrying the final status `final`, if it did)."""

        def add(record: SubmitRecord) -> bool:
            added = record.add_candidate(named)
            return (final is not None and record.add_early(named, final)) or added

        await self.change(job_id, add)

    async def lost(self, job_id: str, started: list[str], message: str) -> None:
        await self.change(job_id, lambda record: record.lost(started), error=message)

    async def sending(self, job_id: str, started: list[str]) -> None:
        await self.change(job_id, lambda record: record.sending(started))

    async def refuse(self, job_id: str, named: str) -> None:
        await self.change(job_id, lambda record: record.refuse(named))

    async def change(
        self, job_id: str, how: Callable[[SubmitRecord], bool], **fields: Any
    ) -> SubmitRecord | None:
        """Apply `how` to the job's record while it is `submitting` and store it (with `fields`).
        None when the job holds a callback's status instead (left as it is)."""
        async with self._lock:
            cached = await self.store.callback_status(job_id)
            if recorded_status(cached) is not None:
                if fields:
                    await self.store.annotate(job_id, JobState.SUBMITTING, **fields)
                return None
            record = SubmitRecord.read(cached)
            if how(record) or fields:
                await self.store.annotate(
                    job_id, JobState.SUBMITTING, callback_status={"submit": asdict(record)}, **fields
                )
            return record


async def _confirm(provider: Provider, job: Job, named: str) -> bool | None:
    """Does the provider know a job by this id (read with our own key)? None when it could not be asked."""
    try:
        await provider.status(named)
    except (ProviderBusy, ProviderUnreachable) as exc:
        log.warning("job %s: could not check the id a callback named: %s", job.id, exc)
        return None
    except ProviderError as exc:
        log.warning(
            "job %s: %s does not confirm the id %s a callback named: %s", job.id, provider.name, named, exc
        )
        return False
    return True
