"""Three-way merge of JSON values: a LINDI file's attributes and its top-level fields.

Values are compared as JSON (``1``, ``1.0`` and ``true`` differ); :data:`ABSENT` stands for a
value one version lacks (an attribute, a field), :data:`CLASH` for a value both sides changed
differently. The rules are docs/format.md section 9, "Merging a LINDI file".
"""
from __future__ import annotations

import orjson

ABSENT = object()  # absent (an attribute, a top-level field)
CLASH = object()  # both sides changed a value differently


def three_way(x: object, y: object, z: object) -> object:
    """Base ``x``, ours ``y``, theirs ``z`` -> the merged value, or CLASH."""
    if same_json(y, z):
        return y
    if same_json(x, y):
        return z
    if same_json(x, z):
        return y
    return CLASH


def same_json(a: object, b: object) -> bool:
    """JSON equality (1, 1.0 and true differ), with ABSENT equal only to itself."""
    if a is ABSENT or b is ABSENT:
        return a is b
    return orjson.dumps(a, option=orjson.OPT_SORT_KEYS) == orjson.dumps(b, option=orjson.OPT_SORT_KEYS)


def is_str_list(v: object) -> bool:
    """Whether ``v`` is a list of strings (such as NWB ``colnames``)."""
    return isinstance(v, list) and all(isinstance(s, str) for s in v)


def ordered_union(base: list, ours: list, theirs: list) -> list:
    """Base order less what either side removed, then ours' additions, then theirs'."""
    removed = (set(base) - set(ours)) | (set(base) - set(theirs))
    out = [c for c in base if c not in removed]
    for c in ours + theirs:
        if c not in base and c not in out:
            out.append(c)
    return out


def merge_top(b: dict, o: dict, t: dict) -> dict:
    """The top-level fields (other than refs) merged; never a conflict (docs/format.md section 9)."""
    out: dict = {}
    for f in sorted(set(b) | set(o) | set(t)):
        x, y, z = b.get(f, ABSENT), o.get(f, ABSENT), t.get(f, ABSENT)
        v = three_way(x, y, z)
        if v is CLASH:
            if f == "version" and all(type(w) in (int, float) for w in (y, z)):
                v = max(y, z)
            elif isinstance(y, dict) and isinstance(z, dict):
                xd = x if isinstance(x, dict) else {}
                v = {}
                for key in sorted(set(xd) | set(y) | set(z)):
                    w = three_way(xd.get(key, ABSENT), y.get(key, ABSENT), z.get(key, ABSENT))
                    w = y.get(key, ABSENT) if w is CLASH else w
                    if w is not ABSENT:
                        v[key] = w
            else:
                v = y
        if v is not ABSENT:
            out[f] = v
    return out
