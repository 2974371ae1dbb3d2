"""Payload builders for the fake Discord, shaped after the recorded JSON in tests/data/discord/."""

from __future__ import annotations

import copy
import itertools
import json
import secrets
from pathlib import Path
from typing import Any

DATA = Path(__file__).parent.parent / "data" / "discord"

VIEW, SEND, EMBED, ATTACH, HISTORY = 1 << 10, 1 << 11, 1 << 14, 1 << 15, 1 << 16
MANAGE_MESSAGES, MANAGE_GUILD, APP_COMMANDS = 1 << 13, 1 << 5, 1 << 31
PUBLIC_THREADS, SEND_IN_THREADS = 1 << 35, 1 << 38
MEMBER_PERMS = VIEW | SEND | EMBED | ATTACH | HISTORY | APP_COMMANDS | SEND_IN_THREADS
BOT_PERMS = MEMBER_PERMS | PUBLIC_THREADS
TIMESTAMP = "2024-06-01T12:00:00.000000+00:00"


def recorded(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DATA / name).read_text())
    return data


class Payloads:
    """One guild with a text channel and an age-restricted channel, a bot, and people in it; more
    guilds (one channel each) with `add_guild`."""

    def __init__(self) -> None:
        self._ids = itertools.count(1_800_000_000_000_000_000)
        self.app_id = "1200000000000000001"
        self.bot_id = self.app_id
        self.guild_id = "1300000000000000001"
        self.channel_id = "1300000000000000010"
        self.nsfw_channel_id = "1300000000000000011"
        self.interactions: dict[str, dict[str, Any]] = {}
        self.base_url = ""
        self.intents = 0
        self.other_guilds: dict[str, str] = {}  # guild id -> its one channel
        self.reviewer_role_id = "1300000000000000020"  # a role of the first guild ("reviewers")
        self.queue_channel_id = "1300000000000000030"  # a channel of the first guild ("review-queue")

    def add_guild(self, guild_id: str, channel_id: str) -> None:
        """Another server the bot is in, with one text channel."""
        self.other_guilds[guild_id] = channel_id

    def all_guilds(self) -> list[str]:
        return [self.guild_id, *self.other_guilds]

    def guild_of(self, channel_id: str) -> str:
        """The server a channel (or thread) belongs to."""
        threads: dict[str, dict[str, Any]] = getattr(self, "threads", {})
        if channel_id in threads:
            return str(threads[channel_id]["guild_id"])
        return next((g for g, c in self.other_guilds.items() if c == channel_id), self.guild_id)

    def snowflake(self) -> str:
        return str(next(self._ids))

    def user(self, user_id: str = "1500000000000000001", name: str = "ada") -> dict[str, Any]:
        return {"id": user_id, "username": name, "global_name": name.title(), "discriminator": "0",
                "avatar": None, "public_flags": 0}  # fmt: skip

    def bot_user(self) -> dict[str, Any]:
        return {**self.user(self.bot_id, "hidream"), "bot": True, "verified": True, "flags": 0,
                "mfa_enabled": False}  # fmt: skip

    def application(self) -> dict[str, Any]:
        return {"id": self.app_id, "name": "HiDream", "icon": None, "description": "", "bot_public": True,
                "bot_require_code_grant": False, "verify_key": "0" * 64, "flags": 1 << 19,
                "owner": self.user("1500000000000000099", "owner"), "team": None, "summary": "",
                "bot": self.bot_user(), "rpc_origins": []}  # fmt: skip

    def ready_payload(
        self, gateway_url: str, guilds: list[str], shard: list[int] | None = None
    ) -> dict[str, Any]:
        ready = {"v": 10, "user": self.bot_user(), "guilds": [{"id": g, "unavailable": True} for g in guilds],
                 "session_id": secrets.token_hex(16), "resume_gateway_url": gateway_url,
                 "application": {"id": self.app_id, "flags": 1 << 19}, "private_channels": []}  # fmt: skip
        if shard is not None:
            ready["shard"] = shard
        return ready

    def channel_payload(self, channel_id: str, name: str, *, nsfw: bool = False) -> dict[str, Any]:
        return {"id": channel_id, "type": 0, "guild_id": self.guild_of(channel_id), "name": name, "position": 0,
                "permission_overwrites": [], "nsfw": nsfw, "parent_id": None, "topic": None,
                "rate_limit_per_user": 0, "last_message_id": None, "flags": 0}  # fmt: skip

    def guild_payload(self, guild_id: str | None = None) -> dict[str, Any]:
        guild_id = guild_id or self.guild_id
        if guild_id in self.other_guilds:
            channels = [self.channel_payload(self.other_guilds[guild_id], "art")]
        else:
            channels = [self.channel_payload(self.channel_id, "art"),
                        self.channel_payload(self.nsfw_channel_id, "after-dark", nsfw=True),
                        self.channel_payload(self.queue_channel_id, "review-queue")]  # fmt: skip
        bot_member = {"user": self.bot_user(), "roles": [], "joined_at": TIMESTAMP, "deaf": False, "mute": False,
                      "flags": 0}  # fmt: skip
        return {
            "id": guild_id, "name": "Test Guild", "icon": None, "owner_id": "1500000000000000099",
            "roles": [{"id": guild_id, "name": "@everyone", "permissions": str(BOT_PERMS), "position": 0,
                       "color": 0, "hoist": False, "managed": False, "mentionable": False, "flags": 0},
                      {"id": self.reviewer_role_id, "name": "reviewers", "permissions": "0", "position": 1,
                       "color": 0, "hoist": False, "managed": False, "mentionable": True, "flags": 0}],
            "channels": channels,
            "threads": [], "members": [bot_member], "member_count": 3, "unavailable": False, "large": False,
            "features": [], "emojis": [], "stickers": [], "premium_tier": 0, "verification_level": 0,
            "explicit_content_filter": 0, "default_message_notifications": 0, "mfa_level": 0, "nsfw_level": 0,
            "preferred_locale": "en-US", "system_channel_id": None, "afk_channel_id": None, "afk_timeout": 300,
            "joined_at": TIMESTAMP, "voice_states": [], "presences": [], "stage_instances": [],
            "guild_scheduled_events": [], "soundboard_sounds": [],
        }  # fmt: skip

    def thread_payload(self, thread_id: str, parent_id: str, name: str) -> dict[str, Any]:
        return {"id": thread_id, "type": 11, "guild_id": self.guild_of(parent_id), "parent_id": parent_id, "name": name,
                "owner_id": self.bot_id, "message_count": 0, "member_count": 1, "rate_limit_per_user": 0,
                "flags": 0, "last_message_id": None,
                "thread_metadata": {"archived": False, "auto_archive_duration": 1440, "locked": False,
                                    "archive_timestamp": TIMESTAMP}}  # fmt: skip

    def message_payload(self, channel_id: str, *, author: dict[str, Any], content: str) -> dict[str, Any]:
        return {"id": self.snowflake(), "channel_id": channel_id, "guild_id": self.guild_of(channel_id), "author": author,
                "content": content, "timestamp": TIMESTAMP, "edited_timestamp": None, "tts": False,
                "mention_everyone": False, "mentions": [], "mention_roles": [], "attachments": [], "embeds": [],
                "pinned": False, "type": 0, "flags": 0, "components": []}  # fmt: skip

    # ---- what people do ----------------------------------------------------------------------
    def _interaction(self, kind: int, data: dict[str, Any], *, user_id: str, channel_id: str | None,
                     permissions: int) -> dict[str, Any]:  # fmt: skip
        payload = recorded("slash_hidream.json")
        channel_id = channel_id or self.channel_id
        iid = self.snowflake()
        payload.update(id=iid, type=kind, data=data, token=f"tok-{iid}-{secrets.token_hex(8)}",
                       channel_id=channel_id, app_permissions=str(BOT_PERMS),
                       attachment_size_limit=getattr(self, "upload_limit", 10 * 1024 * 1024))  # fmt: skip
        payload["channel"] = self._channel_of(channel_id)
        guild_id = self.guild_of(channel_id)
        payload.update(guild_id=guild_id, guild={**payload["guild"], "id": guild_id},
                       authorizing_integration_owners={"0": guild_id})  # fmt: skip
        payload["member"]["user"] = self.user(user_id, f"user{user_id[-2:]}")
        payload["member"]["permissions"] = str(permissions)
        if channel_id in getattr(self, "dms", {}).values():
            # In the bot's DM with someone: no guild, no member, the person as `user` (context 1, BOT_DM).
            for key in ("guild_id", "guild", "member"):
                payload.pop(key, None)
            person = self.user(user_id, f"user{user_id[-2:]}")
            payload.update(user=person, context=1, authorizing_integration_owners={"0": "0"},
                           channel={"id": channel_id, "type": 1, "recipients": [person]})  # fmt: skip
        self.interactions[iid] = payload
        return payload

    def _channel_of(self, channel_id: str) -> dict[str, Any]:
        threads: dict[str, dict[str, Any]] = getattr(self, "threads", {})
        if channel_id in threads:
            return copy.deepcopy(threads[channel_id])
        nsfw = channel_id == self.nsfw_channel_id
        return {**self.channel_payload(channel_id, "after-dark" if nsfw else "art", nsfw=nsfw),
                "permissions": str(BOT_PERMS)}  # fmt: skip

    def interaction_for_token(self, token: str) -> dict[str, Any]:
        return next((p for p in self.interactions.values() if p["token"] == token), {})

    def slash_payload(self, options: dict[str, Any], *, attachments: list[dict[str, Any]] = (),  # type: ignore[assignment]
                      user_id: str = "1500000000000000001", channel_id: str | None = None,
                      name: str = "hidream", permissions: int = MEMBER_PERMS) -> dict[str, Any]:  # fmt: skip
        types = {str: 3, int: 4, bool: 5, float: 10}
        opts = [{"name": k, "type": types[type(v)], "value": v} for k, v in options.items()]
        data: dict[str, Any] = {"id": self.snowflake(), "name": name, "type": 1, "options": opts}
        if attachments:
            names = ["image", "image2", "image3", "image4"]
            opts.extend({"name": names[i], "type": 11, "value": a["id"]} for i, a in enumerate(attachments))
            data["resolved"] = {"attachments": {a["id"]: {**a, "ephemeral": True} for a in attachments}}
        return self._interaction(2, data, user_id=user_id, channel_id=channel_id, permissions=permissions)

    def context_menu_payload(
        self, target: dict[str, Any], *, user_id: str = "1500000000000000001"
    ) -> dict[str, Any]:
        data = {"id": self.snowflake(), "name": "Edit with HiDream", "type": 3, "target_id": target["id"],
                "resolved": {"messages": {target["id"]: copy.deepcopy(target)}}}  # fmt: skip
        return self._interaction(2, data, user_id=user_id, channel_id=target["channel_id"],
                                 permissions=MEMBER_PERMS)  # fmt: skip

    def modal_payload(self, custom_id: str, value: str, *, user_id: str = "1500000000000000001",
                      channel_id: str | None = None, field: str = "instruction") -> dict[str, Any]:  # fmt: skip
        rows = [{"type": 1, "id": 1, "components": [{"type": 4, "id": 2, "custom_id": field,
                                                      "value": value}]}]  # fmt: skip
        data = {"custom_id": custom_id, "components": rows}
        return self._interaction(5, data, user_id=user_id, channel_id=channel_id, permissions=MEMBER_PERMS)

    def labelled_modal_payload(self, custom_id: str, fields: dict[str, Any], *,
                               user_id: str = "1500000000000000001",
                               channel_id: str | None = None) -> dict[str, Any]:  # fmt: skip
        """A modal of labels sent back, as Discord sends it: each label (type 18) holds one component,
        a text input (type 4) for a string value, a checkbox (type 23) for a boolean."""
        labels = [{"type": 18, "id": 2 * i + 1,
                   "component": {"type": 23 if isinstance(value, bool) else 4, "id": 2 * i + 2,
                                 "custom_id": name, "value": value}}
                  for i, (name, value) in enumerate(fields.items())]  # fmt: skip
        data = {"custom_id": custom_id, "components": labels}
        return self._interaction(5, data, user_id=user_id, channel_id=channel_id, permissions=MEMBER_PERMS)

    def click_payload(self, message: dict[str, Any], custom_id: str, *, user_id: str = "1500000000000000001",
                      permissions: int = MEMBER_PERMS) -> dict[str, Any]:  # fmt: skip
        data = {"component_type": 2, "custom_id": custom_id, "id": 3}
        payload = self._interaction(3, data, user_id=user_id, channel_id=message["channel_id"],
                                    permissions=permissions)  # fmt: skip
        payload["message"] = copy.deepcopy(message)
        return payload

    def user_message_payload(self, content: str, *, channel_id: str | None = None,
                             user_id: str = "1500000000000000001", reply_to: dict[str, Any] | None = None,
                             attachments: list[dict[str, Any]] = ()) -> dict[str, Any]:  # type: ignore[assignment]  # fmt: skip
        """A person's message as MESSAGE_CREATE carries it; content is withheld without the intent
        unless the bot is mentioned, as Discord does."""
        msg = self.message_payload(channel_id or self.channel_id, author=self.user(user_id), content=content)
        msg["member"] = {"roles": [], "joined_at": TIMESTAMP, "deaf": False, "mute": False, "flags": 0}
        if f"<@{self.bot_id}>" in content:
            msg["mentions"] = [self.bot_user()]
        if reply_to is not None:
            msg.update(type=19, referenced_message=copy.deepcopy(reply_to),
                       message_reference={"message_id": reply_to["id"], "channel_id": reply_to["channel_id"],
                                          "guild_id": self.guild_of(reply_to["channel_id"]), "type": 0})  # fmt: skip
        msg["attachments"] = list(attachments)
        if not self.intents & (1 << 15) and not msg["mentions"]:
            msg["content"] = ""
        return msg
