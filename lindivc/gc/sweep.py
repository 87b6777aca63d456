"""Sweeping a zone: carrying out a plan top-down, so nothing ever points at a missing byte.

    1. repacks: new pack, its index, re-rendered own files (compare-and-swap);
    2. indexes of what goes (dead objects, repacked packs), and ``info/idx``;
    3. refs, journal entries and pins are read again; if anything changed, put the indexes of
       step 2 back and stop (run GC again);
    4. published versions ``v/<commit>/...`` of unreachable commits (older than grace);
    5. dead objects, each re-read right before it goes (kept if written again or re-indexed),
       with step 3's check repeated at least every second;
    6. stale journal entries.

docs/gc.md, "Pushes while GC runs", says why that is safe for pushes running meanwhile and
names the one window left.
"""
from __future__ import annotations

import shutil
import tempfile
import time
from typing import Iterator

from .. import gitsync
from ..catalog import update_info
from ..errors import RefsChanged, SweepBlocked, ZoneKeyMissing
from ..layout import index_key, journal_key, object_key, pin_key, sha1_from_object_key
from ..progress import Reporter, human_bytes
from ..zones.base import Zone
from .lease import Lease
from .model import Deletion, GCPlan
from .repack import repack_pack

RECHECK_SECONDS = 1.0  # during deletion, how often refs, journal entries and pins are read again


def check_unchanged(zone: Zone, plan: GCPlan) -> None:
    """Raise RefsChanged if a ref moved, a push started (a new journal entry) or a pin was added
    or renewed since ``plan`` (Icechunk's rule: GC starts over rather than delete what a new
    root may reach)."""
    refs = gitsync.list_remote_refs(zone)
    if refs != plan.refs:
        changed = sorted(set(refs.items()) ^ set(plan.refs.items()))
        raise RefsChanged(zone.url, changed[0][0], f"{changed[0][0]} changed while GC ran; nothing more was deleted. "
                          "Run GC again (it plans from the new state)")
    journals = sorted(i.key[8:] for i in zone.list("journal/"))
    new = set(journals) - set(plan.journals)
    if new:
        key = journal_key(sorted(new)[0])
        raise RefsChanged(zone.url, key, f"a push started while GC ran ({key}); nothing more was deleted. "
                          "Run GC again")
    pins = {i.key[5:]: i.mtime for i in zone.list("pins/")}
    new = {k for k, m in pins.items() if plan.pins.get(k) != m}
    if new:  # another zone started (or renewed) borrowing from this one
        key = pin_key(sorted(new)[0])
        raise RefsChanged(zone.url, key, f"a pin was added while GC ran ({key}); nothing more was deleted. "
                          "Run GC again")


def sweep_zone(zone: Zone, plan: GCPlan, lease: Lease | None = None, reporter: Reporter | None = None) -> GCPlan:
    """Carry out ``plan`` top-down (module docstring); return it with ``deleted`` counts set.
    ``reporter`` shows each kind of deletion as a bar of items (its bytes in the description).

    Raises SweepBlocked (nothing deleted) for a plan that a pinned file it could not read
    blocks; RefsChanged (after deleting nothing more) when a ref, journal entry or pin changed;
    LeaseLost when ``lease`` was taken over.
    """
    if plan.blocked:
        raise SweepBlocked(zone.url, plan.blocked)
    check_unchanged(zone, plan)
    by_kind: dict[str, list[Deletion]] = {}
    for d in plan.delete:
        by_kind.setdefault(d.kind, []).append(d)

    def gone(d: Deletion) -> None:
        zone.delete(d.key)
        plan.deleted += 1
        if d.kind in ("object", "pack"):
            plan.deleted_bytes += d.size

    # 1. repacks: the new pack, its index, the own files re-rendered to point at it
    old_packs = _repack(zone, plan, by_kind)
    # 2. indexes of what goes: from now on no new push relies on those objects
    rep = reporter or Reporter()
    removed: dict[str, bytes] = {}
    # info/idx first: a push that trusts its cached catalog while info/idx is unchanged (push.py)
    # must see it change before any index it may rely on goes
    update_info(zone, "idx", remove=[d.key[4:] for d in by_kind.get("index", [])], only_if_present=True)
    for d in _bar(rep, "index", by_kind.get("index", [])):
        try:
            removed[d.key[4:]] = zone.get(d.key)
        except ZoneKeyMissing:
            continue
        gone(d)
    # 3. a push, a ref move or a new pin since the plan stops GC here; a push that started before
    # step 2 may rely on those indexes, so they are put back (they are immutable documents)
    try:
        check_unchanged(zone, plan)
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
        for d in _bar(rep, kind, by_kind.get(kind, []) + (old_packs if kind == "pack" else [])):
            if time.monotonic() - checked > RECHECK_SECONDS:
                check_unchanged(zone, plan)
                if lease is not None:
                    lease.renew_if_due()
                checked = time.monotonic()
            if _written_again(zone, d):
                plan.notes.append(f"kept {d.key}: written again while GC ran")
                continue
            gone(d)
    # 6. stale journal entries
    for d in by_kind.get("journal", []):
        gone(d)
    plan.swept = True
    return plan


_WHAT = {"index": ("pack index", "pack indexes"), "version": ("published file", "published files"),
         "pack": ("pack", "packs"), "object": ("object", "objects")}


def _bar(rep: Reporter, kind: str, doomed: list[Deletion]) -> Iterator[Deletion]:
    """``doomed``, one at a time, under a bar ``Deleting 12 packs (1.2 GiB)``."""
    nbytes = sum(d.size for d in doomed)
    what = _WHAT[kind][len(doomed) != 1]
    return rep.track(doomed, f"Deleting {len(doomed)} {what}" + (f" ({human_bytes(nbytes)})" if nbytes else ""))


def _repack(zone: Zone, plan: GCPlan, by_kind: dict[str, list[Deletion]]) -> list[Deletion]:
    """Step 1: repack every pack of ``plan.repack``; add the old indexes to ``by_kind`` and
    return the old packs, for steps 2 and 5."""
    old_packs: list[Deletion] = []
    if not plan.repack:
        return old_packs
    tmp = tempfile.mkdtemp(prefix="lindivc-repack-")
    try:
        for rp in plan.repack:
            freed, _ = repack_pack(zone, rp, tmp)
            plan.deleted_bytes += freed - rp.size  # the old pack's bytes count when it goes
            old_packs.append(Deletion(object_key(rp.pack), "pack", rp.size, rp.mtime, "repacked"))
            by_kind.setdefault("index", []).append(Deletion(index_key(rp.pack), "index", 0, rp.mtime, "repacked"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return old_packs


def _written_again(zone: Zone, d: Deletion) -> bool:
    """True if ``d.key`` changed since the plan saw it (absent counts as changed: nothing to do),
    or, for an object, if its index is back (a push uploaded it again)."""
    info = next((i for i in zone.list(d.key) if i.key == d.key), None)
    if info is None or info.mtime > d.mtime:
        return True
    sha = sha1_from_object_key(d.key)
    return sha is not None and zone.exists(index_key(sha))
