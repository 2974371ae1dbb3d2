"""How many malloc arenas the process may have (glibc only).

glibc gives a thread that allocates while others do an arena of its own, up to eight per core. The bot
moves blocking work to threads all the time (a result's spooled file opened, written, read for its
header, signed, kept; Pillow's checks), so the bytes of one job are allocated and freed across several
arenas, and the pages left part-used in each are not handed back: a 5,000-job run's resident memory
grew 17-21 MB this way with glibc's default, 6.7 MB with two arenas (tests/test_faults_memory.py;
docs/reliability.md). Two arenas are what the loop and its threads need; an operator's own
MALLOC_ARENA_MAX, which glibc reads at start, is left as it is."""

from __future__ import annotations

import ctypes
import ctypes.util
import os

ARENAS = 2
# mallopt's parameter number for the arena limit (glibc's malloc.h).
_M_ARENA_MAX = -8


def bound_arenas(arenas: int = ARENAS) -> bool:
    """Limit the process to `arenas` malloc arenas from now on; whether the limit was set (False: not
    glibc, or the operator chose with MALLOC_ARENA_MAX)."""
    if "MALLOC_ARENA_MAX" in os.environ:
        return False
    name = ctypes.util.find_library("c")
    mallopt = getattr(ctypes.CDLL(name), "mallopt", None) if name else None
    if mallopt is None:
        return False
    return bool(mallopt(_M_ARENA_MAX, arenas))
