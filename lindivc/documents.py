"""Typed, validated documents for content that another user wrote.

In a shared cloud, pins, borrow records, journal entries and published LINDI files of other
users are untrusted input (DESIGN.md section 6, docs/format.md section 6.3). Each kind has one
parse function here that takes the raw bytes (or a binary stream), refuses anything over a size
limit without reading past it, and returns a frozen dataclass; code past it never sees raw JSON.
Every parse function raises only :class:`~lindivc.errors.InvalidDocument` (``key``, ``reason``),
whatever the input: bytes that are not UTF-8, JSON of any shape, huge numbers, deep nesting.

API (everything a caller needs):

    parse_pin(data, key="", max_bytes=MAX_PIN_BYTES) -> Pin
    parse_borrow_record(data, key="", max_bytes=MAX_BORROW_BYTES) -> BorrowRecord
    parse_journal_entry(data, key="", max_bytes=MAX_JOURNAL_BYTES) -> JournalEntry
    parse_published_refs(data, key="", max_bytes=MAX_PUBLISHED_BYTES) -> PublishedRefs
    parse_public_url(data, key="info/public", max_bytes=MAX_PUBLIC_BYTES) -> str
    public_url_document(url) -> bytes
    Pin(...).to_bytes(), BorrowRecord(...).to_bytes(), JournalEntry(...).to_bytes()
    pin_id(writer, name) -> str;  pin_writer(pin_id) -> str | None
    writer_for(login, zone_url) -> str;  borrow_pin(borrower, name, ranges, created) -> (id, Pin)

``Pin`` carries its roots (chunk names, whole objects, byte ranges of objects) as read on the
pinning user's machine; its ``label`` (the pinned file's URL, or the borrowing zone's URL) is
only a label: nothing here or in GC fetches it. Old ``lindivc-pin/1`` documents are parsed too,
with ``legacy=True``: their ``file`` URL is dropped and the objects they listed when they were
made are their roots (a caller should report them so that their owner re-pins).

``parse_published_refs`` yields only what it can prove: the ``(url, offset, size)`` byte-range
refs of a LINDI file after template expansion. Refs of another shape (inline data, groups'
metadata) are not byte ranges; malformed refs (not a list of three, a non-integer offset, a
template that is not a string, an unknown template name) are skipped and counted.

``parse_public_url`` reads a zone's ``info/public`` (its owner's public base URL): the URL is
only ever written into a borrower's published refs, never fetched.
"""
from __future__ import annotations

import hashlib
import math
import re
import urllib.parse
from dataclasses import dataclass, field
from typing import BinaryIO, Iterable, Iterator, Union

import orjson

from .errors import InvalidDocument
from .layout import (BORROW_FORMAT, ID_RE, JOURNAL_FORMAT, LEGACY_PIN_FORMAT, PIN_FORMAT, PUBLIC_FORMAT, PUBLIC_KEY,
                     parse_zone_url, sha1_from_object_key)
from .objects import is_sha1


MAX_PIN_BYTES = 4 << 20
MAX_BORROW_BYTES = 16 << 20
MAX_JOURNAL_BYTES = 64 << 20
MAX_PUBLISHED_BYTES = 512 << 20
MAX_PUBLIC_BYTES = 8 << 10
MAX_URL = 4096  # characters of a URL, a label, a ref URL after template expansion
MAX_INT = (1 << 63) - 1  # offsets and sizes
PIN_KINDS = ("file", "borrow")

Source = Union[bytes, bytearray, memoryview, BinaryIO]

# GitHub logins: letters, digits and single hyphens, at most 39 characters; no '.', so the
# writer of pins/<login>.<name> is unambiguous.
LOGIN_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$")
_TEMPLATE_RE = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}")


# --------------------------------------------------------------------------- documents


@dataclass(frozen=True)
class ByteRange:
    """``size`` bytes at ``offset`` of the zone object named ``object`` (a pack or a chunk)."""

    object: str
    offset: int
    size: int


@dataclass(frozen=True)
class Pin:
    """A root left in a zone: what a file elsewhere (or a borrowing zone) references there.

    ``kind``: ``"file"`` for a LINDI file outside the zone's cloud (``lindivc pin URL``), a root
    until unpinned; ``"borrow"`` for a zone of the same cloud that borrows chunks, a root while
    younger than GC's grace period. ``label``: the pinned file's URL or the borrowing zone's
    URL, never fetched. ``by``: the GitHub login of the writer, when known. The roots: ``chunks``
    (chunk names, found through the zone's pack indexes), ``objects`` (kept whole), ``ranges``
    (byte ranges of objects; a range maps to the chunk it falls in). Sequences are kept sorted
    and without duplicates. ``legacy``: parsed from a ``lindivc-pin/1`` document.
    """

    kind: str
    label: str
    created: float
    by: str | None = None
    chunks: tuple[str, ...] = ()
    objects: tuple[str, ...] = ()
    ranges: tuple[ByteRange, ...] = ()
    legacy: bool = field(default=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "chunks", tuple(sorted(set(self.chunks))))
        object.__setattr__(self, "objects", tuple(sorted(set(self.objects))))
        object.__setattr__(self, "ranges", tuple(sorted(set(self.ranges), key=lambda r: (r.object, r.offset, r.size))))

    def to_bytes(self) -> bytes:
        """The ``lindivc-pin/2`` document (docs/format.md section 6.3); parses back equal."""
        return _dump({"format": PIN_FORMAT, "kind": self.kind, "label": self.label, "created": self.created,
                      "by": self.by, "chunks": list(self.chunks), "objects": list(self.objects),
                      "ranges": [[r.object, r.offset, r.size] for r in self.ranges]})


@dataclass(frozen=True)
class BorrowedChunk:
    """A chunk a zone's files read from a lender: ``size`` bytes at ``offset`` of ``pack`` there."""

    chunk: str
    pack: str
    offset: int
    size: int


@dataclass(frozen=True)
class BorrowRecord:
    """``borrow/<id>``: chunks this zone's files read from ``lender`` (a zone URL of the same
    cloud) whose public URL prefix is ``prefix``. ``chunks`` sorted by chunk name."""

    lender: str
    prefix: str
    chunks: tuple[BorrowedChunk, ...]
    created: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "chunks", tuple(sorted(set(self.chunks), key=lambda c: (c.chunk, c.pack, c.offset))))

    def to_bytes(self) -> bytes:
        return _dump({"format": BORROW_FORMAT, "lender": self.lender, "prefix": self.prefix, "created": self.created,
                      "chunks": [[c.chunk, c.pack, c.offset, c.size] for c in self.chunks]})


@dataclass(frozen=True)
class JournalEntry:
    """``journal/<id>``: a push of ``commit`` to ``branch`` is about to reference ``objects``."""

    id: str
    branch: str
    commit: str
    objects: tuple[str, ...]
    created: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "objects", tuple(sorted(set(self.objects))))

    def to_bytes(self) -> bytes:
        return _dump({"format": JOURNAL_FORMAT, "id": self.id, "branch": self.branch, "commit": self.commit,
                      "objects": list(self.objects), "created": self.created})


@dataclass(frozen=True)
class RangeRef:
    """A byte-range ref of a published LINDI file: ``size`` bytes at ``offset`` of ``url``
    (templates expanded)."""

    url: str
    offset: int
    size: int

    @property
    def object_sha1(self) -> str | None:
        """The sha1 when ``url`` ends in a zone object key ``sha1/aa/bb/cc/<sha1>`` (any query
        string dropped), else None."""
        return sha1_from_object_key(self.url.split("?", 1)[0])


# --------------------------------------------------------------------------- pin ids


def pin_id(writer: str, name: str) -> str:
    """The pin id ``<writer>.<name>``: ``writer`` is the writer's GitHub login (the user of its
    zone in a cloud); a gateway counts and limits pins by it. Raises InvalidDocument."""
    pid = f"{writer}.{name}"
    if not LOGIN_RE.match(writer) or not ID_RE.match(pid):
        raise InvalidDocument(pid, "a pin id is <login>.<name> ([A-Za-z0-9._-], at most 128 characters)")
    return pid


def pin_writer(pid: str) -> str | None:
    """The login a pin id names as its writer (``<login>.<name>``), or None for other ids."""
    login, dot, rest = pid.partition(".")
    return login if dot and rest and LOGIN_RE.match(login) else None


def writer_for(login: str | None, zone_url: str) -> str:
    """Who writes a pin, for its id: ``login`` (a gateway's answer for the writer's token) if
    known, else the user of the writer's zone ``zone_url`` when that is a login, else "local"."""
    if login and LOGIN_RE.match(login):
        return login
    user = parse_zone_url(zone_url).user
    return user if user and LOGIN_RE.match(user) else "local"


def borrow_pin(borrower: str, name: str, ranges: Iterable[ByteRange], created: float) -> tuple[str, Pin]:
    """The pin that zone ``borrower`` (its URL) leaves in a zone of its cloud whose ``ranges``
    its files read, and its id ``<writer>.<16 hex of sha1(borrower)>-<name>``; the writer is
    the borrower's zone user (in a gateway cloud, the login that alone may push there)."""
    writer = writer_for(None, borrower)
    tag = hashlib.sha1(borrower.encode()).hexdigest()[:16]
    pin = Pin("borrow", borrower, created, None if writer == "local" else writer, ranges=tuple(ranges))
    return pin_id(writer, f"{tag}-{name}"), pin


# --------------------------------------------------------------------------- parsing


def parse_pin(data: Source, key: str = "", max_bytes: int = MAX_PIN_BYTES) -> Pin:
    """The pin in ``data`` (``lindivc-pin/2``, or ``lindivc-pin/1`` with ``legacy=True``).
    Raises InvalidDocument."""
    doc = _load_object(data, key, max_bytes)
    fmt = doc.get("format")
    v = _Check(key)
    if fmt == PIN_FORMAT:
        kind = doc.get("kind")
        if kind not in PIN_KINDS:
            raise InvalidDocument(key, f"pin kind must be one of {', '.join(PIN_KINDS)}")
        pin = Pin(kind=kind, label=v.text(doc.get("label"), "label"), created=v.time(doc.get("created")),
                  by=v.login_or_none(doc.get("by")), chunks=v.sha1s(doc.get("chunks", []), "chunks"),
                  objects=v.sha1s(doc.get("objects", []), "objects"), ranges=v.ranges(doc.get("ranges", [])))
    elif fmt == LEGACY_PIN_FORMAT:
        # lindivc-pin/1: {"by": "external", "file": URL, "objects"} (lindivc pin) or
        # {"by": <borrowing zone URL>, "url", "objects", "chunks"} (a borrow); the URL is not kept
        # as anything but a label
        file = doc.get("file")
        label = file if file is not None else doc.get("by")
        pin = Pin(kind="file" if file is not None else "borrow", label=v.text(label, "file" if file else "by"),
                  created=v.time(doc.get("created")), by=None, chunks=v.sha1s(doc.get("chunks", []), "chunks"),
                  objects=v.sha1s(doc.get("objects", []), "objects"), legacy=True)
    else:
        raise InvalidDocument(key, f"not a pin (format must be {PIN_FORMAT!r})")
    if not (pin.chunks or pin.objects or pin.ranges):
        raise InvalidDocument(key, "the pin names no chunk, object or range")
    return pin


def parse_borrow_record(data: Source, key: str = "", max_bytes: int = MAX_BORROW_BYTES) -> BorrowRecord:
    """The borrow record in ``data``. Raises InvalidDocument."""
    doc, v = _load_document(data, key, max_bytes, BORROW_FORMAT, "a borrow record")
    chunks = doc.get("chunks")
    if not isinstance(chunks, list) or not chunks:
        raise InvalidDocument(key, "chunks must be a non-empty list")
    out = []
    for c in chunks:
        if not (isinstance(c, list) and len(c) == 4):
            raise InvalidDocument(key, "each borrowed chunk must be [chunk, pack, offset, size]")
        out.append(BorrowedChunk(v.sha1(c[0], "chunk"), v.sha1(c[1], "pack"), v.integer(c[2], "offset"),
                                 v.integer(c[3], "size")))
    return BorrowRecord(lender=v.text(doc.get("lender"), "lender"), prefix=v.text(doc.get("prefix"), "prefix"),
                        chunks=tuple(out), created=v.time(doc.get("created")))


def parse_journal_entry(data: Source, key: str = "", max_bytes: int = MAX_JOURNAL_BYTES) -> JournalEntry:
    """The journal entry in ``data``. Raises InvalidDocument."""
    doc, v = _load_document(data, key, max_bytes, JOURNAL_FORMAT, "a journal entry")
    jid = doc.get("id")
    if not (isinstance(jid, str) and ID_RE.match(jid)):
        raise InvalidDocument(key, "id must match [A-Za-z0-9._-]{1,128}")
    return JournalEntry(id=jid, branch=v.text(doc.get("branch"), "branch", 255), commit=v.sha1(doc.get("commit"), "commit"),
                        objects=v.sha1s(doc.get("objects", []), "objects"), created=v.time(doc.get("created")))


class PublishedRefs:
    """The byte-range refs of one published LINDI file, iterable once (one ref at a time, so
    template expansion never holds more than one URL). After iteration, ``ranges`` counts the
    refs yielded and ``skipped`` the malformed refs left out (inline data is neither)."""

    def __init__(self, key: str, refs: dict, templates: dict[str, str]) -> None:
        self.key = key
        self.ranges = 0
        self.skipped = 0
        self._refs: dict | None = refs
        self._templates = templates

    def __iter__(self) -> Iterator[RangeRef]:
        return (ref for _, ref in self.items())

    def items(self) -> Iterator[tuple[str, RangeRef]]:
        """``(ref key, RangeRef)`` pairs; like iterating, possible once."""
        refs, self._refs = self._refs, None
        if refs is None:
            raise RuntimeError("PublishedRefs can be iterated only once")
        templates = self._templates
        for key, value in refs.items():
            if isinstance(value, (dict, str)):
                continue  # metadata or inline data
            ref = _range_ref(value, templates)
            if ref is None or not isinstance(key, str):
                self.skipped += 1
                continue
            self.ranges += 1
            yield key, ref


def parse_published_refs(data: Source, key: str = "", max_bytes: int = MAX_PUBLISHED_BYTES) -> PublishedRefs:
    """The byte-range refs of the LINDI file in ``data``. The document is checked (size, JSON,
    ``refs`` an object, ``templates`` an object) when this is called; iterating yields each
    :class:`RangeRef` it can prove. Raises InvalidDocument (only when called, never while
    iterating)."""
    doc = _load_object(data, key, max_bytes)
    refs = doc.get("refs")
    if not isinstance(refs, dict):
        raise InvalidDocument(key, "not a LINDI file: 'refs' must be an object")
    raw = doc.get("templates", {})
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise InvalidDocument(key, "'templates' must be an object")
    # a template that is not a short string proves nothing: refs using it are skipped
    templates = {k: t for k, t in raw.items() if isinstance(t, str) and len(t) <= MAX_URL}
    return PublishedRefs(key, refs, templates)


def public_url_document(url: str) -> bytes:
    """The ``info/public`` document naming ``url`` (a zone's public base URL, as
    :func:`lindivc.layout.normalize_public_url` returns it); parses back to ``url``."""
    return _dump({"format": PUBLIC_FORMAT, "url": url})


def parse_public_url(data: Source, key: str = PUBLIC_KEY, max_bytes: int = MAX_PUBLIC_BYTES) -> str:
    """The public base URL in an ``info/public`` document: an http(s) URL with a host, ending in
    ``/``, of printable ASCII without spaces, ``{``, ``}``, query or fragment, at most
    :data:`MAX_URL` characters. Raises InvalidDocument."""
    doc, v = _load_document(data, key, max_bytes, PUBLIC_FORMAT, "a public URL document")
    url = v.text(doc.get("url"), "url")
    try:
        p = urllib.parse.urlsplit(url)
        p.port  # noqa: B018 (raises ValueError for a port that is not a number in range)
    except ValueError:
        raise InvalidDocument(key, "url is not a valid URL") from None
    if not (url.isascii() and p.scheme in ("http", "https") and p.hostname and url.endswith("/")) \
            or p.query or p.fragment or "?" in url or "#" in url or any(c in url for c in " {}\\"):
        raise InvalidDocument(key, "url must be an http(s) URL with a host, ending in '/', without spaces, "
                                   "braces, query or fragment")
    return url


# --------------------------------------------------------------------------- helpers


def _range_ref(value: object, templates: dict[str, str]) -> RangeRef | None:
    if not (isinstance(value, list) and len(value) == 3):
        return None
    url, offset, size = value
    if not (isinstance(url, str) and 0 < len(url) <= MAX_URL and _is_int(offset) and _is_int(size)):
        return None
    if "{{" in url:
        missing = False

        def sub(m: re.Match) -> str:
            nonlocal missing
            t = templates.get(m.group(1))
            if t is None:
                missing = True
                return ""
            return t

        url = _TEMPLATE_RE.sub(sub, url)
        if missing or not url or len(url) > MAX_URL:
            return None
    return RangeRef(url, offset, size)


def _is_int(v: object) -> bool:
    return type(v) is int and 0 <= v <= MAX_INT


def _read(data: Source, key: str, max_bytes: int) -> bytes:
    if isinstance(data, (bytes, bytearray, memoryview)):
        raw = bytes(data)
    else:
        try:
            raw = data.read(max_bytes + 1)
        except OSError as e:
            raise InvalidDocument(key, f"unreadable ({e.strerror or type(e).__name__})") from None
        if not isinstance(raw, bytes):
            raise InvalidDocument(key, "unreadable (not a binary stream)")
    if len(raw) > max_bytes:
        raise InvalidDocument(key, f"larger than the limit of {max_bytes} bytes")
    return raw


def _load_object(data: Source, key: str, max_bytes: int) -> dict:
    raw = _read(data, key, max_bytes)
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise InvalidDocument(key, f"not JSON ({str(e).splitlines()[0][:120]})") from None
    if not isinstance(doc, dict):
        raise InvalidDocument(key, "not a JSON object")
    return doc


def _load_document(data: Source, key: str, max_bytes: int, fmt: str, what: str) -> tuple[dict, "_Check"]:
    """The JSON object in ``data``, which must declare ``format`` ``fmt`` (else InvalidDocument:
    "not ``what``"), and the field checks for it."""
    doc = _load_object(data, key, max_bytes)
    if doc.get("format") != fmt:
        raise InvalidDocument(key, f"not {what} (format must be {fmt!r})")
    return doc, _Check(key)


def _dump(doc: dict) -> bytes:
    return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)


class _Check:
    """Field checks of one document; each raises InvalidDocument naming the field."""

    def __init__(self, key: str) -> None:
        self.key = key

    def fail(self, what: str) -> InvalidDocument:
        return InvalidDocument(self.key, what)

    def text(self, v: object, name: str, max_len: int = MAX_URL) -> str:
        if not (isinstance(v, str) and 0 < len(v) <= max_len and v.isprintable()):
            raise self.fail(f"{name} must be a printable string of 1 to {max_len} characters")
        return v

    def time(self, v: object) -> float:
        if type(v) not in (int, float) or not math.isfinite(v) or v < 0:
            raise self.fail("created must be a non-negative number (epoch seconds)")
        return float(v)

    def integer(self, v: object, name: str) -> int:
        if not _is_int(v):
            raise self.fail(f"{name} must be an integer from 0 to 2**63-1")
        return v  # type: ignore[return-value]

    def sha1(self, v: object, name: str) -> str:
        if not (isinstance(v, str) and is_sha1(v)):
            raise self.fail(f"{name} must be a sha1 (40 lowercase hex digits)")
        return v

    def sha1s(self, v: object, name: str) -> tuple[str, ...]:
        if not isinstance(v, list):
            raise self.fail(f"{name} must be a list of sha1s")
        return tuple(self.sha1(s, name) for s in v)

    def ranges(self, v: object) -> tuple[ByteRange, ...]:
        if not isinstance(v, list):
            raise self.fail("ranges must be a list of [object, offset, size]")
        out = []
        for r in v:
            if not (isinstance(r, list) and len(r) == 3):
                raise self.fail("each range must be [object, offset, size]")
            out.append(ByteRange(self.sha1(r[0], "range object"), self.integer(r[1], "offset"), self.integer(r[2], "size")))
        return tuple(out)

    def login_or_none(self, v: object) -> str | None:
        if v is None:
            return None
        if not (isinstance(v, str) and LOGIN_RE.match(v)):
            raise self.fail("by must be a GitHub login or null")
        return v
