"""Garbage collection, locally and in zones (DESIGN.md section 6): plan first, then sweep.

Terms
    root        something that keeps objects alive: a ref, a commit reachable from one, a
                rendered file, a pin, a young journal entry, a working file.
    live chunk  a chunk named by a root (by sha1, or by a byte range that falls inside it).
    grace       nothing whose store mtime is within ``grace`` seconds of the store's clock is
                deleted. The cutoff is exclusive: an object is old enough only if
                ``mtime < now - grace`` (by the store's clock: S3 LastModified, file mtime).

Zone GC (:func:`plan_zone`, :func:`sweep_zone`, :func:`gc_zone`)
    Roots: every ref of the zone and every commit reachable from it (their canonical files'
    content refs); every rendered file (``f/``, ``v/``) of every zone of the same cloud, by byte
    range (``v/<commit>/`` of this zone only while the commit is reachable, journalled, or younger
    than grace); journal entries younger than grace; pins: a pin left by a zone of this cloud is
    a root while younger than grace (afterwards that zone's rendered files speak for it); a pin of
    a file elsewhere (``lindivc pin URL``) is read at every GC and keeps what the file references;
    when such a file cannot be read, GC deletes nothing (fail safe). A pin of unknown kind keeps
    the objects it lists.

    Sweep, top-down, so that nothing ever points at a missing byte (docs/gc.md has the details):
      1. repacks: new pack, its index, re-rendered own files (compare-and-swap);
      2. indexes of what goes (dead objects, repacked packs), and ``info/idx``;
      3. refs, journal entries and pins are read again; if anything changed, put the indexes of
         step 2 back and stop (run GC again);
      4. rendered versions ``v/<commit>/...`` of unreachable commits (older than grace);
      5. dead objects, each re-read right before it goes (kept if written again or re-indexed),
         with step 3's check repeated at least every second;
      6. stale journal entries.
    One GC at a time per zone: the lease ``lease/gc`` (conditional create; it expires; an expired
    lease is reported, and taken over only when asked with ``break_lease``).
    Pushes keep working meanwhile: a push writes its journal before it reads the zone's
    indexes and re-sends objects that have no index; see docs/gc.md, "Pushes while GC runs", for
    why that is safe and for the one window left (a re-upload in the milliseconds between step
    5's re-read of an object and its deletion).

Local GC (:func:`plan_local`, :func:`sweep_local`)
    Roots: every ref (branches, tags, remote-tracking refs), HEAD, reflog entries newer than grace,
    the staging index, every working LINDI file (its canonical form; a file that cannot be
    canonicalized keeps every sha1 its text mentions). Unreachable loose objects and local
    packs whose every chunk is dead are deleted when older than grace (index before pack). With
    ``evict_pushed``, local copies of chunks that a remote zone holds and that only pushed
    commits reference are dropped too, after the working files are re-rendered to read from the
    zone.
"""
from __future__ import annotations

import getpass
import hashlib
import json
import os
import re
import socket
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Iterable

import orjson

from . import lindijson
from .atomic import atomic_write
from .errors import InvalidLindiFile, LindivcError, PreconditionFailed, ZoneError, ZoneKeyMissing
from .layout import GC_LEASE_KEY, index_key, object_key, pin_key, sha1_from_object_key
from .packs import ChunkEntry, InvalidPackIndex, PackIndex
from .catalog import update_info
from .zones.base import ObjectInfo, Zone

DEFAULT_GRACE = 14 * 86400.0
DEFAULT_THRESHOLD = 0.5
LEASE_FORMAT = "lindivc-lease/1"
LEASE_TTL = 3600.0
CACHE_FORMAT = "lindivc-gc-cache/1"
PIN_FORMAT = "lindivc-pin/1"
RECHECK_SECONDS = 1.0  # during deletion, how often refs, journal entries and pins are read again
READ_THREADS = 16  # parallel reads of indexes (S3 and gateways answer each in a round trip)
_SHA_RE = re.compile(rb"[0-9a-f]{40}")


# --------------------------------------------------------------------------- errors


class GCError(LindivcError):
    """GC refused to run or to continue."""


class InvalidGrace(GCError):
    """A grace period that cannot be parsed, or ``now`` without the explicit flag."""


class LeaseHeld(GCError):
    """Another GC holds the zone's lease (``expired`` tells whether it is stale)."""

    def __init__(self, zone: str, holder: str, acquired: float, expires: float, expired: bool) -> None:
        self.holder, self.acquired, self.expires, self.expired = holder, acquired, expires, expired
        when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(acquired))
        if expired:
            msg = (f"{zone}: a stale GC lease (held by {holder} since {when}, expired) is in place; "
                   "that GC may have crashed. Check that it is not running, then run again with --break-lease")
        else:
            msg = f"{zone}: another GC holds the lease ({holder} since {when}); try again later"
        super().__init__(msg)


class RefsChanged(GCError):
    """A ref or a journal entry changed between plan and sweep (start over)."""


class PinUnreadable(GCError):
    """A pinned file could not be read (GC deletes nothing while it cannot)."""


# --------------------------------------------------------------------------- grace

_GRACE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|d|w)?\s*$")
_UNITS = {None: 1, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_grace(text: str | float | int | None, *, allow_now: bool = False) -> float:
    """Seconds in a grace period such as ``14d``, ``36h``, ``30m``, ``90s``, ``2w`` (a bare number
    is seconds). ``now`` (zero) only with ``allow_now``. Raises InvalidGrace."""
    if text is None:
        return DEFAULT_GRACE
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        secs = float(text)
    else:
        s = str(text).strip().lower()
        if s == "now":
            secs = 0.0
        else:
            m = _GRACE_RE.match(s)
            if not m:
                raise InvalidGrace(f"invalid grace period {text!r}: use a number and a unit, like 14d, 36h, 30m, 90s")
            secs = float(m.group(1)) * _UNITS[m.group(2)]
    if secs < 0:
        raise InvalidGrace(f"invalid grace period {text!r}: negative")
    if secs == 0 and not allow_now:
        raise InvalidGrace("a grace period of 0 (`now`) can delete objects that a push in flight or another "
                           "process is about to use; pass --i-know-grace-now to allow it")
    return secs


def format_duration(secs: float) -> str:
    for unit, n in (("d", 86400), ("h", 3600), ("m", 60)):
        if secs >= n and secs % n == 0:
            return f"{int(secs // n)}{unit}"
    return f"{secs:g}s"


# --------------------------------------------------------------------------- plans


@dataclass
class Deletion:
    """One key (zone) or object (local) a sweep deletes, and why it is garbage."""

    key: str
    kind: str  # "version" | "index" | "object" | "pack" | "journal" | "pin" | "loose" | "evict"
    size: int
    mtime: float
    reason: str


@dataclass
class Repack:
    """A partly dead pack to rewrite with only its live chunks."""

    pack: str
    size: int
    live: list[list]  # [chunk, offset, size] of live chunks in the old pack
    dead_bytes: int
    files: list[str]  # own rendered files that reference the pack
    mtime: float = 0.0


@dataclass
class Roots:
    refs: int = 0
    commits: int = 0
    files: int = 0  # rendered files scanned (zone) / working files (local)
    pins: int = 0
    journal: int = 0
    zones: int = 1
    reflog: int = 0
    unpushed: int = 0
    index: int = 0

    def summary(self, local: bool = False) -> str:
        if local:
            return (f"roots: {self.refs} refs, {self.commits} commits ({self.unpushed} unpushed), "
                    f"{self.reflog} recent reflog entries, {self.index} staged and {self.files} working files")
        return (f"roots: {self.refs} refs, {self.commits} commits, {self.files} rendered files, "
                f"{self.pins} pins, {self.journal} journal entries, across {self.zones} zone(s)")


@dataclass
class GCPlan:
    """What a sweep would delete, and why the rest is kept. Pure data (see :meth:`to_json`)."""

    target: str
    now: float
    grace: float
    threshold: float = DEFAULT_THRESHOLD
    roots: Roots = field(default_factory=Roots)
    refs: dict[str, str] = field(default_factory=dict)
    journals: list[str] = field(default_factory=list)
    pins: dict[str, float] = field(default_factory=dict)  # pin -> mtime when planned
    delete: list[Deletion] = field(default_factory=list)
    repack: list[Repack] = field(default_factory=list)
    kept: dict[str, int] = field(default_factory=dict)  # reason -> count of objects kept
    kept_bytes: int = 0
    live_objects: int = 0
    blocked: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    cached: bool = False
    swept: bool = False
    deleted: int = 0
    deleted_bytes: int = 0

    @property
    def cutoff(self) -> float:
        return self.now - self.grace

    @property
    def delete_bytes(self) -> int:
        return sum(d.size for d in self.delete if d.kind in ("object", "pack", "loose", "evict"))

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for d in self.delete:
            out[d.kind] = out.get(d.kind, 0) + 1
        return out

    def keep(self, reason: str, size: int = 0) -> None:
        self.kept[reason] = self.kept.get(reason, 0) + 1
        self.kept_bytes += size

    def to_json(self) -> dict:
        d = asdict(self)
        d["cutoff"] = self.cutoff
        d["delete_bytes"] = self.delete_bytes
        d["counts"] = self.counts()
        d["roots_summary"] = self.roots.summary(local=not self.target.startswith("zone "))
        return d


def _old(info_mtime: float, cutoff: float) -> bool:
    return info_mtime < cutoff


# --------------------------------------------------------------------------- lease


@dataclass
class Lease:
    zone: Zone
    id: str
    etag: str
    holder: str
    acquired: float = 0.0
    expires: float = 0.0

    def renew_if_due(self, ttl: float = LEASE_TTL) -> None:
        """Extend the lease (compare-and-swap on its etag) once half its time has passed, so a
        long sweep keeps it; GCError if another GC took it over (this one must stop)."""
        now = self.zone.now()
        if now < self.expires - ttl / 2:
            return
        rec = {"format": LEASE_FORMAT, "id": self.id, "holder": self.holder, "acquired": self.acquired,
               "expires": now + ttl}
        try:
            self.etag = self.zone.put(GC_LEASE_KEY, json.dumps(rec, sort_keys=True).encode(), if_match=self.etag)
        except PreconditionFailed:
            raise GCError(f"{self.zone.url}: the GC lease was taken over (--break-lease) while this GC ran; "
                          "stopped, nothing more deleted") from None
        self.expires = now + ttl

    def release(self) -> None:
        """Delete the lease if it is still ours."""
        try:
            cur = json.loads(self.zone.get(GC_LEASE_KEY))
        except (ZoneKeyMissing, ValueError):
            return
        if cur.get("id") == self.id:
            self.zone.delete(GC_LEASE_KEY)


def _holder() -> str:
    try:
        user = getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name is not an error
        user = "unknown"
    return f"{user}@{socket.gethostname()} pid {os.getpid()}"


def read_lease(zone: Zone) -> dict | None:
    """The lease record in ``zone`` (with its ``etag``), or None."""
    info = zone.head(GC_LEASE_KEY)
    if info is None:
        return None
    try:
        rec = json.loads(zone.get(GC_LEASE_KEY))
    except ZoneKeyMissing:
        return None
    except ValueError:
        rec = {"holder": "unreadable lease", "acquired": info.mtime, "expires": info.mtime}
    rec["etag"] = info.etag
    return rec


def acquire_lease(zone: Zone, *, ttl: float = LEASE_TTL, break_lease: bool = False) -> Lease:
    """Take the zone's GC lease (conditional create). Raises LeaseHeld when another GC holds it,
    or when it is expired and ``break_lease`` is not set; AccessDenied without write rights."""
    now = zone.now()
    rec = {"format": LEASE_FORMAT, "id": uuid.uuid4().hex, "holder": _holder(), "acquired": now, "expires": now + ttl}
    data = json.dumps(rec, sort_keys=True).encode()
    for _ in range(3):
        try:
            etag = zone.put(GC_LEASE_KEY, data, if_none_match=True)
            return Lease(zone, rec["id"], etag, rec["holder"], rec["acquired"], rec["expires"])
        except PreconditionFailed:
            cur = read_lease(zone)
            if cur is None:
                continue
            expired = float(cur.get("expires", 0)) <= zone.now()
            if not expired or not break_lease:
                raise LeaseHeld(zone.url, str(cur.get("holder")), float(cur.get("acquired", 0)),
                                float(cur.get("expires", 0)), expired) from None
            try:
                etag = zone.put(GC_LEASE_KEY, data, if_match=cur["etag"]) if cur.get("etag") else None
            except PreconditionFailed:
                continue
            if etag is None:
                zone.delete(GC_LEASE_KEY)
                continue
            return Lease(zone, rec["id"], etag, rec["holder"], rec["acquired"], rec["expires"])
    raise GCError(f"{zone.url}: the GC lease keeps changing; try again")


# --------------------------------------------------------------------------- reading rendered files


def iter_range_refs(data: bytes) -> Iterable[tuple[str, int, int]]:
    """``(object sha1, offset, size)`` of every ref in a rendered LINDI file whose URL ends in
    ``sha1/aa/bb/cc/<sha1>`` (whatever its prefix: conservative)."""
    try:
        rfs = orjson.loads(data)
    except orjson.JSONDecodeError:
        # not JSON: keep every sha1-looking name it mentions
        for m in _SHA_RE.findall(data):
            yield m.decode(), -1, -1
        return
    refs = rfs.get("refs") if isinstance(rfs, dict) else None
    if not isinstance(refs, dict):
        return
    templates = rfs.get("templates") or {}
    for v in refs.values():
        if isinstance(v, list) and len(v) == 3 and isinstance(v[0], str) and "sha1/" in v[0]:
            url = lindijson.apply_templates(v[0], templates) if templates else v[0]
            sha = sha1_from_object_key(url.split("?", 1)[0])
            if sha is not None and isinstance(v[1], int) and isinstance(v[2], int):
                yield sha, v[1], v[2]
        elif isinstance(v, list) and len(v) == 1 and isinstance(v[0], str) and "sha1/" in v[0]:
            sha = sha1_from_object_key(v[0])
            if sha is not None:
                yield sha, -1, -1


def read_url(url: str) -> bytes:
    """The bytes of a file named by URL or path (http(s), s3://, file://, a local path)."""
    if url.startswith(("http://", "https://")):
        import requests

        try:
            r = requests.get(url, timeout=60)
            r.raise_for_status()
        except requests.RequestException as e:
            raise PinUnreadable(f"cannot read pinned file {url}: {str(e).splitlines()[0][:200]}") from None
        return r.content
    if url.startswith("s3://"):
        from .zones.s3 import make_client

        bucket, _, key = url[5:].partition("/")
        try:
            return make_client().get_object(Bucket=bucket, Key=key)["Body"].read()
        except Exception as e:  # noqa: BLE001 - any failure means: unreadable
            raise PinUnreadable(f"cannot read pinned file {url}: {e}") from None
    path = url[len("file://"):] if url.startswith("file://") else url
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise PinUnreadable(f"cannot read pinned file {url}: {e.strerror}") from None


# --------------------------------------------------------------------------- zone plan


class _ZoneScan:
    """Everything a zone plan reads, split by prefix."""

    def __init__(self, zone: Zone) -> None:
        self.objects: dict[str, ObjectInfo] = {}
        self.indexes: dict[str, ObjectInfo] = {}
        self.files: list[ObjectInfo] = []
        self.journals: dict[str, ObjectInfo] = {}
        self.pins: dict[str, ObjectInfo] = {}
        self.fp_parts: list[tuple[str | None, bytes]] = []  # (own key or None, fingerprint line)
        for info in zone.list(""):
            k = info.key
            top = k.split("/", 1)[0]
            if top in ("lease", "info"):  # the lease, and lists derived from idx/ and borrow/
                continue
            self.fp_parts.append((k, f"{k}\0{info.size}\0{info.mtime}\n".encode()))
            if top == "sha1":
                sha = sha1_from_object_key(k)
                if sha:
                    self.objects[sha] = info
            elif top == "idx":
                self.indexes[k[4:]] = info
            elif top in ("f", "v"):
                self.files.append(info)
            elif top == "journal":
                self.journals[k[8:]] = info
            elif top == "pins":
                self.pins[k[5:]] = info


def default_cache_dir(zone_url: str) -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "lindivc", "gc", hashlib.sha1(zone_url.encode()).hexdigest()[:16])


def _history_chunks(zone: Zone, refs: dict[str, str], cache_dir: str) -> tuple[set[str], set[str]]:
    """(reachable commits, chunk sha1s their files reference), from the zone's git/ history
    (downloaded into ``cache_dir/git``, incrementally)."""
    from dulwich.objects import Commit, Tag, Tree
    from dulwich.repo import Repo

    from . import gitsync

    git_dir = os.path.join(cache_dir, "git")
    if not os.path.isdir(os.path.join(git_dir, "objects")):
        os.makedirs(git_dir, exist_ok=True)
        Repo.init_bare(git_dir)
    heads = sorted(set(refs.values()))
    if heads:
        gitsync.download_history(zone, git_dir, heads)
    commits: set[str] = set()
    chunks: set[str] = set()
    with Repo(git_dir) as repo:
        store = repo.object_store
        seen_trees: set[bytes] = set()
        seen_blobs: set[bytes] = set()
        stack = [h.encode() for h in heads]
        while stack:
            sha = stack.pop()
            if sha.decode() in commits:
                continue
            obj = store[sha]
            if isinstance(obj, Tag):
                stack.append(obj.object[1])
                continue
            if not isinstance(obj, Commit):
                continue
            commits.add(sha.decode())
            stack.extend(obj.parents)
            trees = [obj.tree]
            while trees:
                t = trees.pop()
                if t in seen_trees:
                    continue
                seen_trees.add(t)
                tree = store[t]
                if not isinstance(tree, Tree):
                    continue
                for entry in tree.iteritems():
                    if entry.mode & 0o170000 == 0o040000:
                        trees.append(entry.sha)
                    elif entry.mode & 0o170000 == 0o100000 and entry.sha not in seen_blobs:
                        seen_blobs.add(entry.sha)
                        chunks |= lindijson.content_shas(store[entry.sha].as_raw_string())
    return commits, chunks


def _load_cache(cache_dir: str) -> dict | None:
    try:
        with open(os.path.join(cache_dir, "last.json"), "rb") as f:
            d = orjson.loads(f.read())
        return d if d.get("format") == CACHE_FORMAT else None
    except (OSError, orjson.JSONDecodeError):
        return None


def _save_cache(cache_dir: str, doc: dict) -> None:
    os.makedirs(cache_dir, exist_ok=True)
    atomic_write(os.path.join(cache_dir, "last.json"), orjson.dumps(doc))


@dataclass
class _Inputs:
    scan: _ZoneScan
    refs: dict[str, str]
    siblings: list[Zone]
    sib_files: list[tuple[Zone, ObjectInfo]]
    pin_docs: dict[str, dict]
    external: dict[str, bytes]
    blocked: list[str]
    fingerprint: str


def _read_inputs(zone: Zone) -> _Inputs:
    """List the zone and its cloud's rendered files, read refs, pins and pinned files."""
    from . import gitsync

    refs = gitsync.list_remote_refs(zone)
    scan = _ZoneScan(zone)
    siblings = list(zone.siblings())
    sib_files: list[tuple[Zone, ObjectInfo]] = []
    for sib in siblings:
        for top in ("f/", "v/"):
            try:
                for info in sib.list(top):
                    sib_files.append((sib, info))
                    scan.fp_parts.append((None, f"{sib.url}\0{info.key}\0{info.size}\0{info.mtime}\n".encode()))
            except ZoneError as e:
                raise ZoneError(f"cannot scan {sib.url} (a zone of the same cloud, whose files may reference "
                                f"this zone's objects): {e}; GC stopped, nothing deleted") from None
    scan.fp_parts.append((None, json.dumps(sorted(refs.items())).encode()))
    pin_docs: dict[str, dict] = {}
    external: dict[str, bytes] = {}
    blocked: list[str] = []
    for pid in sorted(scan.pins):
        try:
            doc = json.loads(zone.get(pin_key(pid)))
        except (ZoneKeyMissing, ValueError):
            doc = {}
        pin_docs[pid] = doc
        if doc.get("file"):
            try:
                external[pid] = read_url(doc["file"])
                scan.fp_parts.append((None, hashlib.sha1(external[pid]).digest()))
            except PinUnreadable as e:
                blocked.append(f"pin {pid}: {e}")
                scan.fp_parts.append((None, b"unreadable"))
    return _Inputs(scan, refs, siblings, sib_files, pin_docs, external, blocked, fingerprint(scan.fp_parts))


def fingerprint(parts: list[tuple[str | None, bytes]], without: set[str] = frozenset()) -> str:
    """What a GC read of a zone depends on, as one sha1: its listing (but the keys ``without``),
    its cloud's rendered files, its refs and its pinned files."""
    h = hashlib.sha1()
    for key, line in parts:
        if key is None or key not in without:
            h.update(line)
    return h.hexdigest()


def plan_zone(zone: Zone, *, grace: float = DEFAULT_GRACE, threshold: float = DEFAULT_THRESHOLD,
              cache_dir: str | None = None, now: float | None = None, use_cache: bool = True) -> GCPlan:
    """What a GC of ``zone`` would delete or repack, and why the rest is kept (reads only).

    Raises ZoneError when a zone of the cloud cannot be scanned (GC cannot know what it
    references). A pinned file that cannot be read is reported in ``plan.blocked``: then the
    plan deletes nothing.

    The reachability results are cached in ``cache_dir`` under a fingerprint of the zone's
    listing, its cloud's rendered files, its refs and its pinned files: when nothing changed,
    the next plan reuses them (only the grace cutoff is applied again).
    """
    cache_dir = cache_dir or default_cache_dir(zone.url)
    now = zone.now() if now is None else now
    plan = GCPlan(f"zone {zone.url}", now, grace, threshold)
    cutoff = plan.cutoff
    inp = _read_inputs(zone)
    scan, refs = inp.scan, inp.refs
    plan.refs = refs
    plan.journals = sorted(scan.journals)
    plan.pins = {k: i.mtime for k, i in scan.pins.items()}
    plan.blocked = list(inp.blocked)
    plan.roots.zones = 1 + len(inp.siblings)
    plan.roots.pins = len(scan.pins)
    plan._fp_parts = scan.fp_parts  # for the cache after a sweep (not part of the report)

    cached = _load_cache(cache_dir) if use_cache else None
    if (cached is not None and cached.get("fingerprint") == inp.fingerprint and cached.get("threshold") == threshold
            and cached.get("grace") == grace and cutoff <= (cached.get("roots_valid_until_cutoff") or 1e300)):
        plan.roots = Roots(**cached["roots"])
        plan.kept = dict(cached["kept"])
        plan.kept_bytes = cached["kept_bytes"]
        plan.live_objects = cached["live_objects"]
        _apply_age(plan, [Deletion(**d) for d in cached["dead"]], [Repack(**r) for r in cached["repack"]])
        plan.cached = True
        when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(cached["at"]))
        plan.notes.append(f"nothing changed in the zone since the last GC ({when}): reusing its reachability results")
        if plan.blocked:
            plan.delete, plan.repack = [], []
        return plan

    # 1. indexes: chunk -> packs
    indexes: dict[str, PackIndex] = {}

    def read_index(name: str):
        try:
            return PackIndex.from_bytes(zone.get(index_key(name)), name, where=f"{zone.url}/idx/{name}")
        except (InvalidPackIndex, ZoneKeyMissing) as e:
            return e

    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=READ_THREADS) as ex:
        for name, got in zip(scan.indexes, ex.map(read_index, scan.indexes, chunksize=256)):
            if isinstance(got, PackIndex):
                indexes[name] = got
            else:
                plan.notes.append(f"idx/{name} unreadable ({got}); its object is kept (run `lindivc fsck --remote`)")

    # 2. history
    commits, live = _history_chunks(zone, refs, cache_dir)
    plan.roots.refs = len(refs)
    plan.roots.commits = len(commits)

    dead: list[Deletion] = []
    aging: list[float] = []  # mtimes of roots that stop being roots once older than the cutoff
    # 3. journals
    journal_commits: set[str] = set()
    journal_chunks: set[str] = set()
    for jid, info in scan.journals.items():
        if _old(info.mtime, cutoff):
            dead.append(Deletion(f"journal/{jid}", "journal", info.size, info.mtime,
                                 "journal entry older than the grace period (its push finished or died)"))
            continue
        try:
            doc = json.loads(zone.get(f"journal/{jid}"))
        except (ZoneKeyMissing, ValueError):
            doc = {}
        plan.roots.journal += 1
        aging.append(info.mtime)
        journal_chunks |= {s for s in doc.get("objects", []) if isinstance(s, str)}
        if isinstance(doc.get("commit"), str):
            journal_commits.add(doc["commit"])
    live |= journal_chunks

    # 4. pins
    whole: set[str] = set()  # objects kept whole (a ref that maps to no chunk, a pin of objects)
    external_packs: set[str] = set()
    range_hits: list[tuple[str, int, int, bool, str | None]] = []
    sib_urls = {s.url for s in inp.siblings}
    for pid, doc in inp.pin_docs.items():
        info = scan.pins[pid]
        if pid in inp.external:
            for sha, off, size in iter_range_refs(inp.external[pid]):
                range_hits.append((sha, off, size, True, None))
        elif doc.get("by") in sib_urls:
            if not _old(info.mtime, cutoff):  # afterwards, that zone's rendered files speak for it
                aging.append(info.mtime)
                live |= set(doc.get("chunks", []))
                whole |= {p for p in doc.get("objects", []) if p not in indexes}
        elif not doc.get("file"):
            live |= set(doc.get("chunks", []))
            whole |= set(doc.get("objects", []))

    # 5. rendered files
    own_files: dict[str, list[str]] = {}  # pack -> own file keys referencing it
    n_files = 0
    for info in scan.files:
        k = info.key
        if k.startswith("v/"):
            commit = k.split("/", 2)[1]
            if commit not in commits and commit not in journal_commits:
                if _old(info.mtime, cutoff):
                    dead.append(Deletion(k, "version", info.size, info.mtime,
                                         f"published version of commit {commit[:10]}, which no ref reaches"))
                    continue
                aging.append(info.mtime)
        try:
            data = zone.get(k)
        except ZoneKeyMissing:
            continue
        n_files += 1
        for sha, off, size in iter_range_refs(data):
            range_hits.append((sha, off, size, False, k))
    for sib, info in inp.sib_files:
        try:
            data = sib.get(info.key)
        except ZoneKeyMissing:
            continue
        except ZoneError as e:
            raise ZoneError(f"cannot read {sib.url}/{info.key}: {e}; GC stopped, nothing deleted") from None
        n_files += 1
        for sha, off, size in iter_range_refs(data):
            range_hits.append((sha, off, size, True, None))
    plan.roots.files = n_files
    for sha, off, size, ext, fkey in range_hits:
        idx = indexes.get(sha)
        if idx is None:
            whole.add(sha)
            continue
        if ext:
            external_packs.add(sha)
        elif fkey is not None:
            lst = own_files.setdefault(sha, [])
            if not lst or lst[-1] != fkey:
                lst.append(fkey)
        pos = idx.chunk_at(off) if off >= 0 else None
        if pos is None:
            whole.add(sha)
        else:
            live.add(pos.chunk)
    del range_hits
    whole |= {n for n in scan.indexes if n not in indexes}  # unreadable index: keep its object

    # 6. classify, then apply the cutoff
    repacks = _classify(plan, scan, indexes, live, whole, external_packs, own_files, journal_chunks, dead)
    doc = {"format": CACHE_FORMAT, "fingerprint": inp.fingerprint, "threshold": threshold, "grace": grace, "at": now,
           "roots": asdict(plan.roots), "kept": plan.kept, "kept_bytes": plan.kept_bytes,
           "live_objects": plan.live_objects, "dead": [asdict(d) for d in dead],
           "repack": [asdict(r) for r in repacks], "roots_valid_until_cutoff": min(aging, default=1e300)}
    _apply_age(plan, dead, repacks)
    if not plan.blocked:
        _save_cache(cache_dir, doc)
    else:
        plan.notes.append("nothing will be deleted while a pinned file cannot be read")
        plan.delete, plan.repack = [], []
    return plan


_YOUNG = "unreachable but younger than the grace period"


def _apply_age(plan: GCPlan, dead: list[Deletion], repacks: list["Repack"]) -> None:
    """Split time-independent results by the plan's cutoff into deletions and kept-young."""
    cutoff = plan.cutoff
    for d in dead:
        if _old(d.mtime, cutoff):
            plan.delete.append(d)
        elif d.kind in ("object", "pack"):
            plan.keep(_YOUNG, d.size)
    for rp in repacks:
        if _old(rp.mtime, cutoff):
            plan.repack.append(rp)
        else:
            plan.keep("partly dead pack younger than the grace period", rp.size)


def _classify(plan: GCPlan, scan: _ZoneScan, indexes: dict[str, PackIndex], live: set[str], whole: set[str],
              external_packs: set[str], own_files: dict[str, list[str]], journal_chunks: set[str],
              dead: list[Deletion]) -> list["Repack"]:
    """Sort every data object into kept (with a reason), dead (appended to ``dead``) or to repack
    (returned); independent of the cutoff."""
    repacks: list[Repack] = []
    for name, idx in indexes.items():
        obj = scan.objects.get(name)
        iinfo = scan.indexes[name]
        if obj is None:
            plan.notes.append(f"idx/{name} names an object the zone lacks (run `lindivc fsck --remote`)")
            continue
        if name in whole:
            plan.keep("referenced by a rendered file or pin", obj.size)
            plan.live_objects += 1
            continue
        live_entries = [e for e in idx.chunks if e.sha in live]
        if len(live_entries) == len(idx.chunks):
            plan.keep("every chunk reachable", obj.size)
            plan.live_objects += 1
            continue
        kind = "object" if len(idx.chunks) == 1 and idx.chunks[0].sha == name else "pack"
        mtime = max(obj.mtime, iinfo.mtime)
        if not live_entries:
            dead.append(Deletion(index_key(name), "index", iinfo.size, mtime, f"index of an unreachable {kind}"))
            dead.append(Deletion(object_key(name), kind, obj.size, mtime,
                                 "no ref, rendered file, pin or journal entry reaches it" if kind == "object"
                                 else f"none of its {len(idx.chunks)} chunks is reachable"))
            continue
        plan.live_objects += 1
        dead_bytes = sum(e.size for e in idx.chunks if e.sha not in live)
        share = dead_bytes / obj.size if obj.size else 0.0
        if share <= plan.threshold:
            plan.keep(f"partly dead pack, dead share at most the threshold {plan.threshold:g}", obj.size)
        elif name in external_packs:
            plan.keep("partly dead pack referenced by range from outside this zone's history", obj.size)
        elif any(e.sha in journal_chunks for e in idx.chunks):
            plan.keep("partly dead pack named by a push in flight", obj.size)
        else:
            repacks.append(Repack(name, obj.size, [[e.sha, e.offset, e.size] for e in live_entries], dead_bytes,
                                  own_files.get(name, []), mtime))
    for sha, info in scan.objects.items():
        if sha in indexes:
            continue
        if sha in live or sha in whole:
            plan.keep("reachable (object without an index)", info.size)
            plan.live_objects += 1
            continue
        dead.append(Deletion(object_key(sha), "object", info.size, info.mtime,
                             "object without an index that nothing references (an interrupted upload)"))
    return repacks


# --------------------------------------------------------------------------- zone sweep


def _check_unchanged(zone: Zone, plan: GCPlan) -> None:
    """Icechunk's rule: stop if a ref moved or a push started since the plan."""
    from . import gitsync

    refs = gitsync.list_remote_refs(zone)
    if refs != plan.refs:
        changed = sorted(set(refs.items()) ^ set(plan.refs.items()))
        raise RefsChanged(f"{zone.url}: {changed[0][0]} changed while GC ran; nothing more was deleted. "
                          "Run GC again (it plans from the new state)")
    journals = sorted(i.key[8:] for i in zone.list("journal/"))
    new = set(journals) - set(plan.journals)
    if new:
        raise RefsChanged(f"{zone.url}: a push started while GC ran (journal/{sorted(new)[0]}); nothing more was "
                          "deleted. Run GC again")
    pins = {i.key[5:]: i.mtime for i in zone.list("pins/")}
    new = {k for k, m in pins.items() if plan.pins.get(k) != m}
    if new:  # another zone started (or renewed) borrowing from this one
        raise RefsChanged(f"{zone.url}: a pin was added while GC ran (pins/{sorted(new)[0]}); nothing more was "
                          "deleted. Run GC again")


def _repack_one(zone: Zone, rp: Repack, tmpdir: str) -> tuple[int, int]:
    """Rewrite one partly dead pack; return (bytes freed, files re-rendered)."""
    from .objects import ObjectStore, sha1_bytes
    from .packs import PackWriter

    store = ObjectStore(tmpdir, fsync=False)
    live = sorted(rp.live)
    datas: dict[str, bytes] = {}
    for sha, off, size in live:
        data = zone.get_range(object_key(rp.pack), off, size)
        if sha1_bytes(data) != sha:
            from .errors import ChecksumMismatch

            raise ChecksumMismatch(sha, sha1_bytes(data), f"{zone.url}/{object_key(rp.pack)} at {off}+{size}")
        datas[sha] = data
    if len(live) == 1:
        sha = live[0][0]
        new = PackIndex(sha, len(datas[sha]), (ChunkEntry(sha, 0, len(datas[sha])),))
        if not zone.exists(object_key(sha)):
            zone.put(object_key(sha), datas[sha])
    else:
        w = PackWriter(store)
        try:
            for sha, _, _ in live:
                w.add(sha, datas[sha])
            new = w.finish()
        except BaseException:
            w.abort()
            raise
        if not zone.exists(object_key(new.pack)):
            zone.put_file(object_key(new.pack), store.path(new.pack))
        store.delete(new.pack)
    zone.put(index_key(new.pack), new.to_bytes())

    if zone.head("info/idx") is not None:
        update_info(zone, "idx", [new.pack])
    # re-render own files that reference the old pack (compare-and-swap on each)
    old_prefix_tail = object_key(rp.pack)
    new_tail = object_key(new.pack)
    where = {sha: off for sha, off, _ in live}
    old_idx = PackIndex(rp.pack, rp.size, tuple(ChunkEntry(*e) for e in sorted(live)))
    n = 0
    for key in rp.files:
        info = zone.head(key)
        if info is None:
            continue
        rfs = orjson.loads(zone.get(key))
        changed = False
        for k, v in rfs.get("refs", {}).items():
            if isinstance(v, list) and len(v) == 3 and isinstance(v[0], str) and v[0].endswith(old_prefix_tail):
                pos = old_idx.chunk_at(v[1])
                if pos is None:
                    raise GCError(f"{key}: ref {k} points into dead bytes of pack {rp.pack}; repack abandoned")
                noff = new.lookup(pos.chunk)
                rfs["refs"][k] = [v[0][: -len(old_prefix_tail)] + new_tail, noff[0] + pos.inner_offset, v[2]]
                changed = True
        if changed:
            try:
                zone.put(key, lindijson.dumps(rfs), if_match=info.etag)
            except PreconditionFailed:
                raise RefsChanged(f"{zone.url}: {key} changed while GC re-rendered it; pack {rp.pack[:10]} kept. "
                                  "Run GC again") from None
            n += 1
    del where
    return rp.size - new.size, n  # the old index and pack go in the sweep's steps 2 and 5


def sweep_zone(zone: Zone, plan: GCPlan, lease: Lease | None = None) -> GCPlan:
    """Carry out ``plan`` top-down (module docstring); return it with ``deleted`` counts set.
    Raises RefsChanged (after deleting nothing more) when a ref or journal changed."""
    import shutil
    import tempfile

    if plan.blocked:
        raise PinUnreadable("; ".join(plan.blocked) + "; nothing deleted")
    _check_unchanged(zone, plan)
    by_kind: dict[str, list[Deletion]] = {}
    for d in plan.delete:
        by_kind.setdefault(d.kind, []).append(d)

    def gone(d: Deletion) -> None:
        zone.delete(d.key)
        plan.deleted += 1
        if d.kind in ("object", "pack"):
            plan.deleted_bytes += d.size

    # 1. repacks: the new pack, its index, the own files re-rendered to point at it
    old_packs: list[Deletion] = []
    if plan.repack:
        tmp = tempfile.mkdtemp(prefix="lindivc-repack-")
        try:
            for rp in plan.repack:
                freed, _ = _repack_one(zone, rp, tmp)
                plan.deleted_bytes += freed - rp.size  # the old pack's bytes count when it goes
                old_packs.append(Deletion(object_key(rp.pack), "pack", rp.size, rp.mtime, "repacked"))
                by_kind.setdefault("index", []).append(
                    Deletion(index_key(rp.pack), "index", 0, rp.mtime, "repacked"))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    # 2. indexes of what goes: from now on no new push relies on those objects
    removed: dict[str, bytes] = {}
    for d in by_kind.get("index", []):
        try:
            removed[d.key[4:]] = zone.get(d.key)
        except ZoneKeyMissing:
            continue
        gone(d)
    update_info(zone, "idx", remove=removed, only_if_present=True)
    # 3. a push, a ref move or a new pin since the plan stops GC here; a push that started before
    # step 2 may rely on those indexes, so they are put back (they are immutable documents)
    try:
        _check_unchanged(zone, plan)
    except RefsChanged:
        for name, data in removed.items():
            zone.put(index_key(name), data)
        update_info(zone, "idx", add=removed, only_if_present=True)
        plan.deleted -= len(removed)
        raise
    # 4, 5. versions and objects, each only if nobody wrote it again since the plan (a force-push
    # back to a commit rewrites its v/ files; a push that found no index re-uploads the object),
    # read fresh right before it goes; and the check of step 3 again at least every second.
    checked = time.monotonic()
    for kind in ("version", "pack", "object"):
        for d in by_kind.get(kind, []) + (old_packs if kind == "pack" else []):
            if time.monotonic() - checked > RECHECK_SECONDS:
                _check_unchanged(zone, plan)
                if lease is not None:
                    lease.renew_if_due()
                checked = time.monotonic()
            if _written_again(zone, d):
                plan.notes.append(f"kept {d.key}: written again while GC ran")
                continue
            gone(d)
    for d in by_kind.get("journal", []):
        gone(d)
    plan.swept = True
    return plan


def _written_again(zone: Zone, d: Deletion) -> bool:
    """True if ``d.key`` changed since the plan saw it (absent counts as changed: nothing to do),
    or, for an object, if its index is back (a push uploaded it again)."""
    info = next((i for i in zone.list(d.key) if i.key == d.key), None)
    if info is None or info.mtime > d.mtime:
        return True
    sha = sha1_from_object_key(d.key)
    return sha is not None and zone.exists(index_key(sha))


def _after_sweep_cache(zone: Zone, plan: GCPlan, cache_dir: str) -> None:
    """Keep the cache valid after a sweep that only deleted: drop what was deleted, refingerprint."""
    cached = _load_cache(cache_dir)
    if cached is None:
        return
    if plan.repack:
        try:
            os.unlink(os.path.join(cache_dir, "last.json"))
        except OSError:
            pass
        return
    gone = {d.key for d in plan.delete}
    cached["dead"] = [d for d in cached["dead"] if d["key"] not in gone]
    # The zone as the plan saw it, less what the sweep deleted: anything written meanwhile (a
    # push) makes the next GC's fingerprint differ, so it plans afresh.
    cached["fingerprint"] = fingerprint(plan._fp_parts, without=gone)
    _save_cache(cache_dir, cached)


def gc_zone(zone: Zone, *, prune: bool = False, grace: float = DEFAULT_GRACE, threshold: float = DEFAULT_THRESHOLD,
            break_lease: bool = False, cache_dir: str | None = None, attempts: int = 3) -> GCPlan:
    """Plan a GC of ``zone`` and, with ``prune``, sweep it under the zone's lease.

    Raises LeaseHeld, AccessDenied (no write rights), PinUnreadable (with ``prune`` when a pinned
    file cannot be read), RefsChanged (refs kept moving over ``attempts`` plans).
    """
    cache_dir = cache_dir or default_cache_dir(zone.url)
    if not prune:
        plan = plan_zone(zone, grace=grace, threshold=threshold, cache_dir=cache_dir)
        lease = read_lease(zone)
        if lease is not None:
            plan.notes.append(f"a GC lease is held by {lease.get('holder')} (a --prune now would wait for it)")
        return plan
    lease = acquire_lease(zone, break_lease=break_lease)
    try:
        for attempt in range(attempts):
            plan = plan_zone(zone, grace=grace, threshold=threshold, cache_dir=cache_dir)
            try:
                sweep_zone(zone, plan, lease)
            except RefsChanged:
                if attempt == attempts - 1:
                    raise
                plan.notes.append("refs changed during the sweep; planning again")
                continue
            if plan.deleted or plan.repack:
                _after_sweep_cache(zone, plan, cache_dir)
            return plan
    finally:
        lease.release()
    raise AssertionError("unreachable")


# --------------------------------------------------------------------------- pins


def pin(zone: Zone, url: str) -> dict:
    """Record the LINDI file at ``url`` (outside the cloud) as a root of ``zone``: every GC reads
    it and keeps the objects it references. Returns the pin record (with ``id``).

    Raises PinUnreadable if the file cannot be read, GCError if it references nothing in the zone.
    """
    data = read_url(url)
    shas = {sha for sha, _, _ in iter_range_refs(data)}
    mine = sorted(s for s in shas if zone.exists(object_key(s)))
    if not mine:
        raise GCError(f"{url} references no object of zone {zone.url}; nothing to pin")
    pid = "url-" + hashlib.sha1(url.encode()).hexdigest()[:24]
    rec = {"format": PIN_FORMAT, "by": "external", "file": url, "objects": mine, "created": time.time()}
    zone.put(pin_key(pid), json.dumps(rec, sort_keys=True).encode())
    rec["id"] = pid
    return rec


def list_pins(zone: Zone) -> list[dict]:
    out = []
    for info in zone.list("pins/"):
        pid = info.key[5:]
        try:
            rec = json.loads(zone.get(info.key))
        except (ZoneKeyMissing, ValueError):
            rec = {}
        rec["id"] = pid
        rec["mtime"] = info.mtime
        out.append(rec)
    return out


def unpin(zone: Zone, pin_id: str) -> None:
    if zone.head(pin_key(pin_id)) is None:
        raise GCError(f"zone {zone.url} has no pin {pin_id!r} (see `lindivc pin --list`)")
    zone.delete(pin_key(pin_id))


# --------------------------------------------------------------------------- local GC


def _commit_chunks(repo, heads: Iterable[str]) -> tuple[set[str], set[str]]:
    """(commits reachable from ``heads``, chunks their files reference)."""
    commits: set[str] = set()
    chunks: set[str] = set()
    seen: set[str] = set()
    heads = [h for h in heads if h and repo.history.has(h)]
    for c in repo.history.walk(list(heads)):
        commits.add(c.sha)
        for blob in repo.history.tree_files(c.tree).values():
            if blob not in seen:
                seen.add(blob)
                chunks |= lindijson.content_shas(repo.history.read_blob(blob))
    return commits, chunks


def _working_chunks(repo, plan: GCPlan) -> tuple[set[str], dict[str, bytes]]:
    index = repo._index()
    paths = sorted(set(index.entries) | set(repo.untracked(index)))
    chunks: set[str] = set()
    canon: dict[str, bytes] = {}
    for p in paths:
        ap = repo.abspath(p)
        if not os.path.exists(ap):
            continue
        try:
            c = repo.canonical_bytes_of(p)
            canon[p] = c
            chunks |= lindijson.content_shas(c)
        except (InvalidLindiFile, LindivcError, OSError):
            with open(ap, "rb") as f:
                chunks |= {m.decode() for m in _SHA_RE.findall(f.read())}
            plan.notes.append(f"{p} could not be read as a LINDI file: every sha1 it mentions is kept")
    plan.roots.files = len(canon)
    for e in index.entries.values():
        if e.get("blob") and repo.history.has(e["blob"]):
            chunks |= lindijson.content_shas(repo.history.read_blob(e["blob"]))
    plan.roots.index = len(index.entries)
    return chunks, canon


def plan_local(repo, *, grace: float = DEFAULT_GRACE, evict_pushed: bool = False, now: float | None = None) -> GCPlan:
    """What a local GC would delete (reads only; see the module docstring)."""
    now = time.time() if now is None else now
    plan = GCPlan(f"repository {repo.root}", now, grace)
    cutoff = plan.cutoff
    refs = repo.history.all_refs()
    head = repo.history.head()
    heads = set(refs.values()) | ({head} if head else set())
    reflog = repo.history.reflog_shas(cutoff)
    plan.roots.refs = len(refs)
    plan.roots.reflog = len(reflog)
    plan.refs = dict(sorted(refs.items()))
    commits, live = _commit_chunks(repo, heads | reflog)
    plan.roots.commits = len(commits)
    remote_heads = [v for k, v in refs.items() if k.startswith("refs/remotes/")]
    pushed_commits, pushed_chunks = _commit_chunks(repo, remote_heads)
    plan.roots.unpushed = len(commits - pushed_commits)
    work, canon = _working_chunks(repo, plan)
    live |= work
    plan._canon = canon  # type: ignore[attr-defined]
    evictable: set[str] = set()
    if evict_pushed:
        _, unpushed_chunks = _commit_chunks(repo, list(heads | reflog))
        unpushed_chunks -= pushed_chunks
        needed_locally = (unpushed_chunks | work) - pushed_chunks
        held: set[str] = set()
        for cat in repo.catalogs():
            try:
                cat.refresh()
            except ZoneError as e:
                plan.notes.append(f"cannot reach {cat.url} ({e}); its objects are not evicted")
                continue
            held |= {c for c in pushed_chunks if c in cat.placements and _zone_has(cat, c)}
        evictable = held - needed_locally
    packs = repo.packs
    for sha in repo.objects:
        if packs.is_pack(sha):
            continue
        size = repo.objects.size(sha)
        mtime = repo.objects.mtime(sha)
        if sha in evictable:
            plan.delete.append(Deletion(sha, "evict", size, mtime, "pushed: a zone holds it; the working files will read it there"))
        elif sha in live:
            plan.keep("reachable", size)
            plan.live_objects += 1
        elif _old(mtime, cutoff):
            plan.delete.append(Deletion(sha, "loose", size, mtime, "no ref, reflog entry, staged or working file reaches it"))
        else:
            plan.keep("unreachable but younger than the grace period", size)
    for idx in packs:
        p = repo.objects.path(idx.pack)
        if not os.path.exists(p):
            continue
        size = os.path.getsize(p)
        mtime = os.path.getmtime(p)
        chunks = {e.sha for e in idx.chunks}
        if idx.pack in live or chunks & (live - evictable):
            plan.keep("pack with reachable chunks", size)
            plan.live_objects += 1
            continue
        if chunks <= evictable:
            plan.delete.append(Deletion(idx.pack, "evict", size, mtime, "pushed pack: a zone holds every chunk"))
        elif _old(mtime, cutoff):
            plan.delete.append(Deletion(idx.pack, "pack", size, mtime, f"none of its {len(chunks)} chunks is reachable"))
        else:
            plan.keep("unreachable pack younger than the grace period", size)
    return plan


def _zone_has(cat, chunk: str) -> bool:
    p = cat.placements[chunk]
    cache = cat.__dict__.setdefault("_gc_exists", {})
    key = (p.zone_url, p.pack)
    if key not in cache:
        z = cat.zone if p.zone_url == cat.url else cat._lender(p.zone_url)
        try:
            info = z.head(object_key(p.pack))
        except ZoneError:
            info = None
        cache[key] = info is not None and info.size >= p.offset + p.size
    return cache[key]


def sweep_local(repo, plan: GCPlan) -> GCPlan:
    """Delete what ``plan`` names (skipping objects touched since the plan); for evictions, the
    working files are re-rendered first, to read those chunks from their zone."""
    refs = repo.history.all_refs()
    if dict(sorted(refs.items())) != plan.refs:
        raise RefsChanged("refs changed since the GC plan; run GC again")
    evicted = {d.key for d in plan.delete if d.kind == "evict"}
    if evicted:
        packs = repo.packs
        evicted_chunks = set(evicted)
        for d in plan.delete:
            if d.kind == "evict" and packs.is_pack(d.key):
                evicted_chunks |= {e.sha for e in packs.index(d.key).chunks}
        cats = repo.catalogs()

        def locate(cr: lindijson.ContentRef) -> list:
            if cr.sha1 in evicted_chunks:
                for c in cats:
                    r = c.locate(cr)
                    if r is not None:
                        return r
            return repo.locate(cr)

        for path, canon in getattr(plan, "_canon", {}).items():
            lindijson.write_lindi_json(repo.abspath(path), lindijson.render(lindijson.parse(canon, path), locate))
    for d in plan.delete:
        p = repo.objects.path(d.key)
        try:
            mtime = os.path.getmtime(p)
        except FileNotFoundError:
            continue
        if d.kind != "evict" and mtime != d.mtime and not _old(mtime, plan.cutoff):
            continue  # touched (re-added) since the plan
        if repo.packs.is_pack(d.key):
            repo.packs.remove(d.key)  # index first, then the pack
        repo.objects.delete(d.key)
        plan.deleted += 1
        plan.deleted_bytes += d.size
    plan.swept = True
    return plan


def gc_local(repo, *, prune: bool = False, grace: float = DEFAULT_GRACE, evict_pushed: bool = False) -> GCPlan:
    """Plan (and with ``prune``, sweep) a GC of the local object store."""
    plan = plan_local(repo, grace=grace, evict_pushed=evict_pushed)
    if prune:
        # no working file may be open "r+" meanwhile: its writer would save refs to objects this
        # sweep deletes or evicts (FileLocked names the file)
        with repo.locked(getattr(plan, "_canon", {}).keys()):
            sweep_local(repo, plan)
    return plan
