"""Discord's settings: every variable starts with DISCORD_."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import SettingsConfigDict

from bot import words
from bot.model.config import PluginSettings, http_url

# A bot token's shape: three parts of URL-safe base64 joined by dots (the bot's id, a time, a
# signature). Only the shape is checked here: Discord says at start-up whether the token is right.
_TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")


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

    # Sharding: the total number of gateway shards across all replicas (empty: one connection, unsharded),
    # and the comma-separated shard ids this replica runs (empty: all of 0..count-1).
    shard_count: int | None = Field(default=None, ge=1, le=100_000)
    shard_ids: str = ""

    check_api_base_url = field_validator("api_base_url")(http_url)

    @field_validator("token")
    @classmethod
    def _token(cls, v: SecretStr | None) -> SecretStr | None:
        if v is None:
            return v
        token = v.get_secret_value().strip()
        if token.lower().startswith("bot "):
            raise ValueError(words.DISCORD_TOKEN_PREFIXED)
        if not _TOKEN_SHAPE.fullmatch(token):
            raise ValueError(words.DISCORD_TOKEN_SHAPE)  # never the value itself
        return SecretStr(token)

    @field_validator("guild_ids")
    @classmethod
    def _guild_ids(cls, v: str) -> str:
        for part in filter(None, (p.strip() for p in v.split(","))):
            if not part.isascii() or not part.isdigit():
                raise ValueError(words.not_a_guild_id(part))
        return v

    @field_validator("shard_ids")
    @classmethod
    def _check_shard_ids(cls, value: str, info: ValidationInfo) -> str:
        ids = _parse_ids(value)
        if not ids:
            return value
        if "shard_count" not in info.data:
            return value  # DISCORD_SHARD_COUNT itself is wrong, and said so
        count = info.data["shard_count"]
        if count is None:
            raise ValueError("shard ids need DISCORD_SHARD_COUNT (the total number of shards)")
        if wrong := [i for i in ids if i >= count]:
            raise ValueError(
                f"shard {wrong[0]} does not exist with DISCORD_SHARD_COUNT={count} (ids are 0 to {count - 1})"
            )
        if len(set(ids)) != len(ids):
            raise ValueError("a shard id is listed twice")
        return value

    def guilds(self) -> list[int]:
        return [int(g.strip()) for g in self.guild_ids.split(",") if g.strip()]

    def shards(self) -> list[int] | None:
        """The shard ids this replica runs; None when the bot is not sharded."""
        if self.shard_count is None:
            return None
        return _parse_ids(self.shard_ids) or list(range(self.shard_count))

    def describe_shards(self) -> str:
        ids = self.shards()
        if ids is None:
            return "one gateway connection, unsharded"
        return f"gateway shards {','.join(map(str, ids))} of {self.shard_count}"


def _parse_ids(value: str) -> list[int]:
    parts = [p.strip() for p in value.split(",") if p.strip()]
    bad = [p for p in parts if not p.isdigit()]
    if bad:
        raise ValueError(f"{bad[0]!r} is not a shard id (comma-separated whole numbers, e.g. 0,1)")
    return [int(p) for p in parts]
