"""The `lindivc` root group and what its commands share (errors as one line, the repository,
JSON output, progress)."""
from __future__ import annotations

import json
import os

import click

from .. import completion as comp
from ..errors import LindivcError


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
    from ..repo import Repository

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


def _reporter():
    from ..progress import RichReporter

    return RichReporter()
