"""Commands on the local repository: init, import, status, add, rm, reset, commit, log, show,
diff, checkout, merge, branch, tag."""
from __future__ import annotations

import os
import time

import click

from .. import completion as comp
from ..errors import LindivcError
from .base import DashDashCommand, _emit_json, _repo, cli


# ---------------------------------------------------------------- repository


@cli.command()
@click.argument("directory", default=".", type=click.Path(file_okay=False))
def init(directory: str) -> None:
    """Create an empty repository in DIRECTORY, or here."""
    from ..repo import Repository

    r = Repository.init(directory)
    click.echo(f"Initialized empty lindivc repository in {r.lvc}")


@cli.command("import")
@click.argument("source")
@click.option("--as", "as_path", metavar="PATH", help="Name in the working tree, relative to the current directory "
              "(default: the source's file name, in the current directory).")
@click.option("--ingest", is_flag=True, help="Copy byte ranges of local files into the object store, so the "
              "result no longer depends on the original file.")
@click.option("--force", is_flag=True, help="Overwrite an existing working file of that name.")
def import_(source: str, as_path: str | None, ingest: bool, force: bool) -> None:
    """Bring SOURCE into the working tree and stage it.

    SOURCE is a LINDI file (.lindi.json or .zarr.json) or an HDF5/NWB file (converted; its
    chunks stay references to that file), given as a local path or an http(s) URL.

    \b
    lindivc import session.nwb            (its chunks stay in session.nwb)
    lindivc import session.nwb --ingest   (its chunks are copied into the store)
    lindivc import https://host/x.nwb.lindi.json --as x.nwb.lindi.json
    """
    from ..importer import import_file

    # like add and status: relative to the current directory
    rel = import_file(_repo(), source, as_path=as_path, ingest=ingest, force=force, directory=os.getcwd())
    click.echo(f"imported {source} as {rel} (staged; commit with `lindivc commit -m ...`)")


@cli.command()
@click.argument("paths", nargs=-1, shell_complete=comp.lindi_files)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status(paths: tuple[str, ...], as_json: bool) -> None:
    """Show which LINDI files changed, and how.

    Tracked, modified and untracked LINDI files (all, or those at PATHS), and what changed in
    each, in LINDI terms; and a merge in progress, with what is left to resolve.
    """
    from ..diff import diff, format_diff
    from ..merge import conflicts_left, merge_in_progress
    from ..repo import NAME_RULE

    r = _repo()
    st = r.status(paths or None)
    ms = merge_in_progress(r)
    left = conflicts_left(ms) if ms else []
    # an unreadable working file is already in st.files with its error: skip it in the diff
    changes = {d.path: d for d in diff(r, None, None, paths or None, errors=[])} if st.files else {}
    if as_json:
        _emit_json({
            "branch": st.branch, "head": st.head,
            "files": [{"path": f.path, "staged": f.staged, "unstaged": f.unstaged, "error": f.error,
                       "changes": changes[f.path].to_json() if f.path in changes else None} for f in st.files],
            "untracked": st.untracked, "untrackable": st.untrackable,
            "merge": None if ms is None else {
                "label": ms.label, "ours": ms.ours, "theirs": ms.theirs, "base": ms.base, "files": sorted(ms.files),
                "conflicts": [c.to_json() for c in left],
                "resolutions": [{"file": f, "path": n, "side": sd} for f, ch in sorted(ms.resolutions.items()) for n, sd in ch]},
        })
        return
    click.echo(f"On branch {st.branch}" if st.branch else f"HEAD detached at {(st.head or '')[:10]}")
    if st.head is None:
        click.echo("No commits yet")
    if ms is not None:
        _echo_merge(ms.label, left)
    staged = [f for f in st.files if f.staged]
    unstaged = [f for f in st.files if f.unstaged]
    if staged:
        click.echo("\nChanges to be committed:")
        for f in staged:
            click.echo(f"  {f.staged + ':':10} {f.path}")
    if unstaged:
        click.echo("\nChanges not staged for commit (use `lindivc add` or `commit -a`):")
        for f in unstaged:
            why = f" ({f.error})" if f.error else ""
            click.echo(f"  {f.unstaged + ':':10} {f.path}{why}")
    if changes:
        click.echo("\nWhat changed since HEAD:")
        for d in changes.values():
            for line in format_diff(d):
                click.echo("  " + line)
    if st.untracked:
        click.echo("\nUntracked LINDI files (use `lindivc add`):")
        for u in st.untracked:
            click.echo(f"  {u}")
    if st.untrackable:
        click.echo(f"\nLINDI files that cannot be tracked ({NAME_RULE}):")
        for u in st.untrackable:
            click.echo(f"  {u}")
    if not staged and not unstaged and not st.untracked:
        click.echo("nothing to commit, working files match HEAD")


def _echo_merge(label: str, left: list) -> None:
    """What `status` says of a merge in progress."""
    if not left:
        click.echo(f"\nMerging {label}: all conflicts resolved (use `lindivc merge --continue` to write the "
                   "merged files and commit, or `lindivc merge --abort`)")
        return
    click.echo(f"\nMerging {label}: {len(left)} conflict(s) left (take a side with `lindivc merge --ours PATH` "
               "or `--theirs PATH`, then `lindivc merge --continue`; or `lindivc merge --abort`):")
    for c in left:
        click.echo(f"  {c.description}")


@cli.command()
@click.argument("paths", nargs=-1, required=True, shell_complete=comp.lindi_files)
def add(paths: tuple[str, ...]) -> None:
    """Stage LINDI files at PATHS for the next commit."""
    for p in _repo().add(paths):
        click.echo(f"staged {p}")


@cli.command()
@click.argument("paths", nargs=-1, required=True, shell_complete=comp.tracked_paths)
@click.option("--cached", is_flag=True, help="Stop tracking but keep the working file.")
@click.option("-f", "--force", is_flag=True, help="Delete working files even if they have uncommitted changes.")
def rm(paths: tuple[str, ...], cached: bool, force: bool) -> None:
    """Stop tracking PATHS (and delete the files unless --cached).

    A working file with changes that are not committed is kept, and nothing is removed,
    unless --force.
    """
    for p in _repo().remove(paths, keep_file=cached, force=force):
        click.echo(f"removed {p}")


@cli.command()
def reset() -> None:
    """Unstage everything: make the staged files those of HEAD.

    Working files are not touched (their changes show as unstaged). Also rebuilds a corrupt
    .lindivc/index.json.
    """
    r = _repo()
    r.reset()
    click.echo(f"index reset to HEAD ({len(r.tracked())} tracked file(s)); working files unchanged")


@cli.command()
@click.option("-m", "--message", metavar="MESSAGE", required=True, help="What this version changes, and why.")
@click.option("-a", "--all", "all_", is_flag=True, help="Stage every modified tracked file first.")
@click.option("--allow-empty", is_flag=True, help="Record a commit even if nothing changed.")
def commit(message: str, all_: bool, allow_empty: bool) -> None:
    """Record the staged LINDI files as a new version.

    \b
    lindivc commit -m "add spike sorting"       what `lindivc add` staged
    lindivc commit -a -m "fix units"            every modified tracked file
    """
    r = _repo()
    sha = r.commit(message, all=all_, allow_empty=allow_empty)
    click.echo(f"[{r.history.head_branch() or 'detached'} {sha[:10]}] {message.strip().splitlines()[0]}")


def _fmt_time(t: int, tz: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t + tz)) + f" {'+' if tz >= 0 else '-'}{abs(tz)//3600:02d}{abs(tz)%3600//60:02d}"


def _merge_line(c) -> str:
    """git's "Merge: P1 P2" line for a commit with several parents (else nothing)."""
    return f"Merge: {' '.join(p[:10] for p in c.parents)}\n" if len(c.parents) > 1 else ""


@cli.command()
@click.argument("target", metavar="[PATH|REV]", required=False, shell_complete=comp.revisions_or_paths)
@click.option("-n", "max_count", metavar="N", type=click.IntRange(min=1), help="Show at most N commits.")
@click.option("--stat", is_flag=True, help="Summarize what each commit changed.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--rev", metavar="REV", default="HEAD", show_default=True, help="Start from revision REV.",
              shell_complete=comp.revisions)
@click.option("--oneline", is_flag=True, help="One line per commit.")
def log(target: str | None, max_count: int | None, stat: bool, as_json: bool, rev: str, oneline: bool) -> None:
    """Show the history, newest first: of PATH, or from REV.

    An argument that is a tracked file or a file in the working tree is a PATH; anything else
    must be a revision.

    \b
    lindivc log                          the current branch
    lindivc log x.nwb.lindi.json --stat  commits that changed it, and how
    lindivc log main~3 --oneline -n 5    five commits, from three before main
    """
    from ..diff import format_diff
    from ..log import log as repo_log

    entries = repo_log(_repo(), rev=rev, max_count=max_count, stat=stat, target=target)
    if as_json:
        _emit_json([{"commit": e.commit.sha, "parents": list(e.commit.parents), "author": e.commit.author,
                     "time": e.commit.time, "message": e.commit.message,
                     **({"files": [d.to_json() for d in e.files]} if stat else {})} for e in entries])
        return
    for e in entries:
        c = e.commit
        if oneline:
            click.echo(f"{c.sha[:10]} {c.summary}")
        else:
            click.echo(f"commit {c.sha}\n{_merge_line(c)}Author: {c.author}\nDate:   {_fmt_time(c.time, c.tz)}\n")
            for line in c.message.rstrip().splitlines():
                click.echo(f"    {line}")
            click.echo("")
        for d in e.files:
            for line in format_diff(d):
                click.echo("  " + line)
        if e.files:
            click.echo("")


@cli.command()
@click.argument("rev", default="HEAD", shell_complete=comp.revisions)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def show(rev: str, as_json: bool) -> None:
    """Show a commit (REV), or a file as a commit has it (REV:PATH).

    A file is printed in canonical form: the form lindivc commits, with content refs.

    \b
    lindivc show                         HEAD: its message and what it changed
    lindivc show v1~1                    the commit before tag v1
    lindivc show main:x.nwb.lindi.json   that file as main has it
    """
    from ..diff import diff_commit, format_diff

    r = _repo()
    if ":" in rev:
        rv, path = rev.split(":", 1)
        click.echo(r.read_at(rv or "HEAD", path).decode(), nl=False)
        return
    c = r.history.commit(rev)
    diffs = diff_commit(r, c)
    if as_json:
        _emit_json({"commit": c.sha, "parents": list(c.parents), "author": c.author, "time": c.time,
                    "message": c.message, "files": [d.to_json() for d in diffs]})
        return
    click.echo(f"commit {c.sha}\n{_merge_line(c)}Author: {c.author}\nDate:   {_fmt_time(c.time, c.tz)}\n")
    for line in c.message.rstrip().splitlines():
        click.echo(f"    {line}")
    click.echo("")
    for d in diffs:
        for line in format_diff(d):
            click.echo(line)


@cli.command(cls=DashDashCommand)
@click.argument("args", nargs=-1, shell_complete=comp.revisions_then_paths)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def diff(args: tuple[str, ...], as_json: bool) -> None:
    """Show what changed, in LINDI terms.

    Groups, arrays and attributes added, removed or changed, and the bytes of new chunk data.

    \b
    lindivc diff                      HEAD against the working files
    lindivc diff REV                  REV against the working files
    lindivc diff REV1 REV2            REV1 against REV2 (also: REV1..REV2)
    lindivc diff [REV [REV2]] -- PATH limit to PATH
    """
    from ..diff import format_diff
    from ..diff import diff as repo_diff

    revs, paths = _split_dashdash(args)
    if len(revs) == 1 and ".." in revs[0]:  # git's A..B is A B (either side may be left out: HEAD)
        if "..." in revs[0]:
            raise click.UsageError("REV1...REV2 (from the merge base) is not supported; name two revisions")
        revs = [r or "HEAD" for r in revs[0].split("..", 1)]
    if len(revs) > 2:
        raise click.UsageError("at most two revisions")
    errors: list = []
    diffs = repo_diff(_repo(), revs[0] if revs else None, revs[1] if len(revs) > 1 else None, paths or None,
                      errors=errors)
    if as_json:
        _emit_json([d.to_json() for d in diffs])
    else:
        for d in diffs:
            for line in format_diff(d):
                click.echo(line)
    if errors:  # the other files' diffs are shown; the unreadable ones fail the command
        raise LindivcError(f"cannot read {len(errors)} working file(s), not diffed: "
                           + "; ".join(f"{p} ({why})" for p, why in errors[:3]) + (" ..." if len(errors) > 3 else ""))


def _split_dashdash(args: tuple[str, ...]) -> tuple[list[str], list[str]]:
    n = click.get_current_context().meta.get(comp.AFTER_DASHDASH)
    if n is None:
        return list(args), []
    return list(args[: len(args) - n]), list(args[len(args) - n:])


@cli.command(cls=DashDashCommand)
@click.argument("args", nargs=-1, shell_complete=comp.revisions_then_paths)
@click.option("-f", "--force", is_flag=True, help="Discard local changes to tracked files.")
@click.option("-b", "new_branch", metavar="BRANCH", help="Create BRANCH at REV and switch to it.")
def checkout(args: tuple[str, ...], force: bool, new_branch: str | None) -> None:
    """Switch to a branch, tag or commit, or restore files from it.

    \b
    lindivc checkout REV             make the working files those of REV
    lindivc checkout REV -- PATH...  restore only PATH from REV (and stage it)
    lindivc checkout -b NAME [REV]   create branch NAME at REV and switch to it
    """
    revs, paths = _split_dashdash(args)
    r = _repo()
    if new_branch:
        start = revs[0] if revs else "HEAD"
        r.create_branch(new_branch, start)
        sha = r.checkout(new_branch, force=force)
        click.echo(f"Switched to a new branch '{new_branch}' at {sha[:10]}")
        return
    if not revs:
        raise click.UsageError("name a revision")
    sha = r.checkout(revs[0], paths or None, force=force)
    if paths:
        click.echo(f"restored {', '.join(paths)} from {revs[0]} ({sha[:10]})")
    elif r.history.head_branch():
        click.echo(f"Switched to branch '{r.history.head_branch()}' at {sha[:10]}")
    else:
        click.echo(f"HEAD is now at {sha[:10]} (detached)")


@cli.command()
@click.argument("rev", required=False, shell_complete=comp.revisions)
@click.option("--ours", multiple=True, metavar="PATH", help="At a conflict: keep the current branch's version of "
              "PATH (repeatable).")
@click.option("--theirs", multiple=True, metavar="PATH", help="At a conflict: take the merged revision's version "
              "of PATH (repeatable; applied after --ours).")
@click.option("--continue", "continue_", is_flag=True, help="Finish the merge once no conflict is left: write "
              "the merged files and commit.")
@click.option("--abort", is_flag=True, help="Forget the merge in progress; the files and the branch stay as they were.")
@click.option("-m", "--message", metavar="MESSAGE", help="Message of the merge commit (default: Merge REV).")
def merge(rev: str | None, ours: tuple[str, ...], theirs: tuple[str, ...], continue_: bool, abort: bool,
          message: str | None) -> None:
    """Merge REV into the current branch, LINDI key by key.

    REV is a branch, tag, commit or REMOTE/BRANCH. A LINDI file both sides changed is merged key by key: what one side changed is taken from
    it, attributes merge per name, NWB DynamicTable columns from both sides are kept. If both
    changed the same array, attribute or group differently, the merge stops at those conflicts
    before writing anything (exit status 1); take a side for each, then continue:

    \b
    lindivc merge --ours PATH      keep the current branch's version of PATH
    lindivc merge --theirs PATH    take REV's version of PATH
    lindivc merge --continue       write the merged files and commit (both parents)
    lindivc merge --abort          forget the merge

    PATH is a node path (/units/quality), a group (/units: every conflict under it), FILE:PATH
    when several files conflict, or FILE for all of one file. As in git, taking the last side
    does not commit: `--continue` does. `lindivc status` shows what is left.
    """
    from ..merge import abort_merge, continue_merge, merge as do_merge, resolve

    r = _repo()
    if abort:
        if rev or ours or theirs or continue_:
            raise click.UsageError("--abort takes no other argument")
        st = abort_merge(r)
        click.echo(f"merge of {st.label} aborted; {st.branch or 'HEAD'} is at {st.ours[:10]} as before")
        return
    if rev is not None:
        if ours or theirs or continue_:
            raise click.UsageError("--ours, --theirs and --continue act on the merge in progress; give no REV")
        _echo_outcome(do_merge(r, rev, message=message))
        return
    if not (ours or theirs or continue_):
        raise click.UsageError("name a revision to merge, or use --ours, --theirs, --continue or --abort")
    res = None
    for side, specs in (("ours", ours), ("theirs", theirs)):
        for spec in specs:
            res = resolve(r, spec, side)
            click.echo(f"took {side} for {res.file}:{res.path} ({res.settled} conflict(s) settled)")
    if continue_:
        _echo_outcome(continue_merge(r, message))
    elif res.left:
        click.echo(f"{len(res.left)} conflict(s) left:")
        for c in res.left:
            click.echo(f"  {c.description}")
    else:
        click.echo("no conflict left: `lindivc merge --continue` writes the merged files and commits")


def _echo_outcome(out) -> None:
    """What `merge` (and `pull`) say of a MergeOutcome; its conflicts are an error."""
    into = out.branch or "HEAD"
    if out.kind == "conflicts":
        raise out.error()
    if out.kind == "up-to-date":
        click.echo(f"already up to date ({(out.new or '')[:10]})")
    elif out.kind == "fast-forward":
        click.echo(f"{into}: {(out.old or 'none')[:10]} -> {out.new[:10]} (fast-forward)")
    else:
        lindi = f"; merged in LINDI terms: {', '.join(out.merged_files)}" if out.merged_files else ""
        click.echo(f"{into}: {out.old[:10]} -> {out.new[:10]} (merge of {out.label}{lindi})")


@cli.command()
@click.argument("name", required=False, shell_complete=comp.branch_names)
@click.argument("start", required=False, default="HEAD", shell_complete=comp.revisions)
@click.option("-d", "--delete", is_flag=True,
              help="Delete branch NAME, if HEAD or a pushed copy of it (a remote-tracking ref) has its commits.")
@click.option("-D", "force_delete", is_flag=True, help="Delete branch NAME even if its commits would be lost.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable list: [{name, commit, current}].")
def branch(name: str | None, start: str, delete: bool, force_delete: bool, as_json: bool) -> None:
    """List, create or delete branches.

    Without NAME, list the branches; with NAME, create branch NAME at START (default HEAD);
    with -d, delete branch NAME when its commits are merged into HEAD or pushed; with -D, delete
    it whatever it holds (as git).
    """
    r = _repo()
    if as_json and name is not None:
        raise click.UsageError("--json lists branches; leave out NAME")
    if name is None:
        cur = r.history.head_branch()
        if as_json:
            _emit_json([{"name": b, "commit": sha, "current": b == cur}
                        for b, sha in sorted(r.history.branches().items())])
            return
        for b, sha in sorted(r.history.branches().items()):
            click.echo(f"{'*' if b == cur else ' '} {b:20} {sha[:10]}")
        return
    if delete or force_delete:
        was = r.delete_branch(name, force=force_delete)
        click.echo(f"deleted branch {name} (was {was[:10]})")
    else:
        sha = r.create_branch(name, start)
        click.echo(f"created branch {name} at {sha[:10]}")


@cli.command()
@click.argument("name", required=False, shell_complete=comp.tag_names)
@click.argument("rev", required=False, default="HEAD", shell_complete=comp.revisions)
@click.option("-m", "--message", metavar="MESSAGE", help="Make an annotated tag with MESSAGE.")
@click.option("-d", "--delete", is_flag=True, help="Delete tag NAME.")
def tag(name: str | None, rev: str, message: str | None, delete: bool) -> None:
    """List, create or delete tags.

    Without NAME, list the tags; with NAME, tag REV (default HEAD) as NAME; with -d, delete
    tag NAME.
    """
    r = _repo()
    if name is None:
        for t, sha in sorted(r.history.tags().items()):
            click.echo(f"{t:20} {sha[:10]}")
        return
    if delete:
        cur = r.history.ref(f"refs/tags/{name}")
        if cur is None:
            raise LindivcError(f"no tag named {name!r}")
        r.history.delete_ref(f"refs/tags/{name}", cur)
        click.echo(f"deleted tag {name}")
        return
    if r.history.ref(f"refs/tags/{name}") is not None:
        raise LindivcError(f"tag {name!r} already exists")
    r.history.create_tag(name, rev, message, r.author)
    click.echo(f"tagged {r.history.resolve(rev)[:10]} as {name}")
