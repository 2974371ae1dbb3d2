"""Personal defaults and tenant policy: what they may hold, how people write them, and the one place
they meet a request (`Preferences.apply`, called by the engine before admission).

Every surface shares the same words: `settings [--ar W:H | --size S] [--model M] [--format F]
[--n N] [--private on|off]`, `settings reset`; `policy ban <phrase>`, `policy unban <phrase>`,
`policy nsfw spoiler|block|allow|default`, `policy tier full|dev|default`,
`policy provider <name>|default`, `policy export-prompts on|off`, `policy project <tag>|default` (this
channel's default project: the engine keeps it, storage/costs.py), `policy credentials-prompt on|off`,
`policy reset`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

from bot import words
from bot.model.errors import BadInput
from bot.model.phrases import contains_banned
from bot.model.requests import ChatRequest, ImageRequest, build_request
from storage.preferences import Preferences as Rows
from storage.preferences import TenantPolicy
from storage.store import Store

# The flags a person may keep as defaults; `private` is not a request flag but a delivery choice.
DEFAULT_FLAGS = ("ar", "size", "model", "format", "n", "private")
_ON, _OFF = ("on", "true", "yes", "1"), ("off", "false", "no", "0")
NSFW_CHOICES = ("spoiler", "block", "allow")
PHRASE_MAX, PHRASES_MAX = 100, 200
BLOCKED = words.BLOCKED


@dataclass(frozen=True)
class PolicyCommand:
    action: Literal[
        "show",
        "reset",
        "ban",
        "unban",
        "nsfw",
        "tier",
        "provider",
        "export-prompts",
        "project",
        "credentials-prompt",
    ]
    value: str | None = None


def parse_settings(text: str) -> dict[str, str] | Literal["show", "reset"]:
    """What follows `settings`: nothing (show), `reset`, or flags to keep (checked as a request's)."""
    words = text.split()
    if not words:
        return "show"
    if [w.lower() for w in words] == ["reset"]:
        return "reset"
    flags: dict[str, str] = {}
    i = 0
    while i < len(words):
        name = words[i].lstrip("-\u2014\u2013").lower().replace("_", "-")
        name = {"aspect": "ar", "count": "n", "tier": "model"}.get(name, name)
        if not words[i].startswith(("--", "\u2014", "\u2013")) or name not in DEFAULT_FLAGS:
            allowed = ", ".join(f"--{f}" for f in DEFAULT_FLAGS)
            raise BadInput(f"`{words[i]}` cannot be a default. Use {allowed}, or `settings reset`.")
        if i + 1 >= len(words):
            raise BadInput(f"`--{name}` needs a value.")
        flags[name] = words[i + 1]
        i += 2
    return check_defaults(flags)


def check_defaults(flags: dict[str, str]) -> dict[str, str]:
    """Validate defaults as the request parser would; returns them normalised. Raises BadInput."""
    flags = dict(flags)
    if "private" in flags:
        raw = flags["private"].lower()
        if raw not in _ON + _OFF:
            raise BadInput(f"`--private {flags['private']}` is not allowed: use on or off.")
        flags["private"] = "on" if raw in _ON else "off"
    build_request("defaults", {k: v for k, v in flags.items() if k != "private"})
    return flags


def describe_defaults(flags: dict[str, str]) -> str:
    if not flags:
        return "You have no defaults here. Set some with e.g. `settings --ar 16:9 --n 2 --private on`."
    shown = " ".join(f"--{k} {v}" for k, v in sorted(flags.items()))
    return f"Your defaults here: `{shown}`. Flags you type win; `settings reset` clears them."


def parse_policy(text: str) -> PolicyCommand:
    words = text.split()
    if not words:
        return PolicyCommand("show")
    verb, rest = words[0].lower(), " ".join(words[1:])
    if verb == "reset" and not rest:
        return PolicyCommand("reset")
    if (
        verb
        in ("ban", "unban", "nsfw", "tier", "provider", "export-prompts", "project", "credentials-prompt")
        and rest
    ):
        return PolicyCommand(verb, rest)  # type: ignore[arg-type]
    raise BadInput(
        "Use `policy`, `policy ban <phrase>`, `policy unban <phrase>`, "
        "`policy nsfw spoiler|block|allow|default`, `policy tier full|dev|default`, "
        "`policy provider <name>|default`, `policy export-prompts on|off`, "
        "`policy project <tag>|default` (this channel's default project), "
        "`policy credentials-prompt on|off` or `policy reset`."
    )


def _phrase(raw: str) -> str:
    phrase = " ".join(raw.lower().split())
    if not phrase or len(phrase) > PHRASE_MAX:
        raise BadInput(f"A blocked phrase is 1 to {PHRASE_MAX} characters long.")
    return phrase


def contains_blocked(prompt: str, banned: tuple[str, ...]) -> bool:
    """Whole words or phrases, however written (see bot.model.phrases): `ban ass` blocks "ass" and
    "a-s-s" but not "class"."""
    return contains_banned(prompt, banned)


class Preferences:
    """The rules over storage/preferences.py's rows. `tenant` keys are the engine's (Engine.tenant)."""

    def __init__(self, store: Store) -> None:
        self.rows = Rows(store)

    async def apply(self, chat: ChatRequest, tenant: str, tiers: tuple[str, ...]) -> ChatRequest:
        """Refuse a blocked prompt; fill what the person did not type from their defaults, then from
        the tenant's tier. Runs before any quota is looked at or any provider is asked."""
        policy = await self.screen(tenant, chat.request.prompt)
        request = chat.request
        if request.explicit is None:
            return chat
        mine = await self.rows.defaults(tenant, f"{chat.surface}:{chat.user_id}")
        # An edit keeps its image's shape: a default aspect or size is for new images only.
        skipped = {"private", "ar", "size"} if chat.references else {"private"}
        changes = _filled(request, {k: v for k, v in mine.items() if k not in skipped})
        tier = changes.get("model", request.model)
        if tier is None and policy.tier in tiers:
            changes["model"] = policy.tier
        changes["explicit"] = None
        return chat.model_copy(update={"request": request.with_changes(**changes)})

    async def screen(self, tenant: str, prompt: str) -> TenantPolicy:
        """Raise BadInput when the prompt holds a phrase the tenant blocked; else its policy."""
        policy = await self.rows.policy(tenant)
        if contains_blocked(prompt, policy.banned):
            raise BadInput(BLOCKED)
        return policy

    async def defaults(self, tenant: str, user_key: str) -> dict[str, str]:
        return await self.rows.defaults(tenant, user_key)

    async def private(self, tenant: str, user_key: str) -> bool:
        return (await self.rows.defaults(tenant, user_key)).get("private") == "on"

    async def settings(self, tenant: str, user_key: str, text: str) -> str:
        """A person's `settings ...`: show, reset or keep their defaults; the answer to show them."""
        parsed = parse_settings(text)
        if parsed == "show":
            return describe_defaults(await self.rows.defaults(tenant, user_key))
        if parsed == "reset":
            await self.rows.set_defaults(tenant, user_key, {})
            return "Your defaults here are cleared."
        assert isinstance(parsed, dict)
        flags = {**await self.rows.defaults(tenant, user_key), **parsed}
        if "ar" in parsed:
            flags.pop("size", None)
        if "size" in parsed:
            flags.pop("ar", None)
        await self.rows.set_defaults(tenant, user_key, check_defaults(flags))
        return describe_defaults(flags)

    async def policy(self, tenant: str) -> TenantPolicy:
        return await self.rows.policy(tenant)

    async def preferred_provider(self, tenant: str) -> str | None:
        """The provider the tenant's admins chose (for routing among several); None: the operator's."""
        return (await self.rows.policy(tenant)).provider

    async def admin(self, tenant: str, command: PolicyCommand, providers: list[str]) -> str:
        """An admin's `policy ...` in their own tenant; the answer (private to the admin)."""
        now = await self.rows.policy(tenant)
        new, answer = _changed(now, command, providers)
        if new != now:
            await self.rows.set_policy(tenant, new)
        return answer or describe_policy(new)


def _filled(request: ImageRequest, defaults: dict[str, str]) -> dict[str, Any]:
    """The fields `defaults` gives that the person did not type (size and aspect count as one)."""
    typed = request.explicit or frozenset()
    if typed & {"ar", "size"}:
        defaults = {k: v for k, v in defaults.items() if k not in ("ar", "size")}
    wanted = {k: v for k, v in defaults.items() if k not in typed}
    if not wanted:
        return {}
    made = build_request(request.prompt, wanted)
    return {f: getattr(made, f) for k in wanted for f in _FIELDS_OF[k]}


# The ImageRequest fields each default flag sets.
_FIELDS_OF = {
    "model": ("model",),
    "format": ("format",),
    "n": ("n",),
    "ar": ("aspect",),
    "size": ("preset", "width", "height"),
}


def _changed(
    policy: TenantPolicy, cmd: PolicyCommand, providers: list[str]
) -> tuple[TenantPolicy, str | None]:
    value = (cmd.value or "").strip()
    low = value.lower()
    if cmd.action == "reset":
        return TenantPolicy(), "The policy here is back to the operator's defaults."
    if cmd.action == "ban":
        phrase = _phrase(value)
        if len(policy.banned) >= PHRASES_MAX and phrase not in policy.banned:
            raise BadInput(f"At most {PHRASES_MAX} phrases can be blocked.")
        banned = policy.banned if phrase in policy.banned else (*policy.banned, phrase)
        return replace(policy, banned=banned), f"Blocked: “{phrase}”."
    if cmd.action == "unban":
        phrase = _phrase(value)
        if phrase not in policy.banned:
            raise BadInput(f"“{phrase}” is not blocked.")
        return replace(
            policy, banned=tuple(p for p in policy.banned if p != phrase)
        ), f"Unblocked: “{phrase}”."
    if cmd.action == "nsfw":
        return replace(policy, nsfw=_choice(low, NSFW_CHOICES, "nsfw")), None
    if cmd.action == "tier":
        return replace(policy, tier=_choice(low, ("full", "dev"), "tier")), None
    if cmd.action == "provider":
        return replace(policy, provider=_choice(low, tuple(providers), "provider")), None
    if cmd.action == "credentials-prompt":
        if low not in _ON + _OFF + ("default",):
            raise BadInput(f"`{value}` is not a choice for credentials-prompt: use on or off.")
        return replace(policy, credentials_prompt=low in _ON), None
    if cmd.action == "export-prompts":
        if low not in _ON + _OFF:
            raise BadInput(f"`policy export-prompts {value[:20]}` is not a choice: use on or off.")
        withheld = low in _OFF
        return replace(policy, withhold_prompts=withheld), words.export_prompts_set(withheld)
    return policy, None


# The words that clear a choice and go back to the operator's default (or to no default project).
CLEARED = ("default", "off", "none")


def _choice(value: str, allowed: tuple[str, ...], what: str) -> str | None:
    if value in CLEARED:
        return None
    if value not in allowed:
        raise BadInput(f"`{value}` is not a {what} here: use {', '.join(allowed)} or default.")
    return value


def describe_policy(policy: TenantPolicy) -> str:
    words = f"{len(policy.banned)} blocked phrase(s)" + (
        ": " + ", ".join(f"“{p}”" for p in policy.banned) if policy.banned else ""
    )
    return (
        f"Policy here: {words}; NSFW results: {policy.nsfw or 'operator default'}; "
        f"tier: {policy.tier or 'operator default'}; provider: {policy.provider or 'operator default'}; "
        f"prompts in the audit export: {'withheld' if policy.withhold_prompts else 'included'}; "
        f"prompts in content credentials: {'on' if policy.credentials_prompt else 'off'}."
    )
