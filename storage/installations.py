"""A chat platform's installations (a bot token per workspace, kept when the app is installed by OAuth)
and the one-use `state` values of installs under way. Plain rows: the surface turns them into its
SDK's objects, so this module knows nothing of any platform's SDK. The same SQL runs on both store
backends.

The tokens (bot and refresh) are stored sealed (bot/model/secrets.py): the database, its backups and
its copies hold no token in clear. `reseal` seals a previous release's plain rows, and rows sealed
under the old key while keys change."""

from __future__ import annotations

from dataclasses import dataclass

from bot.model.secrets import PREFIX, Sealer
from storage.store import Store

_COLUMNS = (
    "enterprise_id, team_id, app_id, bot_id, bot_user_id, bot_token, bot_scopes, bot_refresh_token, "
    "bot_token_expires_at, is_enterprise_install, installed_at"
)


@dataclass(frozen=True)
class BotInstall:
    """One workspace's bot (or one org's, for an Enterprise Grid org-wide install: team_id is '')."""

    enterprise_id: str
    team_id: str
    bot_token: str
    app_id: str = ""
    bot_id: str = ""
    bot_user_id: str = ""
    bot_scopes: str = ""
    # With token rotation on, the bot token expires; the refresh token gets the next one.
    bot_refresh_token: str | None = None
    bot_token_expires_at: int | None = None
    is_enterprise_install: bool = False
    installed_at: float = 0.0


_KEY = ("enterprise_id", "team_id")
_UPSERT = (
    f"INSERT INTO slack_installations ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?) "
    "ON CONFLICT (enterprise_id, team_id) DO UPDATE SET "
    + ", ".join(f"{c}=excluded.{c}" for c in (c.strip() for c in _COLUMNS.split(",")) if c not in _KEY)
)


class Installations:
    def __init__(self, store: Store, sealer: Sealer) -> None:
        self.store = store
        self.sealer = sealer

    async def save(self, bot: BotInstall) -> None:
        """Keep `bot` as its workspace's one install (a reinstall or a rotated token replaces it)."""
        await self.store.write(
            _UPSERT,
            bot.enterprise_id,
            bot.team_id,
            bot.app_id,
            bot.bot_id,
            bot.bot_user_id,
            self.sealer.seal(bot.bot_token),
            bot.bot_scopes,
            None if bot.bot_refresh_token is None else self.sealer.seal(bot.bot_refresh_token),
            bot.bot_token_expires_at,
            int(bot.is_enterprise_install),
            bot.installed_at or self.store.clock(),
        )

    async def find(self, enterprise_id: str, team_id: str) -> BotInstall | None:
        """The workspace's install; an org-wide one when `team_id` is ''. Team ids are unique across
        the platform, so a workspace is found by its id alone (events of an org's workspace name both)."""
        if team_id:
            where, args = "team_id=?", (team_id,)
        else:
            where, args = "enterprise_id=? AND team_id=''", (enterprise_id,)
        row = await self.store.database.fetchrow(
            f"SELECT {_COLUMNS} FROM slack_installations WHERE {where} ORDER BY installed_at DESC LIMIT 1",
            *args,
        )
        if row is None:
            return None
        return BotInstall(
            enterprise_id=row[0],
            team_id=row[1],
            app_id=row[2],
            bot_id=row[3],
            bot_user_id=row[4],
            bot_token=self.sealer.open(row[5]),
            bot_scopes=row[6],
            bot_refresh_token=None if row[7] is None else self.sealer.open(row[7]),
            bot_token_expires_at=row[8],
            is_enterprise_install=bool(row[9]),
            installed_at=row[10],
        )

    async def delete(self, enterprise_id: str, team_id: str) -> int:
        """Forget the workspace's (or org's) tokens; how many installs were removed."""
        if team_id:
            where, args = "team_id=?", (team_id,)
        else:
            where, args = "enterprise_id=? AND team_id=''", (enterprise_id,)
        return await self.store.write(f"DELETE FROM slack_installations WHERE {where}", *args)

    async def reseal(self) -> int:
        """Seal every stored token under the current key (plain ones, and those sealed under the
        old key); how many rows changed. A token no key opens is a ConfigError naming the variable."""
        rows = await self.store.database.fetch(
            "SELECT enterprise_id, team_id, bot_token, bot_refresh_token FROM slack_installations"
        )
        changed = 0
        for enterprise_id, team_id, token, refresh in rows:
            new_token = self.sealer.reseal(token)
            new_refresh = None if refresh is None else self.sealer.reseal(refresh)
            if new_token is None and new_refresh is None:
                continue
            # Only if the row is still as read: a replica that saved a new token meanwhile wins.
            changed += await self.store.write(
                "UPDATE slack_installations SET bot_token=?, bot_refresh_token=? "
                "WHERE enterprise_id=? AND team_id=? AND bot_token=? AND COALESCE(bot_refresh_token, '')=?",
                new_token or token,
                new_refresh or refresh,
                enterprise_id,
                team_id,
                token,
                refresh or "",
            )
        return changed

    async def issue_state(self, state: str, expires_at: float) -> None:
        # Expired states are swept as new ones are issued, so the table stays small.
        await self.store.write("DELETE FROM slack_oauth_states WHERE expires_at < ?", self.store.clock())
        await self.store.write(
            "INSERT INTO slack_oauth_states (state, expires_at) VALUES (?, ?)", state, expires_at
        )

    async def consume_state(self, state: str) -> bool:
        """True once for a state issued here and not expired: it is deleted as it is used."""
        used = await self.store.write(
            "DELETE FROM slack_oauth_states WHERE state=? AND expires_at >= ?", state, self.store.clock()
        )
        return used == 1


async def plain_tokens(store: Store) -> int:
    """How many installations hold a token in clear (an earlier release's rows, never sealed)."""
    row = await store.database.fetchrow(
        "SELECT COUNT(*) FROM slack_installations WHERE bot_token NOT LIKE ? "
        "OR (bot_refresh_token IS NOT NULL AND bot_refresh_token NOT LIKE ?)",
        f"{PREFIX}%",
        f"{PREFIX}%",
    )
    return 0 if row is None else int(row[0])
