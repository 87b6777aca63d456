"""The command blocks of README.md and docs/guide.md do what the docs say: each document is run,
offline, in a scratch directory, and the output lines it shows are compared with the real output.

The convention, for whoever edits those two files:

- A fenced ```` ```console ```` block is a shell session. A line starting with ``$ `` is a command
  (a line ending in ``\\`` continues on the next line); the lines after it, up to the next ``$ ``,
  are its output. A command shown with no output lines is run, but its output is not compared.
- A fenced ```` ```python ```` block is run as a script (``python -``) in the shell's current
  directory at that point.
- All blocks of one document run in order in one shell, so ``cd`` carries over, in a scratch
  directory of their own.
- ``<!-- not run: REASON -->`` on the line before a block leaves it out (it needs the network,
  installs software, or runs for minutes); the reason is required.
- Shown output is compared line by line after trailing blanks are dropped. A line ``...`` stands
  for any number of lines; ``...`` inside a line for any text. Runs of 7 to 40 hex digits (commit
  ids) match any hex run of the same length.
- Paths under ``/data/`` stand for the scratch directory: the test runs them under it and shows
  them as ``/data/...`` again. ``s3://`` URLs go to a local S3 server (moto), whose bucket URLs
  are shown as AWS's (``https://BUCKET.s3.amazonaws.com/...``).
- A command must exit 0, unless the output it shows starts with ``Error:`` (then it must fail
  with status 1).

Shell commands anywhere else (indented blocks, other fences) are not allowed in these files:
a command the reader is told to type is either run here or marked as not run, with the reason.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass, field

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = ["README.md", os.path.join("docs", "guide.md")]
MARK = "@@lindivc-docs-test@@"
HEX = re.compile(r"\b[0-9a-f]{7,40}\b")
NOT_RUN = re.compile(r"^<!--\s*not run:\s*(.*?)\s*-->\s*$")
COMMAND_WORDS = ("lindivc ", "python ", "pip ", "git ", "scripts/", "cd ", "source ", ".venv/")


@dataclass
class Command:
    line: int  # in the document, 1-based
    text: str  # as typed, continuation lines joined
    expected: list[str] = field(default_factory=list)


@dataclass
class Block:
    line: int
    lang: str
    body: list[str]
    skip_reason: str | None
    commands: list[Command] = field(default_factory=list)


def parse(path: str) -> list[Block]:
    """The fenced blocks of the document at ``path``, with console blocks split into commands."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        m = re.match(r"^```(\w*)\s*$", lines[i])
        if not m:
            i += 1
            continue
        start, lang = i, m.group(1)
        j = i + 1
        while j < len(lines) and lines[j].rstrip() != "```":
            j += 1
        prev = lines[start - 1] if start else ""
        skip = NOT_RUN.match(prev)
        if skip is None and prev.strip().startswith("<!--") and "not run" in prev:
            raise AssertionError(f"{path}:{start}: write the marker as <!-- not run: REASON -->")
        b = Block(start + 1, lang, lines[start + 1:j], skip.group(1) if skip else None)
        if lang == "console":
            b.commands = _commands(b)
        blocks.append(b)
        i = j + 1
    return blocks


def _commands(b: Block) -> list[Command]:
    cmds: list[Command] = []
    k = 0
    while k < len(b.body):
        ln = b.body[k]
        if ln.startswith("$ "):
            text, first = ln[2:], k
            while text.endswith("\\") and k + 1 < len(b.body):
                k += 1
                text += "\n" + b.body[k]
            cmds.append(Command(b.line + 1 + first, text))
        elif cmds:
            cmds[-1].expected.append(ln)
        elif ln.strip():
            raise AssertionError(f"line {b.line + 1 + k}: console block output before any `$ ` command")
        k += 1
    for c in cmds:
        while c.expected and not c.expected[-1].strip():
            c.expected.pop()
    return cmds


def _indented_commands(path: str) -> list[str]:
    """Indented code blocks that hold shell commands (not allowed: see the module docstring)."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    bad, in_fence = [], False
    for n, ln in enumerate(lines, 1):
        if ln.startswith("```"):
            in_fence = not in_fence
            continue
        prev_blank = n == 1 or not lines[n - 2].strip() or lines[n - 2].startswith("    ")
        body = ln[4:].lstrip("$ ")
        if not in_fence and ln.startswith("    ") and prev_blank and body.startswith(COMMAND_WORDS):
            bad.append(f"{os.path.relpath(path, ROOT)}:{n}: {ln.strip()}")
    return bad


# ------------------------------------------------------------------ running


def _script(blocks: list[Block], scratch: str) -> tuple[str, list[Command]]:
    """One bash script for the runnable blocks, and the commands in the order it runs them."""
    out = ["exec 2>&1", f"cd {scratch}"]
    order: list[Command] = []
    for b in blocks:
        if b.skip_reason is not None:
            continue
        if b.lang == "console":
            for c in b.commands:
                out.append(_to_scratch(c.text, scratch))
                out.append(f'echo "{MARK} $?"')
                order.append(c)
        elif b.lang == "python":
            code = "\n".join(b.body)
            out.append(f"python - <<'{MARK}'\n{code}\n{MARK}")
            out.append(f'echo "{MARK} $?"')
            order.append(Command(b.line, "python - (the block)", []))
    return "\n".join(out) + "\n", order


def _to_scratch(text: str, scratch: str) -> str:
    return re.sub(r"(?<![\w/])/data/", scratch + "/data/", text)


def _normalize_output(text: str, scratch: str, s3_endpoint: str) -> str:
    text = text.replace(scratch + "/data/", "/data/")
    return re.sub(re.escape(s3_endpoint.rstrip("/")) + r"/([a-z0-9.-]+)/", r"https://\1.s3.amazonaws.com/", text)


def _line_pattern(expected: str) -> re.Pattern:
    rx = []
    for k, part in enumerate(expected.rstrip().split("...")):
        if k:
            rx.append(".*")
        pos = 0
        for m in HEX.finditer(part):
            rx += [re.escape(part[pos:m.start()]), f"[0-9a-f]{{{len(m.group(0))}}}"]
            pos = m.end()
        rx.append(re.escape(part[pos:]))
    return re.compile("".join(rx) + r"\Z")


def matches(expected: list[str], actual: list[str]) -> bool:
    """Whether ``actual`` lines are what ``expected`` shows, by the rules of the module docstring."""
    actual = [a.rstrip() for a in actual]

    def go(i: int, j: int) -> bool:
        if i == len(expected):
            return j == len(actual)
        if expected[i].strip() == "...":
            return any(go(i + 1, k) for k in range(j, len(actual) + 1))
        return j < len(actual) and _line_pattern(expected[i]).match(actual[j]) is not None and go(i + 1, j + 1)

    return go(0, 0)


def run_document(path: str, scratch: str, s3_endpoint: str) -> list[str]:
    """Run the document's blocks; return one message per command whose result disagrees."""
    blocks = parse(path)
    script, order = _script(blocks, scratch)
    env = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""),
           "LINDIVC_CONFIG_DIR": os.path.join(scratch, ".config"), "PYTHONWARNINGS": "ignore"}
    env.pop("GITHUB_TOKEN", None)
    os.makedirs(os.path.join(scratch, "data"), exist_ok=True)
    res = subprocess.run(["bash", "--noprofile", "--norc"], input=script, capture_output=True, text=True, env=env,
                         cwd=scratch, timeout=900)
    text = _normalize_output(res.stdout, scratch, s3_endpoint)
    pieces = re.split(re.escape(MARK) + r" (\d+)\n", text)
    outputs = [(pieces[k], int(pieces[k + 1])) for k in range(0, len(pieces) - 1, 2)]
    rel = os.path.relpath(path, ROOT)
    problems = []
    if len(outputs) != len(order):
        return [f"{rel}: the shell stopped after {len(outputs)} of {len(order)} commands:\n{text[-3000:]}"]
    for cmd, (out, rc) in zip(order, outputs):
        lines = out.splitlines()
        shows_error = bool(cmd.expected) and cmd.expected[0].startswith("Error:")
        if rc != (1 if shows_error else 0):
            problems.append(f"{rel}:{cmd.line}: `{cmd.text}` exited {rc}:\n" + "\n".join(lines[-20:]))
        elif cmd.expected and not matches(cmd.expected, lines):
            problems.append(f"{rel}:{cmd.line}: `{cmd.text}` printed\n    " + "\n    ".join(lines)
                            + "\n  but the docs show\n    " + "\n    ".join(cmd.expected))
    return problems


# ------------------------------------------------------------------ tests


@pytest.fixture
def lab_bucket(s3_env):
    """The bucket docs/guide.md publishes to, on the local S3 server."""
    import boto3

    s3 = boto3.client("s3", endpoint_url=s3_env)
    existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    if "my-lab-bucket" in existing:  # left by an earlier run in this session: start empty
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket="my-lab-bucket"):
            for o in page.get("Contents", []):
                s3.delete_object(Bucket="my-lab-bucket", Key=o["Key"])
    else:
        s3.create_bucket(Bucket="my-lab-bucket")
    return s3_env


@pytest.mark.parametrize("doc", DOCS)
def test_document_commands_print_what_the_document_shows(doc, tmp_path, lab_bucket):
    scratch = os.path.realpath(tmp_path)
    problems = run_document(os.path.join(ROOT, doc), scratch, lab_bucket)
    assert not problems, "\n\n".join(problems)


@pytest.mark.parametrize("doc", DOCS)
def test_every_command_block_is_run_or_says_why_not(doc):
    path = os.path.join(ROOT, doc)
    blocks = parse(path)
    assert not _indented_commands(path), ("shell commands in indented blocks (make them ```console blocks): "
                                          + "; ".join(_indented_commands(path)))
    for b in blocks:
        assert b.lang in ("console", "python", "text", "json"), f"{doc}:{b.line}: fence language {b.lang!r}"
        if b.skip_reason is not None:
            assert b.skip_reason, f"{doc}:{b.line}: a not-run block needs a reason"
        if b.lang == "console":
            assert b.commands, f"{doc}:{b.line}: a console block without `$ ` commands"
    assert any(b.skip_reason is None and b.lang == "console" for b in blocks)


def test_output_matching_rules():
    assert matches(["a 0b5ba95c59 b"], ["a c5f11a4a31 b  "])
    assert not matches(["a 0b5ba95c59 b"], ["a c5f11a4a3 b"])  # a different length
    assert matches(["x", "...", "z"], ["x", "1", "2", "z"])
    assert matches(["x", "...", "z"], ["x", "z"])
    assert matches(["published a: https://...acg/f/a"], ["published a: https://h/b/acg/f/a"])
    assert not matches(["x"], ["x", "y"])
    assert not matches(["x (1.0 MiB)"], ["x (1x0 MiB)"])  # "." is not a wildcard
    text = "\n".join(["$ lindivc log --oneline", "0b5ba95c59 two", "$ lindivc diff \\", "    HEAD~1"])
    b = Block(1, "console", text.splitlines(), None)
    cmds = _commands(b)
    assert [c.text for c in cmds] == ["lindivc log --oneline", "lindivc diff \\\n    HEAD~1"]
    assert cmds[0].expected == ["0b5ba95c59 two"] and cmds[1].expected == []
