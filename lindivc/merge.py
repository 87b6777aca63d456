"""Merging a commit into HEAD: `lindivc merge` and the merge step of `lindivc pull`
(docs/format.md sections 6.5 and 9).

Files are merged three ways against the merge base: a file changed on one side only takes that
side; a LINDI file both sides changed is merged key by key (:mod:`lindivc.filemerge`); a file
deleted on one side and changed on the other is a conflict over the whole file. A merge without
conflicts is committed at once (two parents, ours first), then the working files it changes
are written and the branch moves. A merge with conflicts writes only its state
(:mod:`lindivc.mergestate`) and stops; :func:`resolve` takes a side for a node path or group,
:func:`continue_merge` writes the merge once none is left, :func:`abort_merge` forgets it. The
working files and the branch are never written before the merge is complete, and a merge that
would overwrite uncommitted changes to the files it writes is refused.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

from dulwich.graph import find_merge_base

from . import mergestate
from .errors import (LindivcError, LocalChangesInTheWay, MergeConflicts, NoConflictAt, NoMergeInProgress,
                     NonFastForward, UnresolvedConflicts)
from .filemerge import OURS, SIDES, Conflict, merge_files, normalize_path
from .history import History
from .mergestate import MergeState
from .repo import Repository


def merge_trees(base: dict[str, str], ours: dict[str, str], theirs: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """Merge three path -> blob maps by blob: (the merged map without the paths both sides
    changed differently, those paths sorted). Pure."""
    out: dict[str, str] = {}
    both: list[str] = []
    for p in sorted(set(ours) | set(theirs) | set(base)):
        x, y, o = ours.get(p), theirs.get(p), base.get(p)
        if x == y:
            v = x
        elif x == o:
            v = y
        elif y == o:
            v = x
        else:
            both.append(p)
            continue
        if v is not None:
            out[p] = v
    return out, both


@dataclass(frozen=True)
class FileConflict:
    """A conflict of a merge, in one file: ``path`` is its node path in the file (``/`` for the
    whole file), ``description`` one line naming the file, ``spec`` what ``merge --ours`` or
    ``--theirs`` takes to settle it."""

    file: str
    path: str
    kind: str  # a filemerge.Conflict kind, or "file" (deleted on one side, changed on the other)
    description: str
    attribute: str | None = None
    spec: str = ""

    def describe(self) -> str:
        return self.description

    def to_json(self) -> dict:
        return {"file": self.file, "path": self.path, "kind": self.kind, "attribute": self.attribute,
                "description": self.description, "spec": self.spec}


@dataclass
class MergeOutcome:
    """What a merge did: ``kind`` is "up-to-date", "fast-forward", "merge" (committed) or
    "conflicts" (stopped: the state is kept, nothing else written). ``old``/``new`` are HEAD
    before and after; ``merged_files`` the files merged in LINDI terms."""

    kind: str
    label: str
    branch: str | None
    old: str | None
    new: str | None
    merged_files: list[str] = field(default_factory=list)
    conflicts: list[FileConflict] = field(default_factory=list)

    def error(self) -> MergeConflicts:
        """The error that reports this merge's conflicts and how to resolve them."""
        return MergeConflicts(self.label, self.branch or "HEAD", [(c.spec, c.description) for c in self.conflicts])


@dataclass
class ResolveOutcome:
    """What a resolution did: ``settled`` conflicts of ``file`` now take ``side``; ``left`` are
    the conflicts still open in every file."""

    file: str
    path: str
    side: str
    settled: int
    left: list[FileConflict]


@dataclass
class _FileMerge:
    """One file both sides changed, merged: ``merged`` its bytes once complete (None while
    conflicts are open, or when the merge deletes it)."""

    path: str
    merged: bytes | None
    deleted: bool
    conflicts: list[Conflict]


# ------------------------------------------------------------------ starting a merge


def merge(repo: Repository, rev: str, *, label: str | None = None, message: str | None = None) -> MergeOutcome:
    """Merge ``rev`` into HEAD: up to date, a fast-forward, a merge commit, or stopped at
    conflicts (see the module docstring). ``label`` names ``rev`` in messages. Raises
    MergeInProgress, UnknownRevision, LocalChangesInTheWay, FileLocked."""
    with repo.index_lock():
        mergestate.refuse_during_merge(repo.lvc, "start another merge")
        h = repo.history
        theirs = h.resolve(rev)
        label = label or rev
        ours, branch = h.head(), h.head_branch()
        if ours is not None and h.is_ancestor(theirs, ours):
            return MergeOutcome("up-to-date", label, branch, ours, ours)
        if ours is None or h.is_ancestor(ours, theirs):
            _apply(repo, ours, theirs, h.commit_files(theirs), {}, f"merge {label}: fast-forward", None)
            return MergeOutcome("fast-forward", label, branch, ours, theirs)
        base = _merge_base(h, ours, theirs)
        st = MergeState(ours, theirs, base, branch, label, message or f"Merge {label}")
        files, results = _plan(h, st, fresh=True)
        conflicts = _conflicts(results)
        merged = sorted(results)
        if conflicts:
            of = h.commit_files(ours)
            touched = {p for p in set(of) | set(files) if of.get(p) != files.get(p)} | set(results)
            _check_clean(repo, sorted(touched), of, files, "merge", resume=False)
            st.conflicts = [c.to_json() for c in conflicts]
            mergestate.save(repo.lvc, st)
            return MergeOutcome("conflicts", label, branch, ours, None, merged, conflicts)
        sha = h.make_commit(h.write_tree(files), [ours, theirs], st.message, repo.author)
        _apply(repo, ours, sha, files, {p: r.merged for p, r in results.items()}, f"merge {label}", st)
        return MergeOutcome("merge", label, branch, ours, sha, merged)


def merge_commits(repo: Repository, ours: str, theirs: str, message: str) -> str:
    """Write the merge commit of ``ours`` and ``theirs`` (parents in that order) and return its
    sha; nothing else changes. NonFastForward if the merge has conflicts (then merge into a
    checked-out branch, where they can be resolved)."""
    h = repo.history
    st = MergeState(ours, theirs, _merge_base(h, ours, theirs), None, theirs[:10], message)
    files, results = _plan(h, st, fresh=True)
    conflicts = _conflicts(results)
    if conflicts:
        raise NonFastForward(f"{len(conflicts)} conflict(s) ({conflicts[0].description}); check out the branch "
                             "and merge there to resolve them")
    return h.make_commit(h.write_tree(files), [ours, theirs], message, repo.author)


def _merge_base(h: History, ours: str, theirs: str) -> str | None:
    bases = find_merge_base(h.repo, [ours.encode(), theirs.encode()])
    return bases[0].decode() if bases else None


def _plan(h: History, st: MergeState, fresh: bool) -> tuple[dict[str, str], dict[str, _FileMerge]]:
    """The merged tree (path -> blob; the merged blobs of complete files are stored) and each
    file both sides changed, merged with the choices of ``st``. With ``fresh``, ``st.files`` is
    filled in from the three commits."""
    bf = h.commit_files(st.base) if st.base else {}
    of, tf = h.commit_files(st.ours), h.commit_files(st.theirs)
    files, both = merge_trees(bf, of, tf)
    if fresh:
        st.files = {p: {"base": bf.get(p), "ours": of.get(p), "theirs": tf.get(p)} for p in both}
    results: dict[str, _FileMerge] = {}
    for p in both:
        r = _merge_one(h, p, st.files[p], st.resolutions.get(p, []))
        if r.merged is not None:
            files[p] = h.write_blob(r.merged)
        results[p] = r
    return files, results


def _merge_one(h: History, path: str, blobs: dict, choices: list) -> _FileMerge:
    """Merge one file from its three blobs and the ``[node, side]`` choices for it."""
    b, o, t = blobs.get("base"), blobs.get("ours"), blobs.get("theirs")
    if o is not None and t is not None:
        res = merge_files(h.read_blob(b) if b else None, h.read_blob(o), h.read_blob(t), name=path,
                          resolutions=[(n, s) for n, s in choices])
        return _FileMerge(path, res.merged, False, list(res.conflicts))
    c = Conflict("/", "file", "deleted" if o is None else "changed", "deleted" if t is None else "changed")
    side = None
    for node, s in choices:
        if not c.covered_by(node):
            raise NoConflictAt(normalize_path(node), ["/"])
        if s not in SIDES:
            raise ValueError(f"side must be 'ours' or 'theirs', not {s!r}")
        side = s
    if side is None:
        return _FileMerge(path, None, False, [c])
    blob = o if side == OURS else t
    return _FileMerge(path, h.read_blob(blob) if blob else None, blob is None, [])


def _conflicts(results: dict[str, _FileMerge]) -> list[FileConflict]:
    """The open conflicts of ``results``, sorted by file and path, each with its spec."""
    several = sum(1 for r in results.values() if r.conflicts) > 1
    out = []
    for p in sorted(results):
        for c in results[p].conflicts:
            if c.kind == "file":
                who, other = ("ours", "theirs") if c.ours == "deleted" else ("theirs", "ours")
                desc, spec = f"{p}: {who} deleted the file; {other} changed it", p
            else:
                desc, spec = f"{p}: {c.describe()}", f"{p}:{c.path}" if several else c.path
            out.append(FileConflict(p, c.path, c.kind, desc, c.attribute, spec))
    return out


def _stored_conflicts(st: MergeState) -> list[FileConflict]:
    several = len({c["file"] for c in st.conflicts}) > 1
    return [FileConflict(c["file"], c["path"], c["kind"], c["description"], c.get("attribute"),
                         c["file"] if c["kind"] == "file" else f"{c['file']}:{c['path']}" if several else c["path"])
            for c in st.conflicts]


# ------------------------------------------------------------------ resolving, continuing, aborting


def merge_in_progress(repo: Repository) -> MergeState | None:
    """The merge in progress, or None; its ``conflicts`` are those left (see :func:`conflicts_left`)."""
    return mergestate.load(repo.lvc)


def conflicts_left(st: MergeState) -> list[FileConflict]:
    """The conflicts of merge ``st`` still open, with the spec that settles each."""
    return _stored_conflicts(st)


def _load(repo: Repository) -> MergeState:
    st = mergestate.load(repo.lvc)
    if st is None:
        raise NoMergeInProgress()
    return st


def resolve(repo: Repository, spec: str, side: str) -> ResolveOutcome:
    """Take ``side`` ("ours" or "theirs") for every conflict at or under ``spec``: a node path or
    group of the one file with conflicts, ``FILE:PATH``, or ``FILE`` for all of a file. A later
    choice overrides an earlier one. Raises NoMergeInProgress, NoConflictAt, LindivcError (a
    path that could be in several files)."""
    if side not in SIDES:
        raise ValueError(f"side must be 'ours' or 'theirs', not {side!r}")
    with repo.index_lock():
        st = _load(repo)
        file, node = _target(repo, st, spec)
        before = sum(1 for c in st.conflicts if c["file"] == file)
        choices = st.resolutions.get(file, []) + [[node, side]]
        r = _merge_one(repo.history, file, st.files[file], choices)
        st.resolutions[file] = choices
        mine = [c.to_json() for c in _conflicts({file: r})]
        st.conflicts = sorted([c for c in st.conflicts if c["file"] != file] + mine, key=lambda c: (c["file"], c["path"]))
        mergestate.save(repo.lvc, st)
        return ResolveOutcome(file, normalize_path(node), side, max(0, before - len(mine)), _stored_conflicts(st))


def _target(repo: Repository, st: MergeState, spec: str) -> tuple[str, str]:
    """(file, node path) that ``spec`` names in merge ``st``."""
    def as_file(s: str) -> str | None:
        if s in st.files:
            return s
        try:
            rel = repo.relpath(s)
        except LindivcError:
            return None
        return rel if rel in st.files else None

    f, sep, node = spec.partition(":")
    if sep and as_file(f):
        return as_file(f), node or "/"
    if as_file(spec):
        return as_file(spec), "/"
    open_files = sorted({c["file"] for c in st.conflicts})
    if len(open_files) == 1:
        return open_files[0], spec
    if len(st.files) == 1:
        return next(iter(st.files)), spec
    where = ", ".join(open_files or sorted(st.files))
    raise LindivcError(f"several files of the merge could hold {spec} ({where}); name one as FILE:{normalize_path(spec)}")


def continue_merge(repo: Repository, message: str | None = None) -> MergeOutcome:
    """Finish the merge in progress once no conflict is left: commit it (parents HEAD and the
    merged commit; ``message`` or the merge's own), write the working files it changes and
    move the branch. Also finishes a ``continue`` that was interrupted. Raises
    NoMergeInProgress, UnresolvedConflicts, LocalChangesInTheWay, LindivcError (HEAD moved)."""
    with repo.index_lock():
        st = _load(repo)
        h = repo.history
        head = h.head()
        if st.commit is not None and head == st.commit:  # interrupted after the branch moved
            mergestate.remove(repo.lvc)
            return MergeOutcome("merge", st.label, st.branch, st.ours, st.commit, sorted(st.files))
        if head != st.ours or h.head_branch() != st.branch:
            raise LindivcError(f"HEAD moved since the merge of {st.label} started (it was {st.ours[:10]} on "
                               f"{st.branch or 'a detached HEAD'}); `lindivc merge --abort` and merge again")
        files, results = _plan(h, st, fresh=False)
        open_ = _conflicts(results)
        if open_:
            st.conflicts = [c.to_json() for c in open_]
            mergestate.save(repo.lvc, st)
            raise UnresolvedConflicts(f"merge of {st.label}", open_)
        sha = st.commit or h.make_commit(h.write_tree(files), [st.ours, st.theirs], message or st.message, repo.author)
        _apply(repo, st.ours, sha, files, {p: r.merged for p, r in results.items()}, f"merge {st.label}", st)
        return MergeOutcome("merge", st.label, st.branch, st.ours, sha, sorted(results))


def abort_merge(repo: Repository) -> MergeState:
    """Forget the merge in progress and return it; working files an interrupted ``continue``
    had written are restored from HEAD. NoMergeInProgress if there is none."""
    with repo.index_lock():
        st = _load(repo)
        h = repo.history
        if st.commit is not None and st.applying and h.head() == st.ours:
            with repo.locked(st.applying):
                _write(repo, st.applying, h.commit_files(st.ours), {})
        mergestate.remove(repo.lvc)
        return st


# ------------------------------------------------------------------ writing the result


def _apply(repo: Repository, old: str | None, new: str, new_files: dict[str, str], merged: dict,
           reflog: str, st: MergeState | None) -> None:
    """Make commit ``new`` (whose files are ``new_files``) HEAD, from ``old``: check that no
    uncommitted change is in the way, write the working files that differ (``merged``: canonical
    bytes already at hand, by path), update the index, move the branch (compare-and-swap), and
    drop the merge state ``st`` if any (saved first with the files it is about to write, so an
    interrupted run can be continued or aborted)."""
    h = repo.history
    head_files = h.commit_files(old) if old else {}
    changed = sorted(p for p in set(head_files) | set(new_files) if head_files.get(p) != new_files.get(p))
    resume = st is not None and st.commit == new
    _check_clean(repo, changed, head_files, new_files, "merge" if st is not None else "fast-forward", resume)
    with repo.locked(changed):
        if st is not None:
            st.commit, st.applying = new, changed
            mergestate.save(repo.lvc, st)
        _write(repo, changed, new_files, merged)
        h.update_head(new, old, reflog, repo.author)
        if st is not None:
            mergestate.remove(repo.lvc)


def _write(repo: Repository, paths: list[str], files: dict[str, str], merged: dict) -> None:
    """Make the working files and index entries of ``paths`` those of ``files`` (absent:
    removed); the caller holds their write locks."""
    index = repo._index()
    for p in paths:
        blob = files.get(p)
        if blob is None:
            if os.path.lexists(repo.abspath(p)):
                os.unlink(repo.abspath(p))
            index.entries.pop(p, None)
            continue
        data = merged.get(p)
        repo.write_working(p, data if data is not None else repo.history.read_blob(blob))
        index.entries[p] = {"blob": blob}
    index.save()


def _check_clean(repo: Repository, paths: list[str], head_files: dict[str, str], new_files: dict[str, str],
                 action: str, resume: bool) -> None:
    """LocalChangesInTheWay if a file of ``paths`` has staged or unstaged changes against HEAD,
    or is an untracked working file the result would replace. With ``resume`` a file that
    already is its new version passes too."""
    if not paths:
        return
    st = repo.status([repo.abspath(p) for p in paths])
    ok = {p: {head_files.get(p)} | ({new_files.get(p)} if resume else set()) for p in paths}
    dirty = [f.path for f in st.files if f.index not in ok[f.path] or (f.index is not None and f.work not in ok[f.path])
             or f.error]
    if dirty:
        raise LocalChangesInTheWay(action, dirty)
    clobbered = [p for p in st.untracked if p in new_files and repo.working_blob(p) != new_files[p]]
    if clobbered:
        raise LocalChangesInTheWay(action, clobbered, untracked=True)
