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
    younger than grace); journal entries younger than grace; pins, by what they carry (a borrow
    pin left by a zone of this cloud only while younger than grace: afterwards that zone's
    published files speak for it, and GC deletes it). What other users wrote (published files,
    pins, journal entries) is untrusted: read size-capped and parsed by :mod:`lindivc.documents`;
    one that cannot be used is reported in ``plan.invalid`` and keeps nothing. GC never fetches
    a URL it finds in a document. Pins and journal entries that appear while the sweep runs
    join the roots (:mod:`.late`). One GC at a time per zone (the lease ``lease/gc``); pushes
    keep working meanwhile (docs/gc.md).

Local GC (:func:`gc_local` = :func:`plan_local`, then :func:`sweep_local`): see :mod:`.local`.

Modules, each one concept:
    model     GCPlan, Deletion, Repack, Roots (the plan and its report)
    grace     parse_grace, format_duration
    lease     the zone's GC lease
    listing   one listing of a zone and its cloud's published files (what a plan starts from)
    reading   reading other users' documents: size-capped, parsed, a few at a time, failures reported
    published the refs of a published LINDI file, as GC reads them
    pins      pin documents as GC reads them (with count and size limits): list_pins, unpin
    roots     the roots of a zone, one function per kind, and what they reach
    late      roots that appear while a sweep runs (pins, journal entries, ref moves by a push)
    cache     the reachability cache (a plan's result under a fingerprint of what it read)
    plan      plan_zone, step by step
    repack    rewriting a partly dead pack and the files that read it
    sweep     sweep_zone, top-down, with its re-checks
    run       gc_zone (plan, lease, sweep, cache) and gc_repository (what the CLI runs)
    local     plan_local, sweep_local, gc_local
"""
from __future__ import annotations

from ..errors import GCError, InvalidGrace, LeaseHeld, LeaseLost, RefsChanged, RepackRefused, UnknownPin
from . import cache
from .grace import format_duration, parse_grace
from .lease import LEASE_TTL, Lease, acquire_lease, read_lease
from .local import gc_local, plan_local, sweep_local
from .model import DEFAULT_GRACE, DEFAULT_THRESHOLD, YOUNG, Deletion, GCPlan, InvalidDoc, Repack, Roots
from .pins import MAX_PIN_BYTES, MAX_PINS, MAX_PINS_PER_WRITER, PinEntry, list_pins, unpin
from .plan import plan_zone
from .run import gc_repository, gc_zone
from .sweep import sweep_zone

__all__ = [
    "DEFAULT_GRACE", "DEFAULT_THRESHOLD", "LEASE_TTL", "MAX_PIN_BYTES", "MAX_PINS", "MAX_PINS_PER_WRITER", "YOUNG",
    "Deletion", "GCPlan", "InvalidDoc", "Lease", "PinEntry", "Repack", "Roots",
    "GCError", "InvalidGrace", "LeaseHeld", "LeaseLost", "RefsChanged", "RepackRefused", "UnknownPin",
    "acquire_lease", "cache", "format_duration", "gc_local", "gc_repository", "gc_zone", "list_pins",
    "parse_grace", "plan_local", "plan_zone", "read_lease", "sweep_local", "sweep_zone", "unpin",
]
