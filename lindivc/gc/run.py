"""A whole zone GC: plan, then (asked to prune) sweep under the zone's lease, and keep the
reachability cache current; and GC as the command line runs it, for a repository."""
from __future__ import annotations

from ..catalog import gc_cache_dir, remote_zone
from ..errors import LindivcError, RefsChanged
from ..progress import Reporter
from ..zones.base import Zone
from . import cache
from .lease import acquire_lease, read_lease
from .local import gc_local
from .model import DEFAULT_GRACE, DEFAULT_THRESHOLD, GCPlan
from .plan import plan_zone
from .sweep import sweep_zone


def gc_zone(zone: Zone, *, prune: bool = False, grace: float = DEFAULT_GRACE, threshold: float = DEFAULT_THRESHOLD,
            break_lease: bool = False, cache_dir: str | None = None, attempts: int = 3,
            reporter: Reporter | None = None) -> GCPlan:
    """Plan a GC of ``zone`` and, with ``prune``, sweep it under the zone's lease (``reporter``
    shows the deletions).

    Raises LeaseHeld, AccessDenied (no write rights), RefsChanged (refs kept moving, other than
    by pushes, over ``attempts`` plans).
    """
    cache_dir = cache_dir or gc_cache_dir(zone.url)
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
                sweep_zone(zone, plan, lease, cache_dir, reporter)
            except RefsChanged:
                if attempt == attempts - 1:
                    raise
                plan.notes.append("refs changed during the sweep; planning again")
                continue
            if plan.deleted or plan.repack:
                cache.after_sweep(plan, cache_dir)
            return plan
    finally:
        lease.release()
    raise AssertionError("unreachable")


def gc_repository(repo, remote: str | None = None, *, prune: bool = False, grace: float = DEFAULT_GRACE,
                  threshold: float = DEFAULT_THRESHOLD, break_lease: bool = False,
                  evict_pushed: bool = False, reporter: Reporter | None = None) -> GCPlan:
    """GC of ``repo``'s object store, or with ``remote``, of that remote's zone (its cache kept
    in the repository, see :func:`lindivc.catalog.gc_cache_dir`). ``evict_pushed`` is for the
    local store only; ``threshold`` and ``break_lease`` for a zone only. ``reporter`` shows the
    deletions."""
    if remote is None:
        return gc_local(repo, prune=prune, grace=grace, evict_pushed=evict_pushed, reporter=reporter)
    if evict_pushed:
        raise LindivcError("--evict-pushed is for the local store; leave out --remote")
    zone = remote_zone(repo, remote)
    return gc_zone(zone, prune=prune, grace=grace, threshold=threshold, break_lease=break_lease,
                   cache_dir=gc_cache_dir(zone.url, repo, remote), reporter=reporter)
