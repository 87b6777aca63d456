"""Commands that talk to zones: remote, push, fetch, pull, clone, login, logout."""
from __future__ import annotations

import os
import sys

import click

from .. import completion as comp
from .base import _emit_json, _repo, _reporter, cli


@cli.group(invoke_without_command=True)
@click.option("-v", "--verbose", is_flag=True, help="With no command: show each remote's URL, as `remote list -v`.")
@click.pass_context
def remote(ctx: click.Context, verbose: bool) -> None:
    """Manage the zones this repository exchanges data with. Without a COMMAND, list the
    remotes' names (with -v, their URLs too).

    \b
    URL forms:
      /path/to/dir, file:///path    a local directory (the embedded default)
      s3://bucket/prefix            any S3-compatible store (AWS credentials;
                                    AWS_ENDPOINT_URL for MinIO, R2, ...)
      https://host/zones/USER/ZONE  a lindivc gateway (writes: `lindivc login`)
      https://host/path             a read-only HTTP zone (range requests)

    Published files name the zone's chunks under its public URL: by default the
    gateway's URL, the S3 endpoint's, or a directory's path; --public-url sets
    another (a CDN in front of a bucket, a served directory).
    """
    if ctx.invoked_subcommand is None:  # as git: names only, or with -v each URL and its use
        repo = _repo()
        for name, url in sorted(repo.config.remotes().items()):
            click.echo(_remote_verbose(name, url, repo.config.remote_public_url(name)) if verbose else name)


def _remote_verbose(name: str, url: str, public_url: str | None) -> str:
    # one URL serves both directions: a zone is read and written at the same place
    return f"{name}\t{url} (fetch)\n{name}\t{url} (push)" + (f"\n{name}\t{public_url} (public)" if public_url else "")


_PUBLIC_URL_HELP = ("The http(s) URL at which the zone's directory is readable (a CDN in front of a bucket, "
                    "an R2 public domain, `lindivc serve --dir`): published files name chunks under it.")


@remote.command("add")
@click.argument("name")
@click.argument("url")
@click.option("--public-url", metavar="URL", help=_PUBLIC_URL_HELP)
def remote_add(name: str, url: str, public_url: str | None) -> None:
    """Add remote NAME for the zone at URL.

    \b
    lindivc remote add origin s3://lab-data/zones/ada/acg
    lindivc remote add shared https://gateway.example.org/zones/ada/acg
    lindivc remote add lab /srv/zones/ada/acg --public-url https://lab.example.org/zones/ada/acg/
    """
    from ..remotes import add_remote

    click.echo(f"added remote {name} -> {add_remote(_repo(), name, url, public_url)}"
               + (f" (public URL {_repo().config.remote_public_url(name)})" if public_url else ""))


@remote.command("set-url")
@click.argument("name", shell_complete=comp.remote_names)
@click.argument("url", required=False)
@click.option("--public-url", metavar="URL", help=_PUBLIC_URL_HELP)
@click.option("--no-public-url", is_flag=True, help="Publish under the zone's own URL again.")
def remote_set_url(name: str, url: str | None, public_url: str | None, no_public_url: bool) -> None:
    """Change the URL of remote NAME, or its public URL.

    With URL, the zone moves; with --public-url, published files name the zone's chunks under
    that URL from the next push on (files already published keep their URLs until then).
    """
    from ..remotes import set_remote_url

    if url is None and public_url is None and not no_public_url:
        raise click.UsageError("give a new URL, --public-url URL or --no-public-url")
    if public_url is not None and no_public_url:
        raise click.UsageError("--public-url and --no-public-url exclude each other")
    new_url, new_public = set_remote_url(_repo(), name, url, public_url, no_public_url)
    click.echo(f"remote {name} -> {new_url}" + (f" (public URL {new_public})" if new_public else ""))


@remote.command("list")
@click.option("-v", "--verbose", is_flag=True, help="Two lines per remote, (fetch) and (push), as `git remote -v`.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output: [{name, url}].")
def remote_list(verbose: bool, as_json: bool) -> None:
    """List remotes and their zone URLs."""
    repo = _repo()
    remotes = sorted(repo.config.remotes().items())
    public = {name: repo.config.remote_public_url(name) for name, _ in remotes}
    if as_json:
        _emit_json([{"name": name, "url": url, **({"public_url": public[name]} if public[name] else {})}
                    for name, url in remotes])
        return
    for name, url in remotes:
        click.echo(_remote_verbose(name, url, public[name]) if verbose else f"{name}\t{url}")


@remote.command("remove")
@click.argument("name", shell_complete=comp.remote_names)
def remote_remove(name: str) -> None:
    """Remove remote NAME (the zone itself is not touched)."""
    from ..remotes import remove_remote

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
    """Publish BRANCH to the zone of REMOTE.

    BRANCH defaults to the current branch, REMOTE to origin. Only chunks the zone does not hold
    are uploaded, consolidated into packs, including the byte ranges of local files (an NWB file
    imported without --ingest) that the commits reference, so that the published files are
    readable without your disk. They appear at f/PATH (latest) and v/COMMIT/PATH (permanent, one
    per pushed commit) in the zone; with an http(s) public URL, push prints each one's URL and
    Neurosift link. An interrupted push resumes when run again.
    """
    from dataclasses import asdict

    from ..progress import human_bytes
    from ..push import push as do_push

    res = do_push(_repo(), remote_name, branch_name, force=force, dry_run=dry_run, borrow=not no_borrow,
                  reporter=_reporter())
    if as_json:
        _emit_json(asdict(res))
        return
    if res.up_to_date:
        click.echo(f"{remote_name}/{res.branch} is up to date ({res.new[:10]})")
        _echo_published(remote_name, res)
        return
    verb = "would upload" if dry_run else "uploaded"
    click.echo(f"{res.commits} commit(s): {verb} {res.chunks_uploaded} chunk(s), {human_bytes(res.chunk_bytes)}"
               f"{f' in {res.packs_uploaded} object(s)' if not dry_run else ''}"
               f"{f' ({human_bytes(res.local_bytes)} of them from local files)' if res.local_bytes else ''}"
               f"{f'; borrowed {res.chunks_borrowed} chunk(s) from other zones' if res.chunks_borrowed else ''}")
    if dry_run:
        return
    click.echo(f"{remote_name}/{res.branch}: {(res.old or 'new branch')[:10]} -> {res.new[:10]}")
    _echo_published(remote_name, res)


def _echo_published(remote_name: str, res) -> None:
    from ..publish import is_http, neurosift_url

    for path in res.files_published:
        url = res.urls.get(path) or res.versions[path]
        click.echo(f"published {path}: {url}")
        if is_http(url):
            click.echo(f"  Neurosift: {neurosift_url(url)}")
    if res.files_published and not is_http(res.public_base):
        click.echo(f"hint: for a URL that browsers and other machines open, serve the zone (lindivc serve --dir "
                   f"{res.public_base.rstrip('/')}) and run: lindivc remote set-url {remote_name} --public-url "
                   "http://HOST:PORT/")


@cli.command()
@click.argument("remote_name", metavar="[REMOTE]", default="origin", shell_complete=comp.remote_names)
@click.option("--objects", is_flag=True, help="Also download chunk data, for offline use.")
@click.option("--json", "as_json", is_flag=True,
              help="Machine-readable summary: {remote, refs, history_bytes, indexes, objects_downloaded, object_bytes}.")
def fetch(remote_name: str, objects: bool, as_json: bool) -> None:
    """Download history and pack indexes from REMOTE (default: origin).

    Sets the remote-tracking branches (REMOTE/BRANCH); your branches and working files are not
    touched: `lindivc pull` brings them up to date.
    """
    from ..fetch import fetch as do_fetch
    from ..progress import human_bytes

    res = do_fetch(_repo(), remote_name, objects=objects, reporter=_reporter())
    if as_json:
        _emit_json(res.to_json())
        return
    for b, sha in sorted(res.refs.items()):
        click.echo(f"{remote_name}/{b}\t{sha[:10]}")
    click.echo(f"history: {human_bytes(res.history_bytes)}, new pack indexes: {res.indexes}"
               + (f", chunks: {res.objects_downloaded} ({human_bytes(res.object_bytes)})" if objects else ""))


@cli.command()
@click.argument("remote_name", metavar="[REMOTE]", default="origin", shell_complete=comp.remote_names)
@click.argument("branch_name", metavar="[BRANCH]", required=False, shell_complete=comp.branch_names)
@click.option("--json", "as_json", is_flag=True,
              help="Machine-readable summary: {branch, old, new, kind, fetch}.")
def pull(remote_name: str, branch_name: str | None, as_json: bool) -> None:
    """Fetch from REMOTE and bring BRANCH up to date with the zone's.

    REMOTE defaults to origin, BRANCH to the current branch. Fast-forwards when possible, else
    merges as `lindivc merge REMOTE/BRANCH` does: a LINDI file both sides changed is merged key
    by key. At conflicts it stops before writing anything (exit status 1); resolve them with
    `lindivc merge --ours/--theirs PATH` and `lindivc merge --continue`, or `lindivc merge --abort`.
    """
    from ..fetch import pull as do_pull

    res = do_pull(_repo(), remote_name, branch_name, reporter=_reporter())
    if res.kind == "conflicts":
        raise res.merge.error()
    if as_json:
        _emit_json(res.to_json())
    elif res.kind == "up-to-date":
        click.echo(f"already up to date ({(res.new or '')[:10]})")
    else:
        merged = res.merge.merged_files if res.merge else []
        lindi = f"; merged in LINDI terms: {', '.join(merged)}" if merged else ""
        click.echo(f"{res.branch}: {(res.old or 'none')[:10]} -> {res.new[:10]} ({res.kind}{lindi})")


@cli.command()
@click.argument("url")
@click.argument("directory", required=False)
@click.option("--objects", is_flag=True, help="Download chunk data too (otherwise read on demand from the zone).")
@click.option("-b", "--branch", metavar="BRANCH", help="Check out BRANCH instead of the zone's default.")
@click.option("--json", "as_json", is_flag=True,
              help="Machine-readable summary: {url, directory, branch, files, fetch}.")
def clone(url: str, directory: str | None, objects: bool, branch: str | None, as_json: bool) -> None:
    """Copy the repository published at zone URL into DIRECTORY.

    DIRECTORY defaults to the zone's name. History and indexes come down; working files point at the zone, so data is read on demand
    (with --objects it is downloaded).

    \b
    lindivc clone s3://bucket/zones/ada/acg
    lindivc clone https://gateway.example.org/zones/ada/acg acg-copy --objects
    """
    from ..fetch import clone_repository

    res = clone_repository(url, directory, objects=objects, branch=branch, reporter=_reporter())
    if as_json:
        _emit_json(res.to_json())
        return
    click.echo(f"cloned {url} into {res.repo.root} (branch {res.branch}, {len(res.files)} file(s))")


@cli.command()
@click.option("--token", metavar="TOKEN", help="GitHub token. Without it, the token is read from a prompt (never echoed), "
              "or from the first line of standard input when that is not a terminal.")
def login(token: str | None) -> None:
    """Store a GitHub token for pushing through zone gateways.

    The token is kept in a file only you can read (mode 0600). GITHUB_TOKEN, when set, takes precedence over the stored token.

    \b
    lindivc login                        asks for the token
    echo "$TOKEN" | lindivc login        reads it from standard input
    """
    from ..auth import login as do_login

    if token is None:
        # getpass warns (and may echo) when there is no terminal: read the piped line instead
        token = click.prompt("Token", hide_input=True) if sys.stdin.isatty() else sys.stdin.readline()
    click.echo(f"token stored in {do_login(token)}")


@cli.command()
def logout() -> None:
    """Remove the GitHub token that `lindivc login` stored."""
    from ..auth import TOKEN_ENV, logout as do_logout, token_path

    path = token_path()
    click.echo(f"removed the token stored in {path}" if do_logout() else f"no token stored in {path}")
    if os.environ.get(TOKEN_ENV, "").strip():
        click.echo(f"note: {TOKEN_ENV} is set in the environment and is still used")
