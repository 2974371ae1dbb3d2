"""Retention on PostgreSQL: the same sweeps as storage/retention.py, in PostgreSQL's SQL.

Each call is one bounded batch in its own transaction. There is no vacuum step: PostgreSQL's
autovacuum marks the deleted rows' space (and the images' TOAST chunks) for reuse on its own, so
the database stops growing; it does not shrink the files on disk, which only a `VACUUM FULL` (a
table lock the bot never takes) would do.
"""

from __future__ import annotations

from bot.model.jobs import TERMINAL, UNFINISHED
from storage.postgres import PostgresStore

_UNFINISHED = sorted(state.value for state in UNFINISHED)
_TERMINAL = sorted(state.value for state in TERMINAL)


class PostgresSweeps:
    def __init__(self, store: PostgresStore) -> None:
        self.store = store

    async def prepare(self) -> bool:
        return False  # nothing to convert: autovacuum gives space back for reuse

    async def touch_media(self, media_id: str) -> bool:
        done = await self.store.pool.execute(
            "UPDATE media SET used_at=$1 WHERE id=$2", self.store.clock(), media_id
        )
        return bool(done == "UPDATE 1")

    async def delete_old_media(self, used_before: float, limit: int) -> int:
        # The media columns of jobs and subjects are JSON arrays kept as TEXT: expanded as JSON, never
        # matched by LIKE. A saved subject's images stay as long as the subject does.
        done = await self.store.pool.execute(
            "DELETE FROM media WHERE id IN (SELECT m.id FROM media m WHERE m.used_at < $1 AND NOT EXISTS ("
            "SELECT 1 FROM jobs j WHERE j.state = ANY($2::text[]) AND m.id IN ("
            "SELECT json_array_elements_text(j.reference_media::json) "
            "UNION ALL SELECT json_array_elements_text(j.result_media::json))) "
            "AND NOT EXISTS (SELECT 1 FROM subjects s WHERE m.id IN ("
            "SELECT json_array_elements_text(s.media::json))) "
            "ORDER BY m.used_at LIMIT $3)",
            used_before,
            _UNFINISHED,
            limit,
        )
        return _count(done)

    async def clear_finished_jobs(self, finished_before: float, limit: int) -> int:
        # The condition repeats the partial index `jobs_bulky`, so each batch finds its rows by it.
        done = await self.store.pool.execute(
            "UPDATE jobs SET origin='{}', callback_status=NULL WHERE id IN (SELECT id FROM jobs "
            "WHERE (origin != '{}' OR callback_status IS NOT NULL) AND updated_at < $1 "
            "AND state = ANY($2::text[]) LIMIT $3)",
            finished_before,
            _TERMINAL,
            limit,
        )
        return _count(done)

    async def give_back(self) -> int:
        return 0  # autovacuum's work, in the background (see above)


def _count(status: str) -> int:
    """The row count of an asyncpg command status such as 'DELETE 3'."""
    return int(status.rsplit(" ", 1)[-1])
