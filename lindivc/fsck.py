"""Integrity checks of a repository's object store and history, and of a zone (``lindivc fsck``).

Local (:func:`fsck_local`): every loose object hashes to its name; every local pack index parses
and its pack matches it (size, every chunk range, and its name: the SHA-1 of its manifest or of
its bytes, docs/format.md section 5); every content ref of every file of
every commit reachable from any ref resolves (a local object, or a chunk a known zone's catalog
holds); every ref names a commit that exists.

Zone (:func:`fsck_zone`): every ``idx/`` entry parses and its object exists with the size the
index gives; every ref names a commit whose history the zone holds; every content ref reachable
from a ref resolves in the zone's indexes or borrow records; ``info/idx`` lists no missing index.
With ``read_data``, every object is read in full: each chunk of a pack must hash to its chunk's
name, and an object to its name unless its index names it by its manifest (a pack whose chunks
lie end to end: then its chunks fix its bytes). An object without an index is only a warning
(an interrupted push leaves one; GC removes it), whatever its bytes.

A report lists problems (errors: exit status 1) and warnings (worth knowing, not damage).
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field

from .catalog import gc_cache_dir, remote_zone
from .documents import parse_borrow_record
from .errors import ChecksumMismatch, FsckFailed, InvalidDocument, ObjectMissing, ZoneError, ZoneKeyMissing
from .history import CommitInfo, History
from .layout import index_key, object_key, sha1_from_object_key
from .objects import COPY_BLOCK
from .packs import InvalidPackIndex, PackIndex, verify_pack
from .progress import Advance, Reporter
from .zones.base import Zone

__all__ = ["FsckFailed", "FsckReport", "Problem", "fsck_local", "fsck_repository", "fsck_zone"]


@dataclass
class Problem:
    kind: str  # "corrupt-object" | "corrupt-pack" | "bad-index" | "missing-object" | "missing-commit" | ...
    name: str  # what it concerns: a sha1, a key, a ref
    detail: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.name}: {self.detail}"


@dataclass
class FsckReport:
    target: str
    checked: dict[str, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def count(self, what: str, n: int = 1) -> None:
        self.checked[what] = self.checked.get(what, 0) + n

    def add(self, kind: str, name: str, detail: str) -> None:
        self.problems.append(Problem(kind, name, detail))

    def warn(self, kind: str, name: str, detail: str) -> None:
        self.warnings.append(Problem(kind, name, detail))

    def summary(self) -> str:
        what = ", ".join(f"{n} {k}" for k, n in sorted(self.checked.items()))
        state = "no problems" if self.ok else f"{len(self.problems)} problem(s)"
        return f"{self.target}: checked {what or 'nothing'}: {state}" + (
            f", {len(self.warnings)} warning(s)" if self.warnings else "")

    def to_json(self) -> dict:
        return {"target": self.target, "ok": self.ok, "checked": self.checked,
                "problems": [vars(p) for p in self.problems], "warnings": [vars(p) for p in self.warnings]}


# --------------------------------------------------------------------------- local


def fsck_local(repo, reporter: Reporter | None = None) -> FsckReport:
    """Check the repository's object store, pack indexes, refs and reachable content refs;
    ``reporter`` shows the objects read as a bar of bytes."""
    rep = FsckReport(f"repository {repo.root}")
    packs: dict[str, PackIndex] = {}
    if os.path.isdir(repo.idx_dir):
        for name in sorted(os.listdir(repo.idx_dir)):
            if len(name) != 40:
                continue
            path = os.path.join(repo.idx_dir, name)
            rep.count("pack indexes")
            try:
                with open(path, "rb") as f:
                    packs[name] = PackIndex.from_bytes(f.read(), name, where=path)
            except InvalidPackIndex as e:
                rep.add("bad-index", name, f"{path}: {e.reason}")
    progress = reporter or Reporter()
    sizes = {sha: _size_or_0(repo.objects, sha) for sha in repo.objects}
    for sha in progress.track(sorted(sizes), f"Checking {len(sizes)} objects", size=sizes.__getitem__):
        if sha in packs:
            rep.count("packs")
            try:
                verify_pack(repo.objects, packs[sha])
            except (ChecksumMismatch, ObjectMissing) as e:
                rep.add("corrupt-pack", sha, str(e))
            continue
        rep.count("objects")
        try:
            repo.objects.verify(sha)
        except ChecksumMismatch as e:
            rep.add("corrupt-object", sha, f"{repo.objects.path(sha)} hashes to {e.got} (unless it is a pack "
                    "whose index was never written: an interrupted `lindivc pack`)")
        except ObjectMissing:
            pass  # removed meanwhile
    for name in packs:
        if name not in repo.objects:
            rep.add("missing-object", name, "a pack index names a pack the object store lacks")
    # refs and reachable content refs
    known = set(packs)
    chunk_in_pack = {e.sha for idx in packs.values() for e in idx.chunks}
    cats = repo.catalogs()
    refs = {}
    try:
        refs = {k.decode(): v.decode() for k, v in repo.history.repo.refs.as_dict().items() if k != b"HEAD"}
    except Exception as e:  # noqa: BLE001 - a broken ref store is a finding
        rep.add("bad-ref", "refs", str(e))
    heads = []
    for name, sha in sorted(refs.items()):
        rep.count("refs")
        if not repo.history.has(sha):
            rep.add("missing-commit", name, f"names {sha}, which is not in the history")
        else:
            heads.append(sha)
    shas = _reachable_content(repo.history, heads, rep)
    for sha in sorted(shas):
        rep.count("content refs")
        if sha in repo.objects or sha in chunk_in_pack or sha in known:
            continue
        if any(sha in c.placements for c in cats):
            continue
        rep.add("missing-object", sha, "referenced by a committed file, but neither local nor in a known zone")
    return rep


def _size_or_0(objects, sha: str) -> int:
    try:
        return objects.size(sha)
    except (ObjectMissing, OSError):
        return 0  # removed meanwhile


def _reachable_content(history: History, heads: list[str], rep: FsckReport) -> set[str]:
    """Content sha1s that the files of every commit reachable from ``heads`` reference; counts
    the commits (each once) and reports a missing commit, tree or file."""
    commits: list[CommitInfo] = []
    try:
        for c in history.walk(heads):
            commits.append(c)
    except KeyError as e:
        rep.add("missing-commit", str(e).strip("'\""), "a commit reachable from a ref is missing from the history")
    if commits:
        rep.count("commits", len({c.sha for c in commits}))

    def unreadable(c: CommitInfo, sha: str, e: Exception) -> None:
        if sha == c.tree:
            rep.add("missing-tree", sha, f"a tree of commit {c.sha[:10]} is missing from the history ({e})")
        else:
            rep.add("missing-blob", sha, f"file of commit {c.sha[:10]} is missing from the history ({e})")

    return history.referenced_chunks(commits, on_unreadable=unreadable)


# --------------------------------------------------------------------------- zone


def _hash_object(zone: Zone, key: str, idx: PackIndex | None, advance: Advance | None = None) -> tuple[str, list[str]]:
    """(sha1 of the whole value, chunks whose ranges do not hash to their names); ``advance(n)``
    as each ``n`` bytes are read. The whole value is not hashed for a pack named by its manifest
    (its name is then returned as the first item: its chunks are what fixes its bytes)."""
    by_manifest = idx is not None and idx.named_by_manifest
    whole = None if by_manifest else hashlib.sha1()
    bad: list[str] = []
    entries = sorted((e for e in idx.chunks if e.size), key=lambda e: e.offset) if idx else []
    i = 0
    pos = 0
    cur = None
    with zone.open_read(key) as f:
        while True:
            block = f.read(COPY_BLOCK)
            if not block:
                break
            if whole is not None:
                whole.update(block)
            if advance:
                advance(len(block))
            # feed chunk hashers
            b0 = 0
            while b0 < len(block) and i < len(entries):
                e = entries[i]
                start, end = e.offset, e.offset + e.size
                at = pos + b0
                if at < start:
                    b0 = min(len(block), start - pos)
                    continue
                if cur is None:
                    cur = hashlib.sha1()
                take = min(len(block), end - pos)
                cur.update(block[b0:take])
                b0 = take
                if pos + b0 >= end:
                    if cur.hexdigest() != e.sha:
                        bad.append(e.sha)
                    cur = None
                    i += 1
            pos += len(block)
    for e in entries[i:]:
        bad.append(e.sha)  # past the end: truncated
    return (idx.pack if whole is None else whole.hexdigest()), bad


def fsck_repository(repo, remote: str | None = None, *, read_data: bool = False,
                    reporter: Reporter | None = None) -> FsckReport:
    """Check ``repo`` (:func:`fsck_local`), or with ``remote`` that remote's zone
    (:func:`fsck_zone`, its history mirrored in the repository, see
    :func:`lindivc.catalog.gc_cache_dir`). ``reporter`` shows the objects read."""
    if remote is None:
        return fsck_local(repo, reporter)
    zone = remote_zone(repo, remote)
    return fsck_zone(zone, read_data=read_data, cache_dir=gc_cache_dir(zone.url, repo, remote), reporter=reporter)


def fsck_zone(zone: Zone, *, read_data: bool = False, cache_dir: str | None = None,
              reporter: Reporter | None = None) -> FsckReport:
    """Check a zone's indexes, objects (sizes; hashes with ``read_data``), refs and content refs;
    ``reporter`` shows the objects ``read_data`` reads as a bar of bytes."""
    import tempfile

    from . import gitsync, zonerefs

    rep = FsckReport(f"zone {zone.url}")
    objects: dict[str, int] = {}
    idx_names: list[str] = []
    for info in zone.list(""):
        top = info.key.split("/", 1)[0]
        if top == "sha1":
            sha = sha1_from_object_key(info.key)
            if sha:
                objects[sha] = info.size
        elif top == "idx":
            idx_names.append(info.key[4:])
    indexes: dict[str, PackIndex] = {}
    for name in idx_names:
        rep.count("indexes")
        try:
            idx = PackIndex.from_bytes(zone.get(index_key(name)), name, where=f"idx/{name}")
        except InvalidPackIndex as e:
            rep.add("bad-index", f"idx/{name}", e.reason)
            continue
        indexes[name] = idx
        if name not in objects:
            rep.add("missing-object", object_key(name), f"idx/{name} names it, but the zone lacks it")
        elif objects[name] != idx.size:
            rep.add("corrupt-pack", object_key(name), f"{objects[name]} bytes, its index says {idx.size}")
    for sha in objects:
        if sha not in indexes:
            rep.warn("no-index", object_key(sha), "object without an index (an interrupted push; `lindivc gc` removes it)")
    if read_data and objects:
        total = sum(objects.values())
        with (reporter or Reporter()).task(f"Reading {len(objects)} objects", total) as advance:
            for sha in sorted(objects):
                rep.count("objects read")
                try:
                    got, bad = _hash_object(zone, object_key(sha), indexes.get(sha), advance)
                except ZoneError as e:
                    rep.add("unreadable-object", object_key(sha), str(e))
                    continue
                idx = indexes.get(sha)
                if idx is None:  # reported above as no-index; a pack of an interrupted push hashes otherwise
                    continue
                if got != sha:
                    kind = "corrupt-pack" if len(idx.chunks) > 1 else "corrupt-object"
                    rep.add(kind, object_key(sha), f"hashes to {got}")
                elif bad and idx.named_by_manifest:  # the bytes are not those its name commits to
                    rep.add("corrupt-pack", object_key(sha), f"{len(bad)} chunk(s) do not match its manifest")
                for c in bad:
                    rep.add("corrupt-chunk", c, f"its range of {object_key(sha)} does not hash to its name")
    # info/idx
    try:
        listed = set(zone.get("info/idx").decode().split())
    except ZoneKeyMissing:
        listed = None
    if listed is not None:
        for name in sorted(listed - set(idx_names)):
            rep.add("bad-info", "info/idx", f"lists idx/{name}, which does not exist")
        missing = set(idx_names) - listed
        if missing:
            rep.warn("info-incomplete", "info/idx", f"omits {len(missing)} index(es) (HTTP readers cannot see them)")
    # refs and history
    refs = zonerefs.list_remote_refs(zone)
    cache = cache_dir or gc_cache_dir(zone.url)
    git_dir = os.path.join(cache, "git")
    tmp = None
    try:
        History.init_if_missing(git_dir)
    except OSError:  # no cache directory to be had: a temporary mirror
        tmp = tempfile.mkdtemp(prefix="lindivc-fsck-")
        git_dir = tmp
        History.init_if_missing(git_dir)
    chunks: set[str] = set()
    good_heads = []
    for name, sha in sorted(refs.items()):
        rep.count("refs")
        try:
            gitsync.download_history(zone, git_dir, [sha])
            good_heads.append(sha)
        except (ObjectMissing, ChecksumMismatch, ZoneError) as e:
            rep.add("missing-commit", name, f"names {sha}: {e}")
    if good_heads:
        h = History(git_dir)
        try:
            chunks = _reachable_content(h, good_heads, rep)
        finally:
            h.close()
    placed = {e.sha for idx in indexes.values() for e in idx.chunks}
    borrowed: set[str] = set()
    for info in zone.list("borrow/"):
        try:
            stream = zone.open_read(info.key)
            try:
                rec = parse_borrow_record(stream, info.key)
            finally:
                stream.close()
            borrowed |= {c.chunk for c in rec.chunks}
        except ZoneKeyMissing:
            continue
        except InvalidDocument as e:
            rep.add("bad-borrow", info.key, f"invalid borrow record: {e.reason}")
    for c in sorted(chunks):
        rep.count("content refs")
        if c not in placed and c not in borrowed:
            rep.add("missing-object", c, "referenced by a committed file, in no index or borrow record of the zone")
    if tmp:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return rep
