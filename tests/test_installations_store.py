"""The Slack installations store (storage/installations.py) keeps the same contract on both store
backends: one install per workspace (a reinstall or a rotated token replaces it), org-wide installs
found by enterprise, removal, and one-use OAuth states that expire."""

from __future__ import annotations

from storage.installations import BotInstall, Installations
from tests.support.jobs import NOW
from tests.support.sealing import SEALER
from tests.support.store_backends import OpenStore


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


async def test_installs_are_kept_replaced_found_and_removed(open_store: OpenStore) -> None:
    async with open_store(default_limit=10, clock=lambda: NOW) as store:
        installs = Installations(store, SEALER)
        assert await installs.find("", "T1") is None
        first = BotInstall(enterprise_id="", team_id="T1", bot_token="xoxb-one", bot_scopes="chat:write")
        await installs.save(first)
        found = await installs.find("", "T1")
        assert found is not None and found.bot_token == "xoxb-one" and found.installed_at == NOW
        assert found.bot_refresh_token is None and found.bot_token_expires_at is None
        rotated = BotInstall(
            enterprise_id="",
            team_id="T1",
            bot_token="xoxb-two",
            bot_refresh_token="xoxe-1",
            bot_token_expires_at=1_900_000_000,
        )
        await installs.save(rotated)
        found = await installs.find("", "T1")
        assert found is not None
        assert (found.bot_token, found.bot_refresh_token, found.bot_token_expires_at) == (
            "xoxb-two",
            "xoxe-1",
            1_900_000_000,
        )
        # A Grid workspace's events name both ids; its install is found by the team id alone.
        await installs.save(BotInstall(enterprise_id="E1", team_id="T2", bot_token="xoxb-grid"))
        grid = await installs.find("E1", "T2")
        assert grid is not None and grid.bot_token == "xoxb-grid" and not grid.is_enterprise_install
        await installs.save(
            BotInstall(enterprise_id="E1", team_id="", bot_token="xoxb-org", is_enterprise_install=True)
        )
        org = await installs.find("E1", "")
        assert org is not None and org.bot_token == "xoxb-org" and org.is_enterprise_install
        assert await installs.delete("", "T1") == 1
        assert await installs.find("", "T1") is None
        assert await installs.delete("", "T1") == 0
        assert await installs.delete("E1", "") == 1
        grid = await installs.find("E1", "T2")
        assert grid is not None and grid.bot_token == "xoxb-grid"  # the workspace's own stays


async def test_oauth_states_are_used_once_and_expire(open_store: OpenStore) -> None:
    clock = Clock()
    async with open_store(default_limit=10, clock=clock) as store:
        installs = Installations(store, SEALER)
        await installs.issue_state("s-1", NOW + 600)
        await installs.issue_state("s-2", NOW + 600)
        assert await installs.consume_state("s-1")
        assert not await installs.consume_state("s-1")  # replayed
        assert not await installs.consume_state("never-issued")
        clock.now = NOW + 601
        assert not await installs.consume_state("s-2")  # expired
