"""Discord's settings: every variable starts with DISCORD_."""

from __future__ import annotations

from typing import Literal

from pydantic import SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from bot.config import PluginSettings, http_url


class DiscordSettings(PluginSettings):
    model_config = SettingsConfigDict(env_prefix="DISCORD_")

    # Bot token; Discord starts when it is set.
    token: SecretStr | None = None
    api_base_url: str = "https://discord.com/api/v10"
    gateway_url: str = "wss://gateway.discord.gg/"
    # Comma-separated guild ids to sync commands to (fast); empty: global sync.
    guild_ids: str = ""
    # What to do with results the provider flagged NSFW outside age-restricted channels.
    nsfw_policy: Literal["spoiler", "block", "allow"] = "spoiler"

    check_api_base_url = field_validator("api_base_url")(http_url)

    def guilds(self) -> list[int]:
        return [int(g.strip()) for g in self.guild_ids.split(",") if g.strip()]
