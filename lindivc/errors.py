"""The errors lindivc raises for conditions a user can cause.

Every subclass of :class:`LindivcError` is printed by the CLI as one line on stderr with exit
status 1 and no traceback. Any other exception is a bug and keeps its traceback.
"""
from __future__ import annotations

import json
import time


class LindivcError(Exception):
    """Base class of all user-facing lindivc errors."""


class NotARepository(LindivcError):
    """No lindivc repository at or above a directory."""

    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(f"not a lindivc repository (or any parent up to /): {path}")


class AlreadyARepository(LindivcError):
    """`init` inside an existing repository."""

    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(f"already inside a lindivc repository: {path}")


class InvalidLindiFile(LindivcError):
    """A LINDI file that is not valid JSON or not a valid reference file system."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class InvalidPackIndex(InvalidLindiFile):
    """A pack index that is not valid JSON of format ``lindivc-pack-index/1``, is truncated, or
    describes ranges that cannot belong to its pack."""

    def __init__(self, where: str, reason: str) -> None:
        super().__init__(where, f"invalid pack index: {reason}")


class ObjectMissing(LindivcError):
    """An object named by a ref is in no store that was asked."""

    def __init__(self, sha1: str, where: str = "the local object store") -> None:
        self.sha1 = sha1
        self.where = where
        super().__init__(f"object {sha1} is missing from {where}")


class ChecksumMismatch(LindivcError):
    """Bytes read for an object do not hash to its name."""

    def __init__(self, expected: str, got: str, where: str = "") -> None:
        self.expected = expected
        self.got = got
        self.where = where
        at = f" at {where}" if where else ""
        super().__init__(f"corrupt object{at}: expected sha1 {expected}, got {got}")


class RefConflict(LindivcError):
    """A compare-and-swap ref update found a value other than the expected one."""

    def __init__(self, name: str, expected: str | None, actual: str | None, hint: str = "") -> None:
        self.name = name
        self.expected = expected
        self.actual = actual
        msg = f"ref {name} changed concurrently (expected {expected or 'none'}, found {actual or 'none'})"
        super().__init__(msg + (f"; {hint}" if hint else ""))


class UnknownRevision(LindivcError):
    """A revision name that resolves to no commit."""

    def __init__(self, rev: str) -> None:
        self.rev = rev
        super().__init__(f"unknown revision: {rev}")


class PathOutsideRepository(LindivcError):
    """A path argument that is not inside the working tree."""

    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(f"path is outside the working tree: {path}")


class FileLocked(LindivcError):
    """A working file that another writer holds open "r+" (its write lock is taken)."""

    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(f"{path} is open for writing elsewhere (lindivc.open(..., \"r+\") in this or another "
                         "process); close it there first")


class NothingToCommit(LindivcError):
    """A commit whose tree equals its parent's, or a first commit with no file staged
    (``first``: the repository has no commit yet)."""

    def __init__(self, first: bool = False) -> None:
        self.first = first
        if first:
            super().__init__("nothing to commit (no files tracked yet); bring a file in with "
                             "`lindivc import FILE_OR_URL` or `lindivc add PATH`")
        else:
            super().__init__("nothing to commit (working files match HEAD); change a file or use `lindivc add`")


class ConfigInvalid(LindivcError):
    """A configuration file that is not JSON, or a value of the wrong type in it.

    ``key`` is the dotted name (``core.chunk_threshold``), ``value`` what the file holds,
    ``expected`` what it should hold, in words."""

    def __init__(self, path: str, key: str, value: object, expected: str) -> None:
        self.path, self.key, self.value, self.expected = path, key, value, expected
        shown = json.dumps(value, default=repr)
        if len(shown) > 60:
            shown = shown[:57] + "..."
        super().__init__(f"{path}: {key} is {shown} ({_kind(value)}); expected {expected}")


def _kind(v: object) -> str:
    """The JSON type of ``v``, in words."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, (int, float)):
        return "a number"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, list):
        return "a list"
    if isinstance(v, dict):
        return "an object"
    return type(v).__name__


class ZoneError(LindivcError):
    """A zone cannot be reached, refused an operation, or holds inconsistent data."""


class ZoneUnreachable(ZoneError):
    """The zone's endpoint did not answer."""


class AccessDenied(ZoneError):
    """The zone (or gateway) refused the credentials for this operation."""


class NonFastForward(LindivcError):
    """A push or pull whose histories diverged."""


class ZoneKeyMissing(ZoneError):
    """A key that is not in the zone."""

    def __init__(self, key: str, zone: str = "") -> None:
        self.key = key
        self.zone = zone
        super().__init__(f"{key} not found in zone {zone}".rstrip())


class PreconditionFailed(ZoneError):
    """A conditional write (if-none-match / if-match) found another value."""

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(f"conditional write of {key} failed: it changed concurrently")


class InvalidKey(ZoneError):
    """A zone key or zone URL outside the layout of docs/format.md."""


class InvalidDocument(LindivcError):
    """A document another user wrote (pin, borrow record, journal entry, published LINDI file)
    that is not valid: not JSON, the wrong shape, or over its size limit. ``key`` names the
    document (zone key or URL), ``reason`` says what is wrong in one line."""

    def __init__(self, key: str, reason: str) -> None:
        self.key = key
        self.reason = reason
        super().__init__(f"{key or 'document'}: {reason}")


class NoConflictAt(LindivcError):
    """A merge resolution (ours/theirs) for a path that covers no conflict of the merge."""

    def __init__(self, path: str, conflicts: list[str]) -> None:
        self.path = path
        self.conflicts = conflicts
        where = f"conflicts are at {', '.join(conflicts[:5])}{' ...' if len(conflicts) > 5 else ''}" if conflicts \
            else "the merge has no conflicts"
        super().__init__(f"no conflict at {path}: {where}")


class UnresolvedConflicts(LindivcError):
    """A merged file asked for while conflicts remain; ``conflicts`` are filemerge.Conflict."""

    def __init__(self, name: str, conflicts: list) -> None:
        self.name = name
        self.conflicts = conflicts
        first = conflicts[0].describe() if conflicts else ""
        more = f" (and {len(conflicts) - 1} more)" if len(conflicts) > 1 else ""
        super().__init__(f"{name}: {len(conflicts)} conflict(s) to resolve: {first}{more}")

# --------------------------------------------------------------------------- GC and fsck


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
