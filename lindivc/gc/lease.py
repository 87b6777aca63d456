"""The GC lease ``lease/gc``: one GC at a time per zone (docs/gc.md, "One GC at a time").

Created with a conditional write; it expires; a sweep renews it by compare-and-swap; an expired
lease is reported and taken over only when asked (``break_lease``). Every change of the lease
names the value it replaces (its etag).
"""
from __future__ import annotations

import getpass
import json
import os
import socket
import uuid
from dataclasses import dataclass

from ..errors import LeaseHeld, LeaseLost, PreconditionFailed, ZoneKeyMissing
from ..layout import GC_LEASE_KEY
from ..zones.base import Zone

LEASE_FORMAT = "lindivc-lease/1"
LEASE_TTL = 3600.0


@dataclass
class Lease:
    """A GC lease this process holds: ``etag`` is the value of ``lease/gc`` it last wrote."""

    zone: Zone
    id: str
    etag: str
    holder: str
    acquired: float = 0.0
    expires: float = 0.0

    def renew_if_due(self, ttl: float = LEASE_TTL) -> None:
        """Extend the lease (compare-and-swap on its etag) once half its time has passed, so a
        long sweep keeps it; LeaseLost if another GC took it over (this one must stop)."""
        now = self.zone.now()
        if now < self.expires - ttl / 2:
            return
        try:
            self.etag = self.zone.put(GC_LEASE_KEY, _record(self.id, self.holder, self.acquired, now + ttl),
                                      if_match=self.etag)
        except PreconditionFailed:
            raise LeaseLost(self.zone.url, "the GC lease was taken over (--break-lease) while this GC ran; "
                                           "stopped, nothing more deleted") from None
        self.expires = now + ttl

    def release(self) -> bool:
        """Delete the lease if it is still ours: its etag is the one this lease last wrote (or,
        where the zone gives no etag, it names our id). Returns whether it was deleted.

        Zones offer no conditional delete, so this checks, then deletes: another GC that breaks
        the lease (``--break-lease``, only once it has expired) in the moment between the check
        and the delete would lose its new lease. That needs this GC to have outlived its lease
        without renewing it, and the other to strike in those milliseconds; the other GC then
        stops at its next renewal or runs alone, as after any lost lease.
        """
        info = self.zone.head(GC_LEASE_KEY)
        if info is None:
            return False
        if info.etag and self.etag:
            ours = info.etag == self.etag
        else:
            try:
                ours = json.loads(self.zone.get(GC_LEASE_KEY)).get("id") == self.id
            except (ZoneKeyMissing, ValueError, AttributeError):
                ours = False
        if ours:
            self.zone.delete(GC_LEASE_KEY)
        return ours


def _record(lease_id: str, holder: str, acquired: float, expires: float) -> bytes:
    rec = {"format": LEASE_FORMAT, "id": lease_id, "holder": holder, "acquired": acquired, "expires": expires}
    return json.dumps(rec, sort_keys=True).encode()


def _holder() -> str:
    try:
        user = getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name is not an error
        user = "unknown"
    return f"{user}@{socket.gethostname()} pid {os.getpid()}"


def read_lease(zone: Zone) -> dict | None:
    """The lease record in ``zone`` (with its ``etag``), or None."""
    info = zone.head(GC_LEASE_KEY)
    if info is None:
        return None
    try:
        rec = json.loads(zone.get(GC_LEASE_KEY))
    except ZoneKeyMissing:
        return None
    except ValueError:
        rec = {"holder": "unreadable lease", "acquired": info.mtime, "expires": info.mtime}
    rec["etag"] = info.etag
    return rec


def acquire_lease(zone: Zone, *, ttl: float = LEASE_TTL, break_lease: bool = False) -> Lease:
    """Take the zone's GC lease (conditional create). Raises LeaseHeld when another GC holds it,
    or when it is expired and ``break_lease`` is not set; AccessDenied without write rights."""
    now = zone.now()
    lease_id, holder = uuid.uuid4().hex, _holder()
    data = _record(lease_id, holder, now, now + ttl)
    for _ in range(3):
        try:
            etag = zone.put(GC_LEASE_KEY, data, if_none_match=True)
            return Lease(zone, lease_id, etag, holder, now, now + ttl)
        except PreconditionFailed:
            cur = read_lease(zone)
            if cur is None:
                continue
            expired = float(cur.get("expires", 0)) <= zone.now()
            if not expired or not break_lease:
                raise LeaseHeld(zone.url, str(cur.get("holder")), float(cur.get("acquired", 0)),
                                float(cur.get("expires", 0)), expired) from None
            try:
                etag = zone.put(GC_LEASE_KEY, data, if_match=cur["etag"]) if cur.get("etag") else None
            except PreconditionFailed:
                continue
            if etag is None:
                zone.delete(GC_LEASE_KEY)
                continue
            return Lease(zone, lease_id, etag, holder, now, now + ttl)
    raise LeaseLost(zone.url, "the GC lease keeps changing; try again")
