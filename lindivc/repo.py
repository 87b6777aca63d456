"""A lindivc repository: working tree, staging index, object store and history.

The working tree holds working LINDI files (materialized: plain lindi reads them); ``.lindivc/``
holds the configuration, objects, pack indexes, the index, the history (a bare git repository)
and what is known of remotes (docs/format.md section 2).
"""
from __future__ import annotations

import functools
import os
from contextlib import contextmanager
from typing import Iterable

from . import lindijson, mergestate
from .config import Config
from .errors import (AlreadyARepository, BranchExists, BranchNotMerged, InvalidLindiFile, LindivcError, NoSuchBranch,
                     NoSuchFile, NotALindiName, NotARepository, NotTracked, NothingToCommit,
                     PathNotInRevision, PathOutsideRepository, UntrackableName)
from .history import History
from .index import FileStatus, Index, IndexLock, Status
from .localranges import LocalRanges
from .layout import validate_path
from .locations import Locations
from .objects import ObjectStore
from .worktree import NAME_RULE as NAME_RULE  # cli names it repo.NAME_RULE
from .worktree import is_trackable, lindi_files

LVC_DIR = ".lindivc"


def _index_locked(method):
    """Run a Repository method holding the index lock (re-entrant within one Repository), so that
    two lindivc processes never interleave read-modify-write of index.json and refs."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with self.index_lock():
            return method(self, *args, **kwargs)

    return wrapper


class Repository:
    """One lindivc repository. Create with :meth:`init`, open with :meth:`find`."""

    def __init__(self, root: str) -> None:
        # the real path, so that object paths written through a symlinked path to the worktree
        # and through the real one are the same (and recognized as objects when committing)
        self.root = os.path.realpath(root)
        self.lvc = os.path.join(self.root, LVC_DIR)
        if not os.path.isdir(os.path.join(self.lvc, "git")):
            raise NotARepository(self.root)
        self.config = Config(os.path.join(self.lvc, "config.json"))
        self.objects = ObjectStore(os.path.join(self.lvc, "objects"))
        self.idx_dir = os.path.join(self.lvc, "idx")
        self.history = History(os.path.join(self.lvc, "git"))
        self._packs = None
        self._catalogs: list | None = None
        self.local_ranges = LocalRanges(os.path.join(self.lvc, "localranges"))  # docs/format.md 6.6
        self._index_lock = IndexLock(os.path.join(self.lvc, "index.lock"))
        self.locations = Locations(self.objects, self.idx_dir, lambda: self.packs, self.catalogs, self.local_ranges)
        self._canon_cache: dict[str, tuple[list, bytes]] = {}  # path -> (stat key, canonical bytes)

    # lifecycle ------------------------------------------------------------
    @classmethod
    def init(cls, path: str = ".", branch: str = "main") -> "Repository":
        """Create a repository at ``path``; AlreadyARepository if inside one."""
        path = os.path.abspath(path)
        try:
            existing = cls.find(path)
        except NotARepository:
            existing = None
        if existing is not None:
            raise AlreadyARepository(existing.root)
        lvc = os.path.join(path, LVC_DIR)
        os.makedirs(os.path.join(lvc, "objects"), exist_ok=True)
        os.makedirs(os.path.join(lvc, "idx"), exist_ok=True)
        History.init(os.path.join(lvc, "git"), branch=branch).close()
        Config(os.path.join(lvc, "config.json")).save()
        Index(os.path.join(lvc, "index.json")).save()
        return cls(path)

    @classmethod
    def find(cls, start: str = ".") -> "Repository":
        """The repository containing ``start`` (a file or directory)."""
        d = os.path.abspath(start)
        if not os.path.isdir(d):
            d = os.path.dirname(d)
        while True:
            if os.path.isdir(os.path.join(d, LVC_DIR, "git")):
                return cls(d)
            parent = os.path.dirname(d)
            if parent == d:
                raise NotARepository(os.path.abspath(start))
            d = parent

    def close(self) -> None:
        self.history.close()

    def __enter__(self) -> "Repository":
        return self

    def __exit__(self, *a) -> None:
        self.close()

    # paths ----------------------------------------------------------------
    def relpath(self, path: str) -> str:
        """``path`` (absolute, or relative to the current directory) as a worktree path."""
        ap = os.path.abspath(path)
        if ap != self.root and not ap.startswith(self.root + os.sep):
            # reached through a symlink to (a directory of) the worktree: resolve the directories
            d, base = os.path.split(ap)
            ap = os.path.join(os.path.realpath(d), base) if base else os.path.realpath(ap)
            if ap != self.root and not ap.startswith(self.root + os.sep):
                raise PathOutsideRepository(path)
        rel = os.path.relpath(ap, self.root).replace(os.sep, "/")
        if rel == "." or rel.split("/")[0] == LVC_DIR:
            raise PathOutsideRepository(path)
        try:
            return validate_path(rel)
        except LindivcError:
            raise UntrackableName(path) from None

    def abspath(self, rel: str) -> str:
        return os.path.join(self.root, *rel.split("/"))

    @property
    def author(self) -> str:
        """The author of new commits ("Name <email>"; see Config.author)."""
        return self.config.author

    # object locations -------------------------------------------------------
    @property
    def packs(self):
        """The PackSet of local pack indexes (loaded on first use)."""
        if self._packs is None:
            from .packs import PackSet

            self._packs = PackSet(self.idx_dir)
        return self._packs

    def catalogs(self) -> list:
        """What is known of remote zones: objects that live there (lindivc.catalog)."""
        if self._catalogs is None:
            from .catalog import load_catalogs  # deferred: zone clients are heavy imports

            self._catalogs = load_catalogs(self)
        return self._catalogs

    def locate(self, cr: lindijson.ContentRef) -> list:
        """Where a plain reader finds a content ref: a local path, else a zone URL."""
        return self.locations.locate(cr)

    def has_object(self, sha: str) -> bool:
        return sha in self.objects or self.packs.locate(sha) is not None

    def read_object(self, sha: str) -> bytes:
        """A chunk's bytes from the local store (loose or packed), verified."""
        if sha in self.objects:
            return self.objects.get(sha)
        from .packs import read_chunk

        return read_chunk(self.objects, self.packs, sha)

    # canonical form ------------------------------------------------------
    def canonicalize(self, rfs: dict) -> dict:
        return lindijson.canonicalize(rfs, self.locations.resolve, self.locations.classify)

    def canonical_bytes_of(self, path: str) -> bytes:
        """The canonical serialization of the working file at worktree path ``path``.

        Remembered for the life of this object while the file's stat is unchanged, so status and
        diff in one command canonicalize a large file once.
        """
        key = self._stat_key(path)
        hit = self._canon_cache.get(path)
        if hit is not None and key is not None and hit[0] == key:
            return hit[1]
        ap = self.abspath(path)
        rfs = lindijson.load(ap, check=False)  # canonical_dumps validates
        canon = lindijson.canonical_dumps(rfs, self.locations.resolve, self.locations.classify, ap)
        del rfs
        if key is not None:
            self._canon_cache[path] = (key, canon)
        return canon

    def render(self, canonical: bytes, name: str = "<blob>") -> dict:
        return lindijson.render(self.local_ranges.zone_copies(lindijson.parse(canonical, name)), self.locate)

    def write_working(self, path: str, canonical: bytes) -> None:
        lindijson.write_lindi_json(self.abspath(path), self.render(canonical, path))

    # index / status -----------------------------------------------------
    def _index(self) -> Index:
        return Index(os.path.join(self.lvc, "index.json"))

    def index_lock(self):
        """Hold ``.lindivc/index.lock`` for a block (re-entrant in this object; see index.IndexLock)."""
        return self._index_lock.held()

    def _stat_key(self, path: str) -> list | None:
        try:
            st = os.stat(self.abspath(path))
        except FileNotFoundError:
            return None
        return [st.st_mtime_ns, st.st_size, st.st_ino]

    def working_blob(self, path: str, index: Index | None = None, write: bool = False) -> str | None:
        """The blob sha of the working file's canonical form (None if absent).

        Uses the index's stat cache when the file is unchanged since it was last hashed; with
        ``write`` the blob is also stored in history.
        """
        key = self._stat_key(path)
        if key is None:
            return None
        e = index.entries.get(path) if index else None
        if e and e.get("stat") == key and not write:
            return e.get("work_blob")
        canon = self.canonical_bytes_of(path)
        if write:
            blob = self.history.write_blob(canon)
        else:
            from dulwich.objects import Blob

            blob = Blob.from_string(canon).id.decode()
        if e is not None:
            e["stat"] = key
            e["work_blob"] = blob
        return blob

    def tracked(self) -> list[str]:
        return sorted(self._index().entries)

    def head_files(self) -> dict[str, str]:
        """The files of HEAD: worktree path -> blob sha (none before the first commit)."""
        h = self.history.head()
        return self.history.commit_files(h) if h else {}

    def lindi_files(self) -> list[str]:
        """Every LINDI file in the working tree (hidden directories skipped), including files
        whose names lindivc cannot track (see :meth:`untrackable`)."""
        return lindi_files(self.root)

    def untracked(self, index: Index) -> list[str]:
        """Untracked LINDI files, including those whose names lindivc cannot track (gc keeps
        what they use; status lists those apart)."""
        return [p for p in self.lindi_files() if p not in index.entries]

    @_index_locked
    def status(self, paths: Iterable[str] | None = None) -> Status:
        index = self._index()
        head_files = self.head_files()
        want = None if paths is None else {self.relpath(p) for p in paths}
        names = sorted(set(head_files) | set(index.entries))
        st = Status(self.history.head_branch(), self.history.head())
        for p in names:
            if want is not None and p not in want:
                continue
            fs = FileStatus(p, head_files.get(p), index.entries.get(p, {}).get("blob"), None)
            if fs.index is not None:
                try:
                    fs.work = self.working_blob(p, index)
                except LindivcError as e:  # reported per file: the other files still show
                    fs.error = e.reason if isinstance(e, InvalidLindiFile) else str(e)
            st.files.append(fs)
        for u in self.untracked(index):
            if want is None or u in want:
                (st.untracked if is_trackable(u) else st.untrackable).append(u)
        index.save()  # persists the refreshed stat cache
        return st

    @_index_locked
    def add(self, paths: Iterable[str]) -> list[str]:
        """Stage the working files at ``paths`` (canonical form stored as history blobs)."""
        index = self._index()
        added = []
        for p in paths:
            if os.path.isdir(p):  # before relpath: "." is the worktree itself, not outside it
                raise LindivcError(f"{p} is a directory; name the LINDI files in it")
            rel = self.relpath(p)
            ap = self.abspath(rel)
            if not os.path.exists(ap):
                if rel in index.entries:
                    del index.entries[rel]  # staged deletion, like `git add` of a removed file
                    added.append(rel)
                    continue
                raise NoSuchFile(p)
            if os.path.isdir(ap):
                raise LindivcError(f"{p} is a directory; name the LINDI files in it")
            if not lindijson.is_lindi_name(rel):
                raise NotALindiName(p)
            entry = index.entries.setdefault(rel, {})
            blob = self.working_blob(rel, index, write=True)
            entry["blob"] = blob
            added.append(rel)
        index.save()
        return added

    @_index_locked
    def remove(self, paths: Iterable[str], keep_file: bool = False, force: bool = False) -> list[str]:
        """Stop tracking ``paths`` (and delete the working files unless ``keep_file``).

        Like git, a working file whose content is not committed (changed since it was staged,
        or staged but not committed) is not deleted unless ``force``; nothing is removed then.
        """
        index = self._index()
        head_files = self.head_files() if not (keep_file or force) else {}
        out = []
        for p in paths:
            rel = self.relpath(p)
            if rel not in index.entries:
                raise NotTracked(p)
            if not (keep_file or force):
                staged = index.entries[rel].get("blob")
                if self._differs(rel, staged):
                    raise LindivcError(f"{rel} has local modifications; use --cached to keep the file, "
                                       "commit first, or use --force to delete it")
                if head_files.get(rel) != staged and os.path.lexists(self.abspath(rel)):
                    raise LindivcError(f"{rel} has changes staged but not committed; use --cached to keep "
                                       "the file, commit first, or use --force to delete it")
            del index.entries[rel]
            if not keep_file and os.path.exists(self.abspath(rel)):
                os.unlink(self.abspath(rel))
            out.append(rel)
        index.save()
        return out

    @_index_locked
    def commit(self, message: str, all: bool = False, allow_empty: bool = False) -> str:
        """Record the staged files (all tracked changes with ``all``) as a new commit on HEAD."""
        if not message or not message.strip():
            raise LindivcError("empty commit message; give one with -m")
        mergestate.refuse_during_merge(self.lvc, "commit")
        if all:
            changed = [f.path for f in self.status().files if f.unstaged]
            if changed:
                self.add([self.abspath(p) for p in changed])
        index = self._index()
        files = index.blobs()
        parent = self.history.head()
        tree = self.history.write_tree(files)
        if parent is not None and not allow_empty and self.history.commit(parent).tree == tree:
            raise NothingToCommit()
        if parent is None and not files and not allow_empty:
            raise NothingToCommit(initial=True)
        sha = self.history.make_commit(tree, [parent] if parent else [], message, self.author)
        first = message.strip().splitlines()[0]
        self.history.update_head(sha, parent, f"commit{' (initial)' if parent is None else ''}: {first}", self.author)
        return sha

    @_index_locked
    def reset(self) -> None:
        """Make the index that of HEAD (like `git reset`): staged changes become unstaged, working
        files are not touched. Does not read the old index, so it also rebuilds a corrupt one."""
        index = Index(os.path.join(self.lvc, "index.json"), load=False)
        index.entries = {p: {"blob": b} for p, b in self.head_files().items()}
        index.save()

    # checkout --------------------------------------------------------------
    @_index_locked
    def checkout(self, rev: str, paths: Iterable[str] | None = None, force: bool = False) -> str:
        """Make the working files those of ``rev``.

        With ``paths``, only those files are restored (and staged). Without, HEAD moves to
        ``rev`` (a branch name switches branches; anything else detaches HEAD); refused if a
        tracked file has changes that would be lost, or an untracked working file would be
        overwritten by a different one, unless ``force``. Refused while a working file it
        writes is open "r+" (FileLocked).
        """
        sha = self.history.resolve(rev)
        files = self.history.commit_files(sha)
        index = self._index()
        if paths is not None:
            rels = [self.relpath(p) for p in paths]
            for rel in rels:
                if rel not in files:
                    raise PathNotInRevision(rel, rev)
            with self.locked(rels):
                for rel in rels:
                    self.write_working(rel, self.history.read_blob(files[rel]))
                    index.entries[rel] = {"blob": files[rel]}
                index.save()
            return sha
        mergestate.refuse_during_merge(self.lvc, f"check out {rev}")
        if not force:
            st = self.status()
            dirty = [f.path for f in st.files if f.unstaged or f.staged]
            if dirty:
                raise LindivcError(
                    f"checkout would overwrite changes in {', '.join(dirty[:3])}{' ...' if len(dirty) > 3 else ''}; "
                    "commit them or use --force"
                )
            clobbered = [p for p in sorted(files) if p not in index.entries and self._differs(p, files[p])]
            if clobbered:
                raise LindivcError(
                    f"checkout would overwrite untracked working file(s) {', '.join(clobbered[:3])}"
                    f"{' ...' if len(clobbered) > 3 else ''}; move them away, or use --force to overwrite"
                )
        rendered = {p: self.render(self.history.read_blob(b), p) for p, b in files.items()}  # fail before writing
        with self.locked(set(files) | set(index.entries)):
            for old in list(index.entries):
                if old not in files and os.path.exists(self.abspath(old)):
                    os.unlink(self.abspath(old))
            for p, rfs in rendered.items():
                lindijson.write_lindi_json(self.abspath(p), rfs)
            index.entries = {p: {"blob": b} for p, b in files.items()}
            index.save()
        branch = rev.removeprefix("refs/heads/")
        if branch in self.history.branches() and (branch == rev or self.history.ref(rev) is not None):
            self.history.set_head_symbolic(branch)
        else:
            self.history.set_head_detached(sha)
        return sha

    def _differs(self, path: str, blob: str) -> bool:
        """True if a working file exists at ``path`` and its canonical form is not ``blob``."""
        if not os.path.lexists(self.abspath(path)):
            return False
        try:
            return self.working_blob(path) != blob
        except LindivcError:
            return True

    # branches and tags -----------------------------------------------------
    def create_branch(self, name: str, start: str = "HEAD") -> str:
        from .history import validate_ref_name

        validate_ref_name(name)
        sha = self.history.resolve(start)
        if self.history.ref(f"refs/heads/{name}") is not None:
            raise BranchExists(name)
        self.history.check_nesting(name)
        self.history.set_ref(f"refs/heads/{name}", sha, None, f"branch: created from {start}", self.author)
        return sha

    def delete_branch(self, name: str, force: bool = False) -> str:
        """Delete branch ``name``; return the commit it named. Without ``force``, only when HEAD
        or a remote-tracking ref of that branch name reaches it (as ``git branch -d``)."""
        cur = self.history.ref(f"refs/heads/{name}")
        if cur is None:
            raise NoSuchBranch(name)
        if self.history.head_branch() == name:
            raise LindivcError(f"cannot delete the checked-out branch {name!r}")
        if not force:
            keepers = [self.history.head()] + [sha for ref, sha in self.history.refs_under("refs/remotes/").items()
                                               if ref.split("/", 1)[-1] == name]
            if not any(k and self.history.is_ancestor(cur, k) for k in keepers):
                raise BranchNotMerged(name, cur)
        self.history.delete_ref(f"refs/heads/{name}", cur)
        return cur

    # reading files at revisions -------------------------------------------
    def read_at(self, rev: str, path: str) -> bytes:
        """Canonical bytes of ``path`` at ``rev``."""
        files = self.history.commit_files(self.history.resolve(rev))
        rel = path.strip("/")
        if rel not in files:
            raise PathNotInRevision(rel, rev)
        return self.history.read_blob(files[rel])

    # editing -----------------------------------------------------------------
    def open(self, path: str, mode: str = "r"):
        """An h5py-compatible LINDI file for a working file; in "r+" new chunks become objects."""
        from .lindi_io import open_file

        rel = self.relpath(path)
        ap = self.abspath(rel)
        if mode == "r":
            return open_file(ap, "r", read_range=self.locations.read_range_hook())
        return open_file(
            ap, mode, objects=self.objects, chunk_threshold=self.config.chunk_threshold,
            save=lambda rfs: lindijson.write_lindi_json(ap, rfs), lock=self.write_lock(rel),
        )

    def write_lock(self, rel: str):
        """The lock a writer of working file ``rel`` holds (lindi_io.WriteLock, not yet acquired)."""
        from .lindi_io import WriteLock
        from .objects import sha1_bytes

        return WriteLock(os.path.join(self.lvc, "locks", sha1_bytes(rel.encode()) + ".lock"), rel)

    @contextmanager
    def locked(self, paths: Iterable[str]):
        """Hold the write locks of working files ``paths`` (worktree paths) for a block that
        rewrites them; FileLocked, holding none, if one is open "r+" elsewhere."""
        held = []
        try:
            for rel in sorted(set(paths)):
                held.append(self.write_lock(rel).acquire())
            yield
        finally:
            for lk in held:
                lk.release()

