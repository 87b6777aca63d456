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
update dulwich does not have; the info files, which several writers rewrite by compare-and-swap
from the zone's own listing (dulwich's ``update_server_info`` writes them from one local
repository's refs and packs); and lazy, streamed downloads that fetch a pack only when one of its
objects is needed (dulwich's ``DumbHTTPObjectStore`` holds whole packs and every object in memory).
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

from .errors import (ChecksumMismatch, MalformedRef, ObjectMissing, PreconditionFailed, RefConflict, ZoneError,
                     ZoneKeyMissing)
from .layout import git_key, validate_key
from .objects import COPY_BLOCK, is_sha1
from .zones.base import Zone

Progress = Callable[[int], None]

INFO_PACKS = git_key("objects/info/packs")
INFO_REFS = git_key("info/refs")
HEAD_KEY = git_key("HEAD")
PACK_PREFIX = git_key("objects/pack/")
CAS_ATTEMPTS = 20
GITLINK_MODE = 0o160000


def ref_key(branch: str) -> str:
    """The zone key of branch ``branch`` (InvalidKey for a name outside the layout)."""
    return validate_key(git_key("refs/heads/" + branch))


def pack_key(name: str, ext: str) -> str:
    return f"{PACK_PREFIX}pack-{name}.{ext}"


# -------------------------------------------------------------------------------- refs


def _parse_ref(data: bytes, key: str) -> str:
    sha = data.decode("ascii", "replace").strip()
    if not is_sha1(sha):
        raise MalformedRef(key, sha)
    return sha


def read_remote_ref(zone: Zone, branch: str) -> tuple[str | None, str | None]:
    """The commit the zone's ``branch`` names and the etag to pass to :func:`cas_remote_ref`;
    ``(None, None)`` if the branch does not exist. The etag belongs to the value returned."""
    key = ref_key(branch)
    if zone.atomic_get_etag:  # one GET answers value and etag together
        try:
            data, etag = zone.get_if_changed(key)
        except ZoneKeyMissing:
            return None, None
        return _parse_ref(data, key), etag
    for _ in range(CAS_ATTEMPTS):
        before = zone.head(key)
        if before is None:
            return None, None
        try:
            data = zone.get(key)
        except ZoneKeyMissing:
            continue
        after = zone.head(key)
        if after is not None and after.etag == before.etag:
            return _parse_ref(data, key), before.etag
    raise ZoneError(f"{key} keeps changing; try again")


def cas_remote_ref(
    zone: Zone,
    branch: str,
    new_sha: str,
    expected_etag: str | None,
    *,
    expected_sha: str | None = None,
    derived: bool = True,
) -> str:
    """Point the zone's ``branch`` at ``new_sha`` if it is still the value read with
    ``expected_etag`` (None: only if the branch does not exist yet); return the new etag.

    Raises RefConflict (hint "fetch and merge first") if the branch changed since it was read;
    ``expected_sha`` only makes that message name the commit the caller expected. On success,
    also writes ``git/HEAD`` if the zone has none and rewrites ``git/info/refs``; those derived
    files are best effort (their failures are swallowed: the ref update already happened).
    ``derived=False`` leaves them to the caller (push updates them from what it remembers).
    """
    if not is_sha1(new_sha):
        raise ValueError(f"not a commit sha1: {new_sha!r}")
    key = ref_key(branch)
    data = (new_sha + "\n").encode("ascii")
    try:
        if expected_etag is None:
            etag = zone.put(key, data, if_none_match=True)
        else:
            etag = zone.put(key, data, if_match=expected_etag)
    except PreconditionFailed:
        try:
            actual, _ = read_remote_ref(zone, branch)
        except ZoneError:
            actual = None
        raise RefConflict("refs/heads/" + branch, expected_sha, actual,
                          hint="fetch and merge first") from None
    if not derived:
        return etag
    try:
        if zone.head(HEAD_KEY) is None:
            zone.put(HEAD_KEY, f"ref: refs/heads/{branch}\n".encode("ascii"), if_none_match=True)
    except ZoneError:
        pass
    try:
        update_info_refs(zone)
    except ZoneError:
        pass
    return etag


def list_remote_refs(zone: Zone) -> dict[str, str]:
    """Every ref of the zone as full name (``refs/heads/main``) -> sha1. Read from the ref files
    when the zone can be listed, else from the derived ``git/info/refs``. Malformed refs, and
    refs deleted while they are read, are skipped; any other error (AccessDenied: the zone may
    be listed but not read) is raised, never taken for "no refs"."""
    refs: dict[str, str] = {}
    if zone.supports_listing:
        prefix = git_key("refs/")
        for info in zone.list(prefix):
            try:
                refs[info.key[len("git/"):]] = _parse_ref(zone.get(info.key), info.key)
            except (ZoneKeyMissing, MalformedRef):
                continue
        return refs
    try:
        text = zone.get(INFO_REFS).decode("ascii", "replace")
    except ZoneKeyMissing:
        return refs
    for line in text.splitlines():
        sha, _, name = line.partition("\t")
        if is_sha1(sha) and name.startswith("refs/"):
            refs[name] = sha
    return refs


def update_info_refs(zone: Zone) -> int:
    """Rewrite ``git/info/refs`` from the ref files (needs listing); return the bytes written
    (0 if it was already current). Compare-and-swap with retries, so a slower writer never
    replaces a newer list with an older one."""
    if not zone.supports_listing:
        return 0

    def render(_: bytes | None) -> bytes:
        refs = list_remote_refs(zone)
        return "".join(f"{sha}\t{name}\n" for name, sha in sorted(refs.items())).encode("ascii")

    return cas_rewrite(zone, INFO_REFS, render)


def update_info_refs_cached(zone: Zone, branch: str, sha: str,
                            cached: tuple[str, bytes] | None) -> tuple[str | None, bytes]:
    """:func:`update_info_refs` after ``branch`` moved to ``sha``, as one conditional PUT when
    ``cached`` (etag, content) is still current; else from the listing. Returns (etag, content)."""
    if not zone.supports_listing:
        return None, b""
    if cached is not None:
        lines = {}
        for line in cached[1].decode("ascii", "replace").splitlines():
            old, _, name = line.partition("\t")
            lines[name] = old
        lines["refs/heads/" + branch] = sha
        new = "".join(f"{v}\t{k}\n" for k, v in sorted(lines.items())).encode("ascii")
        if new == cached[1]:
            return cached
        try:
            return zone.put(INFO_REFS, new, if_match=cached[0]), new
        except PreconditionFailed:
            pass  # another writer: render from the listing

    def render(_: bytes | None) -> bytes:
        refs = list_remote_refs(zone)
        return "".join(f"{v}\t{k}\n" for k, v in sorted(refs.items())).encode("ascii")

    etag, content, _ = cas_rewrite_cached(zone, INFO_REFS, render)
    return etag, content


def cas_rewrite(zone: Zone, key: str, render: Callable[[bytes | None], bytes]) -> int:
    """Replace the derived file ``key`` by ``render(current)`` with compare-and-swap, retrying when
    another writer got there first. Returns bytes written (0 if unchanged)."""
    return cas_rewrite_cached(zone, key, render)[2]


def cas_rewrite_cached(zone: Zone, key: str, render: Callable[[bytes | None], bytes],
                       cached: tuple[str, bytes] | None = None) -> tuple[str | None, bytes, int]:
    """:func:`cas_rewrite`, first trying ``cached`` = (etag, content) the caller remembers, so
    that the usual update is one conditional PUT (a stale cache costs a failed PUT, then the
    read-render-write loop). Returns (etag, content now, bytes written)."""
    if cached is not None:
        etag, current = cached
        new = render(current)
        if new == current:
            return etag, current, 0
        try:
            return zone.put(key, new, if_match=etag), new, len(new)
        except PreconditionFailed:
            pass
    for _ in range(CAS_ATTEMPTS):
        info = zone.head(key)
        current: bytes | None = None
        if info is not None:
            try:
                current = zone.get(key)
            except ZoneKeyMissing:
                continue
        new = render(current)
        if new == current:
            return (info.etag if info else None), new, 0
        try:
            if info is None:
                etag = zone.put(key, new, if_none_match=True)
            else:
                etag = zone.put(key, new, if_match=info.etag)
            return etag, new, len(new)
        except PreconditionFailed:
            continue
    raise ZoneError(f"{key}: too many concurrent updates; try again")


# -------------------------------------------------------------------------------- info/packs


def _parse_info_packs(data: bytes | None) -> set[str]:
    names = set()
    for line in (data or b"").decode("ascii", "replace").splitlines():
        if line.startswith("P pack-") and line.endswith(".pack"):
            name = line[len("P pack-"):-len(".pack")]
            if is_sha1(name):
                names.add(name)
    return names


def _render_info_packs(names: Iterable[str]) -> bytes:
    return ("".join(f"P pack-{n}.pack\n" for n in sorted(set(names))) + "\n").encode("ascii")


def _listed_packs(zone: Zone) -> set[str]:
    """Packs whose .pack and .idx are both in the zone."""
    packs, idxs = set(), set()
    for info in zone.list(PACK_PREFIX):
        base = info.key[len(PACK_PREFIX):]
        for ext, into in ((".pack", packs), (".idx", idxs)):
            if base.startswith("pack-") and base.endswith(ext) and is_sha1(base[5:-len(ext)]):
                into.add(base[5:-len(ext)])
    return packs & idxs


def remote_packs(zone: Zone) -> list[str]:
    """Names of the git packs the zone advertises in ``git/objects/info/packs``."""
    try:
        return sorted(_parse_info_packs(zone.get(INFO_PACKS)))
    except ZoneKeyMissing:
        return []


def update_info_packs(zone: Zone, add: Iterable[str] = ()) -> int:
    """Rewrite ``git/objects/info/packs`` (compare-and-swap, retried) so it lists ``add`` and, when
    the zone can be listed, exactly the packs present; return bytes written."""
    add = set(add)

    def render(current: bytes | None) -> bytes:
        if zone.supports_listing:
            names = _listed_packs(zone) | add
        else:
            names = _parse_info_packs(current) | add
        return _render_info_packs(names)

    return cas_rewrite(zone, INFO_PACKS, render)


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
        haves = [h.encode("ascii") for h in set(have) | set(remote.values()) if is_sha1(h)]
        wants = [h.encode("ascii") for h in new_heads]
        for w in wants:
            if w not in store:
                raise ObjectMissing(w.decode(), f"the local history ({git_dir})")
        ids = list(MissingObjectFinder(store, haves=haves, wants=wants))
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
        haves = [h.encode("ascii") for h in set(have) if is_sha1(h)]
        wants = [h.encode("ascii") for h in new_heads]
        for w in wants:
            if w not in store:
                raise ObjectMissing(w.decode(), f"the local history ({git_dir})")
        ids = list(MissingObjectFinder(store, haves=haves, wants=wants))
        if not ids:
            return None, 0
        name = iter_sha1(sorted(bytes.fromhex(oid.decode("ascii")) for oid, _ in ids)).decode("ascii")
        return name, _send_pack(store, ids, zone, name, progress, parallel=True)


def update_info_packs_cached(zone: Zone, add: Iterable[str],
                             cached: tuple[str, bytes] | None) -> tuple[str | None, bytes]:
    """:func:`update_info_packs` as one conditional PUT when ``cached`` (etag, content) is
    current (the list then gains ``add``); else as :func:`update_info_packs`. Returns (etag, content)."""
    add = set(add)
    if cached is not None:
        new = _render_info_packs(_parse_info_packs(cached[1]) | add)
        if new == cached[1]:
            return cached
        try:
            return zone.put(INFO_PACKS, new, if_match=cached[0]), new
        except PreconditionFailed:
            pass

    def render(current: bytes | None) -> bytes:
        if zone.supports_listing:
            return _render_info_packs(_listed_packs(zone) | add)
        return _render_info_packs(_parse_info_packs(current) | add)

    etag, content, _ = cas_rewrite_cached(zone, INFO_PACKS, render)
    return etag, content


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
