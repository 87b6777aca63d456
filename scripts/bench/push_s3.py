"""Benchmark: `lindivc push` to S3 (issue 3, "Benchmarks"), against one moto server.

Everything runs in one temporary directory against one ``moto_server`` *subprocess* on
127.0.0.1 (a separate process, so the client does not share moto's GIL). Figures:

- J1 first push: 100 new chunks of 5 MiB (500 MiB, incompressible) written through
  ``lindivc.open(path, "r+")`` and committed (before timing), then ``lindivc push`` to a fresh S3
  zone as a whole CLI subprocess. Floor: the fastest way to store the same bytes measured in the
  same run: 100 parallel ``put_object`` calls of the raw chunk files (boto3, 8 threads), best of 3.
  Target: push <= 1.2 x floor, <= 10 objects under ``sha1/``. A second floor, for reading only:
  the same bytes in lindivc's shape (packs of <= 64 MiB, one streamed unsigned PUT each, all at
  once, nothing else), so that push / that floor is what the protocol costs on top of the store's
  price for objects this large (on moto, a 64 MiB PUT costs more server CPU per byte than 5 MiB).
- No-op push (nothing new): whole command <= 0.5 s, 0 data bytes, requests counted from moto's
  request log.
- One chunk changed: 5 MiB of chunk data plus metadata, <= 1 s.
- Peak RSS of the push subprocess while pushing 2 GiB (400 x 5 MiB chunks generated straight into
  the object store, plus a LINDI file referencing them): <= 300 MB.

    .venv/bin/python scripts/bench/push_s3.py [--scale 0.1] [--keep] [--latency-ms 20] [--no-phases]

``--latency-ms N`` (issue 13) puts the peer kit's delay proxy (``latency_proxy.py``, standard
library only; found in ``../shared/peers/tools/`` next to the checkout or one of its parents, or
given with ``--latency-proxy``) between the clients and moto: every request is held N ms, as a
round trip to in-region S3 costs. lindivc and the floors then all go through it. To count the
round trips on the critical path of the no-op and one-chunk pushes (requests that wait on each
other), those are also run straight against moto and through a second proxy with a long delay
P = max(200, 10 N) ms: ``(through P - direct) / P``, where a long P keeps the machine's noise
small against the delay.
The floors of those two are whole subprocesses doing the least a client can: one GET of the
branch ref, one PUT of the changed chunk. The time targets hold for N = 0 only (the issue 3
figures); at N > 0 the ratios against the floors are what to compare.

``--phases`` (on by default; ``--no-phases`` skips it): after every timed run, the J1 first push
(of a copy of the J1 repository taken before its timed push, to a fresh zone), a one-chunk push
(of one more changed chunk) and a no-op push run once more through ``push_phases.py``, which runs
the CLI in its own process with timers around push.py's steps and logs botocore's requests. For
each, a table of where the wall time went (interpreter start-up, imports, the S3 client, the
steps 1-8 as push.py numbers them, with their parts, interpreter exit), with the seconds, the share
of the wall time and the requests of each phase; steps run on another thread (2 alongside 1, 6
alongside 5) are marked ``||`` and not added to the sum. These runs are not the timed ones, and
their times are not checked against targets.

Exits 1 if a figure misses its target.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
for _p in (ROOT, HERE):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import push_phases  # noqa: E402  (scripts/bench/push_phases.py)

MiB = 1 << 20
CHUNK = 5 * MiB
TIME = "/usr/bin/time" if os.path.exists("/usr/bin/time") else None
BIN = os.path.dirname(sys.executable)
ANSI = re.compile(r"\x1b\[[0-9;]*m")
REQUEST_LINE = re.compile(r'"(?:\x1b\[[0-9;]*m)*[A-Z]+ \S+ HTTP/1\.1(?:\x1b\[[0-9;]*m)*"')
# bytecode caches must exist, or every CLI run would measure recompiling its imports
ENV = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "AWS_PROFILE")}
ENV.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1",
           AWS_EC2_METADATA_DISABLED="true")
os.environ.update({k: ENV[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION",
                                       "AWS_EC2_METADATA_DISABLED")})


def find_proxy_script(given: str | None) -> str:
    """The delay proxy of the peer benchmark kit: ``given``, else ``$LINDIVC_LATENCY_PROXY``, else
    ``shared/peers/tools/latency_proxy.py`` in a parent directory of this checkout."""
    cand = given or os.environ.get("LINDIVC_LATENCY_PROXY")
    if cand:
        if not os.path.isfile(cand):
            raise SystemExit(f"no latency proxy at {cand}")
        return cand
    d = ROOT
    while True:
        d = os.path.dirname(d)
        p = os.path.join(d, "shared", "peers", "tools", "latency_proxy.py")
        if os.path.isfile(p):
            return p
        if d == os.path.dirname(d):
            raise SystemExit("--latency-ms needs the peer kit's latency_proxy.py: pass --latency-proxy PATH")


def lindivc_cmd() -> list[str]:
    script = os.path.join(BIN, "lindivc")
    return [script] if os.path.exists(script) else [sys.executable, "-m", "lindivc.cli"]


# ------------------------------------------------------------------------------------- moto


class Moto:
    """A ``moto_server`` subprocess on a free loopback port; its request log goes to a file, one line
    per HTTP request (werkzeug's access log), which is how requests are counted."""

    def __init__(self, workdir: str) -> None:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        self.port = s.getsockname()[1]
        s.close()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = os.path.join(workdir, "moto.log")
        self._log = open(self.log_path, "wb")
        exe = os.path.join(BIN, "moto_server")
        cmd = [exe] if os.path.exists(exe) else [sys.executable, "-m", "moto.server"]
        self.proc = subprocess.Popen(cmd + ["-H", "127.0.0.1", "-p", str(self.port)], stdout=self._log,
                                     stderr=subprocess.STDOUT, env=ENV)
        deadline = time.time() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                break
            except OSError:
                if time.time() > deadline or self.proc.poll() is not None:
                    raise SystemExit("moto_server did not start")
                time.sleep(0.1)

    def _requests(self) -> list[str]:
        """The request lines logged so far, without the colour codes werkzeug puts around the
        lines of 4xx/204 answers (which the count must include: a HEAD answered 404 is a request)."""
        with open(self.log_path, "rb") as f:
            text = f.read().decode(errors="replace")
        return [ANSI.sub("", line).strip() for line in text.splitlines() if REQUEST_LINE.search(line)]

    def mark(self) -> int:
        self._log.flush()
        return len(self._requests())

    def requests_since(self, mark: int) -> list[str]:
        time.sleep(0.2)  # let the server flush its log
        return self._requests()[mark:]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._log.close()


class LatencyProxy:
    """The delay proxy as a subprocess in front of moto: each request head is held ``latency_ms``
    before it is forwarded (responses are not delayed), so N ms is the round trip one request adds."""

    def __init__(self, script: str, upstream_port: int, latency_ms: float, workdir: str) -> None:
        self.latency_ms = latency_ms
        port_file = os.path.join(workdir, f"proxy-{latency_ms:g}ms.port")
        self._log = open(os.path.join(workdir, f"proxy-{latency_ms:g}ms.log"), "wb")
        self.proc = subprocess.Popen([sys.executable, script, "--upstream", f"127.0.0.1:{upstream_port}",
                                      "--latency-ms", f"{latency_ms:g}", "--port-file", port_file],
                                     stdout=self._log, stderr=subprocess.STDOUT, env=ENV)
        deadline = time.time() + 30
        while not os.path.exists(port_file):
            if time.time() > deadline or self.proc.poll() is not None:
                raise SystemExit("the latency proxy did not start (see proxy-*.log with --keep)")
            time.sleep(0.05)
        with open(port_file) as f:
            self.port = int(f.read())
        self.url = f"http://127.0.0.1:{self.port}"

    def stats(self) -> dict:
        """The proxy's counters (requests forwarded, requests in flight, delay slept...)."""
        import urllib.request

        with urllib.request.urlopen(self.url + "/__latency_proxy__/stats", timeout=10) as r:
            return json.loads(r.read())

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._log.close()


def s3_client(endpoint: str):
    import boto3
    from botocore.config import Config

    cfg = Config(max_pool_connections=32, request_checksum_calculation="when_required",
                 response_checksum_validation="when_required")
    return boto3.client("s3", endpoint_url=endpoint, config=cfg)


def listing(s3, bucket: str, prefix: str = "") -> dict[str, int]:
    out = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for o in page.get("Contents", []):
            out[o["Key"]] = o["Size"]
    return out


def empty_bucket(s3, bucket: str, prefix: str = "") -> None:
    keys = list(listing(s3, bucket, prefix))
    for i in range(0, len(keys), 1000):
        s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys[i:i + 1000]]})


# ------------------------------------------------------------------------------------- processes


class Run:
    def __init__(self, seconds: float, maxrss: int, stdout: str, stderr: str) -> None:
        self.seconds, self.maxrss, self.stdout, self.stderr = seconds, maxrss, stdout, stderr


def run(cmd: list[str], cwd: str | None = None, check: bool = True, timeout: float = 600,
        endpoint: str | None = None) -> Run:
    """Run ``cmd``; its wall time and its own peak RSS (``/usr/bin/time -f %M``: rusage of a child
    forked from this large process would count pages it inherited before exec). ``endpoint``
    overrides ``AWS_ENDPOINT_URL`` for this command."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.NamedTemporaryFile(suffix=".rss") as rss:
        timed = [TIME, "-f", "%M", "-o", rss.name, *cmd] if TIME else cmd
        t0 = time.perf_counter()
        env = ENV if endpoint is None else dict(ENV, AWS_ENDPOINT_URL=endpoint)
        p = subprocess.Popen(timed, cwd=cwd, env=env, stdout=out, stderr=err)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            raise SystemExit(f"{' '.join(cmd)} took more than {timeout} s")
        dt = time.perf_counter() - t0
        out.seek(0)
        err.seek(0)
        maxrss = 0
        if TIME:
            nums = [x for x in open(rss.name).read().split() if x.isdigit()]
            maxrss = int(nums[-1]) * 1024 if nums else 0
        r = Run(dt, maxrss, out.read().decode(errors="replace"), err.read().decode(errors="replace"))
    if check and p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({p.returncode}):\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    return r


def copy_repo(src: str, dst: str) -> None:
    """A copy of repository ``src`` whose object files are hard links (objects are never changed
    in place), so that copying 500 MiB of chunks writes nothing."""
    objects = os.path.join(src, ".lindivc", "objects")

    def link_or_copy(a: str, b: str) -> None:
        if os.path.commonpath([objects, a]) == objects:
            os.link(a, b)
        else:
            shutil.copy2(a, b)

    shutil.copytree(src, dst, symlinks=True, copy_function=link_or_copy)


def settle() -> None:
    subprocess.run(["sync"], check=True)
    time.sleep(1)


# ------------------------------------------------------------------------------------- set-up


def make_repo(path: str) -> str:
    run(lindivc_cmd() + ["init", path])
    with open(os.path.join(path, "data.lindi.json"), "w") as f:
        json.dump({"refs": {".zgroup": {"zarr_format": 2}, ".zattrs": {}}}, f)
    run(lindivc_cmd() + ["add", "data.lindi.json"], cwd=path)
    run(lindivc_cmd() + ["commit", "-m", "empty file"], cwd=path)
    return path


def child_write(repo: str, n: int, size: int, seed: int, row: int) -> None:
    """Own process: write ``n`` random chunks of ``size`` bytes through lindivc.open (row < 0), or
    replace row ``row`` of the dataset with new random bytes."""
    import numpy as np

    import lindivc

    rng = np.random.default_rng(seed)
    with lindivc.open(os.path.join(repo, "data.lindi.json"), "r+") as f:
        if row < 0:
            data = np.frombuffer(rng.bytes(n * size), dtype=np.uint8).reshape(n, size)
            f.create_dataset("bench/data", data=data, chunks=(1, size), compression=None)
        else:
            f["bench/data"][row] = np.frombuffer(rng.bytes(size), dtype=np.uint8)


def write_chunks(repo: str, n: int, size: int, seed: int = 1, row: int = -1) -> None:
    run([sys.executable, os.path.abspath(__file__), "--child", repo, str(n), str(size), str(seed), str(row)])


def make_big_repo(path: str, n: int, size: int) -> None:
    """A repository whose commit references ``n`` chunks of ``size`` random bytes, written straight
    into its object store (no lindi/h5py round trip) and referenced by a LINDI file by path."""
    import numpy as np

    from lindivc.objects import ObjectStore

    make_repo(path)
    store = ObjectStore(os.path.join(path, ".lindivc", "objects"), fsync=False)
    rng = np.random.default_rng(7)
    refs: dict = {".zgroup": {"zarr_format": 2}, ".zattrs": {},
                  "big/.zgroup": {"zarr_format": 2},
                  "big/data/.zarray": {"chunks": [1, size], "compressor": None, "dtype": "|u1", "fill_value": 0,
                                       "filters": None, "order": "C", "shape": [n, size], "zarr_format": 2}}
    for i in range(n):
        sha = store.put_bytes(rng.bytes(size))
        refs[f"big/data/{i}.0"] = [store.path(sha), 0, size]
    with open(os.path.join(path, "data.lindi.json"), "w") as f:
        json.dump({"refs": refs}, f)
    run(lindivc_cmd() + ["commit", "-a", "-m", "2 GiB of chunks"], cwd=path)


# ------------------------------------------------------------------------------------- floor


def chunk_files(repo: str, min_size: int) -> list[str]:
    out = []
    for d, _, files in os.walk(os.path.join(repo, ".lindivc", "objects")):
        for name in files:
            p = os.path.join(d, name)
            if len(name) == 40 and os.path.getsize(p) >= min_size:
                out.append(p)
    return sorted(out)


def floor_puts(s3, bucket: str, files: list[str], threads: int = 8) -> float:
    """100 parallel single PUTs of the raw chunk files (streamed from the page cache)."""
    def one(p: str) -> None:
        with open(p, "rb") as f:
            s3.put_object(Bucket=bucket, Key="sha1/" + os.path.basename(p), Body=f,
                          ContentType="application/octet-stream")

    t0 = time.perf_counter()
    with ThreadPoolExecutor(threads) as ex:
        list(ex.map(one, files))
    return time.perf_counter() - t0


class _Concat(io.RawIOBase):
    """Files read end to end as one seekable body (what a pack of loose chunk files is)."""

    def __init__(self, paths: list[str]) -> None:
        self._paths = paths
        self._sizes = [os.path.getsize(p) for p in paths]
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, off: int, whence: int = 0) -> int:
        self._pos = off if whence == 0 else self._pos + off if whence == 1 else sum(self._sizes) + off
        return self._pos

    def tell(self) -> int:
        return self._pos

    def read(self, n: int = -1) -> bytes:
        total = sum(self._sizes)
        n = total - self._pos if n is None or n < 0 else min(n, total - self._pos)
        out, start = [], 0
        for p, size in zip(self._paths, self._sizes):
            if n <= 0:
                break
            if self._pos < start + size:
                with open(p, "rb") as f:
                    f.seek(self._pos - start)
                    b = f.read(min(n, start + size - self._pos))
                out.append(b)
                self._pos += len(b)
                n -= len(b)
            start += size
        return b"".join(out)


def floor_pack_puts(endpoint: str, bucket: str, files: list[str], pack_size: int = 64 * MiB) -> tuple[float, int]:
    """The same bytes in the shape lindivc stores them: chunks (in sha1 order, as the files are
    named) cut into packs of at most ``pack_size``, one streamed PUT each, all at once, payload
    unsigned as lindivc's client sends them. No hashing, index, journal or history. Returns the
    wall time and the number of objects."""
    import boto3
    from botocore.config import Config

    cfg = Config(max_pool_connections=32, request_checksum_calculation="when_required",
                 response_checksum_validation="when_required", s3={"payload_signing_enabled": False})
    s3 = boto3.client("s3", endpoint_url=endpoint, config=cfg)
    packs: list[list[str]] = [[]]
    size = 0
    for p in sorted(files, key=os.path.basename):
        n = os.path.getsize(p)
        if packs[-1] and size + n > pack_size:
            packs.append([])
            size = 0
        packs[-1].append(p)
        size += n

    def one(i: int) -> None:
        s3.put_object(Bucket=bucket, Key=f"sha1/pack{i}", Body=_Concat(packs[i]),
                      ContentType="application/octet-stream")

    t0 = time.perf_counter()
    with ThreadPoolExecutor(len(packs)) as ex:
        list(ex.map(one, range(len(packs))))
    return time.perf_counter() - t0, len(packs)


def child_floor(op: str, bucket: str, key: str, path: str) -> None:
    """Own process: the least any client does for a no-op push (``get``: read the branch ref) or a
    one-chunk push (``put``: store the chunk), at ``$AWS_ENDPOINT_URL``."""
    s3 = s3_client(os.environ["AWS_ENDPOINT_URL"])
    if op == "get":
        s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    else:
        with open(path, "rb") as f:
            s3.put_object(Bucket=bucket, Key=key, Body=f, ContentType="application/octet-stream")


def floor_process(op: str, bucket: str, key: str, path: str, endpoint: str, n: int = 3) -> float:
    """Best wall time of ``n`` runs of :func:`child_floor` as whole subprocesses (imports included,
    as lindivc's are)."""
    cmd = [sys.executable, os.path.abspath(__file__), "--floor-op", op, bucket, key, path]
    return min(run(cmd, endpoint=endpoint).seconds for _ in range(n))


# ------------------------------------------------------------------------------------- main


class Report:
    def __init__(self) -> None:
        self.missed = False

    def line(self, label: str, floor: str, value: str, ratio: str, target: str, ok: bool | None) -> None:
        verdict = "" if ok is None else ("PASS" if ok else "MISS")
        if ok is False:
            self.missed = True
        print(f"  {label:28} {floor:>12} {value:>12} {ratio:>8}   {target:14} {verdict}", flush=True)


def timed_push(repo: str, moto: Moto, proxy: LatencyProxy | None, endpoint: str | None = None,
               timeout: float = 600) -> tuple[Run, list[str]]:
    """One ``lindivc push origin`` subprocess and the requests moto logged meanwhile (checked
    against the proxy's count when the push went through it). ``endpoint`` overrides the one
    the run talks to (moto's, to compare with the proxy)."""
    before = proxy.stats()["requests"] if proxy and endpoint is None else None
    m = moto.mark()
    r = run(lindivc_cmd() + ["push", "origin"], cwd=repo, endpoint=endpoint, timeout=timeout)
    reqs = moto.requests_since(m)
    if proxy is not None and before is not None:
        forwarded = proxy.stats()["requests"] - before
        if forwarded != len(reqs):
            print(f"  warning: the proxy forwarded {forwarded} requests, moto logged {len(reqs)}")
    return r, reqs


def best_push(repo: str, moto: Moto, proxy: LatencyProxy | None, endpoint: str | None = None,
              n: int = 3) -> tuple[Run, list[str]]:
    """The fastest of ``n`` pushes (of a push that changes nothing, hence can be repeated)."""
    runs = [timed_push(repo, moto, proxy, endpoint) for _ in range(n)]
    return min(runs, key=lambda x: x[0].seconds)


def round_trips(slow: Run, direct: Run, probe_ms: float) -> str:
    """Round trips on a push's critical path: its extra time through a proxy that holds every
    request ``probe_ms``, in units of that delay."""
    return f"{(slow.seconds - direct.seconds) * 1000 / probe_ms:.1f}"


def phase_push(title: str, repo: str, moto: Moto, timed: str, tmp: str, name: str) -> None:
    """One more ``lindivc push origin`` in ``repo``, through the phase driver (push_phases.py), and
    its breakdown."""
    settle()
    m = moto.mark()
    d = push_phases.run_driver(["push", "origin"], repo, ENV, os.path.join(tmp, f"phases-{name}.json"))
    push_phases.print_phases(title, d, timed, len(moto.requests_since(m)))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scale", type=float, default=1.0, help="multiply the chunk counts (quick checks)")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    p.add_argument("--skip-big", action="store_true", help="skip the 2 GiB peak-RSS push")
    p.add_argument("--latency-ms", type=float, default=0.0,
                   help="hold every request N ms in a delay proxy in front of moto (a round trip to S3)")
    p.add_argument("--latency-proxy", metavar="PATH", help="the peer kit's latency_proxy.py (default: "
                   "$LINDIVC_LATENCY_PROXY, else shared/peers/tools/ in a parent directory of the checkout)")
    p.add_argument("--phases", action=argparse.BooleanOptionalAction, default=True,
                   help="after the timed runs, run the J1, no-op and one-chunk pushes once more with timers "
                   "around push's steps and print where their time goes (default: on)")
    p.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    p.add_argument("--floor-op", nargs=4, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        repo, n, size, seed, row = args.child
        child_write(repo, int(n), int(size), int(seed), int(row))
        return
    if args.floor_op:
        child_floor(*args.floor_op)
        return
    if args.latency_ms < 0:
        raise SystemExit("--latency-ms must be >= 0")
    lat = args.latency_ms
    proxy_script = find_proxy_script(args.latency_proxy) if lat > 0 else None
    n1 = max(2, round(100 * args.scale))
    n_big = max(2, round(400 * args.scale))
    tmp = tempfile.mkdtemp(prefix="lindivc-bench-push-")
    moto = Moto(tmp)
    proxy = LatencyProxy(proxy_script, moto.port, lat, tmp) if proxy_script else None
    probe = LatencyProxy(proxy_script, moto.port, max(200.0, 10 * lat), tmp) if proxy_script else None
    net = proxy.url if proxy else moto.url  # what lindivc and the floors talk to
    ENV["AWS_ENDPOINT_URL"] = net
    os.environ["AWS_ENDPOINT_URL"] = net
    rep = Report()
    try:
        s3 = s3_client(moto.url)  # the harness's own requests (set-up, listings) go straight to moto
        s3net = s3_client(net)
        for b in ("floor", "lvc"):
            s3.create_bucket(Bucket=b)
        run(lindivc_cmd() + ["--help"])  # bytecode caches

        # -- J1 preparation (not timed)
        repo = make_repo(os.path.join(tmp, "j1"))
        write_chunks(repo, n1, CHUNK)
        run(lindivc_cmd() + ["commit", "-a", "-m", "J1: 100 chunks of 5 MiB"], cwd=repo)
        files = chunk_files(repo, CHUNK)
        assert len(files) == n1, (len(files), n1)
        total = sum(os.path.getsize(f) for f in files)
        if args.phases:  # J1 as committed, for the phase run after the timed ones
            copy_repo(repo, os.path.join(tmp, "j1-phases"))
        run(lindivc_cmd() + ["remote", "add", "origin", "s3://lvc/j1"], cwd=repo)

        # -- floor, best of 3 (the bucket emptied between runs), interleaved with the push so that
        # both see the same machine (other processes, moto's state)
        floors, pack_floors = [], []

        def floor_run() -> None:
            settle()
            floors.append(floor_puts(s3net, "floor", files))
            empty_bucket(s3, "floor")
            settle()
            pack_floors.append(floor_pack_puts(net, "floor", files))
            empty_bucket(s3, "floor")

        floor_run()
        floor_run()
        settle()
        load = os.getloadavg()[0]
        push, reqs = timed_push(repo, moto, proxy)
        floor_run()
        fl = min(floors)
        objs = listing(s3, "lvc", "j1/sha1/")
        if proxy:
            print(f"network: latency proxy at {proxy.url}, {lat:g} ms added before each request, in front of "
                  f"moto_server at {moto.url}")
        else:
            print(f"network: direct to moto_server at {moto.url} (no added latency)")
        print(f"lindivc timed as whole CLI subprocesses ({' '.join(lindivc_cmd())} push)")
        print(f"J1: {n1} chunks x {CHUNK // MiB} MiB = {total / MiB:.0f} MiB; floor runs "
              + ", ".join(f"{x:.2f}" for x in floors) + " s; pack-shaped floor runs "
              + ", ".join(f"{x:.2f}" for x, _ in pack_floors) + f" s; load average before the push {load:.1f}")
        print(f"  {'figure':28} {'floor':>12} {'lindivc':>12} {'ratio':>8}   {'target':14}")
        r1 = push.seconds / fl
        rep.line("J1 push (s)", f"{fl:.2f}", f"{push.seconds:.2f}", f"{r1:.2f}", "ratio <= 1.2",
                 r1 <= 1.2 if not lat else None)
        pfl = min(t for t, _ in pack_floors)
        rep.line(f"J1 push vs {pack_floors[0][1]} raw pack PUTs", f"{pfl:.2f}", f"{push.seconds:.2f}",
                 f"{push.seconds / pfl:.2f}", "(lindivc's shape)", None)
        rep.line("J1 data objects (sha1/)", f"{n1}", f"{len(objs)}", f"{len(objs) / n1:.2f}", "<= 10",
                 len(objs) <= 10)
        rep.line("J1 data bytes", f"{total}", f"{sum(objs.values())}", "", "", None)
        rep.line("J1 requests", f"{n1}", f"{len(reqs)}", "", "", None)
        rep.line("J1 push peak RSS (MB)", "", f"{push.maxrss / 1e6:.0f}", "", "", None)

        # -- no-op push (best of 3: it changes nothing); floor: one GET of the branch ref
        before = listing(s3, "lvc")
        noop, reqs = best_push(repo, moto, proxy)
        after = listing(s3, "lvc")
        new_bytes = sum(v for k, v in after.items() if k not in before and "/sha1/" in k)
        fl_noop = floor_process("get", "lvc", "j1/git/refs/heads/main", "", net)
        rep.line("no-op push (s)", f"{fl_noop:.2f}", f"{noop.seconds:.2f}", f"{noop.seconds / fl_noop:.2f}",
                 "<= 0.5 s", noop.seconds <= 0.5 if not lat else None)
        if probe:
            direct, _ = best_push(repo, moto, proxy, endpoint=moto.url)
            slow, _ = best_push(repo, moto, proxy, endpoint=probe.url)
            rep.line("  same, direct to moto (s)", "", f"{direct.seconds:.2f}", "", "", None)
            rep.line(f"  same, {probe.latency_ms:g} ms proxy (s)", "", f"{slow.seconds:.2f}", "", "", None)
            rep.line("  round trips on its path", "", round_trips(slow, direct, probe.latency_ms), "", "", None)
        rep.line("no-op data bytes", "0", f"{new_bytes}", "", "0", new_bytes == 0)
        rep.line("no-op requests", "1", f"{len(reqs)}", "", "a handful", len(reqs) <= 5)
        for line in reqs:
            print("      " + line.split('"', 1)[-1][:100])

        # -- one chunk changed; floor: one PUT of the new chunk
        probes: list[Run] = []
        if probe:  # the same kind of change pushed straight to moto, then through the long delay
            for i, endpoint in enumerate((moto.url, probe.url)):
                write_chunks(repo, n1, CHUNK, seed=97 + i, row=(n1 // 2 - 1 - i) % n1)
                run(lindivc_cmd() + ["commit", "-a", "-m", f"one chunk changed ({endpoint})"], cwd=repo)
                settle()
                probes.append(timed_push(repo, moto, proxy, endpoint=endpoint)[0])
        write_chunks(repo, n1, CHUNK, seed=99, row=n1 // 2)
        run(lindivc_cmd() + ["commit", "-a", "-m", "one chunk changed"], cwd=repo)
        before = listing(s3, "lvc")
        settle()
        one, reqs = timed_push(repo, moto, proxy)
        after = listing(s3, "lvc")
        added = {k: v for k, v in after.items() if before.get(k) != v}
        data_new = sum(v for k, v in added.items() if "/sha1/" in k)
        meta_new = sum(v for k, v in added.items() if "/sha1/" not in k)
        fl_one = floor_process("put", "floor", "one-chunk", max(chunk_files(repo, CHUNK), key=os.path.getmtime), net)
        rep.line("one-chunk push (s)", f"{fl_one:.2f}", f"{one.seconds:.2f}", f"{one.seconds / fl_one:.2f}",
                 "<= 1 s", one.seconds <= 1.0 if not lat else None)
        if probe:
            rep.line("  same, direct to moto (s)", "", f"{probes[0].seconds:.2f}", "", "", None)
            rep.line(f"  same, {probe.latency_ms:g} ms proxy (s)", "", f"{probes[1].seconds:.2f}", "", "", None)
            rep.line("  round trips on its path", "", round_trips(probes[1], probes[0], probe.latency_ms), "", "", None)
        rep.line("one-chunk data bytes", f"{CHUNK}", f"{data_new}", f"{data_new / CHUNK:.2f}", "= 5 MiB",
                 data_new == CHUNK)
        rep.line("one-chunk metadata bytes", "", f"{meta_new}", "", "", None)
        rep.line("one-chunk requests", "1", f"{len(reqs)}", "", "", None)
        for line in reqs:
            print("      " + line.split('"', 1)[-1][:100])

        # -- 2 GiB peak RSS
        if not args.skip_big:
            big = os.path.join(tmp, "big")
            make_big_repo(big, n_big, CHUNK)
            run(lindivc_cmd() + ["remote", "add", "origin", "s3://lvc/big"], cwd=big)
            settle()
            bp, _ = timed_push(big, moto, proxy, timeout=900)
            objs = listing(s3, "lvc", "big/sha1/")
            rep.line(f"push {n_big * CHUNK / 2**30:.2f} GiB (s)", "", f"{bp.seconds:.2f}", "", "", None)
            rep.line("  objects / GiB/s", "", f"{len(objs)}", f"{n_big * CHUNK / 2**30 / bp.seconds:.2f}", "", None)
            rep.line("push 2 GiB peak RSS (MB)", "", f"{bp.maxrss / 1e6:.0f}", "", "<= 300 MB", bp.maxrss <= 300e6)

        # -- where the time goes: the same pushes once more, after every timed run, with timers
        if args.phases:
            print(f"where a push's time goes (--phases): one more run of each push after the timed ones, "
                  f"through {os.path.relpath(push_phases.__file__, ROOT)}; load average {os.getloadavg()[0]:.1f}")
            print("  rows marked || run on another thread alongside the step named, rows marked . are parts "
                  "of the row above; neither adds to the sum. Requests as botocore sent them.")
            j1p = os.path.join(tmp, "j1-phases")
            run(lindivc_cmd() + ["remote", "add", "origin", "s3://lvc/j1-phases"], cwd=j1p)
            phase_push(f"J1 first push ({total / MiB:.0f} MiB, a fresh zone)", j1p, moto, f"timed run {push.seconds:.2f} s", tmp, "j1")
            empty_bucket(s3, "lvc", "j1-phases/")
            write_chunks(repo, n1, CHUNK, seed=101, row=(n1 // 2 + 1) % n1)
            run(lindivc_cmd() + ["commit", "-a", "-m", "one chunk changed (phases)"], cwd=repo)
            phase_push("one-chunk push", repo, moto, f"timed run {one.seconds:.2f} s", tmp, "one")
            phase_push("no-op push", repo, moto, f"timed run, best of 3: {noop.seconds:.2f} s", tmp, "noop")
    finally:
        for px in (proxy, probe):
            if px is not None:
                px.stop()
        moto.stop()
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print("RESULT: " + ("MISS" if rep.missed else "PASS"))
    sys.exit(1 if rep.missed else 0)


if __name__ == "__main__":
    main()
