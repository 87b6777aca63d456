"""GC of a repository's own object store (``.lindivc/objects``).

Roots: every ref (branches, tags, remote-tracking refs), HEAD, the commits of a merge in
progress, reflog entries newer than grace,
the staging index, every working LINDI file (its canonical form; a file that cannot be
canonicalized keeps every sha1 its text mentions). Unreachable loose objects and local packs
whose every chunk is dead are deleted when older than grace (index before pack). With
``evict_pushed``, local copies of chunks that a remote zone holds and that only pushed commits
reference are dropped too, after the working files are re-rendered to read from the zone.
"""
from __future__ import annotations

import os
import re
import time

from .. import lindijson, mergestate
from ..atomic import TMP_PREFIX
from ..catalog import Placement, ZoneCatalog, zone_for
from ..errors import InvalidLindiFile, LindivcError, RefsChanged, ZoneError
from ..layout import object_key
from ..packstream import PACK_TMP_PREFIX
from ..progress import Reporter, human_bytes
from ..zones.base import Zone
from .model import DEFAULT_GRACE, YOUNG, Deletion, GCPlan, is_old

_SHA_RE = re.compile(rb"[0-9a-f]{40}")


def mentioned_shas(data: bytes) -> set[str]:
    """Every sha1-looking name in ``data`` (what local GC keeps of a working file it cannot parse)."""
    return {m.decode() for m in _SHA_RE.findall(data)}


def _working_chunks(repo, plan: GCPlan) -> set[str]:
    """Chunks the working files and the staging index reference; the canonical bytes of each
    working file go to ``plan.working``."""
    index = repo._index()
    paths = sorted(set(index.entries) | set(repo.untracked(index)))
    chunks: set[str] = set()
    for p in paths:
        ap = repo.abspath(p)
        if not os.path.exists(ap):
            continue
        try:
            c = repo.canonical_bytes_of(p)
            plan.working[p] = c
            chunks |= lindijson.content_shas(c)
        except (InvalidLindiFile, LindivcError, OSError):
            with open(ap, "rb") as f:
                chunks |= mentioned_shas(f.read())
            plan.notes.append(f"{p} could not be read as a LINDI file: every sha1 it mentions is kept")
    plan.roots.files = len(plan.working)
    for e in index.entries.values():
        if e.get("blob") and repo.history.has(e["blob"]):
            chunks |= lindijson.content_shas(repo.history.read_blob(e["blob"]))
    plan.roots.index = len(index.entries)
    return chunks


class _ZoneHolds:
    """Whether a zone still holds a chunk where a catalog places it (one HEAD per pack)."""

    def __init__(self) -> None:
        self._known: dict[tuple[str, str], bool] = {}
        self._zones: dict[str, Zone] = {}

    def __call__(self, cat: ZoneCatalog, p: Placement) -> bool:
        key = (p.zone_url, p.pack)
        if key not in self._known:
            if p.zone_url == cat.url:
                z = cat.zone
            else:
                if p.zone_url not in self._zones:
                    self._zones[p.zone_url] = zone_for(p.zone_url)
                z = self._zones[p.zone_url]
            try:
                info = z.head(object_key(p.pack))
            except ZoneError:
                info = None
            self._known[key] = info is not None and info.size >= p.offset + p.size
        return self._known[key]


def _evictable(repo, plan: GCPlan, pushed_chunks: set[str], needed_locally: set[str]) -> set[str]:
    """Chunks that only pushed commits reference and that a remote's zone holds."""
    held: set[str] = set()
    holds = _ZoneHolds()
    for cat in repo.catalogs():
        try:
            cat.refresh()
        except ZoneError as e:
            plan.notes.append(f"cannot reach {cat.url} ({e}); its objects are not evicted")
            continue
        held |= {c for c in pushed_chunks if c in cat.placements and holds(cat, cat.placements[c])}
    return held - needed_locally


def plan_local(repo, *, grace: float = DEFAULT_GRACE, evict_pushed: bool = False, now: float | None = None) -> GCPlan:
    """What a local GC would delete (reads only; see the module docstring)."""
    now = time.time() if now is None else now
    plan = GCPlan(f"repository {repo.root}", now, grace)
    cutoff = plan.cutoff
    history = repo.history
    refs = history.all_refs()
    head = history.head()
    reflog = history.reflog_shas(cutoff)
    merging = mergestate.load(repo.lvc)  # a merge in progress: what it merges in is a root (git's MERGE_HEAD)
    extra = {c for c in (merging.theirs, merging.commit) if c} if merging is not None else set()
    heads = {h for h in set(refs.values()) | ({head} if head else set()) | reflog | extra if history.has(h)}
    plan.roots.refs = len(refs)
    plan.roots.reflog = len(reflog)
    plan.refs = dict(sorted(refs.items()))
    commits, committed = history.reachable_chunks(heads)
    plan.roots.commits = len(commits)
    remote_heads = [v for k, v in refs.items() if k.startswith("refs/remotes/") and history.has(v)]
    pushed_commits, pushed_chunks = history.reachable_chunks(remote_heads)
    plan.roots.unpushed = len(commits - pushed_commits)
    work = _working_chunks(repo, plan)
    live = committed | work
    evictable: set[str] = set()
    if evict_pushed:
        evictable = _evictable(repo, plan, pushed_chunks, ((committed - pushed_chunks) | work) - pushed_chunks)
    packs = repo.packs
    for sha in repo.objects:
        if packs.is_pack(sha):
            continue
        size = repo.objects.size(sha)
        mtime = repo.objects.mtime(sha)
        if sha in evictable:
            plan.delete.append(Deletion(sha, "evict", size, mtime, "pushed: a zone holds it; the working files will read it there"))
        elif sha in live:
            plan.keep("reachable", size)
            plan.live_objects += 1
        elif is_old(mtime, cutoff):
            plan.delete.append(Deletion(sha, "loose", size, mtime, "no ref, reflog entry, staged or working file reaches it"))
        else:
            plan.keep(YOUNG, size)
    for name, size, mtime in _temp_files(repo):
        if is_old(mtime, cutoff):
            plan.delete.append(Deletion(name, "temp", size, mtime, "a temp file a killed write left"))
    for idx in packs:
        p = repo.objects.path(idx.pack)
        if not os.path.exists(p):
            continue
        size = os.path.getsize(p)
        mtime = os.path.getmtime(p)
        chunks = {e.sha for e in idx.chunks}
        if idx.pack in live or chunks & (live - evictable):
            plan.keep("pack with reachable chunks", size)
            plan.live_objects += 1
            continue
        if chunks <= evictable:
            plan.delete.append(Deletion(idx.pack, "evict", size, mtime, "pushed pack: a zone holds every chunk"))
        elif is_old(mtime, cutoff):
            plan.delete.append(Deletion(idx.pack, "pack", size, mtime, f"none of its {len(chunks)} chunks is reachable"))
        else:
            plan.keep("unreachable pack younger than the grace period", size)
    return plan


def _temp_files(repo) -> list[tuple[str, int, float]]:
    """(name, size, mtime) of the temp files in the object store's root: objects and packs being
    written, or left by a write that was killed (atomic.TMP_PREFIX, packstream.PACK_TMP_PREFIX)."""
    out = []
    root = repo.objects.root
    for name in sorted(os.listdir(root)) if os.path.isdir(root) else []:
        if name.startswith((TMP_PREFIX, PACK_TMP_PREFIX)):
            try:
                st = os.stat(os.path.join(root, name))
            except FileNotFoundError:
                continue
            out.append((name, st.st_size, st.st_mtime))
    return out


def sweep_local(repo, plan: GCPlan, reporter: Reporter | None = None) -> GCPlan:
    """Delete what ``plan`` names (skipping objects touched since the plan); for evictions, the
    working files are re-rendered first, to read those chunks from their zone. ``reporter``
    shows the deletions as a bar of items."""
    refs = repo.history.all_refs()
    if dict(sorted(refs.items())) != plan.refs:
        raise RefsChanged(plan.target, "refs", "refs changed since the GC plan; run GC again")
    if any(d.kind == "evict" for d in plan.delete):
        _rerender_evicted(repo, plan)
    rep = reporter or Reporter()
    nbytes = human_bytes(sum(d.size for d in plan.delete))
    what = "object" if len(plan.delete) == 1 else "objects"
    for d in rep.track(plan.delete, f"Deleting {len(plan.delete)} local {what} ({nbytes})"):
        p = os.path.join(repo.objects.root, d.key) if d.kind == "temp" else repo.objects.path(d.key)
        try:
            mtime = os.path.getmtime(p)
        except FileNotFoundError:
            continue
        if d.kind != "evict" and mtime != d.mtime and not is_old(mtime, plan.cutoff):
            continue  # touched (re-added) since the plan
        if d.kind == "temp":
            os.unlink(p)
        else:
            if repo.packs.is_pack(d.key):
                repo.packs.remove(d.key)  # index first, then the pack
            repo.objects.delete(d.key)
        plan.deleted += 1
        plan.deleted_bytes += d.size
    plan.swept = True
    return plan


def _rerender_evicted(repo, plan: GCPlan) -> None:
    """Rewrite the working files so that the chunks ``plan`` evicts are read from their zone."""
    packs = repo.packs
    evicted = {d.key for d in plan.delete if d.kind == "evict"}
    for d in plan.delete:
        if d.kind == "evict" and packs.is_pack(d.key):
            evicted |= {e.sha for e in packs.index(d.key).chunks}
    cats = repo.catalogs()

    def locate(cr: lindijson.ContentRef) -> list:
        if cr.sha1 in evicted:
            for c in cats:
                r = c.locate(cr)
                if r is not None:
                    return r
        return repo.locate(cr)

    for path, canon in plan.working.items():
        lindijson.write_lindi_json(repo.abspath(path), lindijson.render(lindijson.parse(canon, path), locate))


def gc_local(repo, *, prune: bool = False, grace: float = DEFAULT_GRACE, evict_pushed: bool = False,
             reporter: Reporter | None = None) -> GCPlan:
    """Plan (and with ``prune``, sweep) a GC of the local object store (``reporter`` shows the
    deletions)."""
    plan = plan_local(repo, grace=grace, evict_pushed=evict_pushed)
    if prune:
        # no working file may be open "r+" meanwhile: its writer would save refs to objects this
        # sweep deletes or evicts (FileLocked names the file)
        with repo.locked(plan.working.keys()):
            sweep_local(repo, plan, reporter)
    return plan
