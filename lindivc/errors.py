"""The errors lindivc raises for conditions a user can cause.

Every subclass of :class:`LindivcError` is printed by the CLI as one line on stderr with exit
status 1 and no traceback. Any other exception is a bug and keeps its traceback.
"""
from __future__ import annotations


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
    """A commit whose tree equals its parent's, or a first commit with no files (``initial``)."""

    def __init__(self, initial: bool = False) -> None:
        self.initial = initial
        if initial:
            super().__init__("nothing to commit (no files tracked yet; use `lindivc add` or `lindivc import`)")
        else:
            super().__init__("nothing to commit (working files match HEAD); change a file or use `lindivc add`")


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
