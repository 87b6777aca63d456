"""Remotes: the zones a repository exchanges data with, by name (docs/format.md sections 3, 7).

A remote is three things: its entry in ``config.json``, its catalog under
``.lindivc/remotes/<name>/`` (:mod:`lindivc.catalog`), and its remote-tracking refs
``refs/remotes/<name>/<branch>``, which say where the zone's branches were when last seen. Every
change of a remote-tracking ref states the value it replaces (RefConflict otherwise), like every
other ref update.
"""
from __future__ import annotations

import shutil

from .catalog import catalog_dir
from .errors import RefConflict
from .history import History


def add_remote(repo, name: str, url: str, public_url: str | None = None) -> str:
    """Add remote ``name`` for the zone at ``url`` (published refs start with ``public_url``
    when given: docs/format.md 6.2); return the URL as stored (normalized). LindivcError for an
    invalid or existing name, InvalidKey for an invalid URL, InvalidPublicURL."""
    repo.config.add_remote(name, url, public_url)
    repo._catalogs = None  # the next catalogs() includes the new remote
    return repo.config.remote_url(name)


def set_remote_url(repo, name: str, url: str | None = None, public_url: str | None = None,
                   clear_public_url: bool = False) -> tuple[str, str | None]:
    """Change the zone URL of remote ``name`` and/or its public base URL (``clear_public_url``:
    back to the zone's default); return (URL, public URL) as stored. A new zone URL drops what
    was known of the old zone (its catalog; the next fetch or push rebuilds it). LindivcError
    for an unknown remote, InvalidKey, InvalidPublicURL."""
    old = repo.config.remote_url(name)
    repo.config.set_remote(name, url, public_url, clear_public_url)
    if repo.config.remote_url(name) != old:
        shutil.rmtree(catalog_dir(repo, name), ignore_errors=True)
    repo._catalogs = None
    return repo.config.remote_url(name), repo.config.remote_public_url(name)


def remove_remote(repo, name: str) -> None:
    """Forget remote ``name``: its configuration, its catalog and its remote-tracking refs. The
    zone itself is not touched. LindivcError for an unknown remote; RefConflict if one of its
    remote-tracking refs changed while it was being removed."""
    repo.config.remote_url(name)  # an unknown remote is the first thing to report
    for branch, sha in sorted(tracking_refs(repo.history, name).items()):
        delete_tracking_ref(repo.history, name, branch, sha, hint=f"run `lindivc remote remove {name}` again")
    repo.config.remove_remote(name)
    shutil.rmtree(catalog_dir(repo, name), ignore_errors=True)
    repo._catalogs = None


def tracking_ref(remote: str, branch: str) -> str:
    """The name of the remote-tracking ref of ``branch`` of ``remote``."""
    return f"refs/remotes/{remote}/{branch}"


def tracking_refs(history: History, remote: str) -> dict[str, str]:
    """Branch -> commit of every remote-tracking ref of ``remote``."""
    return history.refs_under(f"refs/remotes/{remote}/")


def set_tracking_ref(history: History, remote: str, branch: str, new: str, expected: str | None,
                     hint: str = "") -> None:
    """Move the remote-tracking ref of ``branch`` from ``expected`` (None: absent) to ``new``.

    RefConflict (with ``hint``) if it holds neither ``expected`` nor ``new``: someone else moved
    it meanwhile, and their value is kept. No reflog entry is written (these refs mirror a zone;
    the local GC's reflog roots are the user's own history)."""
    if expected == new:
        return
    name = tracking_ref(remote, branch)
    try:
        history.set_ref(name, new, expected, None)
    except RefConflict as e:
        if e.actual != new:
            raise RefConflict(name, expected, e.actual, hint) from None


def delete_tracking_ref(history: History, remote: str, branch: str, expected: str, hint: str = "") -> None:
    """Delete the remote-tracking ref of ``branch`` if it still names ``expected``; RefConflict
    (with ``hint``) if it names another commit (an absent ref is already what was asked)."""
    name = tracking_ref(remote, branch)
    try:
        history.delete_ref(name, expected)
    except RefConflict as e:
        if e.actual is not None:
            raise RefConflict(name, expected, e.actual, hint) from None
