"""Differences between two LINDI files in LINDI terms: groups, arrays, attributes, new data."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from . import lindijson
from .progress import human_bytes


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
