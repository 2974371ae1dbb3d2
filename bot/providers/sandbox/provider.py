"""The sandbox: a local stand-in for a HiDream provider, and the client the bot uses to talk to it.

`SandboxService` (sandbox_service.py) is the "remote" side, mounted on the bot's own HTTP server under
/sandbox/, so a job takes the same path as with a real provider: submit over HTTP, then a callback or
polling, then image downloads. Its pictures are Pillow placeholders with a SANDBOX mark
(sandbox_art.py); its jobs are files in `state_dir` (sandbox_jobs.py), written before the submit is
answered, so a bot killed at any moment can still poll them, and their callbacks are sent once it is
back.

It is meant for one machine: it refuses to start behind a non-loopback HIDREAM_HTTP_HOST unless
HIDREAM_SANDBOX_ALLOW_REMOTE is set, its bearer token is made anew by each process, and it sends
requests only to the bot's own server. Old jobs are swept from memory and disk.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from aiohttp import web
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from bot.model.config import PluginSettings, Settings
from bot.model.errors import ConfigError, ProviderBusy, UnreadableAnswer
from bot.model.requests import DEV_STEPS_MAX, ImageRequest, Tier
from bot.providers.base import (
    HttpProvider,
    Provider,
    ProviderStatus,
    ResultImage,
    RetryPolicy,
    Sleep,
    State,
    SubmitSpec,
)
from bot.providers.capabilities import BOT_GUIDANCE, BOT_STEPS, Capabilities, Span
from bot.providers.plugin import ProviderContext, ProviderPlugin
from bot.providers.sandbox.jobs import OwnServer, SandboxJob
from bot.providers.sandbox.service import DAY, SandboxService
from bot.transport import Transport

# --- the client -------------------------------------------------------------------------------------

_STATES: dict[str, State] = {
    "queued": "queued",
    "processing": "running",
    "completed": "completed",
    "failed": "failed",
}


# The sandbox's own offer: every mode on both tiers, any size the bot asks for; it draws a placeholder
# and takes the knobs' values without using them (no negative prompt: no real provider documents one).
CAPABILITIES = Capabilities(
    name="sandbox",
    label="Sandbox",
    models={
        (mode, tier): f"placeholder ({tier})"
        for mode in ("text-to-image", "edit")
        for tier in ("full", "dev")
    },
    sizes="any WxH, each side 256 to 2048",
    price="free: local placeholder images marked SANDBOX, not HiDream",
    steps={"full": Span(*BOT_STEPS), "dev": Span(1, DEV_STEPS_MAX)},
    guidance={"full": Span(*BOT_GUIDANCE), "dev": Span(*BOT_GUIDANCE)},
    keep_aspect=True,
)


class SandboxSettings(PluginSettings):
    model_config = SettingsConfigDict(env_prefix="HIDREAM_SANDBOX_")

    # Seconds the sandbox waits before finishing a job (0: at once).
    delay_seconds: float = Field(default=0.5, ge=0)
    # Let the sandbox run on a server that listens beyond loopback (HIDREAM_HTTP_HOST).
    allow_remote: bool = False


class SandboxProvider(HttpProvider[SandboxSettings]):
    """Talks to a SandboxService (normally the bot's own server) like to any real provider. When it is
    given the service, it starts and stops it with itself and uses its token; else `token`."""

    name = "sandbox"
    settings_class = SandboxSettings
    signs_callbacks = False
    accepts_data_uris = True
    poll_interval = 0.25
    capabilities = CAPABILITIES

    def __init__(
        self,
        settings: Settings,
        client: Transport,
        *,
        base_url: str,
        options: SandboxSettings | None = None,
        service: SandboxService | None = None,
        token: str | None = None,
        retry: RetryPolicy | None = None,
        sleep: Sleep | None = None,
    ) -> None:
        super().__init__(settings, client, options=options, retry=retry, sleep=sleep)
        self.base_url = base_url.rstrip("/")
        self.service = service
        self.token = service.token if service is not None else token

    async def __aenter__(self) -> SandboxProvider:
        if self.service is not None:
            await self.service.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.service is not None:
            await self.service.__aexit__(*exc)

    def cost_usd(self, request: ImageRequest, tier: Tier) -> float:
        return 0.0

    def describe(self) -> list[str]:
        return [
            "sandbox: a local placeholder provider, not HiDream; its images are marked SANDBOX",
            f"submit: POST {self.base_url}/v1/images",
            f"status: GET {self.base_url}/v1/images/{{id}}",
            f"files:  GET {self.base_url}/v1/files/{{id}}/{{index}}.{{format}}",
        ]

    async def submit(self, spec: SubmitSpec) -> str:
        request = spec.request
        width, height = request.dimensions()
        body: dict[str, Any] = {
            "prompt": request.prompt,
            "width": width,
            "height": height,
            "seed": request.seed if request.seed is not None else 0,
            "num_images": request.n,
            "output_format": request.format,
            "model": spec.tier,
            "reference_image_urls": list(spec.reference_urls),
            "keep_original_aspect": request.keep_aspect,
        }
        if spec.callback_url:
            body["webhook_url"] = spec.callback_url
        answer = await self.call(
            "POST", f"{self.base_url}/v1/images", idempotent=False, json=body, headers=self._auth(),
            key_name="(sandbox)",
        )  # fmt: skip
        job_id = answer.get("id") if isinstance(answer, dict) else None
        if not isinstance(job_id, str) or not job_id:
            raise UnreadableAnswer(
                "The sandbox sent an answer that could not be read.", detail="no id in submit answer"
            )
        return job_id

    async def status(self, provider_job_id: str) -> ProviderStatus:
        answer = await self.call(
            "GET", f"{self.base_url}/v1/images/{quote(provider_job_id, safe='')}", idempotent=True,
            headers=self._auth(), key_name="(sandbox)",
        )  # fmt: skip
        state = _STATES.get(answer.get("status", "")) if isinstance(answer, dict) else None
        if state is None:
            raise ProviderBusy("The sandbox sent a status that could not be read.", detail=str(answer)[:200])
        urls = answer.get("images") or []
        seed = answer.get("seed")
        return ProviderStatus(
            state=state,
            images=[ResultImage(url=u) for u in urls if isinstance(u, str)] if state == "completed" else [],
            error=(answer.get("error") or "The sandbox job failed.") if state == "failed" else None,
            seed=seed if isinstance(seed, int) else None,
        )

    async def parse_callback(
        self, provider_job_id: str | None, headers: Mapping[str, str], body: bytes
    ) -> ProviderStatus | None:
        # Sandbox callbacks are unsigned: only a hint to read the status.
        return None

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}


class SandboxPlugin(ProviderPlugin[SandboxSettings]):
    """Needs no account: the provider when no other is configured. Its fake API lives on the bot's
    own server under /sandbox/, its jobs in a folder beside the database."""

    name = "sandbox"
    settings_class = SandboxSettings
    preference = 1000
    fallback = True
    capabilities = CAPABILITIES

    def configured(self, settings: SandboxSettings) -> bool:
        return True

    def missing(self, settings: SandboxSettings) -> str | None:
        return None

    def build(self, context: ProviderContext, settings: SandboxSettings) -> SandboxProvider:
        refuse_remote(settings, context.settings)
        core = context.settings
        # The sandbox's jobs live as long as the bot's own images (0 keeps them forever).
        days = core.media_retention_days
        service = SandboxService(
            context.http,
            context.state_dir,
            own=OwnServer(context.server_url, (core.public_url,) if core.public_url else ()),
            delay=settings.delay_seconds,
            max_image_bytes=core.max_image_bytes,
            max_age=days * DAY if days else None,
        )
        return SandboxProvider(
            context.settings,
            context.http,
            base_url=f"{context.server_url}/sandbox",
            options=settings,
            service=service,
        )

    def warnings(self, settings: SandboxSettings, core: Settings) -> list[str]:
        # Not a warning but a refusal: `check` and `run` both stop here, naming the setting.
        refuse_remote(settings, core)
        return []

    def add_routes(self, app: web.Application, provider: Provider) -> None:
        assert isinstance(provider, SandboxProvider) and provider.service is not None
        provider.service.register_routes(app)


def refuse_remote(settings: SandboxSettings, core: Settings) -> None:
    """The sandbox's routes are for this machine: a server listening beyond loopback needs consent."""
    if settings.allow_remote or is_loopback(core.http_host):
        return
    raise ConfigError(
        f"HIDREAM_HTTP_HOST={core.http_host} is not a loopback address, and the sandbox provider would "
        "serve its API there: use 127.0.0.1, configure a real provider, or set "
        "HIDREAM_SANDBOX_ALLOW_REMOTE=true"
    )


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


plugin = SandboxPlugin()

__all__ = ["SandboxJob", "SandboxPlugin", "SandboxProvider", "SandboxService", "SandboxSettings", "plugin"]
