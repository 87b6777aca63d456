"""One listing of a zone and of its cloud's published files: what a GC plan starts from.

Every key listed also goes into the fingerprint lines (:mod:`.cache`), so a later GC can tell
that nothing changed since.
"""
from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from .. import zonerefs
from ..errors import ZoneError
from ..layout import sha1_from_object_key
from ..zones.base import ObjectInfo, Zone

LIST_THREADS = 16  # zones of the cloud listed at once (each listing is a round trip or more)


@dataclass
class ZoneListing:
    """A zone's refs and keys split by prefix, and its cloud's published files."""

    refs: dict[str, str] = field(default_factory=dict)  # full ref name -> commit
    objects: dict[str, ObjectInfo] = field(default_factory=dict)  # sha1 -> its sha1/ key
    indexes: dict[str, ObjectInfo] = field(default_factory=dict)  # pack -> its idx/ key
    files: list[ObjectInfo] = field(default_factory=list)  # own f/ and v/ files
    journals: dict[str, ObjectInfo] = field(default_factory=dict)  # id -> its journal/ key
    pins: dict[str, ObjectInfo] = field(default_factory=dict)  # id -> its pins/ key
    siblings: list[Zone] = field(default_factory=list)  # the other zones of the cloud
    sibling_files: list[tuple[Zone, ObjectInfo]] = field(default_factory=list)  # their f/ and v/ files
    fingerprint_parts: list[tuple[str | None, bytes]] = field(default_factory=list)  # (own key or None, line)


def list_zone(zone: Zone) -> ZoneListing:
    """List ``zone`` (all but the lease and the derived ``info/`` lists), read its refs, and list
    the published files of every other zone of its cloud.

    Raises ZoneError when a zone of the cloud cannot be listed (GC cannot know what it references).
    """
    out = ZoneListing(refs=zonerefs.list_remote_refs(zone))
    parts = out.fingerprint_parts
    for info in zone.list(""):
        k = info.key
        top = k.split("/", 1)[0]
        if top in ("lease", "info"):  # the lease, and lists derived from idx/ and borrow/
            continue
        parts.append((k, f"{k}\0{info.size}\0{info.mtime}\n".encode()))
        if top == "sha1":
            sha = sha1_from_object_key(k)
            if sha:
                out.objects[sha] = info
        elif top == "idx":
            out.indexes[k[4:]] = info
        elif top in ("f", "v"):
            out.files.append(info)
        elif top == "journal":
            out.journals[k[8:]] = info
        elif top == "pins":
            out.pins[k[5:]] = info
    out.siblings = list(zone.siblings())
    with ThreadPoolExecutor(max_workers=LIST_THREADS) as ex:
        for sib, files in zip(out.siblings, ex.map(_published_files, out.siblings)):
            for info in files:
                out.sibling_files.append((sib, info))
                parts.append((None, f"{sib.url}\0{info.key}\0{info.size}\0{info.mtime}\n".encode()))
    parts.append((None, json.dumps(sorted(out.refs.items())).encode()))
    return out


def _published_files(sib: Zone) -> list[ObjectInfo]:
    """The ``f/`` and ``v/`` keys of zone ``sib``; ZoneError if it cannot be listed."""
    try:
        return [info for top in ("f/", "v/") for info in sib.list(top)]
    except ZoneError as e:
        raise ZoneError(f"cannot scan {sib.url} (a zone of the same cloud, whose files may reference "
                        f"this zone's objects): {e}; GC stopped, nothing deleted") from None
