"""Errors of the repository, its files and objects (the root class LindivcError is here)."""
from __future__ import annotations

import json


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


class BranchNotMerged(LindivcError):
    """``branch -d`` of a branch whose commits HEAD and its remote-tracking refs do not reach."""

    def __init__(self, name: str, commit: str) -> None:
        self.name, self.commit = name, commit
        super().__init__(f"branch {name!r} ({commit[:10]}) is not merged into HEAD or pushed; "
                         f"its commits would be lost: to delete it anyway, lindivc branch -D {name}")


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
