"""`lindivc serve --dir`: a local zone served read-only over HTTP (Range, CORS, gzip), and local
zones writing files with the umask so that such a server can read them."""
from __future__ import annotations

import hashlib
import json
import os
import socket
import stat
import subprocess
import sys
import time

import numpy as np
import pytest
import requests
from click.testing import CliRunner

from lindivc.cli import cli
from lindivc.layout import object_key
from lindivc.rangeserver import serve_directory
from lindivc.zones.local import LocalZone


def modes(root: str) -> tuple[set[int], set[int]]:
    """(file modes, directory modes) under ``root``, bookkeeping directory excluded."""
    files, dirs = set(), set()
    for d, dn, fn in os.walk(root):
        dn[:] = [x for x in dn if not x.startswith(".")]
        if d != root:
            dirs.add(stat.S_IMODE(os.stat(d).st_mode))
        files |= {stat.S_IMODE(os.stat(os.path.join(d, f)).st_mode) for f in fn}
    return files, dirs


@pytest.mark.parametrize("umask, file_mode, dir_mode", [(0o022, 0o644, 0o755), (0o027, 0o640, 0o750)])
def test_local_zone_files_follow_the_umask(tmp_path, umask, file_mode, dir_mode):
    old = os.umask(umask)
    try:
        z = LocalZone(str(tmp_path / "zone"))
        z.put(object_key("a" * 40), b"x")
        z.put("f/sub/a.lindi.json", b"{}")
        z.put("git/refs/heads/main", b"1" * 40, if_none_match=True)
        src = tmp_path / "src"
        src.write_bytes(b"pack")
        z.put_file(object_key(hashlib.sha1(b"pack").hexdigest()), str(src))
    finally:
        os.umask(old)
    files, dirs = modes(str(tmp_path / "zone"))
    assert files == {file_mode} and dirs == {dir_mode}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_dir_command_serves_a_zone_that_lindi_reads(tmp_path):
    import lindi

    z = LocalZone(str(tmp_path / "zone"))
    data = np.arange(1000, dtype="<i4")
    chunk = data.tobytes()
    sha = hashlib.sha1(chunk).hexdigest()
    z.put(object_key(sha), b"head" + chunk)  # a pack-like object: the chunk at offset 4
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    rfs = {"version": 1, "templates": {"z": base}, "refs": {
        ".zgroup": {"zarr_format": 2},
        "d/.zarray": {"chunks": [1000], "compressor": None, "dtype": "<i4", "fill_value": 0, "filters": None,
                      "order": "C", "shape": [1000], "zarr_format": 2},
        "d/.zattrs": {"_ARRAY_DIMENSIONS": ["x"]},
        "d/0": ["{{z}}/" + object_key(sha), 4, len(chunk)]}}
    z.put("f/a.lindi.json", json.dumps(rfs).encode())
    proc = subprocess.Popen([sys.executable, "-m", "lindivc.cli", "serve", "--dir", str(tmp_path / "zone"),
                             "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 20
        while True:
            try:
                requests.get(base + "/f/a.lindi.json", timeout=1)
                break
            except requests.ConnectionError:
                assert time.time() < deadline and proc.poll() is None, "lindivc serve --dir did not start"
                time.sleep(0.1)
        f = lindi.LindiH5pyFile.from_lindi_file(base + "/f/a.lindi.json")
        np.testing.assert_array_equal(f["d"][:], data)
        r = requests.get(base + "/" + object_key(sha), headers={"Range": "bytes=4-11", "Origin": "https://neurosift.app"})
        assert r.status_code == 206 and r.content == chunk[:8]
        assert r.headers["Access-Control-Allow-Origin"] == "*"
        assert "content-range" in r.headers["Access-Control-Expose-Headers"].lower()
        pre = requests.options(base + "/f/a.lindi.json", headers={
            "Origin": "https://neurosift.app", "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "range"})
        assert pre.status_code == 200 and "range" in pre.headers["Access-Control-Allow-Headers"].lower()
        assert requests.put(base + "/f/a.lindi.json", data=b"{}").status_code in (404, 405)
        assert requests.get(base + "/.lindivc-zone/lock").status_code == 404
        assert requests.get(base + "/f/a.lindi.json", headers={"Range": "bytes=" + "9" * 5000 + "-"}).status_code == 416
    finally:
        proc.terminate()
        proc.communicate(timeout=10)


def test_serve_needs_exactly_one_of_bucket_and_dir(tmp_path):
    for args in ([], ["--bucket", "b", "--dir", str(tmp_path)]):
        res = CliRunner().invoke(cli, ["serve", *args])
        assert res.exit_code == 2 and "exactly one of --bucket" in res.output and "Traceback" not in res.output


def test_served_json_is_gzipped_without_range(tmp_path):
    z = LocalZone(str(tmp_path / "zone"))
    doc = json.dumps({"refs": {f"k{i}": ["http://h/x", i, 1] for i in range(300)}}).encode()
    z.put("f/a.lindi.json", doc)
    with serve_directory(str(tmp_path / "zone")) as srv:
        r = requests.get(srv.url + "/f/a.lindi.json", headers={"Accept-Encoding": "gzip"})
        assert r.headers["Content-Encoding"] == "gzip" and r.content == doc
        r = requests.get(srv.url + "/f/a.lindi.json", headers={"Accept-Encoding": "gzip", "Range": "bytes=0-4"})
        assert r.status_code == 206 and "Content-Encoding" not in r.headers and r.content == doc[:5]
