"""Roots that appear while a sweep runs (docs/gc.md, "Roots that appear while GC runs").

A pin or journal entry written after the plan joins the roots: what it names among the objects
the plan deletes or repacks (``GCPlan.doomed``: a chunk they hold, the object itself, a byte
range of it) is kept, and the sweep carries on. A ref that moves is a root too: to a commit a
journal entry named (a push: its entry names every chunk the pushed commits reference), or else
to a commit whose new history is read into the GC's mirror, and the chunks of the commits not
reachable from the planned refs are kept. Only a ref whose history cannot be read stops the
sweep with RefsChanged (GC plans again). Churn thus never starves GC: each check reads only what
is new since the last one.
"""
from __future__ import annotations

from .. import gitsync, zonerefs
from ..documents import JournalEntry, Pin
from ..errors import LindivcError, RefsChanged
from ..history import History
from ..layout import pin_key
from ..zones.base import Zone
from .model import GCPlan, InvalidDoc
from .pins import read_pins
from .roots import read_journal


class LateRoots:
    """The roots of ``plan``, watched while its sweep runs. ``kept``: objects of
    ``plan.doomed`` that a late root names (never to be deleted by this sweep); ``commits``:
    commits whose chunks are roots besides the planned refs' (named by journal entries, or new
    commits of a moved ref); ``refs_moved``: a ref moved or went since the plan."""

    def __init__(self, zone: Zone, plan: GCPlan, git_dir: str | None = None) -> None:
        self.zone = zone
        self.plan = plan
        self.git_dir = git_dir  # the plan's mirror of the zone's history, if any
        self.kept: set[str] = set()
        self.commits: set[str] = set(plan.journal_commits)
        self.refs_moved = False
        self._journals = set(plan.journals)
        self._pins = dict(plan.pins)
        self._holders: dict[str, list[str]] = {}  # chunk -> doomed objects holding it
        for obj, chunks in plan.doomed.items():
            for c in chunks:
                self._holders.setdefault(c, []).append(obj)

    def check(self) -> set[str]:
        """Read journal entries, pins and refs again; add what is new to the roots and return
        the doomed objects it newly keeps. Raises RefsChanged when a ref moved to a commit whose
        history cannot be read."""
        before = set(self.kept)
        self._journal_entries()
        self._new_pins()
        self._refs()
        return self.kept - before

    def _journal_entries(self) -> None:
        infos = [i for i in self.zone.list("journal/") if i.key[len("journal/"):] not in self._journals]
        for info, got in read_journal(self.zone, infos):
            self._journals.add(info.key[len("journal/"):])
            if isinstance(got, JournalEntry):
                self.plan.roots.late += 1
                self.commits.add(got.commit)
                self._keep_chunks(got.objects)
            elif isinstance(got, InvalidDoc):
                self.plan.invalid.append(got)

    def _new_pins(self) -> None:
        infos = {i.key[len("pins/"):]: i for i in self.zone.list("pins/")}
        new = {pid for pid, i in infos.items() if self._pins.get(pid) != i.mtime}
        if not new:
            return
        for e in read_pins(self.zone, infos, only=new):
            self._pins[e.id] = e.mtime
            if e.pin is None:
                self.plan.invalid.append(InvalidDoc(self.zone.url, pin_key(e.id), e.problem or "unreadable"))
                continue
            self.plan.roots.late += 1
            self._keep_pin(e.pin)

    def _refs(self) -> None:
        refs = zonerefs.list_remote_refs(self.zone)
        if refs == self.plan.refs:
            return
        moved = {name: sha for name, sha in refs.items() if self.plan.refs.get(name) != sha}
        if any(sha not in self.commits for sha in moved.values()):
            self._journal_entries()  # a push may have written its entry since they were read
        unknown = {name: sha for name, sha in sorted(moved.items()) if sha not in self.commits}
        if unknown:
            self._history(unknown)
        if moved or set(refs) != set(self.plan.refs):
            self.refs_moved = True

    def _history(self, moved: dict[str, str]) -> None:
        """Keep the chunks of the commits reachable from the ``moved`` refs (name -> commit) and
        not from the planned refs: the history is read into the GC's mirror."""
        name = next(iter(moved))
        try:
            if self.git_dir is None:
                raise LindivcError("no history mirror")
            History.init_if_missing(self.git_dir)
            gitsync.download_history(self.zone, self.git_dir, sorted(set(moved.values())))
            history = History(self.git_dir)
            try:
                heads = [history.resolve(sha) for sha in moved.values()]
                base = [history.resolve(sha) for sha in set(self.plan.refs.values()) if history.has(sha)]
                commits, chunks = history.reachable_chunks(heads, exclude=base)
            finally:
                history.close()
        except LindivcError as e:
            raise RefsChanged(self.zone.url, name, f"{name} changed while GC ran and its history cannot be read "
                              f"({e}); nothing more was deleted. Run GC again (it plans from the new state)") from None
        self.commits |= commits | set(moved.values())
        self.plan.roots.late += len(moved)
        self._keep_chunks(chunks)

    def _keep_chunks(self, chunks) -> None:
        for c in chunks:
            self.kept.update(self._holders.get(c, ()))

    def _keep_pin(self, pin: Pin) -> None:
        self._keep_chunks(pin.chunks)
        doomed = self.plan.doomed
        self.kept.update(o for o in pin.objects if o in doomed)
        self.kept.update(r.object for r in pin.ranges if r.object in doomed)
