"""How many jobs the runner works on at once, and how often their requesters see progress.

`Slots`: at most `HIDREAM_MAX_ACTIVE_JOBS` jobs hold a slot (they are at the provider or being
posted); the others wait in one first-come, first-served line. A job waiting for a slot stays
`queued` in the store and its position in the line is what its requester is told.

`ProgressGate`, the progress policy (also in docs/operating.md): a progress edit is a call to the chat
platform, and platforms limit those (per bot, per message, per workspace), so

- one job's progress is edited at most once every `PROGRESS_EVERY` seconds, and, when many jobs
  are being worked or wait, at most once every `jobs / PROGRESS_RATE` seconds: the more jobs, the
  rarer each one's edits;
- all jobs together make at most `PROGRESS_RATE` edits a second (a token bucket holding at most
  `PROGRESS_BURST`), whatever happens; an edit that finds no token is skipped, not queued, and the job
  tries again after a random part of its interval, so the jobs turned away spread out instead of all
  trying again at the same moment.

A milestone (the job reached the provider, the job is being posted) skips the per-job interval but
still needs a token, so the global rate holds even then. Every decision reads the injected clock.

An edit must say something new: its stage or its place in the queue differs from what the job
shows. Elapsed seconds alone are not news, except as a heartbeat once `HEARTBEAT` seconds passed
since the job's line was last edited, so a long job still shows it is alive (at a fifth of the
per-job rate, and never faster than that rate). An edit that says nothing new takes no token.
"""

from __future__ import annotations

import asyncio
import random
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

PROGRESS_EVERY = 2.0
PROGRESS_RATE = 5.0
PROGRESS_BURST = 5.0
HEARTBEAT = 10.0


class Slots:
    """At most `limit` holders at once; the rest wait in line and are handed a slot in turn."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("at least one slot is needed")
        self.limit = limit
        self._holders: set[str] = set()
        self._line: OrderedDict[str, asyncio.Future[None]] = OrderedDict()

    @property
    def active(self) -> int:
        return len(self._holders)

    @property
    def waiting(self) -> int:
        return len(self._line)

    def take(self, key: str) -> bool:
        """Take a free slot now; False when all are held (or others are already waiting for one)."""
        if key in self._holders:
            return True
        if len(self._holders) >= self.limit or self._line:
            return False
        self._holders.add(key)
        return True

    def join(self, key: str) -> asyncio.Future[None]:
        """Wait in line; the future is done when the slot is handed over (then `key` holds it)."""
        found = self._line.get(key)
        if found is None:
            found = self._line[key] = asyncio.get_running_loop().create_future()
        # A slot may have come free since `take` refused (its holder left while the caller awaited):
        # nobody else would hand it over.
        self._hand_over()
        return found

    def position(self, key: str) -> int | None:
        """1 for the next in line; None when not waiting."""
        for index, waiting in enumerate(self._line):
            if waiting == key:
                return index + 1
        return None

    def leave(self, key: str) -> None:
        """Give back the slot, or step out of the line; the next in line gets any free slot."""
        self._holders.discard(key)
        waiting = self._line.pop(key, None)
        if waiting is not None and not waiting.done():
            waiting.cancel()
        self._hand_over()

    def _hand_over(self) -> None:
        """Free slots go to the first in line."""
        while len(self._holders) < self.limit and self._line:
            nxt, turn = self._line.popitem(last=False)
            if turn.done():  # its waiter was cancelled: nobody to hand the slot to
                continue
            self._holders.add(nxt)
            turn.set_result(None)


async def wait_for_turn(turn: asyncio.Future[None], waker: asyncio.Event, seconds: float) -> bool:
    """Wait for the slot (`turn`), the job's `waker` or `seconds`; True (and `waker` cleared) when woken."""
    woken = asyncio.ensure_future(waker.wait())
    either: set[asyncio.Future[Any]] = {turn, woken}
    try:
        await asyncio.wait(either, timeout=max(0.0, seconds), return_when=asyncio.FIRST_COMPLETED)
    finally:
        woken.cancel()
    if not waker.is_set():
        return False
    waker.clear()
    return True


class ProgressGate:
    """Decides whether a job's progress may be shown now (see the module's policy)."""

    def __init__(
        self,
        clock: Callable[[], float],
        *,
        every: float = PROGRESS_EVERY,
        rate: float = PROGRESS_RATE,
        burst: float = PROGRESS_BURST,
        spread: Callable[[float], float] | None = None,
        heartbeat: float = HEARTBEAT,
    ) -> None:
        self.clock = clock
        self.every = every
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._filled_at: float | None = None
        self._tried: dict[str, float] = {}
        self.heartbeat = heartbeat
        self._shown: dict[str, tuple[object, float]] = {}  # what each job's line says, and since when
        # How far into its interval a job turned away for want of a token tries again.
        self._spread = spread or (lambda interval: random.uniform(0.0, interval))

    def interval(self, jobs: int) -> float:
        """The least time between two edits of one job while `jobs` jobs are being worked or wait."""
        return max(self.every, jobs / self.rate)

    def next_try(self, key: str, jobs: int) -> float:
        """When the job may next be shown (by the clock); now or earlier when it may be now."""
        tried = self._tried.get(key)
        return self.clock() if tried is None else tried + self.interval(jobs)

    def allow(self, key: str, jobs: int, *, milestone: bool = False, says: object = None) -> bool:
        """True when this edit may be made now, and then counts it. `says`: what the edit shows
        besides the elapsed time (stage and queue position); the same as shown before is no news.
        None: not told, so always news."""
        now = self.clock()
        shown = self._shown.get(key)
        if says is not None and shown is not None and shown[0] == says and now - shown[1] < self.heartbeat:
            return False
        self._refill(now)
        interval = self.interval(jobs)
        tried = self._tried.get(key)
        if not milestone and tried is not None and now - tried < interval:
            return False
        if self._tokens < 1:
            if not milestone:
                self._tried[key] = now - interval + self._spread(interval)
            return False
        self._tokens -= 1
        self._tried[key] = now
        self._shown[key] = (says, now)
        return True

    def forget(self, key: str) -> None:
        self._tried.pop(key, None)
        self._shown.pop(key, None)

    def _refill(self, now: float) -> None:
        if self._filled_at is not None and now > self._filled_at:
            self._tokens = min(self.burst, self._tokens + (now - self._filled_at) * self.rate)
        if self._filled_at is None or now > self._filled_at:
            self._filled_at = now
