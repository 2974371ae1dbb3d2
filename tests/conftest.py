"""Shared test set-up: no setting leaks in from the shell, and nothing leaves the machine."""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

import pytest

from tests.support.harness import LOOPBACK_RESULT_HOSTS, SETTINGS_ENV
from tests.support.processes import cli  # noqa: F401 (the in-process `hidream-bot` fixture, for every test module)

pytest_plugins = ["tests.fakes.provider_fixtures", "tests.support.store_backends", "tests.support.s3"]

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _check_address(address: Any) -> None:
    if isinstance(address, tuple) and address:
        host = address[0]
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            raise RuntimeError(
                f"test tried to connect to a host name {host!r}: tests stay on loopback"
            ) from None
        if not ip.is_loopback:
            raise RuntimeError(f"test tried to reach {host}: tests never leave the machine")


def _guarded_connect(self: socket.socket, address: Any) -> None:
    _check_address(address)
    return _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: Any) -> int:
    _check_address(address)
    return _real_connect_ex(self, address)


@pytest.fixture(autouse=True)
def _no_network_and_clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    for name in SETTINGS_ENV:
        monkeypatch.delenv(name, raising=False)
    # The fakes serve result files on loopback: trusted for the bots tests start from the environment.
    monkeypatch.setenv("HIDREAM_TRUSTED_RESULT_HOSTS", LOOPBACK_RESULT_HOSTS)
    monkeypatch.chdir(tmp_path)  # a stray .env in the checkout is never read
    monkeypatch.setattr(socket.socket, "connect", _guarded_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", _guarded_connect_ex)
