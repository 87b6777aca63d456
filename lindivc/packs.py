"""Packs and pack indexes: the formats, and reading packs (docs/format.md section 5).

Writing packs (PackWriter, streamed packs, grouping) is in :mod:`lindivc.packstream`.

Pack
    The plain concatenation of chunk object bytes, in the order of the chunks' sha1s, with no
    header, no trailer and no padding::

        pack := chunk_bytes*            (chunks sorted by sha1, each exactly once)

    Any reader (lindi, fsspec, a browser) reads one chunk with a byte-range request. A pack is
    itself an object. Locally it lives in the object store like any object
    (``objects/aa/bb/cc/<packsha1>``), in a zone at ``sha1/aa/bb/cc/<packsha1>``. A pack holds at
    least two chunks: a pack of one chunk would be the chunk itself.

Pack name
    The SHA-1 of the pack's manifest (:func:`pack_manifest`), the list of its chunks in pack
    order, known before any byte of the pack is read::

        manifest := "lindivc-pack/1\n" ( <chunksha1> " " <size> "\n" )*

    Packs named the first way, by the SHA-1 of their bytes, stay valid: a pack is valid when its
    chunks verify and its name is either (:func:`verify_pack`, :attr:`PackIndex.named_by_manifest`).

Pack index
    UTF-8 JSON, serialized with sorted keys and no whitespace (``separators=(",", ":")``)::

        {"chunks":[["<chunksha1>",<offset>,<size>],...],"format":"lindivc-pack-index/1",
         "pack":"<packsha1>","size":<pack bytes>}

    ``chunks`` is sorted by sha1, without duplicates; every range lies within ``size`` and no two
    ranges overlap (packs written by lindivc are contiguous; readers must not rely on it). Stored
    locally at ``.lindivc/idx/<packsha1>`` and in a zone at ``idx/<packsha1>``. An index is
    written only after its pack is complete and verified, so an index never names a missing pack
    (write order: pack, then index; delete order: index, then pack). In a zone a lone chunk has an
    index too (:meth:`PackIndex.single`).
"""
from __future__ import annotations

import bisect
import hashlib
import json
import os
from dataclasses import dataclass, field
from functools import cached_property
from typing import BinaryIO, Iterable, Iterator, NamedTuple

from .atomic import atomic_write_stream, fsync_dir
from .errors import ChecksumMismatch, InvalidPackIndex, ObjectMissing
from .objects import COPY_BLOCK, ObjectStore, is_sha1, sha1_bytes

FORMAT = "lindivc-pack-index/1"
MANIFEST_HEADER = b"lindivc-pack/1\n"  # first line of a pack's manifest (docs/format.md section 5)


def pack_manifest(chunks: Iterable[tuple[str, int]]) -> bytes:
    """The manifest of a pack holding ``chunks`` ((sha1, size) in pack order, laid end to end):
    the bytes whose SHA-1 names the pack (docs/format.md section 5)."""
    return MANIFEST_HEADER + "".join(f"{sha} {size}\n" for sha, size in chunks).encode("ascii")


def pack_name(chunks: Iterable[tuple[str, int]]) -> str:
    """The name of the pack holding ``chunks`` ((sha1, size) in pack order): SHA-1 of its manifest."""
    return hashlib.sha1(pack_manifest(chunks)).hexdigest()


def parse_manifest(data: bytes) -> list[tuple[str, int]]:
    """The chunks ((sha1, size) in pack order) a manifest lists; ValueError if ``data`` is not a
    well-formed manifest of two or more distinct chunks."""
    if not data.startswith(MANIFEST_HEADER) or not data.endswith(b"\n"):
        raise ValueError("not a pack manifest (no lindivc-pack/1 header line)")
    out: list[tuple[str, int]] = []
    for line in data[len(MANIFEST_HEADER):-1].split(b"\n"):
        sha, _, n = line.decode("ascii", "replace").partition(" ")
        if not is_sha1(sha) or not n.isdigit() or len(n) > 19 or (n != "0" and n.startswith("0")):
            raise ValueError(f"bad manifest line {line[:80]!r}")
        out.append((sha, int(n)))
    if len(out) < 2 or len({s for s, _ in out}) != len(out):
        raise ValueError("a manifest lists two or more distinct chunks")
    if pack_manifest(out) != data:
        raise ValueError("manifest not in canonical form")
    return out


class ChunkChecker:
    """Checks bytes fed in order against a list of chunks laid end to end ((sha1, size) each):
    :meth:`update` raises ChecksumMismatch as soon as a chunk is complete and hashes otherwise,
    or when more bytes come than the chunks hold; :meth:`finish` when fewer came."""

    def __init__(self, chunks: list[tuple[str, int]], where: str) -> None:
        self._chunks = chunks
        self._where = where
        self._i = 0
        self._left = chunks[0][1] if chunks else 0
        self._h = hashlib.sha1()
        self._skip_empty()

    def _skip_empty(self) -> None:
        while self._i < len(self._chunks) and self._left == 0:
            self._close_chunk()

    def _close_chunk(self) -> None:
        sha = self._chunks[self._i][0]
        got = self._h.hexdigest()
        if got != sha:
            raise ChecksumMismatch(sha, got, self._where)
        self._i += 1
        self._h = hashlib.sha1()
        self._left = self._chunks[self._i][1] if self._i < len(self._chunks) else 0

    def update(self, data: bytes) -> None:
        view = memoryview(data)
        while len(view):
            if self._i >= len(self._chunks):
                raise ChecksumMismatch(self._where, "more bytes than its chunks hold", self._where)
            take = min(self._left, len(view))
            self._h.update(view[:take])
            view = view[take:]
            self._left -= take
            self._skip_empty()

    def finish(self) -> None:
        if self._i < len(self._chunks):
            raise ChecksumMismatch(self._chunks[self._i][0], "truncated", self._where)


class ChunkEntry(NamedTuple):
    """One chunk of a pack: its sha1 and its byte range ``[offset, offset + size)`` in the pack."""

    sha: str
    offset: int
    size: int


class PackLocation(NamedTuple):
    """Where a chunk lives: ``size`` bytes at ``offset`` of the pack object ``pack``."""

    pack: str
    offset: int
    size: int


class ChunkPosition(NamedTuple):
    """A byte of a pack mapped back to its chunk: the chunk's sha1, the chunk's offset in the
    pack, and the byte's offset inside the chunk."""

    chunk: str
    chunk_offset: int
    inner_offset: int


@dataclass(frozen=True)
class PackIndex:
    """The index of one pack. Immutable; ``chunks`` is sorted by sha1.

    Build one with :meth:`from_bytes` (validating), :meth:`single`, or a writer of
    :mod:`lindivc.packstream`; the constructor does not validate.
    """

    pack: str
    size: int
    chunks: tuple[ChunkEntry, ...] = field(repr=False)

    def __repr__(self) -> str:
        return f"PackIndex(pack={self.pack!r}, size={self.size}, chunks=<{len(self.chunks)}>)"

    def to_bytes(self) -> bytes:
        """The canonical serialized form (see the module docstring)."""
        doc = {
            "format": FORMAT,
            "pack": self.pack,
            "size": self.size,
            "chunks": [[c.sha, c.offset, c.size] for c in self.chunks],
        }
        return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes, expected_pack: str | None = None, *, where: str = "pack index") -> "PackIndex":
        """Parse and validate a serialized index; raise :class:`InvalidPackIndex` if it is
        malformed, truncated, inconsistent, or (given ``expected_pack``) names another pack."""
        try:
            doc = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            raise InvalidPackIndex(where, f"not JSON ({e})") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise InvalidPackIndex(where, f"format is not {FORMAT}")
        pack, size, raw = doc.get("pack"), doc.get("size"), doc.get("chunks")
        if not isinstance(pack, str) or not is_sha1(pack):
            raise InvalidPackIndex(where, "pack is not a sha1")
        if expected_pack is not None and pack != expected_pack:
            raise InvalidPackIndex(where, f"describes pack {pack}, expected {expected_pack}")
        if not _is_int(size) or size < 0:
            raise InvalidPackIndex(where, "size is not a non-negative integer")
        if not isinstance(raw, list):
            raise InvalidPackIndex(where, "chunks is not a list")
        chunks = []
        for item in raw:
            if (not isinstance(item, list) or len(item) != 3 or not isinstance(item[0], str)
                    or not is_sha1(item[0]) or not _is_int(item[1]) or not _is_int(item[2])):
                raise InvalidPackIndex(where, f"bad chunk entry {item!r}")
            sha, off, n = item
            if off < 0 or n < 0 or off + n > size:
                raise InvalidPackIndex(where, f"chunk {sha} range {off}+{n} outside the pack's {size} bytes")
            chunks.append(ChunkEntry(sha, off, n))
        for a, b in zip(chunks, chunks[1:]):
            if a.sha >= b.sha:
                raise InvalidPackIndex(where, "chunks not sorted by sha1 or duplicated")
        by_off = sorted((c for c in chunks if c.size), key=lambda c: c.offset)
        for a, b in zip(by_off, by_off[1:]):
            if a.offset + a.size > b.offset:
                raise InvalidPackIndex(where, f"chunks {a.sha} and {b.sha} overlap")
        return cls(pack, size, tuple(chunks))

    @classmethod
    def single(cls, sha: str, size: int) -> "PackIndex":
        """The index of a lone chunk in a zone: the "pack" is the chunk itself, one entry
        ``[sha, 0, size]`` (docs/format.md section 5)."""
        return cls(sha, size, (ChunkEntry(sha, 0, size),))

    def manifest(self) -> bytes:
        """The manifest of this pack's chunks in pack order (offset order): what its name is the
        SHA-1 of, when it is named by the manifest rule (docs/format.md section 5)."""
        return pack_manifest((c.sha, c.size) for c in sorted(self.chunks, key=lambda c: (c.offset, c.sha)))

    @cached_property
    def named_by_manifest(self) -> bool:
        """True if the name is the SHA-1 of the manifest and the chunks lie end to end from 0 to
        ``size`` (then the chunks' names fix every byte). False for a pack named by the SHA-1 of
        its bytes (the first rule), and for a lone chunk."""
        if len(self.chunks) < 2:
            return False
        pos = 0
        for c in sorted(self.chunks, key=lambda c: (c.offset, c.sha)):
            if c.offset != pos:
                return False
            pos += c.size
        return pos == self.size and hashlib.sha1(self.manifest()).hexdigest() == self.pack

    @cached_property
    def _shas(self) -> list[str]:
        return [c.sha for c in self.chunks]

    @cached_property
    def _by_offset(self) -> tuple[list[int], list[ChunkEntry]]:
        entries = sorted((c for c in self.chunks if c.size), key=lambda c: c.offset)
        return [c.offset for c in entries], entries

    def __len__(self) -> int:
        return len(self.chunks)

    def __contains__(self, chunk_sha: object) -> bool:
        return isinstance(chunk_sha, str) and self.lookup(chunk_sha) is not None

    def lookup(self, chunk_sha: str) -> tuple[int, int] | None:
        """``(offset, size)`` of the chunk in this pack, or None if the pack does not hold it."""
        i = bisect.bisect_left(self._shas, chunk_sha)
        if i < len(self.chunks) and self.chunks[i].sha == chunk_sha:
            c = self.chunks[i]
            return c.offset, c.size
        return None

    def chunk_at(self, offset: int) -> ChunkPosition | None:
        """The chunk whose range contains byte ``offset`` of the pack, or None if no chunk does."""
        offsets, entries = self._by_offset
        i = bisect.bisect_right(offsets, offset) - 1
        if i >= 0:
            c = entries[i]
            if c.offset <= offset < c.offset + c.size:
                return ChunkPosition(c.sha, c.offset, offset - c.offset)
        return None


def _is_int(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)



def verify_pack(objects: ObjectStore, index: PackIndex) -> None:
    """Re-read the local pack ``index.pack`` in full and check it: it has ``index.size`` bytes,
    every chunk range hashes to its chunk's name, and its name is the SHA-1 of its manifest
    (chunks end to end) or of its bytes (docs/format.md section 5). Raises ChecksumMismatch or
    ObjectMissing."""
    where = objects.path(index.pack)
    by_manifest = index.named_by_manifest
    pack_hash = _NoHash() if by_manifest else hashlib.sha1()
    _, entries = index._by_offset
    pos = 0
    with objects.open(index.pack) as f:
        for c in entries:
            if c.offset > pos:
                pack_hash.update(_read_exact(f, c.offset - pos, index.pack, where))
            h = hashlib.sha1()
            left = c.size
            while left:
                b = _read_exact(f, min(left, COPY_BLOCK), index.pack, where)
                h.update(b)
                pack_hash.update(b)
                left -= len(b)
            if h.hexdigest() != c.sha:
                raise ChecksumMismatch(c.sha, h.hexdigest(), f"{where} at {c.offset}+{c.size}")
            pos = c.offset + c.size
        for b in iter(lambda: f.read(COPY_BLOCK), b""):
            pack_hash.update(b)
            pos += len(b)
    if pos != index.size:
        raise ChecksumMismatch(index.pack, f"{pos} bytes instead of {index.size}", where)
    if not by_manifest and pack_hash.hexdigest() != index.pack:
        raise ChecksumMismatch(index.pack, pack_hash.hexdigest(), where)
    for sha in (c.sha for c in index.chunks if not c.size):
        if sha != sha1_bytes(b""):
            raise ChecksumMismatch(sha, sha1_bytes(b""), f"{where} (empty range)")


class _NoHash:
    """Stands for the whole-pack hash where the name does not need it (manifest rule)."""

    def update(self, data: bytes) -> None:
        pass


def _read_exact(f: BinaryIO, n: int, name: str, where: str) -> bytes:
    b = f.read(n)
    if len(b) != n:
        raise ChecksumMismatch(name, "truncated", where)
    return b


class PackSet:
    """The pack indexes of one directory (``.lindivc/idx``), with a chunk -> location map.

    Loading reads every index (invalid ones raise InvalidPackIndex). When a chunk is in several
    packs, :meth:`locate` answers with the pack of the smallest sha1, so answers do not depend on
    loading order.
    """

    def __init__(self, idx_dir: str, *, fsync: bool = True) -> None:
        self.idx_dir = os.path.abspath(idx_dir)
        self.fsync = fsync
        self._packs: dict[str, PackIndex] = {}
        self._where: dict[str, PackLocation] = {}
        self.reload()

    def reload(self) -> None:
        """Forget the loaded indexes and read the directory again."""
        self._packs.clear()
        self._where.clear()
        if not os.path.isdir(self.idx_dir):
            return
        for name in sorted(os.listdir(self.idx_dir)):
            if not is_sha1(name):
                continue
            path = os.path.join(self.idx_dir, name)
            with open(path, "rb") as f:
                data = f.read()
            self.add(PackIndex.from_bytes(data, expected_pack=name, where=path))

    def add(self, index: PackIndex) -> None:
        """Make ``index`` known (in memory only)."""
        self._packs[index.pack] = index
        for c in index.chunks:
            old = self._where.get(c.sha)
            if old is None or index.pack < old.pack:
                self._where[c.sha] = PackLocation(index.pack, c.offset, c.size)

    def save(self, index: PackIndex) -> str:
        """Write ``index`` atomically to ``<idx_dir>/<pack>`` and add it; return the path."""
        path = os.path.join(self.idx_dir, index.pack)
        atomic_write_stream(path, [index.to_bytes()], fsync=self.fsync)
        if self.fsync:
            fsync_dir(self.idx_dir)
        self.add(index)
        return path

    def remove(self, pack_sha: str) -> None:
        """Forget a pack and delete its index file (the pack object itself is not touched)."""
        try:
            os.unlink(os.path.join(self.idx_dir, pack_sha))
        except FileNotFoundError:
            pass
        if self._packs.pop(pack_sha, None) is not None:
            for c in [c for c, loc in self._where.items() if loc.pack == pack_sha]:
                del self._where[c]
            for other in sorted(self._packs):
                for e in self._packs[other].chunks:
                    if e.sha not in self._where:
                        self._where[e.sha] = PackLocation(other, e.offset, e.size)

    def locate(self, chunk_sha: str) -> PackLocation | None:
        """``(pack, offset, size)`` of a packed chunk, or None."""
        return self._where.get(chunk_sha)

    def is_pack(self, sha: str) -> bool:
        """True if ``sha`` names a pack this set has an index for."""
        return sha in self._packs

    def index(self, pack_sha: str) -> PackIndex | None:
        return self._packs.get(pack_sha)

    def chunk_at(self, pack_sha: str, offset: int) -> ChunkPosition | None:
        """The chunk containing byte ``offset`` of pack ``pack_sha``; None if the pack is unknown or
        no chunk covers that byte."""
        idx = self._packs.get(pack_sha)
        return idx.chunk_at(offset) if idx is not None else None

    @property
    def packs(self) -> list[str]:
        return sorted(self._packs)

    def __iter__(self) -> Iterator[PackIndex]:
        return (self._packs[p] for p in sorted(self._packs))

    def __len__(self) -> int:
        return len(self._packs)

    def __contains__(self, chunk_sha: object) -> bool:
        return chunk_sha in self._where


def read_chunk(objects: ObjectStore, packset: PackSet, sha: str) -> bytes:
    """The bytes of chunk ``sha``: the loose object if present, else its range of a local pack.

    Always verified: ChecksumMismatch if the bytes do not hash to ``sha``, ObjectMissing if the
    chunk is neither loose nor in a local pack.
    """
    if sha in objects:
        try:
            return objects.get(sha)
        except ObjectMissing:
            pass  # deleted by a concurrent repack: fall through to the pack
    loc = packset.locate(sha)
    if loc is None:
        raise ObjectMissing(sha)
    data = objects.get_range(loc.pack, loc.offset, loc.size)
    got = sha1_bytes(data)
    if got != sha:
        raise ChecksumMismatch(sha, got, f"{objects.path(loc.pack)} at {loc.offset}+{loc.size}")
    return data

