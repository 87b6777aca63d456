"""What the CLI tells a newcomer is true: login from a pipe and logout, one-line errors for
mistyped config values and for a first commit with nothing in it, usage lines that show which
arguments are optional, git's `remote -v`, --json listings and --json reports of clone, fetch
and pull, and shell completion of remote names, branches, tags, revisions and tracked paths."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from click.shell_completion import ShellComplete
from click.testing import CliRunner

from lindivc.cli import cli
from lindivc.testdata import make_nwb

LINDIVC = os.path.join(os.path.dirname(sys.executable), "lindivc")


@pytest.fixture(scope="module")
def nwb_path(tmp_path_factory):
    return make_nwb(str(tmp_path_factory.mktemp("nwb") / "s.nwb"), n_units=2, duration=5, n_channels=2, lfp_seconds=1)


@pytest.fixture
def run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LINDIVC_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    runner = CliRunner()

    def invoke(*args, ok=True, input=None):
        res = runner.invoke(cli, list(args), catch_exceptions=False, input=input, prog_name="lindivc")
        if ok:
            assert res.exit_code == 0, res.output
        return res

    return invoke


def _one_line_error(res, *words):
    assert res.exit_code == 1, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), res.output
    for w in words:
        assert w in lines[0], lines[0]


# ------------------------------------------------------------------ login, logout


def test_login_reads_a_piped_token_without_getpass_warning(tmp_path):
    env = {**os.environ, "LINDIVC_CONFIG_DIR": str(tmp_path / "cfg"), "PYTHONWARNINGS": "default"}
    env.pop("GITHUB_TOKEN", None)
    res = subprocess.run([LINDIVC, "login"], input="tok-piped\n", capture_output=True, text=True, env=env,
                         cwd=tmp_path, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stderr == ""  # no GetPassWarning, no prompt text
    assert res.stdout.strip() == f"token stored in {tmp_path / 'cfg' / 'token'}"
    assert (tmp_path / "cfg" / "token").read_text() == "tok-piped\n"
    assert (tmp_path / "cfg" / "token").stat().st_mode & 0o777 == 0o600


def test_login_with_empty_input_is_an_error_and_stores_nothing(run, tmp_path):
    _one_line_error(run("login", input="\n", ok=False), "not a token")
    assert not (tmp_path / "config" / "token").exists()


def test_logout_removes_the_stored_token(run, tmp_path, monkeypatch):
    run("login", "--token", "tok-a")
    token = tmp_path / "config" / "token"
    assert token.exists()
    res = run("logout")
    assert res.output.strip() == f"removed the token stored in {token}"
    assert not token.exists()
    assert run("logout").output.strip() == f"no token stored in {token}"
    monkeypatch.setenv("GITHUB_TOKEN", "tok-env")
    assert "GITHUB_TOKEN is set in the environment and is still used" in run("logout").output


# ------------------------------------------------------------------ config types


@pytest.mark.parametrize("config, words", [
    ({"core": {"chunk_threshold": "64k"}}, ['core.chunk_threshold is "64k" (a string)', "positive integer"]),
    ({"core": {"pack_size": True}}, ["core.pack_size is true (a boolean)", "positive integer"]),
    ({"core": {"pack_size": -5}}, ["core.pack_size is -5 (a number)", "positive integer"]),
    ({"remotes": {"origin": {"url": 5}}}, ["remotes.origin.url is 5 (a number)", "a zone URL"]),
    ({"remotes": []}, ["remotes is [] (a list)", "an object"]),
    ({"user": {"name": ["a"]}}, ['user.name is ["a"] (a list)', "a string"]),
    ([1, 2], ["(the file) is [1, 2] (a list)", "a JSON object"]),
])
def test_config_value_of_wrong_type_is_a_one_line_error(run, tmp_path, config, words):
    run("init")
    path = tmp_path / ".lindivc" / "config.json"
    text = json.dumps(config)
    path.write_text(text)
    for cmd in (["status"], ["log"], ["remote", "list"]):
        res = run(*cmd, ok=False)
        _one_line_error(res, str(path), *words)
    assert path.read_text() == text  # the file is left for the user to fix


# ------------------------------------------------------------------ first commit


def test_commit_with_no_files_says_nothing_is_tracked_yet(run, tmp_path):
    run("init")
    res = run("commit", "-m", "first", ok=False)
    _one_line_error(res, "nothing to commit", "no files tracked yet", "lindivc import")
    assert "match HEAD" not in res.output
    assert os.listdir(tmp_path / ".lindivc" / "git" / "refs" / "heads") == []


def test_commit_with_nothing_changed_after_a_commit_says_files_match_head(run, nwb_path):
    run("init")
    run("import", nwb_path)
    run("commit", "-m", "first")
    _one_line_error(run("commit", "-m", "again", ok=False), "nothing to commit", "match HEAD")


# ------------------------------------------------------------------ usage lines


@pytest.mark.parametrize("cmd, usage", [
    ("push", "Usage: lindivc push [OPTIONS] [REMOTE] [BRANCH]"),
    ("fetch", "Usage: lindivc fetch [OPTIONS] [REMOTE]"),
    ("pull", "Usage: lindivc pull [OPTIONS] [REMOTE] [BRANCH]"),
    ("clone", "Usage: lindivc clone [OPTIONS] URL [DIRECTORY]"),
    ("init", "Usage: lindivc init [OPTIONS] [DIRECTORY]"),
    ("show", "Usage: lindivc show [OPTIONS] [REV]"),
    ("log", "Usage: lindivc log [OPTIONS] [PATH|REV]"),
])
def test_usage_lines_bracket_optional_arguments(run, cmd, usage):
    assert run(cmd, "--help").output.splitlines()[0] == usage


def test_every_optional_argument_is_bracketed_in_usage(run):
    import click

    def walk(group, prefix):
        for name, c in group.commands.items():
            yield prefix + [name], c
            if isinstance(c, click.Group):
                yield from walk(c, prefix + [name])

    for path, c in walk(cli, []):
        usage = run(*path, "--help").output.splitlines()[0]
        for p in c.params:
            if isinstance(p, click.Argument) and not p.required:
                assert f"[{p.human_readable_name.strip('[]')}]" in usage, (path, usage)


def _every_command():
    import click

    def walk(group, prefix):
        for name, c in sorted(group.commands.items()):
            yield prefix + [name], c
            if isinstance(c, click.Group):
                yield from walk(c, prefix + [name])

    return list(walk(cli, []))


def test_every_help_starts_with_a_whole_sentence_and_names_its_arguments():
    """`lindivc --help` at 80 columns shows each command's whole first sentence; the help names
    every argument in CAPS; no option shows a bare type (TEXT, INTEGER) where a name says more."""
    import click

    for path, c in _every_command():
        short = c.get_short_help_str(limit=64)  # the room `lindivc --help` has at 80 columns
        assert short.endswith(".") and not short.endswith("...") and short[0].isupper(), (path, short)
        ctx = click.Context(c, info_name=path[-1])
        for p in c.params:
            if isinstance(p, click.Argument):
                names = p.human_readable_name.strip("[]").split("|")
                if names == ["ARGS"]:  # REV and PATH split by --, named in the examples
                    names = ["REV", "PATH"]
                assert all(n in c.help for n in names), (path, names)
            elif isinstance(p, click.Option) and not p.is_flag:
                generic = {"TEXT", "INTEGER", "FLOAT", "INTEGER RANGE", "FLOAT RANGE"}
                assert p.make_metavar(ctx) not in generic, (path, p.opts)


# ------------------------------------------------------------------ remote -v, --json


def test_remote_lists_names_and_with_v_urls_as_git_does(run, tmp_path):
    run("init")
    assert run("remote").output == ""
    run("remote", "add", "origin", str(tmp_path / "z1"))
    run("remote", "add", "backup", str(tmp_path / "z2"))
    assert run("remote").output == "backup\norigin\n"
    assert run("remote", "-v").output == (
        f"backup\t{tmp_path / 'z2'} (fetch)\nbackup\t{tmp_path / 'z2'} (push)\n"
        f"origin\t{tmp_path / 'z1'} (fetch)\norigin\t{tmp_path / 'z1'} (push)\n")
    assert run("remote", "list", "-v").output == run("remote", "-v").output
    assert run("remote", "list").output == f"backup\t{tmp_path / 'z2'}\norigin\t{tmp_path / 'z1'}\n"
    assert json.loads(run("remote", "list", "--json").output) == [
        {"name": "backup", "url": str(tmp_path / "z2")}, {"name": "origin", "url": str(tmp_path / "z1")}]


def test_branch_json_lists_branches_with_the_current_one(run, nwb_path):
    run("init")
    assert json.loads(run("branch", "--json").output) == []
    run("import", nwb_path)
    run("commit", "-m", "first")
    run("branch", "analysis")
    head = json.loads(run("log", "--json").output)[0]["commit"]
    assert json.loads(run("branch", "--json").output) == [
        {"name": "analysis", "commit": head, "current": False}, {"name": "main", "commit": head, "current": True}]
    res = run("branch", "--json", "x", ok=False)
    assert res.exit_code == 2 and "--json lists branches" in res.output


def test_clone_fetch_pull_json_report_what_they_did(run, tmp_path, monkeypatch):
    zone = str(tmp_path / "zone")
    os.makedirs(tmp_path / "a")
    monkeypatch.chdir(tmp_path / "a")
    run("init")
    lindi_file = tmp_path / "a" / "x.lindi.json"
    lindi_file.write_text(json.dumps({"refs": {".zgroup": {"zarr_format": 2}}}))
    run("add", "x.lindi.json")
    run("commit", "-m", "first")
    run("remote", "add", "origin", zone)
    run("push")
    first = json.loads(run("log", "--json").output)[0]["commit"]

    monkeypatch.chdir(tmp_path)
    cloned = json.loads(run("clone", zone, "b", "--json").output)
    assert cloned["url"] == zone and cloned["directory"] == str((tmp_path / "b").resolve())
    assert cloned["branch"] == "main" and cloned["files"] == ["x.lindi.json"]
    assert cloned["fetch"]["refs"] == {"main": first} and cloned["fetch"]["history_bytes"] > 0
    assert (tmp_path / "b" / "x.lindi.json").exists()

    monkeypatch.chdir(tmp_path / "a")
    lindi_file.write_text(json.dumps({"refs": {".zgroup": {"zarr_format": 2}, ".zattrs": {"note": "two"}}}))
    run("commit", "-a", "-m", "second")
    run("push")
    second = json.loads(run("log", "--json").output)[0]["commit"]

    monkeypatch.chdir(tmp_path / "b")
    fetched = json.loads(run("fetch", "--json").output)
    assert fetched["remote"] == "origin" and fetched["refs"] == {"main": second}
    assert fetched["history_bytes"] > 0 and fetched["objects_downloaded"] == 0
    assert json.loads(run("log", "--json").output)[0]["commit"] == first  # fetch moved no branch
    pulled = json.loads(run("pull", "--json").output)
    assert {k: pulled[k] for k in ("branch", "old", "new", "kind")} == {
        "branch": "main", "old": first, "new": second, "kind": "fast-forward"}
    assert pulled["fetch"]["refs"] == {"main": second}
    assert json.loads(run("pull", "--json").output)["kind"] == "up-to-date"
    # an error is still one line, not JSON
    _one_line_error(run("fetch", "nope", "--json", ok=False), "nope")


# ------------------------------------------------------------------ shell completion


def _complete(args: list[str], incomplete: str) -> list[str]:
    comp = ShellComplete(cli, {}, "lindivc", "_LINDIVC_COMPLETE")
    return [c.value for c in comp.get_completions(args, incomplete)]


@pytest.fixture
def repo_for_completion(run, nwb_path, tmp_path):
    run("init")
    os.makedirs(tmp_path / "sub")
    run("import", nwb_path)
    run("import", nwb_path, "--as", "sub/b.nwb.lindi.json")
    run("commit", "-m", "first")
    run("branch", "analysis")
    run("branch", "alt")
    run("tag", "v1")
    zones = tmp_path.parent / f"{tmp_path.name}-zones"  # outside the working tree
    run("remote", "add", "origin", str(zones / "a"))
    run("remote", "add", "other", str(zones / "b"))
    run("push")
    with open(tmp_path / "untracked.lindi.json", "w") as f:
        f.write('{"refs": {".zgroup": {"zarr_format": 2}}}')
    return tmp_path


def test_completion_of_remotes_branches_tags_revisions_and_paths(repo_for_completion, monkeypatch):
    assert _complete(["push"], "") == ["origin", "other"]
    assert _complete(["push"], "or") == ["origin"]
    assert _complete(["push", "origin"], "a") == ["alt", "analysis"]
    assert _complete(["fetch"], "o") == ["origin", "other"]
    assert _complete(["pull", "origin"], "m") == ["main"]
    assert _complete(["remote", "remove"], "ot") == ["other"]
    assert _complete(["gc", "--remote"], "") == ["origin", "other"]
    assert _complete(["fsck", "--remote"], "ori") == ["origin"]
    assert _complete(["pin", "--remote"], "") == ["origin", "other"]
    assert _complete(["branch"], "") == ["alt", "analysis", "main"]
    assert _complete(["branch", "new"], "v") == ["v1"]  # START is any revision
    assert _complete(["tag"], "") == ["v1"]
    assert _complete(["checkout"], "") == ["HEAD", "alt", "analysis", "main", "origin/main", "v1"]
    assert _complete(["diff", "HEAD"], "ma") == ["main"]
    assert _complete(["log", "--rev"], "orig") == ["origin/main"]
    assert _complete(["show"], "HEAD:s") == ["HEAD:s.nwb.lindi.json", "HEAD:sub/b.nwb.lindi.json"]
    assert _complete(["checkout", "main", "--"], "") == ["s.nwb.lindi.json", "sub/b.nwb.lindi.json"]
    assert _complete(["diff", "--"], "sub") == ["sub/b.nwb.lindi.json"]
    assert _complete(["rm"], "") == ["s.nwb.lindi.json", "sub/b.nwb.lindi.json"]
    assert _complete(["log"], "s.") == ["s.nwb.lindi.json"]
    assert _complete(["add"], "u") == ["untracked.lindi.json"]
    assert _complete(["status"], "") == ["s.nwb.lindi.json", "sub/b.nwb.lindi.json", "untracked.lindi.json"]
    monkeypatch.chdir(repo_for_completion / "sub")  # paths as typed from where the user is
    assert _complete(["rm"], "") == ["../s.nwb.lindi.json", "b.nwb.lindi.json"]


def test_completion_outside_a_repository_offers_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert _complete(["push"], "") == []
    assert _complete(["checkout"], "") == []
    assert _complete(["rm"], "") == []


def test_completion_through_the_shell_protocol(repo_for_completion):
    """What bash sees: the script `_LINDIVC_COMPLETE=bash_source lindivc` prints, and the
    answers of `_LINDIVC_COMPLETE=bash_complete` for the words typed so far."""
    env = {**os.environ, "_LINDIVC_COMPLETE": "bash_source"}
    script = subprocess.run([LINDIVC], env=env, capture_output=True, text=True, timeout=120, cwd=repo_for_completion)
    assert script.returncode == 0 and "complete -o nosort -F _lindivc_completion lindivc" in script.stdout
    env = {**os.environ, "_LINDIVC_COMPLETE": "bash_complete", "COMP_WORDS": "lindivc push o", "COMP_CWORD": "2"}
    res = subprocess.run([LINDIVC], env=env, capture_output=True, text=True, timeout=120, cwd=repo_for_completion)
    assert res.stdout.split() == ["plain,origin", "plain,other"]
