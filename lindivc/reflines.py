"""The ref lines of canonical LINDI bytes, read and edited without parsing the whole file.

Canonical bytes (docs/format.md section 4) hold one ref per line, sorted by key, between
``"refs": {`` and the ``}`` that closes it; a line ends with ``,\\n`` except the last, which ends
with ``\\n``. Compact JSON has no raw newline, so inside the refs every newline ends a line. This
is what lets a file of a million refs be compared and edited by bytes: two versions are cut
where they agree (compared with memcmp, never copied), a key is found by bisection, and only
the lines that differ are ever split or parsed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import orjson

from . import lindijson
from .errors import InvalidLindiFile

_REFS_OPEN = b'\n"refs": {\n'
SEP = b",\n"  # between two ref lines
SMALL = 1 << 16  # windows this small are split into lines instead of being cut further
EMPTY = b'{\n"refs": {\n}\n}\n'  # a canonical file without refs or other fields


@dataclass(frozen=True)
class RefLines:
    """The ref lines of canonical bytes ``data``: they start at ``start``; ``close`` is the
    position of the ``}`` that closes ``refs`` (``close == start`` when there are none).

    A *position* below is the start of a line or ``close``: each line there runs up to the next
    newline, whose own position + 1 is the next position.
    """

    data: bytes
    start: int
    close: int

    @classmethod
    def of(cls, data: bytes) -> "RefLines | None":
        """The ref lines of ``data``, or None if it is not in the canonical layout."""
        i = data.find(_REFS_OPEN)
        if i < 0 or not data.endswith(b"\n}\n"):
            return None
        start = i + len(_REFS_OPEN)
        # the refs close with the last "\n}" before the document's closing "\n}\n": the
        # top-level lines after it are compact JSON, one line each
        end = data.rfind(b"\n}", start - 1, len(data) - 2)
        if end < 0:
            return None
        return cls(data, start, max(start, end + 1))

    @property
    def head(self) -> bytes:
        """The bytes before the first ref line."""
        return self.data[:self.start]

    @property
    def tail(self) -> bytes:
        """The bytes from the ``}`` that closes ``refs`` to the end."""
        return self.data[self.close:]

    def top_level(self, name: str = "<data>") -> dict:
        """The document's fields other than ``refs``."""
        top = lindijson.parse(self.head + self.tail, name, check=False)
        if not isinstance(top, dict):
            raise InvalidLindiFile(name, "top level is not a JSON object")
        top.pop("refs", None)
        return top

    def next_line(self, pos: int) -> int:
        """The position after the line at ``pos``."""
        return self.data.find(b"\n", pos, self.close) + 1

    def line(self, pos: int) -> bytes:
        """The line at ``pos`` without its separator."""
        j = self.next_line(pos) - 1
        return self.data[pos:j if j == self.close - 1 else j - 1]

    def lines(self, lo: int, hi: int) -> list[bytes]:
        """The lines between positions ``lo`` and ``hi``."""
        if hi <= lo:
            return []
        return self.data[lo:hi - 1 if hi == self.close else hi - 2].split(SEP)

    def line_start(self, lo: int, pos: int) -> int:
        """The start of the line that holds byte ``pos`` (``lo`` <= pos < ``close``), ``lo`` a
        position."""
        j = self.data.rfind(b"\n", lo, min(pos, self.close - 1))
        return j + 1 if j >= 0 else lo

    def seek(self, key: str, lo: int | None = None, hi: int | None = None) -> int:
        """The position of the first line between ``lo`` and ``hi`` (default: all) whose key is
        not less than ``key`` (``hi`` if none is)."""
        lo = self.start if lo is None else lo
        hi = self.close if hi is None else hi
        while lo < hi:
            s = self.line_start(lo, (lo + hi) // 2)
            if line_key(self.data, s) < key:
                lo = self.next_line(s)
            else:
                hi = s
        return lo

    def get(self, key: str) -> bytes | None:
        """The line of ``key``, or None."""
        p = self.seek(key)
        if p < self.close and line_key(self.data, p) == key:
            return self.line(p)
        return None


def line_key(data: bytes, pos: int = 0) -> str:
    """The key of the ref line at ``pos`` of ``data``."""
    j = data.find(b'"', pos + 1)
    if data.find(b"\\", pos + 1, j) < 0:
        return data[pos + 1:j].decode()
    while True:  # an escaped key: find the quote that ends it
        n = 0
        while data[j - 1 - n] == 0x5C:
            n += 1
        if n % 2 == 0:
            return orjson.loads(data[pos:j + 1])
        j = data.find(b'"', j + 1)


def line_value(line: bytes) -> object:
    """The parsed value of one ref line."""
    return orjson.loads(b"{" + line + b"}").popitem()[1]


def make_line(key: str, value: object) -> bytes:
    """The canonical ref line of ``key`` and ``value`` (lindijson.dumps' format)."""
    return orjson.dumps(key) + b": " + orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def changed_lines(a: RefLines, b: RefLines) -> tuple[list[bytes], list[bytes]]:
    """The ref lines only ``a`` has and those only ``b`` has (a changed ref is in both lists).

    Work is proportional to what differs: the two files are cut at the key of a line in the
    middle of the part still unexplained, and parts whose bytes are equal are dropped with one
    memcmp; only windows smaller than ``SMALL`` (or of one line) are split into lines.
    """
    only_a: list[bytes] = []
    only_b: list[bytes] = []
    A, mB = a.data, memoryview(b.data)
    todo = [(a.start, a.close, b.start, b.close)]
    while todo:
        a0, a1, b0, b1 = todo.pop()
        if a1 - a0 == b1 - b0 and A.startswith(mB[b0:b1], a0):
            continue  # equal windows end the same way: both at close or both after a ",\n"
        s = a1
        if a1 - a0 > SMALL and b1 - b0 > SMALL:
            s = a.line_start(a0, (a0 + a1) // 2)
            if s == a0:
                s = a.next_line(a0)
        if s >= a1:  # small, or one long line: compare the lines
            x, y = a.lines(a0, a1), b.lines(b0, b1)
            sx, sy = set(x), set(y)
            only_a.extend(ln for ln in x if ln not in sy)
            only_b.extend(ln for ln in y if ln not in sx)
            continue
        p = b.seek(line_key(A, s), b0, b1)
        todo.append((s, a1, p, b1))
        todo.append((a0, s, b0, p))
    return only_a, only_b


def splice(base: RefLines, edits: dict[str, bytes | None], top: dict | None = None) -> bytes:
    """The canonical bytes of ``base`` with the ref of each key in ``edits`` set to that line
    (None: removed); with ``top``, that dict's fields replace the top-level fields of ``base``.

    Edits are placed by bisection: the cost is one copy of the file and a few key reads per edit.
    """
    data = base.data
    mv = memoryview(data)
    if top is None:
        head, tail = mv[:base.start], mv[base.close:]
    else:
        head, tail = lindijson.document_parts({**top, "refs": None})
    pieces: list = [head]

    def keep(lo: int, hi: int) -> None:  # lines of base, each to end with ",\n"
        if hi > lo:
            pieces.extend((mv[lo:hi - 1], SEP) if hi == base.close else (mv[lo:hi],))

    prev = base.start
    for key in sorted(edits):
        p = base.seek(key, prev)
        keep(prev, p)
        prev = p
        if p < base.close and line_key(data, p) == key:
            prev = base.next_line(p)  # replaced or removed
        line = edits[key]
        if line is not None:
            pieces.append(line)
            pieces.append(SEP)
    keep(prev, base.close)
    # every line now ends with ",\n": the last one ends with "\n" alone
    for i in range(len(pieces) - 1, 0, -1):
        if len(pieces[i]):
            pieces[i:i + 1] = [pieces[i][:-2], b"\n"]
            break
    pieces.append(tail)
    return b"".join(pieces)


def lines_by_key(lines: Iterable[bytes]) -> dict[str, bytes]:
    """Each line by its key."""
    return {line_key(ln): ln for ln in lines}
