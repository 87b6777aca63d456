"""LINDI reference file systems: load, validate, canonicalize (clean) and render (smudge).

A LINDI file is JSON with ``refs`` (key -> dict | str | [url_or_path, offset, size]) and optional
``templates``, ``generationMetadata`` and ``version``. The canonical form (docs/format.md) has
templates expanded, every ref to a lindivc-managed object written as a content ref
``["sha1:<hex>", offset, size]``, and a fixed serialization: one ref per line, keys sorted.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Callable, Iterator

import orjson

from .errors import InvalidLindiFile, ObjectMissing

CONTENT_PREFIX = "sha1:"
LINDI_SUFFIXES = (".lindi.json", ".zarr.json")
_CONTENT_RE = re.compile(rb'"sha1:([0-9a-f]{40})"')
_TEMPLATE_RE = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}")
_CHUNK_PART_RE = re.compile(r"^\d+(\.\d+)*$")


def is_lindi_name(path: str) -> bool:
    """True for file names lindivc tracks: ``*.lindi.json`` and ``*.zarr.json``."""
    return path.endswith(LINDI_SUFFIXES)


def is_chunk_key(key: str) -> bool:
    """True if ``key`` names a zarr chunk (last part is dot-separated integers)."""
    return bool(_CHUNK_PART_RE.match(key.rsplit("/", 1)[-1]))


@dataclass(frozen=True)
class ContentRef:
    """``size`` bytes at ``offset`` inside the object named ``sha1``."""

    sha1: str
    offset: int
    size: int

    def to_json(self) -> list:
        return [CONTENT_PREFIX + self.sha1, self.offset, self.size]


def as_content_ref(value: object) -> ContentRef | None:
    """The ContentRef of a ref value ``["sha1:<hex>", off, size]``, else None."""
    if isinstance(value, list) and len(value) == 3 and isinstance(value[0], str) and value[0].startswith(CONTENT_PREFIX):
        return ContentRef(value[0][len(CONTENT_PREFIX):], value[1], value[2])
    return None


def parse(data: bytes, name: str = "<data>") -> dict:
    """Parse and validate LINDI JSON bytes; raise InvalidLindiFile with a one-line reason."""
    try:
        rfs = orjson.loads(data)
    except orjson.JSONDecodeError as e:
        raise InvalidLindiFile(name, f"not valid JSON ({e.args[0] if e.args else e})") from None
    validate(rfs, name)
    return rfs


def load(path: str) -> dict:
    """Read and validate the LINDI file at ``path``."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise InvalidLindiFile(path, "no such file") from None
    except IsADirectoryError:
        raise InvalidLindiFile(path, "is a directory") from None
    return parse(data, path)


def validate(rfs: object, name: str = "<data>") -> None:
    """Raise InvalidLindiFile unless ``rfs`` is a well-formed reference file system."""
    if not isinstance(rfs, dict):
        raise InvalidLindiFile(name, f"top level is a JSON {type(rfs).__name__}, not an object")
    if "refs" not in rfs:
        raise InvalidLindiFile(name, "missing 'refs'")
    refs = rfs["refs"]
    if not isinstance(refs, dict):
        raise InvalidLindiFile(name, "'refs' is not an object")
    templates = rfs.get("templates", {})
    if not isinstance(templates, dict) or not all(isinstance(v, str) for v in templates.values()):
        raise InvalidLindiFile(name, "'templates' must map names to strings")
    for k, v in refs.items():
        if isinstance(v, (str, dict)):
            continue
        if isinstance(v, list):
            if len(v) != 3:
                raise InvalidLindiFile(name, f"ref {k!r} is a list of {len(v)} elements, expected [url, offset, size]")
            if not isinstance(v[0], str):
                raise InvalidLindiFile(name, f"ref {k!r}: url must be a string, got {type(v[0]).__name__}")
            for what, n in (("offset", v[1]), ("size", v[2])):
                if type(n) is not int or n < 0:
                    raise InvalidLindiFile(name, f"ref {k!r}: {what} must be a non-negative integer, got {n!r}")
            continue
        raise InvalidLindiFile(name, f"ref {k!r} is a {type(v).__name__}; expected string, object or [url, offset, size]")


def apply_templates(url: str, templates: dict) -> str:
    """``url`` with each ``{{name}}`` replaced by ``templates[name]`` (unknown names kept)."""
    if not templates or "{{" not in url:
        return url
    return _TEMPLATE_RE.sub(lambda m: templates.get(m.group(1), m.group(0)), url)


def expand_templates(rfs: dict) -> None:
    """Replace ``{{name}}`` in ref URLs by the template values, in place; drop ``templates``."""
    templates = rfs.pop("templates", None) or {}
    for v in rfs["refs"].values():
        if isinstance(v, list) and isinstance(v[0], str):
            v[0] = apply_templates(v[0], templates)


# A resolver maps (url_or_path, offset, size) of a materialized ref to its content ref, or None
# when lindivc does not manage that location.
Resolver = Callable[[str, int, int], "ContentRef | None"]
# A locator maps a content ref to a materialized ref [url_or_path, offset, size].
Locator = Callable[[ContentRef], list]


def canonicalize(rfs: dict, resolve: Resolver) -> dict:
    """The canonical form of ``rfs`` (a new dict; ``rfs`` is left as it was)."""
    templates = rfs.get("templates") or {}
    expanded: dict[str, str] = {}  # templated url -> url (a file has few distinct templated urls)
    out_refs: dict = {}
    for k, v in rfs["refs"].items():
        if isinstance(v, list):
            url = v[0]
            if "{{" in url:
                url = expanded.get(v[0]) or expanded.setdefault(v[0], apply_templates(v[0], templates))
            if url.startswith(CONTENT_PREFIX):
                out_refs[k] = [url, v[1], v[2]]
                continue
            cr = resolve(url, v[1], v[2])
            out_refs[k] = cr.to_json() if cr is not None else [url, v[1], v[2]]
        elif isinstance(v, str) and (k.endswith((".zarray", ".zattrs", ".zgroup"))):
            out_refs[k] = _meta_to_dict(v, k)
        else:
            out_refs[k] = v
    out = {key: val for key, val in rfs.items() if key not in ("refs", "templates")}
    out["refs"] = out_refs
    return out


def _meta_to_dict(v: str, key: str) -> object:
    import base64

    raw = base64.b64decode(v[7:]) if v.startswith("base64:") else v.encode()
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return v


def render(rfs: dict, locate: Locator) -> dict:
    """Materialize a canonical ``rfs``: every content ref becomes a location plain lindi reads."""
    out_refs: dict = {}
    for k, v in rfs["refs"].items():
        cr = as_content_ref(v)
        out_refs[k] = locate(cr) if cr is not None else v
    out = dict(rfs)
    out["refs"] = out_refs
    return out


_OPTS = orjson.OPT_SORT_KEYS


def dumps(rfs: dict) -> bytes:
    """The stable serialization: top-level keys sorted, one ref per line, keys sorted.

    The canonical form uses it; working files use it too, so both diff well with text tools.
    """
    parts = [b"{\n"]
    top = sorted(rfs)
    for i, key in enumerate(top):
        sep = b"," if i < len(top) - 1 else b""
        if key == "refs":
            refs = rfs["refs"]
            parts.append(b'"refs": {\n')
            keys = sorted(refs)
            last = len(keys) - 1
            lines = [
                orjson.dumps(k) + b": " + orjson.dumps(refs[k], option=_OPTS) + (b",\n" if j < last else b"\n")
                for j, k in enumerate(keys)
            ]
            parts.append(b"".join(lines))
            parts.append(b"}" + sep + b"\n")
        else:
            parts.append(orjson.dumps(key) + b": " + orjson.dumps(rfs[key], option=_OPTS) + sep + b"\n")
    parts.append(b"}\n")
    return b"".join(parts)


def content_shas(canonical: bytes) -> set[str]:
    """Every object sha1 named by a content ref in canonical bytes (fast scan, no JSON parse)."""
    return {m.decode() for m in _CONTENT_RE.findall(canonical)}


def iter_content_refs(rfs: dict) -> Iterator[tuple[str, ContentRef]]:
    for k, v in rfs["refs"].items():
        cr = as_content_ref(v)
        if cr is not None:
            yield k, cr


def write_atomic(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file and rename, so a reader never sees half a file."""
    import tempfile

    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".lindivc-tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_lindi_json(path: str, rfs: dict) -> None:
    """Write a (materialized) reference file system to ``path`` atomically."""
    write_atomic(path, dumps(rfs))


def missing_locator(cr: ContentRef) -> list:
    raise ObjectMissing(cr.sha1)
