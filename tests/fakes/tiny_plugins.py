"""A tiny chat surface and a tiny provider, plugged in the way a third party would: each is an
object found through its entry point, with its own settings. The core names neither."""

from __future__ import annotations

import io

from PIL import Image
from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from bot.jobs.engine import Engine
from bot.jobs.images import to_data_uri
from bot.jobs.runner import JobRunner
from bot.model.config import PluginSettings, Settings
from bot.model.jobs import Job, OutputImage, Post, Progress
from bot.model.requests import ChatRequest, ImageRequest, Tier, parse_command
from bot.plugins import Core, SurfacePlugin
from bot.providers.base import Provider, ProviderStatus, ResultImage, SubmitSpec
from bot.providers.plugin import ProviderContext, ProviderPlugin


class TinyChatSettings(PluginSettings):
    model_config = SettingsConfigDict(env_prefix="TINYCHAT_")

    token: SecretStr | None = None
    prompt: str = "a tiny fox --seed 3"


class TinyChat:
    """Sends one request when it runs, prints what it is given, and ends the bot when done."""

    name = "tinychat"

    def __init__(self, engine: Engine, runner: JobRunner, prompt: str) -> None:
        self.engine = engine
        self.runner = runner
        self.prompt = prompt
        self.entered = False

    async def __aenter__(self) -> TinyChat:
        self.entered = True
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.entered = False

    async def deliver(self, job: Job, images: list[OutputImage]) -> list[Post]:
        sizes = ", ".join(f"{i.width}x{i.height}" for i in images)
        print(f"tinychat got {len(images)} image(s) of job {job.id} from {job.provider}: {sizes}")
        return [Post(message_key=job.id)]

    async def tell(self, job: Job, text: str) -> None:
        print(f"tinychat was told: {text}")

    async def progress(self, job: Job, progress: Progress) -> None:
        return None

    async def run_until_done(self) -> int:
        assert self.entered, "the bot runs a surface only once it was entered"
        parsed = parse_command(self.prompt)
        chat = ChatRequest(surface=self.name, user_id="t1", workspace_id="tw", request=parsed.request)
        job = await self.engine.submit(chat)
        done = await self.runner.wait_job(job.id)
        return 0 if done is not None and done.state == "delivered" else 1


class TinyChatPlugin(SurfacePlugin[TinyChatSettings]):
    name = "tinychat"
    settings_class = TinyChatSettings
    fallback = False

    def enabled(self, settings: TinyChatSettings) -> bool:
        return settings.token is not None

    def build(self, core: Core, settings: TinyChatSettings) -> TinyChat:
        return TinyChat(core.engine, core.runner, settings.prompt)

    def summary(self, settings: TinyChatSettings) -> str:
        return "tinychat (a test surface)"

    def warnings(self, settings: TinyChatSettings) -> list[str]:
        return [] if settings.token is not None else ["TINYCHAT_TOKEN is empty: tinychat stays off"]


class TinyGenSettings(PluginSettings):
    model_config = SettingsConfigDict(env_prefix="TINYGEN_")

    key: SecretStr | None = None
    color: str = "teal"


class TinyGen(Provider):
    """Finishes every job at once with a solid square, handed back as a data: URI."""

    name = "tinygen"
    accepts_data_uris = True
    poll_interval = 0.01

    def __init__(self, color: str) -> None:
        self.color = color
        self.submitted: list[SubmitSpec] = []

    def cost_usd(self, request: ImageRequest, tier: Tier) -> float:
        return 0.0

    def describe(self) -> list[str]:
        return [f"tinygen: solid {self.color} squares, in process"]

    async def submit(self, spec: SubmitSpec) -> str:
        self.submitted.append(spec)
        return f"tiny-{len(self.submitted)}"

    async def status(self, provider_job_id: str) -> ProviderStatus:
        buf = io.BytesIO()
        Image.new("RGB", (40, 30), self.color).save(buf, "PNG")
        return ProviderStatus(
            state="completed", images=[ResultImage(to_data_uri(buf.getvalue(), "image/png"))]
        )


class TinyGenPlugin(ProviderPlugin[TinyGenSettings]):
    name = "tinygen"
    settings_class = TinyGenSettings
    preference = 0
    fallback = False

    def configured(self, settings: TinyGenSettings) -> bool:
        return settings.key is not None

    def missing(self, settings: TinyGenSettings) -> str | None:
        return None if settings.key is not None else "TINYGEN_KEY"

    def build(self, context: ProviderContext, settings: TinyGenSettings) -> TinyGen:
        return TinyGen(settings.color)

    def warnings(self, settings: TinyGenSettings, core: Settings) -> list[str]:
        return [f"tinygen paints only {settings.color}"]


surface = TinyChatPlugin()
provider = TinyGenPlugin()


def entry_points_txt() -> str:
    """The entry points a distribution of these plugins declares."""
    return (
        "[hidream_bot.surfaces]\ntinychat = tests.fakes.tiny_plugins:surface\n\n"
        "[hidream_bot.providers]\ntinygen = tests.fakes.tiny_plugins:provider\n"
    )
