"""Pins (``pins/<id>``): roots of a zone that come from outside its own history, as GC and
``lindivc pin --list`` read them.

A pin carries its roots (docs/format.md section 6.3): chunk names, whole objects and byte ranges
of this zone, as read on the pinning user's machine. Its label (a URL) is only a label: GC
never fetches it. Pins are written by other users, so each is parsed by
:func:`lindivc.documents.parse_pin`, and reading is bounded:

    MAX_PIN_BYTES         a pin listed larger than this is not read
    MAX_PINS_PER_WRITER   pins read per writer (the ``<login>`` of an id ``<login>.<name>``; the
                          ids of older borrow pins count per borrowing zone, other ids together),
                          oldest first
    MAX_PINS              pins read in all, oldest first

A pin past a limit, or one that does not parse, is reported and keeps nothing; it never stops
GC. Writing a pin (reading the pinned file) is :mod:`lindivc.pinning`, the pinning user's own
action.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Collection, Iterator

from ..documents import MAX_PIN_BYTES as _DOC_PIN_BYTES
from ..documents import Pin, parse_pin, pin_writer
from ..errors import UnknownPin
from ..layout import pin_key
from ..zones.base import ObjectInfo, Zone
from .model import InvalidDoc
from .reading import read_documents

MAX_PIN_BYTES = _DOC_PIN_BYTES
MAX_PINS_PER_WRITER = 1000
MAX_PINS = 20_000

_LEGACY_BORROW_ID = re.compile(r"^([0-9a-f]{16})-[0-9a-f]+$")


@dataclass(frozen=True)
class PinEntry:
    """One pin as read: ``pin`` when it parsed and was read, else ``problem`` says why it keeps
    nothing (invalid, too large, past a count limit)."""

    id: str
    mtime: float
    size: int
    pin: Pin | None = None
    problem: str | None = None

    @property
    def writer(self) -> str | None:
        """The login its id names as writer (``<login>.<name>``), if any."""
        return pin_writer(self.id)

    def to_json(self) -> dict:
        p = self.pin
        d: dict = {"id": self.id, "mtime": self.mtime, "size": self.size, "problem": self.problem}
        if p is not None:
            d.update(kind=p.kind, label=p.label, by=p.by, created=p.created, legacy=p.legacy,
                     chunks=len(p.chunks), objects=len(p.objects), ranges=len(p.ranges))
        return d


def writer_group(pin_id: str) -> str:
    """Whose pin ``pin_id`` is for the count limits: its writer's login, the borrowing zone's
    tag of an older borrow pin, or "" (ids that name no writer)."""
    login = pin_writer(pin_id)
    if login is not None:
        return login.lower()
    m = _LEGACY_BORROW_ID.match(pin_id)
    return "legacy-" + m.group(1) if m else ""


def select_pins(infos: dict[str, ObjectInfo]) -> tuple[list[str], dict[str, str]]:
    """Which of the pins ``infos`` (id -> listing) to read under the count limits: (ids to read,
    sorted; id -> why it is skipped)."""
    groups: dict[str, list[tuple[float, str]]] = {}
    for pid, info in infos.items():
        groups.setdefault(writer_group(pid), []).append((info.mtime, pid))
    skipped: dict[str, str] = {}
    kept: list[tuple[float, str]] = []
    for group, members in groups.items():
        members.sort()
        kept += members[:MAX_PINS_PER_WRITER]
        for _, pid in members[MAX_PINS_PER_WRITER:]:
            skipped[pid] = f"skipped: past the limit of {MAX_PINS_PER_WRITER} pins per writer (newest skipped first)"
    kept.sort()
    for _, pid in kept[MAX_PINS:]:
        skipped[pid] = f"skipped: past the limit of {MAX_PINS} pins per zone (newest skipped first)"
    return sorted(pid for _, pid in kept[:MAX_PINS]), skipped


def _parse(data: bytes, key: str) -> Pin:
    return parse_pin(data, key, MAX_PIN_BYTES)


def read_pins(zone: Zone, infos: dict[str, ObjectInfo], only: Collection[str] | None = None) -> Iterator[PinEntry]:
    """Every pin of ``infos`` (id -> its ``pins/`` listing; with ``only``, just those ids),
    read and parsed under the limits (counted over all of ``infos``), in id order. Raises
    ZoneError only when the store fails."""
    to_read, skipped = select_pins(infos)
    wanted = sorted(infos) if only is None else sorted(set(only) & set(infos))
    if only is not None:
        to_read = [pid for pid in to_read if pid in only]
    reads = read_documents(((zone, infos[pid]) for pid in to_read), _parse, MAX_PIN_BYTES)
    nxt = next(reads, None)
    for pid in wanted:
        info = infos[pid]
        if pid in skipped:
            yield PinEntry(pid, info.mtime, info.size, problem=skipped[pid])
            continue
        assert nxt is not None and nxt[1] is info
        got = nxt[2]
        nxt = next(reads, None)
        if got is None:
            continue  # removed since it was listed
        if isinstance(got, InvalidDoc):
            yield PinEntry(pid, info.mtime, info.size, problem=f"invalid: {got.reason}")
        else:
            yield PinEntry(pid, info.mtime, info.size, pin=got)


def list_pins(zone: Zone) -> list[PinEntry]:
    """Every pin of ``zone``, valid or not (never raises for what a pin holds)."""
    infos = {i.key[len("pins/"):]: i for i in zone.list("pins/")}
    return list(read_pins(zone, infos))


def unpin(zone: Zone, pin_id: str) -> None:
    """Remove pin ``pin_id``; UnknownPin if the zone has none of that id."""
    if zone.head(pin_key(pin_id)) is None:
        raise UnknownPin(zone.url, pin_id)
    zone.delete(pin_key(pin_id))
