"""The errors lindivc raises for conditions a user can cause.

Every subclass of :class:`LindivcError` is printed by the CLI as one line on stderr with exit
status 1 and no traceback. Any other exception is a bug and keeps its traceback.

The classes live in base.py (the repository and its files), remote.py (zones, URLs and
other users' documents), merge.py and gc.py (GC, pins, fsck); import them from ``lindivc.errors``.
"""
from __future__ import annotations

from .base import (  # noqa: F401
    LindivcError, NotARepository, AlreadyARepository, InvalidLindiFile, InvalidPackIndex,
    ObjectMissing, ChecksumMismatch, RefConflict, UnknownRevision, PathOutsideRepository,
    FileLocked, NothingToCommit, ConfigInvalid, UnknownRevisionOrPath, NoSuchFile, NotALindiName,
    UntrackableName, NotTracked, PathNotInRevision, BranchExists, NoSuchBranch, BranchNotMerged,
    WorkingFileExists,
    CorruptIndex, ConversionFailed, LocalFileUnpublishable, InvalidPublicURL,
)
from .remote import (  # noqa: F401
    ZoneError, ZoneUnreachable, RedirectUnreachable, AccessDenied, NonFastForward, ZoneKeyMissing,
    PreconditionFailed, InvalidKey, InvalidDocument, HttpError, HostUnresolvable,
    ConnectionRefused, HttpTimeout, HttpStatusError, RangeNotHonoured, ResponseTooLarge,
    IngestFailed, MalformedRef,
)
from .merge import (  # noqa: F401
    NoConflictAt, UnresolvedConflicts, MergeInProgress, NoMergeInProgress, MergeConflicts,
    LocalChangesInTheWay, CorruptMergeState,
)
from .gc import (  # noqa: F401
    GCError, InvalidGrace, LeaseHeld, LeaseLost, RefsChanged, PinUnreadable, PinTooLarge,
    NothingToPin, UnknownPin, RepackRefused, FsckFailed,
)
