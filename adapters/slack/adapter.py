"""The Slack surface: bolt's AsyncApp in HTTP mode (mounted on the bot's server) or Socket Mode,
and the engine's side of it (progress, delivery into the request's thread, failures)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_bolt.app.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack import blocks
from adapters.slack.translate import RESULT_EVENT, SURFACE, message_key, result_filename
from bot.errors import UserFacingError
from bot.jobs import Job, OutputImage, Post, Progress

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.engine import Engine

log = logging.getLogger(__name__)

ErrorReply = Callable[[str], Awaitable[None]]
SubmitWith = Callable[[dict[str, Any]], Awaitable[Job]]


class SlackAdapter:
    """One Slack workspace, one bot token. Enter it to connect (Socket Mode) or to serve (HTTP)."""

    name = SURFACE

    def __init__(self, settings: Settings, engine: Engine) -> None:
        if settings.slack_bot_token is None:
            raise ValueError("SLACK_BOT_TOKEN is not set")
        self.settings = settings
        self.engine = engine
        self.mode = settings.slack_mode
        self.bot_token = settings.slack_bot_token.get_secret_value()
        self.client = AsyncWebClient(token=self.bot_token, base_url=settings.slack_api_base_url)
        secret = settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else ""
        self.app = AsyncApp(
            client=self.client,
            signing_secret=secret,
            # Socket Mode has no signatures; HTTP mode checks every request.
            request_verification_enabled=self.mode == "http",
            logger=logging.getLogger("adapters.slack.bolt"),
        )
        self.admin_users = {u.strip() for u in settings.slack_admin_users.split(",") if u.strip()}
        self._socket: AsyncSocketModeHandler | None = None
        from adapters.slack.handlers import register

        register(self.app, self)

    # --- lifecycle ------------------------------------------------------------------------------

    def register_routes(self, app: web.Application) -> None:
        if self.mode == "http":
            app.router.add_post("/slack/events", self._http_events)

    async def _http_events(self, request: web.Request) -> web.Response:
        # bolt checks the signature and the timestamp first (401 and nothing runs when wrong) and
        # answers as soon as a listener acks, while the listener goes on in the background.
        response = await self.app.async_dispatch(await to_bolt_request(request))
        return await to_aiohttp_response(response)

    async def __aenter__(self) -> SlackAdapter:
        auth = await self.client.auth_test()
        log.info(
            "Slack (%s mode) connected as %s in team %s", self.mode, auth.get("user_id"), auth.get("team_id")
        )
        if self.mode == "socket":
            assert self.settings.slack_app_token is not None
            self._socket = AsyncSocketModeHandler(self.app, self.settings.slack_app_token.get_secret_value())
            await self._socket.connect_async()  # type: ignore[no-untyped-call]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._socket is not None:
            await self._socket.close_async()  # type: ignore[no-untyped-call]
            self._socket = None

    # --- helpers the handlers share -------------------------------------------------------------

    async def is_admin(self, user: str) -> bool:
        if user in self.admin_users:
            return True
        try:
            info = await self.client.users_info(user=user)
        except SlackApiError:
            log.warning("users.info failed for an admin check", exc_info=True)
            return False
        u = info.get("user") or {}
        return bool(u.get("is_admin") or u.get("is_owner") or u.get("is_primary_owner"))

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

    async def launch(
        self,
        *,
        channel: str,
        thread_ts: str | None,
        user: str,
        verb: str,
        prompt: str,
        submit: SubmitWith,
        reply_error: ErrorReply,
    ) -> Job | None:
        """Post the status message (a new thread root when `thread_ts` is None), then submit with an
        origin that points at it. A resent request gets the first one's job: its status is removed."""
        line = "Checking the request…"
        try:
            posted = await self.client.chat_postMessage(
                channel=channel,
                thread_ts=thread_ts,
                text=blocks.status_text(user, verb, prompt, line),
                blocks=blocks.status_blocks(user, verb, prompt, line),
                unfurl_links=False,
            )
        except SlackApiError as exc:
            log.warning("could not post in %s: %s", channel, exc.response.get("error"))
            await reply_error("I cannot post in this channel. Invite me first: `/invite @HiDream`.")
            return None
        ts = str(posted["ts"])
        origin = {"channel": channel, "thread_ts": thread_ts or ts, "status_ts": ts, "verb": verb}
        try:
            job = await submit(origin)
        except UserFacingError as exc:
            await self.delete_quietly(channel, ts)
            await reply_error(exc.user_message)
            return None
        except Exception:
            log.exception("submitting a Slack request failed")
            await self.delete_quietly(channel, ts)
            await reply_error("Something went wrong on my side; nothing was charged. Try again in a moment.")
            return None
        if job.origin.get("status_ts") != ts:
            await self.delete_quietly(channel, ts)
        return job

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

    async def deliver(self, job: Job, images: list[OutputImage]) -> list[Post]:
        """Upload into the request's thread, then the summary with buttons. Safe to call again:
        what the thread already holds for this job (files by name, the summary by metadata) is
        not posted twice."""
        channel, thread_ts = job.origin["channel"], job.origin["thread_ts"]
        thread = message_key(channel, thread_ts)
        existing = await self.thread_messages(channel, thread_ts)
        for m in existing:
            meta = m.get("metadata") or {}
            if (
                meta.get("event_type") == RESULT_EVENT
                and (meta.get("event_payload") or {}).get("job_id") == job.id
            ):
                return [Post(message_key(channel, m["ts"]), thread)]
        shared = {f.get("name") for m in existing for f in m.get("files") or []}
        uploads = [
            {"content": img.data, "filename": name, "title": name, "alt_txt": job.request.prompt[:1000]}
            for i, img in enumerate(images)
            if (name := result_filename(job.id, i, img.extension)) not in shared
        ]
        if uploads:
            await self.client.files_upload_v2(channel=channel, thread_ts=thread_ts, file_uploads=uploads)
        summary = await self.client.chat_postMessage(
            channel=channel,
            thread_ts=thread_ts,
            text=f"<@{job.user_id}>: {blocks.result_summary(job)}",
            blocks=blocks.result_blocks(job),
            metadata=blocks.result_metadata(job),
        )
        done = f"Done: {len(images)} image{'s' if len(images) != 1 else ''} in the thread."
        try:
            await self._set_status(job, done)
        except SlackApiError:
            log.warning("job %s: could not update its status message", job.id, exc_info=True)
        return [Post(message_key(channel, str(summary["ts"])), thread)]

    async def tell(self, job: Job, text: str) -> None:
        origin = job.origin
        try:
            await self._set_status(job, f"Not done: {text}")
        except SlackApiError:
            log.warning("job %s: could not update its status message", job.id, exc_info=True)
        await self.client.chat_postMessage(
            channel=origin["channel"], thread_ts=origin["thread_ts"], text=f"<@{job.user_id}> {text}"
        )
