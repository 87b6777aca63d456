#!/usr/bin/env python
"""Load test of the zone gateway, loopback only, bounded in time.

Starts a moto S3 server and a gateway (`lindivc serve`) as subprocesses and a stand-in GitHub API
in-process, all on 127.0.0.1. Then CLIENTS threads (default 50), each with its own token and
GatewayZone, upload random objects under sha1 keys for SECONDS (default 30). Then it measures a
floor: the same uploads straight to moto with boto3 for --floor-seconds. Finally it reads back
every stored object and checks it hashes to its key.

Prints requests, errors, p50/p99 latency, throughput, and gateway/direct throughput ratio.
Exit status 1 on any upload error or corrupted/missing object.

    .venv/bin/python scripts/bench/gateway_load.py [--seconds 30] [--clients 50] [--size 65536]
"""
from __future__ import annotations

import argparse
import hashlib
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))

import boto3  # noqa: E402
import requests  # noqa: E402
from botocore.config import Config  # noqa: E402

from github_standin import GitHubStandin  # noqa: E402
from lindivc.layout import object_key  # noqa: E402
from lindivc.zones.gateway import GatewayZone  # noqa: E402

BUCKET = "lindivc-bench"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=1)
            return
        except requests.RequestException:
            time.sleep(0.1)
    raise SystemExit(f"no answer from {url} within {timeout} s")


def percentile(xs: list[float], p: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def run_clients(n: int, seconds: float, upload) -> tuple[list[float], list[str], int]:
    """``upload(client_index, rng)`` in ``n`` threads for ``seconds``; (latencies, errors, bytes)."""
    lat: list[float] = []
    errors: list[str] = []
    sent = [0]
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def worker(i: int) -> None:
        rng = random.Random(i * 7919 + int(time.time()))
        mine, my_err, my_bytes = [], [], 0
        while time.monotonic() < stop:
            t0 = time.perf_counter()
            try:
                my_bytes += upload(i, rng)
                mine.append(time.perf_counter() - t0)
            except Exception as e:  # counted and reported, the run goes on
                my_err.append(f"{type(e).__name__}: {e}"[:200])
        with lock:
            lat.extend(mine)
            errors.extend(my_err)
            sent[0] += my_bytes

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return lat, errors, sent[0]


def report(name: str, lat: list[float], errors: list[str], nbytes: int, seconds: float) -> float:
    rps = len(lat) / seconds
    print(f"{name}: requests {len(lat) + len(errors)}, errors {len(errors)}, "
          f"p50 {percentile(lat, 50) * 1000:.1f} ms, p99 {percentile(lat, 99) * 1000:.1f} ms, "
          f"{rps:.0f} uploads/s, {nbytes / seconds / 1e6:.1f} MB/s")
    for e in sorted(set(errors))[:5]:
        print(f"  error: {e}")
    return rps


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=30.0, help="duration of the gateway load phase")
    ap.add_argument("--floor-seconds", type=float, default=10.0, help="duration of the direct-to-S3 phase")
    ap.add_argument("--clients", type=int, default=50, help="concurrent clients")
    ap.add_argument("--size", type=int, default=64 << 10, help="bytes per object (random, unique)")
    args = ap.parse_args()

    env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": "us-east-1"}
    env.pop("AWS_PROFILE", None)
    os.environ.update({k: env[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")})
    procs: list[subprocess.Popen] = []
    logdir = tempfile.mkdtemp(prefix="lindivc-bench-")
    try:
        moto_port = free_port()
        moto = f"http://127.0.0.1:{moto_port}"
        procs.append(subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(moto_port)],
                                      stdout=subprocess.DEVNULL, stderr=open(os.path.join(logdir, "moto.log"), "w"),
                                      env=env))
        wait_http(moto)
        s3 = boto3.client("s3", endpoint_url=moto, config=Config(max_pool_connections=args.clients + 8))
        s3.create_bucket(Bucket=BUCKET)

        tokens = {f"tok-user{i}": f"user{i}" for i in range(args.clients)}
        with GitHubStandin(tokens) as gh:
            gw_port = free_port()
            gw = f"http://127.0.0.1:{gw_port}"
            code = ("from lindivc.server.app import run_server; "
                    f"run_server({BUCKET!r}, endpoint_url={moto!r}, github_api_url={gh.url!r}, port={gw_port})")
            procs.append(subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env,
                                          stdout=subprocess.DEVNULL,
                                          stderr=open(os.path.join(logdir, "gateway.log"), "w")))
            wait_http(gw + "/api/now")

            zones = [GatewayZone(f"{gw}/zones/user{i}/bench", f"tok-user{i}") for i in range(args.clients)]

            def via_gateway(i: int, rng: random.Random) -> int:
                data = rng.randbytes(args.size)
                zones[i].put(object_key(hashlib.sha1(data).hexdigest()), data)
                return len(data)

            print(f"gateway load: {args.clients} clients, {args.size} B objects, {args.seconds:.0f} s "
                  f"(moto {moto}, gateway {gw}, GitHub stand-in {gh.url})")
            lat, errors, nbytes = run_clients(args.clients, args.seconds, via_gateway)
            gw_rps = report("gateway", lat, errors, nbytes, args.seconds)
            print(f"GitHub /user requests: {gh.requests} (one per token; the rest cached)")

            def direct(i: int, rng: random.Random) -> int:
                data = rng.randbytes(args.size)
                key = f"floor/user{i}/" + object_key(hashlib.sha1(data).hexdigest())
                s3.put_object(Bucket=BUCKET, Key=key, Body=data, ContentType="application/octet-stream")
                return len(data)

            flat, ferrors, fbytes = run_clients(args.clients, args.floor_seconds, direct)
            floor_rps = report("direct boto3 -> moto (floor)", flat, ferrors, fbytes, args.floor_seconds)
            print(f"gateway throughput / direct: {gw_rps / floor_rps:.2f}")

            # verify every object the gateway stored
            keys = []
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix="zones/"):
                keys += [o["Key"] for o in page.get("Contents", [])]

            def check(key: str) -> bool:
                body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
                return hashlib.sha1(body).hexdigest() == key.rsplit("/", 1)[1] and len(body) == args.size

            with ThreadPoolExecutor(16) as ex:
                bad = sum(1 for ok in ex.map(check, keys) if not ok)
            print(f"verify: {len(keys)} objects stored, {len(lat)} uploads acknowledged, {bad} corrupted")
            for z in zones:
                z.close()
            ok = not errors and bad == 0 and len(keys) >= len(lat)
            print("RESULT:", "ok" if ok else "FAILED")
            return 0 if ok else 1
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()


if __name__ == "__main__":
    sys.exit(main())
