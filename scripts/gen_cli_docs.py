"""Write docs/cli.md, the command reference, from the click commands of lindivc/cli/.

    .venv/bin/python scripts/gen_cli_docs.py           rewrite docs/cli.md
    .venv/bin/python scripts/gen_cli_docs.py --check   exit 1 if docs/cli.md is stale

Each command's section is its first help sentence and its full `--help` text, rendered at a fixed
width so that the output does not depend on the terminal. tests/test_docs.py fails when the
file is stale, so a change to a command's options or help goes with a regenerated reference.
"""
from __future__ import annotations

import os
import sys

import click

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "docs", "cli.md")
WIDTH = 100
COMMAND = ".venv/bin/python scripts/gen_cli_docs.py"  # from the repository root

HEADER = f"""# lindivc command reference

<!-- Generated from lindivc/cli/ by scripts/gen_cli_docs.py; do not edit by hand.
     After changing a command, run: {COMMAND} -->

Every command is also documented by `lindivc COMMAND --help`; this page is that text, collected.
For the ideas behind the commands read the [user's guide](guide.md); for the on-disk and zone
formats, [format.md](format.md).

Errors are one line on stderr and exit status 1; `--json` output, where offered, is for scripts.
"""


def _commands(group: click.Group, ctx: click.Context, prefix: list[str]):
    """(path, command, context) for every command under ``group``, depth first, in name order."""
    for name in sorted(group.list_commands(ctx)):
        cmd = group.get_command(ctx, name)
        if cmd is None or cmd.hidden:
            continue
        sub = click.Context(cmd, info_name=name, parent=ctx, terminal_width=WIDTH, max_content_width=WIDTH)
        yield prefix + [name], cmd, sub
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, sub, prefix + [name])


def _anchor(path: list[str]) -> str:
    return "lindivc-" + "-".join(path)


def render() -> str:
    """The text of docs/cli.md for the commands as they are now."""
    from lindivc.cli import cli

    root = click.Context(cli, info_name="lindivc", **{**cli.context_settings, "terminal_width": WIDTH,
                                                       "max_content_width": WIDTH})
    cmds = list(_commands(cli, root, []))
    out = [HEADER, "## Commands\n", "| Command | What it does |", "|---|---|"]
    for path, cmd, _ in cmds:
        out.append(f"| [`lindivc {' '.join(path)}`](#{_anchor(path)}) | {cmd.get_short_help_str(limit=200)} |")
    out.append("")
    out.append("## `lindivc`\n")
    out.append("```text\n" + cli.get_help(root).rstrip() + "\n```\n")
    for path, cmd, ctx in cmds:
        out.append(f'<a id="{_anchor(path)}"></a>\n')
        out.append(f"## `lindivc {' '.join(path)}`\n")
        out.append(cmd.get_short_help_str(limit=200) + "\n")
        out.append("```text\n" + cmd.get_help(ctx).rstrip() + "\n```\n")
    return "\n".join(out)


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        with open(OUT, encoding="utf-8") as f:
            current = f.read()
        if current != text:
            print(f"docs/cli.md is stale; regenerate it from the repository root with: {COMMAND}", file=sys.stderr)
            return 1
        return 0
    with open(OUT, "w", encoding="utf-8") as f:
        f.write(text)
    print(f"wrote {os.path.relpath(OUT, ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
