"""storage/durable.py: an image file is written byte for byte whatever its size, with O_DIRECT for its
whole blocks where the filesystem takes it and through the page cache where it does not."""

from __future__ import annotations

import errno
import fcntl
import os
import stat
from pathlib import Path

import pytest

from storage import durable
from storage.media import MediaFiles

SIZES = [
    0,
    1,
    4095,
    4096,
    4097,
    durable.DIRECT_FROM - 1,
    durable.DIRECT_FROM,
    2_261_209,
    3 * durable.CHUNK + 123,
]


def _write(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        durable.write_synced(fd, folder, data)
    finally:
        os.close(fd)
    return path


@pytest.mark.parametrize("size", SIZES)
def test_every_size_is_written_byte_for_byte(tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    assert _write(tmp_path, "f", data).read_bytes() == data


def test_large_files_go_past_the_page_cache_where_the_filesystem_allows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not durable._DIRECT:
        pytest.skip("no O_DIRECT on this system")
    direct: list[int] = []
    real = durable._write_direct

    def recorded(fd: int, view: memoryview) -> int:
        done = real(fd, view)
        direct.append(done)
        return done

    monkeypatch.setattr(durable, "_write_direct", recorded)
    data = os.urandom(2_261_209)
    assert _write(tmp_path, "big", data).read_bytes() == data
    assert direct == [len(data) // durable.BLOCK * durable.BLOCK]  # every whole block, directly
    _write(tmp_path, "small", os.urandom(1000))
    assert len(direct) == 1, "a small file went the direct way"


def test_a_filesystem_that_refuses_o_direct_gets_the_cache_and_is_not_asked_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not durable._DIRECT:
        pytest.skip("no O_DIRECT on this system")
    writes: list[int] = []
    real_write = os.write

    def refusing(fd: int, data: memoryview | bytes) -> int:
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        writes.append(len(data))
        if flags & durable._DIRECT:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", refusing)
    monkeypatch.setattr(durable, "_refused", set())
    data = os.urandom(3 * durable.CHUNK + 5)
    assert _write(tmp_path, "a", data).read_bytes() == data
    assert tmp_path in durable._refused
    asked = len(writes)
    assert _write(tmp_path, "b", data).read_bytes() == data
    assert writes[asked:] == [len(data)], "the folder was asked for O_DIRECT again"


def test_another_error_is_the_callers_and_the_media_store_keeps_no_half_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(fd: int, data: memoryview | bytes) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    files = MediaFiles(tmp_path / "media")
    files._open()
    monkeypatch.setattr(os, "write", full)
    with pytest.raises(OSError, match="No space"):
        files._write(files._path("m" * 32), os.urandom(2_000_000))
    assert list(files.folder.iterdir()) == []


def test_the_media_store_writes_owner_only_files_through_it(tmp_path: Path) -> None:
    files = MediaFiles(tmp_path / "media")
    files._open()
    data = os.urandom(2_261_209)
    path = files._path("m" * 32)
    files._write(path, data)
    assert path.read_bytes() == data
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
