"""Slack's settings: every variable starts with SLACK_."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from bot.model.config import PluginSettings, http_url

# The bot scopes of slack-app-manifest.yml: what an OAuth install asks each workspace for.
DEFAULT_SCOPES = (
    "commands,app_mentions:read,chat:write,chat:write.public,files:read,files:write,"
    "channels:history,groups:history,im:history,im:write,mpim:history,users:read,usergroups:read,"
    "channels:read,groups:read"
)


class SlackSettings(PluginSettings):
    model_config = SettingsConfigDict(env_prefix="SLACK_")

    # xoxb- token; Slack starts when it is set together with one of the two below.
    bot_token: SecretStr | None = None
    # HTTP mode: Slack posts to POST /slack/events on the bot's server.
    signing_secret: SecretStr | None = None
    # xapp- token: Socket Mode; wins over HTTP mode when both are set.
    app_token: SecretStr | None = None
    api_base_url: str = "https://slack.com/api/"
    # OAuth distribution (HTTP mode): with both set and SLACK_SIGNING_SECRET, the bot serves
    # GET /slack/install and keeps each workspace's bot token; SLACK_BOT_TOKEN is then not used.
    client_id: str = ""
    client_secret: SecretStr | None = None
    # Comma-separated bot scopes an install asks for.
    scopes: str = DEFAULT_SCOPES
    # Comma-separated Slack user ids allowed to run admin commands besides workspace admins.
    admin_users: str = ""

    # The core's HIDREAM_PUBLIC_URL, read here too: in HTTP mode Slack must reach the bot from outside.
    public_url: str = Field(default="", alias="HIDREAM_PUBLIC_URL")

    check_api_base_url = field_validator("api_base_url")(http_url)

    @field_validator("bot_token")
    @classmethod
    def _bot_token(cls, v: SecretStr | None) -> SecretStr | None:
        # With token rotation on, Slack's bot tokens start with xoxe.xoxb-.
        if v is not None and not v.get_secret_value().startswith(("xoxb-", "xoxe.xoxb-")):
            raise ValueError(
                "must be the app's Bot User OAuth Token, which starts with xoxb- (OAuth & Permissions page)"
            )
        return v

    @field_validator("app_token")
    @classmethod
    def _app_token(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and not v.get_secret_value().startswith("xapp-"):
            raise ValueError(
                "must be an App-Level Token, which starts with xapp- (Basic Information page, "
                "with the connections:write scope)"
            )
        return v

    @property
    def oauth(self) -> bool:
        """Installed into many workspaces by OAuth, each with its own token (HTTP mode only)."""
        return bool(self.client_id) and self.client_secret is not None and self.signing_secret is not None

    @property
    def enabled(self) -> bool:
        single = self.bot_token is not None and (
            self.app_token is not None or self.signing_secret is not None
        )
        return self.oauth or single

    @property
    def mode(self) -> Literal["socket", "http", "off"]:
        if not self.enabled:
            return "off"
        return "socket" if self.app_token is not None and not self.oauth else "http"

    def scope_list(self) -> list[str]:
        return [s.strip() for s in self.scopes.split(",") if s.strip()]

    def admins(self) -> frozenset[str]:
        return frozenset(u.strip() for u in self.admin_users.split(",") if u.strip())
