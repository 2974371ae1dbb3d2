"""A local S3-compatible server for the object-store tests and benchmarks.

Debian's archive has no S3 server that runs on its own (its only one, Ceph's radosgw, needs a Ceph
cluster), so the stand-in is moto's server mode (`moto[server]`, a dev dependency): a faithful
implementation of the S3 API (signatures, multipart uploads, ranged reads, presigned URLs) written
for testing. It runs in a process of its own, on a free loopback port it picks itself and reports.
Under CI=true a server that cannot start fails the test; elsewhere the test is skipped.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

# Run in the child: the server on port 0 (the system picks a free one), its port on one line, then
# serve until standard input closes (the parent ended or died).
_SERVER = """
import sys
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
print(server.get_host_and_port()[1], flush=True)
sys.stdin.read()
server.stop()
"""

# moto accepts any credentials; these are the ones the tests and benchmarks sign with.
ACCESS_KEY = "hidream-test-key"
SECRET_KEY = "hidream-test-secret"
REGION = "us-east-1"


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    process: subprocess.Popen[str]

    def env(self, bucket: str, prefix: str = "media", *, redirect: bool = False) -> dict[str, str]:
        """The bot's settings for a store in `bucket` under `prefix` on this server."""
        return {
            "HIDREAM_MEDIA_URL": f"s3://{bucket}/{prefix}",
            "HIDREAM_S3_ENDPOINT": self.endpoint,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_REGION": REGION,
            "HIDREAM_MEDIA_REDIRECT": "true" if redirect else "false",
        }


def start_server() -> S3Server:
    """Start the server; raises RuntimeError when it cannot."""
    try:
        process = subprocess.Popen(
            [sys.executable, "-c", _SERVER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
    except OSError as exc:
        raise RuntimeError(f"cannot start the local S3 server: {exc}") from exc
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    if not line.isdigit():
        process.kill()
        process.wait()
        raise RuntimeError("the local S3 server (moto[server]) did not start: is moto installed?")
    return S3Server(f"http://127.0.0.1:{int(line)}", process)


def stop_server(server: S3Server) -> None:
    if server.process.stdin is not None:
        server.process.stdin.close()
    try:
        server.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    try:
        server = start_server()
    except RuntimeError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{exc} (under CI=true the object-store tests need it)")
        pytest.skip(str(exc))
    try:
        yield server
    finally:
        stop_server(server)


def create_bucket(server: S3Server) -> str:
    """A new empty bucket on `server` (its name)."""
    bucket = f"hidream-{secrets.token_hex(6)}"
    client(server).create_bucket(Bucket=bucket)
    return bucket


def keys(server: S3Server, bucket: str) -> dict[str, int]:
    """Every object in `bucket`: key -> size, as seen from outside the bot."""
    pages = client(server).get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return {o["Key"]: int(o["Size"]) for page in pages for o in page.get("Contents", [])}


def client(server: S3Server) -> Any:
    """A plain boto3 client on `server` (moto's own dependency), to look into buckets from outside the
    bot's own client."""
    import boto3  # type: ignore[import-untyped]

    return boto3.client(
        "s3",
        endpoint_url=server.endpoint,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name=REGION,
    )
