"""Three-way merge of one LINDI file, key by key of its reference file system.

``merge_files(base, ours, theirs)`` takes canonical bytes (docs/format.md section 4) and returns
a :class:`MergeResult`: the merged canonical bytes, or the conflicts that stand in the way, in
LINDI terms. The rules are docs/format.md section 9, "Merging a LINDI file", in short: a ref
changed on one side is taken from it; ``.zattrs`` merge per attribute, NWB ``colnames`` as an
ordered union; an array's data (``.zarray`` and chunks) is one unit; a group or array deleted on
one side and changed under it on the other, and a DynamicTable whose merged columns would differ
in length, are conflicts; top-level fields never conflict.

Conflicts are settled by choosing ``ours`` or ``theirs`` for a path or group prefix
(:meth:`MergeResult.resolve`, or ``resolutions=`` for a merge run again from stored choices);
the merged file exists once none is left. Work and memory are proportional to what changed,
plus a copy of the file: unchanged refs are compared as bytes and never parsed.
"""
from __future__ import annotations

import hashlib
from bisect import bisect_left
from dataclasses import dataclass, field
from typing import Iterable

import orjson

from . import lindijson, reflines
from .diff import ARRAY_FIELDS, human_bytes, split_key
from .errors import NoConflictAt, UnresolvedConflicts
from .reflines import RefLines
from .valuemerge import ABSENT, CLASH, is_str_list, merge_top, ordered_union, same_json, three_way

OURS = "ours"
THEIRS = "theirs"
SIDES = (OURS, THEIRS)
_MARKERS = (".zgroup", ".zarray")


@dataclass(frozen=True)
class Conflict:
    """Something both sides changed differently.

    ``kind`` is ``"data"`` (the ``.zarray`` or chunks of the array at ``path``), ``"attribute"``
    (attribute ``attribute`` of the group or array at ``path``), ``"deleted"`` (the group or
    array at ``path`` deleted on one side, changed under it on the other), ``"table"`` (the NWB
    DynamicTable at ``path``, whose columns would differ in length once merged) or ``"key"``
    (another ref, ``path`` being its key). ``ours``/``theirs`` summarize each side's version; ``added``
    says the thing was absent in the base (both sides added it).
    """

    path: str
    kind: str
    ours: str
    theirs: str
    attribute: str | None = None
    added: bool = False

    def describe(self) -> str:
        """One line, e.g. ``both changed /units/quality: shape [40] vs [41]``."""
        both = "both added" if self.added else "both changed"
        if self.kind == "deleted":
            if self.ours == "deleted":
                return f"ours deleted {self.path}; theirs {self.theirs}"
            return f"theirs deleted {self.path}; ours {self.ours}"
        if self.kind == "attribute":
            return f"{both} attribute {self.attribute!r} of {self.path}: {self.ours} vs {self.theirs}"
        if self.kind == "table":
            return f"both changed table {self.path}: {self.ours} vs {self.theirs}; its merged columns would differ in length"
        o, t = self.ours, self.theirs
        word, _, rest = t.partition(" ")
        if self.kind == "data" and word in ARRAY_FIELDS and o.partition(" ")[0] == word and ", " not in o:
            t = rest  # "shape [40] vs [41]"
        return f"{both} {self.path}: {o} vs {t}"

    def covered_by(self, path: str) -> bool:
        """True if choosing a side for ``path`` (a node path or a group prefix) settles this."""
        p = normalize_path(path)
        return p == "/" or self.path == p or self.path.startswith(p + "/")


def normalize_path(path: str) -> str:
    """``path`` as a node path: one leading ``/``, no trailing one (``units/`` -> ``/units``)."""
    return "/" + path.strip("/")


@dataclass(frozen=True)
class _Pending:
    """A conflict and what it covers: the refs it claimed (kinds data/deleted/table/key), or an
    attribute of a ``.zattrs`` key with each side's value (kind attribute)."""

    conflict: Conflict
    keys: tuple = ()
    attrs_key: str | None = None
    ours_value: object = ABSENT
    theirs_value: object = ABSENT


@dataclass(frozen=True)
class _Plan:
    """Everything needed to write the merged file for any choice of sides."""

    sides: tuple  # (ours, theirs): RefLines
    tops: tuple  # (merged, ours', theirs') top-level fields
    finals: dict  # key -> (ours' line, theirs' line), None for absent: every key either changed
    clean: dict  # key -> merged line | None, for the keys no conflict claimed (not attributes)
    attrs: dict  # .zattrs key -> merged attributes (a conflicting one holds ours' value)
    pending: tuple  # of _Pending, sorted by path


@dataclass(frozen=True)
class MergeResult:
    """The outcome of :func:`merge_files`.

    ``merged`` is the merged file (canonical bytes) when no conflict is left, else None;
    ``conflicts`` are those left, sorted by path; ``resolved`` pairs each settled conflict with
    the side taken. :meth:`resolve` gives the result of more choices.
    """

    merged: bytes | None
    conflicts: tuple[Conflict, ...]
    resolved: tuple[tuple[Conflict, str], ...] = ()
    plan: _Plan | None = field(default=None, repr=False, compare=False)
    choices: tuple = field(default=(), repr=False, compare=False)  # per plan.pending: side or None

    @property
    def clean(self) -> bool:
        """True if the merge is complete (``merged`` holds the file)."""
        return self.merged is not None

    def resolve(self, path: str, side: str) -> "MergeResult":
        """This merge with every conflict at or under ``path`` settled by taking ``side``
        (``"ours"`` or ``"theirs"``; a later choice for a path overrides an earlier one).

        Raises NoConflictAt when ``path`` covers no conflict, ValueError for another side.
        """
        return _result(self.plan, _choose(self.plan, self.choices, path, side))

    def require(self, name: str = "<file>") -> bytes:
        """The merged bytes; UnresolvedConflicts (naming ``name``) while conflicts remain."""
        if self.merged is None:
            raise UnresolvedConflicts(name, list(self.conflicts))
        return self.merged


def merge_files(base: bytes | None, ours: bytes, theirs: bytes, *, name: str = "<file>",
                resolutions: Iterable[tuple[str, str]] = ()) -> MergeResult:
    """Merge ``ours`` and ``theirs``, two versions of one LINDI file, against ``base`` (their
    common ancestor's version; None when both sides added the file).

    Inputs are canonical bytes (as committed); other layouts are accepted but parsed in full.
    ``resolutions`` are (path, side) choices applied in order, as :meth:`MergeResult.resolve`.
    Raises InvalidLindiFile for bytes that are not a LINDI file, NoConflictAt for a resolution
    that covers no conflict.
    """
    if ours == theirs or base == theirs or (base is not None and base == ours):
        for path, side in resolutions:
            _choose(None, (), path, side)  # raises: there is no conflict
        return MergeResult(theirs if base == ours and ours != theirs else ours, ())
    b = _ref_lines(reflines.EMPTY if base is None else base, name)
    o = _ref_lines(ours, name)
    t = _ref_lines(theirs, name)
    ob, oo = reflines.changed_lines(b, o)
    tb, tt = reflines.changed_lines(b, t)
    base_lines = reflines.lines_by_key(ob)
    base_lines.update(reflines.lines_by_key(tb))
    co = {**dict.fromkeys(reflines.lines_by_key(ob)), **reflines.lines_by_key(oo)}
    ct = {**dict.fromkeys(reflines.lines_by_key(tb)), **reflines.lines_by_key(tt)}
    del ob, oo, tb, tt
    top_o, top_t = o.top_level(name), t.top_level(name)
    tops = (merge_top(b.top_level(name), top_o, top_t), top_o, top_t)
    plan = _Merger(base_lines, co, ct).plan((o, t), tops)
    choices: tuple = (None,) * len(plan.pending)
    for path, side in resolutions:
        choices = _choose(plan, choices, path, side)
    return _result(plan, choices)


def _ref_lines(data: bytes, name: str) -> RefLines:
    """The ref lines of ``data``, brought to the canonical layout (templates expanded) if it is
    not in it."""
    rl = RefLines.of(data)
    if rl is not None and "templates" not in rl.top_level(name):
        return rl
    rfs = lindijson.parse(data, name)
    lindijson.expand_templates(rfs)
    return RefLines.of(lindijson.dumps(rfs))


class _Merger:
    """The three-way rules over the refs either side changed (``co``/``ct``: key -> line, None
    for deleted; ``base_lines``: the base's line of every such key it had)."""

    def __init__(self, base_lines: dict, co: dict, ct: dict) -> None:
        self.base = base_lines
        self.co = co
        self.ct = ct
        self.keys = sorted(set(co) | set(ct))
        self.claimed: set[str] = set()
        self.pending: list[_Pending] = []
        self.attrs: dict[str, dict] = {}

    def ours(self, k: str) -> bytes | None:
        return self.co[k] if k in self.co else self.base.get(k)

    def theirs(self, k: str) -> bytes | None:
        return self.ct[k] if k in self.ct else self.base.get(k)

    def differ(self, k: str) -> bool:
        return self.ours(k) != self.theirs(k)

    def plan(self, sides: tuple, tops: tuple) -> _Plan:
        self._deleted_nodes()
        self._array_data()
        clean: dict = {}
        for k in self.keys:
            if k in self.claimed:
                continue
            if k in self.co and k in self.ct and self.co[k] != self.ct[k]:
                if _node_and_last(k)[1] == ".zattrs" and self._attributes(k):
                    continue
                self._claim(Conflict("/" + k, "key", _value_summary(self.co[k]), _value_summary(self.ct[k]),
                                     added=k not in self.base), [k])
            else:
                clean[k] = self.co[k] if k in self.co else self.ct[k]
        self._tables(*sides, clean)
        pending = tuple(sorted(self.pending, key=lambda p: (p.conflict.path, p.conflict.attribute or "")))
        finals = {k: (self.ours(k), self.theirs(k)) for k in self.keys}
        return _Plan(sides, tops, finals, clean, self.attrs, pending)

    def _claim(self, conflict: Conflict, keys: list[str]) -> None:
        self.claimed.update(keys)
        self.pending.append(_Pending(conflict, tuple(keys)))

    def _under(self, node: str) -> list[str]:
        """The changed keys at or below node key prefix ``node`` ("" is the root)."""
        if not node:
            return list(self.keys)
        lo = bisect_left(self.keys, node + "/")
        hi = bisect_left(self.keys, node + "0")  # "0" follows "/"
        return self.keys[lo:hi]

    def _deleted_nodes(self) -> None:
        """A group or array deleted on one side, with anything under it different on the other."""
        deleted = sorted({_node_and_last(k)[0] for k in self.keys if _node_and_last(k)[1] in _MARKERS
                          and k in self.base and ((k in self.co and self.co[k] is None)
                                                  or (k in self.ct and self.ct[k] is None))})
        top: list[str] = []
        for n in deleted:
            if not any(m == "" or n.startswith(m + "/") for m in top):
                top.append(n)
        for n in top:
            under = self._under(n)
            keeping = [side for side in (self.co, self.ct) if not self._deletes(n, side)]
            # a conflict: the side that kept the node changed something under it, or both
            # changed the same thing differently
            diff = [k for k in under if self.differ(k) and (any(k in side for side in keeping)
                                                            or (k in self.co and k in self.ct))]
            if not diff:
                continue
            summaries = ["deleted" if self._deletes(n, side) else self._changed(side, diff) for side in (self.co, self.ct)]
            self._claim(Conflict(split_key(n + "/x")[0], "deleted", *summaries), under)

    def _deletes(self, node: str, side: dict) -> bool:
        """True if ``side`` deleted the group or array ``node``."""
        return any(side.get(f"{node}/{m}".lstrip("/"), b"") is None for m in _MARKERS)

    def _changed(self, side: dict, diff: list[str]) -> str:
        mine = [k for k in diff if k in side]
        first = "/" + (mine or diff)[0]
        return f"changed {first}" + (f" and {len(mine) - 1} more" if len(mine) > 1 else "")

    def _array_data(self) -> None:
        """Both sides changed the data (.zarray, chunks) of one array, differently."""
        by_node: dict[str, list[str]] = {}
        for k in self.keys:
            node, last = _node_and_last(k)
            if k not in self.claimed and (last == ".zarray" or lindijson.is_chunk_key(k)):
                by_node.setdefault(node, []).append(k)
        for node, keys in by_node.items():
            if not (any(k in self.co for k in keys) and any(k in self.ct for k in keys)):
                continue
            diff = [k for k in keys if self.differ(k)]
            if not diff:
                continue
            zkey = (node + "/.zarray").lstrip("/")
            o, t = self._data_summaries(zkey, diff)
            added = zkey not in self.base and (zkey in self.co or zkey in self.ct)
            self._claim(Conflict(split_key(zkey)[0], "data", o, t, added=added), keys)

    def _data_summaries(self, zkey: str, diff: list[str]) -> tuple[str, str]:
        zo, zt = (_parsed(f(zkey)) for f in (self.ours, self.theirs))
        if isinstance(zo, dict) and isinstance(zt, dict):
            fields = [f for f in ARRAY_FIELDS if not same_json(zo.get(f, ABSENT), zt.get(f, ABSENT))]
            if fields:
                return tuple(", ".join(f"{f} {_short(z.get(f))}" for f in fields) for z in (zo, zt))
        chunks = [k for k in diff if k != zkey]
        if not chunks:
            return _value_summary(self.ours(zkey)), _value_summary(self.theirs(zkey))
        first = chunks[0]
        more = f" (+{len(chunks) - 1} more chunk(s))" if len(chunks) > 1 else ""
        label = "chunk " + first.rsplit("/", 1)[-1]
        return (f"{label}: {_value_summary(self.ours(first))}{more}",
                f"{label}: {_value_summary(self.theirs(first))}{more}")

    def _tables(self, o: RefLines, t: RefLines, clean: dict) -> None:
        """An NWB DynamicTable that both sides changed, otherwise without conflict, whose merged
        columns would differ in length (rows added on one side, a column on the other): a
        conflict over the whole table, its clean refs and merged attributes withdrawn."""
        def near(side: dict) -> set[str]:  # the nodes of keys, and their parents
            out = set()
            for k in side:
                n = _node_and_last(k)[0]
                out.update((n, _node_and_last(n)[0]))
            return out

        def merged(k: str) -> object:
            if k in self.attrs:
                return self.attrs[k]
            return _parsed(clean[k] if k in clean else o.get(k))

        def side(c: dict, lines: RefLines):
            return lambda k: _parsed(c[k] if k in c else lines.get(k))

        busy = self.claimed | {p.attrs_key for p in self.pending}
        for table in sorted(near(self.co) & near(self.ct)):
            under = self._under(table)
            pre = table + "/" if table else ""
            attrs = merged(pre + ".zattrs")
            cols = attrs.get("colnames") if isinstance(attrs, dict) else None
            if not is_str_list(cols) or busy.intersection(under):
                continue
            if len({n for n in (_rows(merged, pre, c) for c in ["id", *cols]) if n is not None}) <= 1:
                continue
            summaries = []
            for c, lines in ((self.co, o), (self.ct, t)):
                touched = sorted({k[len(pre):].split("/", 1)[0] for k in under if k in c and "/" in k[len(pre):]})
                summaries.append(f"{_rows(side(c, lines), pre, 'id')} rows"
                                 + (f", changed {', '.join(touched)}" if touched else ""))
            self._claim(Conflict(split_key(pre + ".zattrs")[0], "table", *summaries), under)
            for k in under:
                clean.pop(k, None)
                self.attrs.pop(k, None)

    def _attributes(self, k: str) -> bool:
        """Merge the attributes ``.zattrs`` key ``k`` per name; False if they are not both
        objects (then the key is a plain conflict)."""
        vb = _parsed(self.base.get(k)) if k in self.base else {}
        vo, vt = _parsed(self.co[k]), _parsed(self.ct[k])
        if not all(isinstance(v, dict) for v in (vb, vo, vt)):
            return False
        path = split_key(k)[0]
        merged: dict = {}
        for name in sorted(set(vb) | set(vo) | set(vt)):
            x, y, z = vb.get(name, ABSENT), vo.get(name, ABSENT), vt.get(name, ABSENT)
            v = three_way(x, y, z)
            if v is CLASH:
                if name == "colnames" and all(is_str_list(w) for w in (y, z)) and (x is ABSENT or is_str_list(x)):
                    v = ordered_union([] if x is ABSENT else x, y, z)
                else:
                    c = Conflict(path, "attribute", _attr_summary(y), _attr_summary(z), attribute=name,
                                 added=x is ABSENT)
                    self.pending.append(_Pending(c, (), k, y, z))
                    v = y
            if v is not ABSENT:
                merged[name] = v
        self.attrs[k] = merged
        return True


def _choose(plan: _Plan | None, choices: tuple, path: str, side: str) -> tuple:
    """``choices`` with ``side`` taken for every conflict of ``plan`` at or under ``path``."""
    if side not in SIDES:
        raise ValueError(f"side must be 'ours' or 'theirs', not {side!r}")
    pending = plan.pending if plan is not None else ()
    hit = [i for i, p in enumerate(pending) if p.conflict.covered_by(path)]
    if not hit:
        raise NoConflictAt(normalize_path(path), [p.conflict.path for p, c in zip(pending, choices) if c is None])
    out = list(choices)
    for i in hit:
        out[i] = side
    return tuple(out)


def _result(plan: _Plan, choices: tuple) -> MergeResult:
    open_ = tuple(p.conflict for p, c in zip(plan.pending, choices) if c is None)
    done = tuple((p.conflict, c) for p, c in zip(plan.pending, choices) if c is not None)
    merged = None if open_ else _assemble(plan, choices)
    return MergeResult(merged, open_, done, plan, choices)


def _assemble(plan: _Plan, choices: tuple) -> bytes:
    """The merged file for ``choices``: the refs that differ from one side spliced into the
    other, whichever needs fewer (a side that rewrote a large array is taken as the start)."""
    final = dict(plan.clean)
    attrs = {k: dict(v) for k, v in plan.attrs.items()}
    for p, side in zip(plan.pending, choices):
        if p.attrs_key is not None:
            v = p.ours_value if side == OURS else p.theirs_value
            if v is ABSENT:
                attrs[p.attrs_key].pop(p.conflict.attribute, None)
            else:
                attrs[p.attrs_key][p.conflict.attribute] = v
        else:
            i = SIDES.index(side)
            final.update((k, plan.finals[k][i]) for k in p.keys)
    for k, a in attrs.items():
        final[k] = reflines.make_line(k, a)
    onto = [{k: v for k, v in final.items() if v != plan.finals[k][i]} for i in (0, 1)]
    i = 1 if len(onto[1]) < len(onto[0]) else 0
    top = plan.tops[0]
    return reflines.splice(plan.sides[i], onto[i], None if same_json(top, plan.tops[1 + i]) else top)


def _node_and_last(key: str) -> tuple[str, str]:
    """(node key prefix, last part): ``units/acg/0`` -> (``units/acg``, ``0``)."""
    node, _, last = key.rpartition("/")
    return node, last


def _rows(value_of, prefix: str, column: str) -> int | None:
    """The number of rows column ``column`` of the table at key ``prefix`` gives (its outermost
    ``_index`` array's length for a ragged column), per ``value_of(key)``; None if unknown."""
    for name in (f"{column}_index_index", f"{column}_index", column):
        z = value_of(f"{prefix}{name}/.zarray")
        if isinstance(z, dict) and isinstance(z.get("shape"), list) and z["shape"]:
            return z["shape"][0]
    return None


def _parsed(line: bytes | None) -> object:
    return None if line is None else reflines.line_value(line)


# ---------------------------------------------------------------- summaries for conflict messages

def _short(v: object, limit: int = 60) -> str:
    s = orjson.dumps(v, option=orjson.OPT_SORT_KEYS).decode()
    return s if len(s) <= limit else s[:limit - 3] + "..."


def _attr_summary(v: object) -> str:
    return "absent" if v is ABSENT else _short(v)


def _value_summary(line: bytes | None) -> str:
    """A ref value in a few words: ``absent``, ``sha1:1a2b3c4d (24 B)``, ``inline 24 B (#5e6f7a8b)``."""
    if line is None:
        return "absent"
    v = reflines.line_value(line)
    cr = lindijson.as_content_ref(v)
    if cr is not None:
        return f"sha1:{cr.sha1[:8]} ({human_bytes(cr.size)})"
    if isinstance(v, list):
        url = v[0] if len(v[0]) <= 40 else "..." + v[0][-37:]
        return f"{url} @{v[1]} ({human_bytes(v[2])})"
    if isinstance(v, str):
        n = (len(v) - 7) * 3 // 4 - v[-2:].count("=") if v.startswith("base64:") else len(v)
        return f"inline {human_bytes(n)} (#{hashlib.sha1(v.encode()).hexdigest()[:8]})"
    return _short(v)
