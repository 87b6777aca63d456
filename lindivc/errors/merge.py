"""Errors of merging LINDI files."""
from __future__ import annotations

from .base import LindivcError


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
