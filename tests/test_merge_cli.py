"""`lindivc merge` and `lindivc pull` merging a LINDI file that both sides changed, end to end:
clones of a real zone (a local directory, and S3 on a moto server), edits made with pynwb
through lindivc.open, the `lindivc` command, reads back with plain lindi + pynwb, and the
history checked with the real git binary."""
from __future__ import annotations

import json
import os
import subprocess
import warnings

import h5py
import lindi
import numpy as np
import pynwb
import pytest
from click.testing import CliRunner

import lindivc
from lindivc.cli import cli
from lindivc.testdata import make_nwb

N_UNITS = 5
NAME = "s.nwb.lindi.json"
ACG = [[u * 10 + i for i in range(7)] for u in range(N_UNITS)]
QUALITY = [0.9, 0.5, 0.7, 0.1, 0.3]
OTHER_QUALITY = [0.2, 0.2, 0.8, 0.4, 0.6]


@pytest.fixture(scope="module")
def nwb_path(tmp_path_factory):
    return make_nwb(str(tmp_path_factory.mktemp("nwb") / "s.nwb"), n_units=N_UNITS, duration=20, n_channels=4,
                    lfp_seconds=1)


@pytest.fixture(scope="module")
def original(nwb_path):
    """The base file's Units table and LFP, read from the NWB file itself with h5py."""
    with h5py.File(nwb_path, "r") as f:
        return {"spike_times": f["units/spike_times"][:], "spike_times_index": f["units/spike_times_index"][:],
                "colnames": [str(c) for c in f["units"].attrs["colnames"]], "lfp": f["acquisition/lfp/data"][:]}


@pytest.fixture
def lv(monkeypatch):
    """Run `lindivc ARGS` in directory ``cwd``; ``code`` is the exit status expected."""
    runner = CliRunner()

    def run(cwd, *args, code=0):
        monkeypatch.chdir(cwd)
        res = runner.invoke(cli, [str(a) for a in args], catch_exceptions=False)
        assert res.exit_code == code, res.output
        assert "Traceback" not in res.output
        return res

    return run


@pytest.fixture(params=["local", "s3"])
def zone_url(request, tmp_path):
    if request.param == "local":
        return str(tmp_path / "zone")
    return f"s3://{request.getfixturevalue('s3_bucket')}/zones/lab/session"


class Lab:
    """A zone holding the imported NWB file, and clones of it."""

    def __init__(self, tmp, lv, nwb_path: str, url: str) -> None:
        self.tmp, self.lv, self.url = tmp, lv, url
        lv(tmp, "init", tmp / "origin")
        lv(tmp / "origin", "import", nwb_path)
        lv(tmp / "origin", "commit", "-m", "import")
        lv(tmp / "origin", "remote", "add", "origin", url)
        lv(tmp / "origin", "push")

    def clone(self, name: str):
        self.lv(self.tmp, "clone", self.url, self.tmp / name)
        return self.tmp / name

    def commit(self, where, message: str, *edits) -> str:
        """Apply ``edits`` (each gets the file open "r+") to the clone ``where`` and commit."""
        for edit in edits:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with lindivc.open(str(where / NAME), "r+") as f:
                    edit(f)
        self.lv(where, "commit", "-a", "-m", message)
        return self.head(where)

    def head(self, where) -> str:
        return self.git(where, "rev-parse", "HEAD").strip()

    def git(self, where, *args) -> str:
        """The real git binary on the clone's history."""
        return subprocess.run(["git", "--git-dir", str(where / ".lindivc" / "git"), *args], check=True,
                              capture_output=True, text=True).stdout


@pytest.fixture
def lab(tmp_path, lv, nwb_path, zone_url):
    return Lab(tmp_path, lv, nwb_path, zone_url)


@pytest.fixture
def local_lab(tmp_path, lv, nwb_path):
    return Lab(tmp_path, lv, nwb_path, str(tmp_path / "zone"))


# ------------------------------------------------------------------ edits, made with pynwb


def add_column(name: str, data, description: str = "a column"):
    def edit(f):
        with pynwb.NWBHDF5IO(file=f, mode="a") as io:
            nwb = io.read()
            nwb.units.add_column(name=name, description=description, data=data)
            io.write(nwb)
    return edit


def add_series(module: str, name: str, data):
    def edit(f):
        with pynwb.NWBHDF5IO(file=f, mode="a") as io:
            nwb = io.read()
            m = nwb.create_processing_module(module, f"{module} results")
            m.add(pynwb.TimeSeries(name=name, data=data, unit="a.u.", rate=10.0))
            io.write(nwb)
    return edit


def set_attr(path: str, name: str, value):
    def edit(f):
        f[path].attrs[name] = value
    return edit


def delete(path: str):
    def edit(f):
        del f[path]
    return edit


class Read:
    """The working file ``path`` opened by plain lindi and pynwb (what anyone else would use)."""

    def __init__(self, path) -> None:
        self.io = pynwb.NWBHDF5IO(file=lindi.LindiH5pyFile.from_lindi_file(str(path)), mode="r")

    def __enter__(self):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return self.io.read()

    def __exit__(self, *a) -> None:
        self.io.close()


def assert_original_units(nwb, original) -> None:
    np.testing.assert_array_equal(nwb.units.spike_times.data[:], original["spike_times"])
    np.testing.assert_array_equal(nwb.units.spike_times_index.data[:], original["spike_times_index"])
    assert list(nwb.units.id[:]) == list(range(N_UNITS))
    np.testing.assert_array_equal(nwb.acquisition["lfp"].data[:], original["lfp"])


def _bytes(path) -> bytes:
    with open(path, "rb") as f:
        return f.read()


# ------------------------------------------------------------------ two new columns


def test_two_clones_add_different_units_columns_and_pull_merges_both(lab, lv, original):
    x, y = lab.clone("x"), lab.clone("y")
    x_head = lab.commit(x, "autocorrelograms", add_column("acg", ACG, "autocorrelogram"))
    lv(x, "push")
    y_head = lab.commit(y, "quality", add_column("quality", QUALITY, "isolation quality"))
    res = lv(y, "push", code=1)
    assert "pull" in res.output

    res = lv(y, "pull")
    assert f"(merge; merged in LINDI terms: {NAME})" in res.output
    merge = lab.head(y)
    assert lab.git(y, "rev-list", "--parents", "-n", "1", "HEAD").split() == [merge, y_head, x_head]
    with Read(y / NAME) as nwb:
        assert list(nwb.units.colnames) == original["colnames"] + ["quality", "acg"]
        np.testing.assert_array_equal(nwb.units["acg"].data[:], ACG)
        np.testing.assert_allclose(nwb.units["quality"].data[:], QUALITY)
        assert nwb.units["acg"].description == "autocorrelogram"
        assert_original_units(nwb, original)
    assert "nothing to commit" in lv(y, "status").output

    # the history is git's: `git log --graph` draws the merge, `lindivc log` names both parents
    graph = lab.git(y, "log", "--graph", "--format=%h %s")
    assert graph.splitlines()[0].startswith("*   ") and "Merge origin/main" in graph.splitlines()[0]
    assert graph.splitlines()[1].startswith("|\\")
    assert "autocorrelograms" in graph and "quality" in graph and "import" in graph
    subprocess.run(["git", "--git-dir", str(y / ".lindivc" / "git"), "fsck", "--strict"], check=True,
                   capture_output=True)
    assert f"Merge: {y_head[:10]} {x_head[:10]}" in lv(y, "log", "-n", "1").output
    assert json.loads(lv(y, "log", "-n", "1", "--json").output)[0]["parents"] == [y_head, x_head]

    # `diff` between the two sides, and what the merge brought each side, in the file's terms
    out = lv(y, "diff", "HEAD^1", "HEAD^2").output
    assert "+ array   /units/acg  <i8 [5x7], 1 chunk(s)" in out and "- array   /units/quality" in out
    assert "~ attrs   /units: ~colnames" in out
    out = lv(y, "diff", "HEAD^2", "HEAD").output
    assert "+ array   /units/quality  <f8 [5], 1 chunk(s)" in out and "/units/acg" not in out

    # published, pulled back by the other side (a fast-forward), and read by a new clone
    lv(y, "push")
    assert "(fast-forward)" in lv(x, "pull").output
    assert lab.head(x) == merge
    for where in (x, lab.clone("z")):
        with Read(where / NAME) as nwb:
            np.testing.assert_array_equal(nwb.units["acg"].data[:], ACG)
            np.testing.assert_allclose(nwb.units["quality"].data[:], QUALITY)
            assert_original_units(nwb, original)


def test_new_processing_datasets_and_an_attribute_edit_merge_cleanly(local_lab, lv, original):
    lab = local_lab
    x, y = lab.clone("x"), lab.clone("y")
    lab.commit(x, "speed", add_series("behavior", "speed", np.arange(20.0)))
    lv(x, "push")
    mine = lab.commit(y, "dff and lfp description", add_series("ophys", "dff", np.linspace(0, 1, 30)),
                      set_attr("acquisition/lfp", "description", "LFP, re-referenced"))
    lv(y, "pull")
    with Read(y / NAME) as nwb:
        assert set(nwb.processing) == {"behavior", "ophys"}
        np.testing.assert_array_equal(nwb.processing["behavior"]["speed"].data[:], np.arange(20.0))
        np.testing.assert_allclose(nwb.processing["ophys"]["dff"].data[:], np.linspace(0, 1, 30))
        assert nwb.acquisition["lfp"].description == "LFP, re-referenced"
        assert_original_units(nwb, original)
    # `lindivc merge` the other way round (the other side's commit into a branch at theirs):
    # the same file, byte for byte
    lv(y, "checkout", "-b", "other", "origin/main")
    assert "merged in LINDI terms" in lv(y, "merge", mine[:12]).output
    assert lab.git(y, "rev-parse", f"other:{NAME}") == lab.git(y, "rev-parse", f"main:{NAME}")
    with Read(y / NAME) as nwb:
        assert set(nwb.processing) == {"behavior", "ophys"}


# ------------------------------------------------------------------ conflicts


def _conflicted(lab, lv, where):
    """Clone ``where`` (made before the zone got its ``quality`` column) adds its own and merges
    the zone's: stopped at the conflicts."""
    lab.commit(where, "my quality", add_column("quality", QUALITY))
    lv(where, "fetch")
    head, data = lab.head(where), _bytes(where / NAME)
    res = lv(where, "merge", "origin/main", code=1)
    return where, head, data, res


def test_same_column_with_different_data_conflicts_and_either_side_or_abort_settles_it(local_lab, lv):
    lab = local_lab
    x, y, z, w = (lab.clone(n) for n in "xyzw")
    theirs = lab.commit(x, "their quality", add_column("quality", OTHER_QUALITY))
    lv(x, "push")

    y, head, data, res = _conflicted(lab, lv, y)
    lines = res.output.splitlines()
    assert lines[0].startswith("Error: merging origin/main into main stopped at 2 conflict(s)")
    assert f"  {NAME}: both added /units/quality: chunk 0: inline" in res.output
    assert "both added attribute 'object_id' of /units/quality" in res.output
    assert "lindivc merge --ours /units/quality" in res.output and "lindivc merge --abort" in res.output
    # nothing written: the working file's bytes, the branch, the index
    assert _bytes(y / NAME) == data and lab.head(y) == head
    assert os.path.exists(y / ".lindivc" / "merge.json")
    out = lv(y, "status").output
    assert "Merging origin/main: 2 conflict(s) left" in out and f"{NAME}: both added /units/quality" in out
    st = json.loads(lv(y, "status", "--json").output)
    assert st["merge"]["theirs"] == theirs and st["merge"]["ours"] == head
    assert {(c["file"], c["path"], c["kind"]) for c in st["merge"]["conflicts"]} == {
        (NAME, "/units/quality", "data"), (NAME, "/units/quality", "attribute")}
    assert [f["path"] for f in st["files"] if f["staged"] or f["unstaged"]] == []

    # while it is in progress: no commit, branch switch, second merge or pull, nor an early continue
    for args in (("commit", "-a", "-m", "x"), ("checkout", "main"), ("merge", "origin/main"), ("pull",)):
        assert "merge of origin/main is in progress" in lv(y, *args, code=1).output
    out = lv(y, "merge", "--continue", code=1).output
    assert "2 conflict(s) to resolve" in out and len(out.strip().splitlines()) == 1
    assert _bytes(y / NAME) == data and lab.head(y) == head

    # --ours: the column as this side wrote it, both parents recorded
    out = lv(y, "merge", "--ours", "units/quality").output
    assert f"took ours for {NAME}:/units/quality (2 conflict(s) settled)" in out and "--continue" in out
    assert _bytes(y / NAME) == data  # still nothing written before --continue
    assert "all conflicts resolved" in lv(y, "status").output
    out = lv(y, "merge", "--continue").output
    assert "(merge of origin/main; merged in LINDI terms" in out
    assert lab.git(y, "rev-list", "--parents", "-n", "1", "HEAD").split()[1:] == [head, theirs]
    assert not os.path.exists(y / ".lindivc" / "merge.json")
    with Read(y / NAME) as nwb:
        np.testing.assert_allclose(nwb.units["quality"].data[:], QUALITY)
    assert "nothing to commit" in lv(y, "status").output

    # --theirs (a group settles all under it), and --continue in the same command
    z, head, _, _ = _conflicted(lab, lv, z)
    lv(z, "merge", "--theirs", "/units", "--continue")
    with Read(z / NAME) as nwb:
        np.testing.assert_allclose(nwb.units["quality"].data[:], OTHER_QUALITY)
        assert list(nwb.units.colnames).count("quality") == 1

    # --abort: everything as before the merge, and the merge can start again
    w, head, data, _ = _conflicted(lab, lv, w)
    lv(w, "merge", "--ours", "/units/quality")
    out = lv(w, "merge", "--abort").output
    assert out.startswith("merge of origin/main aborted; main is at")
    assert _bytes(w / NAME) == data and lab.head(w) == head
    assert not os.path.exists(w / ".lindivc" / "merge.json")
    assert "nothing to commit" in lv(w, "status").output and "Merging" not in lv(w, "status").output
    assert json.loads(lv(w, "status", "--json").output)["merge"] is None
    lv(w, "merge", "origin/main", code=1)


def test_group_deleted_on_one_side_and_changed_on_the_other_loses_nothing(local_lab, lv, original):
    lab = local_lab
    x, y = lab.clone("x"), lab.clone("y")
    theirs = lab.commit(x, "lfp description", set_attr("acquisition/lfp", "description", "LFP, notch filtered"))
    lv(x, "push")
    ours = lab.commit(y, "drop lfp", delete("acquisition/lfp"))
    data = _bytes(y / NAME)
    res = lv(y, "pull", code=1)
    assert f"{NAME}: ours deleted /acquisition/lfp; theirs changed /acquisition/lfp/.zattrs" in res.output
    assert _bytes(y / NAME) == data and lab.head(y) == ours
    # both versions are still there to take
    lv(y, "merge", "--theirs", "/acquisition/lfp", "--continue")
    with Read(y / NAME) as nwb:
        assert nwb.acquisition["lfp"].description == "LFP, notch filtered"
        assert_original_units(nwb, original)
    assert lab.git(y, "rev-list", "--parents", "-n", "1", "HEAD").split()[1:] == [ours, theirs]


def test_merge_refuses_uncommitted_changes_to_the_files_it_writes(local_lab, lv):
    lab = local_lab
    x, y = lab.clone("x"), lab.clone("y")
    lab.commit(x, "acg", add_column("acg", ACG))
    lv(x, "push")
    lab.commit(y, "quality", add_column("quality", QUALITY))
    with lindivc.open(str(y / NAME), "r+") as f:
        f.attrs["note"] = "not committed"
    data, head = _bytes(y / NAME), lab.head(y)
    res = lv(y, "pull", code=1)
    assert f"merge would overwrite uncommitted changes in {NAME}" in res.output
    assert len(res.output.strip().splitlines()) == 1
    assert _bytes(y / NAME) == data and lab.head(y) == head
    assert not os.path.exists(y / ".lindivc" / "merge.json")


def test_merge_user_mistakes_are_one_line_errors(local_lab, lv):
    lab = local_lab
    y, w = lab.clone("y"), lab.clone("w")

    def one_line(res, *words):
        lines = [ln for ln in res.output.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("Error: "), res.output
        for w in words:
            assert w in lines[0], lines[0]

    one_line(lv(y, "merge", "nope", code=1), "unknown revision: nope")
    for args in (("--ours", "/units/quality"), ("--theirs", "/units"), ("--continue",), ("--abort",)):
        one_line(lv(y, "merge", *args, code=1), "no merge in progress")
    assert "already up to date" in lv(y, "merge", "origin/main").output
    assert lv(y, "merge", code=2).exit_code == 2  # nothing named: a usage error
    lv(y, "merge", "origin/main", "--abort", code=2)

    x = lab.clone("x")
    lab.commit(x, "their quality", add_column("quality", OTHER_QUALITY))
    lv(x, "push")
    w, _, _, _ = _conflicted(lab, lv, w)
    one_line(lv(w, "merge", "--ours", "/acquisition/lfp", code=1), "no conflict at /acquisition/lfp",
             "conflicts are at /units/quality")
    one_line(lv(w, "merge", "--ours", "other.lindi.json:/units", code=1), "no conflict at")
    one_line(lv(w, "merge", "--theirs", "/units", "--ours", "/nowhere", code=1), "no conflict at /nowhere")


# ------------------------------------------------------------------ several files, through the library


def _write(repo, name: str, attrs: dict, extra: dict | None = None) -> None:
    refs = {".zgroup": {"zarr_format": 2}, ".zattrs": {}, "a/.zgroup": {"zarr_format": 2}, "a/.zattrs": attrs,
            **(extra or {})}
    with open(repo.abspath(name), "w") as f:
        json.dump({"refs": refs, "version": 1}, f)


@pytest.fixture
def branches(tmp_path):
    """A repository with files f1, f2, f3 committed on main, and a branch ``b`` from there."""
    from lindivc.repo import Repository

    repo = Repository.init(str(tmp_path / "r"))
    for n in ("f1", "f2", "f3"):
        _write(repo, f"{n}.lindi.json", {"who": "base", "n": n})
    repo.add([repo.abspath(f"{n}.lindi.json") for n in ("f1", "f2", "f3")])
    repo.commit("base")
    repo.create_branch("b")
    yield repo
    repo.close()


def _attrs(repo, name: str) -> dict:
    with open(repo.abspath(name)) as f:
        return json.load(f)["refs"]["a/.zattrs"]


def _on(repo, branch: str, edits: dict) -> str:
    repo.checkout(branch)
    for name, attrs in edits.items():
        if attrs is None:
            repo.remove([repo.abspath(name)])
        else:
            _write(repo, name, attrs)
    return repo.commit(f"edit on {branch}", all=True)


def test_conflicts_in_several_files_are_named_file_colon_path(branches):
    from lindivc.errors import LindivcError, NoMergeInProgress
    from lindivc.merge import continue_merge, merge, merge_in_progress, resolve

    repo = branches
    theirs = _on(repo, "b", {"f1.lindi.json": {"who": "b", "n": "f1"}, "f2.lindi.json": {"who": "b", "n": "f2"}})
    ours = _on(repo, "main", {"f1.lindi.json": {"who": "main", "n": "f1"}, "f2.lindi.json": {"who": "main", "n": "f2"}})
    out = merge(repo, "b")
    assert out.kind == "conflicts" and out.new is None
    assert [(c.spec, c.description) for c in out.conflicts] == [
        ("f1.lindi.json:/a", "f1.lindi.json: both changed attribute 'who' of /a: \"main\" vs \"b\""),
        ("f2.lindi.json:/a", "f2.lindi.json: both changed attribute 'who' of /a: \"main\" vs \"b\"")]
    with pytest.raises(LindivcError, match="name one as FILE:/a"):
        resolve(repo, "/a", "ours")
    r = resolve(repo, "f1.lindi.json:/a", "ours")
    assert (r.file, r.path, r.settled) == ("f1.lindi.json", "/a", 1)
    assert [c.spec for c in r.left] == ["/a"]  # one file left: its paths alone are enough again
    assert [c.spec for c in resolve(repo, "f2.lindi.json", "theirs").left] == []
    done = continue_merge(repo)
    assert done.kind == "merge" and list(repo.history.commit(done.new).parents) == [ours, theirs]
    assert _attrs(repo, "f1.lindi.json")["who"] == "main" and _attrs(repo, "f2.lindi.json")["who"] == "b"
    assert merge_in_progress(repo) is None and repo.status().clean
    with pytest.raises(NoMergeInProgress):
        continue_merge(repo)


def test_file_deleted_on_one_side_and_changed_on_the_other_is_a_whole_file_conflict(branches):
    from lindivc.errors import NoConflictAt
    from lindivc.merge import continue_merge, merge, resolve

    repo = branches
    _on(repo, "b", {"f2.lindi.json": {"who": "b", "n": "f2"}})
    _on(repo, "main", {"f2.lindi.json": None})
    out = merge(repo, "b")
    assert [(c.spec, c.kind, c.description) for c in out.conflicts] == [
        ("f2.lindi.json", "file", "f2.lindi.json: ours deleted the file; theirs changed it")]
    assert not os.path.exists(repo.abspath("f2.lindi.json"))
    with pytest.raises(NoConflictAt):
        resolve(repo, "f2.lindi.json:/a", "theirs")
    resolve(repo, "f2.lindi.json", "theirs")
    continue_merge(repo)
    assert _attrs(repo, "f2.lindi.json")["who"] == "b" and "f2.lindi.json" in repo.tracked()


def test_uncommitted_changes_to_other_files_survive_a_merge(branches):
    from lindivc.merge import merge

    repo = branches
    _on(repo, "b", {"f1.lindi.json": {"who": "b", "n": "f1"}, "f2.lindi.json": {"who": "base", "n": "f2 from b"}})
    _on(repo, "main", {"f1.lindi.json": {"who": "base", "n": "f1 on main"}})
    _write(repo, "f3.lindi.json", {"who": "local", "n": "f3"})  # not committed, not touched by the merge
    out = merge(repo, "b")
    assert out.kind == "merge" and out.merged_files == ["f1.lindi.json"]
    assert _attrs(repo, "f1.lindi.json") == {"who": "b", "n": "f1 on main"}
    assert _attrs(repo, "f2.lindi.json") == {"who": "base", "n": "f2 from b"}
    assert _attrs(repo, "f3.lindi.json") == {"who": "local", "n": "f3"}
    assert [(f.path, f.unstaged) for f in repo.status().files if f.unstaged or f.staged] == [("f3.lindi.json", "modified")]


def test_an_interrupted_continue_can_be_finished_or_undone(branches, monkeypatch):
    from lindivc.history import History
    from lindivc.merge import abort_merge, continue_merge, merge, merge_in_progress, resolve

    repo = branches
    theirs = _on(repo, "b", {"f1.lindi.json": {"who": "b", "n": "f1"}})
    ours = _on(repo, "main", {"f1.lindi.json": {"who": "main", "n": "f1"}})

    def crash(*a, **k):
        raise KeyboardInterrupt

    for finish in (continue_merge, abort_merge):
        merge(repo, "b")
        resolve(repo, "/a", "theirs")
        with monkeypatch.context() as m:
            m.setattr(History, "update_head", crash)
            with pytest.raises(KeyboardInterrupt):
                continue_merge(repo)
        st = merge_in_progress(repo)
        assert st.commit is not None and st.applying == ["f1.lindi.json"]
        assert _attrs(repo, "f1.lindi.json")["who"] == "b" and repo.history.head() == ours  # half done
        finish(repo)
        assert merge_in_progress(repo) is None
        if finish is abort_merge:
            assert _attrs(repo, "f1.lindi.json")["who"] == "main" and repo.history.head() == ours
        else:
            assert list(repo.history.commit("HEAD").parents) == [ours, theirs] and _attrs(repo, "f1.lindi.json")["who"] == "b"
            repo.history.set_ref("refs/heads/main", ours, repo.history.head(), None)  # undo, for the next round
            repo.checkout("main", force=True)
        assert repo.status().clean
