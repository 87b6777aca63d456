"""A real headless Chromium reads a published LINDI file and one chunk byte range across origins,
from the gateway and from `lindivc serve --dir`: proof that a browser app (Neurosift) can.

Needs Debian's `chromium` and the `playwright` Python package (never playwright's own browser
downloads); skipped with the reason otherwise. See README, "Optional: the browser test".
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil

import pytest

from lindivc.layout import object_key
from lindivc.rangeserver import serve_directory
from lindivc.zones.gateway import GatewayZone
from lindivc.zones.local import LocalZone

CHROMIUM = next((p for p in (os.environ.get("LINDIVC_CHROMIUM"), shutil.which("chromium"), shutil.which("chromium-browser"))
                 if p and os.path.exists(p)), None)
sync_api = pytest.importorskip("playwright.sync_api", reason="browser test skipped: the playwright package is "
                               "not installed (see README, 'Optional: the browser test')")
if not CHROMIUM:
    pytest.skip("browser test skipped: no chromium executable (apt-get install chromium)", allow_module_level=True)

# Runs in the page: fetch the LINDI file, then the byte range its ref names (a Range request from
# another origin: CORS preflight, 206, Content-Range exposed).
READ_IN_PAGE = """async ([fileUrl, key]) => {
  const r = await fetch(fileUrl);
  if (!r.ok) return {error: 'file ' + r.status};
  const rfs = await r.json();
  let [url, offset, size] = rfs.refs[key];
  for (const [name, value] of Object.entries(rfs.templates || {})) url = url.replace('{{' + name + '}}', value);
  const c = await fetch(url, {headers: {Range: `bytes=${offset}-${offset + size - 1}`}});
  const bytes = new Uint8Array(await c.arrayBuffer());
  let bin = '';
  for (const b of bytes) bin += String.fromCharCode(b);
  return {status: c.status, contentRange: c.headers.get('Content-Range'), b64: btoa(bin), origin: location.origin};
}"""


def publish(put, base: str) -> tuple[bytes, str]:
    """Put a pack-like object and a LINDI file whose chunk ref points into it; (chunk, file key)."""
    chunk = os.urandom(3000)
    pack = os.urandom(100) + chunk + os.urandom(50)
    put(object_key(hashlib.sha1(pack).hexdigest()), pack)
    rfs = {"version": 1, "templates": {"z": base}, "refs": {
        ".zgroup": {"zarr_format": 2},
        "d/.zarray": {"chunks": [3000], "compressor": None, "dtype": "|u1", "fill_value": 0, "filters": None,
                      "order": "C", "shape": [3000], "zarr_format": 2},
        "d/0": ["{{z}}/" + object_key(hashlib.sha1(pack).hexdigest()), 100, len(chunk)]}}
    put("f/session.lindi.json", json.dumps(rfs).encode())
    return chunk, "f/session.lindi.json"


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture
def page_origin(tmp_path, browser):
    """A page served from its own origin (a plain directory server), opened in Chromium."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("<!doctype html><title>reader</title><p>reader</p>")
    with serve_directory(str(site)) as srv:
        page = browser.new_page()
        page.goto(srv.url + "/index.html")
        yield page, srv.url
        page.close()


def read_in_browser(page, file_url: str) -> dict:
    got = page.evaluate(READ_IN_PAGE, [file_url, "d/0"])
    assert "error" not in got, got
    return got


def test_browser_reads_a_published_file_and_a_chunk_from_the_gateway(gateway, page_origin):
    page, origin = page_origin
    base = gateway + "/zones/alice/x"
    with GatewayZone(base, "tok-alice") as z:
        chunk, key = publish(z.put, base)
    got = read_in_browser(page, f"{base}/{key}")
    assert got["origin"] == origin != gateway
    assert got["status"] == 206 and got["contentRange"].startswith("bytes 100-3099/")
    assert base64.b64decode(got["b64"]) == chunk


def test_browser_reads_a_published_file_and_a_chunk_from_serve_dir(tmp_path, page_origin):
    page, origin = page_origin
    (tmp_path / "zone").mkdir()
    z = LocalZone(str(tmp_path / "zone"))
    with serve_directory(str(tmp_path / "zone")) as srv:
        chunk, key = publish(z.put, srv.url)
        got = read_in_browser(page, f"{srv.url}/{key}")
    assert got["origin"] == origin != srv.url
    assert got["status"] == 206 and got["contentRange"].startswith("bytes 100-3099/")
    assert base64.b64decode(got["b64"]) == chunk


def test_browser_reads_a_pushed_file_with_templates_from_serve_dir(tmp_path, page_origin):
    """What `lindivc push` publishes (templates under the zone's public URL, chunks that were byte
    ranges of a local NWB file) is what a page reads: the file, then one chunk by Range."""
    from lindivc import lindijson
    from lindivc.importer import import_file
    from lindivc.push import push
    from lindivc.repo import Repository
    from lindivc.testdata import make_nwb

    page, origin = page_origin
    nwb = make_nwb(str(tmp_path / "session.nwb"), n_units=4, duration=20, n_channels=4, lfp_seconds=2)
    r = Repository.init(str(tmp_path / "repo"))
    rel = import_file(r, nwb)
    r.commit("import")
    key, path, off, size = next(lindijson.iter_local_refs(r.read_at("HEAD", rel), keys=True))
    with open(path, "rb") as fh:
        fh.seek(off)
        expected = fh.read(size)
    (tmp_path / "zone").mkdir()
    with serve_directory(str(tmp_path / "zone")) as srv:
        r.config.add_remote("origin", str(tmp_path / "zone"), public_url=srv.url)
        url = push(r).urls[rel]
        got = page.evaluate(READ_IN_PAGE, [url, key])
        assert "error" not in got, got
    assert got["status"] == 206 and base64.b64decode(got["b64"]) == expected
    assert got["origin"] == origin != srv.url
