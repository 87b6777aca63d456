"""Published files that anyone can open (issue 11): a local NWB file imported without --ingest is
published self-contained to a local zone, S3 and the gateway; a local zone with --public-url is
read over HTTP (`lindivc serve --dir`) by lindi, fsspec (with and without jinja2) and pynwb;
push refuses, changing nothing, when a local file it must upload is missing or changed."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import boto3
import h5py
import pytest
from click.testing import CliRunner

from lindivc.cli import cli
from lindivc.errors import LocalFileUnpublishable
from lindivc.importer import import_file
from lindivc.push import push
from lindivc.rangeserver import serve_directory
from lindivc.repo import Repository
from lindivc.testdata import make_nwb

DATASETS = ("acquisition/lfp/data", "units/spike_times", "units/spike_times_index", "units/id",
            "general/extracellular_ephys/electrodes/y")

# Plain lindi in a fresh interpreter: digests of the datasets of the LINDI file at argv[1].
READ_WITH_LINDI = """
import hashlib, json, sys
import lindi
f = lindi.LindiH5pyFile.from_lindi_file(sys.argv[1])
print(json.dumps({n: hashlib.sha1(f[n][()].tobytes()).hexdigest() for n in sys.argv[2:]}))
"""


def digests_h5(path: str) -> dict[str, str]:
    with h5py.File(path, "r") as f:
        return {n: hashlib.sha1(f[n][()].tobytes()).hexdigest() for n in DATASETS}


def read_with_lindi(location: str, cwd: str) -> dict[str, str]:
    out = subprocess.run([sys.executable, "-c", READ_WITH_LINDI, location, *DATASETS], cwd=cwd,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout)


@pytest.fixture
def nwb(tmp_path) -> str:
    (tmp_path / "data").mkdir()
    return make_nwb(str(tmp_path / "data" / "session.nwb"), n_units=8, duration=60, n_channels=8, lfp_seconds=20)


def imported(tmp_path, nwb: str) -> tuple[Repository, str]:
    """A repository with ``nwb`` imported without --ingest and committed."""
    r = Repository.init(str(tmp_path / "repo"))
    rel = import_file(r, nwb)
    r.commit("import a local recording")
    return r, rel


def range_urls(doc: bytes) -> list[str]:
    """The URLs of the byte-range refs of a published file, templates applied."""
    rfs = json.loads(doc)
    out = []
    for v in rfs["refs"].values():
        if isinstance(v, list):
            url = v[0]
            for name, value in rfs.get("templates", {}).items():
                url = url.replace("{{" + name + "}}", value)
            out.append(url)
    return out


def make_public(bucket: str) -> None:
    """Every object of the (moto) bucket readable anonymously, as a public bucket is."""
    s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for o in page.get("Contents", []):
            s3.put_object_acl(Bucket=bucket, Key=o["Key"], ACL="public-read")


@pytest.mark.parametrize("kind", ["local", "s3", "gateway"])
def test_local_nwb_is_published_self_contained(kind, tmp_path, nwb, request, monkeypatch):
    expected = digests_h5(nwb)
    r, rel = imported(tmp_path, nwb)
    canonical = r.read_at("HEAD", rel)
    assert nwb.encode() in canonical  # history keeps naming the local file
    if kind == "local":
        url = str(tmp_path / "zone")
    elif kind == "s3":
        url = f"s3://{request.getfixturevalue('s3_bucket')}/zones/ada/acg"
    else:
        url = f"{request.getfixturevalue('gateway')}/zones/alice/acg"
        monkeypatch.setenv("GITHUB_TOKEN", "tok-alice")
    r.config.add_remote("origin", url)
    res = push(r)
    assert res.local_chunks >= 2 and res.local_bytes == res.chunk_bytes > 0
    published = res.urls[rel]
    if kind == "s3":
        make_public(url.split("/")[2])
    if kind == "local":
        with open(published, "rb") as fh:
            doc = fh.read()
    else:
        import requests

        doc = requests.get(published).content
    # no path of this machine but the zone's own (a local zone without a public URL)
    assert nwb.encode() not in doc and str(tmp_path / "repo").encode() not in doc
    assert all(u.startswith(res.public_base) for u in range_urls(doc))
    assert json.loads(doc)["templates"] == {"z0": res.public_base}
    os.unlink(nwb)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert read_with_lindi(published, str(elsewhere)) == expected
    assert read_with_lindi(res.versions[rel], str(elsewhere)) == expected


# fsspec's ReferenceFileSystem over HTTP, in a fresh interpreter; "block" makes jinja2 unimportable
# (its default simple templates need no jinja2), "jinja" renders the templates with jinja2.
READ_WITH_FSSPEC = """
import hashlib, json, sys
mode = sys.argv[2]
if mode == "block":
    class NoJinja:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "jinja2":
                raise ImportError("jinja2 is blocked in this test")
    sys.meta_path.insert(0, NoJinja())
import fsspec, zarr
fs = fsspec.filesystem("reference", fo=sys.argv[1], remote_protocol="http", simple_templates=(mode == "block"))
root = zarr.open(fs.get_mapper(""), mode="r")
out = {n: hashlib.sha1(root[n][:].tobytes()).hexdigest() for n in sys.argv[3:]}
assert mode != "block" or "jinja2" not in sys.modules
print(json.dumps(out))
"""


def test_served_local_zone_with_public_url_reads_with_lindi_fsspec_pynwb(tmp_path, nwb, monkeypatch):
    import lindi
    import pynwb

    expected = digests_h5(nwb)
    with h5py.File(nwb, "r") as f:
        spikes = f["units/spike_times"][()]
    r, rel = imported(tmp_path, nwb)
    zone = tmp_path / "zone"
    zone.mkdir()
    with serve_directory(str(zone)) as srv:
        monkeypatch.chdir(r.root)
        out = CliRunner().invoke(cli, ["remote", "add", "origin", str(zone), "--public-url", srv.url])
        assert out.exit_code == 0, out.output
        res = push(Repository(r.root))
        url = res.urls[rel]
        assert url == f"{srv.url}/f/{rel}" and res.public_base == srv.url + "/"
        os.unlink(nwb)
        doc = (zone / "f" / rel).read_bytes()
        assert str(zone).encode() not in doc
        assert all(u.startswith(srv.url + "/sha1/") for u in range_urls(doc))
        # lindi and pynwb, over HTTP
        assert read_with_lindi(url, str(tmp_path)) == expected
        f = lindi.LindiH5pyFile.from_lindi_file(url)
        with pynwb.NWBHDF5IO(file=f, mode="r") as io:
            n = io.read()
            assert (n.units.spike_times.data[:] == spikes).all()
        # fsspec, with jinja2 blocked and with jinja2 rendering
        names = [d for d in DATASETS if d != "units/id"]
        for mode in ("block", "jinja"):
            p = subprocess.run([sys.executable, "-c", READ_WITH_FSSPEC, url, mode, *names], capture_output=True,
                               text=True)
            assert p.returncode == 0, p.stderr[-2000:]
            assert json.loads(p.stdout) == {k: expected[k] for k in names}


def test_templates_shrink_the_published_file_and_read_identically(tmp_path, nwb):
    from lindivc import lindijson

    r, rel = imported(tmp_path, nwb)
    zone = tmp_path / "zone"
    r.config.add_remote("origin", str(zone), public_url="https://cdn.example.org/zones/ada/acg/")
    push(r)
    doc = (zone / "f" / rel).read_bytes()
    rfs = json.loads(doc)
    assert rfs["templates"] == {"z0": "https://cdn.example.org/zones/ada/acg/"}
    full = lindijson.dumps({**{k: v for k, v in rfs.items() if k != "templates"},
                            "refs": {k: ([v[0].replace("{{z0}}", rfs["templates"]["z0"]), v[1], v[2]]
                                         if isinstance(v, list) else v) for k, v in rfs["refs"].items()}})
    assert len(doc) < len(full)
    # the same file either way, to lindivc's own reading
    expanded = json.loads(doc)
    lindijson.expand_templates(expanded)
    assert expanded == json.loads(full)
    # and to GC, which reads other users' published files as untrusted documents
    from lindivc.documents import parse_published_refs
    from lindivc.gc.published import ranges_in

    refs = parse_published_refs(doc, "f/" + rel)
    got = sorted((ref.url, ref.offset, ref.size) for ref in refs)
    assert refs.skipped == 0 and got == sorted(tuple(v) for v in json.loads(full)["refs"].values() if isinstance(v, list))
    assert all(ref_url.startswith("https://cdn.example.org/zones/ada/acg/sha1/") for ref_url, _, _ in got)
    shas = {u.rsplit("/", 1)[1] for u, _, _ in got}
    assert sorted(ranges_in(shas)(doc, "f/" + rel).ranges) == sorted((u.rsplit("/", 1)[1], o, n) for u, o, n in got)


def test_dandi_style_import_keeps_templates_and_external_array_link(tmp_path):
    dandi = "https://api.dandiarchive.org/api/assets/0f1e2d3c-aaaa-4bbb-8ccc-123456789abc/download/"
    link = {"link_type": "hdf5_dataset", "url": dandi, "name": "/acquisition/ElectricalSeries/data"}
    refs = {".zgroup": {"zarr_format": 2},
            "acquisition/.zgroup": {"zarr_format": 2},
            "acquisition/ElectricalSeries/.zgroup": {"zarr_format": 2},
            "acquisition/ElectricalSeries/data/.zarray": {"chunks": [100], "compressor": None, "dtype": "<i2",
                                                          "fill_value": 0, "filters": None, "order": "C",
                                                          "shape": [100000], "zarr_format": 2},
            "acquisition/ElectricalSeries/data/.zattrs": {"_EXTERNAL_ARRAY_LINK": link},
            "acquisition/t/.zarray": {"chunks": [10], "compressor": None, "dtype": "<f8", "fill_value": 0,
                                      "filters": None, "order": "C", "shape": [60], "zarr_format": 2}}
    for i in range(6):
        refs[f"acquisition/t/{i}"] = ["{{u1}}", 1000 + 80 * i, 80]
    src = tmp_path / "dandi.nwb.lindi.json"
    src.write_text(json.dumps({"version": 1, "templates": {"u1": dandi}, "refs": refs}))
    r = Repository.init(str(tmp_path / "repo"))
    rel = import_file(r, str(src))
    r.commit("import from DANDI")
    r.config.add_remote("origin", str(tmp_path / "zone"))
    push(r)
    pub = json.loads((tmp_path / "zone" / "f" / rel).read_bytes())
    assert pub["templates"] == {"u1": dandi}
    assert pub["refs"]["acquisition/t/3"] == ["{{u1}}", 1240, 80]
    assert pub["refs"]["acquisition/ElectricalSeries/data/.zattrs"]["_EXTERNAL_ARRAY_LINK"] == link


def test_every_pushed_commit_gets_a_permanent_version(tmp_path, nwb):
    import lindivc

    r, rel = imported(tmp_path, nwb)
    first = r.history.head()
    with lindivc.open(r.abspath(rel), "r+") as f:
        f.attrs["note"] = "second"
    second = r.commit("second", all=True)
    zone = tmp_path / "zone"
    r.config.add_remote("origin", str(zone))
    push(r)
    assert sorted(os.listdir(zone / "v")) == sorted([first, second])
    with lindivc.open(r.abspath(rel), "r+") as f:
        f.attrs["note"] = "third"
    third = r.commit("third", all=True)
    push(r)
    assert sorted(os.listdir(zone / "v")) == sorted([first, second, third])
    assert json.loads((zone / "v" / first / rel).read_bytes())["refs"][".zattrs"].get("note") is None
    # a new branch: its new commit gets v/, the commits main published are not written again
    stamps = {c: os.stat(zone / "v" / c / rel).st_mtime_ns for c in (first, second, third)}
    f_stamp = os.stat(zone / "f" / rel).st_mtime_ns
    r.create_branch("b")
    r.checkout("b")
    with lindivc.open(r.abspath(rel), "r+") as f:
        f.attrs["note"] = "on b"
    fourth = r.commit("on b", all=True)
    res = push(r, "origin", "b")
    assert res.urls == {} and res.versions[rel].endswith(f"v/{fourth}/{rel}")
    assert {c: os.stat(zone / "v" / c / rel).st_mtime_ns for c in (first, second, third)} == stamps
    assert (zone / "v" / fourth / rel).exists() and os.stat(zone / "f" / rel).st_mtime_ns == f_stamp


# ------------------------------------------------------------------ errors: nothing published


def _zone_state(zone) -> dict[str, bytes]:
    out = {}
    for d, _, names in os.walk(zone):
        for n in names:
            p = os.path.join(d, n)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, zone)] = fh.read()
    return out


@pytest.mark.parametrize("what", ["missing", "changed"])
def test_push_refuses_a_missing_or_changed_local_file(tmp_path, nwb, what):
    r, rel = imported(tmp_path, nwb)
    zone = tmp_path / "zone"
    r.config.add_remote("origin", str(zone))
    if what == "missing":
        os.unlink(nwb)
    else:
        with open(nwb, "ab") as fh:
            fh.write(b"appended after import")
    before = _zone_state(zone) if zone.exists() else {}
    with pytest.raises(LocalFileUnpublishable) as e:
        push(r)
    assert e.value.path == nwb and rel in e.value.where
    assert (_zone_state(zone) if zone.exists() else {}) == before
    # the same from the command line: one line on stderr, exit 1
    p = subprocess.run([sys.executable, "-m", "lindivc.cli", "push"], cwd=r.root, capture_output=True, text=True)
    assert p.returncode == 1 and p.stdout == ""
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and nwb in lines[0] and ("missing" in lines[0] or "changed" in lines[0])
    assert (_zone_state(zone) if zone.exists() else {}) == before


def test_ranges_are_hashed_once_and_a_later_change_is_refused(tmp_path, nwb, monkeypatch):
    from lindivc import localranges

    r, rel = imported(tmp_path, nwb)
    r.config.add_remote("origin", str(tmp_path / "zone"))
    dry = push(r, dry_run=True)
    assert dry.local_bytes > 0 and dry.local_bytes == dry.chunk_bytes
    assert not (tmp_path / "zone" / "f").exists()
    hashed: list[int] = []
    real = localranges._hash_range
    monkeypatch.setattr(localranges, "_hash_range", lambda *a: hashed.append(a[2]) or real(*a))
    res = push(Repository(r.root))  # a new process would find the records the dry run left
    assert hashed == [] and res.local_bytes == dry.local_bytes
    r.config.add_remote("second", str(tmp_path / "zone2"))
    assert push(Repository(r.root), "second").local_bytes == dry.local_bytes and hashed == []
    os.utime(nwb, ns=(1, 1))  # touched: it may hold other bytes now
    r.config.add_remote("third", str(tmp_path / "zone3"))
    with pytest.raises(LocalFileUnpublishable, match="changed since"):
        push(Repository(r.root), "third")


def test_public_url_is_validated_and_listed(tmp_path, nwb, monkeypatch):
    r, _ = imported(tmp_path, nwb)
    run = CliRunner()
    monkeypatch.chdir(r.root)
    bad = run.invoke(cli, ["remote", "add", "origin", str(tmp_path / "z"), "--public-url", "ftp://x/"])
    assert bad.exit_code == 1 and "invalid public URL" in bad.output
    ok = run.invoke(cli, ["remote", "add", "origin", str(tmp_path / "z"), "--public-url", "https://cdn.example.org/z"])
    assert ok.exit_code == 0, ok.output
    listed = json.loads(run.invoke(cli, ["remote", "list", "--json"]).output)
    assert listed == [{"name": "origin", "url": str(tmp_path / "z"), "public_url": "https://cdn.example.org/z/"}]
    assert "origin\thttps://cdn.example.org/z/ (public)" in run.invoke(cli, ["remote", "-v"]).output
    assert run.invoke(cli, ["remote", "set-url", "origin", "--no-public-url"]).exit_code == 0
    assert "public_url" not in json.loads(run.invoke(cli, ["remote", "list", "--json"]).output)[0]
    assert run.invoke(cli, ["remote", "set-url", "origin"]).exit_code == 2
    assert run.invoke(cli, ["remote", "set-url", "nope", "--public-url", "https://x.org/"]).exit_code == 1


# ------------------------------------------------------------------ what a clone sees


def test_a_clone_reads_the_zones_copy_of_a_local_file_and_keeps_history_unchanged(tmp_path, nwb):
    import lindivc
    from lindivc.fetch import clone

    expected = digests_h5(nwb)
    r, rel = imported(tmp_path, nwb)
    r.config.add_remote("origin", str(tmp_path / "zone"))
    push(r)
    os.unlink(nwb)  # as on a colleague's machine, where the file never was
    c = clone(str(tmp_path / "zone"), str(tmp_path / "clone"))
    assert read_with_lindi(c.abspath(rel), str(tmp_path)) == expected
    working = open(c.abspath(rel), "rb").read()
    assert nwb.encode() not in working
    st = c.status()
    assert st.clean, st
    assert c.canonical_bytes_of(rel) == r.read_at("HEAD", rel)  # the committed file, local paths and all
    # a change in the clone commits as that change only, and pushes to another zone
    with lindivc.open(c.abspath(rel), "r+") as f:
        f.attrs["reviewed_by"] = "colleague"
    c.commit("review", all=True)
    old_lines, new_lines = r.read_at("HEAD", rel).splitlines(), c.read_at("HEAD", rel).splitlines()
    changed = [b for a, b in zip(old_lines, new_lines) if a != b]
    assert len(old_lines) == len(new_lines) and len(changed) == 1 and changed[0].startswith(b'".zattrs": ')
    c.config.add_remote("mine", str(tmp_path / "zone2"))
    res = push(c, "mine")
    assert res.chunks_uploaded >= 2 and res.local_bytes == 0  # copied from the first zone, not from a file
    assert read_with_lindi(res.urls[rel], str(tmp_path)) == expected
    # with --objects, the clone holds the zone's copies itself
    o = clone(str(tmp_path / "zone"), str(tmp_path / "offline"), objects=True)
    assert len(list(o.objects)) >= 2
    assert str(tmp_path / "zone").encode() not in open(o.abspath(rel), "rb").read()
    assert read_with_lindi(o.abspath(rel), str(tmp_path)) == expected
    assert o.status().clean and o.canonical_bytes_of(rel) == r.read_at("HEAD", rel)
    # the pusher, whose file is gone now too, gets working files that read the zone's copy
    r.checkout("HEAD", paths=[r.abspath(rel)])
    assert read_with_lindi(r.abspath(rel), str(tmp_path)) == expected
    assert r.status().clean


def test_use_templates_rules():
    from lindivc import lindijson

    base = "https://h.example.org/zones/a/b/"
    busy, quiet = base + "sha1/aa/bb/cc/" + "a" * 40, base + "sha1/bb/cc/dd/" + "b" * 40
    ext = "https://api.dandiarchive.org/api/assets/x/download/"
    refs = {f"busy/{i}": [busy, i * 10, 10] for i in range(5)}
    refs |= {"quiet/0": [quiet, 0, 10], "ext/0": [ext, 0, 4], "inline/0": "base64:AAAA", ".zattrs": {"a": 1},
             "content/0": ["sha1:" + "c" * 40, 0, 1], "brace/0": ["https://x.org/{odd}", 0, 1]}
    out = lindijson.use_templates({"refs": refs, "version": 1}, [base])
    assert out["templates"] == {"u1": busy, "z0": base}
    assert out["refs"]["busy/3"] == ["{{u1}}", 30, 10]
    assert out["refs"]["quiet/0"] == ["{{z0}}sha1/bb/cc/dd/" + "b" * 40, 0, 10]
    for k in ("ext/0", "inline/0", ".zattrs", "content/0", "brace/0"):
        assert out["refs"][k] == refs[k]
    assert out["version"] == 1 and "templates" not in refs
    capped = lindijson.use_templates({"refs": refs}, [base], max_url_templates=0)
    assert capped["templates"] == {"z0": base} and capped["refs"]["busy/0"][0].startswith("{{z0}}sha1/")
    expanded = dict(out)
    lindijson.expand_templates(expanded)
    assert expanded["refs"] == refs


@pytest.mark.parametrize("what", ["array link", "relative path"])
def test_push_refuses_refs_it_cannot_upload(tmp_path, what):
    r = Repository.init(str(tmp_path / "repo"))
    path = r.abspath("x.lindi.json")
    refs = {".zgroup": {"zarr_format": 2},
            "d/.zarray": {"chunks": [4], "compressor": None, "dtype": "<i4", "fill_value": 0, "filters": None,
                          "order": "C", "shape": [4], "zarr_format": 2}}
    if what == "array link":
        refs["d/.zattrs"] = {"_EXTERNAL_ARRAY_LINK": {"link_type": "hdf5_dataset", "name": "/d",
                                                      "url": str(tmp_path / "s.nwb")}}
    else:
        refs["d/0"] = ["data/s.nwb", 0, 16]
    with open(path, "w") as fh:
        json.dump({"refs": refs}, fh)
    r.add([path])
    r.commit("a file push cannot publish")
    r.config.add_remote("origin", str(tmp_path / "zone"))
    with pytest.raises(LocalFileUnpublishable, match="_EXTERNAL_ARRAY_LINK" if what == "array link" else "relative"):
        push(r)
    assert not (tmp_path / "zone").exists()
