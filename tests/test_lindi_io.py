"""lindivc.lindi_io against real lindi, h5py, zarr and pynwb (no mocks)."""
from __future__ import annotations

import json
import os
from datetime import datetime, timezone

import h5py
import lindi
import numcodecs.blosc
import numpy as np
import pytest

from lindivc.errors import InvalidLindiFile
from lindivc.lindi_io import WriteLock, convert_hdf5, ingest, open_file
from lindivc.objects import ObjectStore

EMPTY_RFS = {"refs": {".zgroup": {"zarr_format": 2}}, "version": 1}


def _write_json(path, obj) -> str:
    with open(path, "w") as f:
        json.dump(obj, f)
    return str(path)


def _empty_lindi(path) -> str:
    return _write_json(path, EMPTY_RFS)


def _object_refs(path, store: ObjectStore) -> dict[str, str]:
    """key -> sha1 for every ref of the JSON file at ``path`` that points into ``store``."""
    with open(path) as f:
        refs = json.load(f)["refs"]
    out = {}
    for k, v in refs.items():
        if isinstance(v, list):
            sha = store.sha1_from_path(v[0])
            if sha is not None:
                out[k] = sha
    return out


@pytest.fixture
def store(tmp_path) -> ObjectStore:
    return ObjectStore(str(tmp_path / "objects"), fsync=False)


# --------------------------------------------------------------------------- h5py writes


@pytest.mark.parametrize("name", ["big.lindi.json", "big.zarr.json"])
def test_large_chunks_land_in_object_store_and_read_back_with_plain_lindi(tmp_path, store, name):
    path = _empty_lindi(tmp_path / name)
    rng = np.random.default_rng(0)
    data = rng.standard_normal((2500, 1000))  # 20 MB of float64
    with open_file(path, "r+", objects=store) as f:
        f.create_dataset("big", data=data, chunks=(250, 1000))
        f.create_dataset("small", data=np.arange(10))

    size = os.path.getsize(path)
    assert size < 100_000, f"working file is {size} bytes: chunks went inline"
    objs = _object_refs(path, store)
    assert sorted(objs) == [f"big/{i}.0" for i in range(10)]
    with open(path) as f:
        rfs = json.load(f)
    refs = rfs["refs"]
    for k, sha in objs.items():
        assert refs[k][1:] == [0, store.size(sha)]
        assert refs[k][2] >= 64 * 1024
        store.verify(sha)
    assert isinstance(refs["big/.zarray"], dict)
    assert not isinstance(refs["small/0"], list)  # small chunk stays inline

    if name.endswith(".lindi.json"):
        f2 = lindi.LindiH5pyFile.from_lindi_file(path)
    else:
        f2 = lindi.LindiH5pyFile.from_reference_file_system(rfs)
    np.testing.assert_array_equal(f2["big"][()], data)
    np.testing.assert_array_equal(f2["small"][()], np.arange(10))


def test_same_data_twice_gives_same_object_names(tmp_path, store):
    data = np.random.default_rng(1).standard_normal((1000, 1000))
    names = []
    before = numcodecs.blosc.use_threads
    for i in range(2):
        path = _empty_lindi(tmp_path / f"f{i}.lindi.json")
        with open_file(path, "r+", objects=store) as f:
            assert numcodecs.blosc.use_threads is False
            f.create_dataset("x", data=data, chunks=(200, 1000))
        names.append(_object_refs(path, store))
    assert numcodecs.blosc.use_threads == before
    assert names[0] == names[1]
    assert len(names[0]) == 5


def test_uncompressed_array_is_written_as_objects(tmp_path, store):
    path = _empty_lindi(tmp_path / "u.lindi.json")
    data = np.arange(200_000, dtype="int64").reshape(2000, 100)
    with open_file(path, "r+", objects=store) as f:
        f.create_dataset("u", data=data, chunks=(1000, 100), compression=None)
    objs = _object_refs(path, store)
    assert sorted(objs) == ["u/0.0", "u/1.0"]
    # uncompressed: the object holds the raw chunk bytes
    assert store.get(objs["u/0.0"]) == data[:1000].tobytes()
    f2 = lindi.LindiH5pyFile.from_lindi_file(path)
    np.testing.assert_array_equal(f2["u"][()], data)


def test_save_callback_gets_expanded_rfs_and_file_is_untouched(tmp_path, store):
    rfs = {
        "refs": {
            ".zgroup": {"zarr_format": 2},
            "a/.zgroup": '{"zarr_format": 2}',
        },
        "templates": {"u1": "/nowhere"},
    }
    path = _write_json(tmp_path / "s.lindi.json", rfs)
    before = open(path).read()
    saved = []
    f = open_file(path, "r+", objects=store, save=saved.append)
    f.create_dataset("d", data=np.zeros(100_000), chunks=(100_000,), compression=None)
    f.close()
    f.close()  # harmless
    assert open(path).read() == before
    assert len(saved) == 1
    out = saved[0]
    assert "templates" not in out
    assert out["refs"]["a/.zgroup"] == {"zarr_format": 2}
    assert out["refs"]["d/0"][0] == store.path(store.sha1_from_path(out["refs"]["d/0"][0]))


def test_read_only_file_is_never_rewritten(tmp_path):
    path = _empty_lindi(tmp_path / "r.lindi.json")
    before = open(path).read()
    with open_file(path) as f:
        assert list(f.keys()) == []
        with pytest.raises(Exception):
            f.create_group("g")
    assert open(path).read() == before


def test_read_range_is_asked_first(tmp_path, store):
    path = _empty_lindi(tmp_path / "rr.lindi.json")
    data = np.arange(100_000, dtype="float64")
    with open_file(path, "r+", objects=store) as f:
        f.create_dataset("x", data=data, chunks=(100_000,), compression=None)
    (sha,) = _object_refs(path, store).values()
    moved = store.get(sha)
    store.delete(sha)  # the object is now only reachable through read_range
    asked = []

    def read_range(url: str, offset: int, size: int) -> bytes | None:
        asked.append((url, offset, size))
        return moved[offset:offset + size] if url == store.path(sha) else None

    with open_file(path, "r", read_range=read_range) as f:
        np.testing.assert_array_equal(f["x"][()], data)
    assert asked == [(store.path(sha), 0, len(moved))]


# --------------------------------------------------------------------------- malformed input


@pytest.mark.parametrize(
    "content, reason",
    [
        ("{not json", "not valid JSON"),
        (b"\xff\xfe\x00garbage", "not valid JSON"),
        ("[1, 2, 3]", "top level"),
        ('{"version": 1}', "missing 'refs'"),
        ('{"refs": {"a/0": ["/x", 0]}}', "list of 2 elements"),
        ('{"refs": {"a/0": ["/x"]}}', "list of 1 elements"),
        ('{"refs": {"a/0": [1, 0, 10]}}', "url must be a string"),
        ('{"refs": {"a/0": ["/x", "0", 10]}}', "offset must be"),
        ('{"refs": {"a/0": ["/x", 0, 1.5]}}', "size must be"),
        ('{"refs": {"a/0": 42}}', "is a int"),
        ('{"refs": {"a/0": null}}', "is a NoneType"),
    ],
)
def test_malformed_file_raises_invalid_lindi_file(tmp_path, content, reason):
    p = tmp_path / "bad.lindi.json"
    if isinstance(content, bytes):
        p.write_bytes(content)
    else:
        p.write_text(content)
    for mode in ("r", "r+"):
        with pytest.raises(InvalidLindiFile) as e:
            open_file(str(p), mode)
        assert reason in e.value.reason
        assert "\n" not in e.value.reason
        assert e.value.path == str(p)


# --------------------------------------------------------------------------- pynwb


def _make_nwb_hdf5(path: str) -> None:
    from pynwb import NWBHDF5IO, NWBFile, TimeSeries

    nwb = NWBFile(
        session_description="test",
        identifier="lindivc-test",
        session_start_time=datetime(2024, 1, 1, tzinfo=timezone.utc),
    )
    nwb.add_acquisition(
        TimeSeries(name="ts", data=np.arange(1000, dtype="float32"), unit="m", rate=10.0)
    )
    nwb.add_unit(spike_times=[0.1, 0.2, 0.3])
    nwb.add_unit(spike_times=[0.5, 1.5])
    nwb.add_unit(spike_times=[2.0])
    with NWBHDF5IO(path, "w") as io:
        io.write(nwb)


def _to_lindi_json(h5path: str, out: str) -> str:
    f = lindi.LindiH5pyFile.from_hdf5_file(h5path, url=h5path)
    rfs = f.to_reference_file_system()
    f.close()
    return _write_json(out, rfs)


def test_pynwb_plain_write_adds_units_column(tmp_path, store):
    import pynwb

    h5path = str(tmp_path / "src.nwb")
    _make_nwb_hdf5(h5path)
    path = _to_lindi_json(h5path, str(tmp_path / "sess.zarr.json"))

    f = open_file(path, "r+", objects=store)
    with pynwb.NWBHDF5IO(file=f, mode="a") as io:
        nwb = io.read()
        nwb.units.add_column(name="quality", description="sorting quality", data=[0.9, 0.5, 0.1])
        io.write(nwb)  # plain write: hdmf asks for maxshape, lindivc accepts it
    f.close()  # already closed by NWBHDF5IO: harmless

    with open(path) as fh:
        refs = json.load(fh)["refs"]
    assert "units/quality/.zarray" in refs

    # read back with plain lindi + pynwb
    with open(path) as fh:
        g = lindi.LindiH5pyFile.from_reference_file_system(json.load(fh))
    with pynwb.NWBHDF5IO(file=g, mode="r") as io:
        nwb = io.read()
        np.testing.assert_allclose(nwb.units["quality"].data[:], [0.9, 0.5, 0.1])
        assert list(nwb.units["spike_times"][1]) == [0.5, 1.5]
        np.testing.assert_array_equal(nwb.acquisition["ts"].data[:], np.arange(1000, dtype="float32"))

    # the same through the .lindi.json name and from_lindi_file
    lpath = str(tmp_path / "sess.lindi.json")
    os.replace(path, lpath)
    with pynwb.NWBHDF5IO(file=lindi.LindiH5pyFile.from_lindi_file(lpath), mode="r") as io:
        np.testing.assert_allclose(io.read().units["quality"].data[:], [0.9, 0.5, 0.1])


def test_maxshape_is_accepted_by_h5py_api(tmp_path, store):
    path = _empty_lindi(tmp_path / "m.lindi.json")
    with open_file(path, "r+", objects=store) as f:
        g = f.create_group("a").create_group("b")
        g.create_dataset("x", data=np.arange(5), maxshape=(None,))
        f["a"].create_dataset("y", data=np.arange(3), maxshape=(None,))
        f.require_group("a/c").create_dataset("z", data=[1, 2], maxshape=(None,))
    f2 = lindi.LindiH5pyFile.from_lindi_file(path)
    assert list(f2["a/b/x"][()]) == [0, 1, 2, 3, 4]
    assert list(f2["a/y"][()]) == [0, 1, 2]
    assert list(f2["a/c/z"][()]) == [1, 2]


# --------------------------------------------------------------------------- convert + ingest


def test_convert_and_ingest_survive_deleting_the_hdf5(tmp_path, store):
    h5path = tmp_path / "orig.h5"
    rng = np.random.default_rng(2)
    chunked = rng.standard_normal((400, 300))
    contiguous = np.arange(50_000, dtype="int32")
    with h5py.File(h5path, "w") as h:
        h.create_dataset("chunked", data=chunked, chunks=(100, 300), compression="gzip")
        h.create_dataset("contig", data=contiguous)
        h.create_dataset("tiny", data=[1, 2, 3])
        h.attrs["hello"] = "world"

    rfs = convert_hdf5(str(h5path))
    assert "templates" not in rfs
    local = [v for v in rfs["refs"].values() if isinstance(v, list)]
    assert local and all(v[0] == str(h5path) for v in local)

    n = ingest(rfs, store)
    assert n == sum(v[2] for v in local)
    for v in rfs["refs"].values():
        if isinstance(v, list):
            assert store.sha1_from_path(v[0]) is not None
            assert v[1] == 0
    assert ingest(rfs, store) == 0  # idempotent

    os.unlink(h5path)
    path = _write_json(tmp_path / "c.lindi.json", rfs)
    f = lindi.LindiH5pyFile.from_lindi_file(path)
    np.testing.assert_array_equal(f["chunked"][()], chunked)
    np.testing.assert_array_equal(f["contig"][()], contiguous)
    assert list(f["tiny"][()]) == [1, 2, 3]
    assert f.attrs["hello"] == "world"


def test_ingest_leaves_urls_alone_by_default(store):
    rfs = {"refs": {".zgroup": {"zarr_format": 2}, "a/0": ["https://example.org/x.nwb", 10, 20]}}
    assert ingest(rfs, store) == 0
    assert rfs["refs"]["a/0"] == ["https://example.org/x.nwb", 10, 20]


def test_writer_keeps_metadata_strings_that_hold_no_json_object(tmp_path, store):
    path = str(tmp_path / "m.lindi.json")
    with open(path, "w") as f:
        json.dump({"refs": {".zgroup": {"zarr_format": 2}, "a/.zattrs": "null", "b/.zattrs": "base64:abc",
                            "c/.zattrs": '{"k": 1}'}}, f)
    with open_file(path, "r+", objects=store) as f:
        f.attrs["x"] = 1
    refs = json.load(open(path))["refs"]
    assert refs["a/.zattrs"] == "null" and refs["b/.zattrs"] == "base64:abc" and refs["c/.zattrs"] == {"k": 1}
    open_file(path).close()


# --------------------------------------------------------------------------- background hashing

def _temp_files(root) -> list[str]:
    return [n for _, _, files in os.walk(root) for n in files if n.startswith(".lindivc-tmp-")]


def test_chunks_written_one_by_one_are_durable_objects_when_close_returns(tmp_path):
    """As lindivc.open's writers do: one chunk per assignment, hashed and fsynced in the background."""
    store = ObjectStore(str(tmp_path / "objects"))  # fsync on, as in a repository
    path = _empty_lindi(tmp_path / "w.lindi.json")
    chunks = [np.random.default_rng(i).standard_normal(16384) for i in range(24)]
    with open_file(path, "r+", objects=store) as f:
        ds = f.create_dataset("d", shape=(24 * 16384,), dtype="<f8", chunks=(16384,), compression=None)
        for i, c in enumerate(chunks):
            ds[i * 16384:(i + 1) * 16384] = c
            c[:] = 0  # the caller reuses its buffer: what was assigned is what is stored
    objs = _object_refs(path, store)
    assert sorted(objs, key=lambda k: int(k.split("/")[1])) == [f"d/{i}" for i in range(24)]
    for i in range(24):
        assert store.get(objs[f"d/{i}"]) == np.random.default_rng(i).standard_normal(16384).tobytes()
    assert _temp_files(store.root) == []


def test_refs_and_reads_see_a_chunk_before_its_object_is_written(tmp_path, store):
    path = _empty_lindi(tmp_path / "r.lindi.json")
    a, b = np.arange(16384, dtype="<f8"), np.arange(16384, dtype="<f8")[::-1].copy()
    with open_file(path, "r+", objects=store) as f:
        ds = f.create_dataset("d", shape=(16384,), dtype="<f8", chunks=(16384,), compression=None)
        ds[:] = a
        ref = f._zarr_store.rfs["refs"]["d/0"]  # what lindi itself reads (to_reference_file_system)
        assert store.sha1_from_path(ref[0]) is not None and ref[1:] == [0, a.nbytes]
        ds[:] = b  # the same chunk again before close: the last write wins
        np.testing.assert_array_equal(f["d"][()], b)
        assert f.to_reference_file_system()["refs"]["d/0"] == f._zarr_store.rfs["refs"]["d/0"]
    assert store.get(_object_refs(path, store)["d/0"]) == b.tobytes()


def test_failed_object_write_saves_nothing(tmp_path):
    """A chunk that cannot be stored (here its fan-out directory is a file) fails close; the
    working file keeps its old bytes and the next writer can open it."""
    from lindivc.objects import sha1_bytes

    store = ObjectStore(str(tmp_path / "objects"))
    path = _empty_lindi(tmp_path / "f.lindi.json")
    before = open(path, "rb").read()
    good, bad = np.arange(16384, dtype="<f8"), np.ones(16384, dtype="<f8")
    blocked = os.path.join(store.root, sha1_bytes(bad.tobytes())[:2])
    os.makedirs(store.root, exist_ok=True)
    open(blocked, "w").close()
    f = open_file(path, "r+", objects=store, lock=WriteLock(str(tmp_path / "f.lock"), "f.lindi.json"))
    ds = f.create_dataset("d", shape=(2 * 16384,), dtype="<f8", chunks=(16384,), compression=None)
    ds[:16384] = good
    ds[16384:] = bad
    with pytest.raises(OSError):
        f.close()
    assert open(path, "rb").read() == before
    assert _temp_files(store.root) == []
    with open_file(path, "r+", objects=store, lock=WriteLock(str(tmp_path / "f.lock"), "f.lindi.json")) as g:
        g.create_dataset("e", data=np.arange(3))
