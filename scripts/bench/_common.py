"""Shared helpers for the issue-2 benchmarks: timed subprocesses with peak RSS, and the report.

Each benchmark measures a floor (what the same work costs with plain tools) in the same run and
prints lindivc's time as a ratio against it, plus the absolute figures and PASS/MISS against the
issue's target. A benchmark exits 1 if any figure misses its target.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

MiB = 1 << 20
TIME = "/usr/bin/time" if os.path.exists("/usr/bin/time") else None
GiB = 1 << 30


# Installed packages normally come with compiled bytecode; a PYTHONDONTWRITEBYTECODE environment
# would make every CLI run recompile its imports and measure that instead of lindivc.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def warm_up() -> None:
    """Import what the CLI and the writer import once, so their bytecode caches exist."""
    subprocess.run([sys.executable, "-c", "import lindivc.cli, lindivc.repo, lindivc.diff, lindivc.log, lindivc.importer, lindivc.lindi_io, "
                    "lindivc.packs, lindivc.packstream, h5py, numpy"], env=ENV, check=True, cwd=ROOT)
    subprocess.run(lindivc_cmd() + ["--help"], env=ENV, check=True, stdout=subprocess.DEVNULL)


def lindivc_cmd() -> list[str]:
    """The `lindivc` command of this virtualenv (the console script, as a user runs it)."""
    script = os.path.join(os.path.dirname(sys.executable), "lindivc")
    if os.path.exists(script):
        return [script]
    return [sys.executable, "-m", "lindivc.cli"]


@dataclass
class Run:
    """One finished subprocess: wall time, peak RSS (bytes) and its output."""

    seconds: float
    maxrss: int
    stdout: str
    stderr: str


def run(cmd: list[str], cwd: str | None = None, env: dict | None = None, check: bool = True) -> Run:
    """Run ``cmd`` to completion; its wall time and its own peak RSS.

    The RSS comes from ``/usr/bin/time -f %M``, which spawns the command from a small process:
    rusage of a child forked directly from this (possibly large) process would count the pages it
    inherited before exec.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.NamedTemporaryFile(suffix=".rss") as rss:
        timed = [TIME, "-f", "%M", "-o", rss.name, *cmd] if TIME else cmd
        t0 = time.perf_counter()
        p = subprocess.Popen(timed, cwd=cwd, env=ENV if env is None else env, stdout=out, stderr=err)
        _, status, ru = os.wait4(p.pid, 0)
        dt = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        maxrss = ru.ru_maxrss * 1024
        if TIME:
            lines = [x for x in open(rss.name).read().split() if x.isdigit()]
            maxrss = int(lines[-1]) * 1024 if lines else 0
        r = Run(dt, maxrss, out.read().decode(errors="replace"), err.read().decode(errors="replace"))
    if check and p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({p.returncode}):\n{r.stderr[-2000:]}")
    return r


def best_of(n: int, cmd: list[str], **kw) -> Run:
    """The fastest of ``n`` runs of ``cmd`` (its RSS is the largest seen)."""
    runs = [run(cmd, **kw) for _ in range(n)]
    best = min(runs, key=lambda r: r.seconds)
    return Run(best.seconds, max(r.maxrss for r in runs), best.stdout, best.stderr)


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--scale", type=float, default=1.0,
                   help="multiply the issue's sizes by this (e.g. 0.01 for a quick check; targets then are only indicative)")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory and print its path")
    p.add_argument("--dir", help="work in this directory (default: a new temporary directory)")
    return p


class Workdir:
    """A temporary working directory, removed at exit unless ``keep``."""

    def __init__(self, args: argparse.Namespace, prefix: str) -> None:
        self.keep = args.keep
        if args.dir:
            os.makedirs(args.dir, exist_ok=True)
            self.path = tempfile.mkdtemp(prefix=prefix, dir=args.dir)
        else:
            self.path = tempfile.mkdtemp(prefix=prefix)

    def __enter__(self) -> str:
        return self.path

    def __exit__(self, *a) -> None:
        if self.keep:
            print(f"kept {self.path}")
        else:
            shutil.rmtree(self.path, ignore_errors=True)


def fmt_bytes(n: float) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.2f} {unit}"
    return f"{n:.0f} B"


class Report:
    """Collects figures, prints them, and remembers whether any missed its target."""

    def __init__(self, title: str) -> None:
        self.missed = False
        print(title)

    def line(self, text: str) -> None:
        print("  " + text)

    def check(self, label: str, value: float, target: float, shown: str, target_shown: str) -> None:
        ok = value <= target
        self.missed |= not ok
        print(f"  {label:34} {shown:>12}   target <= {target_shown:10} {'PASS' if ok else 'MISS'}")

    def ratio(self, label: str, seconds: float, floor: float, target: float | None = None) -> None:
        """Print ``seconds`` against ``floor``; with ``target``, check the ratio against it."""
        r = seconds / floor if floor > 0 else float("inf")
        print(f"  {label:34} {seconds:10.2f} s   floor {floor:.2f} s   ratio {r:.2f}")
        if target is not None:
            self.check(f"{label} / floor", r, target, f"{r:.2f}", f"{target:g}")

    def finish(self) -> None:
        print("RESULT: " + ("MISS" if self.missed else "PASS"))
        sys.exit(1 if self.missed else 0)
