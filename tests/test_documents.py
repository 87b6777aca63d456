"""Documents other users write (lindivc.documents): one validating parse per kind, InvalidDocument
for anything else, whatever the bytes; well-formed documents round-trip."""
from __future__ import annotations

import io
import json
import string

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lindivc.documents import (
    BorrowedChunk,
    BorrowRecord,
    ByteRange,
    JournalEntry,
    Pin,
    RangeRef,
    parse_borrow_record,
    parse_journal_entry,
    parse_pin,
    parse_published_refs,
    pin_id,
    pin_writer,
)
from lindivc.errors import InvalidDocument

A, B, C = "a" * 40, "b" * 40, "c" * 40
PARSERS = (parse_pin, parse_borrow_record, parse_journal_entry, parse_published_refs)


def consume(parser, data):
    """Run a parser to the end (published refs are iterated)."""
    got = parser(data, "k")
    if parser is parse_published_refs:
        return list(got)
    return got


# ---------------------------------------------------------------- published files


def test_issue_example_template_not_a_string_is_skipped_not_a_crash():
    doc = b'{"refs":{"a":["{{u}}sha1/00",0,1]},"templates":{"u":5}}'
    refs = parse_published_refs(doc, "zones/bob/p/f/e.lindi.json")
    assert list(refs) == [] and refs.skipped == 1


@pytest.mark.parametrize("doc, reason", [
    (b'{"refs": {}, "templates": [1]}', "'templates' must be an object"),
    (b'{"refs": [1, 2]}', "'refs' must be an object"),
    (b'[]', "not a JSON object"),
    (b'"x"', "not a JSON object"),
    (b'\xff\xfe', "not JSON"),
    (b'[' * 5000 + b']' * 5000, "not JSON"),
    (b'{"refs": {"a": [1e400, 0, 1]}}', "not JSON"),
])
def test_malformed_published_files_are_invalid_documents(doc, reason):
    with pytest.raises(InvalidDocument) as e:
        parse_published_refs(doc, "zones/bob/p/f/x.lindi.json")
    assert e.value.key == "zones/bob/p/f/x.lindi.json" and reason in e.value.reason
    assert "\n" not in str(e.value)


def test_published_refs_expand_templates_and_skip_what_they_cannot_prove():
    sha = "0123456789" * 4
    key = f"sha1/01/23/45/{sha}"
    doc = {"refs": {
        ".zgroup": {"zarr_format": 2},
        "inline": "base64:AAAA",
        "ok": ["{{u}}/" + key, 10, 20],
        "plain": ["https://other.org/file.nwb", 0, 5],
        "unknown-template": ["{{nope}}/" + key, 0, 1],
        "float-offset": ["{{u}}/" + key, 1.0, 2],
        "bool-size": ["{{u}}/" + key, 1, True],
        "negative": ["{{u}}/" + key, -1, 2],
        "huge": ["{{u}}/" + key, 2 ** 64, 2],
        "one": ["{{u}}/" + key],
        "nested": [["x"], 0, 1],
        "number": 5, "null": None,
    }, "templates": {"u": "https://gw/zones/a/z", "bad": {"x": 1}}}
    refs = parse_published_refs(json.dumps(doc).encode(), "f")
    got = list(refs)
    assert got == [RangeRef(f"https://gw/zones/a/z/{key}", 10, 20), RangeRef("https://other.org/file.nwb", 0, 5)]
    assert got[0].object_sha1 == sha and got[1].object_sha1 is None
    assert refs.ranges == 2 and refs.skipped == 9


def test_templates_cannot_blow_up_memory():
    big = "x" * 100_000
    doc = {"refs": {str(i): ["{{u}}{{u}}{{u}}", 0, 1] for i in range(1000)}, "templates": {"u": big}}
    refs = parse_published_refs(orjson.dumps(doc), "f")
    assert list(refs) == [] and refs.skipped == 1000  # an over-long template proves nothing


def test_size_limit_is_checked_without_reading_past_it():
    class Endless(io.RawIOBase):
        def __init__(self):
            self.read_total = 0

        def readable(self):
            return True

        def readinto(self, b):
            b[:] = b" " * len(b)
            self.read_total += len(b)
            return len(b)

    src = io.BufferedReader(Endless())
    with pytest.raises(InvalidDocument) as e:
        parse_published_refs(src, "zones/bob/p/f/zero.lindi.json", max_bytes=1 << 20)
    assert "larger than the limit of 1048576 bytes" in str(e.value)
    assert src.raw.read_total <= (1 << 20) + (1 << 17)
    with pytest.raises(InvalidDocument):
        parse_pin(b" " * 101, "pins/x", max_bytes=100)


def test_stream_and_bytes_give_the_same_refs():
    data = orjson.dumps({"refs": {"a": ["http://h/x", 1, 2]}})
    assert list(parse_published_refs(io.BytesIO(data))) == list(parse_published_refs(data))


# ---------------------------------------------------------------- pins, borrow records, journal


def test_pin_round_trips_and_sorts():
    p = Pin("file", "https://example.org/x.lindi.json", 1700000000.25, "bob", chunks=(B, A, A),
            objects=(C,), ranges=(ByteRange(C, 5, 6), ByteRange(A, 0, 1)))
    assert p.chunks == (A, B) and p.ranges[0].object == A
    q = parse_pin(p.to_bytes(), "pins/bob.x")
    assert q == p and not q.legacy
    assert json.loads(p.to_bytes())["format"] == "lindivc-pin/2"


def test_legacy_pins_keep_their_lists_and_drop_the_url():
    external = {"by": "external", "created": 1.0, "file": "/dev/zero", "format": "lindivc-pin/1", "objects": [A]}
    p = parse_pin(json.dumps(external).encode())
    assert p.legacy and p.kind == "file" and p.label == "/dev/zero" and p.objects == (A,) and p.chunks == ()
    borrow = {"by": "s3://b/zones/bob/y", "chunks": [B], "created": 2.0, "format": "lindivc-pin/1",
              "objects": [C], "url": "http://b/zones/bob/y/f/"}
    p = parse_pin(json.dumps(borrow).encode())
    assert p.legacy and p.kind == "borrow" and p.label == "s3://b/zones/bob/y" and p.chunks == (B,)
    assert parse_pin(p.to_bytes()) == p  # rewritten as lindivc-pin/2


@pytest.mark.parametrize("doc", [
    [], "x", {}, {"file": "/etc/hostname"}, {"from": "zones/bob/y"},
    {"format": "lindivc-pin/2", "kind": "file", "label": "u", "created": 1, "chunks": []},
    {"format": "lindivc-pin/2", "kind": "evil", "label": "u", "created": 1, "chunks": [A]},
    {"format": "lindivc-pin/2", "kind": "file", "label": "u", "created": "now", "chunks": [A]},
    {"format": "lindivc-pin/2", "kind": "file", "label": "u", "created": 1, "chunks": [A.upper()]},
    {"format": "lindivc-pin/2", "kind": "file", "label": "u", "created": 1, "chunks": A},
    {"format": "lindivc-pin/2", "kind": "file", "label": "u", "created": 1, "ranges": [[A, -1, 2]]},
    {"format": "lindivc-pin/2", "kind": "file", "label": "u", "created": 1, "chunks": [A], "by": "a.b"},
    {"format": "lindivc-pin/2", "kind": "file", "label": "a\nb", "created": 1, "chunks": [A]},
    {"format": "lindivc-pin/1", "by": 5, "created": 1, "objects": [A]},
])
def test_malformed_pins_are_invalid_documents(doc):
    with pytest.raises(InvalidDocument):
        parse_pin(json.dumps(doc).encode(), "pins/p")


def test_borrow_record_and_journal_entry_round_trip():
    r = BorrowRecord("s3://b/zones/a/x", "http://s3/b/zones/a/x/", (BorrowedChunk(B, C, 10, 5), BorrowedChunk(A, C, 0, 10)),
                     3.5)
    assert parse_borrow_record(r.to_bytes()) == r and r.chunks[0].chunk == A
    j = JournalEntry("1700000000-abcdef012345", "main", C, (B, A), 4.0)
    assert parse_journal_entry(j.to_bytes()) == j
    # the formats sync.py writes today
    sync_borrow = {"format": "lindivc-borrow/1", "lender": "/z/zones/a/x", "prefix": "/z/zones/a/x/",
                   "chunks": [[A, C, 0, 3]], "created": 1.0}
    assert parse_borrow_record(json.dumps(sync_borrow, sort_keys=True).encode()).lender == "/z/zones/a/x"
    sync_journal = {"format": "lindivc-journal/1", "id": "17-abc", "branch": "main", "commit": A,
                    "objects": [B], "created": 1.0}
    assert parse_journal_entry(json.dumps(sync_journal).encode()).objects == (B,)


def test_pin_ids_name_their_writer():
    assert pin_id("bob", "a1b2") == "bob.a1b2" and pin_writer("bob.a1b2") == "bob"
    assert pin_writer("0123456789abcdef-0123") is None and pin_writer("bob.") is None
    for bad in (("bo.b", "x"), ("bob", "a/b"), ("bob", "x" * 200), ("", "x")):
        with pytest.raises(InvalidDocument):
            pin_id(*bad)


# ---------------------------------------------------------------- fuzzing

json_leaf = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2 ** 70), max_value=2 ** 70),
                      st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=30),
                      st.sampled_from([A, "{{u}}", "{{u}}sha1/aa/aa/aa/" + "a" * 40, "lindivc-pin/2",
                                       "lindivc-pin/1", "lindivc-borrow/1", "lindivc-journal/1", "file",
                                       "borrow"]))
json_values = st.recursive(json_leaf, lambda inner: st.one_of(
    st.lists(inner, max_size=5),
    st.dictionaries(st.sampled_from(["refs", "templates", "format", "kind", "label", "created", "by", "chunks",
                                     "objects", "ranges", "file", "lender", "prefix", "id", "branch", "commit",
                                     "u", "a"]) | st.text(max_size=5), inner, max_size=6)), max_leaves=30)
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(json_values)
def test_fuzz_random_json_raises_only_invalid_document(value):
    data = json.dumps(value).encode()
    for parser in PARSERS:
        try:
            consume(parser, data)
        except InvalidDocument:
            pass


@FUZZ
@given(st.dictionaries(st.text(max_size=8), json_values, max_size=8), json_values)
def test_fuzz_random_refs_and_templates_raise_only_invalid_document(refs, templates):
    data = json.dumps({"refs": refs, "templates": templates}).encode()
    try:
        for r in parse_published_refs(data):
            assert isinstance(r.url, str) and type(r.offset) is int and type(r.size) is int
            assert r.offset >= 0 and r.size >= 0 and "{{" not in r.url or "{{" in str(templates)
    except InvalidDocument:
        pass


@FUZZ
@given(st.binary(max_size=300))
def test_fuzz_random_bytes_raise_only_invalid_document(data):
    for parser in PARSERS:
        try:
            consume(parser, data)
        except InvalidDocument:
            pass


sha1s = st.text(alphabet="0123456789abcdef", min_size=40, max_size=40)
ints = st.integers(min_value=0, max_value=2 ** 63 - 1)
labels = st.text(alphabet=string.ascii_letters + string.digits + ":/._-", min_size=1, max_size=60)


@FUZZ
@given(st.sampled_from(["file", "borrow"]), labels, st.floats(min_value=0, max_value=4e9),
       st.none() | st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9-]{0,10}\Z"), st.lists(sha1s, max_size=4),
       st.lists(sha1s, max_size=3), st.lists(st.tuples(sha1s, ints, ints), max_size=3))
def test_fuzz_well_formed_pins_round_trip(kind, label, created, by, chunks, objects, ranges):
    if not (chunks or objects or ranges):
        chunks = [A]
    p = Pin(kind, label, created, by, tuple(chunks), tuple(objects), tuple(ByteRange(*r) for r in ranges))
    assert parse_pin(p.to_bytes()) == p


@FUZZ
@given(st.dictionaries(st.text(max_size=10), st.tuples(labels, ints, ints), max_size=20),
       st.dictionaries(st.from_regex(r"\A[a-z][a-z0-9_]{0,5}\Z"), labels, max_size=3))
def test_fuzz_well_formed_published_files_round_trip(refs, templates):
    names = sorted(templates)
    doc, want = {}, set()
    for i, (k, (url, off, size)) in enumerate(refs.items()):
        if names and i % 2:
            name = names[i % len(names)]
            doc[k] = ["{{" + name + "}}" + url, off, size]
            want.add(RangeRef(templates[name] + url, off, size))
        elif "{{" not in url:
            doc[k] = [url, off, size]
            want.add(RangeRef(url, off, size))
    got = parse_published_refs(orjson.dumps({"refs": doc, "templates": templates}))
    assert set(got) == want and got.skipped == 0
