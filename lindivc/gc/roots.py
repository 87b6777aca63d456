"""The roots of a zone (DESIGN.md section 6) and what they reach, one function per kind of root:

    history_roots      every ref and every commit reachable from one: their files' content refs
    journal_roots      journal entries younger than the grace period: the objects a push in flight names
    pin_roots          pins (see :mod:`.pins`): what each carries; borrow pins while young
    own_file_roots     the zone's own published files (``f/``; ``v/<commit>/`` while the commit is
                       reachable, journalled or younger than grace), by byte range
    cloud_file_roots   the published files of every other zone of the cloud, by byte range

Each adds what its roots keep to a :class:`Reach`, so roots found later can be added to the
same one. Journal entries, pins and published files are untrusted input: they are read through
:mod:`.reading` (size-capped, parsed by :mod:`lindivc.documents`), and one that cannot be used
is returned as an :class:`~.model.InvalidDoc` (it keeps nothing; the plan reports it).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Collection, Iterable

from .. import gitsync
from ..documents import MAX_JOURNAL_BYTES, JournalEntry, Pin, parse_journal_entry
from ..errors import UnknownRevision
from ..history import History
from ..layout import journal_key, pin_key
from ..packs import PackIndex
from ..zones.base import ObjectInfo, Zone
from .listing import ZoneListing
from .model import Deletion, InvalidDoc, is_old
from .pins import PinEntry
from .published import MAX_FILE_BYTES, FileRanges, ranges_in
from .reading import read_documents


@dataclass
class Reach:
    """What the roots gathered so far keep, resolved against the zone's pack ``indexes``;
    ``objects`` are the names of the zone's objects (what is not one of them is not kept: a
    document naming other things costs no memory)."""

    indexes: dict[str, PackIndex]
    objects: Collection[str] = frozenset()
    chunks: set[str] = field(default_factory=set)  # live chunks
    whole: set[str] = field(default_factory=set)  # objects kept whole (a ref to no known chunk, a pin of objects)
    external_packs: set[str] = field(default_factory=set)  # packs named by range from outside the own history
    own_files: dict[str, list[str]] = field(default_factory=dict)  # pack -> own published files naming it
    journal_chunks: set[str] = field(default_factory=set)  # chunks a push in flight names
    expiring: list[float] = field(default_factory=list)  # mtimes of roots that stop being roots once old
    _known: set[str] | None = field(default=None, repr=False)

    def known_chunks(self) -> set[str]:
        """Every chunk the zone holds (in a pack index, or as an object of its own)."""
        if self._known is None:
            self._known = {e.sha for idx in self.indexes.values() for e in idx.chunks} | set(self.objects)
        return self._known

    def add_ranges(self, refs: Iterable[tuple[str, int, int]], *, external: bool, file: str | None = None) -> None:
        """Keep what the byte ranges ``refs`` (object, offset, size; offset -1: whole object) name:
        the chunk of a known pack each falls in, else the whole object. ``external``: the refs come
        from outside this zone's history; ``file``: the own published file they come from."""
        for sha, off, size in refs:
            idx = self.indexes.get(sha)
            if idx is None:
                if sha in self.objects:
                    self.whole.add(sha)
                continue
            if external:
                self.external_packs.add(sha)
            elif file is not None:
                lst = self.own_files.setdefault(sha, [])
                if not lst or lst[-1] != file:
                    lst.append(file)
            pos = idx.chunk_at(off) if off >= 0 else None
            if pos is None:
                self.whole.add(sha)
            else:
                self.chunks.add(pos.chunk)

    def add_pin(self, pin: Pin) -> None:
        """Keep what ``pin`` carries: its chunks, its objects whole, its ranges (from outside the
        zone's history); what the zone does not hold is ignored."""
        known = self.known_chunks() if pin.chunks else ()
        self.chunks.update(c for c in pin.chunks if c in known)
        self.whole.update(o for o in pin.objects if o in self.objects)
        self.add_ranges(((r.object, r.offset, r.size) for r in pin.ranges), external=True)


def history_roots(zone: Zone, refs: dict[str, str], cache_dir: str, reach: Reach) -> set[str]:
    """Keep the chunks that the files of every commit reachable from ``refs`` reference; return
    those commits. The zone's history is mirrored into ``cache_dir/git`` (incrementally)."""
    git_dir = os.path.join(cache_dir, "git")
    History.init_if_missing(git_dir)
    heads = sorted(set(refs.values()))
    if heads:
        gitsync.download_history(zone, git_dir, heads)
    history = History(git_dir)
    try:
        commits, chunks = history.reachable_chunks(_commits_named(history, heads))
    finally:
        history.close()
    reach.chunks |= chunks
    return commits


def _commits_named(history: History, heads: list[str]) -> list[str]:
    """The commits ``heads`` name (a tag names its commit; a ref to anything else reaches none)."""
    out = []
    for sha in heads:
        try:
            out.append(history.resolve(sha))
        except UnknownRevision:
            continue
    return out


@dataclass
class JournalRoots:
    """What :func:`journal_roots` found: entries that are roots, the commits they name, stale
    ones, and entries that could not be read."""

    entries: int = 0
    commits: set[str] = field(default_factory=set)
    stale: list[Deletion] = field(default_factory=list)
    invalid: list[InvalidDoc] = field(default_factory=list)


def _journal(data: bytes, key: str) -> JournalEntry:
    return parse_journal_entry(data, key, MAX_JOURNAL_BYTES)


def read_journal(zone: Zone, infos: Iterable[ObjectInfo]
                 ) -> Iterable[tuple[ObjectInfo, JournalEntry | InvalidDoc | None]]:
    """Each journal entry of ``infos`` (its ``journal/`` listing), parsed: the entry, an
    InvalidDoc, or None when it is gone."""
    for _, info, got in read_documents(((zone, i) for i in infos), _journal, MAX_JOURNAL_BYTES):
        yield info, got


def journal_roots(zone: Zone, journals: dict[str, ObjectInfo], cutoff: float, reach: Reach) -> JournalRoots:
    """Keep the objects that journal entries younger than ``cutoff`` name (a push in flight is
    about to reference them); older entries are stale (their push finished or died). An entry
    that does not parse keeps nothing and is reported."""
    out = JournalRoots()
    young = []
    for jid, info in sorted(journals.items()):
        if is_old(info.mtime, cutoff):
            out.stale.append(Deletion(journal_key(jid), "journal", info.size, info.mtime,
                                      "journal entry older than the grace period (its push finished or died)"))
        else:
            young.append(info)
    for info, got in read_journal(zone, young):
        out.entries += 1
        reach.expiring.append(info.mtime)
        if isinstance(got, JournalEntry):
            reach.journal_chunks.update(got.objects)
            out.commits.add(got.commit)
        elif isinstance(got, InvalidDoc):
            out.invalid.append(got)
    reach.chunks |= reach.journal_chunks
    return out


@dataclass
class PinRoots:
    """What :func:`pin_roots` found: stale borrow pins (to delete), pins that keep nothing, and
    how many are in the old ``lindivc-pin/1`` format."""

    stale: list[Deletion] = field(default_factory=list)
    invalid: list[InvalidDoc] = field(default_factory=list)
    legacy: int = 0


def pin_roots(zone: Zone, entries: Iterable[PinEntry], siblings: list[Zone], cutoff: float, reach: Reach) -> PinRoots:
    """Keep what pins carry: a ``file`` pin until it is removed; a ``borrow`` pin left by a zone
    of this cloud while it is younger than ``cutoff`` (afterwards that zone's published files
    speak for it: it is returned as stale); a ``borrow`` pin of no zone of the cloud like a
    file pin. Pins that keep nothing (invalid, past a limit) are returned as invalid. No pin's
    label is ever read. ``entries`` is consumed once (one pin in memory at a time)."""
    sib_urls = {s.url for s in siblings}
    out = PinRoots()
    for e in entries:
        pin = e.pin
        if pin is None:
            out.invalid.append(InvalidDoc(zone.url, pin_key(e.id), e.problem or "unreadable"))
            continue
        out.legacy += pin.legacy
        if pin.kind == "borrow" and pin.label in sib_urls:
            if is_old(e.mtime, cutoff):
                out.stale.append(Deletion(pin_key(e.id), "pin", e.size, e.mtime,
                                          "borrow pin older than the grace period (the borrower's published "
                                          "files speak for it)"))
                continue
            reach.expiring.append(e.mtime)
        reach.add_pin(pin)
    return out


def own_file_roots(zone: Zone, listing: ZoneListing, commits: set[str], cutoff: float, reach: Reach,
                   invalid: list[InvalidDoc]) -> tuple[int, list[Deletion]]:
    """Keep what the zone's own published files reference; return (files read, published
    versions to delete): ``v/<commit>/...`` of a commit that is neither reachable (``commits``,
    commits of young journal entries included) nor younger than ``cutoff``. Files that are not
    LINDI files go to ``invalid``."""
    stale: list[Deletion] = []
    read = []
    for info in listing.files:
        k = info.key
        if k.startswith("v/"):
            commit = k.split("/", 2)[1]
            if commit not in commits:
                if is_old(info.mtime, cutoff):
                    stale.append(Deletion(k, "version", info.size, info.mtime,
                                          f"published version of commit {commit[:10]}, which no ref reaches"))
                    continue
                reach.expiring.append(info.mtime)
        read.append((zone, info))
    return _file_roots(read, reach, invalid, external=False), stale


def cloud_file_roots(listing: ZoneListing, reach: Reach, invalid: list[InvalidDoc]) -> int:
    """Keep what the published files of the other zones of the cloud reference; return how many
    were read. Files that are not LINDI files go to ``invalid``. Raises ZoneError when a store
    fails (GC stops: it cannot know what the file keeps)."""
    return _file_roots(listing.sibling_files, reach, invalid, external=True)


def _file_roots(items: list[tuple[Zone, ObjectInfo]], reach: Reach, invalid: list[InvalidDoc], *,
                external: bool) -> int:
    n = 0
    for zone, info, got in read_documents(items, ranges_in(reach.objects), MAX_FILE_BYTES):
        if isinstance(got, FileRanges):
            n += 1
            reach.add_ranges(got.ranges, external=external, file=None if external else info.key)
            if got.skipped:
                invalid.append(InvalidDoc(zone.url, info.key, f"{got.skipped} malformed ref(s) skipped (not "
                                          "[url, offset, size] with integer offset and size, or an unknown template)"))
        elif isinstance(got, InvalidDoc):
            invalid.append(got)
    return n
