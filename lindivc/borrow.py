"""Borrowing (cross-zone dedupe): a chunk another zone of the same cloud holds is referenced
there instead of uploaded again (docs/format.md 6.4 steps 3 and 4, 6.3 borrow records and pins).

When it records borrows, the borrower also reads each lender's ``info/public`` (the public base
URL its owner published, untrusted: parsed by ``documents.parse_public_url``, never fetched) and
remembers it in its catalog, for its published files (docs/format.md 6.7).
"""
from __future__ import annotations

import hashlib
import json
import os
import time

from .catalog import Placement, ZoneCatalog, update_info
from .documents import MAX_PUBLIC_BYTES, BorrowedChunk, BorrowRecord, ByteRange, borrow_pin, parse_public_url
from .errors import InvalidDocument, ZoneError, ZoneKeyMissing
from .layout import PUBLIC_KEY, borrow_key, index_key, pin_key
from .publish import LENDER_PUBLIC
from .repo import Repository
from .zones import Zone


def sibling_placements(repo: Repository, zone: Zone, wanted: set[str]) -> dict[str, Placement]:
    """Chunks of ``wanted`` that other zones of the same cloud hold (from their indexes)."""
    found: dict[str, Placement] = {}
    if not wanted:
        return found
    for sib in zone.siblings():
        h = hashlib.sha1(sib.url.encode()).hexdigest()[:16]
        cat = ZoneCatalog(os.path.join(repo.lvc, "cloud", h), sib.url)
        cat._zone = sib
        try:
            cat.refresh()
        except ZoneError:
            continue
        for sha in wanted - set(found):
            p = cat.placements.get(sha)
            if p is not None and sha not in cat.borrowed:
                found[sha] = p
    return found


def record_borrows(cat: ZoneCatalog, zone: Zone, borrowed: dict[str, Placement]) -> set[str]:
    """Record that ``zone`` borrows ``borrowed`` (chunk -> where it lives): a pin in each lending
    zone, then ``borrow/<id>`` and ``info/borrow`` here (docs/format.md 6.4 step 4); each lender's
    ``info/public`` is read and remembered in ``cat`` (:func:`note_lender_public`). Returns the
    chunks that can no longer be borrowed (the lender's GC collected them)."""
    by_lender: dict[str, list[tuple[str, Placement]]] = {}
    for sha, p in borrowed.items():
        by_lender.setdefault(p.zone_url, []).append((sha, p))
    lost: set[str] = set()
    for lender_url, items in by_lender.items():
        chunks = sorted([sha, p.pack, p.offset, p.size] for sha, p in items)
        name = hashlib.sha1(json.dumps([lender_url, chunks]).encode()).hexdigest()
        pid, pin = borrow_pin(zone.url, name[:24], (ByteRange(p.pack, p.offset, p.size) for _, p in items),
                              time.time())
        lender = cat._lender(lender_url)
        lender.put(pin_key(pid), pin.to_bytes())
        note_lender_public(cat, lender_url, lender)
        gone = {pack for pack in {r.object for r in pin.ranges} if not lender.exists(index_key(pack))}
        if gone:
            lost |= {c[0] for c in chunks if c[1] in gone}
            chunks = [c for c in chunks if c[1] not in gone]
            if not chunks:
                continue
            name = hashlib.sha1(json.dumps([lender_url, chunks]).encode()).hexdigest()
        rec = BorrowRecord(lender_url, items[0][1].prefix, tuple(BorrowedChunk(*c) for c in chunks), time.time())
        zone.put(borrow_key(name), rec.to_bytes())
        cat.add_borrow(name, rec)
        update_info(zone, "borrow", [name])
    return lost


def note_lender_public(cat: ZoneCatalog, lender_url: str, lender: Zone) -> str | None:
    """Read the lending zone's ``info/public`` and remember the public base URL it names in
    ``cat`` (forgotten when the lender has none, or a document that does not parse: its refs
    then use the lender's own prefix); return it. A read that fails keeps what was remembered."""
    known = cat.meta.setdefault(LENDER_PUBLIC, {})
    try:
        url = _read_public_url(lender)
    except ZoneError:  # the store or the connection failed (ZoneReader): keep what was known
        return known.get(lender_url)
    if known.get(lender_url) != url:
        if url is None:
            known.pop(lender_url, None)
        else:
            known[lender_url] = url
        cat._save_meta()
    return url


def _read_public_url(lender: Zone) -> str | None:
    """The URL the lender's ``info/public`` names; None when it has none, or one that does not
    parse. A store that fails raises ZoneError."""
    try:
        with lender.open_read(PUBLIC_KEY) as stream:
            data = stream.read(MAX_PUBLIC_BYTES + 1)  # bounded: a larger document is invalid
    except ZoneKeyMissing:
        return None
    try:
        return parse_public_url(data, PUBLIC_KEY)
    except InvalidDocument:
        return None
