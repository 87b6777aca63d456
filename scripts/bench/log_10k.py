#!/usr/bin/env python
"""Benchmark: `lindivc log` over 10,000 commits (issue 2). Target: <= 1 s.

The history is built directly through lindivc's History API (dulwich, loose objects, as
`lindivc commit` leaves them): 10,000 commits, each changing one attribute of a small LINDI file.
Then ``lindivc log -n 10000 --oneline`` and the full ``lindivc log`` run as CLI commands.
Floor: ``git --git-dir .lindivc/git log --oneline`` of the same history.

    .venv/bin/python scripts/bench/log_10k.py [--scale 0.1]
"""
from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import Report, Workdir, best_of, fmt_bytes, lindivc_cmd, parser, run, warm_up  # noqa: E402

N_COMMITS = 10_000


def build(repo_dir: str, n: int) -> None:
    from lindivc import lindijson
    from lindivc.repo import Repository

    repo = Repository(repo_dir)
    h = repo.history
    parent = None
    rfs = {"refs": {".zgroup": {"zarr_format": 2}, ".zattrs": {"session": 0},
                    "data/.zarray": {"chunks": [4], "dtype": "<i4", "shape": [4], "zarr_format": 2,
                                     "compressor": None, "fill_value": 0, "filters": None, "order": "C"},
                    "data/0": "base64:AAAAAAAAAAAAAAAAAAAAAA=="}}
    t = 1_700_000_000
    for i in range(n):
        rfs["refs"][".zattrs"]["session"] = i
        blob = h.write_blob(lindijson.dumps(rfs))
        tree = h.write_tree({"session.lindi.json": blob})
        sha = h.make_commit(tree, [parent] if parent else [], f"session {i}: update attribute\n\nstep {i} of {n}",
                            "Bench <bench@example.org>", when=t + i)
        parent = sha
    h.set_ref("refs/heads/main", parent, None, "bench: built history", "Bench <bench@example.org>")
    repo.checkout("main", force=True)
    repo.close()


def main() -> None:
    args = parser(__doc__.splitlines()[1]).parse_args()
    n = max(2, round(N_COMMITS * args.scale))
    warm_up()
    with Workdir(args, "lindivc-bench-log-") as tmp:
        repo_dir = os.path.join(tmp, "repo")
        run(lindivc_cmd() + ["init", repo_dir])
        t0 = time.perf_counter()
        build(repo_dir, n)
        t_build = time.perf_counter() - t0
        git_dir = os.path.join(repo_dir, ".lindivc", "git")

        floor = best_of(3, ["git", "--git-dir", git_dir, "log", "--oneline"])
        oneline = best_of(3, lindivc_cmd() + ["log", "-n", str(n), "--oneline"], cwd=repo_dir)
        full = best_of(3, lindivc_cmd() + ["log"], cwd=repo_dir)
        shown = len(oneline.stdout.splitlines())
        rep = Report(f"log over {n:,} commits (loose objects, built in {t_build:.1f} s)")
        rep.line(f"floor git log --oneline {floor.seconds:.3f} s ({len(floor.stdout.splitlines()):,} lines)")
        rep.ratio(f"lindivc log -n {n} --oneline", oneline.seconds, floor.seconds)
        rep.check("log --oneline time", oneline.seconds, 1.0, f"{oneline.seconds:.2f} s", "1 s")
        rep.ratio("lindivc log (full)", full.seconds, floor.seconds)
        rep.check("log (full) time", full.seconds, 1.0, f"{full.seconds:.2f} s", "1 s")
        rep.line(f"peak RSS: --oneline {fmt_bytes(oneline.maxrss)}, full {fmt_bytes(full.maxrss)}")
        rep.check("commits shown", abs(shown - n), 0, f"{shown:,}", f"{n:,}")
        rep.finish()


if __name__ == "__main__":
    main()
