"""Writing packs: grouping chunks into packs, PackWriter, and packs streamed from chunk files.

Formats are in :mod:`lindivc.packs` (docs/format.md section 5).

Grouping (:func:`plan_packs`)
    Chunks are taken in sha1 order and cut into packs of at most ``target_size`` bytes
    (``DEFAULT_PACK_SIZE`` unless the repository's ``core.pack_size`` says otherwise). A chunk of
    ``target_size`` bytes or more stays loose (it is already one large object), and so does a
    chunk left alone at the end of the run. The same set of chunks with the same target size
    therefore always produces the same packs, with the same names: a pack is named by its
    manifest (:func:`lindivc.packs.pack_name`), the list of the chunks it holds.
"""
from __future__ import annotations

import bisect
import hashlib
import os
import tempfile
from typing import BinaryIO, Callable, Iterable, Iterator, NamedTuple

from .errors import ChecksumMismatch
from .atomic import fsync_dir
from .objects import COPY_BLOCK, ObjectStore, is_sha1
from .packs import ChunkEntry, PackIndex, PackSet, pack_name, verify_pack

#: the default ``core.pack_size`` (docs/format.md section 3): 64 MiB, from the push benchmark
#: (reasons in push.py, above the upload threads)
DEFAULT_PACK_SIZE = 64 * 2**20
PACK_TMP_PREFIX = ".tmp-pack-"  # a pack being written, in the object store's root
HASH_BLOCK = 8 * 2**20  # bytes per read when re-checking a pack streamed from its chunk files

Progress = Callable[[int], None]


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
        fd, self._tmp = tempfile.mkstemp(dir=objects.root, prefix=PACK_TMP_PREFIX)
        self._f: BinaryIO | None = os.fdopen(fd, "w+b")
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
        start = self.size
        n = 0
        if isinstance(data, (bytes, bytearray, memoryview)):
            blocks: Iterable[bytes] = (bytes(data[i:i + COPY_BLOCK]) for i in range(0, len(data), COPY_BLOCK))
        else:
            blocks = iter(lambda: data.read(COPY_BLOCK), b"")  # type: ignore[union-attr]
        for b in blocks:
            h.update(b)
            f.write(b)
            n += len(b)
            if self.progress is not None:
                self.progress(len(b))
        got = h.hexdigest()
        if got != sha:
            f.seek(start)
            f.truncate(start)
            raise ChecksumMismatch(sha, got, "chunk being packed")
        self.size += n
        entry = ChunkEntry(sha, start, n)
        self._entries.append(entry)
        self._seen.add(sha)
        return entry

    def finish(self) -> PackIndex:
        """Move the pack into the object store under its name (the SHA-1 of its manifest,
        :func:`lindivc.packs.pack_name`) and return its index.

        ValueError if it holds fewer than two chunks (a pack of one chunk would be the chunk
        itself: lindivc.packs). If the store already holds the pack, the new copy is discarded
        (and the old one's mtime refreshed).
        """
        f = self._require_open()
        if len(self._entries) < 2:
            raise ValueError("a pack needs at least two chunks")
        if self.objects.fsync:
            f.flush()
            os.fsync(f.fileno())
        f.close()
        self._f = None
        pack = pack_name((e.sha, e.size) for e in self._entries)
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


def plan_packs(sizes: dict[str, int], target_size: int = DEFAULT_PACK_SIZE) -> list[list[str]]:
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
    the bytes is not counted twice and the total equals the size. Reads between
    ``signal_not_transferring()`` and ``signal_transferring()`` are not reported at all: an HTTP
    client that hashes the body before sending it (botocore signing a payload) says so with these
    calls (s3transfer's protocol), so that progress counts bytes as they are sent.

    With ``verify``, the first sequential pass checks each segment against its ``sha``: on a
    mismatch ``read`` raises ChecksumMismatch *before* returning the segment's last bytes, and
    again on every later read (a client retrying from the start), so a request streaming this
    body never completes and the store keeps nothing.
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
        self._transferring = True
        self._f: BinaryIO | None = None
        self._f_index = -1
        self._verify = verify
        self._vi = 0  # segment being verified; _vpos of its bytes hashed so far
        self._vpos = 0
        self._vh = hashlib.sha1()
        self._bad: ChecksumMismatch | None = None  # a segment found corrupt: every later read fails

    def readable(self) -> bool:
        return True

    def signal_not_transferring(self) -> None:
        """Reads from now on are not a transfer (e.g. hashing for a signature): report no progress."""
        self._transferring = False

    def signal_transferring(self) -> None:
        """Reads from now on send the bytes: report progress again (the default)."""
        self._transferring = True

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
        if self._bad is not None:  # a retry after a mismatch (the client re-sends from the start)
            raise self._bad
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
                    self._bad = ChecksumMismatch(seg.sha, got, f"{seg.path} at {seg.offset}+{seg.size}")
                    raise self._bad
                self._vi, self._vpos, self._vh = i + 1, 0, hashlib.sha1()
        self._pos += want
        if self._transferring and self._pos > self._seen:
            if self._progress is not None:
                self._progress(self._pos - self._seen)
            self._seen = self._pos
        return data

    @property
    def failure(self) -> ChecksumMismatch | None:
        """The mismatch a read found (the HTTP client may have reported it as its own error)."""
        return self._bad

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
    local packs): :meth:`index` names it without reading anything and :meth:`open` streams it,
    so a push uploads a pack in one pass over its bytes, without writing it to disk first.

    The bytes are those :class:`PackWriter` would write for the same chunks in the same order,
    and the name is the same (the SHA-1 of the manifest): push relies on that to resume. Each
    chunk is checked against its name, as PackWriter does, while it streams (``open``).
    """

    def __init__(self, segments: list[Segment]) -> None:
        if len(segments) < 2:
            raise ValueError("a pack needs at least two chunks")
        if len({s.sha for s in segments}) != len(segments):
            raise ValueError("a chunk added twice to one pack")
        self.segments = list(segments)
        self.size = sum(s.size for s in segments)

    def index(self) -> PackIndex:
        """The pack's index, named by its manifest (no I/O)."""
        entries = []
        off = 0
        for seg in self.segments:
            entries.append(ChunkEntry(seg.sha, off, seg.size))
            off += seg.size
        return PackIndex(pack_name((s.sha, s.size) for s in self.segments), off, tuple(sorted(entries)))

    def verify(self) -> None:
        """Read every chunk once and check it against its name (ChecksumMismatch). Memory: one block."""
        # Large blocks: hashlib and readinto release the GIL for their whole duration, and a push
        # checks while its upload threads keep the GIL busy, so every re-acquisition costs.
        buf = bytearray(HASH_BLOCK)
        view = memoryview(buf)
        for seg in self.segments:
            h = hashlib.sha1()
            with open(seg.path, "rb", buffering=0) as f:
                f.seek(seg.offset)
                left = seg.size
                while left:
                    n = f.readinto(view[:min(left, HASH_BLOCK)])
                    if not n:
                        raise ChecksumMismatch(seg.sha, "truncated", seg.path)
                    h.update(view[:n])
                    left -= n
            if h.hexdigest() != seg.sha:
                raise ChecksumMismatch(seg.sha, h.hexdigest(), f"{seg.path} at {seg.offset}+{seg.size}")

    def open(self, progress: Progress | None = None) -> ConcatReader:
        """A reader of the pack's bytes that checks every chunk on its first pass (see
        :class:`ConcatReader`)."""
        return ConcatReader(self.segments, progress, verify=True)


def pack_objects(
    objects: ObjectStore,
    shas: Iterable[str],
    *,
    target_size: int = DEFAULT_PACK_SIZE,
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



def repack_loose(
    objects: ObjectStore,
    packset: PackSet,
    shas: Iterable[str],
    target_size: int = DEFAULT_PACK_SIZE,
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

