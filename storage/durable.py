"""Writing an image file whole and synced, for as little CPU as the kernel allows.

A result is written once and read seldom (an edit, a lost post), so it has no business in the page
cache: writing it through the cache and syncing it costs the bot's CPU several times what writing it
with O_DIRECT from an aligned buffer does (nearly all of it kernel time spent on the cache's pages),
and on the burst it shows (see docs/benchmarks.md, "Issue 18: hand-written infrastructure, measured
again"). Reading such a file back later comes from the disk: a seldom read can afford that.

So the whole 4 KiB blocks of a large file are written with O_DIRECT, a MiB at a time through one
page-aligned buffer per thread, and the tail (under 4 KiB) through the cache; then the file is synced.
Where O_DIRECT is missing (not Linux) or refused (tmpfs on older kernels, some network filesystems),
the file is written through the cache as before, and that folder is not tried again.
"""

from __future__ import annotations

import errno
import fcntl
import mmap
import os
import threading
from pathlib import Path

BLOCK = 4096  # a multiple of every logical block size O_DIRECT asks alignment to
CHUNK = 1 << 20  # bytes copied into the aligned buffer per write
DIRECT_FROM = 256 * 1024  # smaller files go through the cache: too little to matter
_DIRECT = getattr(os, "O_DIRECT", 0)

_local = threading.local()
_refused: set[Path] = set()  # folders where O_DIRECT was refused


def _buffer() -> mmap.mmap:
    """This thread's page-aligned buffer (an anonymous mapping is page-aligned)."""
    buf: mmap.mmap | None = getattr(_local, "buffer", None)
    if buf is None:
        buf = _local.buffer = mmap.mmap(-1, CHUNK)
    return buf


def write_synced(fd: int, folder: Path, data: bytes) -> None:
    """Write `data` to the new, empty file `fd` (in `folder`) and sync it to disk."""
    whole = len(data) // BLOCK * BLOCK
    view = memoryview(data)
    written = 0
    if _DIRECT and whole >= DIRECT_FROM and folder not in _refused:
        written = _write_direct(fd, view[:whole])
        if written < 0:
            _refused.add(folder)
            written = 0
    while written < len(data):
        written += os.write(fd, view[written:])
    os.fsync(fd)


def _write_direct(fd: int, view: memoryview) -> int:
    """Write `view` (whole blocks) at the start of `fd` with O_DIRECT; how much was written, or -1
    when this filesystem refuses O_DIRECT before anything was written."""
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    try:
        fcntl.fcntl(fd, fcntl.F_SETFL, flags | _DIRECT)
    except OSError as exc:
        if exc.errno == errno.EINVAL:
            return -1
        raise
    buf = _buffer()
    aligned = memoryview(buf)
    written = 0
    try:
        while written < len(view):
            n = min(CHUNK, len(view) - written)
            aligned[:n] = view[written : written + n]
            try:
                done = os.write(fd, aligned[:n])
            except OSError as exc:
                if exc.errno == errno.EINVAL and written == 0:
                    return -1
                raise
            if done != n:  # a short direct write: go on through the cache from here
                return written + done
            written += n
    finally:
        aligned.release()
        fcntl.fcntl(fd, fcntl.F_SETFL, flags)
    return written
