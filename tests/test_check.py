"""`hidream-bot check` catches what would make the bot fail or misbehave, and names the setting."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from bot import words
from bot.cli import main
from tests.support.credentials import issue
from tests.support.harness import closed_port, skip_unless_ci
from tests.support.processes import bot_env, logging_as_in_a_fresh_process
from tests.support.startup import level as level
from tests.support.startup import run_fails
from tests.support.store_backends import postgres_url


@dataclass(frozen=True)
class Checked:
    code: int
    out: str
    err: str

    def warnings(self) -> list[str]:
        return [line for line in self.out.splitlines() if line.startswith("warning:")]


@pytest.fixture
def check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    def run(**env: str) -> Checked:
        capsys.readouterr()
        with monkeypatch.context() as patch, logging_as_in_a_fresh_process():
            for name, value in bot_env(tmp_path, **env).items():
                patch.setenv(name, value)
            code = main(["check"])
        out, err = capsys.readouterr()
        return Checked(code, out, err)

    return run


def test_a_database_folder_that_does_not_exist(check, tmp_path: Path) -> None:
    folder = tmp_path / "no-such-folder"
    result = check(HIDREAM_DB_PATH=str(folder / "bot.db"))
    assert result.code == 2
    assert f"HIDREAM_DB_PATH: the folder {folder} does not exist" in result.err
    assert not folder.exists()  # check made nothing on its way


def test_a_database_path_under_a_file_or_that_is_a_folder(check, tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    under_a_file = check(HIDREAM_DB_PATH=str(tmp_path / "a-file" / "bot.db"))
    assert (
        under_a_file.code == 2
        and "HIDREAM_DB_PATH" in under_a_file.err
        and "not a folder" in under_a_file.err
    )
    a_folder = check(HIDREAM_DB_PATH=str(tmp_path))
    assert a_folder.code == 2 and "HIDREAM_DB_PATH" in a_folder.err and "is a folder" in a_folder.err


def _unwritable_folder(tmp_path: Path) -> Path | None:
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    if not os.access(folder, os.W_OK):
        return folder
    # Root writes anywhere a mode allows nothing; a read-only file system still stops it.
    return next(
        (Path(p) for p in ("/proc/sys", "/sys") if Path(p).is_dir() and not os.access(p, os.W_OK)), None
    )


def test_a_database_folder_the_bot_may_not_write_in(check, tmp_path: Path) -> None:
    folder = _unwritable_folder(tmp_path)
    if folder is None:
        skip_unless_ci("no folder here is unwritable for this user")
    result = check(HIDREAM_DB_PATH=str(folder / "bot.db"))
    assert result.code == 2 and f"HIDREAM_DB_PATH: the bot may not write in {folder}" in result.err


@pytest.mark.parametrize(
    ("variable", "value", "prefix"),
    [
        ("SLACK_BOT_TOKEN", "xoxp-1-a-user-token", "xoxb-"),
        ("SLACK_BOT_TOKEN", "xapp-1-an-app-token", "xoxb-"),
        ("SLACK_APP_TOKEN", "xoxb-1-a-bot-token", "xapp-"),
    ],
)
def test_a_slack_token_of_the_wrong_kind(check, variable: str, value: str, prefix: str) -> None:
    env = {"SLACK_BOT_TOKEN": "xoxb-1-bot", "SLACK_APP_TOKEN": "xapp-1-app", variable: value}
    result = check(**env)
    assert result.code == 2
    assert f"{variable}: " in result.err and prefix in result.err
    assert value not in result.err + result.out


def test_rotating_slack_bot_tokens_are_bot_tokens(check) -> None:
    result = check(SLACK_BOT_TOKEN="xoxe.xoxb-1-rotating", SLACK_APP_TOKEN="xapp-1-app")
    assert result.code == 0, result.err


def test_slack_in_http_mode_without_a_public_url(check) -> None:
    env = {"SLACK_BOT_TOKEN": "xoxb-1-bot", "SLACK_SIGNING_SECRET": "signing-secret"}
    bare = check(**env)
    assert bare.code == 0, bare.err
    [warning] = [w for w in bare.warnings() if "Slack" in w]
    assert "HIDREAM_PUBLIC_URL is empty" in warning and "Socket Mode" in warning
    public = check(**env, HIDREAM_PUBLIC_URL="https://bot.example.com")
    assert not [w for w in public.warnings() if "HIDREAM_PUBLIC_URL" in w]
    socket_mode = check(SLACK_BOT_TOKEN="xoxb-1-bot", SLACK_APP_TOKEN="xapp-1-app")
    assert not [w for w in socket_mode.warnings() if "HIDREAM_PUBLIC_URL" in w]


def test_a_model_tier_the_provider_does_not_offer(check) -> None:
    env = {"HIDREAM_PROVIDER": "atlascloud", "ATLASCLOUD_API_KEY": "atlas-key"}
    result = check(**env, HIDREAM_MODEL="dev")
    assert result.code == 2
    assert "HIDREAM_MODEL=dev: atlascloud does not offer it (only full)" in result.err
    assert check(**env, HIDREAM_MODEL="full").code == 0


def test_several_provider_keys_and_no_choice(check) -> None:
    keys = {"FAL_KEY": "fal-key", "WAVESPEED_API_KEY": "wavespeed-key"}
    result = check(**keys)
    assert result.code == 0, result.err
    provider = next(line for line in result.out.splitlines() if line.startswith("provider:"))
    used = provider.split()[1].rstrip(",")
    [warning] = [w for w in result.warnings() if "several providers" in w]
    assert "fal" in warning and "wavespeed" in warning
    assert f"{used} is used" in warning and "HIDREAM_PROVIDER" in warning
    chosen = check(**keys, HIDREAM_PROVIDER="wavespeed")
    assert chosen.code == 0 and not [w for w in chosen.warnings() if "several providers" in w]
    one = check(FAL_KEY="fal-key")
    assert not [w for w in one.warnings() if "several providers" in w]


def test_an_unknown_log_level(check) -> None:
    result = check(HIDREAM_LOG_LEVEL="verbose")
    assert result.code == 2 and "HIDREAM_LOG_LEVEL" in result.err and "'verbose'" in result.err
    assert check(HIDREAM_LOG_LEVEL="debug").code == 0


def test_an_unknown_log_format(check) -> None:
    result = check(HIDREAM_LOG_FORMAT="xml")
    assert result.code == 2 and "HIDREAM_LOG_FORMAT" in result.err and "'text' or 'json'" in result.err
    assert check(HIDREAM_LOG_FORMAT="JSON").code == 0


@pytest.mark.parametrize(
    "env",
    [
        {"DISCORD_TOKEN": "MTE4.discord.token"},
        {"SLACK_BOT_TOKEN": "xoxb-1-bot", "SLACK_APP_TOKEN": "xapp-1-app"},
    ],
    ids=["discord", "slack"],
)
def test_a_chat_platform_on_the_sandbox(check, env: dict[str, str]) -> None:
    result = check(**env)
    assert result.code == 0, result.err
    [warning] = [w for w in result.warnings() if "sandbox" in w]
    assert "placeholders" in warning and "HIDREAM_PROVIDER" in warning
    paid = check(**env, FAL_KEY="fal-key")
    assert not [w for w in paid.warnings() if "sandbox" in w]
    console = check()
    assert not [w for w in console.warnings() if "sandbox" in w]


def test_a_paid_provider_for_chats_without_a_workspace_ceiling(check) -> None:
    chats = {"DISCORD_TOKEN": "MTE4.discord.token", "FAL_KEY": "fal-key"}
    [warning] = [w for w in check(**chats).warnings() if "HIDREAM_DAILY_WORKSPACE_QUOTA" in w]
    assert "without a ceiling" in warning and "fal account" in warning
    assert not [
        w for w in check(**chats, HIDREAM_DAILY_WORKSPACE_QUOTA="500").warnings() if "CEILING" in w.upper()
    ]
    assert not [w for w in check(FAL_KEY="fal-key").warnings() if "WORKSPACE_QUOTA" in w]  # the console alone


@pytest.mark.parametrize(
    "env",
    [
        {"DISCORD_TOKEN": "MTE4.discord.token"},
        {"SLACK_BOT_TOKEN": "xoxb-1-bot", "SLACK_APP_TOKEN": "xapp-1-app"},
    ],
    ids=["discord", "slack"],
)
def test_a_public_paid_deployment_needs_a_ceiling_or_a_persons_cap(check, env: dict[str, str]) -> None:
    def capped(**more: str) -> list[str]:
        return [w for w in check(**env, **more).warnings() if "HIDREAM_DAILY_PERSON_QUOTA" in w]

    [warning] = capped(FAL_KEY="fal-key")
    assert "a place of their own" in warning and "fal account" in warning
    assert capped(FAL_KEY="fal-key", HIDREAM_DAILY_PERSON_QUOTA="50") == []
    assert capped(FAL_KEY="fal-key", HIDREAM_DAILY_WORKSPACE_QUOTA="500") == []
    assert capped() == []  # the sandbox bills nobody


def test_public_metrics_without_a_token_are_warned_about(check) -> None:
    public = {"HIDREAM_PUBLIC_URL": "https://bot.example.com"}
    [warning] = [w for w in check(**public).warnings() if "/metrics" in w]
    assert "HIDREAM_ADMIN_TOKEN is empty" in warning
    token = {"HIDREAM_ADMIN_TOKEN": "an-admin-token-0123456789"}
    assert not [w for w in check(**public, **token).warnings() if "/metrics" in w]
    assert not [w for w in check().warnings() if "/metrics" in w]  # nothing reaches it from outside


def test_a_postgresql_database_is_named_without_its_password(check, postgres_database) -> None:
    # check connects: a database it reaches (trust authentication takes any password).
    url = postgres_url(postgres_database).split("?")[0]
    parts = urlsplit(url)
    with_password = url.replace(f"{parts.username}@", f"{parts.username}:s3cret-pw@", 1)
    result = check(HIDREAM_DATABASE_URL=with_password)
    assert result.code == 0, result.err
    label = f"postgresql://{parts.hostname}:{parts.port or 5432}{parts.path}"
    assert f"database:  {label} (connected)" in result.out
    assert "s3cret-pw" not in result.out + result.err
    # Where it cannot connect, it says so and fails, still without the password.
    port = closed_port()
    refused = check(HIDREAM_DATABASE_URL=f"postgresql://bot:s3cret-pw@127.0.0.1:{port}/hidream")
    assert refused.code == 2 and "Traceback" not in refused.err
    assert f"database:  postgresql://127.0.0.1:{port}/hidream\n" in refused.out
    assert "s3cret-pw" not in refused.out + refused.err


def test_a_database_url_that_is_not_postgresql(check) -> None:
    result = check(HIDREAM_DATABASE_URL="mysql://bot:s3cret-pw@db/hidream")
    assert result.code == 2
    assert "HIDREAM_DATABASE_URL: " in result.err and "postgresql://" in result.err
    assert "s3cret-pw" not in result.out + result.err


def test_several_providers_are_listed_in_order(check) -> None:
    keys = {"FAL_KEY": "fal-key", "WAVESPEED_API_KEY": "wavespeed-key", "PIXAZO_API_KEY": "pixazo-key"}
    result = check(**keys, HIDREAM_PROVIDERS="wavespeed, fal", HIDREAM_PROVIDER="pixazo")
    assert result.code == 0, result.err
    assert "providers: wavespeed, fal (in this order" in result.out
    listed = [line.split()[1].rstrip(",") for line in result.out.splitlines() if line.startswith("provider:")]
    assert listed == ["wavespeed", "fal"]  # HIDREAM_PROVIDERS wins over HIDREAM_PROVIDER
    assert not [w for w in result.warnings() if "several providers" in w]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("fal,replicate", "HIDREAM_PROVIDERS names replicate, which is not one of"),
        ("fal,pixazo", "HIDREAM_PROVIDERS names pixazo, which needs PIXAZO_API_KEY to be set"),
        ("fal,,wavespeed", "HIDREAM_PROVIDERS: "),
        ("fal,wavespeed,fal", "fal is named more than once"),
    ],
)
def test_a_bad_providers_list_is_named(check, value: str, message: str) -> None:
    result = check(FAL_KEY="fal-key", WAVESPEED_API_KEY="wavespeed-key", HIDREAM_PROVIDERS=value)
    assert result.code == 2
    assert message in result.err


def test_a_model_tier_only_a_later_provider_lacks_is_a_warning(check) -> None:
    keys = {"PIXAZO_API_KEY": "pixazo-key", "ATLASCLOUD_API_KEY": "atlas-key", "HIDREAM_MODEL": "dev"}
    result = check(**keys, HIDREAM_PROVIDERS="pixazo,atlascloud")
    assert result.code == 0, result.err
    assert [w for w in result.warnings() if "HIDREAM_MODEL=dev: atlascloud does not offer it" in w]
    first = check(**keys, HIDREAM_PROVIDERS="atlascloud,pixazo")
    assert first.code == 2 and "HIDREAM_MODEL=dev: atlascloud does not offer it" in first.err


# --- what `run` would trip on, found by check: one line naming the setting, no traceback -----------


def one_error(result: Checked) -> str:
    """check failed with one line of its own on standard error, and no traceback."""
    assert result.code == 2, result
    lines = [line for line in result.err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("hidream-bot: "), result.err
    assert "Traceback" not in result.err + result.out
    return lines[0]


def test_a_database_path_where_no_file_can_be_made(check) -> None:
    """/proc lets root through every mode check, yet takes no file: only trying tells."""
    if not Path("/proc/self").is_dir():
        skip_unless_ci("no /proc here")
    line = one_error(check(HIDREAM_DB_PATH="/proc/x.db"))
    assert line.startswith("hidream-bot: HIDREAM_DB_PATH: the bot may not write in /proc"), line


def test_the_database_folder_is_tried_and_left_as_it_was(check, tmp_path: Path) -> None:
    folder = tmp_path / "db"
    folder.mkdir()
    result = check(HIDREAM_DB_PATH=str(folder / "bot.db"))
    assert result.code == 0, result.err
    # The file made to try it is gone, and no database was made (the sandbox's own folder may be).
    assert [f.name for f in folder.iterdir() if f.name != "bot.db.sandbox"] == []


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ("garbage", words.DISCORD_TOKEN_SHAPE),
        ("MTE4.only-two", words.DISCORD_TOKEN_SHAPE),
        ("MTE4.with space.token", words.DISCORD_TOKEN_SHAPE),
        ("Bot MTE4.prefixed.token", words.DISCORD_TOKEN_PREFIXED),
    ],
)
def test_a_discord_token_that_is_not_shaped_like_one(check, value: str, said: str) -> None:
    line = one_error(check(DISCORD_TOKEN=value))
    assert line == f"hidream-bot: invalid setting: DISCORD_TOKEN: {said}"
    assert check(DISCORD_TOKEN="MTE4.Gx7kQp.aBcD-eF_gh").code == 0


@pytest.mark.parametrize("value", ["abc", "123,abc", "123;456", "１２３"])
def test_guild_ids_that_are_not_numbers(check, value: str) -> None:
    line = one_error(check(DISCORD_TOKEN="MTE4.discord.token", DISCORD_GUILD_IDS=value))
    assert line.startswith("hidream-bot: invalid setting: DISCORD_GUILD_IDS: ") and "not a server id" in line
    assert check(DISCORD_TOKEN="MTE4.discord.token", DISCORD_GUILD_IDS="123, 456").code == 0


def test_a_database_url_nothing_listens_at(check) -> None:
    port = closed_port()
    line = one_error(check(HIDREAM_DATABASE_URL=f"postgresql://bot@127.0.0.1:{port}/hidream"))
    assert line == (
        f"hidream-bot: HIDREAM_DATABASE_URL: could not connect to postgresql://127.0.0.1:{port}/hidream "
        f"(tried for at most 5 s): {words.DB_REFUSED}"
    )


@contextmanager
def silent_port() -> Iterator[int]:
    """A loopback port that takes connections (the kernel's backlog) and never answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        yield int(s.getsockname()[1])


def test_a_database_that_never_answers_is_given_up_at_the_limit(check, monkeypatch) -> None:
    monkeypatch.setattr(words, "DB_CONNECT_SECONDS", 0.2)  # 5 s in use
    with silent_port() as port:
        line = one_error(check(HIDREAM_DATABASE_URL=f"postgresql://bot@127.0.0.1:{port}/hidream"))
    assert line.endswith(f"(tried for at most 0.2 s): {words.DB_NO_ANSWER}"), line


def test_a_database_that_does_not_exist(check, postgres_database) -> None:
    url = postgres_url(postgres_database).split("?")[0]
    missing = url.rpartition("/")[0] + "/hidream_no_such_database"
    line = one_error(check(HIDREAM_DATABASE_URL=missing))
    assert line.endswith(words.DB_NO_SUCH_DATABASE), line


SLACK_IN_PART = [
    {"SLACK_BOT_TOKEN": "xoxb-1-bot"},
    {"SLACK_SIGNING_SECRET": "signing-secret"},
    {"SLACK_APP_TOKEN": "xapp-1-app"},
    {"SLACK_CLIENT_ID": "1.2", "SLACK_SIGNING_SECRET": "signing-secret"},
]


@pytest.mark.parametrize("env", SLACK_IN_PART, ids=lambda env: "+".join(env))
def test_slack_configured_in_part_is_refused_by_check(check, env: dict[str, str]) -> None:
    line = one_error(check(**env))
    assert all(name in line for name in env) and "without Slack" in line, line


@pytest.mark.parametrize("env", SLACK_IN_PART[:2], ids=lambda env: "+".join(env))
def test_slack_configured_in_part_is_refused_by_run(monkeypatch, capsys, tmp_path, level, env) -> None:
    """run no longer starts the console instead, without a word: exit 2 and the same line as check."""
    line = run_fails(monkeypatch, capsys, tmp_path, level, **env)
    assert all(name in line for name in env) and "without Slack" in line, line
    assert not (tmp_path / "out").exists()  # no console ran


def test_slack_oauth_without_a_secret_key_is_refused_as_run_refuses_it(check) -> None:
    oauth = {
        "SLACK_CLIENT_ID": "1.2",
        "SLACK_CLIENT_SECRET": "client-secret",
        "SLACK_SIGNING_SECRET": "signing-secret",
        "HIDREAM_PUBLIC_URL": "https://bot.example.com",
    }
    line = one_error(check(**oauth))
    assert line.startswith("hidream-bot: HIDREAM_SECRET_KEY is not set") and "openssl rand" in line
    keyed = check(**oauth, HIDREAM_SECRET_KEY="A" * 43 + "=")
    assert keyed.code == 0, keyed.err


def test_content_credentials_signed_by_the_bots_own_authority_are_said_to_be_untrusted(check) -> None:
    result = check()
    assert result.code == 0, result.err
    (line,) = [line for line in result.out.splitlines() if line.startswith("credentials:")]
    assert "the bot's own certificate authority" in line and "untrusted" in line
    assert "HIDREAM_C2PA_CERT" in line and "HIDREAM_C2PA_KEY" in line


def test_an_operators_content_credentials_certificate(check, tmp_path: Path) -> None:
    issued = issue("Example Studio signing")
    key_file = tmp_path / "c2pa-key.pem"
    key_file.write_text(issued.key)
    good = check(HIDREAM_C2PA_CERT=issued.chain, HIDREAM_C2PA_KEY=str(key_file))
    assert good.code == 0, good.err
    (line,) = [line for line in good.out.splitlines() if line.startswith("credentials:")]
    assert "HIDREAM_C2PA_CERT (CN=Example Studio signing" in line and "untrusted" not in line

    alone = check(HIDREAM_C2PA_CERT=issued.chain)
    assert alone.code == 2 and "HIDREAM_C2PA_CERT and HIDREAM_C2PA_KEY go together" in alone.err
    other = issue("Someone else")
    mismatched = check(HIDREAM_C2PA_CERT=issued.chain, HIDREAM_C2PA_KEY=other.key)
    assert mismatched.code == 2
    assert "HIDREAM_C2PA_KEY is not the key of the first certificate in HIDREAM_C2PA_CERT" in mismatched.err
    own = issue("Myself", self_signed=True)
    self_signed = check(HIDREAM_C2PA_CERT=own.chain, HIDREAM_C2PA_KEY=own.key)
    assert (
        self_signed.code == 2
        and "HIDREAM_C2PA_CERT: the signing certificate is self-signed" in self_signed.err
    )
    missing = check(HIDREAM_C2PA_CERT=str(tmp_path / "nowhere.pem"), HIDREAM_C2PA_KEY=issued.key)
    assert missing.code == 2 and "HIDREAM_C2PA_CERT: neither PEM text nor the path of a file" in missing.err
    # The key, given as PEM text, is never printed.
    assert "PRIVATE KEY" not in mismatched.out + mismatched.err
