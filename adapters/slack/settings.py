"""Slack's settings: every variable starts with SLACK_."""

from __future__ import annotations

from typing import Literal

from pydantic import SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from bot.config import PluginSettings, http_url


class SlackSettings(PluginSettings):
    model_config = SettingsConfigDict(env_prefix="SLACK_")

    # xoxb- token; Slack starts when it is set together with one of the two below.
    bot_token: SecretStr | None = None
    # HTTP mode: Slack posts to POST /slack/events on the bot's server.
    signing_secret: SecretStr | None = None
    # xapp- token: Socket Mode; wins over HTTP mode when both are set.
    app_token: SecretStr | None = None
    api_base_url: str = "https://slack.com/api/"
    # Comma-separated Slack user ids allowed to run admin commands besides workspace admins.
    admin_users: str = ""

    check_api_base_url = field_validator("api_base_url")(http_url)

    @property
    def enabled(self) -> bool:
        return self.bot_token is not None and (self.app_token is not None or self.signing_secret is not None)

    @property
    def mode(self) -> Literal["socket", "http", "off"]:
        if not self.enabled:
            return "off"
        return "socket" if self.app_token is not None else "http"

    def admins(self) -> frozenset[str]:
        return frozenset(u.strip() for u in self.admin_users.split(",") if u.strip())
