"""The local repository workflow of issue 2, through the library and the real git binary."""
from __future__ import annotations

import json
import os
import subprocess

import lindi
import numpy as np
import pynwb
import pytest

import lindivc
from lindivc.errors import (
    AlreadyARepository, ChecksumMismatch, InvalidLindiFile, LindivcError, NothingToCommit,
    ObjectMissing, PathOutsideRepository, UnknownRevision,
)
from lindivc.importer import import_file
from lindivc.diff import diff
from lindivc.log import log
from lindivc.repo import Repository
from lindivc.testdata import make_nwb


@pytest.fixture(scope="module")
def nwb_path(tmp_path_factory):
    return make_nwb(str(tmp_path_factory.mktemp("nwb") / "session.nwb"), n_units=8, duration=60, n_channels=8, lfp_seconds=2)


@pytest.fixture
def repo(tmp_path):
    r = Repository.init(str(tmp_path / "work"))
    yield r
    r.close()


def _units_column(path: str, name: str):
    f = lindi.LindiH5pyFile.from_lindi_file(path)
    with pynwb.NWBHDF5IO(file=f, mode="r") as io:
        nwb = io.read()
        return None if name not in nwb.units.colnames else list(nwb.units[name].data[:])


def test_full_workflow_edit_commit_checkout(repo, nwb_path):
    rel = import_file(repo, nwb_path)
    assert rel == "session.nwb.lindi.json"
    c1 = repo.commit("import session")
    path = repo.abspath(rel)

    # add a units column with pynwb (plain io.write) and a ~20 MB chunked array with h5py
    with lindivc.open(path, "r+") as f:
        with pynwb.NWBHDF5IO(file=f, mode="a") as io:
            nwb = io.read()
            nwb.units.add_column(name="quality", description="isolation quality", data=[0.5 + i / 10 for i in range(8)])
            io.write(nwb)
    big = np.random.default_rng(1).standard_normal((2_500_000,)).astype("float64")  # 20 MB
    with lindivc.open(path, "r+") as f:
        f.create_dataset("processing_big", data=big, chunks=(250_000,))
    st = repo.status()
    assert [x.unstaged for x in st.files] == ["modified"]
    d = diff(repo)
    assert len(d) == 1
    added = {a["name"] for a in d[0].arrays_added}
    assert "/units/quality" in added and "/processing_big" in added
    assert d[0].new_objects >= 10 and d[0].new_bytes > 10_000_000
    c2 = repo.commit("add quality column and a big array", all=True)

    # everything reads back through plain lindi and pynwb
    assert _units_column(path, "quality") == pytest.approx([0.5 + i / 10 for i in range(8)])
    f = lindi.LindiH5pyFile.from_lindi_file(path)
    np.testing.assert_array_equal(f["processing_big"][:], big)
    f.close()

    # the committed file is canonical: content refs only, no local paths
    canon = repo.read_at("HEAD", rel)
    assert b'"sha1:' in canon and repo.lvc.encode() not in canon

    # checkout the first commit: the column is gone; back to main: it is there
    repo.checkout(c1)
    assert _units_column(path, "quality") is None
    assert repo.history.head_branch() is None
    repo.checkout("main")
    assert _units_column(path, "quality") is not None
    assert repo.history.head() == c2

    # log in LINDI terms, and the history is a real git repository
    entries = log(repo, stat=True)
    assert [e.commit.sha for e in entries] == [c2, c1]
    assert any(a["name"] == "/units/quality" for a in entries[0].files[0].arrays_added)
    git = ["git", "--git-dir", os.path.join(repo.lvc, "git")]
    out = subprocess.run(git + ["log", "-p", "--format=%H %s"], check=True, capture_output=True, text=True).stdout
    assert c2 in out and c1 in out and "sha1:" in out
    subprocess.run(git + ["fsck", "--strict"], check=True, capture_output=True)


def test_same_edit_twice_gives_same_objects_and_tree(tmp_path, nwb_path):
    trees = []
    objects = []
    for i in range(2):
        r = Repository.init(str(tmp_path / f"r{i}"))
        rel = import_file(r, nwb_path)
        data = np.random.default_rng(7).integers(0, 2**31, 1_000_000, dtype="int32")
        with lindivc.open(r.abspath(rel), "r+") as f:
            f.create_dataset("extra", data=data, chunks=(100_000,))
        r.add([r.abspath(rel)])
        c = r.commit("same edit")
        trees.append(r.history.commit(c).tree)
        objects.append(sorted(r.objects))
        r.close()
    assert trees[0] == trees[1]
    assert objects[0] == objects[1] and len(objects[0]) == 10


def test_unchanged_file_commits_to_same_tree_and_empty_commit_refused(repo, nwb_path):
    rel = import_file(repo, nwb_path)
    repo.commit("first")
    t1 = repo.history.commit("HEAD").tree
    # rewriting the working file (same content, other formatting) changes nothing
    p = repo.abspath(rel)
    with open(p) as f:
        rfs = json.load(f)
    with open(p, "w") as f:
        json.dump(rfs, f, indent=4)
    assert repo.status().clean
    with pytest.raises(NothingToCommit):
        repo.commit("nothing", all=True)
    assert repo.history.commit("HEAD").tree == t1


def test_branches_and_tags(repo, nwb_path):
    rel = import_file(repo, nwb_path)
    c1 = repo.commit("first")
    repo.history.create_tag("v1", "HEAD", "first release", repo.author)
    repo.create_branch("analysis")
    repo.checkout("analysis")
    with lindivc.open(repo.abspath(rel), "r+") as f:
        f.attrs["note"] = "on a branch"
    c2 = repo.commit("note", all=True)
    assert repo.history.resolve("analysis") == c2
    assert repo.history.resolve("main") == c1
    assert repo.history.resolve("v1") == c1
    assert repo.history.resolve("analysis~1") == c1
    repo.checkout("v1")
    f = lindi.LindiH5pyFile.from_lindi_file(repo.abspath(rel))
    assert "note" not in f.attrs
    with pytest.raises(LindivcError):
        repo.create_branch("analysis")


def test_checkout_refuses_to_lose_changes(repo, nwb_path):
    rel = import_file(repo, nwb_path)
    repo.commit("first")
    repo.create_branch("b")
    with lindivc.open(repo.abspath(rel), "r+") as f:
        f.attrs["x"] = 1
    with pytest.raises(LindivcError, match="overwrite changes"):
        repo.checkout("b")
    assert "x" in lindi.LindiH5pyFile.from_lindi_file(repo.abspath(rel)).attrs  # nothing lost


def test_restore_one_path_from_a_revision(repo, nwb_path):
    rel = import_file(repo, nwb_path)
    repo.commit("first")
    with lindivc.open(repo.abspath(rel), "r+") as f:
        f.attrs["x"] = 1
    repo.checkout("HEAD", [repo.abspath(rel)])
    assert repo.status().clean


# ------------------------------------------------------------------ bad input

def test_init_inside_existing_repository(repo):
    with pytest.raises(AlreadyARepository):
        Repository.init(os.path.join(repo.root, "sub"))


def test_malformed_json_is_reported_and_nothing_lost(repo, nwb_path):
    rel = import_file(repo, nwb_path)
    c1 = repo.commit("first")
    p = repo.abspath(rel)
    with open(p, "w") as f:
        f.write('{"refs": {"a": ')
    st = repo.status()
    assert st.files[0].unstaged == "invalid" and "not valid JSON" in st.files[0].error
    with pytest.raises(InvalidLindiFile, match="not valid JSON"):
        repo.commit("broken", all=True)
    assert repo.history.head() == c1
    repo.checkout("HEAD", [p])
    assert repo.status().clean


def test_ref_that_is_not_a_three_element_list(repo):
    p = os.path.join(repo.root, "bad.lindi.json")
    with open(p, "w") as f:
        json.dump({"refs": {".zgroup": {"zarr_format": 2}, "x/0": ["only-url"]}}, f)
    with pytest.raises(InvalidLindiFile, match="expected \\[url, offset, size\\]"):
        repo.add([p])


def test_missing_and_corrupt_objects_detected(repo, nwb_path):
    rel = import_file(repo, nwb_path)
    with lindivc.open(repo.abspath(rel), "r+") as f:
        f.create_dataset("extra", data=np.random.default_rng(3).standard_normal(100_000), chunks=(50_000,))
    repo.commit("data", all=True)
    shas = sorted(repo.objects)
    # corrupt one object: detected on read
    with open(repo.objects.path(shas[0]), "r+b") as fh:
        fh.seek(10)
        b = fh.read(1)
        fh.seek(10)
        fh.write(bytes([b[0] ^ 0xFF]))
    with pytest.raises(ChecksumMismatch):
        repo.read_object(shas[0])
    # missing object: checkout cannot materialize and says which object
    os.unlink(repo.objects.path(shas[1]))
    with pytest.raises(ObjectMissing, match=shas[1]):
        repo.checkout("HEAD", [repo.abspath(rel)])


def test_unknown_revision_and_path_outside(repo, nwb_path, tmp_path):
    import_file(repo, nwb_path)
    repo.commit("first")
    with pytest.raises(UnknownRevision):
        repo.checkout("nope")
    with pytest.raises(UnknownRevision):
        repo.history.resolve("HEAD~5")
    with pytest.raises(PathOutsideRepository):
        repo.add([str(tmp_path / "elsewhere.lindi.json")])
    with pytest.raises(PathOutsideRepository):
        repo.add([os.path.join(repo.root, "..", "x.lindi.json")])


def test_pack_consolidates_objects_and_working_files_stay_readable(repo, nwb_path):
    from lindivc.consolidate import pack_loose

    rel = import_file(repo, nwb_path)
    data = np.random.default_rng(5).standard_normal(600_000)
    with lindivc.open(repo.abspath(rel), "r+") as f:
        f.create_dataset("extra", data=data, chunks=(100_000,))
    c = repo.commit("data", all=True)
    loose_before = sorted(repo.objects)
    n, nbytes = pack_loose(repo)
    assert n == 1 and nbytes > 4_000_000
    assert len(list(repo.objects)) == 1  # only the pack is left
    assert repo.status().clean  # the re-rendered working file has the same canonical form
    f = lindi.LindiH5pyFile.from_lindi_file(repo.abspath(rel))
    np.testing.assert_array_equal(f["extra"][:], data)
    for sha in loose_before:
        assert repo.read_object(sha)  # every chunk still readable, verified, from the pack
    repo.checkout(c, [repo.abspath(rel)])
    assert repo.status().clean


def test_import_over_http_hdf5_and_lindi(repo, nwb_path, tmp_path):
    import shutil

    from lindivc.rangeserver import serve_directory

    served = tmp_path / "served"
    served.mkdir()
    shutil.copy(nwb_path, served / "remote.nwb")
    with serve_directory(str(served)) as srv:
        rel = import_file(repo, f"{srv.url}/remote.nwb")  # HDF5 over HTTP: converted, refs stay URLs
        assert rel == "remote.nwb.lindi.json"
        repo.commit("import over http")
        text = repo.read_at("HEAD", rel).decode()
        assert f"{srv.url}/remote.nwb" in text
        # the converted file, published over HTTP as a LINDI file, imports as it is
        lindi_copy = served / "copy.nwb.lindi.json"
        lindi_copy.write_bytes(open(repo.abspath(rel), "rb").read())
        rel2 = import_file(repo, f"{srv.url}/copy.nwb.lindi.json")
        assert rel2 == "copy.nwb.lindi.json"
        assert repo.canonical_bytes_of(rel2) == repo.canonical_bytes_of(rel)
        f = lindi.LindiH5pyFile.from_lindi_file(repo.abspath(rel2))
        with pynwb.NWBHDF5IO(file=f, mode="r") as io:
            assert len(io.read().units) == 8
        with pytest.raises(LindivcError, match="HTTP 404 for .*/missing.lindi.json"):
            import_file(repo, f"{srv.url}/missing.lindi.json")


# ------------------------------------------------------------------ paths through symlinks

def test_edit_through_symlinked_worktree_commits_content_refs(tmp_path, nwb_path):
    real = tmp_path / "real"
    r = Repository.init(str(real))
    rel = import_file(r, nwb_path)
    r.commit("import")
    link = tmp_path / "link"
    os.symlink(real, link)  # e.g. /home/me -> /gpfs/home/me on a cluster
    with lindivc.open(str(link / rel), "r+") as f:
        f.create_dataset("big", data=np.random.default_rng(0).standard_normal(200_000), chunks=(100_000,))
    for root in (real, link):  # whichever path the repository is opened by
        r2 = Repository(str(root))
        assert r2.objects.sha1_from_path(str(link / ".lindivc/objects/ab/ab/ab" / ("ab" * 20))) == "ab" * 20
        r2.close()
    Repository(str(real)).commit("big", all=True)
    big = [ln for ln in r.read_at("HEAD", rel).decode().splitlines() if ln.startswith('"big/') and '/.z' not in ln]
    assert big and all('"sha1:' in ln for ln in big), big
    r.close()


# ------------------------------------------------------------------ concurrent writers and pack

def test_second_writer_of_a_working_file_is_refused_until_the_first_closes(repo, nwb_path):
    from lindivc.errors import FileLocked

    rel = import_file(repo, nwb_path)
    path = repo.abspath(rel)
    f1 = lindivc.open(path, "r+")
    with pytest.raises(FileLocked, match=rel):
        lindivc.open(path, "r+")  # it would save its snapshot over f1's changes
    lindivc.open(path).close()  # readers are not locked out
    f1.create_dataset("x1", data=np.arange(10))
    f1.close()
    with lindivc.open(path, "r+") as f2:  # sees f1's changes
        assert "x1" in f2
        f2.create_dataset("x2", data=np.arange(10))
    with lindivc.open(path) as f:
        assert {"x1", "x2"} <= set(f.keys())


def test_write_lock_is_released_when_the_writer_process_dies(repo, nwb_path):
    import sys

    rel = import_file(repo, nwb_path)
    path = repo.abspath(rel)
    code = f"import os, lindivc; f = lindivc.open({path!r}, 'r+'); os._exit(0)"
    subprocess.run([sys.executable, "-c", code], check=True)
    lindivc.open(path, "r+").close()


def test_pack_refuses_while_a_working_file_is_open_for_writing(repo, nwb_path):
    from lindivc.errors import FileLocked
    from lindivc.consolidate import pack_loose

    rel = import_file(repo, nwb_path)
    repo.commit("i")
    path = repo.abspath(rel)
    data = np.random.default_rng(0).standard_normal(200_000)
    f = lindivc.open(path, "r+")
    f.create_dataset("big", data=data, chunks=(100_000,))
    f.flush()
    loose = sorted(repo.objects)
    with pytest.raises(FileLocked, match=rel):
        pack_loose(Repository(repo.root), target_size=16 << 20)
    assert sorted(repo.objects) == loose  # nothing packed, nothing deleted
    f.close()
    pack_loose(Repository(repo.root), target_size=16 << 20)
    g = lindi.LindiH5pyFile.from_lindi_file(path)  # a working file stays plain-lindi readable
    np.testing.assert_array_equal(g["big"][:], data)


def test_pack_updates_every_working_file_although_one_names_a_missing_object(repo):
    from lindivc.consolidate import pack_loose

    b = repo.abspath("b.lindi.json")
    with open(b, "w") as f:
        json.dump({"refs": {".zgroup": {"zarr_format": 2}}}, f)
    data = np.random.default_rng(0).standard_normal(300_000)
    with lindivc.open(b, "r+") as f:
        f.create_dataset("big", data=data, chunks=(100_000,))
    repo.add([b])
    repo.commit("b")
    # a scratch file (sorted first) naming an object that is gone, beside one that is here
    a = repo.abspath("a.lindi.json")
    ref = json.load(open(b))["refs"]["big/0"]
    with open(a, "w") as f:
        json.dump({"refs": {".zgroup": {"zarr_format": 2}, "x/0": [repo.objects.path("ab" * 20), 0, 10], "x/1": ref}}, f)
    with pytest.raises(LindivcError, match="a.lindi.json .names missing object abab") as e:
        pack_loose(Repository(repo.root), target_size=16 << 20)
    assert "\n" not in str(e.value)
    g = lindi.LindiH5pyFile.from_lindi_file(b)
    np.testing.assert_array_equal(g["big"][:], data)
    x1 = json.load(open(a))["refs"]["x/1"]  # the readable part of a moved to the pack too
    assert x1[0] != ref[0] and os.path.exists(x1[0])


# ------------------------------------------------------------------ checkout and rm keep user data

def test_checkout_refuses_to_overwrite_an_untracked_working_file(repo, nwb_path):
    import_file(repo, nwb_path, as_path="a.lindi.json")
    repo.commit("a")
    repo.create_branch("other")
    import_file(repo, nwb_path, as_path="b.lindi.json")
    repo.commit("b")
    repo.checkout("other")  # b.lindi.json is not in other: removed
    assert not os.path.exists(repo.abspath("b.lindi.json"))
    mine = {"refs": {".zgroup": {"zarr_format": 2}, ".zattrs": {"mine": "precious"}}}
    with open(repo.abspath("b.lindi.json"), "w") as f:
        json.dump(mine, f)
    with pytest.raises(LindivcError, match="untracked working file.* b.lindi.json"):
        repo.checkout("main")
    assert json.load(open(repo.abspath("b.lindi.json")))["refs"][".zattrs"] == {"mine": "precious"}
    assert repo.history.head_branch() == "other"
    repo.checkout("main", force=True)
    assert repo.history.head_branch() == "main" and repo.status().clean


def test_checkout_of_an_untracked_file_identical_to_the_target_is_allowed(repo, nwb_path):
    import_file(repo, nwb_path, as_path="a.lindi.json")
    repo.commit("a")
    repo.create_branch("other")
    import_file(repo, nwb_path, as_path="b.lindi.json")
    repo.commit("b")
    repo.checkout("other")
    same = repo.abspath("b.lindi.json")  # the user put back the very file main has
    with open(same, "w") as f:
        json.dump(repo.render(repo.read_at("main", "b.lindi.json")), f, indent=2)
    repo.checkout("main")
    assert repo.history.head_branch() == "main" and repo.status().clean


def test_checkout_full_branch_ref_name_switches_branch(repo, nwb_path):
    import_file(repo, nwb_path)
    repo.commit("a")
    repo.checkout("refs/heads/main")
    assert repo.history.head_branch() == "main"


def test_rm_keeps_a_working_file_with_uncommitted_changes_unless_forced(repo, nwb_path):
    rel = import_file(repo, nwb_path)
    path = repo.abspath(rel)
    with pytest.raises(LindivcError, match="staged but not committed"):
        repo.remove([path])
    repo.commit("a")
    with lindivc.open(path, "r+") as f:
        f.attrs["x"] = 1
    with pytest.raises(LindivcError, match=f"{rel} has local modifications; use --cached"):
        repo.remove([path])
    assert os.path.exists(path) and rel in repo.tracked()
    repo.remove([path], keep_file=True)
    assert os.path.exists(path) and rel not in repo.tracked()
    repo.add([path])
    repo.remove([path], force=True)
    assert not os.path.exists(path) and rel not in repo.tracked()


def test_rm_of_a_committed_unchanged_file_deletes_it(repo, nwb_path):
    rel = import_file(repo, nwb_path)
    repo.commit("a")
    repo.remove([repo.abspath(rel)])
    assert not os.path.exists(repo.abspath(rel))


# ------------------------------------------------------------------ metadata strings that hold no object

@pytest.mark.parametrize("value", ["null", "5", "[1,2]", "base64:abc", "not json"])
def test_metadata_string_without_a_json_object_is_kept_as_a_string(repo, value):
    p = repo.abspath("n.lindi.json")
    with open(p, "w") as f:
        json.dump({"refs": {".zgroup": {"zarr_format": 2}, "a/.zattrs": value, "b/.zattrs": '{"k": 1}'}}, f)
    repo.add([p])
    repo.commit("n")
    refs = json.loads(repo.read_at("HEAD", "n.lindi.json"))["refs"]
    assert refs["a/.zattrs"] == value and refs["b/.zattrs"] == {"k": 1}
    repo.checkout("HEAD", force=True)  # the commit reads back
    assert repo.status().clean


# ------------------------------------------------------------------ branch names

def test_branch_names_cannot_nest(repo, nwb_path):
    import_file(repo, nwb_path)
    repo.commit("a")
    repo.create_branch("feature/x")
    with pytest.raises(LindivcError, match="a branch feature/x exists; names cannot nest"):
        repo.create_branch("feature/x/y")
    with pytest.raises(LindivcError, match="a branch feature/x exists; names cannot nest"):
        repo.create_branch("feature")
    repo.create_branch("feature/z")  # siblings are fine
    repo.history.create_tag("v/1", "HEAD", None, repo.author)
    with pytest.raises(LindivcError, match="a tag v/1 exists"):
        repo.history.create_tag("v", "HEAD", None, repo.author)


@pytest.mark.parametrize("name", ["HEAD", "-x", "x.lock", "a/b.lock", "a..b", ".hidden", "a/.b", "x.", "refs/heads/x",
                                  "a@{1}", "a b", "a//b", "a/"])
def test_reserved_and_malformed_branch_names_are_refused(repo, nwb_path, name):
    import_file(repo, nwb_path)
    repo.commit("a")
    with pytest.raises(LindivcError, match="invalid branch name"):
        repo.create_branch(name)
    assert set(repo.history.branches()) == {"main"}


def test_concurrent_adds_from_two_processes_lose_no_entry(repo, nwb_path):
    import subprocess
    import sys

    src = import_file(repo, nwb_path)
    repo.commit("first")
    names = []
    for i in range(24):
        name = f"f{i:02d}.lindi.json"
        with open(repo.abspath(src), "rb") as fh, open(os.path.join(repo.root, name), "wb") as out:
            out.write(fh.read())
        names.append(name)
    script = ("import sys; from lindivc.repo import Repository\n"
              "r = Repository(sys.argv[1])\n"
              "for n in sys.argv[2:]: r.add([r.abspath(n)])\n")
    procs = [subprocess.Popen([sys.executable, "-c", script, repo.root, *names[k::2]]) for k in (0, 1)]
    assert [p.wait() for p in procs] == [0, 0]
    assert set(names) <= set(Repository(repo.root).tracked())


def test_short_and_uppercase_shas_name_unreachable_commits_too(repo, nwb_path):
    rel = import_file(repo, nwb_path)
    c1 = repo.commit("first")
    with lindivc.open(repo.abspath(rel), "r+") as f:
        f.attrs["x"] = 1
    c2 = repo.commit("second", all=True)
    repo.history.set_ref("refs/heads/main", c1, c2, "reset to first", repo.author)  # c2 unreachable
    assert repo.history.resolve(c2[:8]) == c2
    assert repo.history.resolve(c1[:10].upper()) == c1
    with pytest.raises(UnknownRevision):
        repo.history.resolve("0000000")
