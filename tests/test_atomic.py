"""The one atomic-write helper: a reader sees the old file or the new one, never part of one."""
from __future__ import annotations

import hashlib
import os
import stat

import pytest

from lindivc.atomic import AtomicFile, atomic_write, atomic_write_stream


def test_atomic_write_replaces_the_file_and_leaves_no_temp(tmp_path):
    p = tmp_path / "sub" / "f.json"
    atomic_write(str(p), b"one")  # the directory is made
    atomic_write(str(p), b"two")
    assert p.read_bytes() == b"two"
    assert os.listdir(p.parent) == ["f.json"]
    assert stat.S_IMODE(p.stat().st_mode) == 0o600  # temp files are private until given a mode
    atomic_write(str(p), b"three", mode=0o644)
    assert stat.S_IMODE(p.stat().st_mode) == 0o644


def test_a_failed_stream_keeps_the_old_file(tmp_path):
    p = tmp_path / "f"
    p.write_bytes(b"old")

    def chunks():
        yield b"new bytes, half written"
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write_stream(str(p), chunks())
    assert p.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["f"]


def test_atomic_write_stream_returns_what_it_wrote(tmp_path):
    p = tmp_path / "f"
    sha, n = atomic_write_stream(str(p), [b"ab", b"", b"cd"], fsync=False)
    assert (sha, n) == (hashlib.sha1(b"abcd").hexdigest(), 4) and p.read_bytes() == b"abcd"


def test_atomic_file_named_after_writing(tmp_path):
    with AtomicFile(str(tmp_path)) as f:
        f.write(b"data")
        f.commit(str(tmp_path / "aa" / "name"))
    assert (tmp_path / "aa" / "name").read_bytes() == b"data"
    with AtomicFile(str(tmp_path)) as f:
        f.write(b"dropped")  # never committed
    assert sorted(os.listdir(tmp_path)) == ["aa"]
