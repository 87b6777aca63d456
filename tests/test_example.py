"""examples/add_autocorrelograms.py end to end: a generated NWB file served over HTTP with Range
support, the example run as a user runs it, and the published file read back with plain lindi
and pynwb by URL, compared with autocorrelograms this test computes its own way."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLE = os.path.join(ROOT, "examples", "add_autocorrelograms.py")
N_UNITS = 12


def reference_autocorrelogram(t: np.ndarray) -> np.ndarray:
    """Every ordered pair of distinct spikes (i, j): lag t[j] - t[i], binned -50..+50 ms by 1 ms."""
    lags = np.subtract.outer(t, t)  # lags[j, i] = t[j] - t[i]
    off_diagonal = ~np.eye(len(t), dtype=bool)
    counts, _ = np.histogram(lags[off_diagonal], bins=np.linspace(-0.05, 0.05, 101))
    return counts


@pytest.fixture(scope="module")
def remote(tmp_path_factory):
    """A directory served over HTTP holding session.nwb and its LINDI index (refs by URL)."""
    import lindi

    from lindivc.rangeserver import serve_directory
    from lindivc.testdata import make_nwb

    d = tmp_path_factory.mktemp("remote")
    nwb_path = make_nwb(str(d / "session.nwb"), n_units=N_UNITS, duration=60.0, n_channels=8, lfp_seconds=2.0, seed=3)
    with serve_directory(str(d)) as srv:
        url = f"{srv.url}/session.nwb"
        f = lindi.LindiH5pyFile.from_hdf5_file(url, url=url)
        f.write_lindi_file(str(d / "session.nwb.lindi.json"))
        f.close()
        yield srv.url, nwb_path


def run_example(*args: str, cwd: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, **(env_extra or {}))
    return subprocess.run([sys.executable, EXAMPLE, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


def test_example_publishes_autocorrelograms_that_pynwb_reads_by_url(remote, tmp_path):
    import h5py
    import lindi
    from pynwb import NWBHDF5IO

    from lindivc.rangeserver import serve_directory

    base, nwb_path = remote
    source = f"{base}/session.nwb.lindi.json"
    (tmp_path / "zone").mkdir()
    zone_srv = serve_directory(str(tmp_path / "zone"))  # the zone over HTTP: its files open by URL
    p = run_example(source, "--repo", "repo", "--zone", "zone", "--public-url", zone_srv.url,
                    "--path", "rec/session.nwb.lindi.json", cwd=str(tmp_path))
    assert p.returncode == 0, p.stderr + p.stdout
    published = f"{zone_srv.url}/f/rec/session.nwb.lindi.json"
    assert f"Published file: {published}" in p.stdout
    assert f"Neurosift:      https://neurosift.app/nwb?url={published}" in p.stdout

    with h5py.File(nwb_path, "r") as h:  # the original spike times, without lindi
        flat, ends = h["units/spike_times"][:], h["units/spike_times_index"][:]
    trains = np.split(flat, ends[:-1])
    expected = np.stack([reference_autocorrelogram(t) for t in trains])
    assert expected.sum() > 0

    with zone_srv:
        f = lindi.LindiH5pyFile.from_lindi_file(f"{zone_srv.url}/f/rec/session.nwb.lindi.json")
        with NWBHDF5IO(file=f, mode="r") as io:
            nwb = io.read()
            assert "autocorrelogram" in nwb.units.colnames
            col = nwb.units["autocorrelogram"]
            got = np.asarray(col.data[:])
            assert "1 ms" in col.description and "50 ms" in col.description
            assert len(nwb.units.spike_times_index[0]) == len(trains[0])  # original data still read
        f = lindi.LindiH5pyFile.from_lindi_file(f"{zone_srv.url}/f/rec/session.nwb.lindi.json")
        edges = f["units/autocorrelogram"].attrs["bin_edges"]
        f.close()
    assert got.shape == (N_UNITS, 100)
    assert np.issubdtype(got.dtype, np.integer)
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_allclose(edges, np.linspace(-0.05, 0.05, 101), rtol=0, atol=1e-12)

    from lindivc.log import log
    from lindivc.repo import Repository

    with Repository.find(str(tmp_path / "repo")) as repo:
        entries = log(repo)
        assert len(entries) == 2
        assert source in entries[0].commit.message and "autocorrelogram" in entries[0].commit.message
        assert repo.config.remotes() == {"origin": str(tmp_path / "zone")}


def test_example_run_again_adds_nothing_and_pushes_nothing(remote, tmp_path):
    from lindivc.log import log
    from lindivc.repo import Repository

    base, _ = remote
    source = f"{base}/session.nwb.lindi.json"
    first = run_example(source, "--repo", "r", "--zone", "z", cwd=str(tmp_path))
    assert first.returncode == 0, first.stderr + first.stdout
    again = run_example(source, "--repo", "r", "--zone", "z", cwd=str(tmp_path))
    assert again.returncode == 0, again.stderr + again.stdout
    assert "already has units/autocorrelogram" in again.stdout
    assert "the zone already has this version" in again.stdout
    # a local zone without a public URL: no Neurosift link, but how to get one
    assert "Neurosift:" not in again.stdout and "--public-url" in again.stdout
    with Repository.find(str(tmp_path / "r")) as repo:
        assert len(log(repo)) == 2
        assert repo.status().clean


def test_example_reports_a_missing_source_in_one_line(tmp_path):
    p = run_example(str(tmp_path / "missing.nwb.lindi.json"), "--repo", "r", "--zone", "z", cwd=str(tmp_path))
    assert p.returncode == 1
    assert p.stderr.strip().splitlines() == [f"error: no such file: {tmp_path / 'missing.nwb.lindi.json'}"]
