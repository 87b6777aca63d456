"""Maintenance and serving: pack, serve, gc, fsck, pin."""
from __future__ import annotations


import click

from .. import completion as comp
from .base import _emit_json, _repo, _reporter, cli


@cli.command()
@click.option("--target-size", type=int, metavar="BYTES", help="Pack size (default: the repository's pack_size).")
def pack(target_size: int | None) -> None:
    """Consolidate loose chunk objects into packs.

    A pack is the chunks one after the other, so any reader reads one by byte range. Working files are rewritten to point into the packs; loose copies are removed only after
    each pack is verified.
    """
    from ..diff import human_bytes
    from ..consolidate import pack_loose

    n, nbytes = pack_loose(_repo(), target_size, reporter=_reporter())
    click.echo(f"packed {nbytes and human_bytes(nbytes) or '0 B'} into {n} pack(s)")


@cli.command()
@click.option("--bucket", metavar="NAME", help="S3 bucket that holds the zones (run the gateway).")
@click.option("--dir", "zone_dir", type=click.Path(exists=True, file_okay=False),
              help="Serve this local zone directory read-only instead (Range, CORS), e.g. at its --public-url.")
@click.option("--endpoint-url", metavar="URL", help="S3 endpoint (MinIO, R2, moto...); default: AWS_ENDPOINT_URL or AWS.")
@click.option("--prefix", metavar="PREFIX", default="zones", show_default=True, help="Key prefix of the zones inside the bucket.")
@click.option("--public-url", metavar="URL", help="Base URL where the bucket is publicly readable; reads are redirected there.")
@click.option("--github-api-url", metavar="URL", default="https://api.github.com", show_default=True,
              help="GitHub API base URL that identifies tokens.")
@click.option("--host", metavar="ADDRESS", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", metavar="PORT", default=8080, show_default=True, type=int, help="Port to listen on.")
@click.option("--cache-ttl", default=300.0, show_default=True, type=float, metavar="SECONDS",
              help="Seconds a token's GitHub login is trusted before asking GitHub again.")
@click.option("--forwarded-allow-ips", default="", metavar="IPS",
              help="Comma-separated addresses of proxies whose X-Forwarded-For is trusted (default: none).")
@click.option("--header-timeout", default=10.0, show_default=True, type=float, metavar="SECONDS",
              help="Seconds a client has to send its request line and headers.")
@click.option("--body-timeout", default=30.0, show_default=True, type=float, metavar="SECONDS",
              help="Seconds to wait for the next part of a request body.")
@click.option("--max-connections", default=1000, show_default=True, type=int, metavar="N",
              help="Open connections; past it the one idle the longest is closed.")
@click.option("--max-requests", default=256, show_default=True, type=int, metavar="N",
              help="Requests served at once; more are answered 503 with Retry-After.")
@click.option("--upload-memory", default=64 << 20, show_default=True, type=int, metavar="BYTES",
              help="Upload bytes held in memory at once, all uploads together; the rest spool to disk.")
@click.option("--max-pin-bytes", default=1 << 20, show_default=True, type=int, metavar="BYTES",
              help="Size limit of a pin document.")
@click.option("--max-pins-per-user", default=100, show_default=True, type=int, metavar="N",
              help="Pins one user may leave in another user's zone.")
def serve(bucket, zone_dir, endpoint_url, prefix, public_url, github_api_url, host, port, cache_ttl,
          forwarded_allow_ips, header_timeout, body_timeout, max_connections, max_requests, upload_memory,
          max_pin_bytes, max_pins_per_user) -> None:
    """Serve zones over HTTP: a gateway for S3, or a zone directory.

    With --bucket NAME, run the zone gateway: anyone reads; a user with a GitHub token writes
    only to zones/LOGIN/... With --dir DIRECTORY instead, serve a local zone directory
    read-only (with Range and CORS, as lindi, fsspec and browsers need).

    \b
    lindivc serve --bucket lab-data --public-url https://data.example.org
    lindivc serve --dir /data/zones/ada/acg --port 8000
    """
    from ..server.guard import RequestLimits
    from ..server.policy import DocumentLimits
    from ..server.runner import ServerLimits

    if (bucket is None) == (zone_dir is None):
        raise click.UsageError("give exactly one of --bucket (a gateway) and --dir (a zone directory)")
    limits = ServerLimits(header_timeout=header_timeout, max_connections=max_connections,
                          forwarded_allow_ips=tuple(a.strip() for a in forwarded_allow_ips.split(",") if a.strip()))
    requests = RequestLimits(max_requests=max_requests, body_timeout=body_timeout)
    if zone_dir is not None:
        from ..rangeserver import run_directory_server

        return run_directory_server(zone_dir, host, port, limits=limits, requests=requests)
    from ..server.app import run_server

    run_server(bucket, endpoint_url, prefix, public_url, github_api_url, host, port, cache_ttl, limits=limits,
               requests=requests, upload_memory=upload_memory,
               documents=DocumentLimits(max_pin_bytes=max_pin_bytes, max_pins_per_user=max_pins_per_user))


# ---------------------------------------------------------------- gc, fsck, pin


MAX_INVALID_SHOWN = 20


def _print_plan(plan, as_json: bool, verbose: bool) -> None:
    from ..diff import human_bytes

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
    what = ", ".join(f"{n} {k}{('es' if k.endswith('x') else 's') if n != 1 else ''}"
                     for k, n in sorted(counts.items())) or "nothing"
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
@click.option("--repack-threshold", default=0.5, show_default=True, type=click.FloatRange(0.0, 1.0), metavar="SHARE",
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

    \b
    lindivc gc                            what a local gc would delete
    lindivc gc --prune                    delete it
    lindivc gc --prune --evict-pushed     also drop local copies of pushed chunks
    lindivc gc --remote origin --prune    the same in the zone of remote origin
    """
    from .. import gc as lgc

    if prune and dry_run:
        raise click.UsageError("--prune and --dry-run contradict each other")
    g = lgc.parse_grace(grace, allow_now=grace_now)
    plan = lgc.gc_repository(_repo(), remote_name, prune=prune, grace=g, threshold=repack_threshold,
                             break_lease=break_lease, evict_pushed=evict_pushed, reporter=_reporter())
    _print_plan(plan, as_json, verbose)


@cli.command()
@click.option("--remote", "remote_name", metavar="NAME", shell_complete=comp.remote_names,
              help="Check the zone of remote NAME instead of the local store.")
@click.option("--read-data", is_flag=True, help="Zone: read every object in full and check its hash (slow).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable report.")
def fsck(remote_name, read_data, as_json) -> None:
    """Check the object store (or a zone) for damage.

    Checks the repository's object store, or with --remote NAME that remote's zone. Every object must hash to its name, every pack match its index, and every chunk a
    committed file references be found. The local store is always read in full; a zone's
    objects only with --read-data. Exit status 1 if anything is wrong.
    """
    from ..fsck import FsckFailed, fsck_repository

    rep = fsck_repository(_repo(), remote_name, read_data=read_data, reporter=_reporter())
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
    """Keep zone gc from deleting data that the file at URL uses.

    Use it when you publish a derivative file outside the zone's cloud (your own web server,
    another bucket) that points at chunks in the zone of --remote NAME. The file is read here,
    with your credentials, and the pin stores what it references in that zone (URL is only its
    label): zone gc keeps that and never reads URL. When the file changes, refresh the pin.

    \b
    lindivc pin https://lab.example.org/derived.nwb.lindi.json
    lindivc pin --refresh https://lab.example.org/derived.nwb.lindi.json
    lindivc pin --list
    lindivc pin --remove ID
    """
    from .. import gc as lgc
    from .. import pinning
    from ..catalog import remote_zone

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
