"""Repacking a partly dead pack of a zone: a new pack of its live chunks, its index, and the
zone's own published files re-rendered to read from it (sweep step 1, docs/gc.md)."""
from __future__ import annotations

from ..catalog import update_info
from ..errors import ChecksumMismatch, PreconditionFailed, RefsChanged, RepackRefused
from ..layout import index_key, object_key
from ..lindijson import RESOLVE, ContentRef, canonicalize, dumps, parse, render, reuse_templates
from ..objects import ObjectStore, sha1_bytes
from ..packs import ChunkEntry, PackIndex
from ..packstream import PackWriter
from ..zones.base import Zone
from .model import Repack


def repack_pack(zone: Zone, rp: Repack, tmpdir: str) -> tuple[int, int]:
    """Write the live chunks of ``rp.pack`` as a new pack (with its index) and re-render the own
    published files that reference the old one; return (bytes freed, files re-rendered). The
    old pack and its index are left for the sweep to delete. Raises RefsChanged when a file
    changed meanwhile, RepackRefused when one refers to dead bytes of the old pack."""
    new = _write_live(zone, rp, tmpdir)
    zone.put(index_key(new.pack), new.to_bytes())
    if zone.head("info/idx") is not None:
        update_info(zone, "idx", [new.pack])
    old = PackIndex(rp.pack, rp.size, tuple(ChunkEntry(*e) for e in sorted(rp.live)))
    n = sum(_rerender(zone, key, old, new) for key in rp.files)
    return rp.size - new.size, n


def _write_live(zone: Zone, rp: Repack, tmpdir: str) -> PackIndex:
    """Upload the live chunks of ``rp`` (each verified) as one new pack, or as a lone object
    when only one is live; return its index."""
    live = sorted(rp.live)
    datas: dict[str, bytes] = {}
    for sha, off, size in live:
        data = zone.get_range(object_key(rp.pack), off, size)
        if sha1_bytes(data) != sha:
            raise ChecksumMismatch(sha, sha1_bytes(data), f"{zone.url}/{object_key(rp.pack)} at {off}+{size}")
        datas[sha] = data
    if len(live) == 1:
        sha = live[0][0]
        if not zone.exists(object_key(sha)):
            zone.put(object_key(sha), datas[sha])
        return PackIndex(sha, len(datas[sha]), (ChunkEntry(sha, 0, len(datas[sha])),))
    store = ObjectStore(tmpdir, fsync=False)
    w = PackWriter(store)
    try:
        for sha, _, _ in live:
            w.add(sha, datas[sha])
        new = w.finish()
    except BaseException:
        w.abort()
        raise
    if not zone.exists(object_key(new.pack)):
        zone.put_pack(object_key(new.pack), store.path(new.pack), new.manifest())
    store.delete(new.pack)
    return new


def _rerender(zone: Zone, key: str, old: PackIndex, new: PackIndex) -> bool:
    """Point the refs of published file ``key`` into pack ``old`` (its live chunks) at the same
    bytes in pack ``new``, keeping each ref's URL prefix (compare-and-swap on the file). Returns
    False if the file is gone or names nothing of ``old``."""
    info = zone.head(key)
    if info is None:
        return False
    old_tail, new_tail = object_key(old.pack), object_key(new.pack)
    prefix: dict[ContentRef, str] = {}  # a ref of the old pack, as content ref -> its URL prefix

    def classify(url: str) -> object:
        return RESOLVE if url.endswith(old_tail) else None

    def resolve(url: str, offset: int, size: int) -> ContentRef:
        pos = old.chunk_at(offset)
        if pos is None:
            raise RepackRefused(key, offset, old.pack)
        cr = ContentRef(pos.chunk, pos.inner_offset, size)
        prefix[cr] = url[: len(url) - len(old_tail)]
        return cr

    doc = parse(zone.get(key), key)
    canonical = canonicalize(doc, resolve, classify)
    if not prefix:
        return False

    def locate(cr: ContentRef) -> list:
        if cr not in prefix:  # a content ref the file held already
            return cr.to_json()
        return [prefix[cr] + new_tail, new.lookup(cr.sha1)[0] + cr.offset, cr.size]

    try:
        # the file keeps its templates (docs/format.md 6.7)
        zone.put(key, dumps(reuse_templates(render(canonical, locate), doc.get("templates") or {})), if_match=info.etag)
    except PreconditionFailed:
        raise RefsChanged(zone.url, key, f"{key} changed while GC re-rendered it; pack {old.pack[:10]} kept. "
                          "Run GC again") from None
    return True
