"""`make bench`: 200 concurrent jobs through the sandbox, by callback and by polling.

Each mode runs in its own child process so that peak memory (ru_maxrss) is that mode's alone.
The sandbox has no generation delay; the surface discards images. Timings are wall-clock on this
machine, so they are figures to compare, never assertions.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bot.model.jobs import Job, OutputImage, Post, Progress
from bot.model.requests import ChatRequest, parse_command
from tests.support.harness import BotHarness


class DiscardSurface:
    name = "bench"

    def __init__(self) -> None:
        self.delivered_at: dict[str, float] = {}

    async def __aenter__(self) -> DiscardSurface:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        return None

    async def deliver(self, job: Job, images: list[OutputImage]) -> list[Post]:
        self.delivered_at[job.id] = time.perf_counter()
        return [Post(message_key=job.id)]

    async def tell(self, job: Job, text: str) -> None:
        raise RuntimeError(f"job failed in the benchmark: {text}")

    async def progress(self, job: Job, progress: Progress) -> None:
        return None


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def run_mode(mode: str, jobs: int, size: str) -> dict[str, Any]:
    surface = DiscardSurface()
    env = {"HIDREAM_DAILY_IMAGE_QUOTA": 100_000}
    with tempfile.TemporaryDirectory() as tmp:
        async with BotHarness(
            Path(tmp), env=env, surfaces=[lambda bot: surface], callbacks=mode == "callback"
        ) as bot:
            engine, runner = bot.engine, bot.runner
            callback_at: dict[str, float] = {}
            original = runner.handle_callback

            async def timed_callback(token: str, headers: Any, body: bytes) -> None:
                now = time.perf_counter()
                job = await engine.store.job_by_token(token)
                if job is not None:
                    callback_at.setdefault(job.id, now)
                await original(token, headers, body)

            runner.handle_callback = timed_callback  # type: ignore[method-assign]
            request = parse_command(f"benchmark fox --size {size} --seed 1").request
            start = time.perf_counter()
            admitted: dict[str, float] = {}

            async def one(i: int) -> None:
                chat = ChatRequest(surface="bench", user_id=f"u{i % 20}", workspace_id="w", request=request)
                t0 = time.perf_counter()
                job = await engine.submit(chat)
                admitted[job.id] = t0

            await asyncio.gather(*(one(i) for i in range(jobs)))
            await runner.wait_idle()
            elapsed = time.perf_counter() - start
    done = surface.delivered_at
    if len(done) != jobs:
        raise RuntimeError(f"{mode}: {len(done)} of {jobs} jobs delivered")
    end_to_end = [done[j] - admitted[j] for j in done]
    result: dict[str, Any] = {
        "mode": mode,
        "jobs": jobs,
        "size": size,
        "seconds": round(elapsed, 3),
        "jobs_per_second": round(jobs / elapsed, 1),
        "end_to_end_p50_ms": round(pct(end_to_end, 0.5) * 1000, 1),
        "end_to_end_p99_ms": round(pct(end_to_end, 0.99) * 1000, 1),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    if mode == "callback":
        own = [done[j] - callback_at[j] for j in done if j in callback_at]
        result["callback_to_delivered_p50_ms"] = round(pct(own, 0.5) * 1000, 1)
        result["callback_to_delivered_p99_ms"] = round(pct(own, 0.99) * 1000, 1)
        result["callbacks_seen"] = len(own)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--size", default="256x256")
    parser.add_argument("--mode", choices=["callback", "polling"])
    args = parser.parse_args()
    if args.mode:
        print(json.dumps(asyncio.run(run_mode(args.mode, args.jobs, args.size))))
        return
    results = []
    for mode in ("callback", "polling"):
        child = subprocess.run(
            [
                sys.executable,
                "-m",
                "bench.common",
                "--mode",
                mode,
                "--jobs",
                str(args.jobs),
                "--size",
                args.size,
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        results.append(json.loads(child.stdout.strip().splitlines()[-1]))
    for r in results:
        print(json.dumps(r))
    print()
    print(
        "| mode | jobs | jobs/s | end-to-end p50 | end-to-end p99 | callback→delivered p50 | p99 | peak RSS |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        cb50 = f"{r['callback_to_delivered_p50_ms']} ms" if "callback_to_delivered_p50_ms" in r else "n/a"
        cb99 = f"{r['callback_to_delivered_p99_ms']} ms" if "callback_to_delivered_p99_ms" in r else "n/a"
        print(
            f"| {r['mode']} | {r['jobs']} | {r['jobs_per_second']} | {r['end_to_end_p50_ms']} ms | "
            f"{r['end_to_end_p99_ms']} ms | {cb50} | {cb99} | {r['peak_rss_mib']} MiB |"
        )


if __name__ == "__main__":
    main()
