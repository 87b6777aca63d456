"""Driver of ``push_s3.py --phases``: runs one ``lindivc`` command in this process as the
``lindivc`` script does (``lindivc.cli.main()``), with timers around the steps of ``lindivc/push.py``,
and writes where its wall time went to a JSON file.

    python scripts/bench/push_phases.py SPAWNED OUT.json push origin

SPAWNED is the caller's ``time.monotonic()`` just before it started this process (on Linux the
monotonic clock is system-wide), so interpreter start-up is counted too. OUT.json gets
``{"exit": code, "marks": {...}, "events": [...], "requests": [...]}``: ``marks`` are the moments
the process started, had imported ``lindivc.cli`` and ``lindivc.push``, called and left
``lindivc.cli.main``; OUT.json.exit gets two more, written after the JSON (``json_written``) and by
the last atexit handler (``atexit_done``), so that interpreter exit is counted too; each event is one call of a timed function (``name``, ``start``, ``end``,
``stack``: the timed calls it ran inside, ``main``: whether on the main thread); each request
is one HTTP request botocore sent (``method``, ``path``, ``start``, ``end``, ``stack``).

Only this process is patched, and lindivc's behaviour is unchanged: module attributes of
``lindivc.push``, ``lindivc.publish`` and ``lindivc.zones.s3`` are replaced by timed wrappers,
botocore's ``URLLib3Session.send`` is wrapped to log requests, and ``ThreadPoolExecutor.submit``
hands the submitting thread's stack of timed calls to the pool thread, so that work done in a
pool counts for the step that started it. :func:`run_driver` and :func:`print_phases` are the
caller's side. ``import lindivc.push``, which the CLI does lazily when
``push`` runs, is done (and timed) before the command starts, to install the wrappers.
"""
import time

T0 = time.monotonic()

import atexit  # noqa: E402
import functools  # noqa: E402  (after T0: these are part of what is measured)
import json  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402

# (module, attribute, label): the steps of push.py, as its comments number them
STEPS = [
    ("lindivc.push", "_read_branch_ref", "1 read branch ref"),
    ("lindivc.push", "_put_journal", "2 put journal"),
    ("lindivc.push", "_find_missing", "3 find missing chunks"),
    ("lindivc.push", "_record_borrows", "4 record borrows"),
    ("lindivc.push", "_upload_and_confirm", "5 packs, indexes, info/idx"),
    ("lindivc.push", "_upload_history", "6 history (git pack, info/packs)"),
    ("lindivc.push", "_swap_branch_ref", "8 swap branch ref"),
    ("lindivc.push", "_finish_publication", "7 published files (+ rest of 8)"),
]
# parts of the steps (or of the set-up between them) shown under them
PARTS = [
    ("lindivc.push", "catalog_for", "catalog of the remote"),
    ("lindivc.zones.s3", "make_client", "S3 client (botocore import + client)"),
    ("lindivc.push", "upload_packs", "data PUTs + their indexes"),
    ("lindivc.push", "confirm_info_idx", "info/idx"),
    ("lindivc.push", "_mark_publication", "mark publication (local)"),
    ("lindivc.push", "_claim_default_branch", "git/HEAD (default branch)"),
    ("lindivc.publish", "publish_files", "f/ and v/ files (with the rest of 8)"),
    ("lindivc.push", "_derived_refs", "git/info/refs (8)"),
    ("lindivc.push", "_drop_journal", "delete journal (8)"),
]
PUSH = "push()"


class Recorder:
    """Timed calls and HTTP requests, each with the stack of timed calls it ran inside."""

    def __init__(self) -> None:
        self.local = threading.local()
        self.lock = threading.Lock()
        self.events: list[dict] = []
        self.requests: list[dict] = []

    def stack(self) -> tuple:
        return getattr(self.local, "stack", ())

    def timed(self, label: str, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kw):
            outer = self.stack()
            self.local.stack = outer + (label,)
            t0 = time.monotonic()
            try:
                return fn(*args, **kw)
            finally:
                t1 = time.monotonic()
                self.local.stack = outer
                with self.lock:
                    self.events.append({"name": label, "start": t0, "end": t1, "stack": list(outer),
                                        "main": threading.current_thread() is threading.main_thread()})
        return wrapper

    def install(self) -> None:
        import importlib
        from concurrent.futures import ThreadPoolExecutor

        for mod, attr, label in [("lindivc.push", "push", PUSH)] + STEPS + PARTS:
            m = importlib.import_module(mod)
            setattr(m, attr, self.timed(label, getattr(m, attr)))
        make_client = sys.modules["lindivc.zones.s3"].make_client

        def make_client_then_log(*args, **kw):
            client = make_client(*args, **kw)
            self._log_requests()  # botocore is imported now (make_client imports it lazily)
            return client

        sys.modules["lindivc.zones.s3"].make_client = make_client_then_log
        submit = ThreadPoolExecutor.submit
        rec = self

        def submit_with_stack(ex, fn, /, *args, **kw):
            stack = rec.stack()

            def run(*a, **k):
                saved = rec.stack()
                rec.local.stack = stack
                try:
                    return fn(*a, **k)
                finally:
                    rec.local.stack = saved
            return submit(ex, run, *args, **kw)

        ThreadPoolExecutor.submit = submit_with_stack

    def _log_requests(self) -> None:
        from botocore.httpsession import URLLib3Session

        send = URLLib3Session.send
        if getattr(send, "_logged", False):
            return
        rec = self

        def logged_send(session, request):
            stack = rec.stack()
            t0 = time.monotonic()
            try:
                return send(session, request)
            finally:
                t1 = time.monotonic()
                with rec.lock:
                    rec.requests.append({"method": request.method, "path": request.url.split("?")[0].split("/", 3)[-1],
                                         "start": t0, "end": t1, "stack": list(stack)})

        logged_send._logged = True
        URLLib3Session.send = logged_send


def main() -> None:
    spawned, out, *argv = sys.argv[1:]
    marks = {"spawned": float(spawned), "start": T0}
    atexit.register(note_exit, out, "atexit_done")  # registered first, runs last: after every other one
    import lindivc.cli

    marks["cli_imported"] = time.monotonic()
    import lindivc.push  # noqa: F401  (the CLI imports it when push runs)

    marks["push_imported"] = time.monotonic()
    rec = Recorder()
    rec.install()
    sys.argv = ["lindivc", *argv]
    marks["cli_start"] = time.monotonic()
    code = 0
    try:  # what lindivc.cli.main() does, with the JSON written between the command and its exit
        lindivc.cli.cli(prog_name="lindivc")
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    marks["cli_end"] = time.monotonic()
    with open(out, "w") as f:
        json.dump({"exit": code, "marks": marks, "events": rec.events, "requests": rec.requests}, f)
    sys.stdout.flush()
    note_exit(out, "json_written")
    lindivc.cli.end_process(code)


def note_exit(out: str, mark: str) -> None:
    """Append ``mark`` and the time now to ``OUT.exit`` (the moments after the JSON is written)."""
    with open(out + ".exit", "a") as f:
        f.write(f"{mark} {time.monotonic()!r}\n")


# ------------------------------------------------------------------------------------- caller's side
# (used by push_s3.py; not run by the driver)


def run_driver(cmd: list[str], cwd: str, env: dict, out: str, python: str = sys.executable) -> dict:
    """Run ``lindivc CMD`` through this driver in ``cwd`` with ``env``; its JSON, plus ``exited``
    (the caller's monotonic time when the process had ended)."""
    import os
    import subprocess

    if os.path.exists(out + ".exit"):
        os.unlink(out + ".exit")
    spawned = time.monotonic()
    p = subprocess.run([python, __file__, repr(spawned), out, *cmd], cwd=cwd, env=env, capture_output=True)
    exited = time.monotonic()
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} (phases) failed ({p.returncode}):\n{p.stdout.decode()[-2000:]}\n"
                         f"{p.stderr.decode()[-2000:]}")
    with open(out) as f:
        d = json.load(f)
    with open(out + ".exit") as f:
        d["marks"].update((k, float(v)) for k, v in (line.split() for line in f))
    d["exited"] = exited
    return d


def _methods(reqs: list[dict]) -> str:
    if not reqs:
        return ""
    counts: dict[str, int] = {}
    for r in reqs:
        counts[r["method"]] = counts.get(r["method"], 0) + 1
    return f"{len(reqs)} (" + ", ".join(f"{m} {n}" for m, n in sorted(counts.items(), key=lambda x: -x[1])) + ")"


def phase_rows(d: dict) -> list[dict]:
    """The rows of the breakdown: the main thread's timeline (rows of kind "main", which add up to
    the wall time), steps run on another thread alongside it ("parallel"), and, under both, the
    timed parts inside them ("part", with a ``depth``). Each row has its requests."""
    m, events, requests = d["marks"], d["events"], d["requests"]
    steps = {label for _, _, label in STEPS}
    rows: list[dict] = []

    def row(label: str, start: float, end: float, kind: str = "main", depth: int = 0) -> dict:
        r = {"label": label, "start": start, "end": end, "kind": kind, "depth": depth, "requests": []}
        rows.append(r)
        return r

    row("interpreter start-up", m["spawned"], m["start"])
    row("import lindivc.cli (click, the commands)", m["start"], m["cli_imported"])
    row("import lindivc.push (the CLI does it lazily)", m["cli_imported"], m["push_imported"])
    row("bench driver: install timers (not lindivc)", m["push_imported"], m["cli_start"])
    pushes = sorted((e for e in events if e["name"] == PUSH), key=lambda e: e["start"])
    top = sorted((e for e in events if e["name"] in steps and e["stack"] == [PUSH]), key=lambda e: e["start"])
    main_steps = [e for e in top if e["main"]]
    cursor, prev = m["cli_start"], None
    for p in pushes:
        row("CLI: parse arguments, open repository" if prev is None else "CLI", cursor, p["start"])
        cursor, prev = p["start"], None
        for e in [e for e in main_steps if p["start"] <= e["start"] <= p["end"]]:
            if e["start"] > cursor:
                where = f"before step {e['name'].split()[0]}" if prev is None else \
                    f"between steps {prev.split()[0]} and {e['name'].split()[0]}"
                row(f"push(): other work {where}", cursor, e["start"])
            row(e["name"], e["start"], e["end"])
            cursor, prev = e["end"], e["name"]
        row("push(): other work " + (f"after step {prev.split()[0]}" if prev else "(no step ran)"), cursor, p["end"])
        cursor, prev = p["end"], PUSH
    row("CLI: print the result" if pushes else "CLI (push() not called)", cursor, m["cli_end"])
    row("bench driver: write the JSON (not lindivc)", m["cli_end"], m["json_written"])
    row("exit: join threads, atexit handlers", m["json_written"], m["atexit_done"])
    row("exit: interpreter finalization (modules, objects freed)", m["atexit_done"], d["exited"])
    main_rows = list(rows)
    after: dict[int, dict] = {}  # parallel row -> the main row it is printed after
    for e in top:
        if not e["main"]:
            along = [r for r in main_rows if r["label"] in steps and r["start"] < e["end"] and e["start"] < r["end"]]
            names = " and ".join(r["label"].split()[0] for r in along) or "the main thread"
            after[id(row(f"{e['name']}, alongside {names}", e["start"], e["end"], "parallel"))] = \
                along[-1] if along else next(r for r in main_rows if r["start"] <= e["start"] <= r["end"])

    def home(stack: list[str], start: float) -> dict:
        """The main or parallel row a timed part or request belongs to."""
        for label in reversed(stack):
            if label in steps:
                for r in rows:
                    if r["kind"] != "part" and r["label"].startswith(label) and r["start"] <= start <= r["end"]:
                        return r
        for r in main_rows:
            if r["start"] <= start < r["end"]:
                return r
        return main_rows[-1]

    parts = sorted((e for e in events if e["name"] != PUSH and e["name"] not in steps), key=lambda e: e["start"])
    placed: list[tuple[dict, dict]] = []
    for e in parts:
        h = home(e["stack"], e["start"])
        depth = 1 + sum(1 for s in e["stack"] if s != PUSH and s not in steps)
        placed.append((h, {"label": e["name"], "start": e["start"], "end": e["end"], "kind": "part",
                           "depth": depth, "requests": [], "stack": e["stack"]}))
    for r in requests:
        home(r["stack"], r["start"])["requests"].append(r)
        for h, part in placed:
            if part["label"] in r["stack"] and part["start"] <= r["start"] <= part["end"]:
                part["requests"].append(r)
    out = []
    for r in main_rows:
        for x in [r] + [p for p in rows if after.get(id(p)) is r]:
            out.append(x)
            out.extend(part for h, part in placed if h is x)
    return out


def print_phases(title: str, d: dict, timed: str | None, logged: int | None, indent: str = "  ") -> None:
    """Print the breakdown of one driver run (see :func:`phase_rows`); ``timed`` says the wall time
    of the timed run of the same push, ``logged`` the requests the server logged during this one.
    Gaps between steps that took no time are left out (they are in the sum)."""
    rows = phase_rows(d)
    t0, wall = d["marks"]["spawned"], d["exited"] - d["marks"]["spawned"]
    reqs = sorted(d["requests"], key=lambda r: r["start"])
    first = f"first request at {reqs[0]['start'] - t0:.3f} s ({(reqs[0]['start'] - t0) / wall:.1%} of the wall)" \
        if reqs else "no request"
    print(f"{indent}{title}: wall {wall:.2f} s" + (f" ({timed})" if timed else "")
          + f"; {len(reqs)} requests" + (f" (server logged {logged})" if logged is not None else "") + f"; {first}")
    print(f"{indent}  {'phase':58} {'at (s)':>7} {'time (s)':>8} {'share':>7}  requests")
    total = 0.0
    for i, r in enumerate(rows):
        dt = r["end"] - r["start"]
        share = f"{dt / wall:.1%}"
        if r["kind"] == "main":
            total += dt
            label = r["label"]
            has_parts = i + 1 < len(rows) and rows[i + 1]["kind"] == "part"
            if label.startswith("push(): other work") and dt < 0.0005 and not r["requests"] and not has_parts:
                continue  # a gap between two steps with nothing in it
        elif r["kind"] == "parallel":
            label, share = "|| " + r["label"], f"({share})"
        else:
            label, share = "  " * r["depth"] + ". " + r["label"], f"({share})"
        print(f"{indent}  {label:58} {r['start'] - t0:7.3f} {dt:8.3f} {share:>7}  {_methods(r['requests'])}")
    print(f"{indent}  {'sum of the rows not marked || or . (= wall)':58} {'':7} {total:8.3f} {total / wall:7.1%}  {len(reqs)}")


if __name__ == "__main__":
    main()
