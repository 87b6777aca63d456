"""The three-way merge of two commits' trees that pull records (docs/format.md section 6.5).

Files are compared by blob: a file changed (added, modified, deleted) on one side only takes
that side; a file changed on both sides to different contents is a conflict, and nothing is
written. Merging the inside of a LINDI file changed on both sides is not done here.
"""
from __future__ import annotations

from dulwich.graph import find_merge_base

from .errors import NonFastForward
from .history import History


def merge_files(base: dict[str, str], ours: dict[str, str], theirs: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """Merge three path -> blob maps: (the merged map, the paths both sides changed differently,
    sorted). Pure."""
    out: dict[str, str] = {}
    conflicts: list[str] = []
    for p in sorted(set(ours) | set(theirs) | set(base)):
        x, y, o = ours.get(p), theirs.get(p), base.get(p)
        if x == y:
            v = x
        elif x == o:
            v = y
        elif y == o:
            v = x
        else:
            conflicts.append(p)
            continue
        if v is not None:
            out[p] = v
    return out, conflicts


def merge_commits(history: History, ours: str, theirs: str, message: str, author: str) -> str:
    """Write the merge commit of ``ours`` and ``theirs`` (parents in that order) and return its
    sha; no ref moves. NonFastForward naming the files both sides changed, if any."""
    bases = find_merge_base(history.repo, [ours.encode(), theirs.encode()])
    base_files = history.commit_files(bases[0].decode()) if bases else {}
    files, conflicts = merge_files(base_files, history.commit_files(ours), history.commit_files(theirs))
    if conflicts:
        raise NonFastForward(
            f"both sides changed {', '.join(conflicts[:3])}; the histories diverged and lindivc cannot merge "
            "the same file automatically. Keep one side (`lindivc checkout REV -- PATH`) and commit, or push to another branch"
        )
    return history.make_commit(history.write_tree(files), [ours, theirs], message, author)
