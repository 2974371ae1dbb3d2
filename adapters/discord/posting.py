"""Posting to Discord for the engine: progress lines, results and refusals, idempotent per job.

A result replaces the job's progress message (the deferred interaction answer, or the bot's reply
to a chat message): editing the same message again after a crash changes nothing. When there is no
such message any more (the interaction token expired, the message was deleted) the result becomes
an ordinary channel message. Every message is remembered in the store as soon as Discord has it, so
a delivery resumed after a crash, however much later, finds it and does not post again; the nonce
(derived from the job id, with `enforce_nonce`) only covers the few minutes Discord keeps it.
"""

from __future__ import annotations

import asyncio
import io
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import discord

from adapters.discord.views import DEFAULT_UPLOAD_LIMIT, result_view, token_alive
from bot import words
from bot.jobs.images import fit_to_limit
from bot.model.jobs import Job, OutputImage, Post, Progress

log = logging.getLogger(__name__)

FILES_PER_MESSAGE = 10
THREAD_ARCHIVE_MINUTES: Literal[1440] = 1440
ALREADY_HAS_THREAD = 160004
PROMPT_SHOWN = 300


@dataclass
class Prepared:
    files: list[discord.File]
    notes: list[str]


class PostMemory(Protocol):
    """Where the poster writes down what it posted (the store)."""

    async def remember_post(
        self, job_id: str, surface: str, message_key: str, thread_key: str | None
    ) -> None: ...

    async def posts_of(self, job_id: str, surface: str) -> list[str]: ...


async def prepare_files(images: list[OutputImage], job: Job, policy: str) -> Prepared:
    """Shrink what is over the channel's upload limit; hide or hold back flagged images per policy."""
    limit = int(job.origin.get("upload_limit") or DEFAULT_UPLOAD_LIMIT)
    age_restricted = bool(job.origin.get("nsfw"))
    files, notes = [], []
    shrunk = withheld = spoilered = 0
    for i, image in enumerate(images, start=1):
        if image.nsfw and not age_restricted and policy == "block":
            withheld += 1
            continue
        fp, ctype, changed = await _upload_source(image, limit)
        shrunk += changed
        ext = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}.get(ctype, image.extension)
        spoiler = image.nsfw and not age_restricted and policy == "spoiler"
        spoilered += spoiler
        files.append(discord.File(fp, filename=f"hidream-{job.seed}-{i}.{ext}", spoiler=spoiler))
    if shrunk:
        notes.append(words.reencoded(shrunk, limit / 1_048_576))
    if spoilered:
        notes.append(words.spoilered(spoilered))
    if withheld:
        notes.append(words.withheld(withheld))
    return Prepared(files, notes)


async def _upload_source(image: OutputImage, limit: int) -> tuple[io.BufferedIOBase, str, bool]:
    """What an image is uploaded from: its file, opened (aiohttp streams it in chunks), when it fits
    the channel's limit; else the bytes shrunk to fit, in memory (Pillow needs the whole image: the
    one place a result is read whole on the way to Discord)."""
    if image.file is not None and await image.size() <= limit:
        return await asyncio.to_thread(image.file.open, "rb"), image.content_type, False
    whole = await image.loaded()
    data, ctype, changed = whole.data, whole.content_type, False
    if len(data) > limit:
        data, ctype, changed = await fit_to_limit(data, ctype, limit)
    return io.BytesIO(data), ctype, changed


def release(files: list[discord.File]) -> None:
    """Free the buffers of `files` now. A discord.File replaces its buffer's `close` with the
    buffer's own bound method, a reference cycle that only the cyclic garbage collector breaks, and
    aiohttp copies each buffer (BytesIO.getbuffer): each posted image stayed in memory until a full
    collection, and a burst's uploads piled up. Closing the buffer frees its bytes at once; dropping
    the patched method breaks the cycle."""
    for file in files:
        file.close()
        file.fp.close()
        vars(file.fp).pop("close", None)


def summary(job: Job, notes: list[str]) -> str:
    prompt = job.request.prompt
    if len(prompt) > PROMPT_SHOWN:
        prompt = prompt[: PROMPT_SHOWN - 1] + "…"
    w, h = job.request.dimensions()
    line = (
        f"seed `{job.seed}` · model `{job.tier}` · size `{job.request.size_label()}` ({w}×{h}) · "
        f"by `{job.provider}` · <@{job.user_id}>"
    )
    if kit := words.kit_used(job.request.kit, job.request.kit_version):
        line += f" · {kit}"
    parts = [f"**{discord.utils.escape_markdown(prompt)}**", line, *(f"-# {n}" for n in notes)]
    return "\n".join(parts)


def followup_origin(parent: Job, thread_key: str | None) -> dict[str, Any] | None:
    """Where a new version of `parent` asked for away from Discord (a region edit) is posted: a new
    message in the result's thread (`thread_key`), else in its channel, with no message of its own to
    edit first; a private result's goes to its requester privately, as the parent's did."""
    origin = parent.origin
    if not origin.get("channel_id"):
        return None
    kept: dict[str, Any] = {
        k: origin[k] for k in ("upload_limit", "nsfw", "private", "guild_id") if k in origin
    }
    if thread_key is not None and not origin.get("private"):
        return {**kept, "kind": "message", "channel_id": thread_key, "in_thread": True, "can_thread": False}
    return {
        **kept,
        "kind": "message",
        "channel_id": origin["channel_id"],
        "in_thread": origin.get("in_thread", False),
        "can_thread": origin.get("can_thread", False),
    }


def nonce_for(job: Job, part: int | str) -> str:
    # Discord nonces are at most 25 characters.
    return f"{job.id[:22]}-{part}"[:25]


class Poster:
    def __init__(
        self,
        client: discord.Client,
        *,
        nsfw_policy: str,
        memory: PostMemory,
        clock: Callable[[], float] = time.time,
        tenant_nsfw: Callable[[Job], Awaitable[str | None]] | None = None,
    ) -> None:
        self.client = client
        self.nsfw_policy = nsfw_policy
        # The server admins' choice (bot/jobs/preferences.py), which overrides the operator's.
        self.tenant_nsfw = tenant_nsfw
        self.memory = memory
        self.clock = clock

    def _webhook(self, origin: dict[str, Any]) -> discord.Webhook:
        # An application-owned webhook: the interaction token, usable from any process while it lives.
        data = {"id": int(origin["app_id"]), "type": 3, "token": origin["token"]}
        return discord.Webhook.from_state(data=data, state=self.client._connection)  # type: ignore[arg-type]

    def _channel(self, origin: dict[str, Any]) -> discord.PartialMessageable:
        return self.client.get_partial_messageable(int(origin["channel_id"]))

    async def progress(self, job: Job, progress: Progress) -> None:
        if progress.stage == "delivering":
            # The result replaces this very message in the next request: an "Uploading…" edit first
            # would only hold the image back by one more call to Discord.
            return
        text = f"⏳ {words.progress(progress.stage, progress.elapsed, progress.queue_position)}"
        await self._edit_progress(job, content=text)

    async def _edit_progress(self, job: Job, **fields: Any) -> discord.Message | None:
        """Edit the job's own message (through the interaction while it lives); None if it is gone."""
        origin = job.origin
        mid = origin.get("message_id")
        if not mid:
            return None
        try:
            if origin.get("kind") == "interaction":
                if not token_alive(origin, self.clock()):
                    return None
                return await self._webhook(origin).edit_message(int(mid), **fields)
            return await self._channel(origin).get_partial_message(int(mid)).edit(**fields)
        except (discord.NotFound, discord.Forbidden):
            return None
        except discord.HTTPException as exc:
            if exc.status == 401:  # the interaction token expired early
                return None
            raise

    async def deliver(self, job: Job, images: list[OutputImage]) -> list[Post]:
        prepared = await prepare_files(images, job, await self._nsfw_for(job))
        try:
            return await self._deliver(job, prepared)
        finally:
            release(prepared.files)

    async def _deliver(self, job: Job, prepared: Prepared) -> list[Post]:
        if job.origin.get("review"):
            prepared.notes.append(words.AWAITING_REVIEW)
        content = summary(job, prepared.notes)
        chunks = [
            prepared.files[i : i + FILES_PER_MESSAGE]
            for i in range(0, len(prepared.files), FILES_PER_MESSAGE)
        ]
        chunks = chunks or [[]]
        # What an earlier attempt posted (a crash before the engine recorded it): kept, not posted again.
        posted = await self.memory.posts_of(job.id, job.surface)
        messages: list[discord.Message | discord.PartialMessage] = []
        for i, chunk in enumerate(chunks):
            if i < len(posted):
                messages.append(self._channel(job.origin).get_partial_message(int(posted[i])))
                continue
            message = await self._send_part(job, i, len(chunks), content, chunk)
            await self.memory.remember_post(job.id, job.surface, str(message.id), None)
            messages.append(message)
        if job.origin.get("review") and not job.origin.get("private"):
            # A chat message's request in a reviewed channel: its public progress reply says where it went.
            await self._edit_progress(job, content=f"📨 {words.SENT_FOR_REVIEW}")
        thread_key = await self._thread_for(job, messages[0])
        if thread_key is not None:
            for m in messages:
                await self.memory.remember_post(job.id, job.surface, str(m.id), thread_key)
        return [Post(str(m.id), thread_key) for m in messages]

    async def _nsfw_for(self, job: Job) -> str:
        chosen = await self.tenant_nsfw(job) if self.tenant_nsfw is not None else None
        if chosen is None:
            return self.nsfw_policy
        # Discord allows sensitive images only in age-restricted channels (where nothing is hidden
        # anyway): a server's "allow" means a spoiler everywhere else.
        return "spoiler" if chosen == "allow" else chosen

    async def _send_part(
        self, job: Job, index: int, count: int, content: str, files: list[discord.File]
    ) -> discord.Message:
        if index == 0:
            # A reviewed channel's public progress message never becomes the result (it goes privately).
            if job.origin.get("private") or not job.origin.get("review"):
                edited = await self._edit_progress(
                    job, content=content, attachments=files, view=result_view(job)
                )
                if edited is not None:
                    return edited
                for file in files:  # a failed edit may have read them to their end
                    file.reset()
            return await self._post(job, content, files, nonce_for(job, 0))
        return await self._post(job, f"({index + 1}/{count})", files, nonce_for(job, index))

    async def _post(self, job: Job, content: str, files: list[discord.File], nonce: str) -> discord.Message:
        if job.origin.get("private") or job.origin.get("review"):
            # A reviewed channel's result reaches its requester alone until it is approved (review.py).
            return await self._post_privately(job, content, files)
        channel = self._channel(job.origin)
        reply = job.origin.get("reply_to")
        reference = (
            discord.MessageReference(message_id=int(reply), channel_id=channel.id, fail_if_not_exists=False)
            if reply
            else None
        )
        return await channel.send(
            content,
            files=files,
            view=result_view(job),
            nonce=nonce,
            reference=reference,  # type: ignore[arg-type]
        )

    async def _post_privately(self, job: Job, content: str, files: list[discord.File]) -> discord.Message:
        """A private result is never posted in the channel: ephemerally while the interaction
        lives, else in a direct message to its requester."""
        if token_alive(job.origin, self.clock()):
            message = await self._webhook(job.origin).send(
                content, files=files, ephemeral=True, wait=True, view=result_view(job)
            )
            return message
        dm = await self.client.create_dm(discord.Object(int(job.user_id)))
        return await dm.send(content, files=files, view=result_view(job))

    async def _thread_for(self, job: Job, message: discord.Message | discord.PartialMessage) -> str | None:
        origin = job.origin
        if origin.get("review"):
            return None  # reaches its channel only when approved (review.py)
        if origin.get("in_thread"):
            return str(origin["channel_id"])
        if not origin.get("can_thread"):
            return None
        name = job.request.prompt[:90] or "HiDream"
        try:
            thread = await self.client.http.start_thread_with_message(
                message.channel.id, message.id, name=name, auto_archive_duration=THREAD_ARCHIVE_MINUTES
            )
            return str(thread["id"])
        except discord.HTTPException as exc:
            if exc.code == ALREADY_HAS_THREAD:
                # Delivered before a crash: a message's thread has the message's id.
                return str(message.id)
            log.warning("job %s: no thread for the result (%s)", job.id, exc.status)
            return None

    async def withdraw(self, job: Job) -> int:
        """Delete the job's result messages from its channel (an operator's removal); how many went.
        A private result (ephemeral, or in a direct message) and a job whose origin retention has
        cleared have no channel to delete from here."""
        channel_id = job.origin.get("channel_id")
        if not channel_id or job.origin.get("private"):
            return 0
        gone = 0
        for key in await self.memory.posts_of(job.id, job.surface):
            try:
                await (
                    self.client.get_partial_messageable(int(channel_id))
                    .get_partial_message(int(key))
                    .delete()
                )
                gone += 1
            except discord.NotFound:
                pass
        return gone

    async def tell(self, job: Job, text: str) -> None:
        origin = job.origin
        if origin.get("kind") == "interaction" and token_alive(origin, self.clock()):
            webhook = self._webhook(origin)
            if origin.get("message_id"):
                try:
                    await webhook.delete_message(int(origin["message_id"]))
                except discord.NotFound:
                    pass
            await webhook.send(text, ephemeral=True)
            return
        if await self._edit_progress(job, content=f"⚠️ {text}") is not None:
            return
        await self._channel(origin).send(f"<@{job.user_id}> {text}", nonce=nonce_for(job, "t"))
