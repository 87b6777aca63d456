"""The `lindivc` command: parses arguments, makes one library call, prints.

Every user mistake is a LindivcError, printed as one line on stderr with exit status 1.
"""
from __future__ import annotations

import json
import os
import sys
import time

import click

from . import completion as comp
from .errors import LindivcError, NothingToCommit


class LindivcGroup(click.Group):
    """A click group that turns LindivcError into one line and exit status 1."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except LindivcError as e:
            raise click.ClickException(str(e)) from None
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)


class DashDashCommand(click.Command):
    """A command whose ARGS may be split by ``--`` into revisions and paths, like git's."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if "--" in args:
            ctx.meta[comp.AFTER_DASHDASH] = len(args) - args.index("--") - 1
        return super().parse_args(ctx, args)


def _repo():
    from .repo import Repository

    return Repository.find(os.getcwd())


def _emit_json(obj) -> None:
    click.echo(json.dumps(obj, indent=2, sort_keys=True, default=str))


@click.group(cls=LindivcGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="lindivc")
def cli() -> None:
    """lindivc: git for LINDI files.

    Keep versions of LINDI files (.lindi.json / .zarr.json) that describe NWB data, store new
    array chunks once as SHA-1 objects, and publish to zones (a directory, S3, or a gateway)
    without copying data that is already published.

    Start with `lindivc init`, then `lindivc import FILE_OR_URL`, edit with
    `lindivc.open(path, "r+")` in Python, and `lindivc commit -a -m "what you did"`.
    """


# ---------------------------------------------------------------- repository


@cli.command()
@click.argument("directory", default=".", type=click.Path(file_okay=False))
def init(directory: str) -> None:
    """Create an empty repository in DIRECTORY (default: the current directory)."""
    from .repo import Repository

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
    """
    from .repo import import_file

    # like add and status: relative to the current directory
    rel = import_file(_repo(), source, as_path=as_path, ingest=ingest, force=force, directory=os.getcwd())
    click.echo(f"imported {source} as {rel} (staged; commit with `lindivc commit -m ...`)")


@cli.command()
@click.argument("paths", nargs=-1, shell_complete=comp.lindi_files)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status(paths: tuple[str, ...], as_json: bool) -> None:
    """Show tracked, modified and untracked LINDI files, and what changed in each."""
    from .diff import format_diff
    from .repo import NAME_RULE, diff

    r = _repo()
    st = r.status(paths or None)
    # an unreadable working file is already in st.files with its error: skip it in the diff
    changes = {d.path: d for d in diff(r, None, None, paths or None, errors=[])} if st.files else {}
    if as_json:
        _emit_json({
            "branch": st.branch, "head": st.head,
            "files": [{"path": f.path, "staged": f.staged, "unstaged": f.unstaged, "error": f.error,
                       "changes": changes[f.path].to_json() if f.path in changes else None} for f in st.files],
            "untracked": st.untracked, "untrackable": st.untrackable,
        })
        return
    click.echo(f"On branch {st.branch}" if st.branch else f"HEAD detached at {(st.head or '')[:10]}")
    if st.head is None:
        click.echo("No commits yet")
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
    """Stop tracking PATHS (and delete the working files unless --cached).

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
@click.option("-m", "--message", required=True, help="What this version changes, and why.")
@click.option("-a", "--all", "all_", is_flag=True, help="Stage every modified tracked file first.")
@click.option("--allow-empty", is_flag=True, help="Record a commit even if nothing changed.")
def commit(message: str, all_: bool, allow_empty: bool) -> None:
    """Record the staged LINDI files as a new version."""
    r = _repo()
    try:
        sha = r.commit(message, all=all_, allow_empty=allow_empty)
    except NothingToCommit as e:
        if e.first or r.history.head() is not None:
            raise
        raise NothingToCommit(first=True) from None  # no HEAD to match: say what is missing
    click.echo(f"[{r.history.head_branch() or 'detached'} {sha[:10]}] {message.strip().splitlines()[0]}")


def _fmt_time(t: int, tz: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t + tz)) + f" {'+' if tz >= 0 else '-'}{abs(tz)//3600:02d}{abs(tz)%3600//60:02d}"


@cli.command()
@click.argument("path", required=False, shell_complete=comp.tracked_paths)
@click.option("-n", "max_count", type=click.IntRange(min=1), help="Show at most N commits.")
@click.option("--stat", is_flag=True, help="Summarize what each commit changed.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--rev", default="HEAD", show_default=True, help="Start from this revision.",
              shell_complete=comp.revisions)
@click.option("--oneline", is_flag=True, help="One line per commit.")
def log(path: str | None, max_count: int | None, stat: bool, as_json: bool, rev: str, oneline: bool) -> None:
    """Show the history (of PATH, if given), newest first."""
    from .diff import format_diff
    from .repo import log as repo_log

    entries = repo_log(_repo(), rev=rev, max_count=max_count, path=path, stat=stat)
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
            click.echo(f"commit {c.sha}\nAuthor: {c.author}\nDate:   {_fmt_time(c.time, c.tz)}\n")
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
    """Show a commit (REV) or a file at a commit (REV:PATH, printed in canonical form)."""
    from .diff import format_diff
    from .repo import diff

    r = _repo()
    if ":" in rev:
        rv, path = rev.split(":", 1)
        click.echo(r.read_at(rv or "HEAD", path).decode(), nl=False)
        return
    c = r.history.commit(rev)
    if c.parents:
        diffs = diff(r, c.parents[0], c.sha)
    else:
        from .diff import diff_rfs
        from .lindijson import parse

        files = r.history.tree_files(c.tree)
        diffs = [diff_rfs(p, None, parse(r.history.read_blob(b), p)) for p, b in sorted(files.items())]
    if as_json:
        _emit_json({"commit": c.sha, "parents": list(c.parents), "author": c.author, "time": c.time,
                    "message": c.message, "files": [d.to_json() for d in diffs]})
        return
    click.echo(f"commit {c.sha}\nAuthor: {c.author}\nDate:   {_fmt_time(c.time, c.tz)}\n")
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
    """Show changes in LINDI terms: groups, arrays, attributes, and bytes of new chunk data.

    \b
    lindivc diff                 HEAD against the working files
    lindivc diff REV             REV against the working files
    lindivc diff REV1 REV2       REV1 against REV2
    lindivc diff [REV..] -- PATH limit to PATH
    """
    from .diff import format_diff
    from .repo import diff as repo_diff

    revs, paths = _split_dashdash(args)
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
    """Switch to REV (a branch, tag or commit), or restore PATHs from it.

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
@click.argument("name", required=False, shell_complete=comp.branch_names)
@click.argument("start", required=False, default="HEAD", shell_complete=comp.revisions)
@click.option("-d", "--delete", is_flag=True, help="Delete branch NAME.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable list: [{name, commit, current}].")
def branch(name: str | None, start: str, delete: bool, as_json: bool) -> None:
    """List branches, create NAME at START (default HEAD), or delete NAME with -d."""
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
    if delete:
        r.delete_branch(name)
        click.echo(f"deleted branch {name}")
    else:
        sha = r.create_branch(name, start)
        click.echo(f"created branch {name} at {sha[:10]}")


@cli.command()
@click.argument("name", required=False, shell_complete=comp.tag_names)
@click.argument("rev", required=False, default="HEAD", shell_complete=comp.revisions)
@click.option("-m", "--message", help="Make an annotated tag with this message.")
@click.option("-d", "--delete", is_flag=True, help="Delete tag NAME.")
def tag(name: str | None, rev: str, message: str | None, delete: bool) -> None:
    """List tags, tag REV (default HEAD) as NAME, or delete NAME with -d."""
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


# ---------------------------------------------------------------- zones


def _reporter():
    from .progress import RichReporter

    return RichReporter()


@cli.group(invoke_without_command=True)
@click.option("-v", "--verbose", is_flag=True, help="With no command: show each remote's URL, as `remote list -v`.")
@click.pass_context
def remote(ctx: click.Context, verbose: bool) -> None:
    """Manage the zones this repository exchanges data with. Without a COMMAND, list the
    remotes' names (with -v, their URLs too).

    \b
    URL forms:
      /path/to/dir  or  file:///path       a local directory (the embedded default)
      s3://bucket/prefix                   any S3-compatible store (AWS credentials,
                                           AWS_ENDPOINT_URL for MinIO, R2, ...)
      https://host/zones/USER/ZONE         a lindivc gateway (writes need `lindivc login`)
      https://host/path                    read-only HTTP zone (range requests)
    """
    if ctx.invoked_subcommand is None:  # as git: names only, or with -v each URL and its use
        for name, url in sorted(_repo().config.remotes().items()):
            click.echo(_remote_verbose(name, url) if verbose else name)


def _remote_verbose(name: str, url: str) -> str:
    # one URL serves both directions: a zone is read and written at the same place
    return f"{name}\t{url} (fetch)\n{name}\t{url} (push)"


@remote.command("add")
@click.argument("name")
@click.argument("url")
def remote_add(name: str, url: str) -> None:
    """Add remote NAME for the zone at URL."""
    from .remotes import add_remote

    click.echo(f"added remote {name} -> {add_remote(_repo(), name, url)}")


@remote.command("list")
@click.option("-v", "--verbose", is_flag=True, help="Two lines per remote, (fetch) and (push), as `git remote -v`.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output: [{name, url}].")
def remote_list(verbose: bool, as_json: bool) -> None:
    """List remotes and their zone URLs."""
    remotes = sorted(_repo().config.remotes().items())
    if as_json:
        _emit_json([{"name": name, "url": url} for name, url in remotes])
        return
    for name, url in remotes:
        click.echo(_remote_verbose(name, url) if verbose else f"{name}\t{url}")


@remote.command("remove")
@click.argument("name", shell_complete=comp.remote_names)
def remote_remove(name: str) -> None:
    """Remove remote NAME (the zone itself is not touched)."""
    from .remotes import remove_remote

    remove_remote(_repo(), name)
    click.echo(f"removed remote {name}")


@cli.command()
@click.argument("remote_name", metavar="[REMOTE]", default="origin", shell_complete=comp.remote_names)
@click.argument("branch_name", metavar="[BRANCH]", required=False, shell_complete=comp.branch_names)
@click.option("--force", is_flag=True, help="Overwrite the zone's branch even if it has commits you lack.")
@click.option("--dry-run", is_flag=True, help="Say what would be uploaded; change nothing.")
@click.option("--no-borrow", is_flag=True, help="Copy chunks that other zones of the same cloud hold "
              "instead of referencing them there.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable summary.")
def push(remote_name: str, branch_name: str | None, force: bool, dry_run: bool, no_borrow: bool, as_json: bool) -> None:
    """Publish BRANCH (default: the current branch) to the zone of REMOTE (default: origin).

    Only chunks the zone does not hold are uploaded, consolidated into packs; the published
    files appear at f/PATH (latest) and v/COMMIT/PATH (permanent) in the zone. An interrupted
    push resumes when run again.
    """
    from dataclasses import asdict

    from .diff import human_bytes
    from .push import push as do_push

    res = do_push(_repo(), remote_name, branch_name, force=force, dry_run=dry_run, borrow=not no_borrow,
                  reporter=_reporter())
    if as_json:
        _emit_json(asdict(res))
        return
    if res.up_to_date:
        click.echo(f"{remote_name}/{res.branch} is up to date ({res.new[:10]})")
        return
    verb = "would upload" if dry_run else "uploaded"
    click.echo(f"{res.commits} commit(s): {verb} {res.chunks_uploaded} chunk(s), {human_bytes(res.chunk_bytes)}"
               f"{f' in {res.packs_uploaded} object(s)' if not dry_run else ''}"
               f"{f'; borrowed {res.chunks_borrowed} chunk(s) from other zones' if res.chunks_borrowed else ''}")
    if not dry_run:
        click.echo(f"{remote_name}/{res.branch}: {(res.old or 'new branch')[:10]} -> {res.new[:10]}")
        for path, url in res.urls.items():
            click.echo(f"published {path}: {url}")


@cli.command()
@click.argument("remote_name", metavar="[REMOTE]", default="origin", shell_complete=comp.remote_names)
@click.option("--objects", is_flag=True, help="Also download chunk data, for offline use.")
def fetch(remote_name: str, objects: bool) -> None:
    """Download history and pack indexes from REMOTE (default: origin)."""
    from .diff import human_bytes
    from .fetch import fetch as do_fetch

    res = do_fetch(_repo(), remote_name, objects=objects, reporter=_reporter())
    for b, sha in sorted(res.refs.items()):
        click.echo(f"{remote_name}/{b}\t{sha[:10]}")
    click.echo(f"history: {human_bytes(res.history_bytes)}, new pack indexes: {res.indexes}"
               + (f", chunks: {res.objects_downloaded} ({human_bytes(res.object_bytes)})" if objects else ""))


@cli.command()
@click.argument("remote_name", metavar="[REMOTE]", default="origin", shell_complete=comp.remote_names)
@click.argument("branch_name", metavar="[BRANCH]", required=False, shell_complete=comp.branch_names)
def pull(remote_name: str, branch_name: str | None) -> None:
    """Fetch from REMOTE and bring the current branch up to date with the zone's.

    Fast-forwards when possible; when both sides have new commits that changed different
    files, records a merge commit; when both changed the same file, stops with an explanation.
    """
    from .fetch import pull as do_pull

    res = do_pull(_repo(), remote_name, branch_name, reporter=_reporter())
    if res.kind == "up-to-date":
        click.echo(f"already up to date ({(res.new or '')[:10]})")
    else:
        click.echo(f"{res.branch}: {(res.old or 'none')[:10]} -> {res.new[:10]} ({res.kind})")


@cli.command()
@click.argument("url")
@click.argument("directory", required=False)
@click.option("--objects", is_flag=True, help="Download chunk data too (otherwise read on demand from the zone).")
@click.option("-b", "--branch", help="Check out this branch instead of the zone's default.")
def clone(url: str, directory: str | None, objects: bool, branch: str | None) -> None:
    """Copy the repository published at zone URL into DIRECTORY.

    History and indexes come down; working files point at the zone, so data is read on demand
    (with --objects it is downloaded).
    """
    from .fetch import clone as do_clone

    r = do_clone(url, directory, objects=objects, branch=branch, reporter=_reporter())
    click.echo(f"cloned {url} into {r.root} (branch {r.history.head_branch()}, {len(r.tracked())} file(s))")


@cli.command()
@click.option("--target-size", type=int, help="Pack size in bytes (default: the repository's pack_size).")
def pack(target_size: int | None) -> None:
    """Consolidate loose chunk objects into packs (readable by byte range).

    Working files are rewritten to point into the packs; loose copies are removed only after
    each pack is verified.
    """
    from .diff import human_bytes
    from .repo import pack_loose

    n, nbytes = pack_loose(_repo(), target_size, reporter=_reporter())
    click.echo(f"packed {nbytes and human_bytes(nbytes) or '0 B'} into {n} pack(s)")


@cli.command()
@click.option("--bucket", help="S3 bucket that holds the zones (run the gateway).")
@click.option("--dir", "zone_dir", type=click.Path(exists=True, file_okay=False),
              help="Serve this local zone directory read-only instead (Range, CORS), e.g. at its --public-url.")
@click.option("--endpoint-url", help="S3 endpoint (MinIO, R2, moto...); default: AWS_ENDPOINT_URL or AWS.")
@click.option("--prefix", default="zones", show_default=True, help="Key prefix of the zones inside the bucket.")
@click.option("--public-url", help="Base URL where the bucket is publicly readable; reads are redirected there.")
@click.option("--github-api-url", default="https://api.github.com", show_default=True,
              help="GitHub API base URL that identifies tokens.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8080, show_default=True, type=int, help="Port to listen on.")
@click.option("--cache-ttl", default=300.0, show_default=True, type=float,
              help="Seconds a token's GitHub login is trusted before asking GitHub again.")
@click.option("--forwarded-allow-ips", default="", metavar="IPS",
              help="Comma-separated addresses of proxies whose X-Forwarded-For is trusted (default: none).")
@click.option("--header-timeout", default=10.0, show_default=True, type=float,
              help="Seconds a client has to send its request line and headers.")
@click.option("--body-timeout", default=30.0, show_default=True, type=float,
              help="Seconds to wait for the next part of a request body.")
@click.option("--max-connections", default=1000, show_default=True, type=int,
              help="Open connections; past it the one idle the longest is closed.")
@click.option("--max-requests", default=256, show_default=True, type=int,
              help="Requests served at once; more are answered 503 with Retry-After.")
@click.option("--upload-memory", default=64 << 20, show_default=True, type=int, metavar="BYTES",
              help="Upload bytes held in memory at once, all uploads together; the rest spool to disk.")
@click.option("--max-pin-bytes", default=1 << 20, show_default=True, type=int, metavar="BYTES",
              help="Size limit of a pin document.")
@click.option("--max-pins-per-user", default=100, show_default=True, type=int,
              help="Pins one user may leave in another user's zone.")
def serve(bucket, zone_dir, endpoint_url, prefix, public_url, github_api_url, host, port, cache_ttl,
          forwarded_allow_ips, header_timeout, body_timeout, max_connections, max_requests, upload_memory,
          max_pin_bytes, max_pins_per_user) -> None:
    """Run the zone gateway: anyone reads; a GitHub user writes only to zones/LOGIN/...

    With --dir ZONE_DIR instead of --bucket, serve a local zone directory read-only over HTTP.
    """
    from .server.guard import RequestLimits
    from .server.policy import DocumentLimits
    from .server.runner import ServerLimits

    if (bucket is None) == (zone_dir is None):
        raise click.UsageError("give exactly one of --bucket (a gateway) and --dir (a zone directory)")
    limits = ServerLimits(header_timeout=header_timeout, max_connections=max_connections,
                          forwarded_allow_ips=tuple(a.strip() for a in forwarded_allow_ips.split(",") if a.strip()))
    requests = RequestLimits(max_requests=max_requests, body_timeout=body_timeout)
    if zone_dir is not None:
        from .rangeserver import run_directory_server

        return run_directory_server(zone_dir, host, port, limits=limits, requests=requests)
    from .server.app import run_server

    run_server(bucket, endpoint_url, prefix, public_url, github_api_url, host, port, cache_ttl, limits=limits,
               requests=requests, upload_memory=upload_memory,
               documents=DocumentLimits(max_pin_bytes=max_pin_bytes, max_pins_per_user=max_pins_per_user))


@cli.command()
@click.option("--token", help="GitHub token. Without it, the token is read from a prompt (never echoed), "
              "or from the first line of standard input when that is not a terminal.")
def login(token: str | None) -> None:
    """Store a GitHub token for pushing through zone gateways (file mode 0600).

    GITHUB_TOKEN, when set, takes precedence over the stored token.

    \b
    lindivc login                        asks for the token
    echo "$TOKEN" | lindivc login        reads it from standard input
    """
    from .auth import login as do_login

    if token is None:
        # getpass warns (and may echo) when there is no terminal: read the piped line instead
        token = click.prompt("Token", hide_input=True) if sys.stdin.isatty() else sys.stdin.readline()
    click.echo(f"token stored in {do_login(token)}")


@cli.command()
def logout() -> None:
    """Remove the GitHub token that `lindivc login` stored."""
    from .auth import TOKEN_ENV, logout as do_logout, token_path

    path = token_path()
    click.echo(f"removed the token stored in {path}" if do_logout() else f"no token stored in {path}")
    if os.environ.get(TOKEN_ENV, "").strip():
        click.echo(f"note: {TOKEN_ENV} is set in the environment and is still used")


# ---------------------------------------------------------------- gc, fsck, pin


MAX_INVALID_SHOWN = 20


def _print_plan(plan, as_json: bool, verbose: bool) -> None:
    from .diff import human_bytes

    if as_json:
        _emit_json(plan.to_json())
        return
    click.echo(plan.roots.summary(local=plan.local))
    for n in plan.notes:
        click.echo(f"note: {n}")
    for bad in plan.invalid[:MAX_INVALID_SHOWN] if not verbose else plan.invalid:
        click.echo(f"invalid: {bad}")
    if len(plan.invalid) > MAX_INVALID_SHOWN and not verbose:
        click.echo(f"invalid: ... and {len(plan.invalid) - MAX_INVALID_SHOWN} more (-v or --json lists them all)")
    counts = plan.counts()
    what = ", ".join(f"{n} {k}{'s' if n != 1 else ''}" for k, n in sorted(counts.items())) or "nothing"
    verb = "deleted" if plan.swept else "would delete"
    nbytes = plan.deleted_bytes if plan.swept else plan.delete_bytes
    click.echo(f"{verb}: {what} ({human_bytes(nbytes)} of data)"
               + (f"; {'repacked' if plan.swept else 'would repack'} {len(plan.repack)} partly dead pack(s)"
                  if plan.repack else ""))
    if verbose:
        for d in plan.delete:
            click.echo(f"  {d.kind:8} {d.key}  {human_bytes(d.size)}  ({d.reason})")
        for rp in plan.repack:
            click.echo(f"  repack   {rp.pack}  keeps {len(rp.live)} chunk(s), frees {human_bytes(rp.dead_bytes)}")
    kept = sum(plan.kept.values())
    click.echo(f"kept: {kept} object(s), {human_bytes(plan.kept_bytes)}"
               + "".join(f"\n  {n:6}  {reason}" for reason, n in sorted(plan.kept.items(), key=lambda x: -x[1])))
    if not plan.swept and (plan.delete or plan.repack):
        click.echo("dry run: nothing was deleted; run again with --prune to delete")


@cli.command()
@click.option("--remote", "remote_name", metavar="NAME", shell_complete=comp.remote_names,
              help="Collect garbage in the zone of remote NAME instead of the local object store.")
@click.option("--prune", is_flag=True, help="Delete. Without it, gc only reports what it would delete.")
@click.option("--dry-run", is_flag=True, help="Only report (the default; for scripts that want to say so).")
@click.option("--grace", default="14d", show_default=True, metavar="DURATION",
              help="Never delete anything younger than this (by the store's clock): 14d, 36h, 30m, 90s.")
@click.option("--i-know-grace-now", "grace_now", is_flag=True,
              help="Allow --grace now (0): may delete objects a running push or edit is about to use.")
@click.option("--evict-pushed", is_flag=True,
              help="Local gc: also drop local copies of chunks a zone holds; working files then read them there.")
@click.option("--repack-threshold", default=0.5, show_default=True, type=click.FloatRange(0.0, 1.0),
              help="Zone gc: rewrite a pack when more than this share of its bytes is garbage.")
@click.option("--break-lease", is_flag=True,
              help="Zone gc: take over an expired lease left by a GC that crashed.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable report.")
@click.option("-v", "--verbose", is_flag=True, help="List every object to delete.")
def gc(remote_name, prune, dry_run, grace, grace_now, evict_pushed, repack_threshold, break_lease, as_json,
       verbose) -> None:
    """Find (and with --prune, delete) data that nothing uses any more.

    Locally: loose objects and packs that no branch, tag, recent reflog entry, staged or
    working file references. With --remote NAME: objects in that zone that no ref, commit,
    published file (of any zone of the same cloud), pin or running push references. Only
    objects older than --grace are deleted. Without --prune this is a dry run.
    """
    from . import gc as lgc

    if prune and dry_run:
        raise click.UsageError("--prune and --dry-run contradict each other")
    g = lgc.parse_grace(grace, allow_now=grace_now)
    plan = lgc.gc_repository(_repo(), remote_name, prune=prune, grace=g, threshold=repack_threshold,
                             break_lease=break_lease, evict_pushed=evict_pushed)
    _print_plan(plan, as_json, verbose)


@cli.command()
@click.option("--remote", "remote_name", metavar="NAME", shell_complete=comp.remote_names,
              help="Check the zone of remote NAME instead of the local store.")
@click.option("--read-data", is_flag=True, help="Zone: read every object in full and check its hash (slow).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable report.")
def fsck(remote_name, read_data, as_json) -> None:
    """Check that every object hashes to its name, every pack matches its index, and every
    chunk a committed file references can be found. Exit status 1 if anything is wrong."""
    from .fsck import FsckFailed, fsck_repository

    rep = fsck_repository(_repo(), remote_name, read_data=read_data)
    if as_json:
        _emit_json(rep.to_json())
    else:
        for p in rep.problems:
            click.echo(f"error: {p}")
        for w in rep.warnings:
            click.echo(f"warning: {w}")
        click.echo(rep.summary())
    if not rep.ok:
        raise FsckFailed(rep.target, len(rep.problems))


@cli.command()
@click.argument("url", required=False)
@click.option("--remote", "remote_name", default="origin", show_default=True, metavar="NAME",
              shell_complete=comp.remote_names, help="The zone whose objects the file references.")
@click.option("--refresh", is_flag=True,
              help="Read pinned files again and rewrite their pins: the pin URL (an id or a pinned URL), "
                   "or every file pin you wrote.")
@click.option("--list", "list_", is_flag=True, help="List the zone's pins, with the reason for any that keeps nothing.")
@click.option("--remove", "remove_id", metavar="ID", help="Remove pin ID (see --list).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def pin(url, remote_name, refresh, list_, remove_id, as_json) -> None:
    """Keep the data that the LINDI file at URL uses, although URL is outside the zone's cloud.

    The file is read here, with your credentials, and the pin stores what it references in
    REMOTE's zone (URL is only its label): zone gc keeps that, and never reads URL. When the
    file changes, run `lindivc pin --refresh URL`. Use it when you publish a derivative file
    elsewhere (your own web server, another bucket) that points at chunks in REMOTE's zone.
    """
    from . import gc as lgc
    from . import pinning
    from .catalog import remote_zone

    zone = remote_zone(_repo(), remote_name)
    if remove_id:
        lgc.unpin(zone, remove_id)
        click.echo(f"removed pin {remove_id}")
    elif refresh:
        done = pinning.refresh_pins(zone, url)
        if as_json:
            _emit_json([{"id": r.id, "label": r.label, "error": r.error,
                         "pin": r.result.to_json() if r.result else None} for r in done])
        for r in done if not as_json else []:
            if r.result is not None:
                click.echo(f"refreshed {r.id}: {r.label} ({_pin_roots(r.result.pin)})")
            else:
                click.echo(f"not refreshed {r.id}: {r.error}", err=True)
        if not done and not as_json:
            click.echo("no file pins of yours to refresh")
        if any(r.error for r in done):
            raise click.exceptions.Exit(1)
    elif list_ or not url:
        pins = lgc.list_pins(zone)
        if as_json:
            _emit_json([p.to_json() for p in pins])
            return
        for p in pins:
            if p.pin is None:
                click.echo(f"{p.id}\tkeeps nothing: {p.problem}")
            else:
                legacy = " (old format: run `lindivc pin --refresh`)" if p.pin.legacy and p.pin.kind == "file" else ""
                click.echo(f"{p.id}\t{p.pin.kind} {p.pin.label}\t{_pin_roots(p.pin)}{legacy}")
        if not pins:
            click.echo("no pins")
    else:
        res = pinning.pin(zone, url)
        if as_json:
            _emit_json(res.to_json())
            return
        click.echo(f"pinned {url} in {zone.url} as {res.id} ({_pin_roots(res.pin)})")
        if res.missing:
            click.echo(f"warning: {len(res.missing)} object(s) it references are no longer in the zone", err=True)


def _pin_roots(p) -> str:
    parts = [(len(p.ranges), "range"), (len(p.chunks), "chunk"), (len(p.objects), "object")]
    return ", ".join(f"{n} {what}{'s' if n != 1 else ''}" for n, what in parts if n) or "nothing"


def main() -> None:
    cli(prog_name="lindivc")


if __name__ == "__main__":
    main()
