"""Progress tells the truth: S3 upload bars count bytes as they are sent (not while botocore
hashes the body to sign it), sizes are in binary units everywhere, a bar is one line at 80
columns, a bar of unknown total shows what was done (not "0/?"), nothing is drawn on a pipe, and
gc --prune, gc --evict-pushed and fsck show bars that reach their totals."""
from __future__ import annotations

import contextlib
import io
import os
import re
import socket
import threading
import time

import pytest
from click.testing import CliRunner
from rich.console import Console

from lindivc.layout import object_key
from lindivc.packstream import ConcatReader, PackSource, Segment
from lindivc.progress import Reporter, RichReporter, human_bytes

MiB = 1 << 20
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


# ------------------------------------------------------------------ units and layout


def test_human_bytes_uses_binary_units():
    assert human_bytes(0) == "0 B"
    assert human_bytes(1023) == "1023 B"
    assert human_bytes(1536) == "1.5 KiB"
    assert human_bytes(196_200_000) == "187.1 MiB"  # the bar said "196.2 MB" for these bytes
    assert human_bytes(5 << 30) == "5.0 GiB"


def _renders(raw: str) -> list[str]:
    """Each line a live display drew (control sequences removed), one entry per refresh."""
    return [p for p in re.split(r"[\r\n]", ANSI.sub("", raw)) if p.strip()]


def _draw(width: int, description: str, total: int | None, steps: list[int], unit: str = "bytes") -> list[str]:
    out = io.StringIO()
    console = Console(width=width, force_terminal=True, file=out, record=True)
    with RichReporter(console).task(description, total, unit=unit) as advance:
        for n in steps:
            advance(n)
            time.sleep(0.05)  # lets rich measure a rate: the widest form of the rate column
    return _renders(out.getvalue())


@pytest.mark.parametrize("width", [60, 80, 120])
def test_upload_bar_is_one_line_in_binary_units(width):
    lines = _draw(width, "Uploading 1234 chunks in 20 objects", 196_200_000, [50_000_000, 100_000_000, 46_200_000])
    assert lines
    for line in lines:  # the live display redraws in place: every drawing must be one line
        assert len(line) <= width, line
    last = lines[-1]
    assert "187.1/187.1 MiB" in last and re.search(r"\d [KMG]iB/s", last), last
    assert not re.search(r"\d (MB|GB|kB)\b", "\n".join(lines))  # no decimal units anywhere


def test_bar_at_80_columns_keeps_the_description_start_and_all_numbers():
    line = _draw(80, "Uploading 123456 chunks in 2000 objects to a zone with a long name", 5 << 30,
                 [3 << 30])[-1]
    assert len(line) <= 80
    assert line.startswith("Uploading 123456 chunks") and "…" in line
    assert "3.0/5.0 GiB" in line and "━" in line


def test_bar_of_unknown_total_shows_bytes_done_not_a_question_mark():
    lines = _draw(80, "Uploading history", None, [1536])
    assert "1.5 KiB" in lines[-1]
    assert "?" not in lines[-1].split("KiB")[0], lines[-1]
    assert all("/?" not in ln and "bytes" not in ln for ln in lines)


def test_count_bars_show_items():
    assert "3/20" in _draw(80, "Checking packs", 20, [3], unit="packs")[-1]
    assert "7" in _draw(80, "Listing", None, [7], unit="objects")[-1]


def test_nothing_is_drawn_when_stderr_is_not_a_terminal():
    out = io.StringIO()
    with RichReporter(Console(file=out, width=80)).task("Uploading", 100) as advance:
        advance(100)
    assert out.getvalue() == ""


def test_push_through_the_cli_draws_no_bar_on_a_pipe(tmp_path, monkeypatch):
    from lindivc.cli import cli
    from lindivc.testdata import make_nwb

    make_nwb(str(tmp_path / "s.nwb"), n_units=2, duration=5, n_channels=2, lfp_seconds=1)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    for args in (["init"], ["import", "s.nwb", "--ingest"], ["commit", "-m", "x"],
                 ["remote", "add", "origin", str(tmp_path / "zone")]):
        assert runner.invoke(cli, args).exit_code == 0
    res = runner.invoke(cli, ["push"])
    assert res.exit_code == 0, res.output
    assert "━" not in res.output and "Uploading" not in res.output and "\x1b[" not in res.output
    assert "MiB" in res.output or "KiB" in res.output or " B " in res.output


# ------------------------------------------------------------------ S3: bytes as they are sent


class CountingProxy:
    """A TCP proxy on loopback in front of ``target`` (host, port) that counts the bytes clients
    send through it: what has really left the uploading process. Small socket buffers keep
    what the kernel holds between the two sides small."""

    BUF = 64 * 1024

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.received = 0
        self._lock = threading.Lock()
        self._srv = socket.create_server(("127.0.0.1", 0))
        self._srv.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.BUF)
        self.url = f"http://127.0.0.1:{self._srv.getsockname()[1]}"
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop:
            try:
                client, _ = self._srv.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, count: bool) -> None:
        try:
            while True:
                data = src.recv(self.BUF)
                if not data:
                    break
                if count:
                    with self._lock:
                        self.received += len(data)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self._stop = True
        self._srv.close()


# what may sit between a counted read and the proxy: the client's socket send buffer (at most
# net.ipv4.tcp_wmem's maximum), the proxy's small receive buffer, one read block
def _slack() -> int:
    try:
        with open("/proc/sys/net/ipv4/tcp_wmem") as f:
            wmem = int(f.read().split()[2])
    except OSError:
        wmem = 4 * MiB
    return wmem + 2 * CountingProxy.BUF + MiB


@pytest.fixture
def s3_via_proxy(s3_bucket, monkeypatch):
    from urllib.parse import urlparse

    u = urlparse(os.environ["AWS_ENDPOINT_URL"])
    proxy = CountingProxy((u.hostname, u.port))
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
    yield proxy, s3_bucket
    proxy.close()


class Recorder:
    """A progress callback that checks, at every report, that no more bytes are reported sent
    than the proxy has received (plus what kernel buffers can hold)."""

    def __init__(self, proxy: CountingProxy, slack: int) -> None:
        self.proxy, self.slack = proxy, slack
        self.reported = 0
        self.worst = 0  # largest lead of reported bytes over bytes the proxy had received
        self._lock = threading.Lock()

    def __call__(self, n: int) -> None:
        with self._lock:
            self.reported += n
            self.worst = max(self.worst, self.reported - self.proxy.received)


def _chunk_files(tmp_path, n: int, size: int) -> list[Segment]:
    import hashlib

    segs = []
    for i in range(n):
        data = os.urandom(size)
        p = tmp_path / f"c{i}"
        p.write_bytes(data)
        segs.append(Segment(hashlib.sha1(data).hexdigest(), str(p), 0, size))
    return segs


def _assert_counted_as_sent(rec: Recorder, size: int) -> None:
    assert rec.reported == size  # every byte once, none twice
    assert rec.worst <= rec.slack, (
        f"progress ran {human_bytes(rec.worst)} ahead of the bytes sent (allowed: {human_bytes(rec.slack)})")


@pytest.mark.parametrize("signing", [False, True])
def test_s3_pack_upload_counts_bytes_as_sent(s3_via_proxy, tmp_path, signing):
    """A pack streamed from its chunk files in one PUT, as push sends it: read once, as it is sent
    (payload signing is off). A client that signs payloads reads the whole body once to sign it
    before sending a byte; that pass must not move the bar."""
    from lindivc.zones.s3 import S3Zone, make_client

    proxy, bucket = s3_via_proxy
    slack = _slack()
    src = PackSource(_chunk_files(tmp_path, 5, 8 * MiB))
    assert src.size >= 4 * slack  # the signing pass alone would run far past the slack
    idx = src.index()
    rec = Recorder(proxy, slack)
    reads = []
    client = make_client()
    if signing:
        client.meta.config.s3 = {**(client.meta.config.s3 or {}), "payload_signing_enabled": True}
    zone = S3Zone(f"s3://{bucket}/zones/ada/p", client=client)
    with src.open(rec) as body:
        real_read = body.read

        def counting_read(n=-1):
            data = real_read(n)
            reads.append(len(data))
            return data

        body.read = counting_read
        zone.put_stream(object_key(idx.pack), body, src.size)
        assert body.verified
    if signing:
        assert sum(reads) >= 2 * src.size  # the body was read twice: signed, then sent ...
    else:
        assert sum(reads) == src.size  # no signing pass: one read, the send
    _assert_counted_as_sent(rec, src.size)  # ... and only the send was counted


def test_s3_single_put_of_a_file_counts_bytes_as_sent(s3_via_proxy, tmp_path):
    from lindivc.zones.s3 import S3Zone

    proxy, bucket = s3_via_proxy
    slack = _slack()
    (seg,) = _chunk_files(tmp_path, 1, 4 * slack)
    rec = Recorder(proxy, slack)
    S3Zone(f"s3://{bucket}/zones/ada/f").put_file(object_key(seg.sha), seg.path, progress=rec)
    _assert_counted_as_sent(rec, seg.size)


def test_s3_multipart_uploads_count_bytes_as_sent(s3_via_proxy, tmp_path):
    """Both multipart paths: a file above multipart_threshold (s3transfer, parts in parallel),
    and a stream above the single-PUT limit (parts one at a time from the same stream)."""
    from lindivc.zones.s3 import S3Zone

    proxy, bucket = s3_via_proxy
    slack = _slack()
    segs = _chunk_files(tmp_path, 4, 8 * MiB)
    zone = S3Zone(f"s3://{bucket}/zones/ada/m", multipart_threshold=8 * MiB, part_size=8 * MiB, max_concurrency=2)

    zone.single_put_limit = 12 * MiB
    rec = Recorder(proxy, slack)
    with ConcatReader(segs, rec) as body:
        zone.put_stream(object_key("2" * 40), body, 32 * MiB)
    _assert_counted_as_sent(rec, 32 * MiB)
    big = tmp_path / "big"
    with open(big, "wb") as out:
        for s in segs:
            out.write(open(s.path, "rb").read())
    assert zone.get(object_key("2" * 40)) == big.read_bytes()

    rec = Recorder(proxy, slack * 2)  # two parts in flight: two send buffers
    zone.put_file(object_key("1" * 40), str(big), progress=rec)
    _assert_counted_as_sent(rec, 32 * MiB)


# ------------------------------------------------------------------ gc and fsck: bars of long work


class RecordingReporter(Reporter):
    """Records every task: its description, total, unit, and what was reported done."""

    def __init__(self) -> None:
        self.tasks: list[dict] = []

    @contextlib.contextmanager
    def task(self, description, total=None, unit="bytes"):
        rec = {"description": description, "total": total, "unit": unit, "done": 0}
        self.tasks.append(rec)

        def advance(n: int) -> None:
            rec["done"] += n

        yield advance


def _all_done(rep: RecordingReporter) -> None:
    assert rep.tasks
    for t in rep.tasks:
        assert t["done"] == t["total"], t


def _zone_with_garbage(tmp_path):
    """A local zone whose first push's pack, index and published version are old garbage after
    a force push of rewritten history; and the repository."""
    import lindivc
    import numpy as np

    from lindivc.push import push
    from test_gc import HOUR, N, age, make_repo, orphan

    r, name = make_repo(tmp_path / "a", seed=21, n_chunks=7, pack_size=300_000)  # 2 packs, 1 lone chunk
    zdir = str(tmp_path / "zone")
    r.config.add_remote("origin", zdir)
    push(r)
    with lindivc.open(r.abspath(name), "r+") as f:
        f["d"][:] = np.random.default_rng(22).standard_normal(7 * N)  # every chunk new
    r.commit("replace data", all=True)
    orphan(r)
    push(r, force=True)
    age(zdir, 2 * HOUR)
    return r, zdir


def test_zone_gc_prune_bar_advances_to_its_total(tmp_path):
    from lindivc import gc
    from lindivc.zones import open_zone

    from test_gc import HOUR

    _, zdir = _zone_with_garbage(tmp_path)
    rep = RecordingReporter()
    plan = gc.gc_zone(open_zone(zdir), prune=True, grace=HOUR, cache_dir=str(tmp_path / "c"), reporter=rep)
    assert plan.swept and plan.deleted
    _all_done(rep)
    assert all(t["unit"] == "objects" and t["description"].startswith("Deleting ") for t in rep.tasks)
    # one bar per kind, in the order of the sweep, each with its count and its bytes
    counts = plan.counts()
    assert counts == {"index": 3, "version": 1, "pack": 2, "object": 1}
    assert [re.sub(r" \(\d+(\.\d)? (B|KiB)\)$", "", t["description"]) for t in rep.tasks] == [
        "Deleting 3 pack indexes", "Deleting 1 published file", "Deleting 2 packs", "Deleting 1 object"]
    assert sum(t["total"] for t in rep.tasks) == plan.deleted


def test_local_gc_prune_and_evict_bars_advance_to_their_totals(tmp_path):
    from lindivc import gc
    from lindivc.push import push

    from test_gc import make_repo

    r, _ = make_repo(tmp_path / "a", seed=23)
    old = time.time() - 30 * 86400
    garbage = [r.objects.put_bytes(os.urandom(1000 + i)) for i in range(4)]
    for sha in garbage:
        os.utime(r.objects.path(sha), (old, old))
    rep = RecordingReporter()
    plan = gc.gc_local(r, prune=True, reporter=rep)
    assert plan.deleted == 4
    _all_done(rep)
    assert [(t["description"], t["total"], t["unit"]) for t in rep.tasks] == [
        ("Deleting 4 local objects (3.9 KiB)", 4, "objects")]

    r.config.add_remote("origin", str(tmp_path / "zone"))
    push(r)
    rep = RecordingReporter()
    plan = gc.gc_local(r, prune=True, evict_pushed=True, reporter=rep)
    assert plan.counts() == {"evict": 5}
    _all_done(rep)
    assert [t["total"] for t in rep.tasks] == [5]
    assert rep.tasks[0]["description"].startswith("Deleting 5 local objects")
    rep = RecordingReporter()
    gc.gc_local(r, prune=True, reporter=rep)  # nothing left to delete: no bar at all
    assert rep.tasks == []


def test_fsck_read_data_bar_counts_every_byte_read(tmp_path):
    from lindivc.fsck import fsck_local, fsck_zone
    from lindivc.zones import open_zone

    r, zdir = _zone_with_garbage(tmp_path)
    zone = open_zone(zdir)
    objects = [i for i in zone.list("sha1/")]
    rep = RecordingReporter()
    assert fsck_zone(zone, read_data=True, cache_dir=str(tmp_path / "c"), reporter=rep).ok
    assert [(t["description"], t["unit"]) for t in rep.tasks] == [(f"Reading {len(objects)} objects", "bytes")]
    assert rep.tasks[0]["total"] == sum(i.size for i in objects) > 0
    _all_done(rep)
    rep = RecordingReporter()
    fsck_zone(zone, cache_dir=str(tmp_path / "c"), reporter=rep)  # without --read-data nothing is read
    assert rep.tasks == []
    rep = RecordingReporter()
    assert fsck_local(r, reporter=rep).ok  # the local store is always read in full
    local = list(r.objects)
    assert [t["description"] for t in rep.tasks] == [f"Checking {len(local)} objects"]
    assert rep.tasks[0]["total"] == sum(r.objects.size(s) for s in local)
    _all_done(rep)


def test_gc_and_fsck_bars_on_a_terminal_and_none_on_a_pipe(tmp_path, monkeypatch):
    from lindivc.cli import cli, maint

    r, _ = _zone_with_garbage(tmp_path)
    monkeypatch.chdir(r.root)
    runner = CliRunner()
    res = runner.invoke(cli, ["fsck", "--remote", "origin", "--read-data"])  # stderr is not a terminal
    assert res.exit_code == 0, res.output
    assert "Reading" not in res.output and "━" not in res.output and "\x1b[" not in res.output
    res = runner.invoke(cli, ["gc", "--remote", "origin", "--prune", "--grace", "1h"])
    assert res.exit_code == 0, res.output
    assert res.output.startswith("roots: ") and "deleted: " in res.output
    assert "Deleting" not in res.output and "━" not in res.output and "\x1b[" not in res.output

    r2, _ = _zone_with_garbage(tmp_path / "t")
    monkeypatch.chdir(r2.root)
    screen = io.StringIO()
    monkeypatch.setattr(maint, "_reporter", lambda: RichReporter(Console(file=screen, width=80, force_terminal=True)))
    res = runner.invoke(cli, ["gc", "--remote", "origin", "--prune", "--grace", "1h"])
    assert res.exit_code == 0, res.output
    drawn = _renders(screen.getvalue())
    assert any(ln.startswith("Deleting 2 packs") and "2/2" in ln for ln in drawn), drawn
    assert all(len(ln) <= 80 for ln in drawn)
    screen.truncate(0)
    res = runner.invoke(cli, ["fsck", "--remote", "origin", "--read-data"])
    assert res.exit_code == 0, res.output
    assert any(ln.startswith("Reading ") and "KiB" in ln for ln in _renders(screen.getvalue()))
