"""Push: publish a branch to a zone, in the order docs/format.md section 6.4 specifies.

That order is what lets a crash at any point leave the zone consistent and a retry finish
without re-sending what arrived. :func:`push` runs the eight numbered steps of the spec; each
step is one function below, whose comment quotes its step. Sending the chunk data of step 5
(packs streamed or written, each followed by its index) is lindivc/upload.py.
"""
from __future__ import annotations

import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable

from . import gitsync
from . import publish as published
from .borrow import record_borrows
from .borrow import sibling_placements as _sibling_placements
from .catalog import Placement, ZoneCatalog, catalog_for, confirm_info_idx, update_info_idx
from .errors import LindivcError, NonFastForward, ObjectMissing, PreconditionFailed, RefConflict, ZoneError
from .fetch import zone_default_branch
from .layout import JOURNAL_FORMAT, journal_key
from .localranges import scan_commits
from .progress import Reporter
from .remotes import set_tracking_ref, tracking_ref
from .repo import Repository
from .zonerefs import ref_key
from .upload import upload_packs
from .zones import Zone



@dataclass
class PushResult:
    remote: str
    branch: str
    old: str | None
    new: str
    up_to_date: bool = False
    commits: int = 0
    objects_referenced: int = 0
    chunks_uploaded: int = 0
    chunk_bytes: int = 0
    packs_uploaded: int = 0
    chunks_borrowed: int = 0
    history_bytes: int = 0
    files_published: list[str] = field(default_factory=list)
    dry_run: bool = False
    urls: dict[str, str] = field(default_factory=dict)  # path -> public URL of f/<path>
    versions: dict[str, str] = field(default_factory=dict)  # path -> public URL of v/<new>/<path>
    public_base: str = ""  # the zone's public base URL (or directory path) published refs start with
    local_chunks: int = 0  # of chunks_uploaded: byte ranges of local files (docs/format.md 6.6)
    local_bytes: int = 0


@dataclass
class _Missing:
    """Step 3's answer: the referenced chunks the zone lacks, to upload or to borrow."""

    upload: list[str]  # sorted
    borrow: dict[str, Placement]
    sizes: dict[str, int]  # of the chunks to upload
    trusted: bool = False  # the catalog was not listed: step 5 confirms it (_upload_and_confirm)


def push(repo: Repository, remote: str = "origin", branch: str | None = None, *, force: bool = False,
         dry_run: bool = False, borrow: bool = True, reporter: Reporter | None = None) -> PushResult:
    """Publish ``branch`` (default: the current one) to the zone of ``remote``.

    NonFastForward if the zone's branch has commits the local one lacks (unless ``force``) or
    moved during the push; RefConflict if the local remote-tracking ref changed during the push
    (the zone was updated then). With ``dry_run``, only steps 1 and 3 run: nothing is written."""
    rep = reporter or Reporter()
    repo.config.remote_url(remote)  # an unknown remote is the first thing to report
    branch = branch or repo.history.head_branch()
    if branch is None:
        raise LindivcError("HEAD is detached; name the branch to push")
    local = repo.history.ref(f"refs/heads/{branch}")
    if local is None:
        raise LindivcError(f"branch {branch!r} has no commits to push")
    try:
        return _push(repo, remote, branch, local, force, dry_run, borrow, rep, assume=not (dry_run or force))
    except _RefMoved:  # the zone's branch is not what this repository last wrote: read it (step 1)
        return _push(repo, remote, branch, local, force, dry_run, borrow, rep, assume=False)


class _RefMoved(Exception):
    """Step 8 found the branch moved from the value step 1 took from this repository's memory."""


def _push(repo: Repository, remote: str, branch: str, local: str, force: bool, dry_run: bool, borrow: bool,
          rep: Reporter, assume: bool) -> PushResult:
    tracking = repo.history.ref(tracking_ref(remote, branch))
    cat = catalog_for(repo, remote)
    zone = cat.zone

    assumed = _remembered_ref(repo, cat, branch, local, tracking) if assume else None
    early = None
    if assumed is not None:  # 1, from memory: step 8's compare-and-swap checks it
        remote_sha, etag = assumed
    elif not dry_run and tracking != local:
        # Steps 1 and 2 together when the tracking ref says there is something to send: the journal
        # then names the chunks of the commits past the tracking ref (checked against step 1 below).
        guess = [tracking] if tracking is not None and repo.history.has(tracking) else []
        early_commits = list(repo.history.walk([local], exclude=guess))
        early_needed = repo.history.referenced_chunks(early_commits)
        # local files' ranges are checked and hashed first: LocalFileUnpublishable leaves the zone as it was
        early_needed |= set(repo.local_ranges.hash_referenced(scan_commits(repo.history, early_commits)))
        with ThreadPoolExecutor(2) as ex:
            journal = ex.submit(_put_journal, zone, branch, local, early_needed)
            try:
                remote_sha, etag = _read_branch_ref(repo, cat, zone, remote, branch, local, force)  # 1
            except BaseException:
                if journal.exception() is None:
                    _drop_journal(zone, journal.result())
                raise
            early = (journal.result(), early_needed)
    else:
        remote_sha, etag = _read_branch_ref(repo, cat, zone, remote, branch, local, force)  # 1
    res = PushResult(remote, branch, remote_sha, local, dry_run=dry_run)
    if remote_sha == local:
        res.up_to_date = True
        if early is not None:
            _drop_journal(zone, early[0])
        if not dry_run:
            pub = _finish_publication(repo, remote, cat, zone, branch, local)
            if pub is not None:
                res.urls = pub.urls
        _set_tracking_ref(repo, remote, branch, local, tracking)
        if not dry_run and published.base_moved(repo, remote, cat):  # 7 again, at the new public URL
            cat.refresh()
            default = (cat.meta.get("default_branch") or zone_default_branch(zone) or branch) == branch
            pub = published.publish_files(repo, remote, cat, zone, local, [local], local, default_branch=default)
            res.urls, res.versions, res.files_published, res.public_base = pub.urls, pub.versions, pub.files, pub.base
        return res
    have = [remote_sha] if remote_sha is not None and repo.history.has(remote_sha) else []
    commits = list(repo.history.walk([local], exclude=have))
    needed = repo.history.referenced_chunks(commits)
    # issue 11: byte ranges of local files become chunks (hashed once; LocalFileUnpublishable before anything is written)
    local_chunks = repo.local_ranges.hash_referenced(scan_commits(repo.history, commits))
    needed |= set(local_chunks)
    res.commits, res.objects_referenced = len(commits), len(needed)

    jid = None
    if not dry_run:
        jid = early[0] if early is not None and needed <= early[1] else _put_journal(zone, branch, local, needed)  # 2
        if early is not None and jid != early[0]:
            _drop_journal(zone, early[0])
    missing = _find_missing(repo, cat, zone, needed, borrow)  # 3
    res.chunks_borrowed = len(missing.borrow)
    res.local_chunks = sum(1 for s in missing.upload if s in repo.local_ranges)  # read from local files
    res.local_bytes = sum(local_chunks[s] for s in missing.upload if s in repo.local_ranges)
    if dry_run:
        if missing.trusted:  # a dry run writes nothing, so it confirms the catalog by listing
            cat.refresh()
            missing = _find_missing(repo, cat, zone, needed, borrow)
        res.chunks_uploaded = len(missing.upload)
        res.chunk_bytes = sum(missing.sizes.values())
        return res
    if missing.borrow:  # 4
        lost = _record_borrows(cat, zone, missing.borrow)
        if lost:  # the lender collected them meanwhile: copy them instead
            for sha in lost:
                del missing.borrow[sha]
            missing.upload = sorted(set(missing.upload) | lost)
            missing.sizes.update({s: _local_size(repo, s) for s in lost})
            res.chunks_borrowed = len(missing.borrow)
    # 5 and 6 in parallel (chunk data and history are independent; each keeps its own order)
    with ThreadPoolExecutor(1) as ex:
        history = ex.submit(_upload_history, repo, cat, zone, local, have, rep)  # 6
        res.packs_uploaded, more = _upload_and_confirm(repo, cat, zone, needed, missing, rep)  # 5, and 3's check
        res.history_bytes = history.result()
    res.chunks_uploaded = len(missing.upload) + len(more)
    res.chunk_bytes = sum(missing.sizes.values()) + sum(more.values())
    previous = have[0] if have else None
    _mark_publication(cat, branch, local, previous,
                      published.versions_to_publish(repo, remote, local, commits, previous))
    after = _swap_branch_ref(repo, cat, zone, remote, branch, local, remote_sha, etag, tracking, jid,
                             assumed is not None)  # 8
    pub = _finish_publication(repo, remote, cat, zone, branch, local, also=after)  # 7, after 8
    if pub is not None:
        res.urls, res.versions, res.files_published, res.public_base = pub.urls, pub.versions, pub.files, pub.base
    return res


# 1. Read `git/refs/heads/<branch>` (value and etag). If it names a commit that is not an ancestor
#    of the local branch (or unknown locally), stop: non-fast-forward, unless `--force`. The value
#    and etag MAY instead be those this repository's last push wrote, while the remote-tracking
#    ref still has that value and it is an ancestor of the local branch; if step 8's
#    compare-and-swap then fails, the push starts again from this step, reading the ref.
def _read_branch_ref(repo: Repository, cat: ZoneCatalog, zone: Zone, remote: str, branch: str, local: str,
                     force: bool) -> tuple[str | None, str | None]:
    remote_sha, etag = gitsync.read_remote_ref(zone, branch)
    if remote_sha is not None and remote_sha != local and not force:
        if not repo.history.has(remote_sha) or not repo.history.is_ancestor(remote_sha, local):
            raise NonFastForward(
                f"push to {remote}/{branch} rejected: the zone has commits you do not have "
                f"({remote_sha[:10]}); run `lindivc pull {remote} {branch}` and push again (or --force to overwrite)"
            )
    if remote_sha is not None and etag:
        cat.remember(ref_key(branch), etag, f"{remote_sha}\n".encode())
    return remote_sha, etag


def _remembered_ref(repo: Repository, cat: ZoneCatalog, branch: str, local: str,
                    tracking: str | None) -> tuple[str, str] | None:
    """(value, etag) of the zone's branch as this repository last read or wrote it, when the
    remote-tracking ref still has that value and the local branch descends from it; else None."""
    if tracking is None or tracking == local:
        return None
    got = cat.cached(ref_key(branch))
    if got is None or got[1] != f"{tracking}\n".encode():
        return None
    if not repo.history.has(tracking) or not repo.history.is_ancestor(tracking, local):
        return None
    return tracking, got[0]


# 2. Put `journal/<id>` naming every chunk the new commits' files reference. This MUST come
#    before step 3 (see docs/gc.md, "Pushes while GC runs").
def _put_journal(zone: Zone, branch: str, local: str, needed: set[str]) -> str:
    jid = f"{int(time.time())}-{uuid.uuid4().hex[:12]}"
    journal = {"format": JOURNAL_FORMAT, "id": jid, "branch": branch, "commit": local,
               "objects": sorted(needed), "created": time.time()}
    zone.put(journal_key(jid), json.dumps(journal, sort_keys=True).encode())
    return jid


# 3. List what the zone holds (`idx/`, `borrow/`) and compute the referenced chunks the zone
#    lacks in its own packs (chunks it borrows count as lacking: they are confirmed with the
#    lender again in step 4). The listing MAY be skipped when the local catalog remembers the
#    etag `info/idx` had when the catalog last matched it exactly; then `info/idx` MUST be
#    rewritten in step 5 conditionally on that etag (or, with nothing to add, read conditionally
#    on it), after step 2 and before step 8, and if it changed the zone is listed then and what it
#    lacks is uploaded before step 8 (GC changes `info/idx` before it removes any index). In a
#    cloud, chunks another zone of the cloud holds are borrowed instead of uploaded (unless
#    `--no-borrow`).
def _find_missing(repo: Repository, cat: ZoneCatalog, zone: Zone, needed: set[str], borrow: bool) -> _Missing:
    trusted = cat.refresh_unless_remembered()  # after the journal (step 2), or confirmed after it
    missing = needed - cat.own_chunks()
    borrowed: dict[str, Placement] = {}
    if borrow and missing and zone.location.in_cloud:
        borrowed = _sibling_placements(repo, zone, missing)
    upload = sorted(missing - set(borrowed))
    return _Missing(upload, borrowed, {s: _local_size(repo, s) for s in upload}, trusted)


def _local_size(repo: Repository, sha: str) -> int:
    """The size of a chunk to upload: from the local store, a local pack, a local file's range,
    or any known zone."""
    if sha in repo.local_ranges:  # issue 11
        return repo.local_ranges.segment(sha).size
    if sha in repo.objects:
        return repo.objects.size(sha)
    loc = repo.packs.locate(sha)
    if loc is not None:
        return loc.size
    for c in repo.catalogs():
        if sha in c.placements:
            return c.placements[sha].size
    raise ObjectMissing(sha, "the local object store and every known zone; cannot push")


# 4. For borrowed chunks: put a pin in each lending zone, then check that the lender still has the
#    index of each borrowed pack (chunks of a vanished pack are uploaded instead), then put
#    `borrow/<id>` here, then `info/borrow`.
_record_borrows = record_borrows  # lindivc/borrow.py


# 5. Upload the missing chunks grouped into packs (section 5), up to 16 in parallel, each pack
#    followed by its index. Where the backend stores a stream of known size in one request (S3),
#    a pack is streamed from the local chunk files in one PUT; elsewhere it is written to a
#    temporary local pack first and put as a file (section 6.2). A pack is sent even if the zone
#    holds an object of that name without an index (an interrupted push, or an object a GC is
#    deleting: the new mtime tells that GC to keep it); packs with an index are never re-sent.
#    Once every pack is stored, rewrite `info/idx` alongside the indexes (as step 3 says). Step 6
#    MAY run alongside.
def _upload_and_confirm(repo: Repository, cat: ZoneCatalog, zone: Zone, needed: set[str], missing: _Missing,
                        rep: Reporter) -> tuple[int, dict[str, int]]:
    """Step 5, with `info/idx` rewritten alongside the indexes, conditionally on the etag a trusted
    catalog remembers (step 3's check). When it changed since the catalog matched it, list the zone
    and upload what it lacks now. Returns (objects sent, chunk -> size sent by that second round)."""
    def info_idx(names: list[str]) -> tuple[str | None, bytes] | None:
        return confirm_info_idx(cat, names)

    sent, written = upload_packs(repo, cat, zone, missing.upload, missing.sizes, rep, after_data=info_idx)
    more: dict[str, int] = {}
    if written is None:  # info/idx changed since the catalog matched it: list the zone, after step 2
        cat.refresh()
        more = {s: _local_size(repo, s) for s in sorted(needed - cat.own_chunks() - set(missing.borrow))}
        n, written = upload_packs(repo, cat, zone, sorted(more), more, rep,
                                   after_data=lambda names: update_info_idx(cat, names, remember=False))
        sent += n
    cat.note_info_idx_written(*written)
    return sent, more


# 6. Upload the history: one git pack of the objects the zone lacks, `objects/info/packs`.
def _upload_history(repo: Repository, cat: ZoneCatalog, zone: Zone, local: str, have: list[str], rep: Reporter) -> int:
    """Returns the bytes sent. The zone holds the history of ``have`` (the branch value step 8
    swaps from); for a new branch, the zone's refs are listed to find what it holds."""
    if not have:
        have = list(gitsync.list_remote_refs(zone).values())
    with rep.task("Uploading history", None) as advance:
        name, sent = gitsync.upload_history_pack(repo.history.git_dir, zone, [local], have, progress=advance)
    if name is not None:
        etag, content = gitsync.update_info_packs_cached(zone, [name], cat.cached(gitsync.INFO_PACKS))
        cat.remember(gitsync.INFO_PACKS, etag, content)
    return sent


# 7. After step 8, put the published files (section 6.7): `v/<commit>/<path>` for every pushed
#    commit (the commits of step 2; for a branch new to the zone, less those a remote-tracking
#    ref of the remote already reaches, which an earlier push published; the head always) and,
#    when the branch is the zone's default branch (`git/HEAD`, which the first push creates),
#    `f/<path>`; `f/` files of paths deleted since the previous head are removed. A local mark
#    written before step 8 lets a rerun finish them after a crash between the two.
def _mark_publication(cat: ZoneCatalog, branch: str, local: str, previous: str | None, versions: list[str]) -> None:
    cat.meta.setdefault("publish_pending", {})[branch] = {"head": local, "previous": previous, "versions": versions}
    cat._save_meta()


def _finish_publication(repo: Repository, remote: str, cat: ZoneCatalog, zone: Zone, branch: str, local: str,
                        also: list[Callable[[], object]] = ()) -> published.Published | None:
    """Put the published files of ``local`` when their publication is pending (v/, and f/ on the
    default branch), running ``also`` alongside; None if nothing was pending. Either way the
    zone's ``info/public`` is brought up to date (published.public_url_job)."""
    pending = cat.meta.get("publish_pending", {}).get(branch)
    if isinstance(pending, list):  # written by an earlier version: [head, previous], f/ only
        pending = {"head": pending[0], "previous": pending[1], "versions": []}
    pub = None
    if pending is not None and pending.get("head") == local:
        default = (cat.meta.get("default_branch") or _claim_default_branch(cat, zone, branch)) == branch
        pub = published.publish_files(repo, remote, cat, zone, local, pending.get("versions") or [],
                                      pending.get("previous"), default_branch=default, also=also)
    else:
        if also:
            with ThreadPoolExecutor(len(also)) as ex:
                for f in [ex.submit(j) for j in also]:
                    f.result()
        published.update_public_url(repo, remote, cat, zone)
    if pending is not None:
        del cat.meta["publish_pending"][branch]
        cat._save_meta()
    return pub


# 8. Compare-and-swap `git/refs/heads/<branch>` from the etag of step 1 (`if-none-match: *`
#    for a new branch). On conflict: stop with "someone else pushed; pull and push again" (or,
#    when step 1 took the etag from memory, start again from step 1); the uploaded objects are
#    harmless (the journal keeps them from GC during the grace period). Then `git/info/refs`
#    is updated, the local remote-tracking ref
#    `refs/remotes/<remote>/<branch>` is set (compare-and-swap from its value when the push
#    started), and the journal entry is deleted.
def _swap_branch_ref(repo: Repository, cat: ZoneCatalog, zone: Zone, remote: str, branch: str, local: str,
                     remote_sha: str | None, etag: str | None, tracking: str | None, jid: str,
                     assumed: bool = False) -> list[Callable[[], object]]:
    """The compare-and-swap and the tracking ref; returns what is left of step 8 (info/refs,
    deleting the journal), for the caller to run alongside the published files.
    _RefMoved if the swap failed from a remembered etag."""
    try:
        new_etag = gitsync.cas_remote_ref(zone, branch, local, etag, expected_sha=remote_sha, derived=False)
    except RefConflict as e:
        cat.meta.get("publish_pending", {}).pop(branch, None)
        cat.meta.get("etags", {}).pop(ref_key(branch), None)
        cat._save_meta()
        if assumed:  # the next attempt writes its own journal entry
            _drop_journal(zone, jid)
            raise _RefMoved() from None
        raise NonFastForward(
            f"push to {remote}/{branch} rejected: someone else pushed meanwhile ({e.actual and e.actual[:10]}); "
            f"run `lindivc pull {remote} {branch}` and push again"
        ) from None
    cat.remember(ref_key(branch), new_etag, f"{local}\n".encode())
    try:
        _set_tracking_ref(repo, remote, branch, local, tracking)
    except BaseException:
        _drop_journal(zone, jid)
        raise
    return [lambda: _derived_refs(cat, zone, branch, local), lambda: _drop_journal(zone, jid)]


def _claim_default_branch(cat: ZoneCatalog, zone: Zone, branch: str) -> str:
    """The zone's default branch (`git/HEAD`), created naming ``branch`` when the zone has none
    (its first push); remembered in the catalog."""
    try:
        zone.put(gitsync.HEAD_KEY, f"ref: refs/heads/{branch}\n".encode("ascii"), if_none_match=True)
        default = branch
    except PreconditionFailed:
        default = zone_default_branch(zone) or branch
    cat.meta["default_branch"] = default
    cat._save_meta()
    return default


def _derived_refs(cat: ZoneCatalog, zone: Zone, branch: str, local: str) -> None:
    """git/info/refs, from what this repository remembers of it: best effort."""
    try:
        etag, content = gitsync.update_info_refs_cached(zone, branch, local, cat.cached(gitsync.INFO_REFS))
        cat.remember(gitsync.INFO_REFS, etag, content)
    except ZoneError:
        pass


def _drop_journal(zone: Zone, jid: str) -> None:
    try:
        zone.delete(journal_key(jid))
    except ZoneError:
        pass  # GC drops stale journal entries after the grace period


def _set_tracking_ref(repo: Repository, remote: str, branch: str, local: str, expected: str | None) -> None:
    set_tracking_ref(repo.history, remote, branch, local, expected,
                     hint=f"the zone's {branch} is {local[:10]} now; run `lindivc fetch {remote}` to see it")
