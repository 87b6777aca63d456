"""Sweeping a zone: carrying out a plan top-down, so nothing ever points at a missing byte.

    1. repacks: new pack, its index, re-rendered own files (compare-and-swap);
    2. indexes of what goes (dead objects, repacked packs), and ``info/idx``;
    3. refs, journal entries and pins are read again (:class:`.late.LateRoots`): a new pin,
       journal entry or moved ref joins the roots, and the indexes of step 2 whose objects it
       names are put back (those objects are kept); a moved ref whose history cannot be read
       stops GC (every index of step 2 is put back; run GC again);
    4. published versions ``v/<commit>/...`` of unreachable commits (older than grace);
    5. dead objects, each re-read right before it goes (kept if written again or re-indexed),
       with step 3's check repeated at least every second;
    6. stale journal entries and borrow pins.

docs/gc.md, "Pushes while GC runs", says why that is safe for pushes running meanwhile and
names the one window left.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from typing import Iterator

from ..catalog import gc_cache_dir, update_info
from ..errors import RefsChanged, ZoneKeyMissing
from ..layout import index_key, object_key, sha1_from_object_key
from ..progress import Reporter, human_bytes
from ..zones.base import Zone
from .late import LateRoots
from .lease import Lease
from .model import Deletion, GCPlan
from .repack import repack_pack

RECHECK_SECONDS = 1.0  # during deletion, how often refs, journal entries and pins are read again


def sweep_zone(zone: Zone, plan: GCPlan, lease: Lease | None = None, cache_dir: str | None = None,
               reporter: Reporter | None = None) -> GCPlan:
    """Carry out ``plan`` top-down (module docstring); return it with ``deleted`` counts set.
    ``reporter`` shows each kind of deletion as a bar of items (its bytes in the description).
    Pins, journal entries and ref moves that appear meanwhile join the roots
    (``plan.roots.late``); a moved ref's new history is read into ``cache_dir`` (the plan's, by
    default that of :func:`lindivc.catalog.gc_cache_dir`).

    Raises RefsChanged (after deleting nothing more) when a ref moved and its history cannot be
    read; LeaseLost when ``lease`` was taken over.
    """
    late = LateRoots(zone, plan, os.path.join(cache_dir or gc_cache_dir(zone.url), "git"))
    late.check()
    by_kind: dict[str, list[Deletion]] = {}
    for d in plan.delete:
        by_kind.setdefault(d.kind, []).append(d)

    def gone(d: Deletion) -> None:
        zone.delete(d.key)
        plan.deleted += 1
        if d.kind in ("object", "pack"):
            plan.deleted_bytes += d.size

    # 1. repacks: the new pack, its index, the own files re-rendered to point at it
    old_packs = _repack(zone, plan, by_kind, late)
    # 2. indexes of what goes: from now on no new push relies on those objects
    rep = reporter or Reporter()
    removed: dict[str, bytes] = {}
    doomed = [d for d in by_kind.get("index", []) if d.key[len("idx/"):] not in late.kept]
    # info/idx first: a push that trusts its cached catalog while info/idx is unchanged (push.py)
    # must see it change before any index it may rely on goes
    update_info(zone, "idx", remove=[d.key[len("idx/"):] for d in doomed], only_if_present=True)
    for d in _bar(rep, "index", doomed):
        try:
            removed[d.key[len("idx/"):]] = zone.get(d.key)
        except ZoneKeyMissing:
            continue
        gone(d)
    # 3. a new pin or journal entry since the plan keeps what it names: a push that started before
    # step 2 may rely on those indexes, so they are put back (they are immutable documents); a
    # ref that moved where no journal entry says stops GC here, all indexes of step 2 put back
    _recheck(zone, plan, late, removed)
    # 4, 5. versions and objects, each only if nobody wrote it again since the plan (a force-push
    # back to a commit rewrites its v/ files; a push that found no index re-uploads the object),
    # read fresh right before it goes; and the check of step 3 again at least every second.
    checked = time.monotonic()
    for kind in ("version", "pack", "object"):
        for d in _bar(rep, kind, by_kind.get(kind, []) + (old_packs if kind == "pack" else [])):
            if time.monotonic() - checked > RECHECK_SECONDS:
                _recheck(zone, plan, late, removed)
                if lease is not None:
                    lease.renew_if_due()
                checked = time.monotonic()
            if _kept_late(d, late):
                plan.notes.append(f"kept {d.key}: a root that appeared while GC ran names it")
                continue
            if _written_again(zone, d):
                plan.notes.append(f"kept {d.key}: written again while GC ran")
                continue
            gone(d)
            removed.pop(sha1_from_object_key(d.key) or "", None)
    # 6. stale journal entries and borrow pins (each only if not written again)
    for d in by_kind.get("journal", []) + by_kind.get("pin", []):
        if d.kind == "pin" and _written_again(zone, d):
            continue
        gone(d)
    if plan.roots.late:
        plan.notes.append(f"{plan.roots.late} pin(s), journal entries or ref moves appeared while GC ran: "
                          "added to the roots")
    plan.swept = True
    return plan


_WHAT = {"index": ("pack index", "pack indexes"), "version": ("published file", "published files"),
         "pack": ("pack", "packs"), "object": ("object", "objects")}


def _bar(rep: Reporter, kind: str, doomed: list[Deletion]) -> Iterator[Deletion]:
    """``doomed``, one at a time, under a bar ``Deleting 12 packs (1.2 GiB)``."""
    nbytes = sum(d.size for d in doomed)
    what = _WHAT[kind][len(doomed) != 1]
    return rep.track(doomed, f"Deleting {len(doomed)} {what}" + (f" ({human_bytes(nbytes)})" if nbytes else ""))


def _recheck(zone: Zone, plan: GCPlan, late: LateRoots, removed: dict[str, bytes]) -> None:
    """Step 3: ``late.check()``; put back the removed indexes (name -> bytes) of objects a late
    root keeps, or all of them when it raises RefsChanged (then re-raised)."""
    try:
        kept = late.check()
    except RefsChanged:
        _put_back(zone, plan, removed, set(removed))
        raise
    _put_back(zone, plan, removed, kept & set(removed))


def _put_back(zone: Zone, plan: GCPlan, removed: dict[str, bytes], names: set[str]) -> None:
    back = {n: removed.pop(n) for n in sorted(names)}
    for name, data in back.items():
        zone.put(index_key(name), data)
    if back:
        update_info(zone, "idx", add=back, only_if_present=True)
        plan.deleted -= len(back)


def _kept_late(d: Deletion, late: LateRoots) -> bool:
    """True if a root that appeared while the sweep ran keeps ``d``: a doomed object it names, or
    a published version of a commit a journal entry names (any version, once a ref moved)."""
    if d.kind == "version":
        return late.refs_moved or d.key.split("/", 2)[1] in late.commits
    return (sha1_from_object_key(d.key) or "") in late.kept


def _repack(zone: Zone, plan: GCPlan, by_kind: dict[str, list[Deletion]], late: LateRoots) -> list[Deletion]:
    """Step 1: repack every pack of ``plan.repack`` that no late root names; add the old indexes
    to ``by_kind`` and return the old packs, for steps 2 and 5."""
    old_packs: list[Deletion] = []
    todo = [rp for rp in plan.repack if rp.pack not in late.kept]
    if not todo:
        return old_packs
    tmp = tempfile.mkdtemp(prefix="lindivc-repack-")
    try:
        for rp in todo:
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
