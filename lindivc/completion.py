"""Shell completion of lindivc's arguments: remote names, branches, tags, revisions and paths,
read from the repository that contains the current directory.

The CLI attaches these as click ``shell_complete`` callbacks; click's completion scripts call them
(enable with ``eval "$(_LINDIVC_COMPLETE=bash_source lindivc)"``, see the README). Outside a
repository, or when it cannot be read, a callback offers nothing rather than failing: a
completion must never print an error into the user's command line.
"""
from __future__ import annotations

import os
from typing import Callable, Iterable

import click
from click.shell_completion import CompletionItem

from .errors import LindivcError

Completer = Callable[[click.Context, click.Parameter, str], list[CompletionItem]]
AFTER_DASHDASH = "lindivc.after_dashdash"  # ctx.meta key that cli.DashDashCommand sets


def _repository():
    """The repository of the current directory, or None."""
    from .repo import Repository

    try:
        return Repository.find(os.getcwd())
    except LindivcError:
        return None


def _items(names: Iterable[str], incomplete: str, help: str | None = None) -> list[CompletionItem]:
    return [CompletionItem(n, help=help) for n in sorted(set(names)) if n.startswith(incomplete)]


def _names(read: Callable[[object], Iterable[str]], incomplete: str, help: str | None = None) -> list[CompletionItem]:
    r = _repository()
    if r is None:
        return []
    try:
        return _items(read(r), incomplete, help)
    except LindivcError:
        return []
    finally:
        r.close()


def remote_names(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """Names of the repository's remotes."""
    return _names(lambda r: r.config.remotes(), incomplete)


def branch_names(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """Local branch names."""
    return _names(lambda r: r.history.branches(), incomplete)


def tag_names(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """Tag names."""
    return _names(lambda r: r.history.tags(), incomplete)


def _revisions(r) -> list[str]:
    h = r.history
    return ["HEAD", *h.branches(), *h.tags(), *h.refs_under("refs/remotes/")]


def revisions(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """Branches, tags, remote-tracking branches (``origin/main``) and HEAD; after ``REV:``, the
    paths tracked at HEAD (for ``show REV:PATH``)."""
    if ":" in incomplete:
        rev = incomplete.partition(":")[0]
        return _names(lambda r: [f"{rev}:{p}" for p in r.tracked()], incomplete)
    return _names(_revisions, incomplete)


def _here(r, paths: Iterable[str]) -> list[str]:
    """Repository paths as the user types them: relative to the current directory."""
    cwd = os.getcwd()
    return [os.path.relpath(r.abspath(p), cwd) for p in paths]


def tracked_paths(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """Tracked files, relative to the current directory."""
    return _names(lambda r: _here(r, r.tracked()), incomplete)


def lindi_files(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """Every LINDI file of the working tree, tracked or not, relative to the current directory."""
    return _names(lambda r: _here(r, r.lindi_files()), incomplete)


def revisions_then_paths(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """For ``REV... -- PATH...`` arguments: revisions before ``--``, tracked paths after it."""
    if ctx.meta.get(AFTER_DASHDASH) is not None:
        return tracked_paths(ctx, param, incomplete)
    return revisions(ctx, param, incomplete)


def revisions_or_paths(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """For an argument that is a revision or a path (``log [PATH|REV]``): both."""
    return revisions(ctx, param, incomplete) + tracked_paths(ctx, param, incomplete)
