"""What the core asks of a store, whatever database keeps it: the one store of storage/store.py (jobs
and their guarded state changes, the usage ledger and its limits, media, the posts that carry each job,
kept secrets), opened by storage/sqlite.py (the embedded default) or storage/postgres.py. One test
suite (tests/support/store_backends.py) runs against both."""

from __future__ import annotations

from storage.posts import NewMedia, StoredMedia
from storage.store import SqlStore as Store

__all__ = ["NewMedia", "Store", "StoredMedia"]
