"""What replicas sharing one database coordinate through it: which replica works a job (a lease),
wake-ups for a job whose news reached another replica, and platform events already handled.

A lease is an owner and an expiry on the job's row. A replica claims a job before working it and
renews its leases while it works; a job whose lease lapsed (its replica died) or that nobody holds is
claimed by the next replica that looks. Leases decide who works a job; the guarded state transitions
still decide what happens to it, so even two replicas that both believed they held a job could not
both move it through the same step. Each claim also stamps the row with the next lease generation,
which this replica remembers (`hold`) and its platform writes compare (storage/fencing.py).

On SQLite (one process by design) the owner is always the same name, so a restarted bot takes its
jobs back at once. On PostgreSQL each process is its own owner. How wake-ups travel is the store's
strategy (storage/wakeups.py).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from bot.model.jobs import UNFINISHED, JobState
from storage.fencing import Hold, LeaseLost
from storage.store import Store
from storage.wakeups import OnJob, Wakeups

# A platform resends an event within minutes; a day of memory is ample and stays small.
SEEN_FOR = 24 * 3600.0
PRUNE_EVERY = 600.0
# Renewals name at most this many jobs a statement (SQLite's parameter limit is far above it).
BATCH = 500

_UNFINISHED = sorted(state.value for state in UNFINISHED)
# A job in these states needs its provider; in the others only its surface.
_AT_PROVIDER = sorted(s.value for s in (JobState.QUEUED, JobState.SUBMITTING, JobState.RUNNING))


def replicas_for(store: Store, owner: str | None = None) -> Replicas:
    """The coordination of `store`'s database; `owner` names this replica (by default: on SQLite always
    the same name, on PostgreSQL one of this process's own)."""
    return Replicas(store, store.wakeups(), owner or store.replica_name())


class Replicas:
    def __init__(self, store: Store, wakeups: Wakeups, owner: str) -> None:
        self.store = store
        self.wakeups = wakeups
        self.owner = owner
        # Whether other processes may work the same jobs (False: this process is the only one).
        self.shared = wakeups.shared
        self._pruned = 0.0
        # The generation each job's last claim here stamped; a job missing was admitted here (0).
        self._generations: dict[str, int] = {}

    async def claim(self, job_id: str, seconds: float) -> bool:
        """Hold the unfinished job for `seconds` if nobody else holds it; True when held."""
        now = self.store.now()
        unfinished, args = self.store.database.dialect.among("state", _UNFINISHED)
        async with self.store.database.transaction() as db:
            rows = await db.fetch(
                f"UPDATE jobs SET owner=?, lease_until=?, lease_gen=lease_gen+1 WHERE id=? AND {unfinished} "
                "AND (owner IS NULL OR owner=? OR lease_until < ?) RETURNING lease_gen",
                *(self.owner, now + seconds, job_id, *args, self.owner, now),
            )
        for row in rows:
            self._generations[job_id] = int(row[0])
        return bool(rows)

    def hold(self, job_id: str, seconds: float) -> Hold:
        """This replica's claim on `job_id`, to fence its platform writes with."""
        return Hold(job_id, self.owner, lambda: self._generations.get(job_id, 0), seconds, self.store.now)

    async def confirm(self, hold: Hold) -> bool:
        """Whether this replica still holds the job as it claimed it (the hold extended if so)."""
        async with self.store.database.transaction() as db:
            try:
                await hold.check(db)
            except LeaseLost:
                return False
        return True

    def forget(self, job_id: str) -> None:
        """The job's task here ended: its generation is no longer needed."""
        self._generations.pop(job_id, None)

    async def claim_free(
        self,
        seconds: float,
        limit: int,
        *,
        surfaces: Collection[str],
        providers: Collection[str],
        ours: bool = False,
    ) -> list[str]:
        """Hold up to `limit` unfinished jobs, oldest first, that nobody holds (or whose lease lapsed)
        and that this replica can work: its surface runs here, and its provider too while it needs one.
        `ours`: also those this replica's name still holds (at start: a restart under the same name)."""
        if not surfaces:
            return []
        now = self.store.now()
        dialect = self.store.database.dialect
        unfinished, u = dialect.among("state", _UNFINISHED)
        surface, s = dialect.among("surface", sorted(surfaces))
        at_provider, a = dialect.among("state", _AT_PROVIDER)
        provider, p = dialect.among("provider", sorted(providers))
        async with self.store.database.transaction() as db:
            rows = await db.fetch(
                "UPDATE jobs SET owner=?, lease_until=?, lease_gen=lease_gen+1 WHERE id IN (SELECT id FROM jobs "
                f"WHERE {unfinished} AND (owner IS NULL OR lease_until < ? OR owner=?) AND {surface} "
                f"AND (NOT ({at_provider}) OR {provider}) ORDER BY created_at LIMIT ?{dialect.skip_locked}) "
                "RETURNING id, lease_gen",
                *(self.owner, now + seconds, *u, now, self.owner if ours else None, *s, *a, *p, limit),
            )
        self._generations.update((str(row[0]), int(row[1])) for row in rows)
        return [str(row[0]) for row in rows]

    async def renew(self, job_ids: Sequence[str], seconds: float) -> set[str]:
        """Extend the leases of `job_ids`; those still held by this replica."""
        held: set[str] = set()
        until = self.store.now() + seconds
        for start in range(0, len(job_ids), BATCH):
            chunk, args = self.store.database.dialect.among("id", job_ids[start : start + BATCH])
            async with self.store.database.transaction() as db:
                rows = await db.fetch(
                    f"UPDATE jobs SET lease_until=? WHERE owner=? AND {chunk} RETURNING id",
                    until,
                    self.owner,
                    *args,
                )
            held.update(str(row[0]) for row in rows)
        return held

    async def release(self, job_ids: Sequence[str]) -> None:
        """Let go of jobs (a clean stop): any replica, or this one restarted, may claim them at once."""
        for start in range(0, len(job_ids), BATCH):
            chunk, args = self.store.database.dialect.among("id", job_ids[start : start + BATCH])
            async with self.store.database.transaction() as db:
                await db.execute(
                    f"UPDATE jobs SET owner=NULL, lease_until=NULL WHERE owner=? AND {chunk}",
                    self.owner,
                    *args,
                )

    async def notify(self, job_id: str) -> None:
        """Tell whichever replica works the job to look at it now."""
        await self.wakeups.notify(job_id)

    async def listen(self, on_job: OnJob) -> None:
        """Call `on_job(job_id)` for every `notify`, from any replica, until `close`."""
        await self.wakeups.listen(on_job)

    async def close(self) -> None:
        await self.wakeups.close()

    async def first_sight(self, key: str) -> bool:
        """True the first time any replica sees `key` (a platform event id); False for a resend."""
        now = self.store.now()
        async with self.store.database.transaction() as db:
            if now - self._pruned > PRUNE_EVERY:
                self._pruned = now
                await db.execute("DELETE FROM seen_events WHERE seen_at < ?", now - SEEN_FOR)
            added = await db.execute(
                "INSERT INTO seen_events (key, seen_at) VALUES (?, ?) ON CONFLICT (key) DO NOTHING", key, now
            )
        return added == 1
