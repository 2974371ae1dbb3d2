"""Posting to Slack: the request's status message, progress, delivery into its thread, failures,
and the small writes the listeners share (ephemerals, quiet deletions, thread reads).

Delivery is idempotent per job: what the thread already holds for a job (its files by name, its
summary by metadata) is not posted again when the engine retries after a crash.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack import blocks
from adapters.slack.translate import RESULT_EVENT, message_key, result_filename
from bot.jobs import Job, OutputImage, Post, Progress

log = logging.getLogger(__name__)


class Poster:
    def __init__(self, client: AsyncWebClient) -> None:
        self.client = client

    # --- what the listeners share ---------------------------------------------------------------

    async def ephemeral(self, channel: str, user: str, text: str, thread_ts: str | None = None) -> None:
        try:
            await self.client.chat_postEphemeral(channel=channel, user=user, text=text, thread_ts=thread_ts)
        except SlackApiError:
            log.warning("could not send an ephemeral message in %s", channel, exc_info=True)

    async def delete_quietly(self, channel: str, ts: str) -> None:
        try:
            await self.client.chat_delete(channel=channel, ts=ts)
        except SlackApiError:
            log.warning("could not delete message %s in %s", ts, channel, exc_info=True)

    async def thread_messages(self, channel: str, thread_ts: str) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            page = await self.client.conversations_replies(
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
        line = "Checking the request…"
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
        await self._set_status(job, progress.text())

    async def _set_status(self, job: Job, line: str) -> None:
        origin = job.origin
        verb = str(origin.get("verb", "asked for"))
        await self.client.chat_update(
            channel=origin["channel"],
            ts=origin["status_ts"],
            text=blocks.status_text(job.user_id, verb, job.request.prompt, line),
            blocks=blocks.status_blocks(job.user_id, verb, job.request.prompt, line),
        )

    async def _set_status_quietly(self, job: Job, line: str) -> None:
        # The status line is a courtesy: the result or the failure is already in the thread.
        try:
            await self._set_status(job, line)
        except SlackApiError:
            log.warning("job %s: could not update its status message", job.id, exc_info=True)

    async def deliver(self, job: Job, images: list[OutputImage]) -> list[Post]:
        """Upload into the request's thread, then the summary with buttons. Safe to call again."""
        channel, thread_ts = job.origin["channel"], job.origin["thread_ts"]
        thread = message_key(channel, thread_ts)
        existing = await self.thread_messages(channel, thread_ts)
        summary_ts = _summary_of(job, existing)
        if summary_ts is not None:
            return [Post(message_key(channel, summary_ts), thread)]
        shared = {f.get("name") for m in existing for f in m.get("files") or []}
        uploads = [
            {"content": img.data, "filename": name, "title": name, "alt_txt": job.request.prompt[:1000]}
            for i, img in enumerate(images)
            if (name := result_filename(job.id, i, img.extension)) not in shared
        ]
        if uploads:
            # files.getUploadURLExternal, the upload, then files.completeUploadExternal into the thread.
            await self.client.files_upload_v2(channel=channel, thread_ts=thread_ts, file_uploads=uploads)
        summary = await self.client.chat_postMessage(
            channel=channel,
            thread_ts=thread_ts,
            text=f"<@{job.user_id}>: {blocks.result_summary(job)}",
            blocks=blocks.result_blocks(job),
            metadata=blocks.result_metadata(job),
        )
        await self._set_status_quietly(
            job, f"Done: {len(images)} image{'s' if len(images) != 1 else ''} in the thread."
        )
        return [Post(message_key(channel, str(summary["ts"])), thread)]

    async def tell(self, job: Job, text: str) -> None:
        origin = job.origin
        await self._set_status_quietly(job, f"Not done: {text}")
        await self.client.chat_postMessage(
            channel=origin["channel"], thread_ts=origin["thread_ts"], text=f"<@{job.user_id}> {text}"
        )


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
