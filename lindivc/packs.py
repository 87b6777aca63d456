"""Packs: many chunk objects consolidated into one object, and the indexes that find them.

Terms and formats (docs/format.md, "Packs"):

Pack
    The plain concatenation of chunk object bytes, in the order of the chunks' sha1s, with no
    header, no trailer and no padding::

        pack := chunk_bytes*            (chunks sorted by sha1, each exactly once)

    Any reader (lindi, fsspec, a browser) reads one chunk with a byte-range request. A pack is
    itself an object: its name is the SHA-1 of its bytes. Locally it lives in the object store
    like any object (``objects/aa/bb/cc/<packsha1>``), in a zone at ``sha1/aa/bb/cc/<packsha1>``.
    A pack holds at least two chunks: a pack of one chunk would have the same bytes, hence the
    same name, as the chunk itself.

Pack index
    UTF-8 JSON, serialized with sorted keys and no whitespace (``separators=(",", ":")``)::

        {"chunks":[["<chunksha1>",<offset>,<size>],...],"format":"lindivc-pack-index/1",
         "pack":"<packsha1>","size":<pack bytes>}

    ``chunks`` is sorted by sha1, without duplicates; every range lies within ``size`` and no two
    ranges overlap (packs written by lindivc are contiguous; readers must not rely on it). Stored
    locally at ``.lindivc/idx/<packsha1>`` and in a zone at ``idx/<packsha1>``. An index is
    written only after its pack is complete and verified, so an index never names a missing pack
    (write order: pack, then index; delete order: index, then pack).

Grouping (:func:`pack_objects`)
    Chunks are taken in sha1 order and cut into packs of at most ``target_size`` bytes. A chunk of
    ``target_size`` bytes or more stays loose (it is already one large object), and so does a
    chunk left alone at the end of the run. The same set of chunks with the same target size
    therefore always produces the same packs, with the same names.
"""
from __future__ import annotations

import bisect
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from functools import cached_property
from typing import BinaryIO, Callable, Iterable, Iterator, NamedTuple

from .errors import ChecksumMismatch, InvalidLindiFile, ObjectMissing
from .atomic import atomic_write_stream, fsync_dir
from .objects import COPY_BLOCK, ObjectStore, is_sha1, sha1_bytes

FORMAT = "lindivc-pack-index/1"
DEFAULT_TARGET_SIZE = 512 * 2**20
HASH_BLOCK = 8 * 2**20  # bytes per read when hashing a pack streamed from its chunk files

Progress = Callable[[int], None]


class InvalidPackIndex(InvalidLindiFile):
    """A pack index that is not valid JSON of format ``lindivc-pack-index/1``, is truncated, or
    describes ranges that cannot belong to its pack."""

    def __init__(self, where: str, reason: str) -> None:
        super().__init__(where, f"invalid pack index: {reason}")


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

    Build one with :meth:`from_bytes` (validating) or :class:`PackWriter`; the constructor does
    not validate.
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


class PackWriter:
    """Streams chunks into a new pack in ``objects``.

    Bytes go to a temp file in the object store's root (so the final rename is atomic) in blocks
    of ``COPY_BLOCK``; memory stays bounded whatever the chunk and pack sizes. Add chunks in sha1
    order (:func:`pack_objects` does) to get the canonical pack for a set of chunks.
    """

    def __init__(self, objects: ObjectStore, *, progress: Progress | None = None) -> None:
        self.objects = objects
        self.progress = progress
        os.makedirs(objects.root, exist_ok=True)
        fd, self._tmp = tempfile.mkstemp(dir=objects.root, prefix=".tmp-pack-")
        self._f: BinaryIO | None = os.fdopen(fd, "w+b")
        self._hash = hashlib.sha1()
        self._entries: list[ChunkEntry] = []
        self._seen: set[str] = set()
        self.size = 0

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, sha: str, data: bytes | BinaryIO) -> ChunkEntry:
        """Append the chunk ``sha`` read from ``data`` (bytes or a binary file object).

        Raises ChecksumMismatch, leaving the pack as it was, if the bytes do not hash to ``sha``;
        ValueError for a chunk already in this pack.
        """
        f = self._require_open()
        if not is_sha1(sha):
            raise ValueError(f"not a sha1: {sha!r}")
        if sha in self._seen:
            raise ValueError(f"chunk {sha} added twice to one pack")
        h = hashlib.sha1()
        pack_hash = self._hash.copy()
        start = self.size
        n = 0
        if isinstance(data, (bytes, bytearray, memoryview)):
            blocks: Iterable[bytes] = (bytes(data[i:i + COPY_BLOCK]) for i in range(0, len(data), COPY_BLOCK))
        else:
            blocks = iter(lambda: data.read(COPY_BLOCK), b"")  # type: ignore[union-attr]
        for b in blocks:
            h.update(b)
            pack_hash.update(b)
            f.write(b)
            n += len(b)
            if self.progress is not None:
                self.progress(len(b))
        got = h.hexdigest()
        if got != sha:
            f.seek(start)
            f.truncate(start)
            raise ChecksumMismatch(sha, got, "chunk being packed")
        self._hash = pack_hash
        self.size += n
        entry = ChunkEntry(sha, start, n)
        self._entries.append(entry)
        self._seen.add(sha)
        return entry

    def finish(self) -> PackIndex:
        """Move the pack into the object store under its sha1 and return its index.

        ValueError if it holds fewer than two chunks (see the module docstring). If the store
        already holds the pack, the new copy is discarded (and the old one's mtime refreshed).
        """
        f = self._require_open()
        if len(self._entries) < 2:
            raise ValueError("a pack needs at least two chunks")
        if self.objects.fsync:
            f.flush()
            os.fsync(f.fileno())
        f.close()
        self._f = None
        pack = self._hash.hexdigest()
        dest = self.objects.path(pack)
        try:
            if os.path.exists(dest):
                os.unlink(self._tmp)
                os.utime(dest, None)
            else:
                os.makedirs(os.path.dirname(dest), exist_ok=True)
                os.replace(self._tmp, dest)
                if self.objects.fsync:
                    fsync_dir(os.path.dirname(dest))
        except BaseException:
            self._remove_tmp()
            raise
        return PackIndex(pack, self.size, tuple(sorted(self._entries)))

    def abort(self) -> None:
        """Discard the partial pack. Safe to call more than once, and after finish()."""
        if self._f is not None:
            self._f.close()
            self._f = None
        self._remove_tmp()

    def _remove_tmp(self) -> None:
        try:
            os.unlink(self._tmp)
        except FileNotFoundError:
            pass

    def _require_open(self) -> BinaryIO:
        if self._f is None:
            raise ValueError("pack writer already finished or aborted")
        return self._f

    def __enter__(self) -> "PackWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.abort()


def plan_packs(sizes: dict[str, int], target_size: int = DEFAULT_TARGET_SIZE) -> list[list[str]]:
    """Group chunks (sha1 -> size) into packs the way :func:`pack_objects` does; chunks not in any
    group stay loose. Pure: no I/O."""
    if target_size <= 0:
        raise ValueError("target_size must be positive")
    groups: list[list[str]] = []
    cur: list[str] = []
    cur_size = 0
    for sha in sorted(sizes):
        n = sizes[sha]
        if n >= target_size:
            continue
        if cur and cur_size + n > target_size:
            groups.append(cur)
            cur, cur_size = [], 0
        cur.append(sha)
        cur_size += n
    if cur:
        groups.append(cur)
    return [g for g in groups if len(g) >= 2]


class Segment(NamedTuple):
    """``size`` bytes at ``offset`` of the local file ``path``: where one chunk's bytes are."""

    sha: str
    path: str
    offset: int
    size: int


class ConcatReader:
    """A read-only, seekable file object over segments of local files laid end to end.

    What an HTTP client needs to send a pack without writing it anywhere: ``read``, ``seek``,
    ``tell`` (hence a known Content-Length), and re-reads after ``seek(0)`` (payload signing, retries).
    ``progress(n)`` reports bytes past the furthest position reached so far, so a second pass over
    the bytes is not counted twice and the total equals the size.

    With ``verify``, the first sequential pass checks each segment against its ``sha``: on a
    mismatch ``read`` raises ChecksumMismatch *before* returning the segment's last bytes, so a
    request streaming this body never completes and the store keeps nothing.
    """

    def __init__(self, segments: list[Segment], progress: Progress | None = None, *, verify: bool = False) -> None:
        self._segs = list(segments)
        self._starts: list[int] = []
        pos = 0
        for s in self._segs:
            self._starts.append(pos)
            pos += s.size
        self.size = pos
        self._pos = 0
        self._seen = 0
        self._progress = progress
        self._f: BinaryIO | None = None
        self._f_index = -1
        self._verify = verify
        self._vi = 0  # segment being verified; _vpos of its bytes hashed so far
        self._vpos = 0
        self._vh = hashlib.sha1()

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self._pos, 2: self.size}[whence]
        if base + offset < 0:
            raise ValueError("negative seek position")
        self._pos = base + offset
        return self._pos

    def read(self, n: int = -1) -> bytes:
        """Up to ``n`` bytes (all the rest for ``n < 0``); short reads stop at a segment's end."""
        if n is None or n < 0:
            return b"".join(iter(lambda: self.read(COPY_BLOCK), b""))
        if self._pos >= self.size or n == 0:
            return b""
        i = self._f_index
        if i < 0 or not (self._starts[i] <= self._pos < self._starts[i] + self._segs[i].size):
            i = bisect.bisect_right(self._starts, self._pos) - 1
        seg = self._segs[i]
        inner = self._pos - self._starts[i]
        want = min(n, seg.size - inner)
        if self._f_index != i:
            self._close_file()
            self._f = open(seg.path, "rb")
            self._f_index = i
        f = self._f
        assert f is not None
        if f.tell() != seg.offset + inner:
            f.seek(seg.offset + inner)
        data = f.read(want)
        if len(data) != want:
            raise ChecksumMismatch(seg.sha, "truncated", seg.path)
        if self._verify and i == self._vi and inner == self._vpos:
            self._vh.update(data)
            self._vpos += want
            if self._vpos == seg.size:
                got = self._vh.hexdigest()
                if got != seg.sha:
                    raise ChecksumMismatch(seg.sha, got, f"{seg.path} at {seg.offset}+{seg.size}")
                self._vi, self._vpos, self._vh = i + 1, 0, hashlib.sha1()
        self._pos += want
        if self._pos > self._seen:
            if self._progress is not None:
                self._progress(self._pos - self._seen)
            self._seen = self._pos
        return data

    @property
    def verified(self) -> bool:
        """True once every segment was read in full and matched its sha1."""
        return self._vi == len(self._segs)

    def _close_file(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None
            self._f_index = -1

    def close(self) -> None:
        self._close_file()

    def __enter__(self) -> "ConcatReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class PackSource:
    """A pack that exists only as its chunks' bytes in local files (loose objects or ranges of
    local packs): :meth:`index` hashes it and :meth:`open` streams it, so a push can upload a pack
    without writing it to disk first (no write, no temp file).

    The bytes are those :class:`PackWriter` would write for the same chunks in the same order, so
    the pack has the same name either way (sync.py's push relies on that to resume). Each chunk is
    checked against its name too, as PackWriter does, but while it streams (``open``) rather than
    in :meth:`index`: the name is needed before the upload starts, the check only before it ends,
    so one hash is on the push's critical path instead of two.
    """

    def __init__(self, segments: list[Segment]) -> None:
        if len(segments) < 2:
            raise ValueError("a pack needs at least two chunks")
        if len({s.sha for s in segments}) != len(segments):
            raise ValueError("a chunk added twice to one pack")
        self.segments = list(segments)
        self.size = sum(s.size for s in segments)

    def index(self, *, verify: bool = False) -> PackIndex:
        """Read every chunk once and compute the pack's sha1 (with ``verify``, also check each
        chunk against its name: ChecksumMismatch). Memory: one block."""
        pack_hash = hashlib.sha1()
        entries = []
        # Large blocks: hashlib and readinto release the GIL for their whole duration, and a push
        # hashes while its upload threads keep the GIL busy, so every re-acquisition costs.
        buf = bytearray(HASH_BLOCK)
        view = memoryview(buf)
        off = 0
        for seg in self.segments:
            h = hashlib.sha1() if verify else None
            with open(seg.path, "rb", buffering=0) as f:
                f.seek(seg.offset)
                left = seg.size
                while left:
                    n = f.readinto(view[:min(left, HASH_BLOCK)])
                    if not n:
                        raise ChecksumMismatch(seg.sha, "truncated", seg.path)
                    if h is not None:
                        h.update(view[:n])
                    pack_hash.update(view[:n])
                    left -= n
            if h is not None and h.hexdigest() != seg.sha:
                raise ChecksumMismatch(seg.sha, h.hexdigest(), "chunk being packed")
            entries.append(ChunkEntry(seg.sha, off, seg.size))
            off += seg.size
        return PackIndex(pack_hash.hexdigest(), off, tuple(sorted(entries)))

    def open(self, progress: Progress | None = None) -> ConcatReader:
        """A reader of the pack's bytes that checks every chunk on its first pass (see
        :class:`ConcatReader`)."""
        return ConcatReader(self.segments, progress, verify=True)


def pack_objects(
    objects: ObjectStore,
    shas: Iterable[str],
    *,
    target_size: int = DEFAULT_TARGET_SIZE,
    progress: Progress | None = None,
) -> Iterator[PackIndex]:
    """Pack the loose objects ``shas`` of ``objects`` into new packs in the same store.

    Yields each finished pack's index (not saved anywhere: see :class:`PackSet`). Grouping is
    deterministic (module docstring); chunks left loose are those in no yielded index. The loose
    copies are not deleted. Raises ObjectMissing for a sha not in the store, ChecksumMismatch for
    a corrupt one (nothing of the pack in progress is kept). ``progress(nbytes)`` is called as
    bytes are copied.
    """
    sizes = {sha: objects.size(sha) for sha in set(shas)}
    for group in plan_packs(sizes, target_size):
        with PackWriter(objects, progress=progress) as w:
            for sha in group:
                with objects.open(sha) as f:
                    w.add(sha, f)
            index = w.finish()
        yield index


def verify_pack(objects: ObjectStore, index: PackIndex) -> None:
    """Re-read the local pack ``index.pack`` in full and check it: the pack hashes to its name, has
    ``index.size`` bytes, and every chunk range hashes to its chunk's name. Raises
    ChecksumMismatch or ObjectMissing."""
    where = objects.path(index.pack)
    pack_hash = hashlib.sha1()
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
    if pack_hash.hexdigest() != index.pack:
        raise ChecksumMismatch(index.pack, pack_hash.hexdigest(), where)
    for sha in (c.sha for c in index.chunks if not c.size):
        if sha != sha1_bytes(b""):
            raise ChecksumMismatch(sha, sha1_bytes(b""), f"{where} (empty range)")


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


def repack_loose(
    objects: ObjectStore,
    packset: PackSet,
    shas: Iterable[str],
    target_size: int = DEFAULT_TARGET_SIZE,
    progress: Progress | None = None,
) -> list[PackIndex]:
    """Consolidate the loose chunks ``shas`` into packs; return the new packs' indexes.

    For each pack, in this order: write the pack, re-read and verify it in full, save its index,
    and only then delete the loose copies of its chunks. A failure at any step leaves every chunk
    readable (loose, or in a verified pack with a saved index). Shas that are not loose, that are
    already in a pack of ``packset``, or that name packs are skipped; chunks the grouping leaves
    loose (module docstring) stay loose.
    """
    todo = sorted({s for s in shas if s in objects and s not in packset and not packset.is_pack(s)})
    done: list[PackIndex] = []
    for index in pack_objects(objects, todo, target_size=target_size, progress=progress):
        verify_pack(objects, index)
        packset.save(index)
        for c in index.chunks:
            if c.sha != index.pack:
                objects.delete(c.sha)
        done.append(index)
    return done
