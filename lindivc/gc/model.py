"""What a GC plan is: the deletions and repacks it would do, the roots it counted, and why the
rest is kept. Pure data; :meth:`GCPlan.to_json` is the machine-readable report."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

DEFAULT_GRACE = 14 * 86400.0
DEFAULT_THRESHOLD = 0.5
YOUNG = "unreachable but younger than the grace period"  # the reason an unreachable object is kept

#: a field the report (``to_json``) leaves out: what the plan was made from, for its sweep and cache
_NOT_REPORTED = {"report": False}


def is_old(mtime: float, cutoff: float) -> bool:
    """True if something last written at ``mtime`` is older than the (exclusive) ``cutoff``."""
    return mtime < cutoff


@dataclass(frozen=True)
class Deletion:
    """One key (zone) or object (local) a sweep deletes, and why it is garbage."""

    key: str
    kind: str  # "version" | "index" | "object" | "pack" | "journal" | "pin" | "loose" | "evict" | "temp"
    size: int
    mtime: float
    reason: str


@dataclass(frozen=True)
class Repack:
    """A partly dead pack to rewrite with only its live chunks."""

    pack: str
    size: int
    live: list[list]  # [chunk, offset, size] of live chunks in the old pack
    dead_bytes: int
    files: list[str]  # own rendered files that reference the pack
    mtime: float = 0.0


@dataclass(frozen=True)
class InvalidDoc:
    """A document another user wrote that GC could not use: it counts as referencing nothing.

    ``zone`` is the URL of the zone holding it, ``key`` its key there, ``reason`` one line."""

    zone: str
    key: str
    reason: str

    def __str__(self) -> str:
        return f"{self.zone}/{self.key}: {self.reason}"


@dataclass
class Roots:
    """How many roots of each kind a plan counted."""

    refs: int = 0
    commits: int = 0
    files: int = 0  # rendered files scanned (zone) / working files (local)
    pins: int = 0
    journal: int = 0
    late: int = 0  # pins, journal entries and ref moves that appeared while the sweep ran (added to the roots)
    zones: int = 1
    reflog: int = 0
    unpushed: int = 0
    index: int = 0

    def summary(self, local: bool = False) -> str:
        if local:
            return (f"roots: {self.refs} refs, {self.commits} commits ({self.unpushed} unpushed), "
                    f"{self.reflog} recent reflog entries, {self.index} staged and {self.files} working files")
        late = f", {self.late} added while GC ran" if self.late else ""
        return (f"roots: {self.refs} refs, {self.commits} commits, {self.files} rendered files, "
                f"{self.pins} pins, {self.journal} journal entries{late}, across {self.zones} zone(s)")


@dataclass
class GCPlan:
    """What a sweep would delete, and why the rest is kept (see :meth:`to_json`).

    ``invalid`` lists the documents of other users (published files, pins, journal entries)
    that could not be used: each counts as referencing nothing (docs/gc.md, "Untrusted
    documents"). A sweep fills in ``swept``, ``deleted`` and ``deleted_bytes``. The fields
    after those are what the plan was made from, kept for its sweep and cache and left out of
    the report.
    """

    target: str
    now: float
    grace: float
    threshold: float = DEFAULT_THRESHOLD
    roots: Roots = field(default_factory=Roots)
    refs: dict[str, str] = field(default_factory=dict)
    journals: list[str] = field(default_factory=list)
    pins: dict[str, float] = field(default_factory=dict)  # pin -> mtime when planned
    invalid: list[InvalidDoc] = field(default_factory=list)
    delete: list[Deletion] = field(default_factory=list)
    repack: list[Repack] = field(default_factory=list)
    kept: dict[str, int] = field(default_factory=dict)  # reason -> count of objects kept
    kept_bytes: int = 0
    live_objects: int = 0
    notes: list[str] = field(default_factory=list)
    cached: bool = False
    swept: bool = False
    deleted: int = 0
    deleted_bytes: int = 0
    #: zone: the lines (own key or None, line) whose hash is the cache's fingerprint of what was read
    fingerprint_parts: list[tuple[str | None, bytes]] = field(default_factory=list, repr=False,
                                                              metadata=_NOT_REPORTED)
    #: zone: every object the plan deletes or repacks -> the chunks it holds. A root that appears
    #: while the sweep runs (a pin, a journal entry) and names one of them, or the object itself,
    #: keeps that object (docs/gc.md, "Roots that appear while GC runs").
    doomed: dict[str, list[str]] = field(default_factory=dict, repr=False, metadata=_NOT_REPORTED)
    #: zone: the commits that journal entries named when planned: a ref that moves to one of them
    #: during the sweep moved by a push whose objects are roots already
    journal_commits: list[str] = field(default_factory=list, repr=False, metadata=_NOT_REPORTED)
    #: local: the canonical bytes of each working file (path -> bytes), re-rendered by an eviction
    working: dict[str, bytes] = field(default_factory=dict, repr=False, metadata=_NOT_REPORTED)

    @property
    def cutoff(self) -> float:
        return self.now - self.grace

    @property
    def local(self) -> bool:
        return not self.target.startswith("zone ")

    @property
    def delete_bytes(self) -> int:
        return sum(d.size for d in self.delete if d.kind in ("object", "pack", "loose", "evict"))

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for d in self.delete:
            out[d.kind] = out.get(d.kind, 0) + 1
        return out

    def keep(self, reason: str, size: int = 0) -> None:
        self.kept[reason] = self.kept.get(reason, 0) + 1
        self.kept_bytes += size

    def to_json(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.metadata.get("report", True)}
        d["roots"] = asdict(self.roots)
        d["delete"] = [asdict(x) for x in self.delete]
        d["repack"] = [asdict(x) for x in self.repack]
        d["invalid"] = [asdict(x) for x in self.invalid]
        d["cutoff"] = self.cutoff
        d["delete_bytes"] = self.delete_bytes
        d["counts"] = self.counts()
        d["roots_summary"] = self.roots.summary(local=self.local)
        return d
