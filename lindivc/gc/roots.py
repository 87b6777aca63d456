"""The roots of a zone (DESIGN.md section 6) and what they reach, one function per kind of root:

    history_roots      every ref and every commit reachable from one: their files' content refs
    journal_roots      journal entries younger than the grace period: the objects a push in flight names
    pin_roots          pins (see :mod:`.pins`)
    own_file_roots     the zone's own published files (``f/``; ``v/<commit>/`` while the commit is
                       reachable, journalled or younger than grace), by byte range
    cloud_file_roots   the published files of every other zone of the cloud, by byte range

Each adds what its roots keep to a :class:`Reach`, so roots found later (a pin or journal entry
that appears while GC runs) can be added to the same one.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Iterable

from .. import gitsync
from ..errors import UnknownRevision, ZoneError, ZoneKeyMissing
from ..history import History
from ..layout import journal_key
from ..packs import PackIndex
from ..zones.base import ObjectInfo, Zone
from .listing import ZoneListing
from .model import Deletion, is_old
from .pins import PinsRead
from .published import iter_range_refs


@dataclass
class Reach:
    """What the roots gathered so far keep, resolved against the zone's pack ``indexes``."""

    indexes: dict[str, PackIndex]
    chunks: set[str] = field(default_factory=set)  # live chunks
    whole: set[str] = field(default_factory=set)  # objects kept whole (a ref to no known chunk, a pin of objects)
    external_packs: set[str] = field(default_factory=set)  # packs named by range from outside the own history
    own_files: dict[str, list[str]] = field(default_factory=dict)  # pack -> own published files naming it
    journal_chunks: set[str] = field(default_factory=set)  # chunks a push in flight names
    expiring: list[float] = field(default_factory=list)  # mtimes of roots that stop being roots once old

    def add_ranges(self, refs: Iterable[tuple[str, int, int]], *, external: bool, file: str | None = None) -> None:
        """Keep what the byte ranges ``refs`` (object, offset, size; offset -1: whole object) name:
        the chunk of a known pack each falls in, else the whole object. ``external``: the refs come
        from outside this zone's history; ``file``: the own published file they come from."""
        for sha, off, size in refs:
            idx = self.indexes.get(sha)
            if idx is None:
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
    """What :func:`journal_roots` found: entries that are roots, the commits they name, stale ones."""

    entries: int = 0
    commits: set[str] = field(default_factory=set)
    stale: list[Deletion] = field(default_factory=list)


def journal_roots(zone: Zone, journals: dict[str, ObjectInfo], cutoff: float, reach: Reach) -> JournalRoots:
    """Keep the objects that journal entries younger than ``cutoff`` name (a push in flight is
    about to reference them); older entries are stale (their push finished or died)."""
    out = JournalRoots()
    for jid, info in journals.items():
        if is_old(info.mtime, cutoff):
            out.stale.append(Deletion(journal_key(jid), "journal", info.size, info.mtime,
                                      "journal entry older than the grace period (its push finished or died)"))
            continue
        try:
            doc = json.loads(zone.get(journal_key(jid)))
        except (ZoneKeyMissing, ValueError):
            doc = {}
        out.entries += 1
        reach.expiring.append(info.mtime)
        reach.journal_chunks |= {s for s in doc.get("objects", []) if isinstance(s, str)}
        if isinstance(doc.get("commit"), str):
            out.commits.add(doc["commit"])
    reach.chunks |= reach.journal_chunks
    return out


def pin_roots(pins: PinsRead, infos: dict[str, ObjectInfo], siblings: list[Zone], cutoff: float,
              reach: Reach) -> None:
    """Keep what pins name: what an external pin's file references (by range); what a pin left by
    a zone of this cloud lists, while it is younger than ``cutoff`` (afterwards that zone's
    published files speak for it); what a pin of unknown kind lists."""
    sib_urls = {s.url for s in siblings}
    for pid, doc in pins.docs.items():
        if pid in pins.files:
            reach.add_ranges(iter_range_refs(pins.files[pid]), external=True)
        elif doc.get("by") in sib_urls:
            mtime = infos[pid].mtime
            if not is_old(mtime, cutoff):
                reach.expiring.append(mtime)
                reach.chunks |= set(doc.get("chunks", []))
                reach.whole |= {p for p in doc.get("objects", []) if p not in reach.indexes}
        elif not doc.get("file"):
            reach.chunks |= set(doc.get("chunks", []))
            reach.whole |= set(doc.get("objects", []))


def own_file_roots(zone: Zone, listing: ZoneListing, commits: set[str], cutoff: float,
                   reach: Reach) -> tuple[int, list[Deletion]]:
    """Keep what the zone's own published files reference; return (files read, published
    versions to delete): ``v/<commit>/...`` of a commit that is neither reachable (``commits``,
    commits of young journal entries included) nor younger than ``cutoff``."""
    n = 0
    stale: list[Deletion] = []
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
        try:
            data = zone.get(k)
        except ZoneKeyMissing:
            continue
        n += 1
        reach.add_ranges(iter_range_refs(data), external=False, file=k)
    return n, stale


def cloud_file_roots(listing: ZoneListing, reach: Reach) -> int:
    """Keep what the published files of the other zones of the cloud reference; return how many
    were read. Raises ZoneError when one cannot be read (GC stops: it cannot know what it keeps)."""
    n = 0
    for sib, info in listing.sibling_files:
        try:
            data = sib.get(info.key)
        except ZoneKeyMissing:
            continue
        except ZoneError as e:
            raise ZoneError(f"cannot read {sib.url}/{info.key}: {e}; GC stopped, nothing deleted") from None
        n += 1
        reach.add_ranges(iter_range_refs(data), external=True)
    return n
