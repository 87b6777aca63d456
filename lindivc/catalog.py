"""The remote catalog: what a repository knows about each zone (DESIGN.md section 5).

For every configured remote, ``.lindivc/remotes/<name>/`` caches the zone's pack indexes and the
chunks it borrows from other zones of its cloud, so that working files render and canonicalize
offline. This module also owns the derived name lists ``info/idx`` and ``info/borrow`` that let
zones without listing (plain HTTP) be catalogued.
"""
from __future__ import annotations

import bisect
import hashlib
import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from itertools import repeat
from dataclasses import dataclass
from typing import Iterable

from . import infofiles
from .atomic import atomic_write
from .auth import load_token
from .documents import BorrowRecord, parse_borrow_record
from .errors import ChecksumMismatch, InvalidDocument, InvalidKey, ObjectMissing, PreconditionFailed, ZoneKeyMissing
from .layout import borrow_key, index_key, object_key, parse_zone_url, sha1_from_object_key
from .lindijson import ContentRef
from .objects import is_sha1
from .packs import PackIndex
from .zones import Zone, open_zone

_PROBE_KEY = object_key("0" * 40)
REFRESH_THREADS = 8  # documents read at once by ZoneCatalog.refresh
INFO_IDX = "info/idx"


def zone_for(url: str) -> Zone:
    """Open a zone with the user's gateway token (if any)."""
    token = None
    loc = parse_zone_url(url) if not url.startswith("memory://") else None
    if loc is not None and loc.scheme in ("http", "https") and loc.in_cloud:
        token = load_token()
    return open_zone(url, token=token)


def public_prefix(zone: Zone) -> str:
    """The URL prefix a zone's rendered refs start with (everything before ``sha1/...``)."""
    u = zone.public_url(_PROBE_KEY)
    return u[: len(u) - len(_PROBE_KEY)]


# --------------------------------------------------------------------------- catalogs


@dataclass
class Placement:
    """Where a chunk lives in a zone: ``pack`` (a pack or the chunk itself) at ``offset``."""

    prefix: str  # public URL prefix of the zone holding it
    zone_url: str
    pack: str
    offset: int
    size: int


class ZoneCatalog:
    """What a repository knows of one zone: its pack indexes and the chunks it borrows.

    Kept under ``.lindivc/remotes/<name>/`` (``idx/<packsha1>``, ``borrow/<id>``, ``meta.json``)
    so that working files of a clone can be rendered and canonicalized offline. Borrow records
    are another user's documents: each is parsed (:func:`lindivc.documents.parse_borrow_record`)
    and must name a lender of the zone's own cloud; one that does not is left out and listed in
    ``invalid``.
    """

    def __init__(self, cache_dir: str, url: str) -> None:
        self.dir = cache_dir
        self.url = url
        self._zone: Zone | None = None
        self.meta: dict = {}
        self.placements: dict[str, Placement] = {}
        self.packs: dict[str, PackIndex] = {}  # own packs
        self.borrowed: set[str] = set()
        self.prefixes: dict[str, str] = {}  # public prefix -> zone url
        self._lenders: dict[str, Zone] = {}
        self._foreign: dict[str, list[tuple[int, int, str]]] = {}  # borrowed pack -> sorted ranges
        self.invalid: list[InvalidDocument] = []  # borrow records left out
        self._lock = threading.Lock()
        self._load()

    # loading -------------------------------------------------------------
    def _load(self) -> None:
        mp = os.path.join(self.dir, "meta.json")
        if os.path.exists(mp):
            with open(mp) as f:
                self.meta = json.load(f)
        prefix = self.meta.get("prefix")
        if prefix:
            self.prefixes[prefix] = self.url
        idir = os.path.join(self.dir, "idx")
        if os.path.isdir(idir):
            for name in os.listdir(idir):
                if is_sha1(name):
                    with open(os.path.join(idir, name), "rb") as f:
                        self._add_index(PackIndex.from_bytes(f.read(), name, where=f"cached index {name}"))
        bdir = os.path.join(self.dir, "borrow")
        if os.path.isdir(bdir):
            for name in os.listdir(bdir):
                with open(os.path.join(bdir, name), "rb") as f:
                    self._take_borrow(f.read(), borrow_key(name))

    def _add_index(self, idx: PackIndex) -> None:
        self.packs[idx.pack] = idx
        prefix = self.meta.get("prefix", "")
        for e in idx.chunks:
            self.placements[e.sha] = Placement(prefix, self.url, idx.pack, e.offset, e.size)
            self.borrowed.discard(e.sha)

    def _take_borrow(self, data: bytes, key: str) -> bool:
        """Parse and add the borrow record ``data`` (at ``key``); False (and listed in
        ``invalid``) if it is not valid or its lender is not a zone of this zone's cloud."""
        try:
            rec = parse_borrow_record(data, key)
            if not self._same_cloud(rec.lender):
                raise InvalidDocument(key, f"lender {rec.lender} is not a zone of the cloud of {self.url}")
        except InvalidDocument as e:
            self.invalid.append(e)
            return False
        self._add_borrow(rec)
        return True

    def _same_cloud(self, url: str) -> bool:
        if url.startswith("memory://") or self.url.startswith("memory://"):  # test zones
            return url.startswith("memory://") and self.url.startswith("memory://")
        try:
            lender, own = parse_zone_url(url), parse_zone_url(self.url)
        except InvalidKey:
            return False
        return lender.in_cloud and lender.cloud_root == own.cloud_root

    def _add_borrow(self, rec: BorrowRecord) -> None:
        self.prefixes[rec.prefix] = rec.lender
        for c in rec.chunks:
            if c.chunk not in self.placements:
                self.placements[c.chunk] = Placement(rec.prefix, rec.lender, c.pack, c.offset, c.size)
                self.borrowed.add(c.chunk)
            self._foreign.setdefault(c.pack, []).append((c.offset, c.size, c.chunk))
        for ranges in self._foreign.values():
            ranges.sort()

    @property
    def zone(self) -> Zone:
        if self._zone is None:
            self._zone = zone_for(self.url)
        return self._zone

    def refresh(self) -> tuple[int, int]:
        """Download indexes and borrow records not cached yet; return (new indexes, bytes).
        Both listings, and then the documents, are read in parallel."""
        z = self.zone
        if "prefix" not in self.meta:
            self.meta["prefix"] = public_prefix(z)
            self.meta["url"] = self.url
            self._save_meta()
            self.prefixes[self.meta["prefix"]] = self.url
            for idx in list(self.packs.values()):
                self._add_index(idx)
        with ThreadPoolExecutor(REFRESH_THREADS) as ex:
            borrow_names = ex.submit(zone_names, z, "borrow")
            names = zone_names(z, "idx")
            gone = set(self.packs) - set(names)
            if gone:  # removed by the zone's GC (lindivc.gc): forget them, so that nothing renders to them
                for name in gone:
                    try:
                        os.unlink(os.path.join(self.dir, "idx", name))
                    except FileNotFoundError:
                        pass
                self.placements, self.packs, self.borrowed, self._foreign = {}, {}, set(), {}
                self._load()
            bdir = os.path.join(self.dir, "borrow")
            have = set(os.listdir(bdir)) if os.path.isdir(bdir) else set()
            indexes = ex.map(_get_or_none, repeat(z), [index_key(n) for n in names if n not in self.packs])
            records = ex.map(_get_or_none, repeat(z), [borrow_key(n) for n in borrow_names.result() if n not in have])
            new = nbytes = 0
            for key, data in indexes:
                if data is None:
                    continue  # listed in info/idx, removed by GC since
                name = key.rsplit("/", 1)[-1]
                idx = PackIndex.from_bytes(data, name, where=f"{self.url}/{key}")
                self._store("idx", name, data)
                self._add_index(idx)
                new += 1
                nbytes += len(data)
            for key, data in records:
                if data is None:
                    continue
                if self._take_borrow(data, key):
                    self._store("borrow", key.rsplit("/", 1)[-1], data)
                nbytes += len(data)
        return new, nbytes

    def refresh_unless_remembered(self) -> bool:
        """:meth:`refresh` (listing ``idx/`` and ``borrow/``) unless this catalog remembers the
        etag ``info/idx`` had when it last matched the catalog exactly; return True if it was
        trusted without a request. A trusted catalog MUST be confirmed later with
        :func:`confirm_info_idx` (docs/format.md 6.4 step 3): every index removal changes
        ``info/idx`` first (GC, docs/gc.md sweep step 2), so an unchanged ``info/idx`` means no
        index this catalog relies on is gone. Indexes it does not know (a push that died before
        updating ``info/idx``) only cost a re-upload."""
        if self.cached(INFO_IDX) is not None and "prefix" in self.meta:
            return True
        self.refresh()
        self.note_info_idx()
        return False

    def note_info_idx(self) -> None:
        """Read ``info/idx`` and remember its etag if it names exactly this catalog's packs."""
        try:
            data, etag = self.zone.get_if_changed("info/idx")
        except ZoneKeyMissing:
            return
        if etag is not None and set(data.decode().split()) == set(self.packs):
            self.remember("info/idx", etag, data)

    def note_info_idx_written(self, etag: str | None, content: bytes) -> None:
        """Remember the etag of ``info/idx`` as written, if it names exactly this catalog's packs
        (call once the indexes it names are in the catalog)."""
        self.remember(INFO_IDX, etag, content if set(content.decode().split()) == set(self.packs) else None)

    def cached(self, key: str) -> tuple[str, bytes] | None:
        """(etag, content) of the zone's derived file ``key`` as this repository last wrote or
        read it, or None."""
        got = self.meta.get("etags", {}).get(key)
        return (got[0], got[1].encode()) if got else None

    def remember(self, key: str, etag: str | None, content: bytes | None) -> None:
        """Record (or, with None, forget) the etag and content of the zone's file ``key`` (a
        derived file, or a branch ref this repository last read or wrote)."""
        etags = self.meta.setdefault("etags", {})
        new = [etag, content.decode()] if etag and content is not None else None
        if etags.get(key) == new:
            return
        if new is not None:
            etags[key] = new
        else:
            etags.pop(key, None)
        self._save_meta()

    def _save_meta(self) -> None:
        os.makedirs(self.dir, exist_ok=True)
        atomic_write(os.path.join(self.dir, "meta.json"), json.dumps(self.meta, sort_keys=True).encode())

    def _store(self, kind: str, name: str, data: bytes) -> None:
        atomic_write(os.path.join(self.dir, kind, name), data)

    def add_index(self, idx: PackIndex) -> None:
        self._store("idx", idx.pack, idx.to_bytes())
        with self._lock:
            self._add_index(idx)

    def add_borrow(self, name: str, rec: BorrowRecord) -> None:
        self._store("borrow", name, rec.to_bytes())
        self._add_borrow(rec)

    def own_chunks(self) -> set[str]:
        return {c for c in self.placements if c not in self.borrowed}

    # the Repository hooks -------------------------------------------------
    def locate(self, cr: ContentRef) -> list | None:
        p = self.placements.get(cr.sha1)
        if p is None:
            return None
        return [p.prefix + object_key(p.pack), p.offset + cr.offset, cr.size]

    def resolve(self, url: str, offset: int, size: int) -> ContentRef | None:
        for prefix in self.prefixes:
            if not url.startswith(prefix):
                continue
            sha = sha1_from_object_key(url[len(prefix):])
            if sha is None:
                return None
            return self.chunk_in(sha, offset, size)
        return None

    def chunk_in(self, obj: str, offset: int, size: int) -> ContentRef | None:
        """The content ref of ``size`` bytes at ``offset`` of object ``obj`` (a pack or a chunk)
        of this zone or a lender, through the indexes; a chunk itself when no index names it."""
        idx = self.packs.get(obj)
        if idx is not None:
            pos = idx.chunk_at(offset)
            return None if pos is None else ContentRef(pos.chunk, pos.inner_offset, size)
        ranges = self._foreign.get(obj)
        if ranges:
            i = bisect.bisect_right(ranges, (offset, float("inf"), "")) - 1
            if i >= 0 and ranges[i][0] <= offset < ranges[i][0] + ranges[i][1]:
                return ContentRef(ranges[i][2], offset - ranges[i][0], size)
            return None
        return ContentRef(obj, offset, size)

    def read_range(self, url: str, offset: int, size: int) -> bytes | None:
        """Bytes of a rendered ref that points into this zone (or a lender), read with the user's
        credentials; None for URLs elsewhere."""
        for prefix, zurl in self.prefixes.items():
            if url.startswith(prefix):
                key = url[len(prefix):]
                if sha1_from_object_key(key) is None:
                    return None
                z = self.zone if zurl == self.url else self._lender(zurl)
                return z.get_range(key, offset, size)
        return None

    def read_chunk(self, sha: str) -> bytes:
        p = self.placements.get(sha)
        if p is None:
            raise ObjectMissing(sha, self.url)
        z = self.zone if p.zone_url == self.url else self._lender(p.zone_url)
        data = z.get_range(object_key(p.pack), p.offset, p.size)
        got = hashlib.sha1(data).hexdigest()
        if got != sha:
            raise ChecksumMismatch(sha, got, f"{p.zone_url}/{object_key(p.pack)}")
        return data

    def _lender(self, url: str) -> Zone:
        with self._lock:
            if url not in self._lenders:
                self._lenders[url] = zone_for(url)
            return self._lenders[url]


def _get_or_none(zone: Zone, key: str) -> tuple[str, bytes | None]:
    try:
        return key, zone.get(key)
    except ZoneKeyMissing:
        return key, None


def zone_names(zone: Zone, kind: str) -> list[str]:
    """Names under ``idx/`` or ``borrow/``: by listing, or from ``info/<kind>`` where a zone
    cannot list (plain HTTP)."""
    if zone.supports_listing:
        return [i.key.rsplit("/", 1)[-1] for i in zone.list(kind + "/")]
    try:
        return zone.get(f"info/{kind}").decode().split()
    except ZoneKeyMissing:
        return []


def update_info(zone: Zone, kind: str, add: Iterable[str] = (), remove: Iterable[str] = (),
                only_if_present: bool = False) -> None:
    """Add and remove names in the derived list ``info/<kind>`` (compare-and-swap, retried).

    With ``only_if_present`` a zone that keeps no such list (it can list) is left without one.
    """
    add, remove = set(add), set(remove)
    if not add and not remove:
        return
    if only_if_present and zone.head(f"info/{kind}") is None:
        return

    def render(cur: bytes | None) -> bytes:
        names = set(cur.decode().split()) if cur else set()
        return ("\n".join(sorted((names | add) - remove)) + "\n").encode()

    infofiles.cas_rewrite(zone, f"info/{kind}", render)


def update_info_idx(cat: ZoneCatalog, adding: Iterable[str] = (), *,
                    remember: bool = True) -> tuple[str | None, bytes]:
    """Make ``info/idx`` list every pack of ``cat`` and ``adding`` (one conditional PUT when the
    catalog remembers the current etag); with ``remember``, remember the result when it names
    exactly the catalog's packs. Returns (etag, content)."""
    def render(cur: bytes | None) -> bytes:
        return _info_idx_content(cur, cat, adding)

    etag, content, _ = infofiles.cas_rewrite_cached(cat.zone, INFO_IDX, render, cat.cached(INFO_IDX))
    if remember:
        cat.note_info_idx_written(etag, content)
    return etag, content


def confirm_info_idx(cat: ZoneCatalog, adding: Iterable[str] = ()) -> tuple[str | None, bytes] | None:
    """Make ``info/idx`` list every pack of ``cat`` and the packs ``adding`` (whose indexes are
    being written alongside), as one request conditional on the etag
    :meth:`ZoneCatalog.refresh_unless_remembered` trusted: a PUT with ``If-Match`` (or, when there
    is nothing to add, a GET with ``If-None-Match``). Returns (etag, content) now, or None if
    ``info/idx`` changed since the catalog matched it: then nothing is written and the catalog
    must be refreshed before the push relies on it. Without a remembered etag (the catalog was
    listed) it is a plain compare-and-swap rewrite. The caller passes the result to
    :meth:`ZoneCatalog.note_info_idx_written` once the indexes are in."""
    cached = cat.cached(INFO_IDX)
    if cached is None:
        return update_info_idx(cat, adding, remember=False)
    etag, current = cached
    new = _info_idx_content(current, cat, adding)
    try:
        if new == current:
            data, now = cat.zone.get_if_changed(INFO_IDX, etag)
            if data is not None or now is None:
                raise PreconditionFailed(INFO_IDX)
        else:
            now = cat.zone.put(INFO_IDX, new, if_match=etag)
    except (PreconditionFailed, ZoneKeyMissing):
        cat.remember(INFO_IDX, None, None)
        return None
    return now, new


def _info_idx_content(current: bytes | None, cat: ZoneCatalog, adding: Iterable[str] = ()) -> bytes:
    names = set(current.decode().split()) if current else set()
    return ("\n".join(sorted(names | set(cat.packs) | set(adding))) + "\n").encode()


def catalog_dir(repo, name: str) -> str:
    return os.path.join(repo.lvc, "remotes", name)


def load_catalogs(repo) -> list[ZoneCatalog]:
    """A catalog for every configured remote (the Repository's locate/resolve hooks)."""
    return [_catalog(repo, name, url) for name, url in sorted(repo.config.remotes().items())]


def _catalog(repo, name: str, url: str) -> ZoneCatalog:
    cat = ZoneCatalog(catalog_dir(repo, name), url)
    public = repo.config.remote_public_url(name)
    if public:  # refs of files published there resolve too (docs/format.md 6.2)
        cat.prefixes.setdefault(public, url)
    return cat


def gc_cache_dir(zone_url: str, repo=None, remote: str | None = None) -> str:
    """Where GC and fsck keep what they remember of a zone (a mirror of its history, the GC
    reachability cache): ``.lindivc/gc/<remote>/`` of ``repo`` for one of its remotes, else a
    directory of the user's cache named by a hash of the zone URL."""
    if repo is not None and remote is not None:
        return os.path.join(repo.lvc, "gc", remote)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "lindivc", "gc", hashlib.sha1(zone_url.encode()).hexdigest()[:16])


def remote_zone(repo, remote: str) -> Zone:
    """The zone of ``repo``'s remote ``remote`` (opened with the user's gateway token, if any)."""
    return catalog_for(repo, remote).zone


def catalog_for(repo, remote: str) -> ZoneCatalog:
    url = repo.config.remote_url(remote)
    for c in repo.catalogs():
        if c.url == url:
            return c
    cat = _catalog(repo, remote, url)
    repo.catalogs().append(cat)
    return cat
