#!/usr/bin/env python3
"""Add per-unit spike-train autocorrelograms to an NWB file, keep the version, publish it.

    python examples/add_autocorrelograms.py [URL_OR_PATH] [--zone ZONE] [--public-url URL] [--path NAME] [--repo DIR]

URL_OR_PATH is a LINDI file (.lindi.json / .zarr.json), by URL or local path. The default is an
NWB file from DANDI as indexed by the LINDI service. Nothing of the original data is copied:
the LINDI file keeps pointing at it, and only the new column is stored and published.

The four steps, one function each:

1. load     Bring the LINDI file into a lindivc repository (--repo, created if needed) and
            record the untouched original as the first commit.
2. compute  Autocorrelogram of every unit of the Units table, from its spike times.
3. add      Write them into the working file as a new `units` column with pynwb, and commit
            with a message that names the source.
4. publish  Push to a zone (--zone: a local directory, s3://bucket/prefix, or a gateway URL)
            and print the URL of the published file and, when that is an http(s) URL, a
            Neurosift link to it. A local directory gets one with --public-url, the URL at which
            the directory is served (e.g. by `lindivc serve --dir ZONE`).

Run it again with the same --repo and it continues from there: the column is not added twice,
and a zone that already has the version receives nothing.

The autocorrelogram of a unit counts, for every ordered pair of its spikes (i, j) with i != j,
the lag t[j] - t[i] when it falls within +-50 ms. Lags are binned in 1 ms bins with edges
-50, -49, ..., +50 ms (100 bins); a bin holds lags in [left, right), the last also +50 ms
exactly. The pair of a spike with itself (lag 0) is left out, so a refractory period shows as a
dip in the two central bins. Counts are integers, and the histogram is symmetric around zero.

In the file: `units/autocorrelogram`, a 2-D integer column (one row of 100 counts per unit), whose
description states the binning and whose `bin_edges` attribute holds the 101 edges in seconds.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

import lindivc
from lindivc.errors import LindivcError
from lindivc.importer import import_file
from lindivc.publish import is_http, key_url, neurosift_url, public_base
from lindivc.repo import Repository
from lindivc.push import push

# An NWB file on DANDI (dandiset 000409) as a LINDI file, the example of lindi's README.
DEFAULT_SOURCE = ("https://lindi.neurosift.org/dandi/dandisets/000409/assets/"
                  "c04f6b30-82bf-40e1-9210-34f0bcd8be24/nwb.lindi.json")

WINDOW = 0.050  # seconds either side of zero lag
BIN = 0.001  # seconds
COLUMN = "autocorrelogram"


def bin_edges(window: float = WINDOW, bin_size: float = BIN) -> np.ndarray:
    """The 2*window/bin_size + 1 bin edges, in seconds, symmetric around zero."""
    n = int(round(window / bin_size))
    return np.arange(-n, n + 1) * bin_size


def column_description(edges: np.ndarray) -> str:
    """What the column holds, in words a reader of the file finds next to the data."""
    ms = edges * 1000
    return (f"Spike-train autocorrelogram of each unit: counts of lags t[j]-t[i] between pairs of "
            f"its spikes (i != j; the zero-lag self-pair is excluded) in {len(edges) - 1} bins of "
            f"{ms[1] - ms[0]:g} ms from {ms[0]:g} ms to {ms[-1]:+g} ms (bin k covers "
            f"[{ms[0]:g} + k, {ms[0]:g} + k + {ms[1] - ms[0]:g}) ms; the last bin includes {ms[-1]:+g} ms). "
            f"The bin edges in seconds are in this dataset's 'bin_edges' attribute. "
            f"Computed by lindivc examples/add_autocorrelograms.py.")


# ------------------------------------------------------------------ 1. load


def load(source: str, repo_dir: str, path: str | None = None) -> tuple[Repository, str]:
    """Import ``source`` into the repository at ``repo_dir`` (created if needed) and commit it.

    Returns the repository and the working file's path inside it. If the repository already
    tracks a file of that name (an earlier run), that file is used as it is.
    """
    if os.path.isdir(os.path.join(repo_dir, ".lindivc")):
        repo = Repository.find(repo_dir)
    else:
        repo = Repository.init(repo_dir)
    name = path or source.split("?")[0].rstrip("/").rsplit("/", 1)[-1]
    if name in repo.tracked():
        return repo, name
    rel = import_file(repo, source, as_path=path)
    repo.commit(f"Import {rel} from {source}")
    return repo, rel


def read_spike_times(repo: Repository, rel: str) -> list[np.ndarray]:
    """Each unit's spike times (seconds), read with pynwb from the working file."""
    from pynwb import NWBHDF5IO

    with lindivc.open(repo.abspath(rel), "r") as f:
        with NWBHDF5IO(file=f, mode="r") as io:
            nwb = io.read()
            if nwb.units is None or "spike_times" not in nwb.units.colnames:
                raise SystemExit(f"{rel} has no Units table with spike_times; nothing to do")
            # Two reads of the flat arrays, rather than one read per unit over the network.
            flat = np.asarray(nwb.units.spike_times.data[:], dtype=float)
            ends = np.asarray(nwb.units.spike_times_index.data[:], dtype=np.int64)
    return np.split(flat, ends[:-1])


# ------------------------------------------------------------------ 2. compute


def autocorrelogram(spike_times: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts of spike-pair lags of one unit in the bins ``edges`` (seconds), as int64.

    Pairs are formed k spikes apart (k = 1, 2, ...) in the sorted train until no pair is within
    the window; each positive lag also counts as its negative (the pair taken the other way).
    """
    t = np.sort(np.asarray(spike_times, dtype=float))
    window = max(abs(edges[0]), abs(edges[-1]))
    lags = []
    for k in range(1, len(t)):
        d = t[k:] - t[:-k]
        close = d[d <= window]
        if close.size == 0:
            break  # later spikes are further away still: the train is sorted
        lags.append(close)
    lags = np.concatenate(lags) if lags else np.zeros(0)
    counts, _ = np.histogram(np.concatenate([-lags, lags]), bins=edges)
    return counts.astype(np.int64)


def compute(trains: list[np.ndarray], edges: np.ndarray) -> np.ndarray:
    """One autocorrelogram per unit: an (n_units, n_bins) int64 array."""
    return np.stack([autocorrelogram(t, edges) for t in trains]) if trains else np.zeros((0, len(edges) - 1), np.int64)


# ------------------------------------------------------------------ 3. add


def add(repo: Repository, rel: str, acgs: np.ndarray, edges: np.ndarray, source: str) -> str | None:
    """Add ``acgs`` as the ``units`` column 'autocorrelogram' and commit; return the commit sha,
    or None if the file has that column already (an earlier run added it)."""
    from pynwb import NWBHDF5IO

    # lindivc.open in "r+" gives an h5py-like file; pynwb writes the new column through it.
    f = lindivc.open(repo.abspath(rel), "r+")
    with NWBHDF5IO(file=f, mode="a") as io:  # closes f, which writes the working file back
        nwb = io.read()
        if COLUMN in nwb.units.colnames:
            return None
        nwb.units.add_column(name=COLUMN, description=column_description(edges), data=list(acgs))
        io.write(nwb)
    # The bin edges as an attribute of the new dataset (pynwb leaves extra attributes alone).
    with lindivc.open(repo.abspath(rel), "r+") as f:
        f[f"units/{COLUMN}"].attrs["bin_edges"] = edges
        f[f"units/{COLUMN}"].attrs["bin_edges_unit"] = "seconds"
    message = (f"Add per-unit autocorrelograms to {rel}\n\n"
               f"units/{COLUMN}: {len(acgs)} units x {acgs.shape[1]} bins, lags -50..+50 ms in 1 ms bins,\n"
               f"zero-lag self-pairs excluded; computed from units/spike_times.\n"
               f"Source: {source}\n")
    return repo.commit(message, all=True)


# ------------------------------------------------------------------ 4. publish


def publish(repo: Repository, rel: str, zone: str, public_url: str | None = None, remote: str = "origin") -> str:
    """Push the current branch to ``zone`` (added as remote ``remote`` if new, with
    ``public_url`` as the URL its files are read at); return the URL (or, for a local zone
    without a public URL, the absolute path) of the published file."""
    if "://" not in zone:
        zone = os.path.abspath(zone)
    from lindivc.catalog import zone_for
    from lindivc.layout import file_key, parse_zone_url, version_key
    from lindivc.remotes import add_remote, set_remote_url

    remotes = repo.config.remotes()
    if remote not in remotes:
        add_remote(repo, remote, zone, public_url)
    elif remotes[remote] != parse_zone_url(zone).url:
        raise SystemExit(f"remote {remote!r} of {repo.root} is {remotes[remote]}, not {zone}; "
                         f"use --repo with a fresh directory or the same zone")
    elif public_url is not None:
        set_remote_url(repo, remote, public_url=public_url)
    res = push(repo, remote)
    if res.up_to_date:
        print(f"   the zone already has this version ({res.new[:10]})")
    else:
        print(f"   pushed {res.commits} commit(s); uploaded {res.chunks_uploaded} new chunk(s), "
              f"{res.chunk_bytes} bytes (the original data stays where it was)")
    if rel in res.urls:
        return res.urls[rel]
    # Already up to date: the latest file; a branch other than the zone's default: its version.
    key = file_key(rel) if res.up_to_date else version_key(res.new, rel)
    return key_url(public_base(repo, remote, zone_for(repo.config.remote_url(remote))), key)


# ------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("source", nargs="?", default=DEFAULT_SOURCE, metavar="URL_OR_PATH",
                    help="LINDI file to augment (default: a DANDI NWB file indexed by the LINDI service)")
    ap.add_argument("--zone", default="autocorrelograms-zone",
                    help="where to publish: a local directory, s3://bucket/prefix or a gateway URL "
                         "(default: ./autocorrelograms-zone)")
    ap.add_argument("--public-url", default=None, metavar="URL",
                    help="the http(s) URL at which the zone is read (a served local directory, a CDN in "
                         "front of a bucket); default: the zone's own URL")
    ap.add_argument("--path", default=None, metavar="NAME",
                    help="name of the file in the repository (default: the source's file name)")
    ap.add_argument("--repo", default="autocorrelograms", metavar="DIR",
                    help="the lindivc repository to work in, created if needed (default: ./autocorrelograms)")
    args = ap.parse_args(argv)

    try:
        print(f"1. Loading {args.source}")
        repo, rel = load(args.source, args.repo, args.path)
        print(f"   as {rel} in the repository {repo.root}")

        print("2. Computing autocorrelograms (+-50 ms, 1 ms bins, self-pairs excluded)")
        edges = bin_edges()
        trains = read_spike_times(repo, rel)
        acgs = compute(trains, edges)
        print(f"   {len(trains)} units, {sum(len(t) for t in trains)} spikes, "
              f"{int(acgs.sum())} spike pairs within +-50 ms")

        print(f"3. Adding units/{COLUMN} with pynwb and committing")
        sha = add(repo, rel, acgs, edges, args.source)
        print(f"   commit {sha[:10]}" if sha else f"   {rel} already has units/{COLUMN} (from an earlier run)")

        print(f"4. Publishing to {args.zone}")
        url = publish(repo, rel, args.zone, args.public_url)
    except LindivcError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"\nPublished file: {url}")
    if is_http(url):
        print(f"Neurosift:      {neurosift_url(url)}")
    else:
        print("  (a local zone: plain lindi opens the path on this machine. For a browser or another machine, "
              f"serve the zone over http(s), e.g. `lindivc serve --dir {args.zone} --port 8000`, and run this "
              "again with --public-url http://HOST:8000/)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
