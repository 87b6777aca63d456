"""Garbage collection, locally and in zones (DESIGN.md section 6): plan first, then sweep.

Terms
    root        something that keeps objects alive: a ref, a commit reachable from one, a
                published file, a pin, a young journal entry, a working file.
    live chunk  a chunk named by a root (by sha1, or by a byte range that falls inside it).
    grace       nothing whose store mtime is within ``grace`` seconds of the store's clock is
                deleted. The cutoff is exclusive: an object is old enough only if
                ``mtime < now - grace`` (by the store's clock: S3 LastModified, file mtime).

Zone GC (:func:`gc_zone` = :func:`plan_zone`, then :func:`sweep_zone` under the zone's lease)
    Roots: every ref of the zone and every commit reachable from it (their canonical files'
    content refs); every published file (``f/``, ``v/``) of every zone of the same cloud, by
    byte range (``v/<commit>/`` of this zone only while the commit is reachable, journalled, or
    younger than grace); journal entries younger than grace; pins: a pin left by a zone of this
    cloud is a root while younger than grace (afterwards that zone's published files speak for
    it); a pin of a file elsewhere (``lindivc pin URL``) is read at every GC and keeps what the
    file references; when such a file cannot be read, GC deletes nothing (fail safe). A pin of
    unknown kind keeps the objects it lists. One GC at a time per zone (the lease ``lease/gc``);
    pushes keep working meanwhile (docs/gc.md).

Local GC (:func:`gc_local` = :func:`plan_local`, then :func:`sweep_local`): see :mod:`.local`.

Modules, each one concept:
    model     GCPlan, Deletion, Repack, Roots (the plan and its report)
    grace     parse_grace, format_duration
    lease     the zone's GC lease
    listing   one listing of a zone and its cloud's published files (what a plan starts from)
    published the refs of a published LINDI file, as GC reads them
    pins      pin documents: reading them, pin / list_pins / unpin
    urlread   reading the file an external pin names (the only URL GC fetches)
    roots     the roots of a zone, one function per kind, and what they reach
    cache     the reachability cache (a plan's result under a fingerprint of what it read)
    plan      plan_zone, step by step
    repack    rewriting a partly dead pack and the files that read it
    sweep     sweep_zone, top-down, with its re-checks
    run       gc_zone (plan, lease, sweep, cache) and gc_repository (what the CLI runs)
    local     plan_local, sweep_local, gc_local
"""
from __future__ import annotations

from ..errors import (GCError, InvalidGrace, LeaseHeld, LeaseLost, NothingToPin, PinUnreadable, RefsChanged,
                      RepackRefused, SweepBlocked, UnknownPin)
from . import cache
from .grace import format_duration, parse_grace
from .lease import LEASE_TTL, Lease, acquire_lease, read_lease
from .local import gc_local, plan_local, sweep_local
from .model import DEFAULT_GRACE, DEFAULT_THRESHOLD, YOUNG, Deletion, GCPlan, Repack, Roots
from .pins import PIN_FORMAT, list_pins, pin, unpin
from .plan import plan_zone
from .published import iter_range_refs
from .run import gc_repository, gc_zone
from .sweep import sweep_zone

__all__ = [
    "DEFAULT_GRACE", "DEFAULT_THRESHOLD", "LEASE_TTL", "PIN_FORMAT", "YOUNG",
    "Deletion", "GCPlan", "Lease", "Repack", "Roots",
    "GCError", "InvalidGrace", "LeaseHeld", "LeaseLost", "NothingToPin", "PinUnreadable", "RefsChanged",
    "RepackRefused", "SweepBlocked", "UnknownPin",
    "acquire_lease", "cache", "format_duration", "gc_local", "gc_repository", "gc_zone", "iter_range_refs",
    "list_pins", "parse_grace", "pin", "plan_local", "plan_zone", "read_lease", "sweep_local", "sweep_zone",
    "unpin",
]
