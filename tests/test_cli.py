"""The command line: help texts, exit codes and one-line errors for user mistakes."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from lindivc.cli import cli
from lindivc.testdata import make_nwb


@pytest.fixture(scope="module")
def nwb_path(tmp_path_factory):
    return make_nwb(str(tmp_path_factory.mktemp("nwb") / "s.nwb"), n_units=4, duration=20, n_channels=4, lfp_seconds=1)


@pytest.fixture
def run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def invoke(*args, ok=True):
        res = runner.invoke(cli, list(args), catch_exceptions=False)
        if ok:
            assert res.exit_code == 0, res.output
        return res

    return invoke


def _one_line_error(res, *words):
    assert res.exit_code == 1, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), res.output
    assert "Traceback" not in res.output
    for w in words:
        assert w in lines[0], lines[0]


def test_every_command_has_help(run):
    names = []

    def walk(group, prefix):
        for name, cmd in group.commands.items():
            names.append(prefix + [name])
            if hasattr(cmd, "commands"):
                walk(cmd, prefix + [name])

    walk(cli, [])
    assert {"init", "import", "status", "commit", "log", "diff", "checkout", "push", "clone"} <= {n[0] for n in names}
    for n in names:
        res = run(*n, "--help")
        assert "Usage:" in res.output and len(res.output.splitlines()) > 3


def test_cli_workflow(run, nwb_path, tmp_path):
    run("init")
    res = run("import", nwb_path)
    assert "s.nwb.lindi.json" in res.output
    run("commit", "-m", "first")
    res = run("log", "--json")
    assert json.loads(res.output)[0]["message"].strip() == "first"
    res = run("status")
    assert "nothing to commit" in res.output
    res = run("show", "HEAD:s.nwb.lindi.json")
    assert '"refs": {' in res.output
    run("branch", "analysis")
    run("tag", "v1")
    res = run("checkout", "analysis")
    assert "analysis" in res.output
    run("remote", "add", "origin", str(tmp_path / "zone"))
    res = run("push")
    assert "published" in res.output
    res = run("push")
    assert "up to date" in res.output
    res = run("remote", "list")
    assert res.output.strip() == f"origin\t{tmp_path / 'zone'}"
    # a second clone fetches and pulls through the CLI too
    run("clone", str(tmp_path / "zone"), str(tmp_path.parent / f"{tmp_path.name}-copy"))
    res = run("fetch")
    assert "origin/" in res.output
    res = run("pull")
    assert "up to date" in res.output
    run("remote", "remove", "origin")
    assert run("remote", "list").output.strip() == ""
    assert not (tmp_path / ".lindivc" / "remotes" / "origin").exists()


def test_user_mistakes_are_one_line_errors(run, nwb_path, tmp_path):
    _one_line_error(run("status", ok=False), "not a lindivc repository")
    run("init")
    _one_line_error(run("init", ok=False), "already inside")
    _one_line_error(run("commit", "-m", "x", ok=False), "nothing to commit")
    _one_line_error(run("checkout", "nope", ok=False), "unknown revision")
    _one_line_error(run("import", str(tmp_path / "missing.lindi.json"), ok=False), "no such file")
    bad = tmp_path / "bad.lindi.json"
    bad.write_text("{not json")
    _one_line_error(run("add", str(bad), ok=False), "not valid JSON")
    _one_line_error(run("add", "/etc/passwd", ok=False), "outside the working tree")
    _one_line_error(run("add", "../x.lindi.json", ok=False), "outside the working tree")
    _one_line_error(run("push", "nowhere", ok=False), "unknown remote")
    _one_line_error(run("remote", "add", "z", "ftp://host/x", ok=False), "unsupported zone URL")
    _one_line_error(run("clone", str(tmp_path / "empty-zone"), str(tmp_path / "c"), ok=False), "no published history")


def test_traceback_free_exit_in_a_real_process(tmp_path):
    env = dict(os.environ)
    p = subprocess.run([sys.executable, "-m", "lindivc.cli", "log"], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert p.returncode == 1
    assert p.stderr.strip().startswith("Error: not a lindivc repository") and "Traceback" not in p.stderr


def test_the_fast_exit_keeps_output_exit_codes_and_exit_handlers(tmp_path):
    """main() ends the process without tearing the interpreter down: everything printed arrives,
    the exit status is the command's, atexit handlers run, and a reader that closes the pipe
    early is no error."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    assert subprocess.run([sys.executable, "-m", "lindivc.cli", "init", "r"], cwd=tmp_path, env=env).returncode == 0
    repo = tmp_path / "r"
    for i in range(30):
        (repo / f"f{i}.lindi.json").write_text(json.dumps({"refs": {".zgroup": {"zarr_format": 2}}}))
    p = subprocess.run([sys.executable, "-m", "lindivc.cli", "status"], cwd=repo, capture_output=True, text=True, env=env)
    assert p.returncode == 0 and all(f"f{i}.lindi.json" in p.stdout for i in range(30)), p.stdout
    marker = tmp_path / "atexit-ran"
    code = ("import atexit, sys; from lindivc.cli import main; "
            f"atexit.register(lambda: open({str(marker)!r}, 'w').close()); sys.argv = ['lindivc', 'nosuchcommand']; main()")
    p = subprocess.run([sys.executable, "-c", code], cwd=repo, capture_output=True, text=True, env=env)
    assert p.returncode == 2 and "No such command" in p.stderr and marker.exists()
    p = subprocess.run(f"{sys.executable} -m lindivc.cli status | head -c 10", shell=True, cwd=repo, capture_output=True,
                       text=True, env=env)
    assert p.returncode == 0 and len(p.stdout) == 10 and "Traceback" not in p.stderr


def test_rm_refuses_uncommitted_changes_in_one_line_and_force_deletes(run, nwb_path, tmp_path):
    run("init")
    run("import", nwb_path, "--as", "a.lindi.json")
    _one_line_error(run("rm", "a.lindi.json", ok=False), "a.lindi.json", "--cached")
    assert (tmp_path / "a.lindi.json").exists()
    run("rm", "-f", "a.lindi.json")
    assert not (tmp_path / "a.lindi.json").exists()


def test_one_broken_tracked_file_does_not_hide_the_others(run, tmp_path):
    run("init")
    for n in ("a", "b"):
        (tmp_path / f"{n}.lindi.json").write_text('{"refs": {".zgroup": {"zarr_format": 2}}}')
    run("add", "a.lindi.json", "b.lindi.json")
    run("commit", "-m", "x")
    (tmp_path / "a.lindi.json").write_text("{bad")
    (tmp_path / "b.lindi.json").write_text('{"refs": {".zgroup": {"zarr_format": 2}, ".zattrs": {"y": 1}}}')
    out = run("status").output
    assert "invalid:   a.lindi.json (not valid JSON" in out and "modified:  b.lindi.json" in out and "+y" in out
    st = json.loads(run("status", "--json").output)
    assert [f["unstaged"] for f in st["files"]] == ["invalid", "modified"]
    res = run("diff", ok=False)
    assert res.exit_code == 1 and "M b.lindi.json" in res.output and "+y" in res.output
    assert "Error: cannot read 1 working file(s), not diffed: a.lindi.json (not valid JSON" in res.output
    _one_line_error(run("commit", "-a", "-m", "y", ok=False), "a.lindi.json", "not valid JSON")


def test_names_outside_the_alphabet_get_the_real_reason(run, nwb_path, tmp_path):
    run("init")
    (tmp_path / "my file.lindi.json").write_text('{"refs": {}}')
    (tmp_path / "Zürich.lindi.json").write_text('{"refs": {}}')
    out = run("status").output
    assert "Untracked" not in out and "cannot be tracked (file names may contain only" in out
    assert "my file.lindi.json" in out and "Zürich.lindi.json" in out
    assert json.loads(run("status", "--json").output)["untrackable"] == ["Zürich.lindi.json", "my file.lindi.json"]
    _one_line_error(run("add", "my file.lindi.json", ok=False), "file names may contain only A-Z a-z 0-9 . _ @ + = , -")
    _one_line_error(run("import", nwb_path, "--as", "a b.lindi.json", ok=False), "file names may contain only")


def test_import_of_unreadable_data_is_a_one_line_error(run, tmp_path):
    run("init")
    data = tmp_path / "data.bin"
    data.write_bytes(b"x" * 100)
    for name, path, size in (("gone", str(tmp_path / "nowhere.bin"), 10), ("short", str(data), 1000)):
        src = tmp_path / f"{name}.lindi.json"
        src.write_text(json.dumps({"refs": {".zgroup": {"zarr_format": 2}, "x/0": [path, 0, size]}}))
        _one_line_error(run("import", str(src), "--as", f"{name}-in.lindi.json", "--ingest", ok=False),
                        "cannot ingest", path)
        assert not (tmp_path / f"{name}-in.lindi.json").exists()
    corrupt = tmp_path / "corrupt.nwb"
    corrupt.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 200)
    _one_line_error(run("import", str(corrupt), ok=False), "corrupt.nwb", "cannot convert the HDF5 file")


@pytest.mark.parametrize("content", [b"[]", b"{not json", b'{"entries": []}', b'{"entries": {"a.lindi.json": 5}}'])
def test_corrupt_index_names_a_command_that_rebuilds_it(run, tmp_path, content):
    run("init")
    (tmp_path / "a.lindi.json").write_text('{"refs": {".zgroup": {"zarr_format": 2}}}')
    run("add", "a.lindi.json")
    run("commit", "-m", "a")
    (tmp_path / "a.lindi.json").write_text('{"refs": {".zgroup": {"zarr_format": 2}, ".zattrs": {"y": 1}}}')
    (tmp_path / ".lindivc" / "index.json").write_bytes(content)
    _one_line_error(run("status", ok=False), "index.json is corrupt", "lindivc reset")
    run("reset")
    out = run("status").output
    assert "modified:  a.lindi.json" in out and "+y" in out  # tracked again; the edit is kept


def test_branch_name_mistakes_are_one_line_errors(run, nwb_path):
    run("init")
    run("import", nwb_path)
    run("commit", "-m", "a")
    run("branch", "feature/x")
    _one_line_error(run("branch", "feature/x/y", ok=False), "a branch feature/x exists; names cannot nest")
    _one_line_error(run("branch", "feature", ok=False), "a branch feature/x exists; names cannot nest")
    _one_line_error(run("branch", "HEAD", ok=False), "invalid branch name", "reserved")
    _one_line_error(run("checkout", "-b", "feature", ok=False), "names cannot nest")


def test_branch_d_keeps_unmerged_work_and_D_deletes_it(run, nwb_path, tmp_path):
    run("init")
    run("import", nwb_path)
    run("commit", "-m", "a")
    run("branch", "merged")
    assert "deleted branch merged (was " in run("branch", "-d", "merged").output  # HEAD has its commits
    run("checkout", "-b", "feature/x")
    (tmp_path / "b.lindi.json").write_text('{"refs": {".zgroup": {"zarr_format": 2}}}')
    run("add", "b.lindi.json")
    run("commit", "-m", "work only on feature/x")
    tip = json.loads(run("log", "--json").output)[0]["commit"]
    run("checkout", "main")
    _one_line_error(run("branch", "-d", "feature/x", ok=False), "not merged", "lindivc branch -D feature/x")
    assert "feature/x" in run("branch").output  # nothing lost
    run("remote", "add", "origin", str(tmp_path / "zone"))
    run("push", "origin", "feature/x")  # a pushed copy (origin/feature/x) keeps the commits
    assert f"(was {tip[:10]})" in run("branch", "-d", "feature/x").output
    run("checkout", "-b", "scratch")
    (tmp_path / "c.lindi.json").write_text('{"refs": {".zgroup": {"zarr_format": 2}}}')
    run("add", "c.lindi.json")
    run("commit", "-m", "scratch")
    run("checkout", "main")
    _one_line_error(run("branch", "-d", "scratch", ok=False), "not merged")
    run("branch", "-D", "scratch")
    assert "scratch" not in run("branch").output
    _one_line_error(run("branch", "-d", "scratch", ok=False), "no branch named 'scratch'")


def test_import_as_is_relative_to_the_current_directory(run, nwb_path, tmp_path, monkeypatch):
    run("init")
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    res = run("import", nwb_path, "--as", "x.lindi.json")
    assert "as sub/x.lindi.json" in res.output and (tmp_path / "sub" / "x.lindi.json").exists()


def test_import_from_a_subdirectory_lands_there(run, nwb_path, tmp_path, monkeypatch):
    run("init")
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    res = run("import", nwb_path)
    assert "sub/s.nwb.lindi.json" in res.output
    assert (tmp_path / "sub" / "s.nwb.lindi.json").exists()
