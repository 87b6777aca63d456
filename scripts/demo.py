"""The demo driver (run by scripts/demo): the main job end to end, offline, narrated.

1. Make a realistic NWB recording (electrodes, a few dozen sorted units, an LFP TimeSeries).
2. Index it as a LINDI file and serve both over HTTP on 127.0.0.1 (with Range support): this
   stands in for DANDI, the "remote location" the data lives in.
3. Run examples/add_autocorrelograms.py on that URL, publishing to a local-directory zone that
   is served over HTTP too (as `lindivc serve --dir` does), so the published file has a URL.
4. Show the history lindivc recorded (`log`, `diff`) and a garbage-collection dry run.
5. Open the published file by its URL with plain lindi (no lindivc) and check the new column
   with pynwb; print its Neurosift link and how to serve the zone again to open it.

Any failing step ends the demo with a non-zero exit status.
"""
from __future__ import annotations

import argparse
import gc
import os
import subprocess
import sys
import tempfile
import textwrap
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLE = os.path.join(ROOT, "examples", "add_autocorrelograms.py")
LINDIVC = os.path.join(os.path.dirname(sys.executable), "lindivc")
N_UNITS = 40
DURATION = 300.0  # seconds of recording


class DemoFailed(Exception):
    pass


def say(text: str) -> None:
    print()
    for para in textwrap.dedent(text).strip().split("\n\n"):
        print(textwrap.fill(" ".join(para.split()), width=92))


def step(n: int, title: str) -> None:
    print(f"\n== {n}. {title} ==")


def run(cmd: list[str], cwd: str, show: str | None = None) -> str:
    """Run ``cmd``, echo it as the user would type it and its output; raise DemoFailed on error."""
    print(f"\n$ {show or ' '.join(cmd)}", flush=True)
    p = subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    print(p.stdout.rstrip(), flush=True)
    if p.returncode != 0:
        raise DemoFailed(f"`{show or ' '.join(cmd)}` exited with status {p.returncode}")
    return p.stdout


def make_remote(remote_dir: str) -> str:
    """Write the NWB file into ``remote_dir``; return its path."""
    from lindivc.testdata import make_nwb

    return make_nwb(os.path.join(remote_dir, "session.nwb"), n_units=N_UNITS, duration=DURATION)


def index_as_lindi(nwb_url: str, out_path: str) -> None:
    """Write the LINDI file for the NWB file at ``nwb_url``: its chunks stay byte ranges of that URL."""
    import lindi

    f = lindi.LindiH5pyFile.from_hdf5_file(nwb_url, url=nwb_url)
    try:
        f.write_lindi_file(out_path)
    finally:
        f.close()


def check_published(path: str, nwb_path: str) -> tuple[int, int, int]:
    """Open the published file with plain lindi + pynwb; check the new column against the spike
    times of the original NWB file. Returns (units, bins, pairs)."""
    import h5py
    import lindi
    from pynwb import NWBHDF5IO

    sys.path.insert(0, os.path.dirname(EXAMPLE))
    from add_autocorrelograms import bin_edges, compute

    f = lindi.LindiH5pyFile.from_lindi_file(path)
    with NWBHDF5IO(file=f, mode="r") as io:
        units = io.read().units
        if units is None or "autocorrelogram" not in units.colnames:
            raise DemoFailed(f"{path}: pynwb sees no units column 'autocorrelogram'")
        col = units["autocorrelogram"]
        acg = np.asarray(col.data[:])
        n_spikes = sum(len(units.spike_times_index[i]) for i in range(len(units)))
        description = col.description
    with h5py.File(nwb_path, "r") as h:  # the original, read without lindi or lindivc
        flat, ends = h["units/spike_times"][:], h["units/spike_times_index"][:]
    expected = compute(np.split(flat, ends[:-1]), bin_edges())
    if acg.shape != (N_UNITS, 100) or not np.issubdtype(acg.dtype, np.integer):
        raise DemoFailed(f"autocorrelogram column has shape {acg.shape} and dtype {acg.dtype}")
    if not np.array_equal(acg, expected):
        raise DemoFailed("autocorrelogram column differs from the spike times of the original file")
    if not np.array_equal(acg, acg[:, ::-1]):
        raise DemoFailed("autocorrelograms are not symmetric around zero lag")
    if "1 ms" not in description:
        raise DemoFailed(f"column description does not state the binning: {description!r}")
    print(f"   pynwb reads units/autocorrelogram: {acg.shape[0]} units x {acg.shape[1]} bins, "
          f"dtype {acg.dtype}; {n_spikes} spikes read through the original file's URL")
    return acg.shape[0], acg.shape[1], int(acg.sum())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="lindivc demo: add autocorrelograms to an NWB file and publish it.")
    ap.add_argument("--workdir", help="directory for the demo's files (default: a fresh temporary directory)")
    args = ap.parse_args(argv)
    t0 = time.monotonic()
    work = os.path.abspath(args.workdir) if args.workdir else tempfile.mkdtemp(prefix="lindivc-demo-")
    if os.path.exists(os.path.join(work, "repo")) or os.path.exists(os.path.join(work, "zone")):
        raise DemoFailed(f"{work} already holds a demo; give an empty --workdir")
    remote_dir, repo_dir, zone_dir = (os.path.join(work, d) for d in ("remote", "repo", "zone"))
    os.makedirs(remote_dir, exist_ok=True)
    os.environ.setdefault("LINDIVC_AUTHOR", "Demo Scientist <scientist@example.org>")

    from lindivc.progress import human_bytes
    from lindivc.publish import neurosift_url
    from lindivc.rangeserver import serve_directory

    say(f"""
        This demo adds a derived analysis, spike-train autocorrelograms, to an NWB file that lives
        somewhere else, without copying that file; it keeps the change as a version with lindivc and
        publishes it. Everything happens in {work}.""")

    step(1, "A recording to work on")
    nwb_path = make_remote(remote_dir)
    say(f"""
        Made {os.path.basename(nwb_path)} ({human_bytes(os.path.getsize(nwb_path))}): a {DURATION:.0f} s
        extracellular recording with a 32-channel probe, an LFP-like TimeSeries and {N_UNITS} sorted
        units with their spike times. It stands in for a file on DANDI.""")

    os.makedirs(zone_dir)
    with serve_directory(remote_dir) as srv, serve_directory(zone_dir) as zone_srv:
        step(2, "Putting it at a remote location")
        nwb_url = f"{srv.url}/session.nwb"
        lindi_url = f"{srv.url}/session.nwb.lindi.json"
        index_as_lindi(nwb_url, os.path.join(remote_dir, "session.nwb.lindi.json"))
        say(f"""
            An HTTP server on this machine (answering byte-range requests, as DANDI and S3 do) now
            serves the NWB file at {nwb_url} and its LINDI index at {lindi_url}. The LINDI file is
            small JSON: the metadata, plus for every block of array data the URL and byte range where
            it sits in the NWB file.""")

        step(3, "Running the example: load, compute, add, publish")
        say(f"""
            The zone is a directory, {zone_dir}, that a second server (what `lindivc serve --dir`
            runs) makes readable at {zone_srv.url}; `--public-url` tells lindivc so, and the published
            file then names its data by that URL, for a browser or another machine.""")
        out = run([sys.executable, EXAMPLE, lindi_url, "--repo", repo_dir, "--zone", zone_dir,
                   "--public-url", zone_srv.url], cwd=work,
                  show=f"python examples/add_autocorrelograms.py {lindi_url} --repo {repo_dir} --zone {zone_dir} "
                       f"--public-url {zone_srv.url}")
        published = next((ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("Published file:")), None)
        if not published:
            raise DemoFailed("the example did not print the published file")

        step(4, "What lindivc recorded")
        say("""
            The repository has two versions: the file as imported, and the file with the new
            column. `log` lists them; `log --stat -n 1` and `diff` say, in terms of the NWB file's
            groups and arrays, what the second one changed.""")
        run([LINDIVC, "log", "--oneline"], repo_dir, "lindivc log --oneline")
        run([LINDIVC, "log", "--stat", "-n", "1"], repo_dir, "lindivc log --stat -n 1")
        run([LINDIVC, "diff", "HEAD~1", "HEAD"], repo_dir, "lindivc diff HEAD~1 HEAD")
        run([LINDIVC, "remote", "list"], repo_dir, "lindivc remote list")
        say("""
            A garbage-collection dry run, here and in the zone: it lists what could be deleted
            and why the rest is kept, and deletes nothing.""")
        for extra in ([], ["--remote", "origin"]):
            cmd = ["gc", "--dry-run", *extra]
            run([LINDIVC, *cmd], repo_dir, "lindivc " + " ".join(cmd))

        step(5, "Reading the published file without lindivc")
        n_units, n_bins, pairs = check_published(published, nwb_path)
        gc.collect()  # drop pynwb's objects now, or hdmf closes their closed file again at exit
        say(f"""
            Plain lindi opened {published} and pynwb found the new column; its values equal
            autocorrelograms recomputed from the original file's spike times.""")
        ports = zone_srv.url.rsplit(":", 1)[1], srv.url.rsplit(":", 1)[1]

    elapsed = time.monotonic() - t0
    zone_bytes = sum(os.path.getsize(os.path.join(d, n)) for d, _, ns in os.walk(zone_dir) for n in ns)
    say(f"""
        Done in {elapsed:.0f} s. In words: we loaded a remote NWB file through its LINDI index,
        computed an autocorrelogram (lags within +-50 ms, 1 ms bins) for each of its {n_units} units
        ({pairs} spike pairs in all), added them to the Units table with pynwb as a {n_units} x
        {n_bins} column, recorded that as a new version with a message naming the source, and
        published it to a zone. The zone holds {human_bytes(zone_bytes)}: the published LINDI file
        (with the new column inside it), a permanent copy of each version, and the history; the {human_bytes(os.path.getsize(nwb_path))} of original data
        stayed where it was and is read from there on demand.""")
    print(f"\nRepository: {repo_dir}\nZone:       {zone_dir}\nPublished:  {published}")
    print(f"Neurosift:  {neurosift_url(published)}")
    print(f"            (the demo's servers have stopped; to open it, serve the zone and the recording again:\n"
          f"             `lindivc serve --dir {zone_dir} --port {ports[0]}` and\n"
          f"             `lindivc serve --dir {remote_dir} --port {ports[1]}`)")
    print("demo: OK")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except DemoFailed as e:
        print(f"\ndemo FAILED: {e}", file=sys.stderr)
        sys.exit(1)
