"""Versions and undo in a result thread, for every surface: what `undo` and `history` do, who may
undo, and the words the person sees. Adapters give the thread's key and, for links, a function that
names a version's place on their platform.

`undo` goes back to the version the current one was made from (its parent) when that is in the
thread, else to the newest version before it: after undo, edit, undo, the thread is back where the
second edit started, not at the abandoned result that the first undo left.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from bot.model.errors import BadInput
from bot.model.jobs import Job, Post
from storage.store import Store
from storage.versions import Version as Version
from storage.versions import VersionStore

ThreadCommand = Literal["undo", "history"]
Link = Callable[[Version], str]
PROMPT_SHOWN = 120


def thread_command(text: str) -> ThreadCommand | None:
    """`undo` or `history` when that is all a message in a thread says (so "undo the hat" stays an
    edit instruction)."""
    word = " ".join(text.split()).lower().rstrip(".!")
    if word == "undo":
        return "undo"
    if word == "history":
        return "history"
    return None


def _prompt(job: Job) -> str:
    prompt = job.request.prompt
    return prompt if len(prompt) <= PROMPT_SHOWN else prompt[: PROMPT_SHOWN - 1] + "…"


@dataclass(frozen=True)
class History:
    versions: list[Version]
    current: int | None

    def text(self, link: Link) -> str:
        lines = [f"Versions in this thread ({len(self.versions)}):"]
        for v in self.versions:
            mark = "  ← current (the next instruction edits this one)" if v.number == self.current else ""
            lines.append(f"v{v.number}: {_prompt(v.job)} · seed {v.job.seed} · {link(v)}{mark}")
        return "\n".join(lines)


@dataclass(frozen=True)
class Undone:
    now: Version
    was: Version

    def text(self, link: Link) -> str:
        return (
            f"Back to v{self.now.number} (from v{self.was.number}): {_prompt(self.now.job)} · {link(self.now)}\n"
            "The next instruction in this thread edits this version."
        )


class Versions:
    def __init__(self, store: Store) -> None:
        self.db = VersionStore(store)

    async def record(self, job: Job, posts: list[Post]) -> int | None:
        """A delivered job becomes the next version of the thread it was posted in (if any)."""
        thread = next((p.thread_key for p in posts if p.thread_key), None)
        if thread is None:
            return None
        return await self.db.record(job.surface, thread, job.id)

    async def thread_for(self, job: Job) -> str:
        """For a surface without threads of its own (the console): a job continues its parent's
        thread; a job with no parent there starts one, named by its own id."""
        if job.parent_job_id:
            parent_thread = await self.db.thread_of(job.surface, job.parent_job_id)
            if parent_thread is not None:
                return parent_thread
        return job.id

    async def thread_of(self, surface: str, job_id: str) -> str | None:
        return await self.db.thread_of(surface, job_id)

    async def current(self, surface: str, thread_key: str) -> Job | None:
        found = await self.db.current(surface, thread_key)
        return None if found is None else found.job

    async def live(self, surface: str, thread_key: str) -> list[Version]:
        """The thread's standing versions, oldest first."""
        return await self.db.live(surface, thread_key)

    async def requesters(self, surface: str, thread_key: str) -> set[str]:
        """Who asked for the thread's standing versions; empty for a thread with none."""
        return {v.job.user_id for v in await self.db.live(surface, thread_key)}

    async def history(self, surface: str, thread_key: str) -> History:
        versions = await self.db.live(surface, thread_key)
        if not versions:
            raise BadInput("There are no versions in this thread yet: ask for an image first.")
        current = await self.db.current(surface, thread_key)
        return History(versions, current.number if current else versions[-1].number)

    async def undo(
        self,
        surface: str,
        thread_key: str,
        user_id: str,
        *,
        admin: bool = False,
        from_job: str | None = None,
    ) -> Undone:
        """Make the version before the current one (or before `from_job`'s, an Undo button's) the one
        the thread's next instruction edits. Raises BadInput, changing nothing, when it cannot."""
        versions = await self.db.live(surface, thread_key)
        current = await self.db.current(surface, thread_key)
        if from_job is not None:
            current = next((v for v in versions if v.job.id == from_job), None)
        if not versions or current is None:
            raise BadInput("There is nothing to undo here: this thread has no versions I know of.")
        owners = {versions[0].job.user_id, current.job.user_id}
        if not admin and user_id not in owners:
            who = " or ".join(f"<@{o}>" for o in sorted(owners))
            raise BadInput(
                f"Only {who}, who asked for these images, can undo here. "
                "You can still press Edit or Vary under any version to continue from it."
            )
        target = _before(current, versions)
        if target is None:
            raise BadInput(
                f"This is v{current.number}, the first version in this thread: there is nothing before "
                "it to go back to."
            )
        await self.db.set_head(surface, thread_key, target.number)
        return Undone(now=target, was=current)


def _before(current: Version, versions: list[Version]) -> Version | None:
    earlier = [v for v in versions if v.number < current.number]
    parent = next((v for v in earlier if v.job.id == current.job.parent_job_id), None)
    return parent or (earlier[-1] if earlier else None)
