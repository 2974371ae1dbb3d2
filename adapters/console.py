"""The local console chat: one line of standard input is one message.

    /hidream <prompt> [flags]          make images
    /edit <file|job-id[#N]|last> <text>  edit an image (the console's way to reply to one)
    /subject save|list|show|delete     saved subjects (images kept under a name)
    /vary <job-id|last>                a variation of a result (same prompt, new seed)
    /final <job-id|last>               a --draft result rendered on the full model, same seed
    /upscale <job-id|last>             the result again at 2048 pixels on its long side
    /zoom 1.5|2 <job-id|last>          zoom out: the result in the middle of a larger scene
    /pan left|right|up|down <job-id|last>  a third more scene on one side
    /square <job-id|last>              the result centred in a square, the sides filled in
    /region <job-id|last>              a link to the region editor (a rectangle changed, the rest kept)
    /remix <job-id|last> <text>        the request again as changed (alone: prints it to change)
    /undo [job-id|last]                the version before becomes the one `last` edits
    /history [job-id|last]             the versions of a result's chain
    /quota                             how many images are left today
    /policy [ban <phrase> | ...]       the console's policy (the console's user is its operator)
    /kit save|list|show|delete|bind    style kits (a prompt's prefix and suffix, flags, a subject)
    /help

Personal defaults come from HIDREAM_CONSOLE_DEFAULTS (e.g. "--ar 16:9 --n 2"), stored for the
console's user at start, so the engine applies them as it does every surface's.

Images are written under the output directory and each path is printed on standard output;
progress and messages go to standard error, so the output can be piped. Messages are plain text: the
Markdown backticks the shared messages carry for Slack and Discord are taken out.
"""

from __future__ import annotations

import asyncio
import difflib
import re
import shutil
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any, TextIO

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from bot import words
from bot.jobs.engine import Engine
from bot.jobs.images import check_image, to_data_uri
from bot.jobs.preferences import parse_settings
from bot.jobs.runner import JobRunner
from bot.jobs.versions import ThreadCommand, Version
from bot.model.config import PluginSettings
from bot.model.errors import BadInput, UserFacingError
from bot.model.jobs import Job, OutputImage, Post, Progress
from bot.model.requests import ChatRequest, ImageRef, ParsedSet, parse_command, parse_set
from bot.plugins import Core, SurfacePlugin
from bot.usecases import drafts, kits, limits, region, remix, sets, settings, subject_commands, threads
from bot.usecases.access import Lookup
from bot.usecases.actions import Kind
from bot.usecases.actor import Actor, Reply
from bot.usecases.make import make, result_references
from bot.usecases.remake import remake
from bot.usecases.sets import set_requests
from bot.usecases.toolbox import PANS, ZOOMS, label, use_tool

# The provider the help names in its example.
EXAMPLE_PROVIDER = "fal"
HELP = words.help_at_the_console(EXAMPLE_PROVIDER)

PROMPT = "hidream> "
# Moves to the start of the line and clears it: a prompt waiting there gives way to a message.
CLEAR_LINE = "\r\x1b[K"
# A job id prefix (or `last`) with an image number: `3f2a9c1e#2` is the second image of that job,
# `3f2a9c1e#all` all of them.
_NUMBERED = re.compile(r"^(?P<job>[^#]+)#(?P<index>\d+|all)$")


def plain(text: str) -> str:
    """A shared message as the console shows it: its place is this console, and Markdown's inline code
    marks (for Slack and Discord) are removed."""
    return words.at_the_console(text)


def pixel_sizes(images: list[OutputImage]) -> str:
    """The delivered sizes, e.g. `1344x768` (each distinct one once, in order)."""
    return ", ".join(dict.fromkeys(f"{i.width}x{i.height}" for i in images))


def _save(image: OutputImage, path: Path) -> None:
    """Write the image to `path` whole or not at all; from its file when it has one (copied in chunks)."""
    tmp = path.with_suffix(path.suffix + ".part")
    if image.file is not None:
        shutil.copyfile(image.file, tmp)
    else:
        tmp.write_bytes(image.data)
    tmp.replace(path)


class ConsoleChat:
    name = "console"

    def __init__(
        self,
        engine: Engine,
        output_dir: Path,
        *,
        runner: JobRunner,
        stdin: TextIO | None = None,
        out: TextIO | None = None,
        err: TextIO | None = None,
        user_id: str = "local",
        defaults: str = "",
        server_url: str = "",
    ) -> None:
        self.engine = engine
        self.runner = runner  # the worker, to wait on the jobs this console started
        self.output_dir = output_dir
        self.stdin = stdin or sys.stdin
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.user_id = user_id
        self.defaults = defaults
        self.server_url = server_url
        self.last_job_id: str | None = None
        self.failures = 0
        # The jobs this console started (or resumed) that have not ended: what Ctrl-C leaves for later.
        self.unfinished: set[str] = set()
        # The prompt is waiting at the end of the terminal's last line: a message first clears it, then
        # draws it again below (only where standard error is a terminal that can clear a line).
        self._prompt_shown = False
        self._commands: dict[str, Callable[[str], Awaitable[None]]] = {
            "/hidream": self._generate,
            "/edit": self._edit,
            "/subject": lambda rest: self._subject(rest.split()),
            "/vary": self._vary,
            "/final": self._final,
            **{tool: partial(self._tool_line, tool) for tool in ("/upscale", "/zoom", "/pan", "/square")},
            "/region": self._region,
            "/remix": self._remix,
            "/undo": lambda rest: self._thread_command("undo", rest.strip() or "last"),
            "/history": lambda rest: self._thread_command("history", rest.strip() or "last"),
            "/quota": self._quota,
            "/policy": self._policy,
            "/kit": lambda rest: self._reply(kits.command(self.engine.kits, self.actor, rest)),
            "/help": self._help,
        }

    @property
    def commands(self) -> list[str]:
        """The commands the console takes, as typed."""
        return list(self._commands)

    async def __aenter__(self) -> ConsoleChat:
        # The settings are the console's defaults: kept (or cleared) where the engine reads everyone's.
        await settings.settings(self.engine, self.actor, self.defaults or "reset")
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    # --- the Surface protocol ------------------------------------------------------------------------

    async def deliver(self, job: Job, images: list[OutputImage]) -> list[Post]:
        self.output_dir.mkdir(parents=True, exist_ok=True)
        for index, image in enumerate(images, start=1):
            # Named by job id: delivering the same job again rewrites the same files.
            path = self.output_dir / f"{job.id}-{index}.{image.extension}"
            await asyncio.to_thread(_save, image, path)
            with self._above_the_prompt():
                print(str(path), file=self.out, flush=True)
        self.unfinished.discard(job.id)
        done = words.saved_files(
            len(images), job.provider, job.seed, job.tier, pixel_sizes(images), job.id[:8]
        )
        kit = words.kit_used(job.request.kit, job.request.kit_version)
        self._say(f"[{job.id[:8]}] {done}" + (f" ({kit})" if kit else ""))
        # The console has no threads: a chain of edits is one, named by its first job.
        return [Post(message_key=job.id, thread_key=await self.engine.versions.thread_for(job))]

    async def followup_origin(self, parent: Job, thread_key: str | None) -> dict[str, Any] | None:
        """A region edit's result is written and printed like any other's."""
        return {}

    async def tell(self, job: Job, text: str) -> None:
        self.failures += 1
        self.unfinished.discard(job.id)
        self._say(f"[{job.id[:8]}] {text}")

    async def progress(self, job: Job, progress: Progress) -> None:
        self.unfinished.add(job.id)  # (a job resumed from an earlier run, too)
        # The console writes files: nothing is uploaded.
        line = words.progress(
            progress.stage, progress.elapsed, progress.queue_position, delivering=words.SAVING
        )
        self._say(f"[{job.id[:8]}] {line}")

    # --- reading commands -------------------------------------------------------------------------

    async def run_until_done(self) -> int:
        """Read commands until standard input ends, wait for the jobs to finish; 1 if any failed.
        Stopped (Ctrl-C), it says how many of its jobs are left for the next start."""
        if self.stdin.isatty():
            self._say(words.console_greeting(self.engine.provider.name, self.server_url))
        try:
            await self.run()
        except asyncio.CancelledError:
            if self._prompt_shown:
                self._prompt_shown = False
                print(file=self.err)  # the terminal shows ^C after the prompt
            self._say(words.stopped(len(self.unfinished)))
            raise
        return 1 if self.failures else 0

    def _prompt(self) -> None:
        """Ask for the next line, only when a person types them: a script's stderr stays as it was."""
        if self.stdin.isatty():
            print(PROMPT, end="", file=self.err, flush=True)
            self._prompt_shown = _is_terminal(self.err)

    def _above_the_prompt(self) -> _AbovePrompt:
        return _AbovePrompt(self)

    async def run(self) -> None:
        """Read commands until standard input ends, then wait for the jobs to finish."""
        lines: asyncio.Queue[str | None] = asyncio.Queue()
        loop = asyncio.get_running_loop()

        def pump() -> None:
            for line in self.stdin:
                # Enter moved the terminal to a new line: the prompt is no longer the last thing on it.
                self._prompt_shown = False
                loop.call_soon_threadsafe(lines.put_nowait, line)
            self._prompt_shown = False
            loop.call_soon_threadsafe(lines.put_nowait, None)

        # A daemon thread: a blocked read never keeps the process alive at exit.
        threading.Thread(target=pump, name="console-stdin", daemon=True).start()
        self._prompt()
        while (line := await lines.get()) is not None:
            await self.handle(line)
            self._prompt()
        if self.stdin.isatty():
            print(file=self.err, flush=True)  # Ctrl-D leaves the cursor after the prompt
        await self.runner.wait_idle()

    async def handle(self, line: str) -> None:
        line = line.strip()
        if not line or line.startswith("#"):
            return
        command, _, rest = line.partition(" ")
        act = self._commands.get(command)
        try:
            if act is None:
                self._say(self._unknown(command, rest))
            else:
                await act(rest)
        except UserFacingError as exc:
            self.failures += 1
            self._say(f"✗ {exc.user_message}")

    def _unknown(self, command: str, rest: str) -> str:
        """One line for a line that is no command: the command it may have meant, written out."""
        if not command.startswith("/"):
            return words.did_you_mean(f"/hidream {command} {rest}".strip(), instead_of=None)
        near = difflib.get_close_matches(command.lower(), self._commands, n=1, cutoff=0.6)
        if not near:
            return words.unknown_command(command)
        return words.did_you_mean(f"{near[0]} {rest}".strip(), instead_of=command)

    async def _reply(self, reply: Awaitable[Reply]) -> None:
        self._say((await reply).text)

    async def _quota(self, rest: str) -> None:
        self._say((await limits.usage(self.engine, self.actor)).text)

    async def _policy(self, rest: str) -> None:
        self._say((await settings.policy(self.engine, self.actor, rest, spoilers=False)).text)

    async def _tool_line(self, command: str, rest: str) -> None:
        await self._tool(command, rest.split())

    async def _help(self, rest: str) -> None:
        self._say(words.help_at_the_console(EXAMPLE_PROVIDER, sandbox="sandbox" in self.engine.providers))

    async def _generate(self, text: str) -> None:
        parsed = parse_set(text)
        base = ChatRequest(**self._who(), request=parsed.first.request)
        await self._submit_set(parsed, base)

    async def _submit_set(self, parsed: ParsedSet, base: ChatRequest) -> None:
        """One job, or a set of them (`{a, b}` choices, `--repeat`): a set of more than a few is made
        only with `--yes`, and then all of it or nothing."""
        chats = set_requests(parsed, base, _typed_references)
        if len(chats) == 1:
            await self._submit(chats[0])
            return
        outcome = await sets.make_set(
            self.engine, self.actor, chats, confirmed=parsed.confirmed, can_ask=False
        )
        if outcome.waiting is not None:
            self.failures += 1
            self._say(f"✗ {outcome.waiting.text}")
            return
        self._say(words.set_accepted(len(outcome.jobs)))
        for job in outcome.jobs:
            self.last_job_id = job.id
            self._say(f"[{job.id[:8]}] {words.accepted(job.mode, job.request.n, job.seed)}")

    async def _final(self, text: str) -> None:
        target = text.strip()
        if not target:
            self._say(words.FINAL_USAGE)
            return
        job = await self._result(target)
        made = await drafts.final(self.engine, self.actor, job, origin={})
        self.last_job_id = made.id
        self._say(f"[{made.id[:8]}] {words.final_accepted(job.id[:8], made.seed)}")

    async def _edit(self, text: str) -> None:
        target, _, instruction = text.strip().partition(" ")
        if not target:
            self._say(words.EDIT_USAGE)
            return
        try:
            parsed = parse_set(instruction)
        except BadInput:
            if _has_prompt(instruction):
                raise
            raise BadInput(words.EDIT_EXAMPLE) from None
        refs, parent = await self._edit_target(target, one=True)
        base = ChatRequest(**self._who(), request=parsed.first.request, references=refs, parent_job_id=parent)
        await self._submit_set(parsed, base)

    async def _edit_target(self, target: str, *, one: bool = False) -> tuple[list[ImageRef], str | None]:
        """The images `target` names: a file, a job's images, one of them (`job#2`) or all (`job#all`).
        `one`: an edit, which takes one image of a job of several (its first unless numbered) and says
        which: editing one of several is what a person means; `#all` combines them (personalization)."""
        path = Path(target).expanduser()  # noqa: ASYNC240 (no I/O: only joins the home directory)
        if await asyncio.to_thread(path.is_file):
            data = await asyncio.to_thread(path.read_bytes)
            await check_image(data, max_bytes=self.engine.settings.max_image_bytes, name=str(path))
            return [ImageRef(url=to_data_uri(data, "application/octet-stream"), filename=path.name)], None
        numbered = _NUMBERED.match(target)
        job = await self._result(numbered["job"] if numbered else target)
        count = len(job.result_media)
        chosen = numbered["index"] if numbered else ("1" if one else "all")
        if chosen == "all" or (count == 1 and numbered is None):
            return result_references(job), job.id
        index = int(chosen)
        if not 1 <= index <= count:
            raise UserFacingError(words.choose_image(job.id[:8], count))
        if numbered is None:
            self._say(f"[{job.id[:8]}] {words.editing_first_of(job.id[:8], count)}")
        return result_references(job, index - 1), job.id

    async def _result(self, target: str) -> Job:
        """The finished job `target` names; `last`: the current version of the last job's chain
        (after /undo, the version before)."""
        job_id = self.last_job_id if target == "last" else target
        job = await self._find_job(job_id) if job_id else None
        if job is not None and not job.result_media:
            # A script may ask to edit a result that is still being made: wait for it, as a person would.
            job = await self.runner.wait_job(job.id)
        if target == "last" and (job is None or not job.result_media):
            raise UserFacingError(words.NOTHING_MADE_YET)
        if job is None or not job.result_media:
            raise UserFacingError(words.no_such_target(target))
        thread = await self.engine.versions.thread_of(self.name, job.id)
        if target == "last" and thread is not None:
            job = await self.engine.versions.current(self.name, thread) or job
        return job

    async def _vary(self, text: str) -> None:
        target = text.strip()
        if not target:
            self._say(words.VARY_USAGE)
            return
        job = await self._result(target)
        made = await remake(self.engine, self.actor, job, vary=True, origin={})
        self.last_job_id = made.id
        self._say(f"[{made.id[:8]}] {words.accepted_variation(job.id[:8], made.seed)}")

    async def _tool(self, command: str, args: list[str]) -> None:
        """`/upscale <job>`, `/zoom 1.5|2 <job>`, `/pan left|right|up|down <job>`, `/square <job>`."""
        kind: Kind | None
        if command in ("/upscale", "/square"):
            kind = Kind.UPSCALE if command == "/upscale" else Kind.SQUARE
            usage = words.UPSCALE_USAGE if command == "/upscale" else words.SQUARE_USAGE
            target = args[0] if len(args) == 1 else None
        else:
            table = ZOOMS if command == "/zoom" else PANS
            usage = words.ZOOM_USAGE if command == "/zoom" else words.PAN_USAGE
            kind = table.get(args[0].lower()) if len(args) == 2 else None
            target = args[1] if kind is not None else None
        if kind is None or target is None:
            raise BadInput(usage)
        job = await self._result(target)
        made = await use_tool(self.engine, self.actor, job, kind, origin={})
        self.last_job_id = made.job.id
        if made.note:
            self._say(f"[{made.job.id[:8]}] {made.note}")
        self._say(f"[{made.job.id[:8]}] {words.accepted_tool(label(kind), job.id[:8], made.job.seed)}")

    async def _region(self, text: str) -> None:
        """`/region <job>`: the link to the region editor for the result's first image."""
        args = text.split()
        if len(args) != 1:
            raise BadInput(words.REGION_USAGE)
        job = await self._result(args[0])
        self._say((await region.region_link(self.engine, self.actor, job, now=time.time())).text)

    async def _remix(self, text: str) -> None:
        """`/remix <job> <text>`: the text is the whole request (the image kept unless --fresh); with no
        text, the job's request as typed, to change and send again."""
        target, _, rest = text.strip().partition(" ")
        if not target:
            raise BadInput(words.REMIX_USAGE)
        if not rest.strip():
            job = await self._result(target)
            self._say(words.remix_line(job.id[:8], remix.form(job).text))
            return
        # A bad flag is refused before anything is looked up or waited for.
        asked = remix.read(rest, keep=True)
        job = await self._result(target)
        made = await remix.remix(self.engine, self.actor, job, asked, origin={})
        self.last_job_id = made.id
        self._say(f"[{made.id[:8]}] {words.accepted_remix(job.id[:8], asked.keep, made.seed)}")

    async def _thread_command(self, command: ThreadCommand, target: str) -> None:
        job = await self._result(target)
        thread = await self.engine.versions.thread_of(self.name, job.id)
        if thread is None:
            raise UserFacingError(words.no_chain(job.id[:8]))
        files = await asyncio.to_thread(lambda: sorted(self.output_dir.glob("*")))

        def link(v: Version) -> str:
            return " ".join(str(f) for f in files if f.name.startswith(f"{v.job.id}-")) or v.job.id[:8]

        reply = await threads.thread_command(self.engine.versions, self.actor, command, thread, link)
        self._say(reply.text)

    async def _subject(self, args: list[str]) -> None:
        action, name = [*args, "", ""][:2]
        book, actor = self.engine.subjects, self.actor
        if action == "list":
            self._say((await subject_commands.listing(book, actor)).text)
        elif action == "save" and name:
            refs: list[ImageRef] = []
            for target in args[2:]:
                refs += (await self._edit_target(target))[0]
            self._say((await subject_commands.save(book, actor, name, refs)).text)
        elif action == "show" and name:
            shown = await subject_commands.show(book, actor, name)
            self.output_dir.mkdir(parents=True, exist_ok=True)
            for picture in shown.images:
                path = self.output_dir / f"subject-{picture.name}"
                await asyncio.to_thread(path.write_bytes, picture.data)
                print(str(path), file=self.out, flush=True)
        elif action == "delete" and name:
            self._say((await subject_commands.delete(book, actor, name)).text)
        else:
            raise UserFacingError(words.SUBJECT_USAGE)

    async def _find_job(self, key: str) -> Job | None:
        return await Lookup(self.engine).job_by_key(self.actor, key)

    @property
    def actor(self) -> Actor:
        # The console's user is its operator, so it manages its own tenant.
        return Actor(
            surface=self.name, workspace_id="local", user_id=self.user_id, admin=True, moderator=True
        )

    async def _submit(self, chat: ChatRequest) -> None:
        job = await make(self.engine, self.actor, chat)
        self.last_job_id = job.id
        self.unfinished.add(job.id)
        self._say(f"[{job.id[:8]}] {words.accepted(job.mode, job.request.n, job.seed)}")

    def _who(self) -> dict[str, str]:
        return {"surface": self.name, "user_id": self.user_id, "workspace_id": "local"}

    def _say(self, text: str) -> None:
        with self._above_the_prompt():
            print(plain(text), file=self.err, flush=True)


class _AbovePrompt:
    """Writes go above a waiting prompt: the prompt's line is cleared first and the prompt drawn again
    after, so it stays the last line (what a person types after it is still read)."""

    def __init__(self, chat: ConsoleChat) -> None:
        self.chat = chat
        self.shown = False

    def __enter__(self) -> None:
        self.shown = self.chat._prompt_shown
        if self.shown:
            print(CLEAR_LINE, end="", file=self.chat.err, flush=True)

    def __exit__(self, *exc: object) -> None:
        if self.shown:
            print(PROMPT, end="", file=self.chat.err, flush=True)


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except ValueError:  # closed
        return False


def _typed_references(urls: list[str]) -> list[ImageRef]:
    return [ImageRef(url=u, typed=True) for u in urls]


def _has_prompt(instruction: str) -> bool:
    """Whether an instruction that did not parse had words to say what to change (else its error is
    that it said nothing, which `/edit`'s own example explains better)."""
    try:
        parse_command(instruction + " x")
    except BadInput:
        return True
    return False


class ConsoleSettings(PluginSettings):
    model_config = SettingsConfigDict(env_prefix="HIDREAM_")

    # Where the console writes images.
    output_dir: Path = Field(default=Path("./hidream-output"))
    # The console user's defaults for every /hidream, written as flags (bot/jobs/preferences.py).
    console_defaults: str = ""

    @field_validator("console_defaults")
    @classmethod
    def _valid_defaults(cls, value: str) -> str:
        try:
            parse_settings(value)
        except BadInput as exc:
            raise ValueError(exc.user_message) from None
        return value


class ConsolePlugin(SurfacePlugin[ConsoleSettings]):
    """The console starts when no chat platform is configured."""

    name = "console"
    settings_class = ConsoleSettings
    fallback = True

    def enabled(self, settings: ConsoleSettings) -> bool:
        return True

    def build(self, core: Core, settings: ConsoleSettings) -> ConsoleChat:
        return ConsoleChat(
            core.engine,
            settings.output_dir,
            runner=core.runner,
            defaults=settings.console_defaults,
            server_url=core.server.url,
        )

    def summary(self, settings: ConsoleSettings) -> str:
        return "console (no chat credentials set)"


plugin = ConsolePlugin()
