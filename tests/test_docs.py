"""The documentation stays true to the code: docs/cli.md is what scripts/gen_cli_docs.py makes
from the click commands now, and the links between the docs resolve."""
from __future__ import annotations

import importlib.util
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _generator():
    spec = importlib.util.spec_from_file_location("gen_cli_docs", os.path.join(ROOT, "scripts", "gen_cli_docs.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_cli_reference_is_current():
    gen = _generator()
    with open(gen.OUT, encoding="utf-8") as f:
        current = f.read()
    assert current == gen.render(), (
        "docs/cli.md is stale: a click command changed since it was generated. "
        f"Regenerate it from the repository root with: {gen.COMMAND.split('  #')[0]}"
    )


def test_cli_reference_covers_every_command():
    import click

    from lindivc.cli import cli

    with open(os.path.join(ROOT, "docs", "cli.md"), encoding="utf-8") as f:
        text = f.read()
    ctx = click.Context(cli, info_name="lindivc")
    for name in cli.list_commands(ctx):
        assert f"## `lindivc {name}`" in text, f"docs/cli.md lacks `lindivc {name}`"


def test_relative_links_in_docs_resolve():
    docs = [os.path.join(ROOT, "README.md")] + [
        os.path.join(ROOT, "docs", n) for n in sorted(os.listdir(os.path.join(ROOT, "docs"))) if n.endswith(".md")]
    broken = []
    for path in docs:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
            if "://" in target or target.startswith("mailto:"):
                continue
            if not os.path.exists(os.path.join(os.path.dirname(path), target)):
                broken.append(f"{os.path.relpath(path, ROOT)} -> {target}")
    assert not broken, "broken links: " + ", ".join(broken)
