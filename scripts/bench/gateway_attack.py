#!/usr/bin/env python
"""The gateway under attack (issue 10): honest uploaders' throughput with and without hostile load.

Starts a moto S3 server and `lindivc serve` (default limits) as subprocesses and a stand-in GitHub
API in-process, all on 127.0.0.1. Then two phases of SECONDS each, CLIENTS honest threads (default
50, each with its own token) uploading random objects under sha1 keys, as in gateway_load.py:

1. baseline: the honest uploaders alone;
2. attack: the same, while an attacker keeps IDLE (default 300) half-open connections open
   (request headers never finished, one more byte now and then, reconnecting whenever the gateway
   closes one) and SLOW (default 30) uploads that send 8 MiB of body and then stall.

Prints each phase's figures, the ratio attack/baseline of honest uploads per second (target
>= 0.8) and the gateway's RSS before, after the baseline and at its peak under attack (target:
bounded, under 2x the baseline). Exit status 1 if a target is missed or an honest upload failed.

    .venv/bin/python scripts/bench/gateway_attack.py [--seconds 20] [--clients 50] [--idle 300] [--slow 30]
"""
from __future__ import annotations

import argparse
import hashlib
import os
import random
import select
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, HERE)

import boto3  # noqa: E402
import psutil  # noqa: E402

from gateway_load import BUCKET, free_port, report, run_clients, wait_http  # noqa: E402
from github_standin import GitHubStandin  # noqa: E402
from lindivc.layout import object_key  # noqa: E402
from lindivc.zones.gateway import GatewayZone  # noqa: E402


class Attacker:
    """Keeps ``idle`` half-open connections and ``slow`` stalled uploads open until stopped."""

    def __init__(self, port: int, idle: int, slow: int, token: str) -> None:
        self.port, self.idle, self.slow, self.token = port, idle, slow, token
        self.opened = 0
        self.closed_by_server = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _open_idle(self) -> socket.socket:
        s = socket.create_connection(("127.0.0.1", self.port))
        s.sendall(b"GET /api/now HTTP/1.1\r\nHost: gateway\r\nX-Slow: a")
        self.opened += 1
        return s

    def _open_slow(self, i: int) -> socket.socket:
        s = socket.create_connection(("127.0.0.1", self.port))
        s.sendall(f"PUT /zones/attacker/z/f/slow{i}.json HTTP/1.1\r\nHost: gateway\r\n"
                  f"Authorization: token {self.token}\r\nContent-Length: {64 << 20}\r\n\r\n".encode())
        s.setblocking(False)
        block = b" " * (1 << 20)
        for _ in range(8):  # 8 MiB, then nothing
            try:
                s.send(block)
            except BlockingIOError:
                time.sleep(0.05)
        self.opened += 1
        return s

    def _run(self) -> None:
        conns: dict[socket.socket, tuple[str, int]] = {}
        for i in range(self.idle):
            conns[self._open_idle()] = ("idle", i)
        for i in range(self.slow):
            conns[self._open_slow(i)] = ("slow", i)
        last_trickle = time.monotonic()
        while not self._stop.is_set():
            ready, _, _ = select.select(list(conns), [], [], 0.2)
            for s in ready:  # the gateway answered (408, 503) or closed it: open another
                kind, i = conns.pop(s)
                s.close()
                self.closed_by_server += 1
                conns[self._open_idle() if kind == "idle" else self._open_slow(i)] = (kind, i)
            if time.monotonic() - last_trickle > 2:  # one more header byte now and then
                last_trickle = time.monotonic()
                for s, (kind, _) in list(conns.items()):
                    if kind == "idle":
                        try:
                            s.send(b"a")
                        except OSError:
                            pass
        for s in conns:
            s.close()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


class RssSampler:
    """Samples a process's RSS every 0.2 s; ``peak`` in bytes."""

    def __init__(self, pid: int) -> None:
        self.proc = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def now(self) -> int:
        return self.proc.memory_info().rss

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.now())
            time.sleep(0.2)

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20.0, help="duration of each phase")
    ap.add_argument("--clients", type=int, default=50, help="honest uploaders")
    ap.add_argument("--size", type=int, default=64 << 10, help="bytes per honest upload")
    ap.add_argument("--idle", type=int, default=300, help="half-open connections the attacker keeps")
    ap.add_argument("--slow", type=int, default=30, help="stalled uploads (8 MiB sent each) the attacker keeps")
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
        boto3.client("s3", endpoint_url=moto).create_bucket(Bucket=BUCKET)
        tokens = {f"tok-user{i}": f"user{i}" for i in range(args.clients)}
        tokens["tok-attacker"] = "attacker"
        with GitHubStandin(tokens) as gh:
            gw_port = free_port()
            gw = f"http://127.0.0.1:{gw_port}"
            gateway = subprocess.Popen([sys.executable, "-m", "lindivc.cli", "serve", "--bucket", BUCKET,
                                        "--endpoint-url", moto, "--github-api-url", gh.url, "--port", str(gw_port)],
                                       cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                       stderr=open(os.path.join(logdir, "gateway.log"), "w"))
            procs.append(gateway)
            wait_http(gw + "/api/now")
            rss = RssSampler(gateway.pid)
            rss_start = rss.now()
            zones = [GatewayZone(f"{gw}/zones/user{i}/bench", f"tok-user{i}") for i in range(args.clients)]

            def upload(i: int, rng: random.Random) -> int:
                data = rng.randbytes(args.size)
                zones[i].put(object_key(hashlib.sha1(data).hexdigest()), data)
                return len(data)

            print(f"gateway under attack: {args.clients} honest clients, {args.size} B objects, {args.seconds:.0f} s "
                  f"per phase; attacker: {args.idle} half-open connections, {args.slow} stalled 8 MiB uploads")
            lat, errors, nbytes = run_clients(args.clients, args.seconds, upload)
            base = report("baseline (honest only)", lat, errors, nbytes, args.seconds)
            rss_base = rss.now()

            attacker = Attacker(gw_port, args.idle, args.slow, "tok-attacker")
            attacker.start()
            time.sleep(2)  # let the attacker's connections settle
            with rss:
                lat2, errors2, nbytes2 = run_clients(args.clients, args.seconds, upload)
            attacker.stop()
            hostile = report("under attack", lat2, errors2, nbytes2, args.seconds)
            for z in zones:
                z.close()
            ratio = hostile / base if base else 0.0
            print(f"attacker connections opened {attacker.opened}, closed by the gateway {attacker.closed_by_server}")
            print(f"gateway RSS: start {rss_start / 1e6:.0f} MB, after baseline {rss_base / 1e6:.0f} MB, "
                  f"peak under attack {rss.peak / 1e6:.0f} MB, end {rss.now() / 1e6:.0f} MB")
            ok_ratio = ratio >= 0.8
            ok_rss = rss.peak <= 2 * rss_base
            print(f"honest throughput under attack / baseline: {ratio:.2f}   target >= 0.8   "
                  f"{'PASS' if ok_ratio else 'MISS'}")
            print(f"peak RSS under attack / after baseline: {rss.peak / rss_base:.2f}   target <= 2   "
                  f"{'PASS' if ok_rss else 'MISS'}")
            ok = ok_ratio and ok_rss and not errors and not errors2
            print("RESULT:", "PASS" if ok else "MISS")
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
