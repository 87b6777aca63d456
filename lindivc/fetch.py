"""Bringing a zone's history and data home: fetch, pull, clone (docs/format.md section 6.5).

Fetch downloads history and pack indexes; chunk data is read from the zone on demand, and
downloaded only when asked (:func:`download_objects`). Pull is a fetch and then a fast-forward
or a merge (:mod:`lindivc.merge`, which merges a LINDI file both sides changed); clone is a new
repository and a fetch.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from . import gitsync, zonerefs
from .catalog import ZoneCatalog, catalog_for, zone_for
from .errors import LindivcError, ZoneKeyMissing
from .layout import parse_zone_url
from .localranges import scan_commits
from .mergestate import refuse_during_merge
from .progress import Reporter
from .publish import learn_local_ranges
from .remotes import add_remote, delete_tracking_ref, set_tracking_ref, tracking_refs
from .repo import Repository
from .zones import Zone

if TYPE_CHECKING:
    from .merge import MergeOutcome

#: chunks sent or received at once (downloads here, uploads in push.py; see the notes there)
TRANSFER_THREADS = int(os.environ.get("LINDIVC_UPLOAD_THREADS", "8"))


@dataclass
class FetchResult:
    """What a fetch brought: the zone's branches (name -> commit) and what was downloaded."""

    remote: str
    refs: dict[str, str]
    history_bytes: int = 0
    indexes: int = 0
    objects_downloaded: int = 0
    object_bytes: int = 0

    def to_json(self) -> dict:
        return asdict(self)


def fetch(repo: Repository, remote: str = "origin", *, objects: bool = False,
          reporter: Reporter | None = None) -> FetchResult:
    """Download the zone's history and pack indexes (and, with ``objects``, its chunk data), and
    set the remote-tracking refs to the zone's branches. RefConflict if one of those refs changed
    while fetching (the other writer's value is kept)."""
    rep = reporter or Reporter()
    cat = catalog_for(repo, remote)
    zone = cat.zone
    seen = tracking_refs(repo.history, remote)  # what each tracking ref is expected to hold until set below
    refs = zonerefs.list_remote_refs(zone)
    heads = {k[len("refs/heads/"):]: v for k, v in refs.items() if k.startswith("refs/heads/")}
    res = FetchResult(remote, heads)
    with rep.task("Downloading history", None) as advance:
        res.history_bytes = gitsync.download_history(zone, repo.history.git_dir, sorted(set(heads.values())),
                                                     progress=advance)
    res.indexes, _ = cat.refresh()
    known = [s for s in seen.values() if repo.history.has(s)]  # issue 11: ranges of files on the pusher's machine
    learn_local_ranges(repo, cat, list(repo.history.walk(sorted(set(heads.values())), exclude=known)))
    hint = f"run `lindivc fetch {remote}` again"
    for b, sha in sorted(heads.items()):
        set_tracking_ref(repo.history, remote, b, sha, seen.get(b), hint)
    for b, sha in sorted(seen.items()):
        if b not in heads:
            delete_tracking_ref(repo.history, remote, b, sha, hint)
    default = zone_default_branch(zone)
    if default:
        cat.meta["default_branch"] = default
        cat._save_meta()
    if objects:
        n, nb = download_objects(repo, cat, list(heads.values()), rep)
        res.objects_downloaded, res.object_bytes = n, nb
    return res


def zone_default_branch(zone: Zone) -> str | None:
    """The zone's default branch (``git/HEAD``, set by its first push), or None."""
    try:
        head = zone.get(zonerefs.HEAD_KEY).decode().strip()
    except ZoneKeyMissing:
        return None
    return head[len("ref: refs/heads/"):] if head.startswith("ref: refs/heads/") else None


def download_objects(repo: Repository, cat: ZoneCatalog, heads: list[str],
                     reporter: Reporter | None = None) -> tuple[int, int]:
    """Copy every chunk that ``heads`` reference (latest files only) into the local store;
    return (chunks, bytes) downloaded."""
    commits = [repo.history.commit(h) for h in heads]
    needed = repo.history.referenced_chunks(commits)
    needed |= repo.local_ranges.known_chunks(scan_commits(repo.history, commits, check=False))  # copies of local files' ranges
    todo = sorted(s for s in needed if not repo.has_object(s))
    nbytes = copy_chunks(repo, {s: cat for s in todo}, f"Downloading {len(todo)} chunks", reporter)
    return len(todo), nbytes


def copy_chunks(repo: Repository, sources: dict[str, ZoneCatalog], title: str,
                reporter: Reporter | None = None) -> int:
    """Download each chunk from the zone of its catalog into the local store, verified
    (ChecksumMismatch, ObjectMissing); return the bytes downloaded."""
    rep = reporter or Reporter()
    total = sum(c.placements[s].size for s, c in sources.items() if s in c.placements)
    with rep.task(title, total) as advance:
        def one(sha: str) -> int:
            data = sources[sha].read_chunk(sha)
            repo.objects.put_bytes(data)
            advance(len(data))
            return len(data)

        with ThreadPoolExecutor(max_workers=TRANSFER_THREADS) as ex:
            return sum(ex.map(one, sorted(sources)))


@dataclass
class PullResult:
    """A pull: its fetch, and how ``branch`` moved from ``old`` to ``new``."""

    fetch: FetchResult
    branch: str
    old: str | None
    new: str | None  # None while a merge stopped at conflicts
    kind: str  # "up-to-date" | "fast-forward" | "merge" | "conflicts"
    merge: MergeOutcome | None = None  # when the branch is checked out: what the merge did

    def to_json(self) -> dict:
        out = {"fetch": self.fetch.to_json(), "branch": self.branch, "old": self.old, "new": self.new,
               "kind": self.kind}
        if self.merge is not None:
            out["merged_files"] = list(self.merge.merged_files)
            out["conflicts"] = [{"spec": c.spec, "description": c.description} for c in self.merge.conflicts]
        return out


@dataclass
class CloneResult:
    """A clone: the new repository (left out of :meth:`to_json`), the branch checked out, the
    tracked files, and the fetch that filled it."""

    repo: Repository
    url: str
    branch: str
    files: list[str]
    fetch: FetchResult

    def to_json(self) -> dict:
        return {"url": self.url, "directory": self.repo.root, "branch": self.branch, "files": self.files,
                "fetch": self.fetch.to_json()}


def pull(repo: Repository, remote: str = "origin", branch: str | None = None, *,
         reporter: Reporter | None = None) -> PullResult:
    """Fetch, then bring ``branch`` (default: the current branch) up to the zone's: a
    fast-forward or a merge (:func:`lindivc.merge.merge`). Into the checked-out branch, a merge
    with conflicts stops with its state kept (kind "conflicts"; resolve with lindivc.merge);
    into another branch it is refused (NonFastForward). MergeInProgress before fetching if a
    merge is already in progress."""
    from .merge import merge, merge_commits  # only pull merges: fetch and push need none of it

    branch = branch or repo.history.head_branch()
    if branch is None:
        raise LindivcError("HEAD is detached; check out a branch to pull into")
    refuse_during_merge(repo.lvc, "pull")
    fr = fetch(repo, remote, reporter=reporter)
    theirs = fr.refs.get(branch)
    if theirs is None:
        raise LindivcError(f"the zone of {remote} has no branch {branch!r}")
    label = f"{remote}/{branch}"
    if repo.history.head_branch() == branch:
        m = merge(repo, theirs, label=label)
        return PullResult(fr, branch, m.old, m.new, m.kind, m)
    ours = repo.history.ref(f"refs/heads/{branch}")
    if ours == theirs or (ours and repo.history.is_ancestor(theirs, ours)):
        return PullResult(fr, branch, ours, ours, "up-to-date")
    if ours is None or repo.history.is_ancestor(ours, theirs):
        kind, new = "fast-forward", theirs
    else:
        kind, new = "merge", merge_commits(repo, ours, theirs, f"Merge {label}")
    repo.history.set_ref(f"refs/heads/{branch}", new, ours, f"pull: {kind}", repo.author)
    return PullResult(fr, branch, ours, new, kind)


def clone(url: str, directory: str | None = None, *, objects: bool = False, branch: str | None = None,
          reporter: Reporter | None = None) -> Repository:
    """A new repository in ``directory`` with the zone at ``url`` as remote ``origin``, its
    default branch checked out. Working files read data from the zone unless ``objects``."""
    return clone_repository(url, directory, objects=objects, branch=branch, reporter=reporter).repo


def clone_repository(url: str, directory: str | None = None, *, objects: bool = False, branch: str | None = None,
                     reporter: Reporter | None = None) -> CloneResult:
    """:func:`clone`, and what it did."""
    zone = zone_for(url)  # validates the URL before anything is created
    if directory is None:
        directory = parse_zone_url(url).name or os.path.basename(url.rstrip("/")) or "clone"
    if os.path.exists(directory) and (not os.path.isdir(directory) or os.listdir(directory)):
        raise LindivcError(f"destination {directory} exists and is not an empty directory")
    refs = zonerefs.list_remote_refs(zone)
    if not refs:
        raise LindivcError(f"{url} holds no published history (nothing was pushed there)")
    repo = Repository.init(directory)
    try:
        add_remote(repo, "origin", url)
        fr = fetch(repo, "origin", objects=objects, reporter=reporter)
        b = branch or zone_default_branch(zone) or ("main" if "main" in fr.refs else sorted(fr.refs)[0])
        if b not in fr.refs:
            raise LindivcError(f"the zone has no branch {b!r}")
        repo.history.set_ref(f"refs/heads/{b}", fr.refs[b], None, f"clone: from {url}", repo.author)
        repo.history.set_head_symbolic(b)
        repo.checkout(b, force=True)
        files = repo.tracked()
    except BaseException:
        repo.close()
        raise
    return CloneResult(repo, url, b, files, fr)
