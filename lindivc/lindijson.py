"""LINDI reference file systems: load, validate, canonicalize (clean) and render (smudge).

A LINDI file is JSON with ``refs`` (key -> dict | str | [url_or_path, offset, size]) and optional
``templates``, ``generationMetadata`` and ``version``. The canonical form (docs/format.md) has
templates expanded, every ref to a lindivc-managed object written as a content ref
``["sha1:<hex>", offset, size]``, and a fixed serialization: one ref per line, keys sorted.
"""
from __future__ import annotations

import gc
import re
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import orjson

from .atomic import atomic_write
from .errors import InvalidLindiFile, ObjectMissing

CONTENT_PREFIX = "sha1:"
LINDI_SUFFIXES = (".lindi.json", ".zarr.json")
_CONTENT_RE = re.compile(rb'"sha1:([0-9a-f]{40})"')
CONTENT_SHA_RE = _CONTENT_RE  # group 1: the sha1 of a content ref in canonical bytes
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


class no_gc:
    """Cyclic GC paused for a block that builds millions of acyclic containers (a parse of a
    large file: every allocation would otherwise count towards collections that find nothing)."""

    def __enter__(self) -> None:
        self.was = gc.isenabled()
        gc.disable()

    def __exit__(self, *a) -> None:
        if self.was:
            gc.enable()


def parse(data: bytes, name: str = "<data>", check: bool = True) -> dict:
    """Parse and validate LINDI JSON bytes; raise InvalidLindiFile with a one-line reason.

    With ``check`` False the caller validates (``canonical_dumps`` does, as it goes).
    """
    try:
        with no_gc():
            rfs = orjson.loads(data)
    except orjson.JSONDecodeError as e:
        raise InvalidLindiFile(name, f"not valid JSON ({e.args[0] if e.args else e})") from None
    if check:
        validate(rfs, name)
    return rfs


def load(path: str, check: bool = True) -> dict:
    """Read and validate the LINDI file at ``path``."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise InvalidLindiFile(path, "no such file") from None
    except IsADirectoryError:
        raise InvalidLindiFile(path, "is a directory") from None
    except OSError as e:  # unreadable (permissions, I/O error): a user's problem, named
        raise InvalidLindiFile(path, f"cannot read: {e.strerror or e}") from None
    return parse(data, path, check)


def validate(rfs: object, name: str = "<data>") -> None:
    """Raise InvalidLindiFile unless ``rfs`` is a well-formed reference file system."""
    _validate_top(rfs, name)
    for k, v in rfs["refs"].items():
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


def _validate_top(rfs: object, name: str) -> None:
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
# A classifier answers, once per distinct URL, what the resolver would make of every ref to it:
#   None     lindivc does not manage the URL, at any offset: refs to it are kept as they are;
#   "<sha1>" the URL is the loose object <sha1>: [url, o, n] is ["sha1:<sha1>", o, n] for all o, n;
#   RESOLVE  it depends on the range (a pack, a zone): ask the resolver for each ref.
# It lets canonicalization of a file of a million refs into one external file skip a million
# resolver calls. A classifier MUST agree with its resolver.
RESOLVE = object()
Classifier = Callable[[str], "str | object | None"]


def _url_memo(templates: dict, classify: "Classifier | None") -> Callable[[str], tuple]:
    """raw url -> (expanded url, classification), remembered per distinct raw url."""
    memo: dict[str, tuple] = {}

    def get(raw: str) -> tuple:
        hit = memo.get(raw)
        if hit is None:
            url = apply_templates(raw, templates) if "{{" in raw else raw
            if url.startswith(CONTENT_PREFIX):
                c: object = None  # already a content ref: kept
            elif classify is None:
                c = RESOLVE
            else:
                c = classify(url)
            hit = memo[raw] = (url, c)
        return hit

    return get


def canonicalize(rfs: dict, resolve: Resolver, classify: "Classifier | None" = None) -> dict:
    """The canonical form of ``rfs`` (a new dict; ``rfs`` is left as it was)."""
    url_of = _url_memo(rfs.get("templates") or {}, classify)
    out_refs: dict = {}
    for k, v in rfs["refs"].items():
        if isinstance(v, list):
            url, c = url_of(v[0])
            if c is None:
                out_refs[k] = [url, v[1], v[2]]
                continue
            if c is not RESOLVE:
                out_refs[k] = [CONTENT_PREFIX + c, v[1], v[2]]
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
    """The JSON object a metadata string holds, else the string as it is (what lindi reads):
    "null", "5" or "[1,2]" are not zarr metadata, and a dict-less canonical form would be
    rejected on checkout; bad base64 is kept too."""
    import base64
    import binascii

    try:
        raw = base64.b64decode(v[7:]) if v.startswith("base64:") else v.encode()
        d = orjson.loads(raw)
    except (orjson.JSONDecodeError, binascii.Error, ValueError):
        return v
    return d if isinstance(d, dict) else v


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
    refs = rfs["refs"]
    keys = sorted(refs)
    last = len(keys) - 1
    lines = [
        orjson.dumps(k) + b": " + orjson.dumps(refs[k], option=_OPTS) + (b",\n" if j < last else b"\n")
        for j, k in enumerate(keys)
    ]
    head, tail = document_parts(rfs)
    return b"".join([head, *lines, tail])


def document_parts(rfs: dict) -> tuple[bytes, bytes]:
    """The serialization of ``rfs`` before and after its ref lines."""
    parts = [b"{\n"]
    top = sorted(rfs)
    cut = 0
    for i, key in enumerate(top):
        sep = b"," if i < len(top) - 1 else b""
        if key == "refs":
            parts.append(b'"refs": {\n')
            cut = len(parts)
            parts.append(b"}" + sep + b"\n")
        else:
            parts.append(orjson.dumps(key) + b": " + orjson.dumps(rfs[key], option=_OPTS) + sep + b"\n")
    parts.append(b"}\n")
    return b"".join(parts[:cut]), b"".join(parts[cut:])


# bytes that JSON strings escape (orjson escapes '"', '\\' and control characters, nothing else)
_ESCAPED = bytes(range(0x20)) + b'"\\'


def _plain_strings(strings: list[str]) -> bool:
    """True if no string needs escaping in JSON (then its JSON is '"' + it + '"')."""
    try:
        b = "".join(strings).encode()
    except UnicodeEncodeError:
        return False
    return len(b.translate(None, _ESCAPED)) == len(b)
_META_SUFFIXES = (".zarray", ".zattrs", ".zgroup")


def canonical_dumps(rfs: dict, resolve: Resolver, classify: "Classifier | None" = None,
                    name: str = "<data>") -> bytes:
    """``dumps(canonicalize(rfs, resolve, classify))`` in one pass, validating ``rfs`` as it goes
    (so ``rfs`` may come from ``parse(..., check=False)``): no intermediate dict, and the line of
    a ref to a known URL is formatted from a prefix rendered once per URL.

    Integers are formatted by Python: the same digits as orjson for the integers JSON parsing
    gives (orjson parses larger ones as floats, which validation rejects).
    tests/test_perf_paths.py compares it with the two-step path on random files.
    """
    _validate_top(rfs, name)
    refs = rfs["refs"]
    keys = list(refs)
    in_order = sorted(keys)
    plain = _plain_strings(keys)
    # a file written by lindivc (or loaded and dumped in order) is sorted: iterate without lookups
    items = refs.items() if in_order == keys else ((k, refs[k]) for k in in_order)
    del keys, in_order
    url_of = _url_memo(rfs.get("templates") or {}, classify)
    prefix: dict[str, str | None] = {}  # raw url -> '["<url or content ref>",' (None: resolve per ref)
    dumps_ = orjson.dumps
    lines: list[str] = []
    append = lines.append
    with no_gc():
        for key, v in items:
            k = key if plain else dumps_(key).decode()[1:-1]  # the key as it is inside JSON quotes
            if isinstance(v, list) and len(v) == 3:
                raw, o, n = v
                if type(o) is not int or type(n) is not int or o < 0 or n < 0 or type(raw) is not str:
                    validate(rfs, name)  # raises, naming the same ref as a separate validation would
                pre = prefix.get(raw, "")
                if pre == "":
                    url, c = url_of(raw)
                    if c is RESOLVE:
                        pre = prefix[raw] = None
                    else:
                        pre = prefix[raw] = "[" + dumps_(url if c is None else CONTENT_PREFIX + c).decode() + ","
                if pre is not None:
                    append(f'"{k}": {pre}{o},{n}]')
                    continue
                url = url_of(raw)[0]
                cr = resolve(url, o, n)
                append(f'"{k}": ' + dumps_(cr.to_json() if cr is not None else [url, o, n]).decode())
            elif isinstance(v, str):
                val = _meta_to_dict(v, key) if key.endswith(_META_SUFFIXES) else v
                append(f'"{k}": ' + dumps_(val, option=_OPTS).decode())
            elif isinstance(v, dict):
                append(f'"{k}": ' + dumps_(v, option=_OPTS).decode())
            else:
                validate(rfs, name)  # raises
                raise AssertionError(f"ref {key!r} passed validation but not canonical_dumps")
        out = {key: val for key, val in rfs.items() if key not in ("refs", "templates")}
        out["refs"] = None
        head, tail = (x.decode() for x in document_parts(out))
        if not lines:
            return (head + tail).encode()
        lines[0] = head + lines[0]
        lines[-1] = lines[-1] + "\n" + tail
        text = ",\n".join(lines)
        del lines
        return text.encode()


# A ref line of the canonical serialization whose location is not a content ref and has no URL
# scheme: a path on the machine that committed it (absolute, or relative to some directory).
_LOCAL_REF_RE = re.compile(rb'": \["(?!sha1:|[A-Za-z][A-Za-z0-9+.-]*://)((?:[^"\\\n]|\\.)*)",(\d+),(\d+)\],?\n')
_SCHEME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_LOCAL_LINK_RE = re.compile(rb'"_EXTERNAL_ARRAY_LINK":\{[^{}\n]*?"url":"(?![A-Za-z][A-Za-z0-9+.-]*://)((?:[^"\\\n]|\\.)*)"')


def is_local_location(url: str) -> bool:
    """True if a ref location names a file path (not a content ref, not a URL with a scheme)."""
    return not url.startswith(CONTENT_PREFIX) and _SCHEME_RE.match(url) is None


def iter_local_refs(canonical: bytes, keys: bool = False) -> Iterator[tuple]:
    """``(path, offset, size)`` of every byte-range ref to a file path in canonical bytes
    (section 4's one ref per line; no JSON parse); with ``keys``, ``(key, path, offset, size)``."""
    if b'": ["' not in canonical:
        return
    for m in _LOCAL_REF_RE.finditer(canonical):
        raw = m.group(1)
        path = orjson.loads(b'"' + raw + b'"') if b"\\" in raw else raw.decode()
        if keys:
            start = canonical.rfind(b"\n", 0, m.start()) + 1
            yield orjson.loads(canonical[start:m.start() + 1]), path, int(m.group(2)), int(m.group(3))
        else:
            yield path, int(m.group(2)), int(m.group(3))


def local_array_links(canonical: bytes) -> list[str]:
    """The file paths that ``_EXTERNAL_ARRAY_LINK`` attributes in canonical bytes link to."""
    if b"_EXTERNAL_ARRAY_LINK" not in canonical:
        return []
    return [orjson.loads(b'"' + m.group(1) + b'"') for m in _LOCAL_LINK_RE.finditer(canonical)]


#: at most this many whole-URL templates in a published file: lindi substitutes every template
#: into every ref it reads, fsspec formats every ref with all of them
MAX_URL_TEMPLATES = 1000


def use_templates(rfs: dict, bases: Iterable[str] = (), min_uses: int = 5,
                  max_url_templates: int = MAX_URL_TEMPLATES) -> dict:
    """``rfs`` (without templates) written with LINDI ``templates``, as a new dict (docs/format.md
    6.7): a URL used ``min_uses`` times or more becomes ``{{uN}}`` (lindi's own rule, numbered
    from 1 in sorted order; the ``max_url_templates`` most used); any other URL that starts with
    one of ``bases`` becomes ``{{zN}}<rest>`` (one template per base used, numbered from 0 in
    sorted order). lindi, fsspec (with or without jinja2) and Neurosift read the result as the
    expanded file."""
    refs = rfs["refs"]
    ordered = sorted((b for b in set(bases) if b and "{" not in b and "}" not in b), key=len, reverse=True)
    counts: dict[str, int] = {}
    for v in refs.values():
        if isinstance(v, list) and len(v) == 3 and isinstance(v[0], str):
            counts[v[0]] = counts.get(v[0], 0) + 1
    for u in [u for u in counts if u.startswith(CONTENT_PREFIX) or "{" in u or "}" in u]:
        del counts[u]  # content refs are not locations; a brace would break fsspec's simple templates
    frequent = sorted((u for u, n in counts.items() if n >= min_uses), key=lambda u: (-counts[u], u))
    whole = sorted(frequent[:max_url_templates])
    names = {u: f"u{i}" for i, u in enumerate(whole, 1)}
    base_of: dict[str, str] = {}
    for url in counts:
        if url in names:
            continue
        for b in ordered:
            if url.startswith(b) and len(url) > len(b):
                base_of[url] = b
                break
    used_bases = sorted(set(base_of.values()))
    base_names = {b: f"z{i}" for i, b in enumerate(used_bases)}
    new_url: dict[str, str] = {u: "{{" + names[u] + "}}" for u in whole}
    for u, b in base_of.items():
        new_url[u] = "{{" + base_names[b] + "}}" + u[len(b):]
    out_refs: dict = {}
    with no_gc():
        for k, v in refs.items():
            if type(v) is list and len(v) == 3:
                t = new_url.get(v[0])
                if t is not None:
                    v = [t, v[1], v[2]]
            out_refs[k] = v
    out = {key: val for key, val in rfs.items() if key not in ("refs", "templates")}
    templates = {**{n: b for b, n in base_names.items()}, **{n: u for u, n in names.items()}}
    if templates:
        out["templates"] = templates
    out["refs"] = out_refs
    return out


def reuse_templates(rfs: dict, templates: dict[str, str]) -> dict:
    """``rfs`` (without templates) written with the given ``templates`` again, as a new dict: a
    ref URL that starts with a template's value (the longest that fits) becomes ``{{name}}<rest>``.
    What a rewrite of a published file uses to keep its templates."""
    ordered = sorted(((v, k) for k, v in templates.items() if v and "{" not in v and "}" not in v),
                     key=lambda t: len(t[0]), reverse=True)
    memo: dict[str, str] = {}
    out_refs: dict = {}
    with no_gc():
        for k, v in rfs["refs"].items():
            if type(v) is list and len(v) == 3 and type(v[0]) is str and not v[0].startswith(CONTENT_PREFIX):
                t = memo.get(v[0])
                if t is None:
                    t = memo[v[0]] = next(("{{" + n + "}}" + v[0][len(b):] for b, n in ordered if v[0].startswith(b)),
                                          v[0])
                v = [t, v[1], v[2]]
            out_refs[k] = v
    out = {key: val for key, val in rfs.items() if key not in ("refs", "templates")}
    if templates:
        out["templates"] = dict(templates)
    out["refs"] = out_refs
    return out


def content_shas(canonical: bytes) -> set[str]:
    """Every object sha1 named by a content ref in canonical bytes (fast scan, no JSON parse)."""
    return {m.decode() for m in _CONTENT_RE.findall(canonical)}


def iter_content_refs(rfs: dict) -> Iterator[tuple[str, ContentRef]]:
    for k, v in rfs["refs"].items():
        cr = as_content_ref(v)
        if cr is not None:
            yield k, cr


def write_lindi_json(path: str, rfs: dict) -> None:
    """Write a (materialized) reference file system to ``path`` atomically."""
    atomic_write(path, dumps(rfs))


def missing_locator(cr: ContentRef) -> list:
    raise ObjectMissing(cr.sha1)
