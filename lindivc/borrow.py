"""Borrowing (cross-zone dedupe): a chunk another zone of the same cloud holds is referenced
there instead of uploaded again (docs/format.md 6.4 steps 3 and 4, 6.3 borrow records and pins).
"""
from __future__ import annotations

import hashlib
import json
import os
import time

from .catalog import Placement, ZoneCatalog, update_info
from .documents import BorrowedChunk, BorrowRecord, ByteRange, borrow_pin
from .errors import ZoneError
from .layout import borrow_key, index_key, pin_key
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
    zone, then ``borrow/<id>`` and ``info/borrow`` here (docs/format.md 6.4 step 4). Returns the
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
