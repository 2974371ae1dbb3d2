"""Saved subjects, on the engine's side: save images under a name in a tenant (from references a
person gave, or from a job's results), list, show and delete them, and turn `--subject <name>` and
`@name` in a prompt into reference images before a request is admitted.

Saving spends no quota and calls no provider: images given for saving are fetched and checked like
any reference (the engine's ingest), and a job's results are the bot's own images already. Each
tenant keeps at most `max_subjects`, whose images take at most `max_bytes`: a save past either is
refused, and the images it fetched for it are deleted again, so a refused save stores nothing.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from bot.model.errors import BadInput
from bot.model.jobs import Job, OutputImage
from bot.model.requests import MAX_REFERENCES, ChatRequest, ImageRef, check_subject_name
from bot.words import subject_storage_full, subject_taken, subjects_full
from storage.store import Store
from storage.subjects import Subject, Subjects, Usage

MB = 1024 * 1024

# `@name` in a prompt: not a platform's mention (`<@U123>`), an e-mail address or part of a word.
MENTION_RE = re.compile(r"(?<![<\w@])@([A-Za-z0-9_-]{1,32})(?![\w@-])")
# (reference, tenant, person) -> the stored image's id
Ingest = Callable[[ImageRef, str, str], Awaitable[str]]


def creator_key(surface: str, user_id: str) -> str:
    return f"{surface}:{user_id}"


class SubjectBook:
    def __init__(
        self, store: Store, ingest: Ingest, *, max_subjects: int = 50, max_bytes: int = 200 * MB
    ) -> None:
        self.store = store
        self.max_subjects = max_subjects
        self.max_bytes = max_bytes
        # The engine's: fetches and checks an image (or takes one the bot holds) and stores it.
        self._ingest = ingest
        self._table: Subjects | None = None

    @property
    def table(self) -> Subjects:
        # Made on first use: stores without SQL (tests' doubles) work as long as nobody uses subjects.
        if self._table is None:
            self._table = Subjects(self.store)
        return self._table

    # --- saving and managing -------------------------------------------------------------------

    async def save(self, tenant: str, creator: str, name: str, refs: list[ImageRef]) -> Subject:
        """Keep `refs` (1 to 4 images, fetched and checked like any reference) as `name` in `tenant`."""
        check_subject_name(name)
        if not refs:
            raise BadInput(
                f"Give 1 to {MAX_REFERENCES} images to save as `{name}`: attach them, or use a result."
            )
        if len(refs) > MAX_REFERENCES:
            raise BadInput(f"{len(refs)} images were given; a subject keeps at most {MAX_REFERENCES}.")
        # The cheap looks first: a taken name, or a full place, fetches and stores nothing.
        await self._refuse_taken(tenant, name)
        self._refuse_full(await self.usage(tenant))
        media: list[str] = []
        try:
            for ref in refs:
                media.append(await self._ingest(ref, tenant, creator))
            size = await self._size(media)
            subject = Subject(tenant=tenant, name=name, creator=creator, media=media, bytes=size)
            added = await self.table.add_within(
                subject, max_count=self.max_subjects, max_bytes=self.max_bytes
            )
        except Exception:
            await self._forget(refs, media)
            raise
        if added != "added":
            # Another save in this place came first.
            await self._forget(refs, media)
            if added == "taken":
                raise BadInput(subject_taken(name))
            if added == "count":
                raise BadInput(subjects_full(self.max_subjects))
            used = (await self.table.usage(tenant)).bytes
            raise BadInput(subject_storage_full(used / MB, self.max_bytes // MB, size / MB))
        return subject

    async def usage(self, tenant: str) -> Usage:
        """How many subjects `tenant` keeps and their bytes (measuring any saved before bytes were
        counted)."""
        for old in await self.table.unmeasured(tenant):
            await self.table.measured(old, await self._size(old.media))
        return await self.table.usage(tenant)

    def _refuse_full(self, usage: Usage) -> None:
        if usage.subjects >= self.max_subjects:
            raise BadInput(subjects_full(self.max_subjects))
        if usage.bytes >= self.max_bytes:
            raise BadInput(subject_storage_full(usage.bytes / MB, self.max_bytes // MB))

    async def _size(self, media: list[str]) -> int:
        size = 0
        for media_id in media:
            image = await self.store.media(media_id)
            size += 0 if image is None else len(image.data)
        return size

    async def _forget(self, refs: list[ImageRef], media: list[str]) -> None:
        """Delete the images a refused save fetched (not those the bot held already: results)."""
        fetched = [m for ref, m in zip(refs, media, strict=False) if ref.media_id is None]
        if fetched:
            await self.table.forget_media(fetched)

    async def save_from_job(
        self, tenant: str, creator: str, name: str, job: Job, *, latest_only: bool = False
    ) -> Subject:
        """Save a job's results (or its last one) as `name`: the bot's own images, no fetch."""
        chosen = job.result_media[-1:] if latest_only else job.result_media[:MAX_REFERENCES]
        if not chosen:
            raise BadInput("That request has no finished image to save yet.")
        return await self.save(tenant, creator, name, [ImageRef(url="", media_id=m) for m in chosen])

    async def _refuse_taken(self, tenant: str, name: str) -> None:
        taken = await self.table.find(tenant, name)
        if taken is not None:
            raise BadInput(subject_taken(taken.name))

    async def all(self, tenant: str) -> list[Subject]:
        return await self.table.all(tenant)

    async def get(self, tenant: str, name: str) -> Subject:
        check_subject_name(name)
        subject = await self.table.find(tenant, name)
        if subject is None:
            raise BadInput(f"There is no subject named `{name}` here. {await self.names_hint(tenant)}")
        return subject

    async def images(self, subject: Subject) -> list[OutputImage]:
        found = [await self.store.media(m) for m in subject.media]
        return [OutputImage(m.id, m.data, m.content_type, m.width, m.height, m.nsfw) for m in found if m]

    async def delete(self, tenant: str, name: str, user_key: str, *, admin: bool) -> Subject:
        """Delete a subject: its creator may, and a tenant admin. Its images are then aged by retention."""
        subject = await self.get(tenant, name)
        if subject.creator != user_key and not admin:
            raise BadInput(f"Only the person who saved `{subject.name}`, or an admin here, can delete it.")
        await self.table.delete(tenant, name)
        return subject

    async def names_hint(self, tenant: str) -> str:
        names = [s.name for s in await self.table.all(tenant)]
        return f"Saved here: {', '.join(names)}." if names else "None are saved here yet."

    # --- using subjects in a request -----------------------------------------------------------

    async def resolve(self, chat: ChatRequest, tenant: str) -> ChatRequest:
        """Add the images of the subjects the request names (`--subject`, then `@name` where a subject of
        that name exists here) before its own references. Refuses unknown `--subject` names and more
        than MAX_REFERENCES images in all."""
        request = chat.request
        mentioned = MENTION_RE.findall(request.prompt) if chat.resolve_subjects else []
        if not request.subjects and not mentioned:
            return chat
        chosen: dict[str, Subject] = {}
        for name in request.subjects:
            subject = await self.get(tenant, name)
            chosen.setdefault(subject.key, subject)
        for name in mentioned:
            if name.lower() not in chosen and (found := await self.table.find(tenant, name)):
                chosen[found.key] = found
        refs = [ImageRef(url="", media_id=m) for s in chosen.values() for m in s.media]
        total = len(refs) + len(chat.references)
        if total > MAX_REFERENCES:
            named = ", ".join(f"`{s.name}` ({len(s.media)})" for s in chosen.values())
            raise BadInput(
                f"That is {total} images in all: subjects {named} and {len(chat.references)} attached; "
                f"a request can use at most {MAX_REFERENCES}."
            )
        if chosen:
            # Used now: retention deletes only subjects nobody uses.
            await self.table.used(tenant, list(chosen))
        return chat.model_copy(
            update={"request": request.with_changes(subjects=()), "references": [*refs, *chat.references]}
        )
