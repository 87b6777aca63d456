"""Pins (``pins/<id>``): roots of a zone that come from outside its own history.

Two kinds (docs/gc.md): a pin that another zone of the cloud leaves when it borrows from this
one (``{"by": <zone URL>, "chunks": [...], "objects": [...]}``, written by push), and a pin of
a LINDI file elsewhere (``{"by": "external", "file": <URL>, "objects": [...]}``, written by
:func:`pin`), whose file every GC reads. A pin of unknown kind keeps the objects it lists.
This module reads and writes pin documents; :mod:`.roots` turns them into roots.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Iterable

from ..errors import NothingToPin, PinUnreadable, UnknownPin, ZoneKeyMissing
from ..layout import LEGACY_PIN_FORMAT as PIN_FORMAT  # `lindivc pin` writes pin/1 until it moves to pin/2
from ..layout import object_key, pin_key
from ..zones.base import Zone
from .published import iter_range_refs
from .urlread import read_url


def read_pin(zone: Zone, pin_id: str) -> dict:
    """The document of pin ``pin_id`` (empty if it is gone or not JSON)."""
    try:
        return json.loads(zone.get(pin_key(pin_id)))
    except (ZoneKeyMissing, ValueError):
        return {}


@dataclass
class PinsRead:
    """A zone's pins as one GC read them."""

    docs: dict[str, dict] = field(default_factory=dict)  # pin id -> document
    files: dict[str, bytes] = field(default_factory=dict)  # pin id -> the external file it names
    blocked: list[str] = field(default_factory=list)  # one line per external file that could not be read
    fingerprint_lines: list[bytes] = field(default_factory=list)  # one per external file: its hash


def read_pins(zone: Zone, pin_ids: Iterable[str]) -> PinsRead:
    """Read every pin of ``pin_ids`` and the file each external pin names."""
    out = PinsRead()
    for pid in sorted(pin_ids):
        doc = out.docs[pid] = read_pin(zone, pid)
        if doc.get("file"):
            try:
                out.files[pid] = read_url(doc["file"])
                out.fingerprint_lines.append(hashlib.sha1(out.files[pid]).digest())
            except PinUnreadable as e:
                out.blocked.append(f"pin {pid}: {e}")
                out.fingerprint_lines.append(b"unreadable")
    return out


def pin(zone: Zone, url: str) -> dict:
    """Record the LINDI file at ``url`` (outside the cloud) as a root of ``zone``: every GC reads
    it and keeps the objects it references. Returns the pin record (with ``id``).

    Raises PinUnreadable if the file cannot be read, NothingToPin if it references nothing in
    the zone.
    """
    data = read_url(url)
    shas = {sha for sha, _, _ in iter_range_refs(data)}
    mine = sorted(s for s in shas if zone.exists(object_key(s)))
    if not mine:
        raise NothingToPin(url, zone.url)
    pid = "url-" + hashlib.sha1(url.encode()).hexdigest()[:24]
    rec = {"format": PIN_FORMAT, "by": "external", "file": url, "objects": mine, "created": time.time()}
    zone.put(pin_key(pid), json.dumps(rec, sort_keys=True).encode())
    rec["id"] = pid
    return rec


def list_pins(zone: Zone) -> list[dict]:
    """Every pin of ``zone``: its document with ``id`` and ``mtime`` added."""
    out = []
    for info in zone.list("pins/"):
        rec = read_pin(zone, info.key[len("pins/"):])
        rec["id"] = info.key[len("pins/"):]
        rec["mtime"] = info.mtime
        out.append(rec)
    return out


def unpin(zone: Zone, pin_id: str) -> None:
    """Remove pin ``pin_id``; UnknownPin if the zone has none of that id."""
    if zone.head(pin_key(pin_id)) is None:
        raise UnknownPin(zone.url, pin_id)
    zone.delete(pin_key(pin_id))
