"""The local console chat: one line of standard input is one message.

    /hidream <prompt> [flags]          make images
    /edit <file|job-id|last> <text>    edit an image (the console's way to reply to one)
    /quota                             how many images are left today
    /help

Images are written under the output directory and each path is printed on standard output;
progress and messages go to standard error, so the output can be piped.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from pathlib import Path
from typing import TextIO

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from bot.config import PluginSettings
from bot.engine import Engine
from bot.errors import UserFacingError
from bot.jobs import Job, OutputImage, Post, Progress
from bot.media import to_data_uri
from bot.plugins import Core, SurfacePlugin
from bot.requests import ChatRequest, ImageRef, parse_command

HELP = """Commands:
  /hidream <prompt> [--ar W:H | --size WxH|preset] [--seed N] [--steps N] [--cfg X] [--n 1-4]
           [--format png|jpeg|webp] [--model full|dev] [--keep-aspect] [--provider NAME]
  --provider NAME  one of the configured providers, e.g. `/hidream a red fox --provider fal`
  /edit <image file | job id | last> <what to change> [flags]
  /quota
  /help"""


class ConsoleChat:
    name = "console"

    def __init__(
        self,
        engine: Engine,
        output_dir: Path,
        *,
        stdin: TextIO | None = None,
        out: TextIO | None = None,
        err: TextIO | None = None,
        user_id: str = "local",
    ) -> None:
        self.engine = engine
        self.output_dir = output_dir
        self.stdin = stdin or sys.stdin
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.user_id = user_id
        self.last_job_id: str | None = None
        self.failures = 0

    async def __aenter__(self) -> ConsoleChat:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    # --- the Surface protocol ------------------------------------------------------------------------

    async def deliver(self, job: Job, images: list[OutputImage]) -> list[Post]:
        self.output_dir.mkdir(parents=True, exist_ok=True)
        for index, image in enumerate(images, start=1):
            # Named by job id: delivering the same job again rewrites the same files.
            path = self.output_dir / f"{job.id}-{index}.{image.extension}"
            tmp = path.with_suffix(path.suffix + ".part")
            tmp.write_bytes(image.data)
            tmp.replace(path)
            print(str(path), file=self.out, flush=True)
        self._say(
            f"[{job.id[:8]}] done: {len(images)} image(s) by {job.provider}, seed {job.seed}, {job.tier} model, "
            f"{job.request.size_label()}. Edit with: /edit {job.id[:8]} <what to change>"
        )
        return [Post(message_key=job.id)]

    async def tell(self, job: Job, text: str) -> None:
        self.failures += 1
        self._say(f"[{job.id[:8]}] {text}")

    async def progress(self, job: Job, progress: Progress) -> None:
        self._say(f"[{job.id[:8]}] {progress.text()}")

    # --- reading commands -------------------------------------------------------------------------

    async def run_until_done(self) -> int:
        """Read commands until standard input ends, wait for the jobs to finish; 1 if any failed."""
        if self.stdin.isatty():
            self._say(
                f"hidream-bot console on the {self.engine.provider.name} provider. "
                "Try: /hidream a red fox in snow --ar 16:9   (/help for more, Ctrl-D to quit)"
            )
        await self.run()
        return 1 if self.failures else 0

    async def run(self) -> None:
        """Read commands until standard input ends, then wait for the jobs to finish."""
        lines: asyncio.Queue[str | None] = asyncio.Queue()
        loop = asyncio.get_running_loop()

        def pump() -> None:
            for line in self.stdin:
                loop.call_soon_threadsafe(lines.put_nowait, line)
            loop.call_soon_threadsafe(lines.put_nowait, None)

        # A daemon thread: a blocked read never keeps the process alive at exit.
        threading.Thread(target=pump, name="console-stdin", daemon=True).start()
        while (line := await lines.get()) is not None:
            await self.handle(line)
        await self.engine.wait_idle()

    async def handle(self, line: str) -> None:
        line = line.strip()
        if not line or line.startswith("#"):
            return
        command, _, rest = line.partition(" ")
        try:
            if command == "/hidream":
                await self._generate(rest)
            elif command == "/edit":
                await self._edit(rest)
            elif command == "/quota":
                status = await self.engine.quota(self.name, self.user_id, "local")
                self._say(status.text())
            elif command == "/help":
                self._say(HELP)
            else:
                self._say(f"Unknown command {command!r}.\n{HELP}")
        except UserFacingError as exc:
            self.failures += 1
            self._say(f"✗ {exc.user_message}")

    async def _generate(self, text: str) -> None:
        parsed = parse_command(text)
        refs = [ImageRef(url=u, typed=True) for u in parsed.urls]
        await self._submit(ChatRequest(**self._who(), request=parsed.request, references=refs))

    async def _edit(self, text: str) -> None:
        target, _, instruction = text.strip().partition(" ")
        if not target:
            self._say("Usage: /edit <image file | job id | last> <what to change>")
            return
        parsed = parse_command(instruction)
        refs, parent = await self._edit_target(target)
        await self._submit(
            ChatRequest(
                **self._who(),
                request=parsed.request,
                references=refs + [ImageRef(url=u, typed=True) for u in parsed.urls],
                parent_job_id=parent,
            )
        )

    async def _edit_target(self, target: str) -> tuple[list[ImageRef], str | None]:
        path = Path(target).expanduser()  # noqa: ASYNC240 (no I/O: only joins the home directory)
        if await asyncio.to_thread(path.is_file):
            data = await asyncio.to_thread(path.read_bytes)
            return [ImageRef(url=to_data_uri(data, "application/octet-stream"), filename=path.name)], None
        job_id = self.last_job_id if target == "last" else target
        job = await self._find_job(job_id) if job_id else None
        if job is not None and not job.result_media:
            # A script may ask to edit a result that is still being made: wait for it, as a person would.
            job = await self.engine.wait_job(job.id)
        if job is None or not job.result_media:
            raise UserFacingError(
                f"{target!r} is neither an image file nor a finished job: give a path, a job id, or `last`."
            )
        return self.engine.references_of(job), job.id

    async def _find_job(self, key: str) -> Job | None:
        if len(key) == 32:
            return await self.engine.job(key)
        return await self.engine.store.job_by_prefix(key, surface=self.name)

    async def _submit(self, chat: ChatRequest) -> None:
        job = await self.engine.submit(chat)
        self.last_job_id = job.id
        self._say(f"[{job.id[:8]}] accepted: {job.mode}, {job.request.n} image(s), seed {job.seed}")

    def _who(self) -> dict[str, str]:
        return {"surface": self.name, "user_id": self.user_id, "workspace_id": "local"}

    def _say(self, text: str) -> None:
        print(text, file=self.err, flush=True)


class ConsoleSettings(PluginSettings):
    model_config = SettingsConfigDict(env_prefix="HIDREAM_")

    # Where the console writes images.
    output_dir: Path = Field(default=Path("./hidream-output"))


class ConsolePlugin(SurfacePlugin[ConsoleSettings]):
    """The console starts when no chat platform is configured."""

    name = "console"
    settings_class = ConsoleSettings
    fallback = True

    def enabled(self, settings: ConsoleSettings) -> bool:
        return True

    def build(self, core: Core, settings: ConsoleSettings) -> ConsoleChat:
        return ConsoleChat(core.engine, settings.output_dir)

    def summary(self, settings: ConsoleSettings) -> str:
        return "console (no chat credentials set)"


plugin = ConsolePlugin()
