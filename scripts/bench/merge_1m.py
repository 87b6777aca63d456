#!/usr/bin/env python
"""Benchmark: three-way merge of a LINDI file with 1,000,000 chunk refs where each side added a
Units column and changed one attribute (issue 12). Targets: <= 2x the time of `lindivc status`
on the same file, <= 1.5 GB peak RSS.

The file is many_refs.py's (four arrays of 250,000 chunk refs) plus a small NWB-style Units
table (``colnames``, ``id``, ``spike_times``). It is committed once; branch ``b`` then adds a
``quality`` column and changes one series' description, ``main`` adds an ``acg`` column and
changes another's, each edit made by a tool that knows nothing of lindivc (orjson load, change,
dump) and committed with ``lindivc commit -a``.

Timed, as whole subprocesses (imports included), best of two each:
- ``lindivc status`` with ``b``'s edit not yet committed (the floor: what the same file costs
  to look at);
- ``lindivc merge b`` on ``main``: the three versions read from history, merged
  (lindivc.filemerge), the merged blob and the merge commit stored, the merged working file
  written (rendered, as checkout writes it), the index and the branch updated. Between runs
  ``main`` is put back (``git update-ref`` and ``lindivc checkout -f main``, not timed).

Where the merge's time goes is printed too, from one run of the same steps as library calls
(informational).

    .venv/bin/python scripts/bench/merge_1m.py [--scale 0.1]
"""
from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import Report, Workdir, fmt_bytes, lindivc_cmd, parser, run, warm_up  # noqa: E402

import many_refs  # noqa: E402

NAME = "big.lindi.json"
B64 = "base64:AAAAAAAAAAA="  # one inline chunk: eight zero bytes

# the merge's steps as library calls, timed one by one (where the time of `lindivc merge` goes)
MERGE = r"""
import json, sys, time
t0 = time.perf_counter()
from dulwich.graph import find_merge_base
from lindivc import lindijson
from lindivc.filemerge import merge_files
from lindivc.repo import Repository
root, name, ours, theirs, out = sys.argv[1:6]  # out "-": stop once the merged blob is stored
t = {}
with Repository(root) as repo:
    h = repo.history
    o, th = h.resolve(ours), h.resolve(theirs)
    base = find_merge_base(h.repo, [o.encode(), th.encode()])[0].decode()
    blobs = [h.read_blob(h.commit_files(c)[name]) for c in (base, o, th)]
    t["read"] = time.perf_counter() - t0
    res = merge_files(*blobs, name=name)
    t["merge"] = time.perf_counter() - t0 - sum(t.values())
    merged = res.require(name)
    del blobs, res
    h.write_blob(merged)
    t["store"] = time.perf_counter() - t0 - sum(t.values())
    t["until_stored"] = time.perf_counter() - t0
    if out != "-":
        lindijson.write_lindi_json(out, repo.render(merged, name))
        t["working_file"] = time.perf_counter() - t0 - t["until_stored"]
print(json.dumps(t))
"""


def add_units(path: str) -> None:
    """Add a small Units DynamicTable to the LINDI file at ``path``."""
    from lindivc import lindijson

    rfs = lindijson.load(path)
    refs = rfs["refs"]
    refs["units/.zgroup"] = {"zarr_format": 2}
    refs["units/.zattrs"] = {"colnames": ["spike_times"], "description": "units", "namespace": "core",
                             "neurodata_type": "Units", "object_id": "00000000-0000-4000-8000-000000000001"}
    for col in ("id", "spike_times", "spike_times_index"):
        refs[f"units/{col}/.zarray"] = _zarray()
        refs[f"units/{col}/.zattrs"] = {"namespace": "hdmf-common", "neurodata_type": "VectorData"}
        refs[f"units/{col}/0"] = B64
    lindijson.write_lindi_json(path, rfs)


def _zarray() -> dict:
    return {"chunks": [1], "compressor": None, "dtype": "<i8", "fill_value": 0, "filters": None, "order": "C",
            "shape": [1], "zarr_format": 2}


def edit(path: str, column: str, series: int) -> None:
    """What a user tool does: add a Units column, change one series' description."""
    import orjson

    with open(path, "rb") as f:
        rfs = orjson.loads(f.read())
    refs = rfs["refs"]
    refs["units/.zattrs"]["colnames"].append(column)
    refs[f"units/{column}/.zarray"] = _zarray()
    refs[f"units/{column}/.zattrs"] = {"description": column, "namespace": "hdmf-common", "neurodata_type": "VectorData"}
    refs[f"units/{column}/0"] = B64
    refs[f"acquisition/series{series}/.zattrs"]["description"] = f"series {series}, edited"
    with open(path, "wb") as f:
        f.write(orjson.dumps(rfs))


def best(n: int, cmd: list[str], **kw):
    runs = [run(cmd, **kw) for _ in range(n)]
    return min(runs, key=lambda r: r.seconds), max(r.maxrss for r in runs)


def main() -> None:
    args = parser(__doc__.splitlines()[1]).parse_args()
    n_refs = max(many_refs.N_ARRAYS, round(many_refs.N_REFS * args.scale))
    warm_up()
    from lindivc import lindijson
    from lindivc.repo import Repository

    with Workdir(args, "lindivc-bench-merge-") as tmp:
        repo_dir = os.path.join(tmp, "repo")
        lv = lindivc_cmd()
        run(lv + ["init", repo_dir])
        path = os.path.join(repo_dir, NAME)
        repo = Repository(repo_dir)
        many_refs.build(path, repo.objects, n_refs)
        repo.close()
        add_units(path)
        run(lv + ["add", NAME], cwd=repo_dir)
        run(lv + ["commit", "-m", "base"], cwd=repo_dir)
        run(lv + ["checkout", "-b", "b"], cwd=repo_dir)
        edit(path, "quality", 2)
        status, status_rss = best(2, lv + ["status"], cwd=repo_dir)
        run(lv + ["commit", "-a", "-m", "quality column"], cwd=repo_dir)
        run(lv + ["checkout", "main"], cwd=repo_dir)
        edit(path, "acg", 1)
        run(lv + ["commit", "-a", "-m", "acg column"], cwd=repo_dir)
        size = os.path.getsize(path)

        git = ["git", "--git-dir", os.path.join(repo_dir, ".lindivc", "git")]
        main_head = run(git + ["rev-parse", "main"]).stdout.strip()
        b_head = run(git + ["rev-parse", "b"]).stdout.strip()
        merges = []
        for _ in range(2):
            m = run(lv + ["merge", "b"], cwd=repo_dir)
            assert "merged in LINDI terms: " + NAME in m.stdout, m.stdout
            merges.append(m)
            parents = run(git + ["rev-list", "--parents", "-n", "1", "main"]).stdout.split()[1:]
            refs = lindijson.load(path)["refs"]
            ok = (parents == [main_head, b_head]
                  and refs["units/.zattrs"]["colnames"] == ["spike_times", "acg", "quality"]
                  and "units/acg/0" in refs and "units/quality/0" in refs
                  and refs["acquisition/series1/.zattrs"]["description"] == "series 1, edited"
                  and refs["acquisition/series2/.zattrs"]["description"] == "series 2, edited"
                  and len(refs) == n_refs // many_refs.N_ARRAYS * many_refs.N_ARRAYS + 4 * 4 + 4 + 2 + 3 * 3 + 2 * 3)
            del refs
            run(git + ["update-ref", "refs/heads/main", main_head])
            run(lv + ["checkout", "-f", "main"], cwd=repo_dir)
        merge = min(merges, key=lambda r: r.seconds)
        merge_rss = max(r.maxrss for r in merges)
        out = os.path.join(tmp, "merged.lindi.json")
        parts = json.loads(run([sys.executable, "-c", MERGE, repo_dir, NAME, "main", "b", out]).stdout)

        rep = Report(f"merge of two edits (a column and an attribute each), {n_refs:,} chunk refs "
                     f"({fmt_bytes(size)} working file)")
        rep.line(f"where the time goes (library calls): read 3 versions {parts['read']:.2f} s, merge "
                 f"{parts['merge']:.2f} s, store blob {parts['store']:.2f} s, write working file "
                 f"{parts['working_file']:.2f} s")
        rep.line(f"floor: lindivc status with the file changed {status.seconds:.2f} s")
        rep.ratio("lindivc merge b", merge.seconds, status.seconds, 2.0)
        rep.check("lindivc merge b: peak RSS", merge_rss, 1.5e9, fmt_bytes(merge_rss), "1.5 GB")
        rep.line(f"status peak RSS {fmt_bytes(status_rss)}; merge / status: {merge_rss / status_rss:.2f}")
        rep.check("merge commit has both parents, the file both columns and both edits", 0 if ok else 1, 0,
                  "yes" if ok else "NO", "yes")
        rep.finish()


if __name__ == "__main__":
    main()
