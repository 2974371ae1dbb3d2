"""bolt listeners. Each one acks first (within Slack's 3 seconds), then does the slow part:
posting the status message, fetching files and admitting the job through the engine. Errors are
answered by the boundary (boundary.py); each listener names where its private answer goes."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
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
from adapters.slack.remix import SlackRemix
from adapters.slack.subjects import ACTION_SUBJECT, VIEW_SUBJECT, SlackSubjects, parse_subject_text
from bot import words
from bot.jobs.versions import ThreadCommand, thread_command
from bot.model.errors import BadInput, UserFacingError
from bot.model.jobs import Job
from bot.model.requests import (
    CONFIRM_OVER,
    ChatRequest,
    ImageRef,
    ImageRequest,
    ParsedCommand,
    ParsedSet,
    parse_command,
)
from bot.usecases import drafts, kits, limits, region, results, sets, threads, toolbox
from bot.usecases.access import Lookup
from bot.usecases.actor import Actor
from bot.usecases.make import make, result_references
from bot.usecases.remake import remake
from bot.usecases.sets import set_requests
from bot.usecases.toolbox import TOOL_KINDS, use_tool
from bot.words import CANNOT_POST, NO_IMAGE, NOT_FOUND, PRIVATE_NOTICE, REVIEW_NOTICE

log = logging.getLogger(__name__)
SubmitWith = Callable[[dict[str, Any]], Awaitable[Job]]


# The action ids a tool answers (Vary (Subtle) keeps Vary's), from the ids the buttons carry.
TOOL_ACTIONS = {blocks.ACTION_IDS[kind]: kind for kind in TOOL_KINDS}


def register(app: AsyncApp, ctx: ListenerContext) -> None:
    h = Handlers(ctx)
    app.command("/hidream")(h.on_command)
    app.event(t.EVENT_MENTION)(h.on_mention)
    app.action(t.ACTION_REROLL)(h.on_reroll)
    for action_id in (*TOOL_ACTIONS, t.ACTION_MORE, t.ACTION_REGION):
        app.action(action_id)(h.on_tool)
    app.action(t.ACTION_EDIT)(h.on_edit_button)
    app.action(t.ACTION_DELETE)(h.on_delete)
    app.action(t.ACTION_FINAL)(h.on_final)
    app.action(t.ACTION_CONFIRM_SET)(h.on_confirm_set)
    app.shortcut(t.SHORTCUT_EDIT)(h.on_shortcut)
    app.view(t.VIEW_EDIT)(h.on_edit_submit)
    app.action(ACTION_SUBJECT)(h.subjects.on_button)
    app.view(VIEW_SUBJECT)(h.subjects.on_submit)
    app.action(t.ACTION_REMIX)(h.remix.on_button)
    app.view(t.VIEW_REMIX)(h.remix.on_submit)
    # Plain channel messages are delivered too when the app listens to message events; ignore them.
    for name in t.IGNORED_EVENTS:
        app.event(name)(h.ignore)


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


def _set_origins(channel: str, posted: list[str]) -> list[dict[str, Any]]:
    """Each job of a set answered at its own status message, all in the first one's thread."""
    return [
        {"channel": channel, "thread_ts": posted[0], "status_ts": ts, "verb": words.ASKED_FOR}
        for ts in posted
    ]


class Handlers:
    def __init__(self, ctx: ListenerContext) -> None:
        self.ctx = ctx
        self.engine = ctx.engine
        self.poster = ctx.poster
        self.lookup = Lookup(ctx.engine)
        self.subjects = SlackSubjects(ctx, self._latest_in_thread, self._is_admin)
        self.remix = SlackRemix(ctx, self._launch, self._pressed)

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
        if await self.engine.private_results(t.SURFACE, team, user, channel=channel):
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
            await self.poster.ephemeral(asked_in, user, await self._private_notice(team, asked_in))
        return job

    async def _private_notice(self, team: str, channel: str) -> str:
        """Why the request went to a direct message: the channel is reviewed, or the person's choice."""
        return REVIEW_NOTICE if await self.engine.reviewed(t.SURFACE, team, channel) else PRIVATE_NOTICE

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
            await respond(await preference_answer(self.engine, inv, action, self._is_admin, self.ctx.client))
        elif isinstance(action, t.KitCommand):
            await respond(await self._kit(inv, action))
        elif action.whole is not None and len(action.whole.commands) > 1:
            await self._generate_set(inv, action.whole, respond)
        else:
            await self._generate(inv, action.parsed)

    async def _generate_set(self, inv: t.SlashInvocation, whole: ParsedSet, respond: AsyncRespond) -> None:
        """A set from /hidream: made at once (all or nothing, each job with a status message in one
        thread) when small or confirmed with --yes; else held, and its requester alone is asked."""
        base = self._chat(inv.user, inv.team, {}, whole.first.request, [])
        chats = set_requests(whole, base, lambda urls: [ImageRef(url=u, typed=True) for u in urls])
        actor = t.actor(inv.team, inv.user, inv.channel)
        if len(chats) > CONFIRM_OVER and not whole.confirmed:
            outcome = await sets.make_set(self.engine, actor, chats, confirmed=False)
            if outcome.waiting is not None and outcome.set_id is not None:
                text = outcome.waiting.text
                await respond(text=text, blocks=blocks.confirm_set_blocks(text, outcome.set_id))
            return

        async def submit(origins: list[dict[str, Any]]) -> list[Job]:
            placed = [c.model_copy(update={"origin": o}) for c, o in zip(chats, origins, strict=True)]
            outcome = await sets.make_set(
                self.engine, actor, placed, confirmed=True, dedup_key=f"slack:{inv.trigger_id}"
            )
            return outcome.jobs

        await self._launch_set(
            channel=inv.channel,
            user=inv.user,
            team=inv.team,
            prompts=[c.request.prompt for c in chats],
            submit=submit,
        )

    async def _launch_set(
        self,
        *,
        channel: str,
        user: str,
        team: str,
        prompts: list[str],
        submit: Callable[[list[dict[str, Any]]], Awaitable[list[Job]]],
    ) -> list[Job]:
        """A set's status messages, one per job, in one thread (the first is its root), then the set
        submitted with origins that point at them. Nothing admitted: the statuses are removed."""
        where, posted = await self._set_statuses(channel, user, team, prompts)
        try:
            jobs = await submit(_set_origins(where, posted))
        except Exception:
            await self._unpost(where, posted)
            raise
        if jobs and jobs[0].origin.get("status_ts") != posted[0]:
            await self._unpost(where, posted)  # a resent request: the first one's set stands
        return jobs

    async def _set_statuses(
        self, channel: str, user: str, team: str, prompts: list[str]
    ) -> tuple[str, list[str]]:
        """Post a status message per job of a set (in a direct message for a person who chose private
        results, with a private notice where they asked); the channel and the messages' ts."""
        for prompt in prompts:
            await self.engine.screen_prompt(t.SURFACE, team, user, prompt)
        where = channel
        if await self.engine.private_results(t.SURFACE, team, user, channel=channel):
            where = await self.poster.direct_channel(user)
        posted: list[str] = []
        try:
            for prompt in prompts:
                thread = posted[0] if posted else None
                posted.append(await self.poster.post_status(where, thread, user, words.ASKED_FOR, prompt))
        except SlackApiError as exc:
            await self._unpost(where, posted)
            log.warning("could not post in %s: %s", where, exc.response.get("error"))
            raise UserFacingError(CANNOT_POST) from exc
        if where != channel:
            await self.poster.ephemeral(channel, user, await self._private_notice(team, channel))
        return where, posted

    async def _unpost(self, channel: str, posted: list[str]) -> None:
        for ts in reversed(posted):
            await self.poster.delete_quietly(channel, ts)

    async def _generate(self, inv: t.SlashInvocation, parsed: ParsedCommand) -> None:
        refs = [ImageRef(url=u, typed=True) for u in parsed.urls]

        async def submit(origin: dict[str, Any]) -> Job:
            chat = self._chat(inv.user, inv.team, origin, parsed.request, refs)
            return await make(
                self.engine,
                t.actor(inv.team, inv.user, inv.channel),
                chat,
                dedup_key=f"slack:{inv.trigger_id}",
            )

        prompt = parsed.request.prompt
        await self._launch(
            channel=inv.channel,
            thread_ts=None,
            user=inv.user,
            verb=words.ASKED_FOR,
            prompt=prompt,
            submit=submit,
            team=inv.team,
        )

    async def _usage(self, inv: t.SlashInvocation, action: t.Usage, respond: AsyncRespond) -> None:
        someone = action.user_id if action.user_id and action.user_id != inv.user else None
        admin = someone is not None and await self._is_admin(inv.user)
        actor = replace(t.actor(inv.team, inv.user, inv.channel), admin=admin)
        await respond((await limits.usage(self.engine, actor, someone)).text)

    async def _kit(self, inv: t.SlashInvocation, cmd: t.KitCommand) -> str:
        """Style kits: saving, deleting and binding one asks Slack whether the person is an admin."""
        admin = cmd.action not in ("kit list", "kit show") and await self._is_admin(inv.user)
        actor = replace(t.actor(inv.team, inv.user, inv.channel), admin=admin)
        return (await kits.command(self.engine.kits, actor, cmd.text)).text

    async def _admin(self, inv: t.SlashInvocation, cmd: t.AdminCommand, respond: AsyncRespond) -> None:
        actor = replace(t.actor(inv.team, inv.user, inv.channel), admin=await self._is_admin(inv.user))
        member = cmd.subject if cmd.scope == "user" else None
        if cmd.action == "limit":
            reply = await limits.set_limit(self.engine, actor, member, cmd.amount)
        elif cmd.action == "grant":
            assert cmd.amount is not None
            reply = await limits.grant(self.engine, actor, cmd.subject, cmd.amount)
        else:
            reply = await limits.reset_today(self.engine, actor, cmd.subject)
        await respond(reply.text)

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
            job = await self._latest_in_thread(m.team, m.user, m.channel, m.thread_ts)
            if job is not None and job.result_media:
                refs, parent = result_references(job, len(job.result_media) - 1), job.id
        refs += [ImageRef(url=u, typed=True) for u in parsed.urls]
        verb = words.ASKED_TO_EDIT if refs else words.ASKED_FOR

        async def submit(origin: dict[str, Any]) -> Job:
            chat = self._chat(m.user, m.team, origin, parsed.request, refs, parent)
            return await make(
                self.engine, t.actor(m.team, m.user, m.channel), chat, dedup_key=f"slack:{event_id}"
            )

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
        actor = t.actor(m.team, m.user, m.channel)
        if command == "undo":
            # Workspace admins are asked of Slack only when someone else's versions are undone.
            requesters = await self.engine.versions.requesters(t.SURFACE, thread)
            actor = replace(actor, admin=m.user not in requesters and await self._is_admin(m.user))
        reply = await threads.thread_command(self.engine.versions, actor, command, thread, t.version_link)
        text = reply.text
        await self.ctx.client.chat_postMessage(channel=m.channel, thread_ts=thread_ts, text=text)

    async def _latest_in_thread(self, team: str, user: str, channel: str, thread_ts: str) -> Job | None:
        """The store knows a delivered job's thread once its delivery is recorded; a mention that
        arrives just before that is answered from the thread itself (our summaries name their job)."""
        who = t.actor(team, user, channel)
        job = await self.lookup.latest_in_thread(who, t.message_key(channel, thread_ts))
        if job is not None:
            return job
        try:
            messages = await self.poster.thread_messages(channel, thread_ts)
        except SlackApiError:
            return None
        for msg in reversed(messages):
            meta = msg.get("metadata") or {}
            if meta.get("event_type") == t.RESULT_EVENT:
                return await self.lookup.job(who, str((meta.get("event_payload") or {}).get("job_id", "")))
        return None

    # --- buttons --------------------------------------------------------------------------------

    @guarded(_to_presser)
    async def on_reroll(self, ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        press = t.button_press(body)
        actor = t.press_actor(press)
        job = await self._pressed(press)
        if job is None:
            return

        async def submit(origin: dict[str, Any]) -> Job:
            dedup = f"slack:{press.trigger_id}"
            return await remake(self.engine, actor, job, vary=False, origin=origin, dedup_key=dedup)

        await self._launch_under(press, job, words.REROLLED, submit)

    @guarded(_to_presser)
    async def on_tool(self, ack: AsyncAck, body: dict[str, Any]) -> None:
        """Vary, Upscale, Zoom Out, Pan and Make Square (buttons, or the overflow menu's options)."""
        await ack()
        press = t.button_press(body)
        if press.action == t.ACTION_REGION:
            await self._region(press)
            return
        kind = TOOL_ACTIONS.get(press.action)
        if kind is None:
            return
        actor = t.press_actor(press)
        job = await self._pressed(press)
        if job is None:
            return
        notes: list[str] = []

        async def submit(origin: dict[str, Any]) -> Job:
            dedup = f"slack:{press.trigger_id or press.action_ts}"
            made = await use_tool(self.engine, actor, job, kind, origin=origin, dedup_key=dedup)
            notes.append(made.note)
            return made.job

        await self._launch_under(press, job, toolbox.verb(kind), submit)
        for note in filter(None, notes):
            await self.poster.ephemeral(press.channel, press.user, note, thread_ts=press.thread_ts)

    async def _launch_under(self, press: t.ButtonPress, job: Job, verb: str, submit: SubmitWith) -> Job:
        """`_launch` for a button under `job`'s result: in the result's thread, for its presser."""
        return await self._launch(
            channel=press.channel,
            thread_ts=press.thread_ts,
            user=press.user,
            verb=verb,
            prompt=job.request.prompt,
            submit=submit,
            team=press.team,
        )

    async def _region(self, press: t.ButtonPress) -> None:
        """Edit region: the editor's link, to the presser alone (it is theirs: it admits as them)."""
        job = await self._pressed(press)
        if job is None:
            return
        reply = await region.region_link(self.engine, t.press_actor(press), job, now=time.time())
        await self.poster.ephemeral(press.channel, press.user, reply.text, thread_ts=press.thread_ts)

    @guarded(_to_presser)
    async def on_final(self, ack: AsyncAck, body: dict[str, Any]) -> None:
        """Final under a draft: the same request on the full model with the same seed, in its thread."""
        await ack()
        press = t.button_press(body)
        actor = t.press_actor(press)
        job = await self._pressed(press)
        if job is None:
            return

        async def submit(origin: dict[str, Any]) -> Job:
            dedup = f"slack:{press.trigger_id}"
            return await drafts.final(self.engine, actor, job, origin=origin, dedup_key=dedup)

        await self._launch_under(press, job, words.ASKED_FOR, submit)

    @guarded(_to_presser)
    async def on_confirm_set(self, ack: AsyncAck, body: dict[str, Any]) -> None:
        """The requester's confirmation of a held set: the set made, all or nothing, in a new thread."""
        await ack()
        press = t.button_press(body)
        placed: list[tuple[str, list[str]]] = []

        async def place(chats: list[ChatRequest]) -> list[dict[str, Any]]:
            prompts = [c.request.prompt for c in chats]
            where, posted = await self._set_statuses(press.channel, press.user, press.team, prompts)
            placed.append((where, posted))
            return _set_origins(where, posted)

        try:
            await sets.confirm_set(
                self.engine, t.press_actor(press), press.job_id, place, dedup_key=f"slack:{press.trigger_id}"
            )
        except Exception:
            for where, posted in placed:
                await self._unpost(where, posted)
            raise

    async def _pressed(self, press: t.ButtonPress) -> Job | None:
        """The job a button names, if the presser may see it: their workspace's, or the result the
        button sits under (a channel shared with another workspace). None when not, and the presser
        is told it was not found."""
        job = await self.lookup.shown_in(
            t.press_actor(press), press.job_id, t.message_key(press.channel, press.message_ts)
        )
        if job is None:
            await self.poster.ephemeral(press.channel, press.user, NOT_FOUND)
        return job

    @guarded(_to_presser)
    async def on_edit_button(self, ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        press = t.button_press(body)
        job = await self._pressed(press)
        if job is None:
            return
        context = t.form_context(press, job.id)
        await self.ctx.client.views_open(
            trigger_id=press.trigger_id, view=blocks.edit_modal(context, len(job.result_media))
        )

    @guarded(_to_presser)
    async def on_delete(self, ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        press = t.button_press(body)
        actor = t.press_actor(press)
        owner = await self.lookup.job(actor, press.job_id)
        if owner is not None and owner.user_id != press.user:
            # Workspace admins are asked of Slack only when someone deletes another person's result.
            actor = replace(actor, admin=await self._is_admin(press.user))
        job = await results.deletable(self.lookup, actor, press.job_id)
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
        await results.forget(self.engine, job)

    # --- the message shortcut and the edit modal ------------------------------------------------

    @guarded(_to_shortcut_user)
    async def on_shortcut(self, ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        inv = t.shortcut_invocation(body)
        if not inv.file_ids:
            await self.poster.ephemeral(inv.channel, inv.user, NO_IMAGE)
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
        user = str(body["user"]["id"])
        ctx, team = sub.context, str(body["user"].get("team_id") or (body.get("team") or {}).get("id", ""))

        channel, thread_ts = str(ctx.get("channel", "")), str(ctx.get("thread_ts", ""))
        editor = t.actor(team, user, channel)

        async def submit(origin: dict[str, Any]) -> Job:
            refs, parent = await self._edit_references(editor, ctx, sub.image_index)
            refs += [ImageRef(url=u, typed=True) for u in parsed.urls]
            chat = self._chat(user, team, origin, parsed.request, refs, parent)
            return await make(self.engine, editor, chat, dedup_key=f"slack:{view.get('id', '')}")

        prompt = parsed.request.prompt
        await self._launch(
            channel=channel,
            thread_ts=thread_ts,
            user=user,
            verb=words.ASKED_TO_EDIT,
            prompt=prompt,
            submit=submit,
            team=team,
        )

    async def _edit_references(
        self, actor: Actor, ctx: dict[str, Any], index: int | None
    ) -> tuple[list[ImageRef], str | None]:
        """What the modal edits: a job's results, or the files of a message (our own workspace's
        results are taken from the store instead of being downloaded again; a file merely named like
        another workspace's result is a file like any other)."""
        if ctx.get("job_id"):
            shown = t.message_key(str(ctx.get("channel", "")), str(ctx.get("message_ts", "")))
            job = await self.lookup.shown_in(actor, str(ctx["job_id"]), shown)
            if job is None or not job.result_media:
                raise UserFacingError(NOT_FOUND)
            return result_references(job, index), job.id
        file_ids = [str(f) for f in ctx.get("file_ids") or []]
        if index is not None:
            file_ids = file_ids[index : index + 1]
        refs: list[ImageRef] = []
        parent = None
        for file_id in file_ids:
            info = (await self.ctx.client.files_info(file=file_id))["file"]
            own = t.parse_result_filename(str(info.get("name", "")))
            job = await self.lookup.job(actor, own[0]) if own else None
            if own and job is not None and own[1] < len(job.result_media):
                refs += result_references(job, own[1])
                parent = job.id
            else:
                refs += t.image_refs([info], self.ctx.bot_token, self.ctx.max_image_bytes)
        return refs, parent
