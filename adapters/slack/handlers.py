"""bolt listeners. Each one acks first (within Slack's 3 seconds), then does the slow part:
posting the status message, fetching files and admitting the job through the engine. Errors are
answered by the boundary (boundary.py); each listener names where its private answer goes."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from typing import Any

from slack_bolt.app.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.errors import SlackApiError

from adapters.slack import blocks
from adapters.slack import translate as t
from adapters.slack.boundary import Reply, guarded
from adapters.slack.context import ListenerContext
from adapters.slack.preferences import preference_answer
from adapters.slack.subjects import ACTION_SUBJECT, VIEW_SUBJECT, SlackSubjects, parse_subject_text
from bot.jobs.quota_policy import usage_text
from bot.model.errors import BadInput, UserFacingError
from bot.model.jobs import Job
from bot.model.requests import ChatRequest, ImageRef, ImageRequest, ParsedCommand, parse_command
from bot.usecases.versions import ThreadCommand, thread_command

log = logging.getLogger(__name__)
CANNOT_POST = "I cannot post in this channel. Invite me first: `/invite @HiDream`."
PRIVATE_NOTICE = "You chose private results: I am making this in our direct messages, where it will arrive."
SubmitWith = Callable[[dict[str, Any]], Awaitable[Job]]


def register(app: AsyncApp, ctx: ListenerContext) -> None:
    h = Handlers(ctx)
    app.command("/hidream")(h.on_command)
    app.event("app_mention")(h.on_mention)
    app.action(t.ACTION_REROLL)(h.on_reroll)
    app.action(t.ACTION_VARY)(h.on_reroll)
    app.action(t.ACTION_EDIT)(h.on_edit_button)
    app.action(t.ACTION_DELETE)(h.on_delete)
    app.shortcut(t.SHORTCUT_EDIT)(h.on_shortcut)
    app.view(t.VIEW_EDIT)(h.on_edit_submit)
    app.action(ACTION_SUBJECT)(h.subjects.on_button)
    app.view(VIEW_SUBJECT)(h.subjects.on_submit)
    # Plain channel messages are delivered too when the app listens to message events; ignore them.
    app.event("message")(h.ignore)


# --- where each listener's private answer goes -------------------------------------------------


def _to_command(h: Handlers, args: Mapping[str, Any]) -> Reply:
    respond: AsyncRespond = args["respond"]
    return respond


def _to_mentioner(h: Handlers, args: Mapping[str, Any]) -> Reply:
    m = t.mention_from_event(args["event"], str(args["body"].get("team_id", "")))
    return partial(h.poster.ephemeral, m.channel, m.user, thread_ts=m.reply_thread)


def _to_presser(h: Handlers, args: Mapping[str, Any]) -> Reply:
    press = t.button_press(args["body"])
    return partial(h.poster.ephemeral, press.channel, press.user, thread_ts=press.thread_ts)


def _to_shortcut_user(h: Handlers, args: Mapping[str, Any]) -> Reply:
    inv = t.shortcut_invocation(args["body"])
    return partial(h.poster.ephemeral, inv.channel, inv.user)


def _to_editor(h: Handlers, args: Mapping[str, Any]) -> Reply:
    context = t.edit_submission(args["view"]).context
    user = str(args["body"]["user"]["id"])
    channel, thread_ts = str(context.get("channel", "")), str(context.get("thread_ts", ""))
    return partial(h.poster.ephemeral, channel, user, thread_ts=thread_ts)


class Handlers:
    def __init__(self, ctx: ListenerContext) -> None:
        self.ctx = ctx
        self.engine = ctx.engine
        self.poster = ctx.poster
        self.subjects = SlackSubjects(ctx, self._latest_in_thread, self._is_admin)

    def _chat(
        self,
        user: str,
        team: str,
        origin: dict[str, Any],
        request: ImageRequest,
        references: list[ImageRef],
        parent: str | None = None,
    ) -> ChatRequest:
        return ChatRequest(
            surface=t.SURFACE,
            user_id=user,
            workspace_id=team,
            origin=origin,
            request=request,
            references=references,
            parent_job_id=parent,
        )

    async def _is_admin(self, user: str) -> bool:
        if user in self.ctx.admin_users:
            return True
        try:
            info = await self.ctx.client.users_info(user=user)
        except SlackApiError:
            log.warning("users.info failed for an admin check", exc_info=True)
            return False
        u = info.get("user") or {}
        return bool(u.get("is_admin") or u.get("is_owner") or u.get("is_primary_owner"))

    async def _launch(
        self,
        *,
        channel: str,
        thread_ts: str | None,
        user: str,
        verb: str,
        prompt: str,
        submit: SubmitWith,
        team: str = "",
    ) -> Job:
        """Post the status message (a new thread root when `thread_ts` is None), then submit with an
        origin that points at it. A resent request gets the first one's job: its status is removed.
        A person who chose private results gets it all in a direct message, and a private notice here."""
        # The status message shows the prompt: a blocked one is refused before it is posted.
        await self.engine.screen_prompt(t.SURFACE, team, user, prompt)
        asked_in = channel
        if await self.engine.private_results(t.SURFACE, team, user):
            channel, thread_ts = await self.poster.direct_channel(user), None
        try:
            ts = await self.poster.post_status(channel, thread_ts, user, verb, prompt)
        except SlackApiError as exc:
            log.warning("could not post in %s: %s", channel, exc.response.get("error"))
            raise UserFacingError(CANNOT_POST) from exc
        origin = {"channel": channel, "thread_ts": thread_ts or ts, "status_ts": ts, "verb": verb}
        try:
            job = await submit(origin)
        except Exception:
            # A request that was not admitted leaves no status behind; the boundary answers why.
            await self.poster.delete_quietly(channel, ts)
            raise
        if job.origin.get("status_ts") != ts:
            await self.poster.delete_quietly(channel, ts)
        elif channel != asked_in:
            await self.poster.ephemeral(asked_in, user, PRIVATE_NOTICE)
        return job

    async def ignore(self) -> None:
        return None

    # --- /hidream -----------------------------------------------------------------------------------

    @guarded(_to_command)
    async def on_command(self, ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        inv = t.slash_invocation(body)
        if ask := parse_subject_text(inv.text):
            await self.subjects.run(ask, inv.team, inv.user, inv.channel, None, respond)
            return
        action = t.parse_slash_text(inv.text)
        if isinstance(action, t.Help):
            await respond(t.HELP_TEXT)
        elif isinstance(action, t.Usage):
            await self._usage(inv, action, respond)
        elif isinstance(action, t.AdminCommand):
            await self._admin(inv, action, respond)
        elif isinstance(action, t.Preference):
            await respond(await preference_answer(self.engine, inv, action, self._is_admin))
        else:
            await self._generate(inv, action.parsed)

    async def _generate(self, inv: t.SlashInvocation, parsed: ParsedCommand) -> None:
        refs = [ImageRef(url=u, typed=True) for u in parsed.urls]

        async def submit(origin: dict[str, Any]) -> Job:
            chat = self._chat(inv.user, inv.team, origin, parsed.request, refs)
            return await self.engine.submit(chat, dedup_key=f"slack:{inv.trigger_id}")

        prompt = parsed.request.prompt
        await self._launch(
            channel=inv.channel,
            thread_ts=None,
            user=inv.user,
            verb="asked for",
            prompt=prompt,
            submit=submit,
            team=inv.team,
        )

    async def _usage(self, inv: t.SlashInvocation, action: t.Usage, respond: AsyncRespond) -> None:
        subject = action.user_id or inv.user
        if subject != inv.user and not await self._is_admin(inv.user):
            await respond("Only workspace admins can see someone else's usage.")
            return
        status = await self.engine.quota(t.SURFACE, subject, inv.team)
        prefix = "" if subject == inv.user else f"<@{subject}>: "
        await respond(prefix + usage_text(status))

    async def _admin(self, inv: t.SlashInvocation, cmd: t.AdminCommand, respond: AsyncRespond) -> None:
        if not await self._is_admin(inv.user):
            await respond("Only workspace admins (or users an operator listed) can change limits.")
            return
        who = f"<@{cmd.subject}>" if cmd.scope == "user" else "everyone in this workspace"
        # Everything an admin does is kept under this workspace: it reaches no other one.
        if cmd.action == "limit":
            member = cmd.subject if cmd.scope == "user" else None
            await self.engine.admin_set_limit(t.SURFACE, inv.team, member, cmd.amount)
            limit = "the default limit" if cmd.amount is None else f"{cmd.amount} images a day"
            await respond(f"Done: {who} now has {limit}.")
        elif cmd.action == "grant":
            assert cmd.amount is not None
            await self.engine.admin_grant(t.SURFACE, inv.team, cmd.subject, cmd.amount)
            await respond(f"Done: {who} got {cmd.amount} extra images for today.")
        else:
            await self.engine.admin_reset(t.SURFACE, inv.team, cmd.subject)
            await respond(f"Done: {who} starts today's count from zero.")

    # --- mentions -------------------------------------------------------------------------------

    async def _first_time(self, event_id: str) -> bool:
        """Whether no replica has handled the event yet: a resend is dropped before it posts anything,
        whichever replica it reaches (the record is in the database)."""
        return not event_id or await self.engine.first_time(f"slack:event:{event_id}")

    @guarded(_to_mentioner)
    async def on_mention(self, body: dict[str, Any], event: dict[str, Any]) -> None:
        # bolt has already acked: event listeners are acknowledged before they run.
        event_id = str(body.get("event_id", ""))
        if not await self._first_time(event_id):
            log.info("Slack resent event %s; already handled", event_id)
            return
        m = t.mention_from_event(event, str(body.get("team_id", "")))
        if ask := parse_subject_text(m.text):
            await self.subjects.mention(m, ask)
            return
        command = thread_command(m.text) if m.thread_ts and not m.files else None
        if command is not None and m.thread_ts is not None:
            await self._thread_command(m, m.thread_ts, command)
            return
        parsed = parse_command(m.text)
        refs = t.image_refs(m.files, self.ctx.bot_token, self.ctx.max_image_bytes)
        parent = None
        if not refs and m.thread_ts:
            job = await self._latest_in_thread(m.channel, m.thread_ts)
            if job is not None and job.result_media:
                refs, parent = self.engine.references_of(job, len(job.result_media) - 1), job.id
        refs += [ImageRef(url=u, typed=True) for u in parsed.urls]
        verb = "asked to edit" if refs else "asked for"

        async def submit(origin: dict[str, Any]) -> Job:
            chat = self._chat(m.user, m.team, origin, parsed.request, refs, parent)
            return await self.engine.submit(chat, dedup_key=f"slack:{event_id}")

        prompt = parsed.request.prompt
        await self._launch(
            channel=m.channel,
            thread_ts=m.reply_thread,
            user=m.user,
            verb=verb,
            prompt=prompt,
            submit=submit,
            team=m.team,
        )

    async def _thread_command(self, m: t.Mention, thread_ts: str, command: ThreadCommand) -> None:
        """`undo` or `history` mentioned in a result's thread, answered there for everyone (undo
        changes what the thread's next edit starts from); a refusal goes to the mentioner alone."""
        thread = t.message_key(m.channel, thread_ts)
        if command == "history":
            text = (await self.engine.versions.history(t.SURFACE, thread)).text(t.version_link)
        else:
            requesters = await self.engine.versions.requesters(t.SURFACE, thread)
            admin = m.user not in requesters and await self._is_admin(m.user)
            undone = await self.engine.versions.undo(t.SURFACE, thread, m.user, admin=admin)
            text = undone.text(t.version_link)
        await self.ctx.client.chat_postMessage(channel=m.channel, thread_ts=thread_ts, text=text)

    async def _latest_in_thread(self, channel: str, thread_ts: str) -> Job | None:
        """The store knows a delivered job's thread once its delivery is recorded; a mention that
        arrives just before that is answered from the thread itself (our summaries name their job)."""
        job = await self.engine.latest_job_in_thread(t.SURFACE, t.message_key(channel, thread_ts))
        if job is not None:
            return job
        try:
            messages = await self.poster.thread_messages(channel, thread_ts)
        except SlackApiError:
            return None
        for msg in reversed(messages):
            meta = msg.get("metadata") or {}
            if meta.get("event_type") == t.RESULT_EVENT:
                return await self.engine.job(str((meta.get("event_payload") or {}).get("job_id", "")))
        return None

    # --- buttons --------------------------------------------------------------------------------

    @guarded(_to_presser)
    async def on_reroll(self, ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        press = t.button_press(body)
        job = await self.engine.job(press.job_id)
        if job is None:
            await self.poster.ephemeral(
                press.channel, press.user, "That result is no longer known to the bot."
            )
            return
        # Reroll and Vary share this listener: Vary edits the result itself, Reroll asks again.
        vary = press.action == t.ACTION_VARY
        again = self.engine.vary if vary else self.engine.reroll

        async def submit(origin: dict[str, Any]) -> Job:
            return await again(job, user_id=press.user, origin=origin, dedup_key=f"slack:{press.trigger_id}")

        prompt, thread_ts = job.request.prompt, press.thread_ts
        await self._launch(
            channel=press.channel,
            thread_ts=thread_ts,
            user=press.user,
            verb="asked for a variation of" if vary else "rerolled",
            prompt=prompt,
            submit=submit,
            team=job.workspace_id,
        )

    @guarded(_to_presser)
    async def on_edit_button(self, ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        press = t.button_press(body)
        job = await self.engine.job(press.job_id)
        if job is None:
            await self.poster.ephemeral(
                press.channel, press.user, "That result is no longer known to the bot."
            )
            return
        context = {"job_id": job.id, "channel": press.channel, "thread_ts": press.thread_ts}
        await self.ctx.client.views_open(
            trigger_id=press.trigger_id, view=blocks.edit_modal(context, len(job.result_media))
        )

    @guarded(_to_presser)
    async def on_delete(self, ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        press = t.button_press(body)
        job = await self.engine.job(press.job_id)
        if job is None:
            return
        if press.user != job.user_id and not await self._is_admin(press.user):
            text = "Only the person who asked for these images, or a workspace admin, can delete them."
            await self.poster.ephemeral(press.channel, press.user, text, thread_ts=press.thread_ts)
            return
        prefix = f"hidream-{job.id}-"
        for m in await self.poster.thread_messages(press.channel, press.thread_ts):
            ours = [f for f in m.get("files") or [] if str(f.get("name", "")).startswith(prefix)]
            for f in ours:
                try:
                    await self.ctx.client.files_delete(file=f["id"])
                except SlackApiError:
                    log.warning("could not delete file %s", f.get("id"), exc_info=True)
            if ours and m.get("bot_id"):
                await self.poster.delete_quietly(press.channel, m["ts"])
        await self.poster.delete_quietly(press.channel, press.message_ts)
        await self.engine.mark_deleted(job)

    # --- the message shortcut and the edit modal ------------------------------------------------

    @guarded(_to_shortcut_user)
    async def on_shortcut(self, ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        inv = t.shortcut_invocation(body)
        if not inv.file_ids:
            text = "That message has no image to edit. Use the shortcut on a message with an image."
            await self.poster.ephemeral(inv.channel, inv.user, text)
            return
        context = {"channel": inv.channel, "thread_ts": inv.thread_ts, "file_ids": inv.file_ids}
        await self.ctx.client.views_open(
            trigger_id=inv.trigger_id, view=blocks.edit_modal(context, len(inv.file_ids))
        )

    @guarded(_to_editor)
    async def on_edit_submit(self, ack: AsyncAck, body: dict[str, Any], view: dict[str, Any]) -> None:
        try:
            sub = t.edit_submission(view)
            parsed = parse_command(sub.instruction)
        except BadInput as exc:
            # Parsing is pure, so it may run before the ack: the modal stays open and shows why.
            await ack(response_action="errors", errors={t.BLOCK_INSTRUCTION: exc.user_message[:150]})
            return
        await ack()
        ctx, user, team = sub.context, str(body["user"]["id"]), str((body.get("team") or {}).get("id", ""))

        async def submit(origin: dict[str, Any]) -> Job:
            refs, parent = await self._edit_references(ctx, sub.image_index)
            refs += [ImageRef(url=u, typed=True) for u in parsed.urls]
            chat = self._chat(user, team, origin, parsed.request, refs, parent)
            return await self.engine.submit(chat, dedup_key=f"slack:{view.get('id', '')}")

        channel, thread_ts = str(ctx.get("channel", "")), str(ctx.get("thread_ts", ""))
        prompt = parsed.request.prompt
        await self._launch(
            channel=channel,
            thread_ts=thread_ts,
            user=user,
            verb="asked to edit",
            prompt=prompt,
            submit=submit,
            team=team,
        )

    async def _edit_references(
        self, ctx: dict[str, Any], index: int | None
    ) -> tuple[list[ImageRef], str | None]:
        """What the modal edits: a job's results, or the files of a message (our own results are
        taken from the store instead of being downloaded again)."""
        if ctx.get("job_id"):
            job = await self.engine.job(str(ctx["job_id"]))
            if job is None or not job.result_media:
                raise UserFacingError("That result is no longer held by the bot.")
            return self.engine.references_of(job, index), job.id
        file_ids = [str(f) for f in ctx.get("file_ids") or []]
        if index is not None:
            file_ids = file_ids[index : index + 1]
        refs: list[ImageRef] = []
        parent = None
        for file_id in file_ids:
            info = (await self.ctx.client.files_info(file=file_id))["file"]
            own = t.parse_result_filename(str(info.get("name", "")))
            job = await self.engine.job(own[0]) if own else None
            if own and job is not None and own[1] < len(job.result_media):
                refs += self.engine.references_of(job, own[1])
                parent = job.id
            else:
                refs += t.image_refs([info], self.ctx.bot_token, self.ctx.max_image_bytes)
        return refs, parent
