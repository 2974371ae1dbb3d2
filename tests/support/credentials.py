"""Content credentials as a reader sees them (c2pa's own Reader), and certificates an operator might
give the bot (HIDREAM_C2PA_CERT / HIDREAM_C2PA_KEY), made here with `cryptography`."""

from __future__ import annotations

import datetime
import io
import json
import struct
from dataclasses import dataclass
from typing import Any

import c2pa
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from bot.jobs.credentials import ASSERTION

TYPES = {b"\x89PNG": "image/png", b"\xff\xd8\xff": "image/jpeg", b"RIFF": "image/webp"}


def content_type(data: bytes) -> str:
    return next(t for magic, t in TYPES.items() if data.startswith(magic))


@dataclass(frozen=True)
class Read:
    """What c2pa's Reader says of one image: the whole store, and its active manifest."""

    store: dict[str, Any]

    @property
    def label(self) -> str:
        return str(self.store["active_manifest"])

    @property
    def active(self) -> dict[str, Any]:
        return self.manifest(self.label)

    def manifest(self, label: str) -> dict[str, Any]:
        return dict(self.store["manifests"][label])

    def actions(self, label: str | None = None) -> list[dict[str, Any]]:
        manifest = self.manifest(label or self.label)
        (found,) = [a for a in manifest["assertions"] if a["label"].startswith("c2pa.actions")]
        return list(found["data"]["actions"])

    def generation(self, label: str | None = None) -> dict[str, Any]:
        manifest = self.manifest(label or self.label)
        (found,) = [a for a in manifest["assertions"] if a["label"] == ASSERTION]
        return dict(found["data"])

    def parent_of(self, label: str) -> str | None:
        """The label of the manifest that `label`'s parentOf ingredient carries."""
        parents = [i for i in self.manifest(label).get("ingredients", []) if i["relationship"] == "parentOf"]
        return str(parents[0]["active_manifest"]) if parents else None

    def status_codes(self) -> set[str]:
        return {s["code"] for s in self.store.get("validation_status", [])}


def read(data: bytes) -> Read:
    with c2pa.Reader(content_type(data), io.BytesIO(data)) as reader:
        return Read(json.loads(reader.json()))


@dataclass(frozen=True)
class Issued:
    chain: str  # PEM: the signing certificate, then its authority
    key: str  # PEM private key
    common_name: str


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def issue(common_name: str, *, edwards: bool = False, self_signed: bool = False) -> Issued:
    """A signing certificate for `common_name` and its key (EC P-256, or Ed25519), issued by a new
    authority (or by itself: what C2PA refuses)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name(f"{common_name} authority")
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey = (
        ed25519.Ed25519PrivateKey.generate() if edwards else ec.generate_private_key(ec.SECP256R1())
    )
    signer_key: Any = key if self_signed else ca_key
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name) if self_signed else ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=90))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
    )
    if not self_signed:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    cert = builder.sign(signer_key, None if edwards and self_signed else hashes.SHA256())
    chain = cert.public_bytes(serialization.Encoding.PEM)
    if not self_signed:
        chain += ca.public_bytes(serialization.Encoding.PEM)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return Issued(chain.decode(), pem.decode(), common_name)


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """A PNG's chunks: (type, the whole chunk with its length and CRC)."""
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    chunks, i = [], 8
    while i < len(data):
        (length,) = struct.unpack(">I", data[i : i + 4])
        chunks.append((data[i + 4 : i + 8], data[i : i + 12 + length]))
        i += 12 + length
    return chunks


def without_credentials(png: bytes) -> bytes:
    """A PNG without its content credentials (C2PA keeps its manifest store in one `caBX` chunk):
    the image's own bytes, as they were before signing."""
    return png[:8] + b"".join(chunk for kind, chunk in png_chunks(png) if kind != b"caBX")
