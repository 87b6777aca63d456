"""Byte ranges of local files as chunks (docs/format.md section 6.6).

A file imported without ``--ingest`` keeps refs ``[<path on this machine>, offset, size]`` in its
commits: history is immutable, so the canonical file keeps naming the path. Push publishes such a
range as a chunk object (named by the SHA-1 of its bytes, packed like any other chunk), so that a
published file never names a path of the pusher's machine. This module knows which chunk each
range is: it hashes a range once and remembers it, together with the identity (size and mtime)
of the file it read, so that later pushes neither re-hash nor publish bytes of a file that
changed since.

Store, one JSON document per local file (``<id>`` = the first 16 hex of the SHA-1 of its path):

    .lindivc/localranges/<id>.json
    {"format": "lindivc-local-ranges/1", "path": "/data/s.nwb", "size": 123, "mtime_ns": 456,
     "ranges": [[<offset>, <size>, "<chunk sha1>"], ...]}

``size`` and ``mtime_ns`` are null for ranges learned from a zone (the file is on another
machine, its chunks in the zone); a record written at import has no ranges yet.
"""
from __future__ import annotations

import hashlib
import os
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Iterable

import orjson

from . import lindijson
from .atomic import atomic_write
from .errors import LocalFileUnpublishable
from .history import CommitInfo, History
from .packstream import Segment

FORMAT = "lindivc-local-ranges/1"
_PATH_RE = re.compile(rb'^\{"format":"[^"]*","path":("(?:[^"\\]|\\.)*")')
HASH_BLOCK = 8 << 20  # bytes per read while hashing a range
HASH_THREADS = 2  # threads hashing ranges (hashlib and file reads release the GIL)


@dataclass(frozen=True)
class LocalRange:
    """``size`` bytes at ``offset`` of the local file ``path``."""

    path: str
    offset: int
    size: int

    def to_json(self) -> list:
        return [self.path, self.offset, self.size]


@dataclass(frozen=True)
class FileIdentity:
    """What tells a file's bytes apart without reading them: its size and modification time."""

    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: str) -> "FileIdentity":
        """The identity of the file at ``path`` now (OSError if it cannot be stat'ed)."""
        st = os.stat(path)
        return cls(st.st_size, st.st_mtime_ns)


@dataclass
class FileRecord:
    """What is known of one local file: its identity when recorded, and its ranges' chunks."""

    path: str
    identity: FileIdentity | None
    ranges: dict[tuple[int, int], str] = field(default_factory=dict)

    def to_bytes(self) -> bytes:
        ident = self.identity
        return orjson.dumps({"format": FORMAT, "path": self.path, "size": ident and ident.size,
                             "mtime_ns": ident and ident.mtime_ns,
                             "ranges": [[o, n, s] for (o, n), s in sorted(self.ranges.items())]})

    @classmethod
    def from_bytes(cls, data: bytes) -> "FileRecord":
        d = orjson.loads(data)
        ident = FileIdentity(d["size"], d["mtime_ns"]) if d.get("size") is not None else None
        return cls(d["path"], ident, {(o, n): s for o, n, s in d["ranges"]})


@dataclass
class Referenced:
    """The ranges of one local file that some commits reference, and one place that does (for
    messages: ``"<path> at <commit>"``)."""

    ranges: set[tuple[int, int]] = field(default_factory=set)
    where: str = ""


def scan_commits(history: History, commits: Iterable[CommitInfo], check: bool = True) -> dict[str, Referenced]:
    """Local file path -> the ranges the files of ``commits`` reference in it (each distinct
    file read once). With ``check``, raises LocalFileUnpublishable for what push cannot upload:
    a relative path, or an array linked as a whole to a local file (``_EXTERNAL_ARRAY_LINK``);
    without, those are left out."""
    seen: set[str] = set()
    out: dict[str, Referenced] = {}
    for c in commits:
        for path, blob in sorted(history.tree_files(c.tree).items()):
            if blob in seen:
                continue
            seen.add(blob)
            data = history.read_blob(blob)
            where = f"{path} at {c.sha[:10]}"
            for link in lindijson.local_array_links(data) if check else ():
                raise LocalFileUnpublishable(link, "is linked as a whole by an array (_EXTERNAL_ARRAY_LINK)", where,
                                             "import it again with this version of lindivc (one ref per chunk), "
                                             "commit, and push")
            for p, off, size in lindijson.iter_local_refs(data):
                ref = out.get(p)
                if ref is None:
                    if not os.path.isabs(p):
                        if not check:
                            continue
                        raise LocalFileUnpublishable(p, "is a relative path", where,
                                                     "import the file again (refs then name absolute paths) and commit")
                    ref = out[p] = Referenced(where=where)
                ref.ranges.add((off, size))
    return out


class LocalRanges:
    """The local-range records of one repository (``.lindivc/localranges/``), and the chunks
    that :meth:`hash_referenced` verified in this process, whose bytes push reads from the
    local files (:meth:`segment`)."""

    def __init__(self, directory: str) -> None:
        self.dir = directory
        self._records: dict[str, FileRecord | None] = {}
        self._sources: dict[str, Segment] = {}  # chunk sha1 -> where its bytes are (verified files)
        self._missing: dict[str, bool] = {}  # path -> not on this machine (asked once per process)
        self._origins: dict[str, LocalRange] | None = None  # chunk -> range of an absent file
        self._lock = threading.Lock()

    # records ---------------------------------------------------------------
    def _file(self, path: str) -> str:
        return os.path.join(self.dir, hashlib.sha1(path.encode()).hexdigest()[:16] + ".json")

    def record(self, path: str) -> FileRecord | None:
        """The record of the local file ``path``, or None."""
        if path not in self._records:
            try:
                with open(self._file(path), "rb") as f:
                    rec = FileRecord.from_bytes(f.read())
            except FileNotFoundError:
                rec = None
            self._records[path] = rec if rec is None or rec.path == path else None
        return self._records[path]

    def _save(self, rec: FileRecord) -> None:
        os.makedirs(self.dir, exist_ok=True)
        atomic_write(self._file(rec.path), rec.to_bytes(), fsync=False)
        self._records[rec.path] = rec
        self._origins = None  # rebuilt when next asked

    def note_import(self, path: str) -> None:
        """Remember the identity of ``path`` as imported now, so that a push notices if it
        changes before its ranges are hashed. A file imported again with another identity
        starts a new record (its old ranges are forgotten)."""
        ident = FileIdentity.of(path)
        rec = self.record(path)
        if rec is None or rec.identity != ident:
            self._save(FileRecord(path, ident))

    def learn(self, path: str, ranges: dict[tuple[int, int], str]) -> None:
        """Record chunks of ``path``'s ranges as read from a zone's published file (the file
        itself is on another machine)."""
        rec = self.record(path)
        if rec is None:
            rec = FileRecord(path, None)
        new = {r: s for r, s in ranges.items() if r not in rec.ranges}
        if new:
            rec.ranges.update(new)
            self._save(rec)

    def chunk(self, path: str, offset: int, size: int) -> str | None:
        """The chunk of a range, if known."""
        rec = self.record(path)
        return None if rec is None else rec.ranges.get((offset, size))

    # files that are not on this machine (docs/format.md 6.6, "What a clone sees") -----------
    def _absent(self, path: str) -> bool:
        hit = self._missing.get(path)
        if hit is None:
            hit = self._missing[path] = not os.path.exists(path)
        return hit

    def zone_copies(self, rfs: dict) -> dict:
        """``rfs`` with each ref to a range of a file that is not on this machine, and whose
        chunk is known, replaced by the content ref of that chunk (which renders to the zone's
        copy); ``rfs`` itself when there is none. Used when a canonical file is rendered."""
        if not os.path.isdir(self.dir):
            return rfs
        out: dict | None = None
        refs = rfs["refs"]
        for k, v in refs.items():
            if type(v) is list and len(v) == 3 and type(v[0]) is str and v[0].startswith("/") and self._absent(v[0]):
                sha = self.chunk(v[0], v[1], v[2])
                if sha is not None:
                    if out is None:
                        out = dict(refs)
                    out[k] = [lindijson.CONTENT_PREFIX + sha, 0, v[2]]
        return rfs if out is None else {**rfs, "refs": out}

    def origin(self, cr: lindijson.ContentRef) -> LocalRange | None:
        """The range of a file not on this machine whose chunk is ``cr`` (the whole chunk), if
        one is known: what a working file that reads the zone's copy canonicalizes back to."""
        origins = self._load_origins()
        if not origins:
            return None
        lr = origins.get(cr.sha1)
        return lr if lr is not None and cr.offset == 0 and cr.size == lr.size else None

    def is_origin(self, sha: str) -> bool:
        """True if chunk ``sha`` is a range of a local file that is not on this machine."""
        origins = self._load_origins()
        return bool(origins) and sha in origins

    def known_chunks(self, referenced: dict[str, Referenced]) -> set[str]:
        """The chunks known for ``referenced`` ranges (nothing is read or hashed)."""
        out = set()
        for p, ref in referenced.items():
            rec = self.record(p)
            if rec is not None:
                out |= {rec.ranges[r] for r in ref.ranges if r in rec.ranges}
        return out

    def _load_origins(self) -> dict[str, LocalRange]:
        if self._origins is None:
            origins: dict[str, LocalRange] = {}
            names = os.listdir(self.dir) if os.path.isdir(self.dir) else []
            for name in sorted(names):
                if not name.endswith(".json"):
                    continue
                with open(os.path.join(self.dir, name), "rb") as f:
                    head = f.read(8192)
                    m = _PATH_RE.search(head)  # records of files that are here are not loaded
                    if m is not None and not self._absent(orjson.loads(m.group(1))):
                        continue
                    rec = FileRecord.from_bytes(head + f.read())
                if self._absent(rec.path):
                    for (o, n), sha in rec.ranges.items():
                        origins.setdefault(sha, LocalRange(rec.path, o, n))
            self._origins = origins
        return self._origins

    # push -------------------------------------------------------------------
    def hash_referenced(self, referenced: dict[str, Referenced],
                        progress: Callable[[int], None] | None = None) -> dict[str, int]:
        """Make sure every referenced range is a known chunk: hash the ranges not recorded yet
        (HASH_THREADS threads, each reading its share of a file in offset order, with bounded
        memory) and save each file's record once. Returns chunk sha1 -> size.

        A file that is missing while some of its ranges are unknown, that changed since its
        record was made (size or mtime), or that is shorter than a range: LocalFileUnpublishable,
        and nothing is recorded for that file. Chunks of files present here become readable
        through :meth:`segment`."""
        plans = [self._plan(p, referenced[p]) for p in sorted(referenced)]
        work = [(plan, batch) for plan in plans for batch in _batches(plan.unknown)]
        with ThreadPoolExecutor(max_workers=HASH_THREADS) as ex:
            for plan, got in zip([w[0] for w in work], ex.map(lambda w: _hash_ranges(w[0].path, w[1], progress), work)):
                plan.new.update(got)
        chunks: dict[str, int] = {}
        for plan in plans:
            chunks.update(self._finish(plan))
        return chunks

    def _plan(self, path: str, ref: Referenced) -> "_FilePlan":
        """What to hash of one file, after checking it against its record."""
        rec = self.record(path)
        try:
            ident: FileIdentity | None = FileIdentity.of(path)
        except FileNotFoundError:
            ident = None
        except OSError as e:
            raise LocalFileUnpublishable(path, f"cannot be read ({e.strerror or e})", ref.where,
                                         "make it readable and push again") from None
        known = rec.ranges if rec is not None else {}
        unknown = sorted(r for r in ref.ranges if r not in known)
        if ident is None or (rec is not None and rec.identity is None and not unknown):
            if unknown:
                raise LocalFileUnpublishable(path, "is missing", ref.where,
                                             "put the file back where it was (its bytes are not in any zone yet) "
                                             "and push again")
            # hashed earlier, or learned from a zone (the file is another machine's): the chunks
            # are in a zone, not read from here
            return _FilePlan(path, ref, rec, None, [])
        if rec is not None and rec.identity is not None and rec.identity != ident:
            raise LocalFileUnpublishable(path, f"changed since it was recorded ({_describe(rec.identity, ident)})",
                                         ref.where, "the commits reference its earlier bytes: restore the file, "
                                         "or import it again (`lindivc import --force`) and commit")
        end = max((o + n for o, n in unknown), default=0)
        if end > ident.size:
            raise LocalFileUnpublishable(path, f"is shorter ({ident.size} bytes) than the ranges a ref names "
                                         f"(up to byte {end})", ref.where, "restore the file the commits were made with")
        return _FilePlan(path, ref, rec, ident, unknown)

    def _finish(self, plan: "_FilePlan") -> dict[str, int]:
        """Save what was hashed of one file; its chunks (sha1 -> size)."""
        rec, ref, path = plan.rec, plan.ref, plan.path
        if plan.ident is None:
            return {rec.ranges[r]: r[1] for r in ref.ranges}
        if plan.unknown and FileIdentity.of(path) != plan.ident:
            raise LocalFileUnpublishable(path, "changed while it was being read", ref.where, "push again")
        learned = rec is not None and rec.identity is None
        if rec is None:
            rec = FileRecord(path, plan.ident)
        rec.ranges.update(plan.new)
        if plan.new or self._records.get(path) is not rec:
            self._save(rec)
        out: dict[str, int] = {}
        with self._lock:
            for o, n in ref.ranges:
                sha = rec.ranges[(o, n)]
                out[sha] = n
                if not learned or (o, n) in plan.new:  # learned ranges may be of another machine's file
                    self._sources.setdefault(sha, Segment(sha, path, o, n))
        return out

    def segment(self, sha: str) -> Segment | None:
        """Where this machine holds the bytes of chunk ``sha``: a range of a local file verified
        by :meth:`hash_referenced` in this process; else None."""
        return self._sources.get(sha)

    def open(self, sha: str) -> "RangeReader":
        """A reader of chunk ``sha``'s bytes (KeyError unless :meth:`segment` knows it)."""
        return RangeReader(self._sources[sha])

    def __contains__(self, sha: object) -> bool:
        return sha in self._sources


class RangeReader:
    """A binary reader of one segment of a local file (what PackWriter.add and put_file read)."""

    def __init__(self, seg: Segment) -> None:
        self._f = open(seg.path, "rb")
        self._f.seek(seg.offset)
        self._left = seg.size

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0 or n > self._left:
            n = self._left
        data = self._f.read(n)
        self._left -= len(data)
        return data

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> "RangeReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class _FilePlan:
    """One file's part of :meth:`LocalRanges.hash_referenced`: ``ident`` None when nothing is
    read from it (its chunks are known)."""

    path: str
    ref: Referenced
    rec: FileRecord | None
    ident: FileIdentity | None
    unknown: list[tuple[int, int]]
    new: dict[tuple[int, int], str] = field(default_factory=dict)


BATCH_BYTES = 32 << 20  # a thread's share of a file: consecutive ranges of about this many bytes


def _batches(ranges: list[tuple[int, int]]) -> list[list[tuple[int, int]]]:
    """``ranges`` (sorted) cut into runs of about BATCH_BYTES, so that threads share a file."""
    out: list[list[tuple[int, int]]] = []
    cur: list[tuple[int, int]] = []
    n = 0
    for r in ranges:
        cur.append(r)
        n += r[1]
        if n >= BATCH_BYTES:
            out.append(cur)
            cur, n = [], 0
    if cur:
        out.append(cur)
    return out


def _hash_ranges(path: str, ranges: list[tuple[int, int]], progress: Callable[[int], None] | None
                 ) -> dict[tuple[int, int], str]:
    with open(path, "rb", buffering=0) as f:
        return {(off, size): _hash_range(f, off, size, progress) for off, size in ranges}


def _hash_range(f, offset: int, size: int, progress: Callable[[int], None] | None) -> str:
    h = hashlib.sha1()
    if size <= HASH_BLOCK:
        data = os.pread(f.fileno(), size, offset)
        if len(data) != size:
            raise OSError(f"short read at {offset}")
        h.update(data)
    else:
        buf = bytearray(HASH_BLOCK)
        view = memoryview(buf)
        f.seek(offset)
        left = size
        while left:
            n = f.readinto(view[:min(left, HASH_BLOCK)])
            if not n:
                raise OSError(f"short read at {offset + size - left}")
            h.update(view[:n])
            left -= n
    if progress is not None:
        progress(size)
    return h.hexdigest()


def _describe(old: FileIdentity, new: FileIdentity) -> str:
    parts = []
    if old.size != new.size:
        parts.append(f"size {old.size} -> {new.size} bytes")
    if old.mtime_ns != new.mtime_ns:
        parts.append("modification time differs")
    return ", ".join(parts)
