"""Plugins: a surface and a provider installed from outside the core (a distribution whose entry
points name them) are found, shown by `hidream-bot check` and started by `hidream-bot run`, with no
file of the core edited."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.app import select
from bot.cli import main
from bot.model.config import load_settings
from bot.model.errors import ConfigError
from bot.plugins import discover
from tests.fakes import tiny_plugins


@pytest.fixture
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Install the tiny plugins the way pip would: a dist-info folder with entry_points.txt on sys.path."""
    site = tmp_path / "site"
    info = site / "tiny_plugins-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tiny-plugins\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(tiny_plugins.entry_points_txt())
    monkeypatch.syspath_prepend(str(site))


def test_the_built_in_plugins_are_found_through_their_entry_points() -> None:
    plugins = discover()
    assert {"discord", "slack", "console"} <= set(plugins.surfaces.names())
    assert {"sandbox", "pixazo", "atlascloud", "fal", "wavespeed"} <= set(plugins.providers.names())
    assert "tinychat" not in plugins.surfaces.names()


def test_an_installed_plugin_pair_is_found_and_chosen(installed: None) -> None:
    plugins = discover()
    assert plugins.surfaces.get("tinychat") is tiny_plugins.surface
    assert plugins.providers.get("tinygen") is tiny_plugins.provider
    chosen = select(load_settings(TINYCHAT_TOKEN="t", TINYGEN_KEY="k"), plugins)
    # The only chat surface enabled, so the console (a fallback) stays off; the configured provider wins.
    assert [p.name for p, _ in chosen.surfaces] == ["tinychat"]
    assert chosen.provider[0].name == "tinygen"
    assert chosen.provider[1].key.get_secret_value() == "k"
    with pytest.raises(ConfigError, match="HIDREAM_PROVIDER=tinygen needs TINYGEN_KEY to be set"):
        select(load_settings(HIDREAM_PROVIDER="tinygen"), plugins)


def test_check_shows_the_plugins_lines(
    installed: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TINYCHAT_TOKEN", "secret-chat-token")
    monkeypatch.setenv("HIDREAM_PROVIDER", "tinygen")
    monkeypatch.setenv("TINYGEN_KEY", "secret-gen-key")
    monkeypatch.setenv("TINYGEN_COLOR", "orange")
    assert main(["check"]) == 0
    out = capsys.readouterr().out
    assert "surfaces:  tinychat (a test surface)\n" in out
    assert "provider:  tinygen, default model full" in out
    assert "tinygen: solid orange squares, in process" in out
    assert "warning:   tinygen paints only orange" in out
    assert "secret" not in out


def test_the_check_asks_a_surface_plugin_whether_it_is_public(
    installed: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TINYCHAT_TOKEN", "t")
    monkeypatch.setenv("HIDREAM_PROVIDER", "tinygen")
    monkeypatch.setenv("TINYGEN_KEY", "k")
    assert main(["check"]) == 0
    assert "HIDREAM_DAILY_PERSON_QUOTA" not in capsys.readouterr().out  # a surface not public by default
    monkeypatch.setattr(tiny_plugins.surface, "public", True, raising=False)
    assert main(["check"]) == 0
    [warning] = [
        line for line in capsys.readouterr().out.splitlines() if "HIDREAM_DAILY_PERSON_QUOTA" in line
    ]
    assert "on tinychat" in warning and "billed to the tinygen account" in warning


def test_a_bad_plugin_setting_is_named_by_its_variable(
    installed: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Strict(tiny_plugins.TinyGenSettings):
        steps: int = 1

    monkeypatch.setenv("TINYGEN_STEPS", "many")
    with pytest.raises(ConfigError, match="TINYGEN_STEPS"):
        load_settings().section(Strict)


def test_run_starts_the_plugins_and_a_job_goes_through_them(
    installed: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("TINYCHAT_TOKEN", "t")
    monkeypatch.setenv("TINYGEN_KEY", "k")
    monkeypatch.setenv("HIDREAM_DB_PATH", str(tmp_path / "bot.db"))
    monkeypatch.setenv("HIDREAM_HTTP_PORT", "0")
    assert main(["run"]) == 0
    out = capsys.readouterr().out
    assert "tinychat got 1 image(s) of job " in out and "from tinygen: 40x30" in out


def test_with_several_keys_set_the_documented_order_picks_the_provider() -> None:
    def chosen(**env: str) -> str:
        return select(load_settings(**env)).provider[0].name

    assert chosen() == "sandbox"
    assert chosen(FAL_KEY="f", WAVESPEED_API_KEY="w") == "fal"
    assert chosen(FAL_KEY="f", PIXAZO_API_KEY="p", ATLASCLOUD_API_KEY="a") == "pixazo"
    assert chosen(FAL_KEY="f", HIDREAM_PROVIDER="sandbox") == "sandbox"
