"""Many jobs stored at once for the audit export's tests, straight through the store's database seam
and its row builders (storage/rows.py) in one transaction: what admission would write, without the
engine, so 10,000 of them take seconds."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from bot.model.jobs import Job, JobState
from storage.quota import utc_day
from storage.rows import LEDGER_COLUMNS, job_values, ledger_values
from storage.store import Store
from tests.support.jobs import NOW, make_job


def numbered_job(i: int, *, workspace: str, prompt_chars: int, created_at: float = NOW) -> Job:
    """Job number `i`: its prompt says its number, padded to `prompt_chars` with text of its own."""
    made = make_job(user=f"u{i % 7}", job_id=f"{i:032x}")
    head = f"job {i}: a red fox in snow, "
    filler = "".join(f"{(i * 31 + k) % 997:03d} " for k in range(prompt_chars // 4 + 1))
    prompt = (head + filler)[:prompt_chars].strip()
    return replace(
        made,
        workspace_id=workspace,
        request=made.request.with_changes(prompt=prompt, seed=i, project="launch" if i % 2 else None),
        seed=i,
        cost_usd=0.01,
        channel=f"c{i % 3}",
        project="launch" if i % 2 else "",
        created_at=created_at + i * 0.001,
        state=JobState.DELIVERED if i % 5 else JobState.FAILED,
        parent_job_id=f"{i - 1:032x}" if i % 4 == 0 and i else None,
    )


async def insert_jobs(store: Store, jobs: list[Job]) -> None:
    """Store `jobs` as they are (state included), each with its ledger row: committed when delivered,
    released when failed."""
    async with store.database.transaction() as db:
        for job in jobs:
            values = job_values(job, None, None, job.created_at)
            await db.execute(
                f"INSERT INTO jobs ({', '.join(values)}) VALUES ({','.join('?' * len(values))})",
                *values.values(),
            )
            ledger = list(ledger_values(job, job.tenant, utc_day(job.created_at)))
            ledger[5] = "committed" if job.state is JobState.DELIVERED else "released"
            await db.execute(
                f"INSERT INTO ledger ({LEDGER_COLUMNS}) VALUES ({','.join('?' * len(ledger))})", *ledger
            )


@dataclass(frozen=True)
class Measured:
    returncode: int
    max_rss_kb: int
    stderr: str


# A small go-between that runs the measured command as its only child and reports that child's peak
# resident memory (getrusage of its children) and exit status. Measured from this test's process
# instead, the peak would count the test's own pages, which a child holds between fork and exec.
_MEASURE = """
import resource, subprocess, sys
with open(sys.argv[1], "wb") as out:
    done = subprocess.run(sys.argv[2:], stdout=out)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, done.returncode)
"""


def run_measured(args: list[str], env: dict[str, str], out: Path, cwd: Path) -> Measured:
    """Run `args` writing its standard output to `out`; its own peak resident memory in kB, as the
    kernel counted it, and its exit status."""
    done = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(out), *args], env=env, cwd=cwd, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    rss, code = done.stdout.split()
    return Measured(int(code), int(rss), done.stderr)
