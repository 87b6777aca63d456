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
    (``initial``: the repository has no commit yet)."""

    def __init__(self, initial: bool = False) -> None:
        self.initial = initial
        if initial:
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


class UnknownRevisionOrPath(LindivcError):
    """An argument that names neither a revision nor a path in the working tree (as git says it)."""

    def __init__(self, arg: str) -> None:
        self.arg = arg
        super().__init__(f"unknown revision or path not in the working tree: {arg}")


class NoSuchFile(LindivcError):
    """A file argument that does not exist."""

    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(f"no such file: {path}")


class NotALindiName(LindivcError):
    """A path that does not end in .lindi.json or .zarr.json, where a LINDI file is expected."""

    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(f"{path} is not a LINDI file name: it must end in .lindi.json or .zarr.json")


class UntrackableName(LindivcError):
    """A working file name outside the alphabet lindivc tracks (zone keys use the same one)."""

    RULE = "file names may contain only A-Z a-z 0-9 . _ @ + = , - (rename the file to track it)"

    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(f"{path}: {self.RULE}")


class NotTracked(LindivcError):
    """A path that is not in the index."""

    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(f"{path} is not tracked")


class PathNotInRevision(LindivcError):
    """A path that the named revision does not hold."""

    def __init__(self, path: str, rev: str) -> None:
        self.path = path
        self.rev = rev
        super().__init__(f"{path} is not in {rev}")


class BranchExists(LindivcError):
    """Creating a branch whose name is taken."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"branch {name!r} already exists")


class NoSuchBranch(LindivcError):
    """A branch name that names no branch."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"no branch named {name!r}")


class WorkingFileExists(LindivcError):
    """An import whose target working file exists (and ``force`` was not given)."""

    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(f"{path} already exists; use --as NAME or --force")


class CorruptIndex(LindivcError):
    """``.lindivc/index.json`` that cannot be read."""

    def __init__(self, path: str, why: str) -> None:
        self.path = path
        self.why = why
        super().__init__(f"{path} is corrupt ({why}); rebuild it from HEAD with `lindivc reset` "
                         "(working files are kept; staged changes must be added again)")


class ConversionFailed(LindivcError):
    """An HDF5 file that could not be converted to LINDI (truncated, corrupt, unreadable)."""

    def __init__(self, source: str, reason: str) -> None:
        self.source = source
        self.reason = reason
        super().__init__(f"{source}: cannot convert the HDF5 file: {reason}")


class LocalFileUnpublishable(LindivcError):
    """A local file that pushed commits reference (docs/format.md 6.6) is missing, changed since
    its ranges were recorded, or referenced in a way push cannot upload; nothing was published.
    ``where`` is ``"<path> at <commit>"`` of a file that references it."""

    def __init__(self, path: str, reason: str, where: str, hint: str) -> None:
        self.path, self.reason, self.where, self.hint = path, reason, where, hint
        super().__init__(f"local file {path} {reason} ({where} references it); nothing was pushed: {hint}")


class InvalidPublicURL(LindivcError):
    """A ``--public-url`` that is not an http(s) URL with a host."""

    def __init__(self, url: str) -> None:
        self.url = url
        super().__init__(f"invalid public URL {url!r}: give the http(s) URL at which the zone's "
                         "directory is served, e.g. https://cdn.example.org/zones/me/analysis/")


class ZoneError(LindivcError):
    """A zone cannot be reached, refused an operation, or holds inconsistent data."""


class ZoneUnreachable(ZoneError):
    """The zone's endpoint did not answer."""


class RedirectUnreachable(ZoneUnreachable):
    """The zone's server answered with a redirect (a gateway with ``--public-url``), and the URL
    it redirected to could not be read."""

    def __init__(self, zone_url: str, url: str, cause: str, server: str = "server") -> None:
        self.zone_url = zone_url
        self.url = url
        self.cause = cause
        super().__init__(f"cannot read {url}: {cause} (the {server} of {zone_url} redirected there)")


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
        paths = list(dict.fromkeys(conflicts))  # a path may hold several conflicts
        where = f"conflicts are at {', '.join(paths[:5])}{' ...' if len(paths) > 5 else ''}" if conflicts \
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


class MergeInProgress(LindivcError):
    """An action refused while a merge is in progress (``.lindivc/merge.json`` exists)."""

    def __init__(self, label: str, action: str) -> None:
        self.label = label
        self.action = action
        super().__init__(f"cannot {action}: a merge of {label} is in progress; finish it with "
                         "`lindivc merge --continue` or stop it with `lindivc merge --abort`")


class NoMergeInProgress(LindivcError):
    """``merge --ours/--theirs/--continue/--abort`` with no merge in progress."""

    def __init__(self) -> None:
        super().__init__("no merge in progress (start one with `lindivc merge REV` or `lindivc pull`)")


class MergeConflicts(LindivcError):
    """A merge stopped at conflicts (its state kept); ``conflicts`` are (resolution spec, one-line
    description) pairs. The message lists them and how to resolve them."""

    def __init__(self, label: str, into: str, conflicts: list[tuple[str, str]]) -> None:
        self.label = label
        self.into = into
        self.conflicts = conflicts
        spec = conflicts[0][0] if conflicts else "PATH"
        super().__init__("\n".join([
            f"merging {label} into {into} stopped at {len(conflicts)} conflict(s); nothing was written to "
            "the working files or the branch",
            *(f"  {d}" for _, d in conflicts),
            "Take one side for each conflict (a node path, a group for all under it, or FILE:PATH):",
            f"  lindivc merge --ours {spec}      keep {into}'s version",
            f"  lindivc merge --theirs {spec}    take {label}'s version",
            "then `lindivc merge --continue` writes the merged files and commits, "
            "or `lindivc merge --abort` forgets the merge."]))


class LocalChangesInTheWay(LindivcError):
    """A merge, fast-forward or pull that would overwrite uncommitted changes or untracked files."""

    def __init__(self, action: str, paths: list[str], untracked: bool = False) -> None:
        self.action = action
        self.paths = paths
        self.untracked = untracked
        what = "untracked working file(s)" if untracked else "uncommitted changes in"
        fix = "move them away" if untracked else "commit them first (or restore them with `lindivc checkout HEAD -- PATH`)"
        super().__init__(f"{action} would overwrite {what} {', '.join(paths[:3])}{' ...' if len(paths) > 3 else ''}; {fix}")


class CorruptMergeState(LindivcError):
    """``.lindivc/merge.json`` that cannot be read."""

    def __init__(self, path: str, why: str) -> None:
        self.path = path
        self.why = why
        super().__init__(f"{path} is corrupt ({why}); remove it to forget the merge (nothing else was written)")


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


class HttpError(LindivcError):
    """An http(s) URL could not be read; ``cause`` says why, in words."""

    def __init__(self, url: str, cause: str, message: str | None = None) -> None:
        self.url = url
        self.cause = cause
        super().__init__(message or f"cannot read {url}: {cause}")


class HostUnresolvable(HttpError):
    """The host name of a URL does not resolve (no such host, or no network)."""

    def __init__(self, url: str, host: str) -> None:
        self.host = host
        super().__init__(url, f"cannot resolve host {host}")


class ConnectionRefused(HttpError):
    """Nothing listens at the URL's host and port."""

    def __init__(self, url: str, address: str) -> None:
        self.address = address
        super().__init__(url, f"connection refused by {address}")


class HttpTimeout(HttpError):
    """The server did not accept the connection, or did not answer, in time."""

    def __init__(self, url: str, cause: str) -> None:
        super().__init__(url, cause, cause if cause.startswith("timed out reading") else None)


class HttpStatusError(HttpError):
    """The server answered with an error status."""

    def __init__(self, url: str, status: int, reason: str = "") -> None:
        self.status = status
        self.reason = reason
        super().__init__(url, f"HTTP {status}", f"HTTP {status} for {url}")


class RangeNotHonoured(HttpError):
    """A ranged GET answered with other bytes than those asked for."""

    def __init__(self, url: str, offset: int, size: int, answer: str) -> None:
        self.offset = offset
        self.size = size
        super().__init__(url, f"the server does not honour Range for bytes {offset}+{size}: {answer}")


class ResponseTooLarge(HttpError):
    """A body longer than the reader's bound."""

    def __init__(self, url: str, limit: int) -> None:
        self.limit = limit
        super().__init__(url, f"more than {limit} bytes")


class IngestFailed(LindivcError):
    """The bytes a ref points at could not be copied into the object store."""

    def __init__(self, key: str, url: str, reason: str) -> None:
        self.key = key
        self.url = url
        self.reason = reason
        super().__init__(f"cannot ingest ref {key!r}: {reason}")


class MalformedRef(ZoneError):
    """A ref file in a zone that does not hold a commit sha1."""

    def __init__(self, key: str, value: str) -> None:
        self.key = key
        self.value = value
        super().__init__(f"{key}: not a commit sha1: {value[:60]!r}")
