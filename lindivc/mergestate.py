"""The state of a merge stopped at conflicts: ``.lindivc/merge.json`` (docs/format.md section 2).

It names the three commits, the files merged in LINDI terms (their three blobs), the choices
made so far and the conflicts left. Nothing else is written while it exists: the merged files
are computed again from the blobs and the choices (docs/format.md section 9), so removing the
file forgets the merge. It is written atomically; while it exists, commit and checkout of a
branch are refused.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field

import orjson

from .atomic import atomic_write
from .errors import CorruptMergeState, MergeInProgress

FILE_NAME = "merge.json"
VERSION = 1


@dataclass
class MergeState:
    """A merge in progress.

    ``ours`` is HEAD when the merge started (``branch`` its branch, None when detached),
    ``theirs`` the commit merged in (``label`` its name as given), ``base`` their merge base.
    ``files`` maps each file both sides changed to its ``{"base", "ours", "theirs"}`` blobs
    (None: absent); ``resolutions`` maps a file to its ``[node path, side]`` choices in order;
    ``conflicts`` lists those left (``file``, ``path``, ``kind``, ``attribute``, ``description``,
    ``spec``). ``commit`` and ``applying`` are set while ``merge --continue`` writes the merge
    commit's files (``applying``: their worktree paths), so that a crash there can be resumed
    or undone.
    """

    ours: str
    theirs: str
    base: str | None
    branch: str | None
    label: str
    message: str
    files: dict[str, dict] = field(default_factory=dict)
    resolutions: dict[str, list[list[str]]] = field(default_factory=dict)
    conflicts: list[dict] = field(default_factory=list)
    commit: str | None = None
    applying: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"version": VERSION, **asdict(self)}


def state_path(lvc: str) -> str:
    """Where the merge state of the repository whose ``.lindivc`` is ``lvc`` lives."""
    return os.path.join(lvc, FILE_NAME)


def load(lvc: str) -> MergeState | None:
    """The merge in progress, or None. CorruptMergeState if the file cannot be read."""
    path = state_path(lvc)
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        return None
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise CorruptMergeState(path, "not valid JSON") from None
    if not isinstance(data, dict) or data.get("version") != VERSION:
        raise CorruptMergeState(path, f"not a version {VERSION} merge state")
    data.pop("version")
    try:
        st = MergeState(**data)
    except TypeError as e:
        raise CorruptMergeState(path, str(e)) from None
    if not (isinstance(st.ours, str) and isinstance(st.theirs, str) and isinstance(st.files, dict)
            and isinstance(st.resolutions, dict) and isinstance(st.conflicts, list)):
        raise CorruptMergeState(path, "missing or mistyped fields")
    return st


def save(lvc: str, state: MergeState) -> None:
    atomic_write(state_path(lvc), orjson.dumps(state.to_json(), option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2))


def remove(lvc: str) -> None:
    try:
        os.unlink(state_path(lvc))
    except FileNotFoundError:
        pass


def refuse_during_merge(lvc: str, action: str) -> None:
    """MergeInProgress (saying ``action`` is refused) if a merge is in progress."""
    if os.path.exists(state_path(lvc)):
        st = load(lvc)
        raise MergeInProgress(st.label if st else "?", action)
