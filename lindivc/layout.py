"""The key layout of a zone (docs/format.md, "Zones") and validation of keys and zone URLs.

All keys here are relative to the zone prefix, '/'-separated, never starting with '/'.

    f/<path>                the published LINDI file at the branch head
    v/<commit>/<path>       immutable published version
    sha1/aa/bb/cc/<sha1>    objects: loose chunks and packs
    idx/<packsha1>          pack indexes
    git/...                 history in git's dumb-protocol layout
    journal/<id>            push journal entries
    pins/<id>               external roots
    borrow/<id>             chunks this zone's files reference in another zone of its cloud
    info/idx, info/borrow   derived lists of idx/ and borrow/ names, for zones that cannot list
    info/public             the zone owner's public base URL, for borrowers' published files
    lease/gc                the GC lease
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import InvalidKey
from .objects import fanout, is_sha1

TOP_PREFIXES = ("f", "v", "sha1", "idx", "git", "journal", "pins", "borrow", "info", "lease")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
PART_RE = re.compile(r"^[A-Za-z0-9._@+=,-]{1,255}$")
ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
MAX_KEY = 1024


def object_key(sha1: str) -> str:
    return "sha1/" + fanout(sha1)


def index_key(pack_sha1: str) -> str:
    return "idx/" + pack_sha1


def file_key(path: str) -> str:
    return "f/" + path


def version_key(commit: str, path: str) -> str:
    return f"v/{commit}/{path}"


def git_key(rel: str) -> str:
    return "git/" + rel


def journal_key(entry_id: str) -> str:
    return "journal/" + entry_id


def pin_key(pin_id: str) -> str:
    return "pins/" + pin_id


def borrow_key(entry_id: str) -> str:
    return "borrow/" + entry_id


GC_LEASE_KEY = "lease/gc"
PUBLIC_KEY = "info/public"
INFO_KEYS = ("info/idx", "info/borrow", PUBLIC_KEY)

# Format names of the documents under journal/, borrow/, pins/ and info/public (docs/format.md section 6.3)
JOURNAL_FORMAT = "lindivc-journal/1"
BORROW_FORMAT = "lindivc-borrow/1"
PIN_FORMAT = "lindivc-pin/2"  # pins carry their roots (docs/format.md 6.3)
LEGACY_PIN_FORMAT = "lindivc-pin/1"  # still read (its URL never followed), no longer written
PUBLIC_FORMAT = "lindivc-public/1"  # info/public


def sha1_from_object_key(key: str) -> str | None:
    """The sha1 named by a key ending in ``sha1/aa/bb/cc/<hex>`` (any prefix before), else None."""
    parts = key.rstrip("/").split("/")
    if len(parts) < 5 or parts[-5] != "sha1":
        return None
    h = parts[-1]
    if is_sha1(h) and parts[-4:] == fanout(h).split("/"):
        return h
    return None


def validate_path(path: str) -> str:
    """A working-tree relative path as stored in trees and under f/ and v/; raise InvalidKey."""
    if not path or path.startswith("/") or "\\" in path or len(path) > MAX_KEY:
        raise InvalidKey(f"invalid path: {path!r}")
    for part in path.split("/"):
        if part in ("", ".", "..") or not PART_RE.match(part):
            raise InvalidKey(f"invalid path: {path!r}")
    return path


def validate_key(key: str) -> str:
    """Check a zone-relative key against the layout; return it or raise InvalidKey."""
    if not isinstance(key, str) or not key or len(key) > MAX_KEY or key.startswith("/"):
        raise InvalidKey(f"invalid key: {key!r}")
    parts = key.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise InvalidKey(f"invalid key: {key!r}")
    top = parts[0]
    rest = "/".join(parts[1:])
    if top == "sha1":
        if sha1_from_object_key(key) is None or len(parts) != 5:
            raise InvalidKey(f"invalid object key: {key!r}")
    elif top == "idx":
        if len(parts) != 2 or not is_sha1(parts[1]):
            raise InvalidKey(f"invalid index key: {key!r}")
    elif top == "f":
        validate_path(rest)
    elif top == "v":
        if len(parts) < 3 or not is_sha1(parts[1]):
            raise InvalidKey(f"invalid version key: {key!r}")
        validate_path("/".join(parts[2:]))
    elif top == "git":
        validate_path(rest)
    elif top in ("journal", "pins", "borrow"):
        if len(parts) != 2 or not ID_RE.match(parts[1]):
            raise InvalidKey(f"invalid {top} key: {key!r}")
    elif top == "info":
        if key not in INFO_KEYS:
            raise InvalidKey(f"invalid info key: {key!r}")
    elif top == "lease":
        if key != GC_LEASE_KEY:
            raise InvalidKey(f"invalid lease key: {key!r}")
    else:
        raise InvalidKey(f"invalid key {key!r}: not under one of {', '.join(TOP_PREFIXES)}")
    return key


@dataclass(frozen=True)
class ZoneURL:
    """A parsed zone URL.

    ``cloud_root`` is the URL of the cloud the zone belongs to (``<root>`` in
    ``<root>/zones/<user>/<zone>``), or the zone URL itself when it has no such pattern.
    ``user`` and ``name`` are set only for cloud zones.
    """

    url: str
    scheme: str  # "file", "s3", "http", "https"
    cloud_root: str
    user: str | None
    name: str | None

    @property
    def in_cloud(self) -> bool:
        return self.user is not None


def normalize_public_url(url: str) -> str:
    """A zone's public base URL (what published refs start with), ending in ``/``; raise
    InvalidPublicURL unless it is an http(s) URL with a host and no query or fragment."""
    import urllib.parse

    from .errors import InvalidPublicURL

    u = url.strip() if isinstance(url, str) else ""
    p = urllib.parse.urlsplit(u)
    if p.scheme not in ("http", "https") or not p.hostname or p.query or p.fragment or "{" in u or "}" in u \
            or any(c.isspace() for c in u):
        raise InvalidPublicURL(url)
    return u if u.endswith("/") else u + "/"


def parse_zone_url(url: str) -> ZoneURL:
    """Parse a zone URL (local path, file://, s3://bucket/prefix, http(s)://...); raise InvalidKey."""
    import os

    if not isinstance(url, str) or not url.strip():
        raise InvalidKey("empty zone URL")
    u = url.strip()
    if u.startswith("file://"):
        scheme, u = "file", os.path.abspath(u[len("file://"):])
    elif u.startswith("s3://"):
        scheme = "s3"
        bucket = u[5:].split("/", 1)[0]
        if not re.match(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", bucket):
            raise InvalidKey(f"invalid S3 bucket name in {url!r}")
    elif u.startswith("http://") or u.startswith("https://"):
        scheme = u.split(":", 1)[0]
        if not u.split("://", 1)[1]:
            raise InvalidKey(f"invalid URL {url!r}: no host")
    elif "://" in u:
        raise InvalidKey(f"unsupported zone URL scheme in {url!r} (use a directory, s3://, http(s)://)")
    else:
        scheme, u = "file", os.path.abspath(os.path.expanduser(u))
    u = u.rstrip("/")
    parts = u.split("/")
    if scheme in ("http", "https") and any(p in ("..", ".") for p in parts[3:]):
        raise InvalidKey(f"invalid zone URL {url!r}")
    if len(parts) >= 3 and parts[-3] == "zones" and NAME_RE.match(parts[-2]) and NAME_RE.match(parts[-1]):
        root = "/".join(parts[:-3])
        return ZoneURL(u, scheme, root, parts[-2], parts[-1])
    if any(p == ".." for p in parts):
        raise InvalidKey(f"invalid zone URL {url!r}")
    return ZoneURL(u, scheme, u, None, None)
