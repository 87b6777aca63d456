"""``lindivc pin``: keep the data a LINDI file elsewhere uses, by leaving a pin that carries it.

Pinning is the pinning user's own action: the file is read here, on their machine, with their
credentials and network (http(s), ``s3://``, a local path), and its refs into the zone are
mapped to the zone's objects. The pin (``lindivc-pin/2``, docs/format.md section 6.3) stores
those byte ranges (or, for a file that references very many, whole objects) and the URL only as
a label: GC reads the pin, never the URL. When the pinned file changes, ``lindivc pin --refresh``
reads it again and rewrites the pin (:func:`refresh_pins`).

The pin id is ``<writer>.url-<24 hex of sha1(URL)>``: the writer is the gateway login, or the
zone's user, or "local" (:func:`lindivc.documents.writer_for`), so pinning a URL again rewrites
the same pin. Reading pins (``--list``) and removing them is :mod:`lindivc.gc.pins`.
"""
from __future__ import annotations

import contextlib
import hashlib
import time
from dataclasses import dataclass, field
from typing import BinaryIO, Iterator

from .catalog import zone_names
from .documents import Pin, ByteRange, parse_pin, pin_id, writer_for
from .errors import AccessDenied, LindivcError, NothingToPin, PinTooLarge, PinUnreadable, UnknownPin
from .gc.pins import PinEntry, list_pins
from .gc.published import FileRanges, ranges_in
from .layout import index_key, pin_key
from .zones.base import Zone

#: what a pin this module writes may weigh: under a gateway's default limit (1 MiB)
PIN_TARGET_BYTES = 768 << 10


@dataclass
class PinResult:
    """A pin written: its ``id`` and document; ``missing``: objects it names that the zone no
    longer indexes (collected before the pin landed: the pinned file cannot read them)."""

    id: str
    pin: Pin
    replaced: str | None = None  # the id of an older pin of the same file that this one replaces
    missing: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"id": self.id, "kind": self.pin.kind, "label": self.pin.label, "by": self.pin.by,
                "created": self.pin.created, "chunks": len(self.pin.chunks), "objects": len(self.pin.objects),
                "ranges": len(self.pin.ranges), "replaced": self.replaced, "missing": self.missing}


@dataclass
class Refreshed:
    """One pin ``--refresh`` handled: the new pin, or why it could not be refreshed."""

    id: str
    label: str | None
    result: PinResult | None = None
    error: str | None = None


@contextlib.contextmanager
def open_file(url: str) -> Iterator[BinaryIO]:
    """A stream of the file at ``url`` (http(s), s3://, file:// or a path), read on this machine
    with this user's credentials; PinUnreadable if it cannot be opened."""
    if url.startswith(("http://", "https://")):
        import requests  # imported when needed, like the zone backends

        try:
            resp = requests.get(url, stream=True, timeout=60)
            resp.raise_for_status()
        except requests.RequestException as e:
            raise PinUnreadable(url, str(e).splitlines()[0][:200]) from None
        resp.raw.decode_content = True
        try:
            yield resp.raw
        finally:
            resp.close()
    elif url.startswith("s3://"):
        from .zones.s3 import make_client

        bucket, _, key = url[len("s3://"):].partition("/")
        try:
            body = make_client().get_object(Bucket=bucket, Key=key)["Body"]
        except Exception as e:  # noqa: BLE001 - botocore's errors have no common base worth naming
            raise PinUnreadable(url, str(e).splitlines()[0][:200]) from None
        try:
            yield body
        finally:
            body.close()
    else:
        path = url[len("file://"):] if url.startswith("file://") else url
        try:
            f = open(path, "rb")
        except OSError as e:
            raise PinUnreadable(url, e.strerror or type(e).__name__) from None
        with f:
            yield f


def pin(zone: Zone, url: str, *, replaces: str | None = None) -> PinResult:
    """Pin the LINDI file at ``url`` in ``zone``: read it here, and write a pin carrying the byte
    ranges it references in the zone (whole objects when ranges would not fit). With
    ``replaces``, remove that older pin once the new one is written (unless it has the same id).

    Raises PinUnreadable (the file cannot be read), InvalidDocument (it is not a LINDI file, or
    ``url`` is no label a pin can carry), NothingToPin (it references nothing in the zone),
    PinTooLarge, ZoneError.
    """
    objects = set(zone_names(zone, "idx"))
    with open_file(url) as stream:
        found: FileRanges = ranges_in(objects)(stream, url)
    if not found.ranges:
        raise NothingToPin(url, zone.url)
    doc = _fitting_pin(zone, url, found.ranges)
    writer = writer_for(zone.login(), zone.url)
    pid = pin_id(writer, "url-" + hashlib.sha1(url.encode()).hexdigest()[:24])
    data = doc.to_bytes()
    parse_pin(data, pin_key(pid))  # what a gateway would refuse, refused here first
    zone.put(pin_key(pid), data)
    named = sorted(set(doc.objects) | {r.object for r in doc.ranges})
    out = PinResult(pid, doc, missing=[o for o in named if not zone.exists(index_key(o))])
    if replaces is not None and replaces != pid:
        try:
            zone.delete(pin_key(replaces))
            out.replaced = replaces
        except AccessDenied:
            pass  # someone else's pin in someone else's zone: it stays
    return out


def _fitting_pin(zone: Zone, url: str, ranges: list[tuple[str, int, int]]) -> Pin:
    """A file pin of ``ranges``, or of the objects they fall in when that is too large."""
    by = zone.login()
    now = time.time()
    doc = Pin("file", url, now, by, ranges=tuple(ByteRange(*r) for r in ranges))
    if len(doc.to_bytes()) <= PIN_TARGET_BYTES:
        return doc
    doc = Pin("file", url, now, by, objects=tuple({r[0] for r in ranges}))
    if len(doc.to_bytes()) > PIN_TARGET_BYTES:
        raise PinTooLarge(url, zone.url, len(doc.objects), PIN_TARGET_BYTES // 43)
    return doc


def refresh_pins(zone: Zone, target: str | None = None) -> list[Refreshed]:
    """Read the pinned file of each file pin again and rewrite its pin: the pin ``target`` (an id
    or a pinned URL), or, without it, every file pin this user wrote (its id names them) and
    every older ``lindivc-pin/1`` file pin. Failures are returned, one per pin; UnknownPin when
    ``target`` names no pin."""
    writer = writer_for(zone.login(), zone.url)
    entries = list_pins(zone)
    if target is not None:
        chosen = [e for e in entries if e.id == target or (e.pin is not None and e.pin.label == target)]
        if not chosen:
            raise UnknownPin(zone.url, target)
    else:
        chosen = [e for e in entries if e.pin is not None and e.pin.kind == "file"
                  and (e.writer == writer or e.pin.legacy)]
    return [_refresh(zone, e) for e in chosen]


def _refresh(zone: Zone, e: PinEntry) -> Refreshed:
    if e.pin is None:
        return Refreshed(e.id, None, error=f"{e.problem}; remove it with `lindivc pin --remove {e.id}`")
    if e.pin.kind != "file":
        return Refreshed(e.id, e.pin.label, error="a borrow pin (push writes it): nothing to read again")
    try:
        return Refreshed(e.id, e.pin.label, pin(zone, e.pin.label, replaces=e.id))
    except LindivcError as err:
        return Refreshed(e.id, e.pin.label, error=str(err))
