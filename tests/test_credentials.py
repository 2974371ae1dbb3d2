"""Content credentials (C2PA) on every delivered image, read back with c2pa's own Reader: through the
console and Discord against the sandbox provider, the chain of an edit of an edit, the prompt only where
the tenant's admins allow it, the operator's certificate, the bot's own authority kept (and sealed) in
the database, and an image delivered without credentials when they cannot be signed."""

from __future__ import annotations

import asyncio
import errno
import io
import json
import logging
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.fernet import Fernet
from PIL import Image

from bot import words
from bot.jobs.credentials import (
    AUTHORITY,
    TRAINED,
    Facts,
    SigningKey,
    authority_key,
    make_authority,
    own_authority,
)
from storage.preferences import Preferences, TenantPolicy
from tests.fakes.discord import FakeDiscord
from tests.fakes.discord_harness import discord_bot, with_files
from tests.fakes.discord_payloads import MANAGE_GUILD, MEMBER_PERMS
from tests.support.console import Console
from tests.support.credentials import issue, read
from tests.support.harness import BotHarness, settings_for_test
from tests.support.store_backends import OpenStore


def _key() -> str:
    return Fernet.generate_key().decode()


async def test_a_console_job_delivers_an_image_whose_credentials_name_the_bot_provider_and_model(
    tmp_path: Path,
) -> None:
    console = Console(tmp_path)
    async with BotHarness(tmp_path, surfaces=[console.factory]) as bot:
        (path,) = await console.run(bot, "/hidream a red fox in snow --seed 7")
        assert console.chat is not None
        job = await bot.engine.job(console.chat.last_job_id or "")
        assert job is not None
        data = path.read_bytes()
        seen = read(data)
        assert seen.active["claim_generator_info"][0]["name"] == "hidream-bot"
        (created,) = seen.actions()
        assert created["action"] == "c2pa.created" and created["digitalSourceType"] == TRAINED
        assert created["softwareAgent"]["name"] == f"HiDream-O1 {job.tier} via sandbox"
        assert created["parameters"] == {"provider": "sandbox", "model": f"HiDream-O1 {job.tier}"}
        assert seen.generation() == {
            "generator": "HiDream-O1",
            "provider": "sandbox",
            "model": f"HiDream-O1 {job.tier}",
        }
        # The prompt is withheld unless the tenant's admins allow it.
        assert "red fox" not in json.dumps(seen.store)
        # Signed by the bot's own authority: valid, and reported as untrusted.
        assert "signingCredential.untrusted" in seen.status_codes()
        assert seen.store["validation_state"] == "Valid"
        assert seen.active["signature_info"]["common_name"] == "hidream-bot content credentials"
        # No copy of the picture inside its own manifest (c2pa's default thumbnail: most of the
        # signing's CPU and tens of kilobytes a file; docs/benchmarks.md).
        assert "thumbnail" not in seen.active
        # What the store holds (what an edit opens, and every later delivery) is the signed image.
        (held,) = await bot.engine.result_images(job)
        assert held.data == data


async def test_an_edit_of_an_edit_carries_the_chain_of_its_sources(tmp_path: Path) -> None:
    console = Console(tmp_path)
    async with BotHarness(tmp_path, surfaces=[console.factory]) as bot:
        assert console.chat is not None
        (first,) = await console.run(bot, "/hidream a castle --seed 1")
        first_job = console.chat.last_job_id
        (second,) = await console.run(bot, "/edit last make it night --format jpeg")
        second_job = console.chat.last_job_id
        (third,) = await console.run(bot, "/edit last add snow --format webp")
        assert (first.suffix, second.suffix, third.suffix) == (".png", ".jpg", ".webp")

        seen = read(third.read_bytes())
        opened, edited = seen.actions()
        assert opened["action"] == "c2pa.opened" and len(opened["parameters"]["ingredients"]) == 1
        assert edited["action"] == "c2pa.edited" and edited["digitalSourceType"] == TRAINED
        (ingredient,) = seen.active["ingredients"]
        assert ingredient["relationship"] == "parentOf" and ingredient["title"] == f"job {second_job}"
        assert ingredient["format"] == "image/jpeg"

        # The edit names its parent's manifest, which names its own parent's: the first image's.
        parent = seen.parent_of(seen.label)
        assert parent == read(second.read_bytes()).label
        grandparent = seen.parent_of(parent)
        assert grandparent == read(first.read_bytes()).label
        assert seen.parent_of(grandparent) is None
        assert [a["action"] for a in seen.actions(grandparent)] == ["c2pa.created"]
        assert [a["action"] for a in seen.actions(parent)] == ["c2pa.opened", "c2pa.edited"]
        (middle,) = seen.manifest(parent)["ingredients"]
        assert middle["title"] == f"job {first_job}"
        # Every manifest of the chain validates (only its issuer is untrusted).
        failures = {s["code"] for s in seen.store["validation_results"]["activeManifest"]["failure"]}
        assert failures == {"signingCredential.untrusted"}


async def test_the_prompt_goes_in_only_while_the_tenants_admins_allow_it(tmp_path: Path) -> None:
    console = Console(tmp_path)
    async with BotHarness(tmp_path, surfaces=[console.factory]) as bot:
        await console.run(bot, "/policy")
        assert "prompts in content credentials: off" in console.err.getvalue()
        await console.run(bot, "/policy credentials-prompt maybe")
        assert "maybe is not a choice for credentials-prompt: use on or off" in console.err.getvalue()

        await console.run(bot, "/policy credentials-prompt on")
        assert "prompts in content credentials: on" in console.err.getvalue()
        (allowed,) = await console.run(bot, "/hidream a blue whale --seed 2")
        seen = read(allowed.read_bytes())
        assert seen.generation()["prompt"] == "a blue whale"
        assert seen.actions()[0]["description"] == "a blue whale"

        await console.run(bot, "/policy credentials-prompt off")
        (withheld,) = await console.run(bot, "/hidream a green whale --seed 3")
        seen = read(withheld.read_bytes())
        assert "prompt" not in seen.generation() and "green whale" not in json.dumps(seen.store)


def _attachment_bytes(fake: FakeDiscord, message: dict[str, Any]) -> bytes:
    url = message["attachments"][0]["url"]
    return fake.cdn[url.split("/cdn/", 1)[1].split("?", 1)[0]][0]


def _policy(fake: FakeDiscord, value: str, *, admin: bool) -> dict[str, Any]:
    perms = MEMBER_PERMS | MANAGE_GUILD if admin else MEMBER_PERMS
    options = {"action": "credentials-prompt", "value": value}
    return fake.slash_payload(options, name="hidream-policy", permissions=perms)


async def _answer(fake: FakeDiscord, payload: dict[str, Any], expected: str) -> str:
    before = len(fake.ephemeral_texts())
    await fake.interact(payload)
    found: list[str] = await fake.wait_for(
        lambda: [t for t in fake.ephemeral_texts()[before:] if expected in t]
    )
    return found[0]


async def _image(fake: FakeDiscord, prompt: str) -> bytes:
    """The image posted for a new /hidream: the bytes of the first message with files it made."""
    before = {k for k, m in fake.messages.items() if with_files(m)}
    await fake.interact(fake.slash_payload({"prompt": prompt}))
    posted = await fake.wait_for(
        lambda: [m for k, m in fake.messages.items() if with_files(m) and k not in before]
    )
    return _attachment_bytes(fake, posted[0])


async def test_on_discord_only_an_admin_lets_prompts_into_the_servers_credentials(tmp_path: Path) -> None:
    async with FakeDiscord() as fake, discord_bot(tmp_path, fake) as (bot, _):
        refused = await _answer(fake, _policy(fake, "on", admin=False), words.POLICY_REFUSED)
        assert refused == words.POLICY_REFUSED
        first = read(await _image(fake, "a quiet harbour at dawn"))
        await bot.runner.wait_idle()
        assert "harbour" not in json.dumps(first.store)
        assert first.generation()["provider"] == "sandbox"

        shown = await _answer(fake, _policy(fake, "on", admin=True), "Policy here")
        assert "prompts in content credentials: on" in shown
        second = read(await _image(fake, "a busy harbour at noon"))
        await bot.runner.wait_idle()
        assert second.generation()["prompt"] == "a busy harbour at noon"


async def test_an_operators_certificate_signs_instead_of_the_bots_own(tmp_path: Path) -> None:
    issued = issue("Example Studio signing", edwards=True)
    key_file = tmp_path / "c2pa-key.pem"
    key_file.write_text(issued.key)
    env = {"HIDREAM_C2PA_CERT": issued.chain, "HIDREAM_C2PA_KEY": str(key_file)}
    console = Console(tmp_path)
    async with BotHarness(tmp_path, env, surfaces=[console.factory]) as bot:
        (path,) = await console.run(bot, "/hidream a lighthouse --seed 4")
        seen = read(path.read_bytes())
        info = seen.active["signature_info"]
        assert info["common_name"] == "Example Studio signing" and info["alg"].lower() == "ed25519"
        assert "signingCredential.untrusted" in seen.status_codes()  # its authority is in no trust list
        # No authority of the bot's own was made.
        with sqlite3.connect(tmp_path / "bot.db") as conn:
            assert conn.execute("SELECT count(*) FROM meta WHERE key=?", (AUTHORITY,)).fetchone() == (0,)
        assert bot.runner.credentials is not None and not bot.runner.credentials.key.own_authority


async def test_the_bots_own_authority_is_made_once_kept_and_sealed(tmp_path: Path) -> None:
    env = {"HIDREAM_SECRET_KEY": _key()}
    console = Console(tmp_path)
    async with BotHarness(tmp_path, env, surfaces=[console.factory]) as bot:
        (first,) = await console.run(bot, "/hidream a field of tulips --seed 5")
    with sqlite3.connect(tmp_path / "bot.db") as conn:
        (stored,) = conn.execute("SELECT value FROM meta WHERE key=?", (AUTHORITY,)).fetchone()
    fields = json.loads(stored)
    assert fields["key"].startswith("fernet:") and fields["ca_key"].startswith("fernet:")
    assert "PRIVATE KEY" not in stored
    ca = x509.load_pem_x509_certificate(fields["ca_cert"].encode())
    signer = x509.load_pem_x509_certificate(fields["cert"].encode())
    assert signer.issuer == ca.subject and signer.subject != signer.issuer  # not self-signed
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca

    # A restart on the same database signs with the same certificate.
    console = Console(tmp_path)
    async with BotHarness(tmp_path, env, surfaces=[console.factory]) as bot:
        (second,) = await console.run(bot, "/hidream a field of poppies --seed 6")
    serials = {read(p.read_bytes()).active["signature_info"]["cert_serial_number"] for p in (first, second)}
    assert serials == {str(signer.serial_number)}

    # Without the key it was sealed with, the bot says which setting it needs, and does not start.
    with pytest.raises(Exception, match="HIDREAM_SECRET_KEY is not set"):
        async with BotHarness(tmp_path):
            pass


async def test_an_image_that_cannot_be_signed_is_delivered_without_credentials_and_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import datetime

    import c2pa

    # A signing certificate that has expired: c2pa refuses to sign with it.
    old = make_authority(datetime.datetime(2001, 1, 1, tzinfo=datetime.UTC))
    expired = SigningKey((old["cert"] + old["ca_cert"]).encode(), old["key"].encode(), "es256", True)
    console = Console(tmp_path)
    async with BotHarness(tmp_path, surfaces=[console.factory]) as bot:
        assert bot.runner.credentials is not None
        bot.runner.credentials.key = expired
        with caplog.at_level(logging.WARNING, logger="bot.jobs.credentials"):
            paths = await console.run(bot, "/hidream two boats --n 2 --seed 8")
        assert console.chat is not None
        job = await bot.engine.job(console.chat.last_job_id or "")
        assert job is not None and job.state == "delivered" and len(job.result_media) == 2
        held = await bot.engine.result_images(job)
        assert [p.read_bytes() for p in paths] == [h.data for h in held]
        for image in held:
            assert image.data.startswith(b"\x89PNG")
            with pytest.raises(c2pa.C2paError):
                read(image.data)
        lines = [r for r in caplog.records if r.name == "bot.jobs.credentials"]
        assert len(lines) == 1 and job.id in lines[0].getMessage()


async def test_replicas_starting_at_once_share_one_authority_and_the_policy_round_trips(
    open_store: OpenStore, tmp_path: Path
) -> None:
    settings = settings_for_test(tmp_path, HIDREAM_SECRET_KEY=_key())
    async with open_store(default_limit=25) as one, open_store(default_limit=25) as two:
        first, second = await asyncio.gather(own_authority(one, settings), own_authority(two, settings))
        assert first == second and first.own_authority
        assert (await own_authority(one, settings)) == first
        rows = Preferences(one)
        assert (await rows.policy("discord:1")).credentials_prompt is False
        await rows.set_policy("discord:1", TenantPolicy(credentials_prompt=True))
        assert (await Preferences(two).policy("discord:1")).credentials_prompt is True
        assert (await rows.policy("discord:2")).credentials_prompt is False


async def test_an_upscale_opens_its_parent_and_a_zoom_names_the_image_its_canvas_holds(
    tmp_path: Path,
) -> None:
    console = Console(tmp_path)
    async with BotHarness(tmp_path, surfaces=[console.factory]) as bot:
        assert console.chat is not None
        (first,) = await console.run(bot, "/hidream a lighthouse on a cliff --seed 9")
        first_job = console.chat.last_job_id or ""
        origin = read(first.read_bytes()).label

        (upscaled,) = await console.run(bot, "/upscale last")
        seen = read(upscaled.read_bytes())
        assert [a["action"] for a in seen.actions()] == ["c2pa.opened", "c2pa.edited"]
        assert seen.parent_of(seen.label) == origin

        (zoomed,) = await console.run(bot, f"/zoom 2 {first_job[:8]}")
        seen = read(zoomed.read_bytes())
        assert [a["action"] for a in seen.actions()] == ["c2pa.opened", "c2pa.placed", "c2pa.edited"]
        by_relation = {i["relationship"]: i for i in seen.active["ingredients"]}
        # The canvas the bot built is the source; the image it holds is a component, with its chain.
        assert (
            by_relation["parentOf"]["title"] == "canvas" and "active_manifest" not in by_relation["parentOf"]
        )
        assert by_relation["componentOf"]["title"] == f"job {first_job}"
        assert by_relation["componentOf"]["active_manifest"] == origin


FACTS = Facts(provider="sandbox", model="full")


def _spooled(tmp_path: Path) -> tuple[Path, bytes]:
    """A small PNG in a file, as a spooled result is, and its bytes."""
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 40)).save(buffer, "PNG")
    image = tmp_path / "result.png"
    image.write_bytes(buffer.getvalue())
    return image, buffer.getvalue()


@pytest.mark.parametrize("in_memory", [True, False])
def test_a_spooled_result_is_signed_into_memory_or_file_to_file_by_its_size_with_the_same_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, in_memory: bool
) -> None:
    # Small files are signed into memory and written back over their own bytes (fewer system calls,
    # no new pages), large ones file to file (never held whole twice over): either way the file ends
    # signed, and nothing is left beside it.
    from bot.jobs import credentials

    image, original = _spooled(tmp_path)
    size = len(original)
    monkeypatch.setattr(credentials, "IN_MEMORY_SIGNING", size if in_memory else size - 1)
    streams: list[tuple[str, str]] = []
    real_sign_stream = credentials.sign_stream

    def spying(source: Any, out: Any, *args: Any) -> None:
        streams.append((type(source).__name__, type(out).__name__))
        real_sign_stream(source, out, *args)

    monkeypatch.setattr(credentials, "sign_stream", spying)
    credentials.sign_file(image, "image/png", FACTS, authority_key(make_authority()))
    assert streams == [("BufferedRandom", "BytesIO") if in_memory else ("BufferedReader", "BufferedRandom")]
    seen = read(image.read_bytes())
    assert seen.store["validation_state"] == "Valid"
    assert seen.generation()["provider"] == "sandbox"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.png"]


def test_a_disk_without_room_for_the_signed_image_leaves_the_spooled_one_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.jobs import credentials

    image, original = _spooled(tmp_path)

    def full(fd: int, offset: int, length: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full)
    with pytest.raises(OSError):
        credentials.sign_file(image, "image/png", FACTS, authority_key(make_authority()))
    assert image.read_bytes() == original


def test_a_signed_image_that_cannot_be_written_back_is_a_store_failure_not_an_image_to_deliver(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Half written back, the file is neither the image nor its signed copy: ContentCredentials must not
    # deliver it unsigned (as it does when signing itself fails), so this is the store's failure.
    from bot.jobs import credentials
    from bot.model.errors import StoreUnavailable

    image, _ = _spooled(tmp_path)
    real_open = Path.open

    class FailingWrites:
        def __init__(self, handle: Any) -> None:
            self.handle = handle

        def __getattr__(self, name: str) -> Any:
            return getattr(self.handle, name)

        def __enter__(self) -> FailingWrites:
            return self

        def __exit__(self, *exc: object) -> None:
            self.handle.close()

        def write(self, data: Any) -> int:
            raise OSError(errno.EIO, "Input/output error")

    def opening(self: Path, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        handle = real_open(self, mode, *args, **kwargs)
        return FailingWrites(handle) if mode == "r+b" else handle

    monkeypatch.setattr(Path, "open", opening)
    with pytest.raises(StoreUnavailable, match="Input/output error"):
        credentials.sign_file(image, "image/png", FACTS, authority_key(make_authority()))
