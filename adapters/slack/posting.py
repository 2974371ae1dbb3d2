"""Posting to Slack: the request's status message, progress, delivery into its thread, failures,
and the small writes the listeners share (ephemerals, quiet deletions, thread reads).

Delivery is idempotent per job on what the bot recorded itself (the store's posts): the uploads
and the summary an earlier attempt made are not made again when the engine retries after a crash.
The thread is not read back for that: conversations.replies is limited to one call a minute for
apps distributed outside the Slack Marketplace.

Which token a call uses: a listener's calls use the client bolt authorized for that request (its
workspace's token, bound by `bind_request_client`); the engine's calls (progress, delivery,
failures) use the token of the job's workspace, looked up by team id when installed by OAuth.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Protocol

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack import blocks
from adapters.slack.translate import RESULT_EVENT, message_key, result_filename
from bot import words
from bot.model.jobs import Job, OutputImage, Post, Progress

log = logging.getLogger(__name__)

# The client of the request a listener is answering (bolt's context.client). Each HTTP request runs
# in its own task, so the value never reaches another request.
_request_client: ContextVar[AsyncWebClient | None] = ContextVar("slack_request_client", default=None)
TeamLookup = Callable[[str], Awaitable[AsyncWebClient | None]]


@contextmanager
def request_scope() -> Iterator[None]:
    """Around one request: it starts with no client bound and leaves none behind (aiohttp may serve
    the requests of one keep-alive connection in one task). Listener tasks keep the copy they took."""
    token = _request_client.set(None)
    try:
        yield
    finally:
        _request_client.reset(token)


async def bind_request_client(context: Any, next: Callable[[], Awaitable[Any]]) -> Any:
    """bolt middleware: the listeners' calls go out with the token bolt authorized for the request."""
    _request_client.set(context.client)
    return await next()


class PostMemory(Protocol):
    """Where the poster writes down what it posted (the store)."""

    async def remember_post(
        self, job_id: str, surface: str, message_key: str, thread_key: str | None
    ) -> None: ...

    async def posts_of(self, job_id: str, surface: str) -> list[str]: ...


class NotInstalled(Exception):
    """The job's workspace has no token: it removed the app."""


class _Marks:
    """Marks a delivery writes in the posts table beside the summary's key (no message ts names an
    upload): that an attempt started, and that the job's files are in its thread."""

    def __init__(self, channel: str, job_id: str) -> None:
        self.started = message_key(channel, f"delivering-{job_id}")
        self.uploaded = message_key(channel, f"files-{job_id}")

    def __contains__(self, key: str) -> bool:
        return key in (self.started, self.uploaded)


class Poster:
    def __init__(
        self,
        client: AsyncWebClient,
        memory: PostMemory,
        team_client: TeamLookup | None = None,
        tenant_nsfw: Callable[[Job], Awaitable[str | None]] | None = None,
    ) -> None:
        self._client = client
        self.memory = memory
        # The workspace admins' NSFW choice (bot/jobs/preferences.py); Slack has no spoiler, so only
        # "block" changes anything: flagged images are held back.
        self.tenant_nsfw = tenant_nsfw
        # None: one workspace, one token (SLACK_BOT_TOKEN): `client` is every call's.
        self._team_client = team_client

    @property
    def client(self) -> AsyncWebClient:
        """The client of the request being answered; outside a request, the bot's own."""
        return _request_client.get() or self._client

    async def _for(self, job: Job) -> AsyncWebClient:
        if self._team_client is None:
            return self._client
        client = await self._team_client(job.workspace_id)
        if client is None:
            raise NotInstalled(f"Slack workspace {job.workspace_id} has no installation")
        return client

    # --- what the listeners share ---------------------------------------------------------------

    async def ephemeral(self, channel: str, user: str, text: str, thread_ts: str | None = None) -> None:
        try:
            await self.client.chat_postEphemeral(channel=channel, user=user, text=text, thread_ts=thread_ts)
        except SlackApiError:
            log.warning("could not send an ephemeral message in %s", channel, exc_info=True)

    async def direct_channel(self, user: str) -> str:
        """The bot's direct-message channel with `user` (for private results)."""
        opened = await self.client.conversations_open(users=user)
        return str(opened["channel"]["id"])

    async def delete_quietly(self, channel: str, ts: str) -> None:
        try:
            await self.client.chat_delete(channel=channel, ts=ts)
        except SlackApiError:
            log.warning("could not delete message %s in %s", ts, channel, exc_info=True)

    async def withdraw(self, job: Job) -> int:
        """Delete a job's result from its thread (an operator's removal): its files and the bot's
        messages that carried them, then its summary; how many messages went. A private result and a
        job whose origin retention has cleared have no thread to delete from here."""
        channel, thread_ts = job.origin.get("channel"), job.origin.get("thread_ts")
        if not channel or not thread_ts or job.origin.get("private"):
            return 0
        client = await self._for(job)
        prefix = f"hidream-{job.id}-"
        gone = 0
        for m in await self.thread_messages(channel, thread_ts, client):
            ours = await self.delete_files(client, m, prefix)
            if ours and m.get("bot_id"):
                gone += await self._deleted(client, channel, str(m["ts"]))
        marks = _Marks(channel, job.id)
        for key in await self.memory.posts_of(job.id, job.surface):
            if key not in marks:
                where, _, ts = key.rpartition(":")
                gone += await self._deleted(client, where, ts)
        return gone

    @staticmethod
    async def _deleted(client: AsyncWebClient, channel: str, ts: str) -> int:
        try:
            await client.chat_delete(channel=channel, ts=ts)
        except SlackApiError:
            log.warning("could not delete message %s in %s", ts, channel, exc_info=True)
            return 0
        return 1

    async def delete_files(self, client: AsyncWebClient, message: dict[str, Any], prefix: str) -> bool:
        """Delete the files of `message` whose names start with `prefix` (a job's results); whether it
        had any. A file that cannot be deleted is logged and left."""
        ours = [f for f in message.get("files") or [] if str(f.get("name", "")).startswith(prefix)]
        for f in ours:
            try:
                await client.files_delete(file=f["id"])
            except SlackApiError:
                log.warning("could not delete file %s", f.get("id"), exc_info=True)
        return bool(ours)

    async def thread_messages(
        self, channel: str, thread_ts: str, client: AsyncWebClient | None = None
    ) -> list[dict[str, Any]]:
        """The thread's messages. conversations.replies is rate-limited hard (1/min for apps outside
        the Marketplace): only for what a person asked for, or to recover a cut-off delivery."""
        messages: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            page = await (client or self.client).conversations_replies(
                channel=channel, ts=thread_ts, include_all_metadata=True, limit=200, cursor=cursor
            )
            messages.extend(page.get("messages") or [])
            cursor = (page.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return messages

    async def post_status(
        self, channel: str, thread_ts: str | None, user: str, verb: str, prompt: str
    ) -> str:
        """The message that names the requester and the prompt (a new thread root when `thread_ts`
        is None); its ts. Raises SlackApiError when the bot may not post in the channel."""
        line = words.CHECKING
        posted = await self.client.chat_postMessage(
            channel=channel,
            thread_ts=thread_ts,
            text=blocks.status_text(user, verb, prompt, line),
            blocks=blocks.status_blocks(user, verb, prompt, line),
            unfurl_links=False,
        )
        return str(posted["ts"])

    # --- the engine's Surface -------------------------------------------------------------------

    async def progress(self, job: Job, progress: Progress) -> None:
        line = words.progress(progress.stage, progress.elapsed, progress.queue_position)
        await self._set_status(await self._for(job), job, line)

    async def _set_status(self, client: AsyncWebClient, job: Job, line: str) -> None:
        origin = job.origin
        if not origin.get("status_ts"):
            return  # asked for away from the chat (a region edit): no status message to update
        verb = str(origin.get("verb", words.ASKED_FOR))
        await client.chat_update(
            channel=origin["channel"],
            ts=origin["status_ts"],
            text=blocks.status_text(job.user_id, verb, job.request.prompt, line),
            blocks=blocks.status_blocks(job.user_id, verb, job.request.prompt, line),
        )

    async def _set_status_quietly(self, client: AsyncWebClient, job: Job, line: str) -> None:
        # The status line is a courtesy: the result or the failure is already in the thread.
        try:
            await self._set_status(client, job, line)
        except SlackApiError:
            log.warning("job %s: could not update its status message", job.id, exc_info=True)

    async def deliver(self, job: Job, images: list[OutputImage]) -> list[Post]:
        """Upload into the request's thread, then the summary with buttons. Safe to call again."""
        client = await self._for(job)
        shown = await self._screened(job, images)
        held = len(images) - len(shown)
        images = shown
        channel, thread_ts = job.origin["channel"], job.origin["thread_ts"]
        thread = message_key(channel, thread_ts)
        marks = _Marks(channel, job.id)
        recorded = await self.memory.posts_of(job.id, job.surface)
        summary_key = next((k for k in recorded if k not in marks), None)
        if summary_key is not None:
            return [Post(summary_key, thread)]
        shared: set[str] = set()
        if marks.started in recorded:
            # An earlier attempt was cut off between a write to Slack and its record: only then is the
            # thread read back, to learn what that attempt left there.
            existing = await self.thread_messages(channel, thread_ts, client)
            found = _summary_of(job, existing)
            if found is not None:
                summary_key = message_key(channel, found)
                await self.memory.remember_post(job.id, job.surface, summary_key, thread)
                return [Post(summary_key, thread)]
            shared = {str(f.get("name")) for m in existing for f in m.get("files") or []}
        else:
            await self.memory.remember_post(job.id, job.surface, marks.started, None)
        if marks.uploaded not in recorded:
            await self._upload(client, job, images, shared)
            await self.memory.remember_post(job.id, job.surface, marks.uploaded, None)
        summary = await client.chat_postMessage(
            channel=channel,
            thread_ts=thread_ts,
            text=f"<@{job.user_id}>: {blocks.result_summary(job)}",
            blocks=blocks.result_blocks(job),
            metadata=blocks.result_metadata(job),
        )
        summary_key = message_key(channel, str(summary["ts"]))
        await self.memory.remember_post(job.id, job.surface, summary_key, thread)
        done = words.done_in_thread(len(images), held)
        await self._set_status_quietly(
            client, job, words.AWAITING_REVIEW if job.origin.get("review") else done
        )
        return [Post(summary_key, thread)]

    async def _screened(self, job: Job, images: list[OutputImage]) -> list[OutputImage]:
        if self.tenant_nsfw is None or await self.tenant_nsfw(job) != "block":
            return images
        return [image for image in images if not image.nsfw]

    async def _upload(
        self, client: AsyncWebClient, job: Job, images: list[OutputImage], shared: set[str]
    ) -> None:
        await self.upload_files(client, job, images, job.origin["channel"], job.origin["thread_ts"], shared)

    async def upload_files(
        self,
        client: AsyncWebClient,
        job: Job,
        images: list[OutputImage],
        channel: str,
        thread_ts: str | None,
        shared: set[str] | frozenset[str] = frozenset(),
    ) -> list[str]:
        """Share the job's images (those not in `shared` already, by name) into `channel` (`thread_ts`:
        its thread); the new files' ids."""
        names = [result_filename(job.id, i, img.extension) for i, img in enumerate(images)]
        todo = [(img, name) for img, name in zip(images, names, strict=True) if name not in shared]
        if not todo:
            return []
        # files.getUploadURLExternal, the upload, then files.completeUploadExternal into the thread: the
        # steps of slack_sdk's files_upload_v2, made here so that each file is streamed from disk
        # (files_upload_v2 reads every file whole into memory first).
        done: list[dict[str, str | None]] = []
        for img, name in todo:
            got = await client.files_getUploadURLExternal(
                filename=name, length=await img.size(), alt_txt=job.request.prompt[:1000]
            )
            await upload_to(client, str(got["upload_url"]), img)
            done.append({"id": str(got["file_id"]), "title": name})
        await client.files_completeUploadExternal(files=done, channel_id=channel, thread_ts=thread_ts)
        return [str(d["id"]) for d in done]

    async def tell(self, job: Job, text: str) -> None:
        try:
            client = await self._for(job)
        except NotInstalled:
            log.info("job %s: not told (its Slack workspace removed the app)", job.id)
            return
        origin = job.origin
        await self._set_status_quietly(client, job, words.not_done(text))
        await client.chat_postMessage(
            channel=origin["channel"], thread_ts=origin["thread_ts"], text=f"<@{job.user_id}> {text}"
        )


async def upload_to(client: AsyncWebClient, url: str, image: OutputImage) -> None:
    """POST the image's bytes to an upload URL Slack handed out, streamed from its file (aiohttp reads
    it in chunks) when it has one, through the client's own session, proxy and TLS settings."""
    body = None if image.file is None else await asyncio.to_thread(image.file.open, "rb")
    try:
        async with contextlib.AsyncExitStack() as stack:
            session = client.session
            if session is None:
                session = await stack.enter_async_context(aiohttp.ClientSession())
            async with session.post(
                url,
                data=image.data if body is None else body,
                headers={"Content-Type": "application/octet-stream"},
                proxy=client.proxy,
                ssl=client.ssl if client.ssl is not None else True,
                timeout=aiohttp.ClientTimeout(total=client.timeout),
            ) as answer:
                if answer.status != 200:
                    raise UploadFailed(f"Slack's upload URL answered HTTP {answer.status}")
    finally:
        if body is not None:
            body.close()


class UploadFailed(Exception):
    """Slack's upload URL refused a file (the delivery tries again)."""


def _summary_of(job: Job, messages: list[dict[str, Any]]) -> str | None:
    """The ts of the job's summary when an earlier delivery already posted it (found by metadata)."""
    for m in messages:
        meta = m.get("metadata") or {}
        if (
            meta.get("event_type") == RESULT_EVENT
            and (meta.get("event_payload") or {}).get("job_id") == job.id
        ):
            return str(m["ts"])
    return None
