"""Errors of garbage collection, pins and fsck."""
from __future__ import annotations

import time

from .base import LindivcError


class GCError(LindivcError):
    """GC refused to run or to continue."""


class InvalidGrace(GCError):
    """A grace period that cannot be parsed, or zero (``now``) without the explicit flag."""

    def __init__(self, text: str, reason: str) -> None:
        self.text = text
        self.reason = reason
        super().__init__(f"invalid grace period {text!r}: {reason}")


class LeaseHeld(GCError):
    """Another GC holds the zone's lease (``expired`` tells whether it is stale)."""

    def __init__(self, zone: str, holder: str, acquired: float, expires: float, expired: bool) -> None:
        self.zone, self.holder, self.acquired, self.expires, self.expired = zone, holder, acquired, expires, expired
        when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(acquired))
        if expired:
            msg = (f"{zone}: a stale GC lease (held by {holder} since {when}, expired) is in place; "
                   "that GC may have crashed. Check that it is not running, then run again with --break-lease")
        else:
            msg = f"{zone}: another GC holds the lease ({holder} since {when}); try again later"
        super().__init__(msg)


class LeaseLost(GCError):
    """The GC lease of ``zone`` was taken over (or keeps changing) while this GC needed it."""

    def __init__(self, zone: str, reason: str) -> None:
        self.zone = zone
        self.reason = reason
        super().__init__(f"{zone}: {reason}")


class RefsChanged(GCError):
    """What a GC plan was made from changed before the sweep ended: ``key`` (a ref, a journal
    entry, a pin, a rendered file) in ``where`` (a zone URL or a repository). Start over."""

    def __init__(self, where: str, key: str, reason: str) -> None:
        self.where = where
        self.key = key
        self.reason = reason
        super().__init__(f"{where}: {reason}")


class PinUnreadable(GCError):
    """The file to pin (``lindivc pin URL``) could not be read on this machine."""

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(f"cannot read the file to pin {url}: {reason}")


class PinTooLarge(GCError):
    """The file to pin references more objects of ``zone`` (``objects``) than one pin can name."""

    def __init__(self, url: str, zone: str, objects: int, limit: int) -> None:
        self.url = url
        self.zone = zone
        self.objects = objects
        self.limit = limit
        super().__init__(f"{url} references {objects} objects of zone {zone}; a pin names at most {limit}")


class NothingToPin(GCError):
    """A file to pin that references no object of the zone."""

    def __init__(self, url: str, zone: str) -> None:
        self.url = url
        self.zone = zone
        super().__init__(f"{url} references no object of zone {zone}; nothing to pin")


class UnknownPin(GCError):
    """A pin id the zone does not have."""

    def __init__(self, zone: str, pin: str) -> None:
        self.zone = zone
        self.pin = pin
        super().__init__(f"zone {zone} has no pin {pin!r} (see `lindivc pin --list`)")


class RepackRefused(GCError):
    """Published file ``key`` has a ref to byte ``offset`` of ``pack``, which no live chunk
    holds: the pack is not repacked."""

    def __init__(self, key: str, offset: int, pack: str) -> None:
        self.key = key
        self.offset = offset
        self.pack = pack
        super().__init__(f"{key}: a ref to byte {offset} of pack {pack} points into dead bytes; repack abandoned")


class FsckFailed(LindivcError):
    """fsck found problems in ``target`` (the report names each)."""

    def __init__(self, target: str, problems: int) -> None:
        self.target = target
        self.problems = problems
        super().__init__(f"fsck found {problems} problem(s)")
