"""The floor under `make bench`'s CPU per job: what moving one job's bytes costs this machine's kernel,
with no bot at all.

Each job of the burst receives its result (2.26 MB) from the provider over loopback TCP, keeps it in a
media file (O_DIRECT and fsync: storage/durable.py), and sends it to Discord over loopback TCP. This
does exactly that with plain sockets and no Python work worth the name: a helper process serves the
bytes and swallows the upload, and this process's CPU time (user + system) is read around each part.
Whatever the bot spends above these figures is its own (HTTP, the store, discord.py, the event loop).
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import sys
import tempfile
import time
from multiprocessing import Process
from pathlib import Path

from storage.durable import write_synced

SIZE = 2_261_209  # the benchmark's result PNG


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _peer(port: int, rounds: int) -> None:
    """Serve SIZE bytes on one connection and swallow SIZE bytes on another, `rounds` times."""
    payload = os.urandom(SIZE)
    with (
        socket.create_connection(("127.0.0.1", port)) as give,
        socket.create_connection(("127.0.0.1", port)) as take,
    ):
        sink = bytearray(1 << 20)
        for _ in range(rounds):
            give.sendall(payload)
            left = SIZE
            while left:
                left -= take.recv_into(sink)
            take.sendall(b"k")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    peer = Process(target=_peer, args=(port, args.rounds), daemon=True)
    peer.start()
    download, _ = listener.accept()
    upload, _ = listener.accept()
    spent = {"receive": 0.0, "keep": 0.0, "send": 0.0}
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as tmp:
        folder = Path(tmp)
        started = time.monotonic()
        for i in range(args.rounds):
            t0 = _cpu()
            data = bytearray(SIZE)
            view = memoryview(data)
            got = 0
            while got < SIZE:
                got += download.recv_into(view[got:])
            t1 = _cpu()
            fd = os.open(folder / f"r{i}", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                write_synced(fd, folder, bytes(data))
            finally:
                os.close(fd)
            t2 = _cpu()
            upload.sendall(data)
            upload.recv(1)
            t3 = _cpu()
            spent["receive"] += t1 - t0
            spent["keep"] += t2 - t1
            spent["send"] += t3 - t2
        wall = time.monotonic() - started
    peer.join(10)
    per = {part: round(seconds * 1000 / args.rounds, 2) for part, seconds in spent.items()}
    total = round(sum(per.values()), 2)
    print(f"# {args.rounds} results of {SIZE} bytes, {wall:.1f} s", file=sys.stderr)
    print("| part | CPU ms per job |\n|---|---|")
    for part, ms in per.items():
        print(f"| {part} | {ms} |")
    print(f"| all | {total} |")


if __name__ == "__main__":
    main()
