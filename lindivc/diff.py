"""Differences between versions of LINDI files, in LINDI terms: groups, arrays, attributes, new data.

:func:`diff` compares two revisions, or a revision and the working files; :func:`diff_commit`
is what one commit changed; :func:`diff_rfs` compares two parsed files. Canonical files of a
million refs that differ in a few lines are compared without parsing the identical lines
(:func:`_parse_narrowed`, with :mod:`lindivc.reflines`).
"""
from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Callable, Iterable

from . import lindijson, reflines
from .errors import InvalidLindiFile
from .progress import human_bytes
from .reflines import RefLines

if TYPE_CHECKING:
    from .history import CommitInfo
    from .repo import Repository


@dataclass
class FileDiff:
    """What changed in one file between two versions (either may be absent)."""

    path: str
    status: str  # "added" | "deleted" | "modified" | "unchanged"
    groups_added: list[str] = field(default_factory=list)
    groups_removed: list[str] = field(default_factory=list)
    arrays_added: list[dict] = field(default_factory=list)  # {"name", "dtype", "shape", "chunks"}
    arrays_removed: list[str] = field(default_factory=list)
    arrays_changed: list[dict] = field(default_factory=list)  # {"name", "what": [...], "chunks_changed": n}
    attrs_changed: list[dict] = field(default_factory=list)  # {"name", "added", "removed", "changed"}
    new_objects: int = 0
    new_bytes: int = 0

    def to_json(self) -> dict:
        return asdict(self)

    @property
    def empty(self) -> bool:
        return not (self.groups_added or self.groups_removed or self.arrays_added or self.arrays_removed
                    or self.arrays_changed or self.attrs_changed or self.new_objects)


# the .zarray fields that change what an array holds (diff names them; a merge compares them)
ARRAY_FIELDS = ("shape", "dtype", "chunks", "compressor", "filters", "fill_value")


def split_key(key: str) -> tuple[str, str]:
    """(node path like '/units/spike_times', last part) of a ref key."""
    if "/" in key:
        parent, last = key.rsplit("/", 1)
        return "/" + parent, last
    return "/", key


def _summarize(rfs: dict | None) -> tuple[dict, dict, dict, dict, dict]:
    groups: dict = {}
    arrays: dict = {}
    attrs: dict = {}
    chunks: dict = {}
    objs: dict = {}
    if rfs is None:
        return groups, arrays, attrs, chunks, objs
    for k, v in rfs["refs"].items():
        node, last = split_key(k)
        if last == ".zgroup":
            groups[node] = True
        elif last == ".zarray":
            arrays[node] = v if isinstance(v, dict) else {}
        elif last == ".zattrs":
            attrs[node] = v if isinstance(v, dict) else {}
        elif lindijson.is_chunk_key(k):
            chunks.setdefault(node, {})[last] = v if not isinstance(v, list) else tuple(v)
            cr = lindijson.as_content_ref(v)
            if cr is not None:
                objs[cr.sha1] = max(objs.get(cr.sha1, 0), cr.offset + cr.size)
    return groups, arrays, attrs, chunks, objs


def diff_rfs(path: str, a: dict | None, b: dict | None) -> FileDiff:
    """The LINDI-level difference from ``a`` to ``b`` (canonical reference file systems)."""
    if a is None and b is None:
        return FileDiff(path, "unchanged")
    status = "added" if a is None else "deleted" if b is None else "modified"
    ga, aa, ata, ca, oa = _summarize(a)
    gb, ab, atb, cb, ob = _summarize(b)
    d = FileDiff(path, status)
    d.groups_added = sorted(set(gb) - set(ga))
    d.groups_removed = sorted(set(ga) - set(gb))
    for name in sorted(set(ab) - set(aa)):
        z = ab[name]
        d.arrays_added.append({"name": name, "dtype": z.get("dtype"), "shape": z.get("shape"), "chunks": len(cb.get(name, {}))})
    d.arrays_removed = sorted(set(aa) - set(ab))
    for name in sorted(set(aa) & set(ab)):
        what = [f for f in ARRAY_FIELDS if aa[name].get(f) != ab[name].get(f)]
        c1, c2 = ca.get(name, {}), cb.get(name, {})
        changed = sum(1 for k in set(c1) | set(c2) if c1.get(k) != c2.get(k))
        if what or changed:
            d.arrays_changed.append({"name": name, "what": what, "chunks_changed": changed})
    for name in sorted(set(ata) | set(atb)):
        x, y = ata.get(name, {}), atb.get(name, {})
        if x == y:
            continue
        if (name not in ata and name in d.groups_added + [a["name"] for a in d.arrays_added]) or (
            name not in atb and name in d.groups_removed + d.arrays_removed
        ):
            continue  # attributes of a node added/removed as a whole
        d.attrs_changed.append({
            "name": name,
            "added": sorted(set(y) - set(x)),
            "removed": sorted(set(x) - set(y)),
            "changed": sorted(k for k in set(x) & set(y) if x[k] != y[k]),
        })
    new = set(ob) - set(oa)
    d.new_objects = len(new)
    d.new_bytes = sum(ob[s] for s in new)
    if status == "modified" and d.empty:
        status = "modified" if a != b else "unchanged"
        d.status = status
    return d



# ------------------------------------------------------------------ versions of a repository's files

def diff(repo: Repository, rev_a: str | None = None, rev_b: str | None = None,
         paths: Iterable[str] | None = None, errors: list | None = None) -> list[FileDiff]:
    """LINDI-level diffs: ``rev_a`` (default HEAD) against ``rev_b`` (default: the working files).

    With ``errors`` (a list), a working file that cannot be read is skipped and reported there
    as (path, reason) instead of failing the whole diff.
    """
    a_sha = repo.history.resolve(rev_a or "HEAD") if (rev_a or repo.history.head()) else None
    a_files = repo.history.commit_files(a_sha) if a_sha else {}
    if rev_b is not None:
        b_files = repo.history.commit_files(repo.history.resolve(rev_b))
        b_read: Callable[[str], bytes | None] = lambda p: repo.history.read_blob(b_files[p]) if p in b_files else None
        names = set(a_files) | set(b_files)
    else:
        index = repo._index()
        tracked = set(index.entries)
        names = set(a_files) | tracked
        # a working file whose stat matches the index's cache and whose blob is a's needs no read
        names -= {p for p in tracked if p in a_files and index.entries[p].get("work_blob") == a_files[p]
                  and index.entries[p].get("stat") == repo._stat_key(p)}

        def b_read(p: str) -> bytes | None:
            if p not in tracked or not os.path.exists(repo.abspath(p)):
                return None
            return repo.canonical_bytes_of(p)
    if paths is not None:
        want = {repo.relpath(p) for p in paths}
        names &= want
    out = []
    for p in sorted(names):
        a = repo.history.read_blob(a_files[p]) if p in a_files else None
        try:
            b = b_read(p)
        except InvalidLindiFile as e:
            if errors is None:
                raise
            errors.append((p, e.reason))
            continue
        d = _diff_bytes(p, a, b)
        if d is not None:
            out.append(d)
    return out


def diff_commit(repo: Repository, commit: CommitInfo, paths: Iterable[str] | None = None) -> list[FileDiff]:
    """What ``commit`` changed against its first parent (a root commit: every file it holds as
    added), limited to worktree paths ``paths`` if given."""
    cur = repo.history.tree_files(commit.tree)
    prev = repo.history.commit_files(commit.parents[0]) if commit.parents else {}
    names = {p for p in set(cur) | set(prev) if cur.get(p) != prev.get(p)}
    if paths is not None:
        names &= set(paths)
    out = []
    for p in sorted(names):
        a = repo.history.read_blob(prev[p]) if p in prev else None
        b = repo.history.read_blob(cur[p]) if p in cur else None
        d = _diff_bytes(p, a, b)
        if d is not None:
            out.append(d)
    return out


def _diff_bytes(path: str, a: bytes | None, b: bytes | None) -> FileDiff | None:
    """The diff of two canonical versions of ``path`` (None: absent); None if the bytes are equal."""
    if a == b:
        return None
    if a is not None and b is not None:
        return diff_rfs(path, *_parse_narrowed(a, b, path))
    return diff_rfs(path, _parse_canonical(a, path), _parse_canonical(b, path))


def _parse_canonical(data: bytes | None, name: str) -> dict | None:
    return None if data is None else lindijson.parse(data, name)


# ------------------------------------------------------------------ byte-level narrowing

# a ref line whose key ends in .zarray/.zattrs/.zgroup: in canonical bytes '": ' (with the space)
# follows only a key (in values a quote inside a string is escaped, and compact JSON has no space)
_META_KEY_END = re.compile(rb'\.z(?:array|attrs|group)": ')


def _parse_narrowed(a: bytes, b: bytes, name: str) -> tuple[dict, dict]:
    """Both canonical files parsed with only the refs that can matter to ``diff_rfs``.

    A chunk ref identical on both sides counts for nothing in ``diff_rfs`` unless it names an
    object that a changed ref names too (then it keeps that object from counting as new), or it
    belongs to an array added as a whole (counted in its chunks). Every other identical ref is
    left out, so a small change to a file of a million refs parses a few lines, not the file:
    the lines that differ are found by bytes (:func:`reflines.changed_lines`), and only they
    are split and parsed. Identical metadata lines (.zarray/.zattrs/.zgroup) are kept. Falls
    back to full parses for bytes not in the canonical one-ref-per-line layout.
    """
    ra, rb = RefLines.of(a), RefLines.of(b)
    if ra is None or rb is None:
        return lindijson.parse(a, name), lindijson.parse(b, name)
    la, lb = reflines.changed_lines(ra, rb)
    only_a, only_b = set(la), set(lb)
    del la, lb

    keep = set()

    def keep_identical(pos: int) -> None:  # the line of a holding byte pos, if b has it too
        ln = ra.line(ra.line_start(ra.start, pos))
        if ln not in only_a:
            keep.add(ln)

    for m in _META_KEY_END.finditer(a, ra.start, ra.close):
        keep_identical(m.start())
    changed_shas = {s.encode() for s in lindijson.content_shas(b"\n".join(only_a | only_b))}
    if changed_shas:
        for m in lindijson.CONTENT_SHA_RE.finditer(a, ra.start, ra.close):
            if m.group(1) in changed_shas:
                keep_identical(m.start())

    def parse(x: RefLines, lines: set[bytes]) -> dict:
        body = reflines.SEP.join(sorted(lines)) + b"\n" if lines else b""
        return lindijson.parse(x.head + body + x.tail, name)

    na, nb = parse(ra, only_a | keep), parse(rb, only_b | keep)
    added = {k[: -len(".zarray")] for k in nb["refs"] if k.endswith(".zarray") and k not in na["refs"]}
    if added:  # arrays added as a whole: every chunk of theirs counts
        for x, r in ((a, na), (b, nb)):
            full = lindijson.parse(x, name)["refs"]
            r["refs"].update({k: v for k, v in full.items() if (k.rsplit("/", 1)[0] + "/" if "/" in k else "") in added})
    return na, nb


def format_diff(d: FileDiff) -> list[str]:
    """Human-readable lines for one file's diff."""
    mark = {"added": "A", "deleted": "D", "modified": "M", "unchanged": " "}[d.status]
    lines = [f"{mark} {d.path}"]
    for g in d.groups_added:
        lines.append(f"    + group   {g}")
    for g in d.groups_removed:
        lines.append(f"    - group   {g}")
    for a in d.arrays_added:
        shape = "x".join(str(s) for s in (a["shape"] or [])) or "scalar"
        lines.append(f"    + array   {a['name']}  {a['dtype']} [{shape}], {a['chunks']} chunk(s)")
    for a in d.arrays_removed:
        lines.append(f"    - array   {a}")
    for a in d.arrays_changed:
        parts = list(a["what"]) + ([f"{a['chunks_changed']} chunk(s) rewritten"] if a["chunks_changed"] else [])
        lines.append(f"    ~ array   {a['name']}: {', '.join(parts)}")
    for a in d.attrs_changed:
        parts = [f"+{k}" for k in a["added"]] + [f"-{k}" for k in a["removed"]] + [f"~{k}" for k in a["changed"]]
        lines.append(f"    ~ attrs   {a['name']}: {' '.join(parts)}")
    if d.new_objects:
        lines.append(f"    new chunk data: {human_bytes(d.new_bytes)} in {d.new_objects} object(s)")
    return lines
