"""Published (rendered) LINDI files as GC reads them: the zone objects their refs name.

A published file names an object by a URL ending in ``sha1/aa/bb/cc/<sha1>``, whatever zone or
host comes before it; GC reads every such ref, conservatively, as a root.
"""
from __future__ import annotations

import re
from typing import Iterable

import orjson

from .. import lindijson
from ..layout import sha1_from_object_key

_SHA_RE = re.compile(rb"[0-9a-f]{40}")


def mentioned_shas(data: bytes) -> set[str]:
    """Every sha1-looking name in ``data`` (what GC keeps of a file it cannot parse)."""
    return {m.decode() for m in _SHA_RE.findall(data)}


def iter_range_refs(data: bytes) -> Iterable[tuple[str, int, int]]:
    """``(object sha1, offset, size)`` of every ref in a rendered LINDI file whose URL ends in
    ``sha1/aa/bb/cc/<sha1>`` (whatever its prefix: conservative). Offset and size are -1 when
    the ref names the whole object, or when ``data`` is not JSON (every sha1 it mentions)."""
    try:
        rfs = orjson.loads(data)
    except orjson.JSONDecodeError:
        for sha in mentioned_shas(data):
            yield sha, -1, -1
        return
    refs = rfs.get("refs") if isinstance(rfs, dict) else None
    if not isinstance(refs, dict):
        return
    templates = rfs.get("templates") or {}
    if not isinstance(templates, dict):
        templates = {}
    expanded: dict[str, str] = {}  # a whole URL may be a template ("{{u1}}": docs/format.md 6.7)
    for v in refs.values():
        if isinstance(v, list) and len(v) == 3 and isinstance(v[0], str):
            url = v[0]
            if "{{" in url and templates:
                url = expanded.get(v[0]) or expanded.setdefault(v[0], lindijson.apply_templates(v[0], templates))
            if "sha1/" not in url:
                continue
            sha = sha1_from_object_key(url.split("?", 1)[0])
            if sha is not None and isinstance(v[1], int) and isinstance(v[2], int):
                yield sha, v[1], v[2]
        elif isinstance(v, list) and len(v) == 1 and isinstance(v[0], str) and "sha1/" in v[0]:
            sha = sha1_from_object_key(v[0])
            if sha is not None:
                yield sha, -1, -1
