"""Three-way merge of one LINDI file (lindivc.filemerge), on real NWB files written by pynwb through
lindi and lindivc.open, committed in a real repository, and on synthetic reference file systems."""
from __future__ import annotations

import random
import warnings
from datetime import datetime, timezone

import lindi
import numpy as np
import orjson
import pynwb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lindivc
from lindivc import filemerge, lindijson, reflines
from lindivc.errors import InvalidLindiFile, NoConflictAt, UnresolvedConflicts
from lindivc.filemerge import Conflict, merge_files
from lindivc.importer import import_file
from lindivc.repo import Repository

N_UNITS = 4
SPIKES = [[0.1, 0.5, 0.9], [0.2, 1.5], [2.0, 2.5, 3.0, 3.5], [4.0]]


# ------------------------------------------------------------------ real NWB files through a repository

def _make_nwb(path: str) -> str:
    nwb = pynwb.NWBFile(session_description="merge test", identifier="lindivc-merge",
                        session_start_time=datetime(2024, 1, 1, tzinfo=timezone.utc))
    for t in SPIKES:
        nwb.add_unit(spike_times=t)
    nwb.add_acquisition(pynwb.TimeSeries(name="lfp", data=np.arange(100, dtype="float32"), unit="uV", rate=10.0,
                                         description="raw lfp"))
    ecephys = nwb.create_processing_module("ecephys", "processed ephys")
    ecephys.add(pynwb.TimeSeries(name="filtered", data=np.ones(50), unit="uV", rate=10.0, description="filtered"))
    with pynwb.NWBHDF5IO(path, "w") as io:
        io.write(nwb)
    return path


class World:
    """A repository holding the base NWB file (commit ``c0``) and versions edited from it."""

    def __init__(self, tmp) -> None:
        self.tmp = tmp
        self.repo = Repository.init(str(tmp / "work"))
        self.rel = import_file(self.repo, _make_nwb(str(tmp / "base.nwb")))
        self.c0 = self.repo.commit("base")
        self.base = self.repo.read_at(self.c0, self.rel)
        self.n = 0

    def side(self, *edits) -> bytes:
        """The canonical bytes of the base file after ``edits`` (each gets the open file)."""
        self.repo.checkout(self.c0, force=True)
        for edit in edits:
            with lindivc.open(self.repo.abspath(self.rel), "r+") as f:
                edit(f)
        c = self.repo.commit("edit", all=True)
        return self.repo.read_at(c, self.rel)

    def read(self, merged: bytes):
        """The merged file written as a working file, opened with plain lindi + pynwb."""
        self.n += 1
        path = str(self.tmp / f"merged{self.n}.lindi.json")
        lindijson.write_lindi_json(path, self.repo.render(merged, path))
        io = pynwb.NWBHDF5IO(file=lindi.LindiH5pyFile.from_lindi_file(path), mode="r")
        return io, io.read()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        w = World(tmp_path_factory.mktemp("merge"))
        yield w
    w.repo.close()


def add_column(name: str, data, description: str = "a column"):
    def edit(f):
        with pynwb.NWBHDF5IO(file=f, mode="a") as io:
            nwb = io.read()
            nwb.units.add_column(name=name, description=description, data=data)
            io.write(nwb)
    return edit


def add_module(name: str, series: str, data):
    def edit(f):
        with pynwb.NWBHDF5IO(file=f, mode="a") as io:
            nwb = io.read()
            m = nwb.create_processing_module(name, f"{name} results")
            m.add(pynwb.TimeSeries(name=series, data=data, unit="a.u.", rate=10.0))
            io.write(nwb)
    return edit


def set_attr(path: str, name: str, value):
    def edit(f):
        f[path].attrs[name] = value
    return edit


ACG = [[float(u * 10 + i) for i in range(6)] for u in range(N_UNITS)]
QUALITY = [0.9, 0.5, 0.7, 0.1]


def test_two_new_units_columns_merge_and_pynwb_reads_both(world):
    ours = world.side(add_column("acg", ACG, "autocorrelogram"))
    theirs = world.side(add_column("quality", QUALITY, "isolation quality"))
    res = merge_files(world.base, ours, theirs, name=world.rel)
    assert res.clean and res.conflicts == () and res.require() == res.merged
    io, nwb = world.read(res.merged)
    with io:
        assert list(nwb.units.colnames) == ["spike_times", "acg", "quality"]
        np.testing.assert_array_equal(nwb.units["acg"].data[:], ACG)
        np.testing.assert_allclose(nwb.units["quality"].data[:], QUALITY)
        assert [list(nwb.units["spike_times"][i]) for i in range(N_UNITS)] == SPIKES
        assert list(nwb.units.id[:]) == list(range(N_UNITS))
        np.testing.assert_array_equal(nwb.acquisition["lfp"].data[:], np.arange(100, dtype="float32"))
    # the other way round: the same file but for the order of the new columns
    swapped = merge_files(world.base, theirs, ours)
    io, nwb = world.read(swapped.merged)
    with io:
        assert list(nwb.units.colnames) == ["spike_times", "quality", "acg"]
        np.testing.assert_allclose(nwb.units["quality"].data[:], QUALITY)
    # the merge is canonical: committing it again writes the same bytes
    assert lindijson.dumps(lindijson.parse(res.merged)) == res.merged


def test_datasets_under_processing_and_an_untouched_attribute_merge_cleanly(world):
    ours = world.side(add_module("behavior", "speed", np.arange(20.0)))
    theirs = world.side(add_module("ophys", "dff", np.linspace(0, 1, 30)),
                        set_attr("acquisition/lfp", "description", "lfp, re-referenced"))
    res = merge_files(world.base, ours, theirs)
    assert res.clean
    io, nwb = world.read(res.merged)
    with io:
        np.testing.assert_array_equal(nwb.processing["behavior"]["speed"].data[:], np.arange(20.0))
        np.testing.assert_allclose(nwb.processing["ophys"]["dff"].data[:], np.linspace(0, 1, 30))
        assert nwb.acquisition["lfp"].description == "lfp, re-referenced"
        assert set(nwb.processing) == {"behavior", "ecephys", "ophys"}
    assert merge_files(world.base, theirs, ours).merged == res.merged


def test_same_column_with_different_data_is_a_conflict_resolved_either_way(world):
    ours = world.side(add_column("quality", QUALITY))
    theirs = world.side(add_column("quality", [0.0, 0.0, 1.0, 1.0]))
    res = merge_files(world.base, ours, theirs, name=world.rel)
    assert res.merged is None and not res.clean
    paths = {c.path for c in res.conflicts}
    assert paths == {"/units/quality"}
    data = [c for c in res.conflicts if c.kind == "data"]
    assert len(data) == 1 and data[0].added
    assert data[0].describe().startswith("both added /units/quality: chunk 0:")
    with pytest.raises(UnresolvedConflicts) as e:
        res.require(world.rel)
    assert "/units/quality" in str(e.value) and "\n" not in str(e.value)

    for side, want in (("ours", QUALITY), ("theirs", [0.0, 0.0, 1.0, 1.0])):
        done = res.resolve("/units/quality", side)
        assert done.clean and done.conflicts == ()
        assert {s for _, s in done.resolved} == {side}
        io, nwb = world.read(done.merged)
        with io:
            assert list(nwb.units.colnames) == ["spike_times", "quality"]
            np.testing.assert_allclose(nwb.units["quality"].data[:], want)
        # a stateless re-run with the stored choice gives the same file
        assert merge_files(world.base, ours, theirs, resolutions=[("units/quality/", side)]).merged == done.merged
    with pytest.raises(NoConflictAt) as e:
        res.resolve("/acquisition", "ours")
    assert "/units/quality" in str(e.value)
    with pytest.raises(ValueError):
        res.resolve("/units", "mine")


def test_group_deleted_on_one_side_and_changed_on_the_other_conflicts(world):
    def delete(f):
        del f["processing/ecephys"]
    ours = world.side(delete)
    theirs = world.side(set_attr("processing/ecephys/filtered", "description", "filtered, 300 Hz"))
    res = merge_files(world.base, ours, theirs)
    assert [(c.kind, c.path) for c in res.conflicts] == [("deleted", "/processing/ecephys")]
    c = res.conflicts[0]
    assert c.ours == "deleted"
    assert c.describe() == "ours deleted /processing/ecephys; theirs changed /processing/ecephys/filtered/.zattrs"
    rev = merge_files(world.base, theirs, ours).conflicts[0]
    assert rev.describe().startswith("theirs deleted /processing/ecephys; ours changed")
    # nothing lost: each side's version is there to take
    io, nwb = world.read(res.resolve("/processing", "ours").merged)
    with io:
        assert "ecephys" not in nwb.processing
    io, nwb = world.read(res.resolve("/", "theirs").merged)
    with io:
        assert nwb.processing["ecephys"]["filtered"].description == "filtered, 300 Hz"


def test_an_attribute_changed_differently_on_both_sides_conflicts(world):
    ours = world.side(set_attr("acquisition/lfp", "description", "mine"))
    theirs = world.side(set_attr("acquisition/lfp", "description", "yours"),
                        set_attr("acquisition/lfp", "comments", "checked"))
    res = merge_files(world.base, ours, theirs)
    assert [c.describe() for c in res.conflicts] == [
        "both changed attribute 'description' of /acquisition/lfp: \"mine\" vs \"yours\""]
    io, nwb = world.read(res.resolve("/acquisition/lfp", "theirs").merged)
    with io:
        assert nwb.acquisition["lfp"].description == "yours"
        assert nwb.acquisition["lfp"].comments == "checked"  # theirs' other attribute merged cleanly
    io, nwb = world.read(res.resolve("/acquisition/lfp", "ours").merged)
    with io:
        assert nwb.acquisition["lfp"].description == "mine"
        assert nwb.acquisition["lfp"].comments == "checked"


# ------------------------------------------------------------------ synthetic files: the rules one by one

def _zarray(shape=(4,), chunks=(4,), dtype="<f8") -> dict:
    return {"chunks": list(chunks), "compressor": None, "dtype": dtype, "fill_value": 0.0, "filters": None,
            "order": "C", "shape": list(shape), "zarr_format": 2}


def _file(refs: dict, **top) -> bytes:
    return lindijson.dumps({"refs": refs, "version": 1, **top})


def _base_refs() -> dict:
    return {
        ".zgroup": {"zarr_format": 2}, ".zattrs": {"nwb_version": "2.7.0"},
        "units/.zgroup": {"zarr_format": 2},
        "units/.zattrs": {"colnames": ["spike_times", "a", "b"], "description": "units", "neurodata_type": "Units"},
        "units/a/.zarray": _zarray(), "units/a/.zattrs": {"description": "a"}, "units/a/0": "base64:AAAA",
        "units/b/.zarray": _zarray(), "units/b/.zattrs": {"description": "b"},
        "units/b/0": ["sha1:" + "1" * 40, 0, 32], "units/id/.zarray": _zarray(), "units/id/0": "base64:AAAA",
        "units/spike_times/.zarray": _zarray(), "units/spike_times/0": ["https://x.org/f.nwb", 100, 32],
    }


def _edit(refs: dict, changes: dict) -> bytes:
    """``refs`` with ``changes`` (key -> value, None: removed) as a canonical file."""
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in refs.items()}
    for k, v in changes.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = v
    return _file(out)


def _refs(data: bytes) -> dict:
    return lindijson.parse(data)["refs"]


def test_one_sided_and_identical_changes_are_taken():
    b = _base_refs()
    ours = _edit(b, {"units/a/0": "base64:BBBB", "units/x/.zarray": _zarray()})
    theirs = _edit(b, {"units/b/0": ["sha1:" + "2" * 40, 0, 32], "units/x/.zarray": _zarray(),
                         "units/spike_times/0": None})
    res = merge_files(_file(b), ours, theirs)
    r = _refs(res.merged)
    assert r["units/a/0"] == "base64:BBBB" and r["units/b/0"][0] == "sha1:" + "2" * 40
    assert "units/spike_times/0" not in r and r["units/x/.zarray"] == _zarray()
    assert merge_files(_file(b), theirs, ours).merged == res.merged
    # one side unchanged, or both the same: that side's bytes as they are
    assert merge_files(_file(b), _file(b), theirs).merged == theirs
    assert merge_files(_file(b), ours, _file(b)).merged == ours
    assert merge_files(_file(b), ours, ours).merged == ours


def test_attributes_merge_per_name_and_colnames_as_an_ordered_union():
    b = _base_refs()
    ua = b["units/.zattrs"]
    ours = {**ua, "colnames": ["spike_times", "a", "b", "acg"], "ours_note": 1}
    theirs = {**ua, "colnames": ["spike_times", "b", "quality"], "description": "all units"}
    res = merge_files(_file(b), _edit(b, {"units/.zattrs": ours}), _edit(b, {"units/.zattrs": theirs}))
    got = _refs(res.merged)["units/.zattrs"]
    assert got == {"colnames": ["spike_times", "b", "acg", "quality"], "description": "all units",
                   "neurodata_type": "Units", "ours_note": 1}
    # colnames added by both when the table is new to both
    nb = {k: v for k, v in b.items() if not k.startswith("units/")}
    t1 = {**b, "units/.zattrs": {**ua, "colnames": ["spike_times", "a", "b", "x"]}}
    t2 = {**b, "units/.zattrs": {**ua, "colnames": ["spike_times", "a", "b", "y"]}}
    res = merge_files(_file(nb), _file(t1), _file(t2))
    assert _refs(res.merged)["units/.zattrs"]["colnames"] == ["spike_times", "a", "b", "x", "y"]


def test_shape_change_on_both_sides_reads_like_the_issue():
    b = _base_refs()
    res = merge_files(_file(b), _edit(b, {"units/b/.zarray": _zarray((41,), (40,)), "units/b/1": "base64:AA=="}),
                      _edit(b, {"units/b/.zarray": _zarray((42,), (40,)), "units/b/1": "base64:AQ=="}))
    assert [c.describe() for c in res.conflicts] == ["both changed /units/b: shape [41] vs [42]"]
    assert res.conflicts[0].kind == "data" and not res.conflicts[0].added


def test_one_array_changed_in_different_chunks_on_both_sides_is_a_conflict():
    b = {**_base_refs(), "units/b/.zarray": _zarray((4,), (2,)), "units/b/1": "base64:AAAA"}
    res = merge_files(_file(b), _edit(b, {"units/b/1": "base64:BBBB"}),
                      _edit(b, {"units/b/0": ["sha1:" + "3" * 40, 0, 32]}))
    (c,) = res.conflicts
    assert (c.kind, c.path) == ("data", "/units/b")
    assert c.describe() == ("both changed /units/b: chunk 0: sha1:11111111 (32 B) (+1 more chunk(s)) "
                            "vs chunk 0: sha1:33333333 (32 B) (+1 more chunk(s))")
    for side, want in (("ours", ["base64:BBBB", "sha1:" + "1" * 40]), ("theirs", ["base64:AAAA", "sha1:" + "3" * 40])):
        r = _refs(res.resolve("/units/b", side).merged)
        assert [r["units/b/1"], r["units/b/0"][0]] == want


def test_rows_added_on_one_side_and_a_column_on_the_other_conflict_as_a_table():
    b = _base_refs()
    rows = {f"units/{c}/.zarray": _zarray((5,), (4,)) for c in ("id", "a", "b", "spike_times")}
    rows.update({f"units/{c}/1": "base64:AA==" for c in ("id", "a", "b", "spike_times")})
    ours = _edit(b, rows)
    colnames = {**b["units/.zattrs"], "colnames": ["spike_times", "a", "b", "c"]}
    theirs = _edit(b, {"units/.zattrs": colnames, "units/c/.zarray": _zarray(), "units/c/0": "base64:AQ=="})
    res = merge_files(_file(b), ours, theirs)
    assert [c.describe() for c in res.conflicts] == [
        "both changed table /units: 5 rows, changed a, b, id, spike_times vs 4 rows, changed c; "
        "its merged columns would differ in length"]
    assert res.resolve("/units", "ours").merged == ours
    assert res.resolve("/units", "theirs").merged == theirs
    # the same rows on one side, the column given 5 rows on the other: clean
    theirs5 = _edit(b, {"units/.zattrs": colnames, "units/c/.zarray": _zarray((5,), (4,)), "units/c/0": "base64:AQ=="})
    r = _refs(merge_files(_file(b), ours, theirs5).merged)
    assert r["units/.zattrs"]["colnames"][-1] == "c" and r["units/id/.zarray"]["shape"] == [5]


def test_array_deleted_on_one_side_with_its_attributes_changed_on_the_other():
    b = _base_refs()
    gone = {k: None for k in b if k.startswith("units/a/")}
    res = merge_files(_file(b), _edit(b, gone), _edit(b, {"units/a/.zattrs": {"description": "A"}}))
    (c,) = res.conflicts
    assert c.describe() == "ours deleted /units/a; theirs changed /units/a/.zattrs"
    assert not any(k.startswith("units/a/") for k in _refs(res.resolve("/units/a", "ours").merged))
    assert _refs(res.resolve("/units/a", "theirs").merged)["units/a/.zattrs"] == {"description": "A"}
    # a chunk added under an array the other side deleted is a change too
    res = merge_files(_file(b), _edit(b, {"units/a/1": "base64:AA=="}), _edit(b, gone))
    assert [(c.kind, c.path, c.theirs) for c in res.conflicts] == [("deleted", "/units/a", "deleted")]
    # deleted on both sides: clean
    assert merge_files(_file(b), _edit(b, gone), _edit(b, gone)).merged == _edit(b, gone)


def test_other_keys_and_whole_attribute_sets_conflict_as_keys():
    b = _base_refs()
    res = merge_files(_file(b), _edit(b, {"units/.zgroup": {"zarr_format": 3}}),
                      _edit(b, {"units/.zgroup": {"zarr_format": 4}}))
    assert [c.describe() for c in res.conflicts] == ['both changed /units/.zgroup: {"zarr_format":3} vs {"zarr_format":4}']
    res = merge_files(_file(b), _edit(b, {"units/a/.zattrs": None}), _edit(b, {"units/a/.zattrs": {"x": 1}}))
    assert [(c.kind, c.path, c.ours) for c in res.conflicts] == [("key", "/units/a/.zattrs", "absent")]


def test_resolving_a_group_prefix_settles_everything_under_it():
    b = _base_refs()
    ours = _edit(b, {"units/a/0": "base64:BBBB", "units/b/.zattrs": {"description": "B1"}, ".zattrs": {"nwb_version": "1"}})
    theirs = _edit(b, {"units/a/0": "base64:CCCC", "units/b/.zattrs": {"description": "B2"}, ".zattrs": {"nwb_version": "2"}})
    res = merge_files(_file(b), ours, theirs)
    assert [c.path for c in res.conflicts] == ["/", "/units/a", "/units/b"]
    part = res.resolve("/units", "theirs")
    assert [c.path for c in part.conflicts] == ["/"] and part.merged is None
    assert {c.path: s for c, s in part.resolved} == {"/units/a": "theirs", "/units/b": "theirs"}
    done = part.resolve("/", "ours")  # a later choice overrides an earlier one
    assert done.merged == ours
    both = res.resolve("/units", "theirs").resolve("", "ours").resolve("/units/b", "theirs")
    got = _refs(both.merged)
    assert got["units/a/0"] == "base64:BBBB" and got["units/b/.zattrs"] == {"description": "B2"}


def test_top_level_fields_never_conflict():
    refs = _base_refs()
    base = _file(refs, generationMetadata={"generatedBy": "lindi", "tool": "x"})
    ours = lindijson.dumps({"refs": {**refs, "units/a/0": "base64:BBBB"}, "version": 2,
                            "generationMetadata": {"generatedBy": "lindi", "tool": "ours", "by": "me"}})
    theirs = lindijson.dumps({"refs": refs, "version": 3,
                              "generationMetadata": {"generatedBy": "lindi 2", "tool": "theirs"}})
    res = merge_files(base, ours, theirs)
    top = lindijson.parse(res.merged)
    assert top["version"] == 3
    assert top["generationMetadata"] == {"generatedBy": "lindi 2", "tool": "ours", "by": "me"}
    assert top["refs"]["units/a/0"] == "base64:BBBB"


def test_templates_and_other_layouts_are_read_too():
    refs = _base_refs()
    base = _file(refs)
    templated = {"refs": {**refs, "units/spike_times/0": ["{{u}}/f.nwb", 100, 32], "units/a/0": "base64:BBBB"},
                 "templates": {"u": "https://x.org"}, "version": 1}
    theirs = orjson.dumps({"refs": {**refs, "units/b/.zattrs": {"description": "B"}}, "version": 1},
                          option=orjson.OPT_INDENT_2)
    res = merge_files(base, orjson.dumps(templated), theirs)
    r = lindijson.parse(res.merged)
    assert "templates" not in r and r["refs"]["units/spike_times/0"] == ["https://x.org/f.nwb", 100, 32]
    assert r["refs"]["units/a/0"] == "base64:BBBB" and r["refs"]["units/b/.zattrs"] == {"description": "B"}
    assert lindijson.dumps(r) == res.merged


def test_a_file_both_sides_added():
    refs = _base_refs()
    res = merge_files(None, _file({**refs, "units/a/0": "base64:BBBB"}), _file({**refs, "units/b/1": "base64:AA=="}))
    assert {c.path for c in res.conflicts} == {"/units/a", "/units/b"}
    assert all(c.added for c in res.conflicts)
    assert merge_files(None, _file(refs), _file(refs)).merged == _file(refs)


def test_keys_that_need_escaping():
    refs = {**_base_refs(), 'odd/"q"\\/.zattrs': {"x": 1}, "odd/é/.zattrs": {"y": 1}, "odd/.zgroup": {"zarr_format": 2}}
    ours = _file({**refs, 'odd/"q"\\/.zattrs': {"x": 2}})
    theirs = _file({**refs, "odd/é/.zattrs": {"y": 2}, "odd/\n/.zattrs": {}})
    r = _refs(merge_files(_file(refs), ours, theirs).merged)
    assert r['odd/"q"\\/.zattrs'] == {"x": 2} and r["odd/é/.zattrs"] == {"y": 2} and r["odd/\n/.zattrs"] == {}


def test_bad_input_is_named():
    with pytest.raises(InvalidLindiFile) as e:
        merge_files(_file(_base_refs()), b"{not json", _file({}), name="s.lindi.json")
    assert e.value.path == "s.lindi.json" and "not valid JSON" in e.value.reason
    with pytest.raises(InvalidLindiFile):
        merge_files(None, b"[1, 2]", _file({}), name="s.lindi.json")


def test_removing_every_ref_and_adding_at_both_ends():
    refs = {"m/.zgroup": {"zarr_format": 2}, "m/x": "base64:AA=="}
    res = merge_files(_file(refs), _file({}), _file({**refs, "a": "base64:AA==", "z": "base64:AA=="}))
    assert _refs(res.merged) == {"a": "base64:AA==", "z": "base64:AA=="}
    res = merge_files(_file(refs), _file({"m/.zgroup": {"zarr_format": 2}}), _file({**refs, "z": "base64:AA=="}))
    assert _refs(res.merged) == {"m/.zgroup": {"zarr_format": 2}, "z": "base64:AA=="}
    assert res.merged == _file({"m/.zgroup": {"zarr_format": 2}, "z": "base64:AA=="})


# ------------------------------------------------------------------ byte-level work on large files

def _big(n: int, seed: int = 0) -> dict:
    rng = random.Random(seed)
    refs = {f"g{a}/.zgroup": {"zarr_format": 2} for a in range(4)}
    for a in range(4):
        refs[f"g{a}/d/.zarray"] = _zarray((n,), (1,))
        for i in range(n // 4):
            refs[f"g{a}/d/{i}"] = ["https://x.org/f.nwb", rng.randrange(1 << 30), 4096]
    return refs


def test_changed_lines_reads_only_what_differs(monkeypatch):
    refs = _big(200_000)
    base = _file(refs)
    side = {**refs, "g1/d/17": "base64:AA==", "g2/.zattrs": {"x": 1}, "g3/d/49999": ["https://y", 0, 1]}
    del side["g0/d/5"]
    split = []
    real = reflines.RefLines.lines

    def counting(self, lo, hi):
        split.append(hi - lo)
        return real(self, lo, hi)

    monkeypatch.setattr(reflines.RefLines, "lines", counting)
    only_a, only_b = reflines.changed_lines(reflines.RefLines.of(base), reflines.RefLines.of(_file(side)))
    keys = lambda lines: sorted(reflines.line_key(x) for x in lines)  # noqa: E731
    assert keys(only_a) == ["g0/d/5", "g1/d/17", "g3/d/49999"]
    assert keys(only_b) == ["g1/d/17", "g2/.zattrs", "g3/d/49999"]
    assert sum(split) < len(base) / 20  # a few small windows, not the file


def test_a_large_new_array_on_one_side_is_not_spliced_ref_by_ref(monkeypatch):
    refs = _big(20_000)
    ours = {**refs, "g1/.zattrs": {"description": "ours"}}
    theirs = {**refs, "g9/.zgroup": {"zarr_format": 2}, "g9/d/.zarray": _zarray((20_000,), (1,))}
    theirs.update({f"g9/d/{i}": ["sha1:" + "4" * 40, i, 1] for i in range(20_000)})
    seeks = []
    real = reflines.RefLines.seek

    def counting(self, *a):
        seeks.append(a)
        return real(self, *a)

    monkeypatch.setattr(reflines.RefLines, "seek", counting)
    res = merge_files(_file(refs), _file(ours), _file(theirs))
    assert res.merged == _file({**theirs, "g1/.zattrs": {"description": "ours"}})
    assert len(seeks) < 1000  # the merge starts from theirs' bytes and splices ours' one change
    assert merge_files(_file(refs), _file(theirs), _file(ours)).merged == res.merged


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_changed_lines_agrees_with_comparing_every_line(data):
    n = data.draw(st.integers(0, 3000))
    refs = {f"k{i:05d}": f"v{i}" for i in range(n)}
    keys = data.draw(st.lists(st.sampled_from(sorted(refs) + [f"k{i:05d}x" for i in range(50)]), max_size=30)) if n else []
    other = dict(refs)
    for j, k in enumerate(keys):
        if k in other and j % 3 == 0:
            del other[k]
        else:
            other[k] = f"w{j}"
    monkey = data.draw(st.sampled_from([64, 512, reflines.SMALL]))
    old = reflines.SMALL
    reflines.SMALL = monkey  # small windows exercise the cutting on small files
    try:
        a, b = _file(refs), _file(other)
        only_a, only_b = reflines.changed_lines(reflines.RefLines.of(a), reflines.RefLines.of(b))
    finally:
        reflines.SMALL = old
    la = {reflines.make_line(k, v) for k, v in refs.items()}
    lb = {reflines.make_line(k, v) for k, v in other.items()}
    assert sorted(only_a) == sorted(la - lb) and sorted(only_b) == sorted(lb - la)


# ------------------------------------------------------------------ properties

_GROUPS = ["acquisition/lfp", "processing/behavior/speed", "processing/ecephys/lfp", "units/acg", "units/quality"]


def _random_base(rng: random.Random) -> dict:
    refs = {".zgroup": {"zarr_format": 2}, ".zattrs": {"a": 1, "b": 2, "c": 3}}
    for g in _GROUPS:
        if rng.random() < 0.8:
            refs[f"{g}/.zarray"] = _zarray((4 * 3,), (4,))
            refs[f"{g}/.zattrs"] = {"description": g, "unit": "s"}
            for i in range(rng.randrange(4)):
                refs[f"{g}/{i}"] = f"base64:{g}{i}"
    return refs


def _random_edit(rng: random.Random, refs: dict, nodes: list[str], attrs: list[str], tag: str) -> dict:
    """Edits confined to ``nodes`` (arrays changed, added or deleted) and the root attributes ``attrs``."""
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in refs.items()}
    for g in nodes:
        what = rng.choice(["chunk", "zarray", "attr", "delete", "add"])
        exists = f"{g}/.zarray" in out
        if what == "delete" and exists:
            for k in [k for k in out if k.startswith(g + "/")]:
                del out[k]
        elif not exists or what == "add":
            out[f"{g}/.zarray"] = _zarray((8,), (4,), rng.choice(["<f8", "<i4"]))
            out[f"{g}/.zattrs"] = {"description": tag}
            out[f"{g}/0"] = f"base64:{tag}"
        elif what == "chunk":
            out[f"{g}/{rng.randrange(5)}"] = f"base64:{tag}{rng.randrange(9)}"
        elif what == "zarray":
            out[f"{g}/.zarray"] = _zarray((rng.randrange(1, 99),), (4,))
        else:
            out[f"{g}/.zattrs"][rng.choice(["description", "unit", "new"])] = tag
    for a in attrs:
        if rng.random() < 0.3:
            out[".zattrs"].pop(a, None)
        else:
            out[".zattrs"][a] = f"{tag}-{a}"
    return out


@settings(max_examples=150, deadline=None)
@given(st.randoms(use_true_random=False))
def test_disjoint_edits_merge_the_same_both_ways_and_keep_both(rng):
    base = _random_base(rng)
    nodes = rng.sample(_GROUPS, rng.randrange(len(_GROUPS) + 1))
    attrs = rng.sample(["a", "b", "c", "d"], rng.randrange(5))
    cut, acut = rng.randrange(len(nodes) + 1), rng.randrange(len(attrs) + 1)
    a = _random_edit(rng, base, nodes[:cut], attrs[:acut], "A")
    b = _random_edit(rng, base, nodes[cut:], attrs[acut:], "B")
    ab = merge_files(_file(base), _file(a), _file(b))
    ba = merge_files(_file(base), _file(b), _file(a))
    assert ab.conflicts == () and ab.merged == ba.merged
    want = {k: v for k, v in a.items() if not k.startswith(tuple(g + "/" for g in nodes[cut:]))}
    want.update({k: v for k, v in b.items() if k.startswith(tuple(g + "/" for g in nodes[cut:]))})
    want[".zattrs"] = dict(base[".zattrs"])
    for names, side in ((attrs[:acut], a), (attrs[acut:], b)):
        for k in names:
            if k in side[".zattrs"]:
                want[".zattrs"][k] = side[".zattrs"][k]
            else:
                want[".zattrs"].pop(k, None)
    assert _refs(ab.merged) == want


@settings(max_examples=150, deadline=None)
@given(st.randoms(use_true_random=False))
def test_any_edits_conflict_symmetrically_and_resolve_to_a_whole_file(rng):
    base = _random_base(rng)
    a = _random_edit(rng, base, rng.sample(_GROUPS, 3), ["a", "d"], "A")
    b = _random_edit(rng, base, rng.sample(_GROUPS, 3), ["a", "b"], "B")
    ab = merge_files(_file(base), _file(a), _file(b))
    ba = merge_files(_file(base), _file(b), _file(a))
    flip = {(c.path, c.kind, c.attribute, c.theirs, c.ours) for c in ba.conflicts}
    assert {(c.path, c.kind, c.attribute, c.ours, c.theirs) for c in ab.conflicts} == flip
    if ab.conflicts:
        assert ab.resolve("/", "ours").merged == ba.resolve("/", "theirs").merged
        for side in ("ours", "theirs"):
            lindijson.validate(lindijson.parse(ab.resolve("/", side).merged))
    else:
        assert ab.merged == ba.merged


def test_conflict_is_a_frozen_value():
    c = Conflict("/units/q", "data", "shape [40]", "shape [41]")
    assert c.describe() == "both changed /units/q: shape [40] vs [41]"
    assert c.covered_by("units") and c.covered_by("/units/q/") and not c.covered_by("/unit")
    with pytest.raises(AttributeError):
        c.path = "/x"
    assert filemerge.normalize_path("a/b/") == "/a/b" and filemerge.normalize_path("") == "/"
