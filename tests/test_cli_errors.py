"""Repository commands that must fail, and say why in one line (issue 14): log of something that
is neither a revision nor a path, commit with nothing to commit, add of a directory; and git's
REV1..REV2 for diff."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from lindivc.cli import cli


@pytest.fixture
def run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def invoke(*args, ok=True):
        res = runner.invoke(cli, list(args), catch_exceptions=False)
        if ok:
            assert res.exit_code == 0, res.output
        return res

    invoke("init")
    return invoke


def _error_line(res) -> str:
    assert res.exit_code == 1, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "Traceback" not in res.output, res.output
    return lines[0]


def _lindi(tmp_path, name, attrs):
    (tmp_path / name).write_text(json.dumps({"refs": {".zgroup": {"zarr_format": 2}, ".zattrs": attrs}}))


def test_log_of_neither_a_revision_nor_a_path_is_an_error(run, tmp_path):
    assert _error_line(run("log", "no-such-rev", ok=False)) == \
        "Error: unknown revision or path not in the working tree: no-such-rev"  # no commits yet
    _lindi(tmp_path, "a.lindi.json", {"v": 1})
    run("add", "a.lindi.json")
    run("commit", "-m", "one")
    _lindi(tmp_path, "a.lindi.json", {"v": 2})
    run("commit", "-a", "-m", "two")
    assert _error_line(run("log", "no-such-rev", ok=False)) == \
        "Error: unknown revision or path not in the working tree: no-such-rev"
    assert _error_line(run("log", "../outside", ok=False)) == \
        "Error: unknown revision or path not in the working tree: ../outside"
    # a revision, a tracked path, and a file that is only in the working tree are all fine
    assert [e["message"].strip() for e in json.loads(run("log", "HEAD~1", "--json").output)] == ["one"]
    assert [e["message"].strip() for e in json.loads(run("log", "main", "--json").output)] == ["two", "one"]
    assert [e["message"].strip() for e in json.loads(run("log", "a.lindi.json", "--json").output)] == ["two", "one"]
    _lindi(tmp_path, "new.lindi.json", {})
    assert json.loads(run("log", "new.lindi.json", "--json").output) == []
    assert "give one" in _error_line(run("log", "HEAD~1", "--rev", "main", ok=False))


def test_commit_before_anything_is_tracked_says_so(run, tmp_path):
    assert _error_line(run("commit", "-m", "x", ok=False)) == \
        "Error: nothing to commit (no files tracked yet); bring a file in with " \
        "`lindivc import FILE_OR_URL` or `lindivc add PATH`"
    _lindi(tmp_path, "a.lindi.json", {})  # untracked: still nothing to commit
    assert "no files tracked yet" in _error_line(run("commit", "-a", "-m", "x", ok=False))
    assert json.loads(run("log", "--json").output) == []
    run("add", "a.lindi.json")
    run("commit", "-m", "one")
    assert _error_line(run("commit", "-m", "again", ok=False)) == \
        "Error: nothing to commit (working files match HEAD); change a file or use `lindivc add`"


def test_add_of_a_directory_says_it_is_one(run, tmp_path):
    _lindi(tmp_path, "a.lindi.json", {})
    (tmp_path / "sub").mkdir()
    for d in (".", "sub", str(tmp_path)):
        assert _error_line(run("add", d, ok=False)) == f"Error: {d} is a directory; name the LINDI files in it"
    assert json.loads(run("status", "--json").output)["files"] == []  # nothing was staged


def test_diff_takes_git_range_of_two_revisions(run, tmp_path):
    _lindi(tmp_path, "a.lindi.json", {"v": 1})
    run("add", "a.lindi.json")
    run("commit", "-m", "one")
    _lindi(tmp_path, "a.lindi.json", {"v": 2})
    run("commit", "-a", "-m", "two")
    two_revs = run("diff", "HEAD~1", "HEAD").output
    assert "a.lindi.json" in two_revs and "v" in two_revs
    assert run("diff", "HEAD~1..HEAD").output == two_revs
    assert run("diff", "HEAD~1..").output == two_revs  # a side left out is HEAD
    assert run("diff", "HEAD~1..HEAD", "--", "a.lindi.json").output == two_revs
    res = run("diff", "HEAD~1...HEAD", ok=False)
    assert res.exit_code == 2 and "not supported" in res.output
    assert _error_line(run("diff", "nope..HEAD", ok=False)) == "Error: unknown revision: nope"
