"""One Settings object, read from the environment and `.env`, validated at start-up."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, cast

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.errors import ConfigError

ProviderName = Literal["sandbox", "pixazo", "atlascloud", "fal", "wavespeed"]
PROVIDER_KEYS: dict[str, str] = {
    "pixazo": "PIXAZO_API_KEY",
    "atlascloud": "ATLASCLOUD_API_KEY",
    "fal": "FAL_KEY",
    "wavespeed": "WAVESPEED_API_KEY",
}


class Settings(BaseSettings):
    # Empty values (as in a copied .env.example) mean "not set".
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", env_ignore_empty=True
    )

    # Chat platforms
    discord_token: SecretStr | None = Field(default=None, alias="DISCORD_TOKEN")
    discord_api_base_url: str = Field(default="https://discord.com/api/v10", alias="DISCORD_API_BASE_URL")
    discord_gateway_url: str = Field(default="wss://gateway.discord.gg/", alias="DISCORD_GATEWAY_URL")
    # Comma-separated guild ids to sync commands to (fast); empty: global sync.
    discord_guild_ids: str = Field(default="", alias="DISCORD_GUILD_IDS")
    # What to do with results the provider flagged NSFW outside age-restricted channels.
    discord_nsfw_policy: Literal["spoiler", "block", "allow"] = Field(
        default="spoiler", alias="DISCORD_NSFW_POLICY"
    )
    slack_bot_token: SecretStr | None = Field(default=None, alias="SLACK_BOT_TOKEN")
    slack_signing_secret: SecretStr | None = Field(default=None, alias="SLACK_SIGNING_SECRET")
    slack_app_token: SecretStr | None = Field(default=None, alias="SLACK_APP_TOKEN")
    slack_api_base_url: str = Field(default="https://slack.com/api/", alias="SLACK_API_BASE_URL")
    # Comma-separated Slack user ids allowed to run admin commands besides workspace admins.
    slack_admin_users: str = Field(default="", alias="SLACK_ADMIN_USERS")

    # Provider
    provider: ProviderName | None = Field(default=None, alias="HIDREAM_PROVIDER")
    model: Literal["full", "dev"] = Field(default="full", alias="HIDREAM_MODEL")
    safety_checker: bool = Field(default=True, alias="HIDREAM_SAFETY_CHECKER")
    pixazo_api_key: SecretStr | None = Field(default=None, alias="PIXAZO_API_KEY")
    pixazo_base_url: str = Field(default="https://gateway.pixazo.ai", alias="PIXAZO_BASE_URL")
    atlascloud_api_key: SecretStr | None = Field(default=None, alias="ATLASCLOUD_API_KEY")
    atlascloud_base_url: str = Field(default="https://api.atlascloud.ai", alias="ATLASCLOUD_BASE_URL")
    fal_key: SecretStr | None = Field(default=None, alias="FAL_KEY")
    fal_queue_url: str = Field(default="https://queue.fal.run", alias="FAL_QUEUE_URL")
    fal_jwks_url: str = Field(default="https://rest.alpha.fal.ai/.well-known/jwks.json", alias="FAL_JWKS_URL")
    wavespeed_api_key: SecretStr | None = Field(default=None, alias="WAVESPEED_API_KEY")
    wavespeed_base_url: str = Field(default="https://api.wavespeed.ai", alias="WAVESPEED_BASE_URL")
    wavespeed_webhook_secret: SecretStr | None = Field(default=None, alias="WAVESPEED_WEBHOOK_SECRET")

    # The bot's own HTTP server and state
    http_host: str = Field(default="127.0.0.1", alias="HIDREAM_HTTP_HOST")
    http_port: int = Field(default=8080, ge=0, le=65535, alias="HIDREAM_HTTP_PORT")
    public_url: str = Field(default="", alias="HIDREAM_PUBLIC_URL")
    db_path: Path = Field(default=Path("./hidream-bot.db"), alias="HIDREAM_DB_PATH")
    daily_image_quota: int = Field(default=25, ge=0, alias="HIDREAM_DAILY_IMAGE_QUOTA")
    output_dir: Path = Field(default=Path("./hidream-output"), alias="HIDREAM_OUTPUT_DIR")
    job_timeout_seconds: float = Field(default=900.0, gt=0, alias="HIDREAM_JOB_TIMEOUT_SECONDS")
    # Largest reference image accepted (bytes).
    max_image_bytes: int = Field(default=20 * 1024 * 1024, gt=0, alias="HIDREAM_MAX_IMAGE_BYTES")
    # Seconds the sandbox provider waits before finishing a job (0: at once).
    sandbox_delay_seconds: float = Field(default=0.5, ge=0, alias="HIDREAM_SANDBOX_DELAY_SECONDS")
    log_level: str = Field(default="INFO", alias="HIDREAM_LOG_LEVEL")

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, v: str) -> str:
        v = v.strip().rstrip("/")
        if v and not v.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return v

    @field_validator(
        "discord_api_base_url",
        "slack_api_base_url",
        "pixazo_base_url",
        "atlascloud_base_url",
        "fal_queue_url",
        "wavespeed_base_url",
        "fal_jwks_url",
    )
    @classmethod
    def _http_url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return v

    @model_validator(mode="after")
    def _provider_key(self) -> Settings:
        if self.provider is None:
            chosen = next(
                (name for name, key in PROVIDER_KEYS.items() if getattr(self, _field_for(key)) is not None),
                "sandbox",
            )
            self.provider = cast(ProviderName, chosen)
        if self.provider != "sandbox":
            key = PROVIDER_KEYS[str(self.provider)]
            if getattr(self, _field_for(key)) is None:
                raise ValueError(f"HIDREAM_PROVIDER={self.provider} needs {key} to be set")
        return self

    @property
    def provider_name(self) -> str:
        return self.provider or "sandbox"

    @property
    def discord_enabled(self) -> bool:
        return self.discord_token is not None

    @property
    def slack_enabled(self) -> bool:
        return self.slack_bot_token is not None and (
            self.slack_app_token is not None or self.slack_signing_secret is not None
        )

    @property
    def slack_mode(self) -> Literal["socket", "http", "off"]:
        if not self.slack_enabled:
            return "off"
        return "socket" if self.slack_app_token is not None else "http"

    @property
    def console_enabled(self) -> bool:
        return not (self.discord_enabled or self.slack_enabled)


def _field_for(env_name: str) -> str:
    return env_name.lower()


def load_settings(**overrides: object) -> Settings:
    """Read the settings; a bad one becomes a ConfigError naming the variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"]) or "settings"
            problems.append(f"{loc}: {err['msg']}")
        raise ConfigError("invalid setting: " + "; ".join(problems)) from None
