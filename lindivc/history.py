"""History: a bare git repository written with dulwich (docs/format.md section 2).

A commit's tree holds the tracked LINDI files in canonical form at their paths. Branches and
tags are git refs; every ref update here is compare-and-swap.
"""
from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

from dulwich.objects import Blob, Commit, Tag, Tree
from dulwich.repo import Repo

from . import lindijson
from .errors import LindivcError, RefConflict, UnknownRevision

_REV_SUFFIX = re.compile(r"^(.*?)((?:[~^]\d*)+)$")
_NAME_RE = re.compile(r"^(?!.*\.\.)(?!/)(?!.*//)(?!.*\.lock$)[A-Za-z0-9._/-]+(?<!/)$")


_FAST_ZLIB_FROM = 1 << 20  # blobs this large are written with zlib level 1 (still plain git)


def _b(s: str) -> bytes:
    return s.encode()


@dataclass(frozen=True)
class CommitInfo:
    """One commit as the user sees it."""

    sha: str
    parents: tuple[str, ...]
    tree: str
    author: str
    time: int
    tz: int
    message: str

    @classmethod
    def of(cls, c: Commit) -> "CommitInfo":
        """The CommitInfo of a dulwich Commit."""
        return cls(
            sha=c.id.decode(),
            parents=tuple(p.decode() for p in c.parents),
            tree=c.tree.decode(),
            author=c.author.decode(errors="replace"),
            time=c.author_time,
            tz=c.author_timezone,
            message=c.message.decode(errors="replace"),
        )

    @property
    def summary(self) -> str:
        return self.message.strip().splitlines()[0] if self.message.strip() else ""


def validate_ref_name(name: str, what: str = "branch") -> str:
    """``name`` if git would accept it as a branch or tag name (within lindivc's alphabet)."""
    if name in ("HEAD", "FETCH_HEAD", "ORIG_HEAD", "MERGE_HEAD") or name.startswith("refs/"):
        raise LindivcError(f"invalid {what} name: {name!r} is reserved")
    if (not name or not _NAME_RE.match(name) or name.startswith("-") or name.endswith(".")
            or any(part.startswith(".") or part.endswith(".lock") for part in name.split("/"))):
        raise LindivcError(f"invalid {what} name: {name!r} (use letters, digits, . _ - and /; no '..', "
                           "no part starting with '.' or ending in '.lock', no leading '-')")
    return name


class History:
    """The bare git repository of a lindivc repository."""

    def __init__(self, git_dir: str) -> None:
        self.git_dir = git_dir
        self.repo = Repo(git_dir)

    @classmethod
    def init(cls, git_dir: str, branch: str = "main") -> "History":
        r = Repo.init_bare(git_dir, mkdir=True, default_branch=_b(branch))
        cfg = r.get_config()
        cfg.set((b"core",), b"logallrefupdates", b"true")
        cfg.write_to_path()
        r.close()
        return cls(git_dir)

    @staticmethod
    def init_if_missing(git_dir: str) -> None:
        """Create a bare repository at ``git_dir`` (and its parents) unless one is there: a
        mirror of a zone's history, filled by :func:`lindivc.gitsync.download_history`."""
        if not os.path.isdir(os.path.join(git_dir, "objects")):
            os.makedirs(git_dir, exist_ok=True)
            Repo.init_bare(git_dir).close()

    def close(self) -> None:
        self.repo.close()

    # objects ---------------------------------------------------------------
    def write_blob(self, data: bytes) -> str:
        b = Blob.from_string(data)
        store = self.repo.object_store
        if len(data) < _FAST_ZLIB_FROM:
            store.add_object(b)
        else:  # a large canonical file: zlib level 1 is ~2.5x faster than the default, ~10% larger
            level = store.loose_compression_level
            store.loose_compression_level = 1
            try:
                store.add_object(b)
            finally:
                store.loose_compression_level = level
        return b.id.decode()

    def read_blob(self, sha: str) -> bytes:
        try:
            obj = self.repo.object_store[_b(sha)]
        except KeyError:
            raise LindivcError(f"history object {sha} is missing") from None
        return obj.as_raw_string()

    def has(self, sha: str) -> bool:
        return _b(sha) in self.repo.object_store

    def write_tree(self, files: dict[str, str]) -> str:
        """A tree for ``files`` (path -> blob sha); returns the root tree sha."""
        root: dict = {}
        for path, blob in files.items():
            node = root
            parts = path.split("/")
            for p in parts[:-1]:
                node = node.setdefault(p, {})
            node[parts[-1]] = blob

        def build(node: dict) -> bytes:
            t = Tree()
            for name, v in node.items():
                if isinstance(v, dict):
                    t.add(_b(name), 0o040000, build(v))
                else:
                    t.add(_b(name), 0o100644, _b(v))
            self.repo.object_store.add_object(t)
            return t.id

        return build(root).decode()

    def tree_files(self, tree_sha: str) -> dict[str, str]:
        """Every file of a tree: path -> blob sha."""
        out: dict[str, str] = {}

        def walk(sha: bytes, prefix: str) -> None:
            t = self.repo.object_store[sha]
            for entry in t.items():
                name = entry.path.decode()
                if entry.mode & 0o040000 and not entry.mode & 0o100000:
                    walk(entry.sha, prefix + name + "/")
                else:
                    out[prefix + name] = entry.sha.decode()

        walk(_b(tree_sha), "")
        return out

    def commit_files(self, rev: str) -> dict[str, str]:
        return self.tree_files(self.commit(rev).tree)

    def make_commit(self, tree: str, parents: list[str], message: str, author: str, when: int | None = None) -> str:
        c = Commit()
        c.tree = _b(tree)
        c.parents = [_b(p) for p in parents]
        c.author = c.committer = _b(author)
        when = int(time.time()) if when is None else when
        tz = -time.timezone if not time.localtime(when).tm_isdst else -time.altzone
        c.author_time = c.commit_time = when
        c.author_timezone = c.commit_timezone = tz
        c.encoding = b"UTF-8"
        c.message = _b(message if message.endswith("\n") else message + "\n")
        self.repo.object_store.add_object(c)
        return c.id.decode()

    def commit(self, rev: str) -> CommitInfo:
        return CommitInfo.of(self.repo.object_store[_b(self.resolve(rev))])

    # refs ------------------------------------------------------------------
    def head_branch(self) -> str | None:
        """The branch HEAD points at, or None when detached."""
        names, _ = self.repo.refs.follow(b"HEAD")
        if len(names) > 1 and names[-1].startswith(b"refs/heads/"):
            return names[-1][len(b"refs/heads/"):].decode()
        return None

    def head(self) -> str | None:
        """The commit HEAD points at, or None in a repository with no commits."""
        try:
            return self.repo.refs[b"HEAD"].decode()
        except KeyError:
            return None

    def ref(self, name: str) -> str | None:
        try:
            return self.repo.refs[_b(name)].decode()
        except KeyError:
            return None

    def set_ref(self, name: str, new: str, expected: str | None, message: str | None,
                author: str = "lindivc <lindivc@localhost>") -> None:
        """Compare-and-swap ``name`` from ``expected`` (None: must not exist) to ``new``; RefConflict
        if it holds another value. ``message`` None writes no reflog entry (remote-tracking refs)."""
        refs = self.repo.refs
        kw = dict(committer=_b(author), message=_b(message)) if message is not None else {}
        if expected is None:
            ok = refs.add_if_new(_b(name), _b(new), **kw)
        else:
            ok = refs.set_if_equals(_b(name), _b(expected), _b(new), **kw)
        if not ok:
            raise RefConflict(name, expected, self.ref(name))

    def delete_ref(self, name: str, expected: str | None) -> None:
        if not self.repo.refs.remove_if_equals(_b(name), _b(expected) if expected else None):
            raise RefConflict(name, expected, self.ref(name))

    def update_head(self, new: str, expected: str | None, message: str, author: str) -> None:
        """Advance what HEAD points at (its branch, or HEAD itself when detached)."""
        branch = self.head_branch()
        if branch is not None:
            self.set_ref(f"refs/heads/{branch}", new, expected, message, author)
        elif self.ref("HEAD") is None and self.repo.refs.read_ref(b"HEAD").startswith(b"ref: "):
            target = self.repo.refs.read_ref(b"HEAD")[5:].strip().decode()
            self.set_ref(target, new, expected, message, author)
        else:
            self.set_ref("HEAD", new, expected, message, author)

    def set_head_symbolic(self, branch: str) -> None:
        self.repo.refs.set_symbolic_ref(b"HEAD", _b(f"refs/heads/{branch}"))

    def set_head_detached(self, sha: str) -> None:
        self.repo.refs.remove_if_equals(b"HEAD", None)
        self.repo.refs[b"HEAD"] = _b(sha)

    def unborn_branch(self) -> str | None:
        raw = self.repo.refs.read_ref(b"HEAD")
        if raw and raw.startswith(b"ref: refs/heads/"):
            return raw[len(b"ref: refs/heads/"):].strip().decode()
        return None

    def refs_under(self, prefix: str) -> dict[str, str]:
        out = {}
        for k, v in self.repo.refs.as_dict(_b(prefix)).items():
            out[k.decode()] = v.decode()
        return out

    def branches(self) -> dict[str, str]:
        return self.refs_under("refs/heads/")

    def tags(self) -> dict[str, str]:
        return {k: self._peel(v) for k, v in self.refs_under("refs/tags/").items()}

    def all_refs(self) -> dict[str, str]:
        return {k.decode(): self._peel(v.decode()) for k, v in self.repo.refs.as_dict().items() if k != b"HEAD"}

    def _peel(self, sha: str) -> str:
        obj = self.repo.object_store[_b(sha)]
        while isinstance(obj, Tag):
            obj = self.repo.object_store[obj.object[1]]
        return obj.id.decode()

    def check_nesting(self, name: str, what: str = "branch") -> None:
        """Refuse a branch (tag) ``name`` that an existing one contains or is contained in:
        refs are files, so feature/x and feature/x/y cannot both exist."""
        prefix = "refs/heads/" if what == "branch" else "refs/tags/"
        for other in self.refs_under(prefix):
            if other.startswith(name + "/") or name.startswith(other + "/"):
                raise LindivcError(f"cannot create {what} {name!r}: a {what} {other} exists; names cannot nest")

    def create_tag(self, name: str, target: str, message: str | None, author: str) -> None:
        validate_ref_name(name, "tag")
        self.check_nesting(name, "tag")
        sha = self.resolve(target)
        if message:
            t = Tag()
            t.tagger = _b(author)
            t.message = _b(message + "\n")
            t.name = _b(name)
            t.object = (Commit, _b(sha))
            t.tag_time = int(time.time())
            t.tag_timezone = 0
            self.repo.object_store.add_object(t)
            sha = t.id.decode()
        self.set_ref(f"refs/tags/{name}", sha, None, f"tag: {name}", author)

    # revisions -------------------------------------------------------------
    def resolve(self, rev: str) -> str:
        """The commit sha for ``rev``: HEAD, a branch, a tag, a remote-tracking branch, a full or
        abbreviated sha (4+ hex), each optionally followed by ``~N`` / ``^``."""
        if not rev:
            raise UnknownRevision(rev)
        m = _REV_SUFFIX.match(rev)
        base, suffix = (m.group(1), m.group(2)) if m else (rev, "")
        sha = self._resolve_base(base)
        if sha is None:
            raise UnknownRevision(rev)
        for op, num in re.findall(r"([~^])(\d*)", suffix):
            n = int(num) if num else 1
            if op == "~":
                for _ in range(n):
                    sha = self._parent(sha, 0, rev)
            else:
                sha = self._parent(sha, n - 1, rev) if n > 0 else sha
        return sha

    def _parent(self, sha: str, idx: int, rev: str) -> str:
        c = self.repo.object_store[_b(sha)]
        if len(c.parents) <= idx:
            raise UnknownRevision(rev)
        return c.parents[idx].decode()

    def _resolve_base(self, base: str) -> str | None:
        refs = self.repo.refs
        for cand in (base, f"refs/heads/{base}", f"refs/tags/{base}", f"refs/remotes/{base}"):
            try:
                if cand == base and not (cand == "HEAD" or cand.startswith("refs/")):
                    continue
                v = refs[_b(cand)]
                return self._peel(v.decode())
            except KeyError:
                continue
        if re.fullmatch(r"[0-9a-fA-F]{4,40}", base):
            base = base.lower()
            if len(base) == 40:
                if _b(base) in self.repo.object_store and isinstance(self.repo.object_store[_b(base)], (Commit, Tag)):
                    return self._peel(base)
                return None
            # every commit or tag in the object store, reachable or not (like git's short names)
            store = self.repo.object_store
            matches = sorted({self._peel(sha.decode()) for sha in store.iter_prefix(_b(base))
                              if isinstance(store[sha], (Commit, Tag))})
            if len(matches) == 1:
                return matches[0]
            if len(matches) > 1:
                raise LindivcError(f"ambiguous revision {base}: {len(matches)} commits match")
        return None

    def walk(self, heads: list[str], exclude: list[str] = (), max_count: int | None = None) -> Iterator[CommitInfo]:
        """Commits reachable from ``heads`` and not from ``exclude``, newest first."""
        if not heads:
            return
        if not exclude:
            yield from self._walk_by_date([_b(h) for h in heads], max_count)
            return
        walker = self.repo.get_walker(
            include=[_b(h) for h in heads], exclude=[_b(e) for e in exclude] or None, max_entries=max_count
        )
        for entry in walker:
            c = entry.commit
            yield CommitInfo.of(c)

    def _load_commit(self, sha: bytes) -> Commit:
        # A loose commit is read straight from its file: dulwich looks in the packs first and
        # rescans the pack directory on every miss, which made `log` of 10,000 loose commits slow.
        try:
            c = Commit.from_path(os.path.join(self.git_dir, "objects", sha[:2].decode(), sha[2:].decode()))
        except FileNotFoundError:
            c = self.repo.object_store[sha]
        if not isinstance(c, Commit):
            raise LindivcError(f"{sha.decode()} is a {c.type_name.decode()}, not a commit")
        return c

    def _walk_by_date(self, heads: list[bytes], max_count: int | None) -> Iterator[CommitInfo]:
        """Every commit reachable from ``heads``, newest commit time first (ties: first seen)."""
        import heapq
        import itertools

        seq = itertools.count()
        heads = list(dict.fromkeys(heads))  # two refs naming one commit: it is walked once
        seen = set(heads)
        queue = []
        for h in heads:
            c = self._load_commit(h)
            heapq.heappush(queue, (-c.commit_time, next(seq), c))
        n = 0
        while queue and (max_count is None or n < max_count):
            _, _, c = heapq.heappop(queue)
            n += 1
            yield CommitInfo.of(c)
            for p in c.parents:
                if p not in seen:
                    seen.add(p)
                    pc = self._load_commit(p)
                    heapq.heappush(queue, (-pc.commit_time, next(seq), pc))

    def referenced_chunks(self, commits: Iterable[CommitInfo],
                          on_unreadable: Callable[[CommitInfo, str, Exception], None] | None = None) -> set[str]:
        """Content sha1s that the files of ``commits`` reference; each distinct file is read once.

        A tree or file that cannot be read raises, unless ``on_unreadable(commit, sha, error)`` is
        given, which is then told (``sha`` is the commit's tree when its tree cannot be read) and
        the tree or file skipped.
        """
        seen: set[str] = set()
        chunks: set[str] = set()
        for c in commits:
            try:
                files = self.tree_files(c.tree)
            except KeyError as e:
                if on_unreadable is None:
                    raise
                on_unreadable(c, c.tree, e)
                continue
            for blob in files.values():
                if blob in seen:
                    continue
                seen.add(blob)
                try:
                    chunks |= lindijson.content_shas(self.read_blob(blob))
                except (KeyError, LindivcError) as e:
                    if on_unreadable is None:
                        raise
                    on_unreadable(c, blob, e)
        return chunks

    def reachable_chunks(self, heads: Iterable[str], exclude: Iterable[str] = ()) -> tuple[set[str], set[str]]:
        """(commits reachable from ``heads`` and not from ``exclude``, chunks their files reference)."""
        commits: list[CommitInfo] = list(self.walk(list(heads), list(exclude)))
        return {c.sha for c in commits}, self.referenced_chunks(commits)

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        if ancestor == descendant:
            return True
        for c in self.walk([descendant]):
            if c.sha == ancestor:
                return True
        return False

    def reflog_shas(self, since: float) -> set[str]:
        """Commits named by reflog entries newer than ``since`` (epoch seconds)."""
        from dulwich.reflog import read_reflog

        out: set[str] = set()
        logs = os.path.join(self.git_dir, "logs")
        for dirpath, _, names in os.walk(logs):
            for n in names:
                with open(os.path.join(dirpath, n), "rb") as f:
                    for e in read_reflog(f):
                        if e.timestamp >= since:
                            for s in (e.old_sha, e.new_sha):
                                if s and s != b"0" * 40:
                                    out.add(s.decode())
        return out
