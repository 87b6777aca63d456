"""The reachability cache: a zone plan's result, remembered under a fingerprint of what it read.

When the zone's listing (its pins and journal entries included), its cloud's published files
and its refs are as they were (and the grace period and repack threshold are the same), the next plan reuses the result
and only applies the grace cutoff again (docs/gc.md, "A second GC"). The cache is one JSON
document, ``<cache dir>/last.json``; the directory is chosen by :func:`lindivc.catalog.gc_cache_dir`.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import asdict, dataclass

import orjson

from ..atomic import atomic_write
from .model import Deletion, GCPlan, InvalidDoc, Repack, Roots

CACHE_FORMAT = "lindivc-gc-cache/2"
_NEVER = 1e300


def fingerprint(parts: list[tuple[str | None, bytes]], without: set[str] = frozenset()) -> str:
    """What a GC read of a zone depends on, as one sha1: its listing (but the keys ``without``),
    its cloud's published files and its refs."""
    h = hashlib.sha1()
    for key, line in parts:
        if key is None or key not in without:
            h.update(line)
    return h.hexdigest()


@dataclass(frozen=True)
class CachedResult:
    """A remembered plan result, independent of the cutoff."""

    at: float
    roots: Roots
    kept: dict[str, int]
    kept_bytes: int
    live_objects: int
    dead: list[Deletion]
    repack: list[Repack]
    doomed: dict[str, list[str]]
    invalid: list[InvalidDoc]
    journal_commits: list[str]
    notes: list[str]


def _path(cache_dir: str) -> str:
    return os.path.join(cache_dir, "last.json")


def _read(cache_dir: str) -> dict | None:
    try:
        with open(_path(cache_dir), "rb") as f:
            d = orjson.loads(f.read())
    except (OSError, orjson.JSONDecodeError):
        return None
    return d if isinstance(d, dict) and d.get("format") == CACHE_FORMAT else None


def _write(cache_dir: str, doc: dict) -> None:
    os.makedirs(cache_dir, exist_ok=True)
    atomic_write(_path(cache_dir), orjson.dumps(doc))


def load(cache_dir: str, fp: str, plan: GCPlan) -> CachedResult | None:
    """The result remembered for fingerprint ``fp`` with ``plan``'s grace and threshold, if its
    roots are still roots at ``plan``'s cutoff; else None."""
    d = _read(cache_dir)
    if (d is None or d.get("fingerprint") != fp or d.get("threshold") != plan.threshold
            or d.get("grace") != plan.grace or plan.cutoff > (d.get("roots_valid_until_cutoff") or _NEVER)):
        return None
    try:
        return CachedResult(d["at"], Roots(**d["roots"]), dict(d["kept"]), d["kept_bytes"], d["live_objects"],
                            [Deletion(**x) for x in d["dead"]], [Repack(**x) for x in d["repack"]],
                            dict(d["doomed"]), [InvalidDoc(**x) for x in d["invalid"]], list(d["journal_commits"]),
                            list(d["notes"]))
    except (KeyError, TypeError):
        return None  # written by another version: plan afresh


def save(cache_dir: str, fp: str, plan: GCPlan, dead: list[Deletion], repacks: list[Repack],
         doomed: dict[str, list[str]], valid_until: float | None) -> None:
    """Remember ``plan``'s result (its cutoff not applied yet: ``dead`` and ``repacks`` are every
    candidate, ``doomed`` their chunks) under fingerprint ``fp``; ``valid_until`` is the latest
    cutoff at which its roots are all still roots (None: any)."""
    _write(cache_dir, {
        "format": CACHE_FORMAT, "fingerprint": fp, "threshold": plan.threshold, "grace": plan.grace, "at": plan.now,
        "roots": asdict(plan.roots), "kept": dict(plan.kept), "kept_bytes": plan.kept_bytes,
        "live_objects": plan.live_objects, "dead": [asdict(d) for d in dead], "repack": [asdict(r) for r in repacks],
        "doomed": doomed, "invalid": [asdict(x) for x in plan.invalid], "journal_commits": plan.journal_commits,
        "notes": list(plan.notes),
        "roots_valid_until_cutoff": _NEVER if valid_until is None else valid_until})


def after_sweep(plan: GCPlan, cache_dir: str) -> None:
    """Keep the cache valid after a sweep that only deleted: drop what was deleted, and take as
    fingerprint the zone as the plan saw it less what the sweep deleted, so that anything written
    meanwhile (a push) makes the next GC plan afresh. After a repack, or a sweep that added
    roots that appeared while it ran, forget it."""
    cached = _read(cache_dir)
    if cached is None:
        return
    if plan.repack or plan.roots.late:
        try:
            os.unlink(_path(cache_dir))
        except OSError:
            pass
        return
    gone = {d.key for d in plan.delete}
    cached["dead"] = [d for d in cached["dead"] if d["key"] not in gone]
    names = {k.rsplit("/", 1)[1] for k in gone}
    cached["doomed"] = {k: v for k, v in cached["doomed"].items() if k not in names}
    cached["fingerprint"] = fingerprint(plan.fingerprint_parts, without=gone)
    _write(cache_dir, cached)
