"""Planning a zone GC (reads only): which objects are garbage, which packs to repack, and why
the rest is kept. :func:`plan_zone` reads as its steps."""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from ..catalog import gc_cache_dir
from ..errors import ZoneKeyMissing
from ..layout import index_key, object_key
from ..packs import InvalidPackIndex, PackIndex
from ..zones.base import Zone
from . import cache
from .listing import ZoneListing, list_zone
from .model import DEFAULT_GRACE, DEFAULT_THRESHOLD, YOUNG, Deletion, GCPlan, Repack, is_old
from .pins import read_pins
from .roots import Reach, cloud_file_roots, history_roots, journal_roots, own_file_roots, pin_roots

READ_THREADS = 16  # parallel reads of indexes (S3 and gateways answer each in a round trip)


def plan_zone(zone: Zone, *, grace: float = DEFAULT_GRACE, threshold: float = DEFAULT_THRESHOLD,
              cache_dir: str | None = None, now: float | None = None, use_cache: bool = True) -> GCPlan:
    """What a GC of ``zone`` would delete or repack, and why the rest is kept (reads only).

    Documents of other users that cannot be used (not valid, too large, past a count limit) are
    reported in ``plan.invalid`` and keep nothing. Raises ZoneError when a zone of the cloud
    cannot be listed or a store fails (GC cannot know what it references).

    The result is cached in ``cache_dir`` (:mod:`.cache`): when nothing changed, the next plan
    reuses it (only the grace cutoff is applied again).
    """
    cache_dir = cache_dir or gc_cache_dir(zone.url)
    # 1. list the zone and its cloud's published files; read the refs
    listing = list_zone(zone)
    plan = _new_plan(zone, listing, zone.now() if now is None else now, grace, threshold)
    # 2. nothing changed since the last plan: reuse its result
    fp = cache.fingerprint(plan.fingerprint_parts)
    hit = cache.load(cache_dir, fp, plan) if use_cache else None
    if hit is not None:
        return _reuse(plan, hit)
    # 3. the zone's pack indexes: chunk -> pack
    reach = Reach(_read_indexes(zone, listing, plan), listing.objects)
    # 4. the roots, kind by kind, and what they reach
    dead = _gather_roots(zone, listing, cache_dir, plan, reach)
    # 5. every data object: kept (with a reason), dead or to repack, whatever its age
    repacks = _classify(plan, listing, reach, dead)
    doomed = _doomed(reach, dead, repacks)
    # 6. remember that, then apply the grace cutoff
    cache.save(cache_dir, fp, plan, dead, repacks, doomed, min(reach.expiring, default=None))
    _apply_age(plan, dead, repacks, doomed)
    return plan


def _new_plan(zone: Zone, listing: ZoneListing, now: float, grace: float, threshold: float) -> GCPlan:
    plan = GCPlan(f"zone {zone.url}", now, grace, threshold)
    plan.refs = listing.refs
    plan.journals = sorted(listing.journals)
    plan.pins = {k: i.mtime for k, i in listing.pins.items()}
    plan.roots.zones = 1 + len(listing.siblings)
    plan.roots.pins = len(listing.pins)
    plan.fingerprint_parts = listing.fingerprint_parts
    return plan


def _reuse(plan: GCPlan, hit: cache.CachedResult) -> GCPlan:
    plan.roots = hit.roots
    plan.kept = dict(hit.kept)
    plan.kept_bytes = hit.kept_bytes
    plan.live_objects = hit.live_objects
    plan.invalid = list(hit.invalid)
    plan.journal_commits = list(hit.journal_commits)
    plan.notes = list(hit.notes)
    plan.cached = True
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(hit.at))
    plan.notes.append(f"nothing changed in the zone since the last GC ({when}): reusing its reachability results")
    _apply_age(plan, hit.dead, hit.repack, hit.doomed)
    return plan


def _read_indexes(zone: Zone, listing: ZoneListing, plan: GCPlan) -> dict[str, PackIndex]:
    """Every readable pack index of the zone; an unreadable one is noted (its object is kept)."""

    def read(name: str) -> PackIndex | Exception:
        try:
            return PackIndex.from_bytes(zone.get(index_key(name)), name, where=f"{zone.url}/idx/{name}")
        except (InvalidPackIndex, ZoneKeyMissing) as e:
            return e

    indexes: dict[str, PackIndex] = {}
    with ThreadPoolExecutor(max_workers=READ_THREADS) as ex:
        for name, got in zip(listing.indexes, ex.map(read, listing.indexes, chunksize=256)):
            if isinstance(got, PackIndex):
                indexes[name] = got
            else:
                plan.notes.append(f"idx/{name} unreadable ({got}); its object is kept (run `lindivc fsck --remote`)")
    return indexes


def _gather_roots(zone: Zone, listing: ZoneListing, cache_dir: str, plan: GCPlan, reach: Reach) -> list[Deletion]:
    """Add every root of the zone to ``reach`` and count them in ``plan.roots``; return the
    deletions that fall out (stale journal entries and borrow pins, versions of unreachable
    commits). Documents that keep nothing go to ``plan.invalid``."""
    cutoff = plan.cutoff
    commits = history_roots(zone, listing.refs, cache_dir, reach)
    plan.roots.refs = len(listing.refs)
    plan.roots.commits = len(commits)
    journal = journal_roots(zone, listing.journals, cutoff, reach)
    plan.roots.journal = journal.entries
    plan.journal_commits = sorted(journal.commits)
    plan.invalid += journal.invalid
    pins = pin_roots(zone, read_pins(zone, listing.pins), listing.siblings, cutoff, reach)
    plan.invalid += pins.invalid
    if pins.legacy:
        plan.notes.append(f"{pins.legacy} pin(s) in the old lindivc-pin/1 format keep the objects they listed when "
                          "made; their URLs are not read (their writers can run `lindivc pin --refresh`)")
    n_own, versions = own_file_roots(zone, listing, commits | journal.commits, cutoff, reach, plan.invalid)
    plan.roots.files = n_own + cloud_file_roots(listing, reach, plan.invalid)
    if plan.invalid:
        plan.notes.append(f"{len(plan.invalid)} document(s) of the cloud could not be used; each keeps nothing "
                          "(listed under invalid)")
    reach.whole |= {n for n in listing.indexes if n not in reach.indexes}  # unreadable index: keep its object
    return journal.stale + pins.stale + versions


def _doomed(reach: Reach, dead: list[Deletion], repacks: list[Repack]) -> dict[str, list[str]]:
    """Every object of ``dead`` and ``repacks`` -> the chunks it holds (``GCPlan.doomed``)."""
    out: dict[str, list[str]] = {}
    for d in dead:
        if d.kind in ("object", "pack"):
            sha = d.key.rsplit("/", 1)[1]
            idx = reach.indexes.get(sha)
            out[sha] = [e.sha for e in idx.chunks] if idx is not None else [sha]
    for rp in repacks:
        out[rp.pack] = [e.sha for e in reach.indexes[rp.pack].chunks]
    return out


def _apply_age(plan: GCPlan, dead: list[Deletion], repacks: list[Repack], doomed: dict[str, list[str]]) -> None:
    """Split time-independent results by the plan's cutoff into deletions and kept-young; keep
    in ``plan.doomed`` what is deleted or repacked."""
    cutoff = plan.cutoff
    for d in dead:
        if is_old(d.mtime, cutoff):
            plan.delete.append(d)
        elif d.kind in ("object", "pack"):
            plan.keep(YOUNG, d.size)
    for rp in repacks:
        if is_old(rp.mtime, cutoff):
            plan.repack.append(rp)
        else:
            plan.keep("partly dead pack younger than the grace period", rp.size)
    going = {d.key.rsplit("/", 1)[1] for d in plan.delete if d.kind in ("object", "pack")}
    going |= {rp.pack for rp in plan.repack}
    plan.doomed = {k: v for k, v in doomed.items() if k in going}


def _classify(plan: GCPlan, listing: ZoneListing, reach: Reach, dead: list[Deletion]) -> list[Repack]:
    """Sort every data object into kept (with a reason), dead (appended to ``dead``) or to repack
    (returned); independent of the cutoff."""
    repacks: list[Repack] = []
    live = reach.chunks
    for name, idx in reach.indexes.items():
        obj = listing.objects.get(name)
        iinfo = listing.indexes[name]
        if obj is None:
            plan.notes.append(f"idx/{name} names an object the zone lacks (run `lindivc fsck --remote`)")
            continue
        if name in reach.whole:
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
        elif name in reach.external_packs:
            plan.keep("partly dead pack referenced by range from outside this zone's history", obj.size)
        elif any(e.sha in reach.journal_chunks for e in idx.chunks):
            plan.keep("partly dead pack named by a push in flight", obj.size)
        else:
            repacks.append(Repack(name, obj.size, [[e.sha, e.offset, e.size] for e in live_entries], dead_bytes,
                                  reach.own_files.get(name, []), mtime))
    for sha, info in listing.objects.items():
        if sha in reach.indexes:
            continue
        if sha in live or sha in reach.whole:
            plan.keep("reachable (object without an index)", info.size)
            plan.live_objects += 1
            continue
        dead.append(Deletion(object_key(sha), "object", info.size, info.mtime,
                             "object without an index that nothing references (an interrupted upload)"))
    return repacks
