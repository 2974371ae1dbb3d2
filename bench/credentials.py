"""What signing a result's content credentials costs (bot/jobs/credentials.py, issue 22).

`sign` is timed on a 2 MB PNG (noise, so it does not compress: the size of the burst's results) and on
a 256x256 sandbox image, with c2pa's default settings (it embeds a thumbnail of the image in the
manifest) and with the bot's (SIGNING_SETTINGS: no thumbnail). The figure is this process's CPU (user +
system) per signature, and the signed file's growth.

    python -m bench.credentials [--count 10]
"""

from __future__ import annotations

import argparse
import io
import os
import resource

from PIL import Image

from bot.jobs import credentials
from bot.providers.sandbox.art import ArtSpec, render


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _key() -> credentials.SigningKey:
    return credentials.authority_key(credentials.make_authority())


def _noise_png() -> bytes:
    out = io.BytesIO()
    Image.frombytes("RGB", (1024, 736), os.urandom(1024 * 736 * 3)).save(out, "PNG")
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=10)
    count = parser.parse_args().count
    key = _key()
    facts = credentials.Facts(provider="sandbox", model="full", prompt=None)
    images = {
        "2 MB PNG": _noise_png(),
        "256x256 sandbox PNG": render(ArtSpec("a fox", 1, 256, 256, "full", "png"), [], 0),
    }
    ours = credentials.SIGNING_SETTINGS
    print(f"content credentials: CPU per signature, {count} signatures each")
    for name, data in images.items():
        for label, settings in (("c2pa defaults (thumbnail)", {}), ("the bot's (no thumbnail)", ours)):
            credentials.SIGNING_SETTINGS = settings
            start = _cpu()
            for _ in range(count):
                signed = credentials.sign(data, "image/png", facts, key)
            per = (_cpu() - start) / count * 1000
            grown = (len(signed) - len(data)) / 1024
            print(f"  {name:22} {label:27} {per:7.1f} ms  +{grown:5.1f} KB")
    credentials.SIGNING_SETTINGS = ours


if __name__ == "__main__":
    main()
