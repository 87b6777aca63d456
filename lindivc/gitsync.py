"""History exchange between the local bare git repository and a zone's ``git/`` prefix.

A zone keeps history in git's "dumb protocol" layout, so a plain git client pointed at the zone
over HTTP could clone it (docs/format.md, "History in a zone")::

    git/HEAD                          "ref: refs/heads/<branch>\\n" (written once, by the first push)
    git/refs/heads/<branch>           "<commit sha1>\\n": THE mutable files, updated by compare-and-swap
    git/info/refs                     "<sha1>\\t<refname>\\n" per ref, sorted  (derived from refs/)
    git/objects/pack/pack-<N>.pack    git pack files, one per push
    git/objects/pack/pack-<N>.idx     their git pack indexes (v2)
    git/objects/info/packs            "P pack-<N>.pack\\n" per pack, sorted, then "\\n" (derived)
    git/objects/aa/<38 hex>           loose objects, zlib-compressed as git stores them (read only:
                                      lindivc never writes them, but downloads accept them)

``<N>`` is the SHA-1 of the sorted binary names of the pack's objects (dulwich's and git's old
convention), so a retried push of the same objects produces the same pack name, and a downloaded
pack keeps its name locally.

Write order for a push: pack, then its .idx, then ``objects/info/packs`` (compare-and-swap,
retried), then - by the caller, after every other upload - the branch ref (compare-and-swap),
then ``HEAD`` if absent and ``info/refs`` (both derived, best effort). A ref therefore never
names a commit whose objects are not in the zone.

dulwich does the git work: finding the objects to send (MissingObjectFinder), writing and naming
packs and their indexes, indexing a downloaded pack from its content (``add_pack``), parsing
loose objects (``ShaFile.from_file``). Ours are the zone's side of it: the compare-and-swap ref
update dulwich does not have (:mod:`lindivc.zonerefs`); the info files, which several writers
rewrite by compare-and-swap from the zone's own listing (:mod:`lindivc.infofiles`; dulwich's
``update_server_info`` writes them from one local repository's refs and packs); and, here, the
object exchange: one pack per upload, and lazy, streamed downloads that fetch a pack only when
one of its objects is needed (dulwich's ``DumbHTTPObjectStore`` holds whole packs and every object
in memory).
"""
from __future__ import annotations

import hashlib
import io
import os
import stat
import tempfile
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable

from dulwich.objects import Commit, ShaFile, Tag, Tree
from dulwich.object_store import MissingObjectFinder
from dulwich.pack import iter_sha1, load_pack_index, write_pack_from_container, write_pack_index
from dulwich.repo import Repo

from .errors import ChecksumMismatch, ObjectMissing, ZoneKeyMissing
from .infofiles import INFO_PACKS as INFO_PACKS
from .infofiles import pack_key, remote_packs, update_info_packs
from .infofiles import update_info_packs_cached as update_info_packs_cached
from .layout import git_key
from .objects import COPY_BLOCK, is_sha1
from .zonerefs import HEAD_KEY as HEAD_KEY
from .zonerefs import INFO_REFS as INFO_REFS
from .zonerefs import cas_remote_ref as cas_remote_ref
from .zonerefs import list_remote_refs
from .zonerefs import read_remote_ref as read_remote_ref
from .zonerefs import update_info_refs_cached as update_info_refs_cached
from .zones.base import Zone

# The names re-exported above (``X as X``) are those push.py calls as ``gitsync.X``; tests
# replace ``gitsync.cas_remote_ref`` to stop a push at its ref update.

Progress = Callable[[int], None]

GITLINK_MODE = 0o160000


# -------------------------------------------------------------------------------- upload


def upload_history(
    git_dir: str,
    zone: Zone,
    new_heads: list[str],
    have: Iterable[str] = (),
    progress: Progress | None = None,
) -> int:
    """Upload every git object reachable from ``new_heads`` that the zone lacks, as one git pack;
    return the bytes uploaded (0 when the zone already has everything).

    The zone is taken to hold everything reachable from ``have`` and from its own refs. A pack
    already in the zone under the same name (a retried push) is not sent again. Does not touch
    branch refs: that is the caller's :func:`cas_remote_ref` step, after all other uploads.
    ``progress(nbytes)`` is called as bytes are sent.
    """
    remote = list_remote_refs(zone)
    with Repo(git_dir) as repo:
        store = repo.object_store
        ids = _missing_objects(store, git_dir, set(have) | set(remote.values()), new_heads)
        if not ids:
            return 0
        raw = sorted(bytes.fromhex(oid.decode("ascii")) for oid, _ in ids)
        name = iter_sha1(raw).decode("ascii")
        if zone.head(pack_key(name, "pack")) is not None and zone.head(pack_key(name, "idx")) is not None:
            update_info_packs(zone, [name])  # a retried push: the pack arrived, maybe not the list
            return 0
        sent = _send_pack(store, ids, zone, name, progress)
    update_info_packs(zone, [name])
    return sent



def _missing_objects(store, git_dir: str, have: Iterable[str], new_heads: list[str]) -> list:
    """(id, path) of every object reachable from ``new_heads`` and not from ``have``;
    ObjectMissing if a head is not in the local history."""
    haves = [h.encode("ascii") for h in have if is_sha1(h)]
    wants = [h.encode("ascii") for h in new_heads]
    for w in wants:
        if w not in store:
            raise ObjectMissing(w.decode(), f"the local history ({git_dir})")
    return list(MissingObjectFinder(store, haves=haves, wants=wants))


def _send_pack(store, ids, zone: Zone, name: str, progress: Progress | None, parallel: bool = False) -> int:
    """Write the git pack of ``ids`` and its index to temp files and put both (at once when
    ``parallel``); return the bytes sent."""
    tmpdir = tempfile.mkdtemp(prefix="lindivc-gitpack-")
    pack_path = os.path.join(tmpdir, "pack.pack")
    idx_path = os.path.join(tmpdir, "pack.idx")
    try:
        with open(pack_path, "wb") as f:
            entries, checksum = write_pack_from_container(
                f, store, ids, object_format=store.object_format, reuse_deltas=True)
        with open(idx_path, "wb") as f:
            write_pack_index(
                f, sorted((sha, off, crc) for sha, (off, crc) in entries.items()), checksum,
                version=2)
        jobs = [(pack_key(name, ext), path) for ext, path in (("pack", pack_path), ("idx", idx_path))]
        if parallel:
            with ThreadPoolExecutor(2) as ex:
                for fut in [ex.submit(zone.put_file, k, p, progress=progress) for k, p in jobs]:
                    fut.result()
        else:
            for k, p in jobs:
                zone.put_file(k, p, progress=progress)
        return sum(os.path.getsize(p) for _, p in jobs)
    finally:
        for p in (pack_path, idx_path):
            if os.path.exists(p):
                os.unlink(p)
        os.rmdir(tmpdir)


def upload_history_pack(git_dir: str, zone: Zone, new_heads: list[str], have: Iterable[str],
                        progress: Progress | None = None) -> tuple[str | None, int]:
    """Put the git pack (and its .idx, in parallel) of every object reachable from ``new_heads``
    but not from ``have``; return (pack name or None when nothing is missing, bytes sent).

    Unlike :func:`upload_history` it does not list the zone's refs (``have`` must be commits the
    zone holds, such as the branch value a push compare-and-swaps from) nor probe for the pack
    (re-sending a retried push's pack is cheaper than asking first), and it leaves
    ``objects/info/packs`` to the caller."""
    with Repo(git_dir) as repo:
        store = repo.object_store
        ids = _missing_objects(store, git_dir, set(have), new_heads)
        if not ids:
            return None, 0
        name = iter_sha1(sorted(bytes.fromhex(oid.decode("ascii")) for oid, _ in ids)).decode("ascii")
        return name, _send_pack(store, ids, zone, name, progress, parallel=True)

# -------------------------------------------------------------------------------- download


def _children(obj: ShaFile) -> list[tuple[bytes, bool]]:
    """(sha, may have children) of every object ``obj`` points at; blobs are leaves, gitlinks
    (submodule commits) are not followed."""
    if isinstance(obj, Commit):
        return [(obj.tree, True)] + [(p, True) for p in obj.parents]
    if isinstance(obj, Tree):
        return [(sha, stat.S_ISDIR(mode)) for _, mode, sha in obj.iteritems() if mode != GITLINK_MODE]
    if isinstance(obj, Tag):
        return [(obj.object[1], True)]
    return []


class _RemotePacks:
    """The zone's git packs that the local repository lacks, with their (untrusted) indexes,
    downloaded lazily: the indexes to find an object, a pack only when one of its objects is
    needed."""

    def __init__(self, zone: Zone, repo: Repo, tmpdir: str, progress: Progress | None) -> None:
        self.zone = zone
        self.repo = repo
        self.tmpdir = tmpdir
        self.progress = progress
        self.bytes = 0
        local = {p.name().decode("ascii") for p in repo.object_store.packs}
        self.pending = [n for n in remote_packs(zone) if n not in local]
        self.indexes: dict[str, object] = {}

    def _load_indexes(self) -> None:
        fmt = self.repo.object_store.object_format
        for name in self.pending:
            if name in self.indexes:
                continue
            path = os.path.join(self.tmpdir, f"pack-{name}.idx")
            self.bytes += _download(self.zone, pack_key(name, "idx"), path, self.progress)
            try:
                self.indexes[name] = load_pack_index(path, fmt)
            except Exception as e:  # a malformed index: dulwich raises many kinds
                raise ChecksumMismatch(name, f"unreadable pack index ({e})", pack_key(name, "idx")) from None

    def fetch_pack_holding(self, sha: bytes) -> bool:
        """Download and add the pack that holds ``sha``; False if no remote pack does."""
        self._load_indexes()
        for name, idx in list(self.indexes.items()):
            try:
                idx.object_offset(sha)  # type: ignore[attr-defined]
            except KeyError:
                continue
            self._add_pack(name)
            self.pending.remove(name)
            close = getattr(self.indexes.pop(name), "close", None)
            if close:
                close()
            return True
        return False

    def _add_pack(self, name: str) -> None:
        key = pack_key(name, "pack")
        f, commit, abort = self.repo.object_store.add_pack()
        try:
            self.bytes += _stream_verified_pack(self.zone, key, f, self.progress)
        except BaseException:
            _safe(abort)
            raise
        try:
            commit()  # indexes the pack from its content: object names are computed, not trusted
        except Exception as e:  # dulwich reports a corrupt pack with many exception types
            _safe(abort)
            raise ChecksumMismatch(name, f"corrupt pack ({type(e).__name__}: {e})", key) from None

    def close(self) -> None:
        for idx in self.indexes.values():
            close = getattr(idx, "close", None)
            if close:
                close()


def _safe(fn: Callable[[], None]) -> None:
    try:
        fn()
    except Exception:
        pass


def _download(zone: Zone, key: str, path: str, progress: Progress | None) -> int:
    n = 0
    with zone.open_read(key) as r, open(path, "wb") as f:
        for b in iter(lambda: r.read(COPY_BLOCK), b""):
            f.write(b)
            n += len(b)
            if progress is not None:
                progress(len(b))
    return n


def _stream_verified_pack(zone: Zone, key: str, f, progress: Progress | None) -> int:
    """Copy the pack at ``key`` into ``f``, checking the trailing SHA-1 of its content."""
    h = hashlib.sha1()
    tail = b""
    n = 0
    with zone.open_read(key) as r:
        for b in iter(lambda: r.read(COPY_BLOCK), b""):
            f.write(b)
            n += len(b)
            buf = tail + b
            h.update(buf[:-20])
            tail = buf[-20:]
            if progress is not None:
                progress(len(b))
    if len(tail) < 20 or h.digest() != tail:
        got = h.hexdigest() if len(tail) == 20 else "truncated"
        raise ChecksumMismatch(tail.hex() or "pack trailer", got, key)
    return n


def _fetch_loose(zone: Zone, sha: str) -> tuple[ShaFile, int] | None:
    key = git_key(f"objects/{sha[:2]}/{sha[2:]}")
    try:
        data = zone.get(key)
    except ZoneKeyMissing:
        return None
    try:
        obj = ShaFile.from_file(io.BytesIO(data))  # git's loose format: zlib("<type> <size>\0<body>")
    except Exception as e:  # dulwich reports a malformed object with many exception types
        raise ChecksumMismatch(sha, f"unreadable object ({e})", key) from None
    if obj.id.decode("ascii") != sha:
        raise ChecksumMismatch(sha, obj.id.decode("ascii"), key)
    return obj, len(data)


def download_history(
    zone: Zone,
    git_dir: str,
    heads: list[str],
    progress: Progress | None = None,
) -> int:
    """Make every object reachable from ``heads`` present in the local repository, fetching what
    is missing from the zone (its git packs first, loose objects otherwise); return bytes
    downloaded.

    Packs are streamed to disk (never held in memory), their checksum verified, and indexed
    locally from their content (the zone's .idx only serves to pick the pack). Raises
    ChecksumMismatch for corrupt data, ObjectMissing if the zone lacks a needed object. Objects
    already added stay (they are valid); refs are not touched.
    """
    total = 0
    with Repo(git_dir) as repo:
        store = repo.object_store
        tmpdir = tempfile.mkdtemp(prefix="lindivc-gitfetch-")
        remote = None
        try:
            stack = [(h.encode("ascii"), True) for h in heads]
            seen: set[bytes] = set()
            while stack:
                sha, inner = stack.pop()
                if sha in seen:
                    continue
                seen.add(sha)
                if sha not in store:
                    if remote is None:
                        remote = _RemotePacks(zone, repo, tmpdir, progress)
                    if not remote.fetch_pack_holding(sha):
                        got = _fetch_loose(zone, sha.decode("ascii"))
                        if got is None:
                            raise ObjectMissing(sha.decode("ascii"), f"zone {zone.url}")
                        store.add_object(got[0])
                        total += got[1]
                        if progress is not None:
                            progress(got[1])
                    if sha not in store:
                        raise ObjectMissing(sha.decode("ascii"), f"the pack of zone {zone.url} that lists it")
                if inner:  # blobs need only be present: never read them
                    stack.extend(c for c in _children(store[sha]) if c[0] not in seen)
        finally:
            if remote is not None:
                total += remote.bytes
                remote.close()
            for name in os.listdir(tmpdir):
                os.unlink(os.path.join(tmpdir, name))
            os.rmdir(tmpdir)
    return total
