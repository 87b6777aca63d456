"""docs/format.md is the spec: the constants it documents are the code's, and push.py's step
comments are its numbered push steps, word for word."""
from __future__ import annotations

import json
import os
import re

import pytest

from lindivc import config, layout, objects, packs, packstream
from lindivc import push as push_module
from lindivc import upload as upload_module

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
with open(os.path.join(ROOT, "docs", "format.md"), encoding="utf-8") as _f:
    SPEC = _f.read()


def section(title: str) -> str:
    """The text of the section whose heading starts with ``title`` (up to the next heading)."""
    m = re.search(rf"^#+ {re.escape(title)}[^\n]*\n(.*?)(?=^#+ |\Z)", SPEC, re.M | re.S)
    assert m, f"docs/format.md has no section {title!r}"
    return m.group(1)


def words(text: str) -> str:
    return " ".join(text.split())


def test_config_defaults_are_the_documented_ones():
    text = section("3. Configuration")
    core = json.loads(re.search(r'`config\.json`: `\{"core": (\{[^}]*\})', text).group(1))
    assert core["pack_size"] == packstream.DEFAULT_PACK_SIZE == config.DEFAULTS["core"]["pack_size"]
    assert core["chunk_threshold"] == config.DEFAULT_CHUNK_THRESHOLD == config.DEFAULTS["core"]["chunk_threshold"]


def test_documented_pack_size_in_words_matches():
    m = re.search(r"`pack_size`: target pack size .*? (\d+) MiB", section("3. Configuration"), re.S)
    assert int(m.group(1)) * 2**20 == packstream.DEFAULT_PACK_SIZE


def test_copy_block_is_the_documented_one():
    m = re.search(r"copy block \((\d+) MiB\)", section("5. Packs"))
    assert int(m.group(1)) * 2**20 == objects.COPY_BLOCK


def test_pack_index_format_name():
    assert re.search(r'"format":"([^"]+)"', section("5. Packs")).group(1) == packs.FORMAT


def test_key_layout_prefixes_are_the_documented_ones():
    text = section("6.1 Key layout")
    keys = re.findall(r"^\s+<zone>/(\S+)", text, re.M)
    assert {k.split("/")[0] for k in keys} == set(layout.TOP_PREFIXES)
    assert {k for k in keys if k.startswith("info/")} == set(layout.INFO_KEYS)
    assert "lease/gc" in keys and layout.GC_LEASE_KEY == "lease/gc"
    sha = "3fa29c" + "0" * 34
    assert "sha1/aa/bb/cc/<sha1>" in keys and layout.object_key(sha) == f"sha1/3f/a2/9c/{sha}"
    assert "idx/<packsha1>" in keys and layout.index_key(sha) == f"idx/{sha}"
    assert "journal/<id>" in keys and layout.journal_key("x") == "journal/x"
    assert "pins/<id>" in keys and layout.pin_key("x") == "pins/x"
    assert "borrow/<id>" in keys and layout.borrow_key("x") == "borrow/x"
    assert "f/<path>" in keys and layout.file_key("a/b") == "f/a/b"
    assert "v/<commit>/<path>" in keys and layout.version_key(sha, "a") == f"v/{sha}/a"


def test_key_limits_are_the_documented_ones():
    text = words(section("6.1 Key layout"))
    assert f"more than {layout.MAX_KEY} characters" in text
    parts, ids = re.search(r"`<path>` parts are `(\S+)`; ids `(\S+)`", text).groups()
    assert layout.PART_RE.pattern == f"^{parts}$"
    assert layout.ID_RE.pattern == f"^{ids}$"


@pytest.mark.parametrize("document, constant", [
    ("Journal entry", layout.JOURNAL_FORMAT),
    ("Borrow record", layout.BORROW_FORMAT),
    ("Pin", layout.PIN_FORMAT),
    ("Public URL", layout.PUBLIC_FORMAT),
])
def test_document_format_names(document, constant):
    text = section("6.3 Documents")
    m = re.search(rf"^{document} `[^`]+`.*?\"format\": \"([^\"]+)\"", text, re.M | re.S)
    assert m, document
    assert m.group(1) == constant


def test_upload_parallelism_is_the_documented_one():
    if "LINDIVC_UPLOAD_THREADS" in os.environ:
        pytest.skip("LINDIVC_UPLOAD_THREADS overrides the default")
    m = re.search(r"up to (\d+) in parallel", section("6.4 Push"))
    assert int(m.group(1)) == upload_module.UPLOAD_THREADS


def _numbered(text: str, prefix: str = "") -> dict[int, str]:
    """Numbered items of a list (``1. ...``), each joined over its continuation lines."""
    items: dict[int, str] = {}
    cur = None
    for line in text.splitlines():
        if not line.startswith(prefix):
            cur = None
            continue
        body = line[len(prefix):]
        m = re.match(r"(\d+)\. (.*)", body)
        if m:
            cur = int(m.group(1))
            items[cur] = m.group(2)
        elif cur is not None and body.startswith("   ") and body.strip():
            items[cur] += " " + body.strip()
        else:
            cur = None
    return {k: words(v) for k, v in items.items()}


def test_push_steps_in_the_code_quote_the_spec():
    spec_steps = _numbered(section("6.4 Push"))
    with open(push_module.__file__, encoding="utf-8") as f:
        code_steps = _numbered(f.read(), prefix="# ")
    assert sorted(spec_steps) == list(range(1, 9))
    assert code_steps == spec_steps
