"""Garbage collection, locally and in zones (issue 4): local zones with aged mtimes, moto S3, the gateway."""
from __future__ import annotations

import hashlib
import json
import os
import time

import lindi
import numpy as np
import pytest
from click.testing import CliRunner

import lindivc
from lindivc import gc, pinning
from lindivc.cli import cli
from lindivc.errors import AccessDenied, LindivcError
from lindivc.repo import Repository
from lindivc.fetch import clone
from lindivc.push import push
from lindivc.zones import open_zone

N = 10_000  # float64 -> 80 kB chunks (above the inline threshold)
HOUR = 3600.0


def make_repo(path, seed=0, n_chunks=5, pack_size=2_000_000, name="x.lindi.json") -> tuple[Repository, str]:
    r = Repository.init(str(path))
    r.config.data["core"]["pack_size"] = pack_size
    r.config.save()
    p = r.abspath(name)
    with open(p, "w") as f:
        json.dump({"refs": {".zgroup": {"zarr_format": 2}}}, f)
    r.add([p])
    with lindivc.open(p, "r+") as f:
        f.create_dataset("d", data=np.random.default_rng(seed).standard_normal(n_chunks * N), chunks=(N,))
    r.commit("initial", all=True)
    return r, name


def orphan(r: Repository, files: dict[str, str] | None = None, msg: str = "rewrite") -> str:
    """Point the current branch at a new root commit holding ``files`` (default: HEAD's files):
    the old history becomes unreachable (as after a force push of rewritten history)."""
    files = r.history.commit_files(r.history.head()) if files is None else files
    tree = r.history.write_tree(files)
    c = r.history.make_commit(tree, [], msg, r.author)
    r.history.set_ref("refs/heads/main", c, r.history.head(), msg, r.author)
    return c


def age(root: str, secs: float, skip: str | None = None) -> None:
    """Move the mtime of every file under ``root`` ``secs`` into the past (the store's clock)."""
    for d, _, names in os.walk(root):
        for n in names:
            p = os.path.join(d, n)
            if skip and skip in p:
                continue
            st = os.stat(p)
            os.utime(p, (st.st_atime - secs, st.st_mtime - secs))


def read_all(path: str) -> np.ndarray:
    return lindi.LindiH5pyFile.from_lindi_file(path)["d"][:]


def data_keys(zone_dir: str) -> set[str]:
    out = set()
    for top in ("sha1", "idx"):
        for d, _, names in os.walk(os.path.join(zone_dir, top)):
            out |= {os.path.relpath(os.path.join(d, n), zone_dir) for n in names}
    return out


# ------------------------------------------------------------------ grace


@pytest.mark.parametrize("text,secs", [("14d", 14 * 86400), ("36h", 36 * 3600), ("30m", 1800), ("90s", 90),
                                       ("2w", 14 * 86400), ("1.5h", 5400), ("45", 45)])
def test_parse_grace(text, secs):
    assert gc.parse_grace(text) == secs


@pytest.mark.parametrize("bad", ["", "14 days", "-3d", "d", "1y", "now"])
def test_parse_grace_rejects_malformed_and_now_without_flag(bad):
    with pytest.raises(gc.InvalidGrace):
        gc.parse_grace(bad)
    assert gc.parse_grace("now", allow_now=True) == 0


# ------------------------------------------------------------------ zone gc, local zone


def test_zone_gc_dry_run_then_prune_deletes_only_old_unreachable(tmp_path):
    r, name = make_repo(tmp_path / "a", seed=1)
    zdir = str(tmp_path / "zone")
    r.config.add_remote("origin", zdir)
    push(r)
    before = data_keys(zdir)
    with lindivc.open(r.abspath(name), "r+") as f:
        f["d"][:] = np.random.default_rng(2).standard_normal(5 * N)  # every chunk new
    r.commit("replace data", all=True)
    new_head = orphan(r)
    push(r, force=True)
    expected = read_all(r.abspath(name))
    zone = open_zone(zdir)
    cache = str(tmp_path / "cache")
    # young: nothing goes
    plan = gc.gc_zone(zone, grace=HOUR, cache_dir=cache)
    assert plan.delete == []  # the old version file is young, so it is a root too
    age(zdir, 2 * HOUR)
    plan = gc.gc_zone(zone, grace=HOUR, cache_dir=cache)  # dry run
    assert not plan.swept and plan.counts()["pack"] == 1 and plan.counts()["version"] == 1
    assert data_keys(zdir) >= before
    assert "1 refs, 1 commits" in plan.roots.summary()
    plan = gc.gc_zone(zone, prune=True, grace=HOUR, cache_dir=cache)
    assert plan.swept and plan.deleted_bytes > 5 * N * 7
    left = data_keys(zdir)
    assert not (left & before)  # the old pack and its index are gone
    assert not os.path.exists(os.path.join(zdir, "lease", "gc"))
    assert os.listdir(os.path.join(zdir, "v")) == [new_head]
    c = clone(zdir, str(tmp_path / "c"))
    np.testing.assert_array_equal(read_all(c.abspath(name)), expected)
    np.testing.assert_array_equal(read_all(os.path.join(zdir, "f", name)), expected)
    from lindivc.fsck import fsck_zone

    assert fsck_zone(zone, read_data=True).ok
    # a second GC: nothing changed since, it says so
    again = gc.gc_zone(zone, grace=HOUR, cache_dir=cache)
    assert again.cached and again.delete == []


def test_push_in_flight_is_safe_and_retry_after_gc_reuploads(tmp_path, monkeypatch):
    r, name = make_repo(tmp_path / "a", seed=3)
    zdir = str(tmp_path / "zone")
    r.config.add_remote("origin", zdir)
    push(r)
    with lindivc.open(r.abspath(name), "r+") as f:
        f.create_dataset("e", data=np.random.default_rng(4).standard_normal(3 * N), chunks=(N,))
    r.commit("more", all=True)
    expected = lindi.LindiH5pyFile.from_lindi_file(r.abspath(name))["e"][:]
    from lindivc import gitsync

    real_cas = gitsync.cas_remote_ref

    def crash(*a, **k):
        raise KeyboardInterrupt("killed before the ref update")

    monkeypatch.setattr(gitsync, "cas_remote_ref", crash)
    with pytest.raises(KeyboardInterrupt):
        push(r)
    monkeypatch.setattr(gitsync, "cas_remote_ref", real_cas)
    assert os.listdir(os.path.join(zdir, "journal"))
    age(zdir, 2 * HOUR, skip=os.sep + "journal" + os.sep)  # the uploads are old; the journal is not
    zone = open_zone(zdir)
    plan = gc.gc_zone(zone, prune=True, grace=HOUR, cache_dir=str(tmp_path / "cache"))
    assert plan.deleted == 0 and plan.roots.journal == 1
    push(r)
    c = clone(zdir, str(tmp_path / "c"))
    np.testing.assert_array_equal(lindi.LindiH5pyFile.from_lindi_file(c.abspath(name))["e"][:], expected)

    # a push (of a side branch: no f/ files) that died long ago: its uploads are garbage; a
    # later retry uploads them again
    r.create_branch("side")
    r.checkout("side")
    with lindivc.open(r.abspath(name), "r+") as f:
        f.create_dataset("g", data=np.random.default_rng(5).standard_normal(3 * N), chunks=(N,))
    r.commit("more again", all=True)
    monkeypatch.setattr(gitsync, "cas_remote_ref", crash)
    with pytest.raises(KeyboardInterrupt):
        push(r, "origin", "side")
    monkeypatch.setattr(gitsync, "cas_remote_ref", real_cas)
    age(zdir, 2 * HOUR)
    plan = gc.gc_zone(zone, prune=True, grace=HOUR, cache_dir=str(tmp_path / "cache"))
    # published files follow the ref (docs/format.md 6.4 step 7): a push that died before it left none
    assert plan.counts().get("journal") >= 1 and not plan.counts().get("version")
    assert plan.deleted_bytes >= 3 * N * 7
    res = push(r, "origin", "side")
    assert res.chunks_uploaded == 3  # the catalog forgot the collected pack
    c2 = clone(zdir, str(tmp_path / "c2"), branch="side")
    g = lindi.LindiH5pyFile.from_lindi_file(c2.abspath(name))["g"][:]
    np.testing.assert_array_equal(g, np.random.default_rng(5).standard_normal(3 * N))


def test_derivative_in_another_zone_keeps_chunks_until_it_is_gone(tmp_path):
    cloud = tmp_path / "cloud"
    a_url, b_url = str(cloud / "zones" / "alice" / "a"), str(cloud / "zones" / "bob" / "b")
    a, name = make_repo(tmp_path / "a", seed=6)
    a.config.add_remote("origin", a_url)
    push(a)
    original = read_all(a.abspath(name))
    # bob derives a file from alice's and publishes it in his zone: the chunks are borrowed
    b = clone(a_url, str(tmp_path / "b"))
    b.config.add_remote("mine", b_url)
    with lindivc.open(b.abspath(name), "r+") as f:
        f.attrs["derived"] = "yes"
    b.commit("derivative", all=True)
    res = push(b, "mine")
    assert res.chunks_borrowed == 5 and res.chunks_uploaded == 0
    # alice rewrites her history without the file
    orphan(a, {}, "drop everything")
    push(a, force=True)
    age(str(cloud), 2 * HOUR)
    za = open_zone(a_url)
    plan = gc.gc_zone(za, prune=True, grace=HOUR, cache_dir=str(tmp_path / "ca"))
    assert plan.counts().get("version") == 1 and "pack" not in plan.counts()
    assert plan.roots.zones == 2
    np.testing.assert_array_equal(read_all(os.path.join(b_url, "f", name)), original)  # bob's file still reads
    # bob deletes his file (rewritten history), collects his zone; then alice's chunks go
    orphan(b, {}, "drop")
    push(b, "mine", force=True)
    assert not os.path.exists(os.path.join(b_url, "f", name))
    age(str(cloud), 2 * HOUR)
    gc.gc_zone(open_zone(b_url), prune=True, grace=HOUR, cache_dir=str(tmp_path / "cb"))
    assert not os.listdir(os.path.join(b_url, "v")) if os.path.isdir(os.path.join(b_url, "v")) else True
    plan = gc.gc_zone(za, prune=True, grace=HOUR, cache_dir=str(tmp_path / "ca"))
    assert plan.counts().get("pack") == 1
    assert not os.path.isdir(os.path.join(a_url, "sha1")) or not data_keys(a_url)


def test_partly_dead_pack_is_repacked_and_files_rerendered(tmp_path):
    r, name = make_repo(tmp_path / "a", seed=7)
    zdir = str(tmp_path / "zone")
    r.config.add_remote("origin", zdir)
    push(r)
    with lindivc.open(r.abspath(name), "r+") as f:
        f["d"][: 3 * N] = np.random.default_rng(8).standard_normal(3 * N)  # 3 of 5 chunks replaced
    r.commit("replace three chunks", all=True)
    head = orphan(r)
    push(r, force=True)
    expected = read_all(r.abspath(name))
    old_packs = set(os.listdir(os.path.join(zdir, "idx")))
    age(zdir, 2 * HOUR)
    zone = open_zone(zdir)
    plan = gc.gc_zone(zone, grace=HOUR, cache_dir=str(tmp_path / "cache"))
    assert len(plan.repack) == 1 and len(plan.repack[0].live) == 2
    high = gc.gc_zone(zone, grace=HOUR, threshold=0.9, cache_dir=str(tmp_path / "cache"))
    assert high.repack == [] and any("threshold" in k for k in high.kept)
    plan = gc.gc_zone(zone, prune=True, grace=HOUR, cache_dir=str(tmp_path / "cache"))
    assert plan.swept
    new_packs = set(os.listdir(os.path.join(zdir, "idx")))
    assert plan.repack[0].pack not in new_packs and new_packs - old_packs
    for p in (os.path.join(zdir, "f", name), os.path.join(zdir, "v", head, name)):
        np.testing.assert_array_equal(read_all(p), expected)
    c = clone(zdir, str(tmp_path / "c"), objects=True)
    np.testing.assert_array_equal(read_all(c.abspath(name)), expected)
    r.fetch = None
    from lindivc.fsck import fsck_zone

    assert fsck_zone(zone, read_data=True).ok


def _repack_setup(tmp_path, seed):
    """A zone whose one pack is 3/5 dead (aged): a repack candidate; its own files reference it."""
    r, name = make_repo(tmp_path / "a", seed=seed)
    zdir = str(tmp_path / "zone")
    r.config.add_remote("origin", zdir)
    push(r)
    with lindivc.open(r.abspath(name), "r+") as f:
        f["d"][: 3 * N] = np.random.default_rng(seed + 1).standard_normal(3 * N)
    r.commit("replace three chunks", all=True)
    head = orphan(r)
    push(r, force=True)
    age(zdir, 2 * HOUR)
    return r, name, zdir, head


def test_repack_rewrites_only_the_refs_into_the_old_pack(tmp_path):
    """A re-rendered published file differs from the pushed one only in the refs that read the
    repacked pack; those read the same bytes from the new pack; the file keeps lindivc's layout."""
    from lindivc import lindijson

    r, name, zdir, head = _repack_setup(tmp_path, 41)
    zone = open_zone(zdir)
    f_path = os.path.join(zdir, "f", name)
    templates = json.load(open(f_path))["templates"]
    before = json.load(open(f_path))["refs"]
    plan = gc.gc_zone(zone, prune=True, grace=HOUR, cache_dir=str(tmp_path / "cache"))
    (rp,) = plan.repack
    raw = open(f_path, "rb").read()
    assert raw == lindijson.dumps(json.loads(raw))
    assert json.loads(raw)["templates"] == templates  # kept, as published
    after = json.loads(raw)["refs"]
    assert after.keys() == before.keys()
    moved = [k for k in before if isinstance(before[k], list)
             and lindijson.apply_templates(before[k][0], templates).endswith(rp.pack)]
    assert len(moved) == len(rp.live) == 2
    for k in before:
        if k not in moved:
            assert after[k] == before[k]
            continue
        url, off, size = after[k]
        assert url != before[k][0] and size == before[k][2]
        url = lindijson.apply_templates(url, templates)
        assert url.startswith(zdir)
        with open(url, "rb") as fh:
            fh.seek(off)
            got = fh.read(size)
        assert hashlib.sha1(got).hexdigest() in {c for c, _, _ in rp.live}
    assert open(os.path.join(zdir, "v", head, name), "rb").read() == raw


def test_repack_refuses_a_file_that_reads_dead_bytes(tmp_path):
    """A published file rewritten after the plan to read dead bytes of the pack to repack stops
    the sweep (RepackRefused): the old pack and its index stay."""
    r, name, zdir, head = _repack_setup(tmp_path, 43)
    zone = open_zone(zdir)
    plan = gc.plan_zone(zone, grace=HOUR, cache_dir=str(tmp_path / "cache"))
    (rp,) = plan.repack
    dead_off = next(o for o in range(0, rp.size, 1000) if all(not (lo <= o < lo + n) for _, lo, n in rp.live))
    key = f"f/{name}"
    rfs = json.loads(zone.get(key))
    k = next(k for k, v in rfs["refs"].items() if isinstance(v, list) and v[0].endswith(rp.pack))
    rfs["refs"][k] = [rfs["refs"][k][0], dead_off, 10]
    zone.put(key, json.dumps(rfs).encode())
    with pytest.raises(gc.RepackRefused, match="dead bytes") as e:
        gc.sweep_zone(zone, plan)
    assert e.value.pack == rp.pack and e.value.key == key and e.value.offset == dead_off
    assert zone.exists(f"idx/{rp.pack}") and zone.exists("sha1/" + "/".join(
        [rp.pack[:2], rp.pack[2:4], rp.pack[4:6], rp.pack]))


def test_pinned_external_file_keeps_data_the_pin_carries_until_unpinned(tmp_path):
    r, name = make_repo(tmp_path / "a", seed=9)
    zdir = str(tmp_path / "zone")
    r.config.add_remote("origin", zdir)
    push(r)
    ext = tmp_path / "elsewhere" / "mine.lindi.json"
    ext.parent.mkdir()
    ext.write_bytes(open(os.path.join(zdir, "f", name), "rb").read())
    zone = open_zone(zdir)
    rec = pinning.pin(zone, str(ext))
    assert rec.pin.kind == "file" and rec.pin.label == str(ext) and len(rec.pin.ranges) == 5 and not rec.missing
    assert rec.id == "local." + rec.id.split(".", 1)[1]  # a local zone: the writer is "local"
    with pytest.raises(gc.GCError, match="references no object"):
        other = tmp_path / "elsewhere" / "none.lindi.json"
        other.write_text('{"refs": {}}')
        pinning.pin(zone, str(other))
    orphan(r, {}, "drop")
    push(r, force=True)
    age(zdir, 2 * HOUR)
    plan = gc.gc_zone(zone, prune=True, grace=HOUR, cache_dir=str(tmp_path / "cache"))
    assert "pack" not in plan.counts() and plan.roots.pins == 1 and plan.invalid == []
    read_all(str(ext))
    # the pin carries its roots: the file going away changes nothing, GC never reads it
    ext.unlink()
    plan = gc.gc_zone(zone, prune=True, grace=HOUR, cache_dir=str(tmp_path / "cache2"))
    assert "pack" not in plan.counts() and plan.invalid == []
    (done,) = pinning.refresh_pins(zone, str(ext))
    assert done.result is None and "cannot read the file to pin" in done.error
    assert [p.id for p in gc.list_pins(zone)] == [rec.id]  # a failed refresh leaves the pin
    gc.unpin(zone, rec.id)
    plan = gc.gc_zone(zone, prune=True, grace=HOUR, cache_dir=str(tmp_path / "cache"))
    assert plan.counts().get("pack") == 1


def test_lease_held_stale_and_broken(tmp_path):
    zone = open_zone(str(tmp_path / "zone"))
    lease = gc.acquire_lease(zone, ttl=60)
    with pytest.raises(gc.LeaseHeld, match="another GC holds the lease") as e:
        gc.gc_zone(zone, prune=True, cache_dir=str(tmp_path / "c"))
    assert not e.value.expired and "pid" in e.value.holder
    lease.release()
    stale = gc.acquire_lease(zone, ttl=-1)  # already expired: a GC that crashed
    with pytest.raises(gc.LeaseHeld, match="break-lease") as e:
        gc.gc_zone(zone, prune=True, cache_dir=str(tmp_path / "c"))
    assert e.value.expired
    plan = gc.gc_zone(zone, prune=True, break_lease=True, cache_dir=str(tmp_path / "c"))
    assert plan.swept and zone.head("lease/gc") is None
    stale.release()  # not ours any more: a no-op


def test_ref_moved_between_plan_and_sweep_joins_the_roots_unless_unreadable(tmp_path):
    r, name = make_repo(tmp_path / "a", seed=10)
    zdir = str(tmp_path / "zone")
    r.config.add_remote("origin", zdir)
    push(r)
    zone = open_zone(zdir)
    plan = gc.plan_zone(zone, grace=HOUR, cache_dir=str(tmp_path / "c"))
    with lindivc.open(r.abspath(name), "r+") as f:
        f.attrs["x"] = 1
    r.commit("moved", all=True)
    push(r)  # its journal entry is gone again when the sweep looks: the new history is read
    gc.sweep_zone(zone, plan, cache_dir=str(tmp_path / "c"))
    assert plan.swept and plan.roots.late == 1
    plan = gc.plan_zone(zone, grace=HOUR, cache_dir=str(tmp_path / "c"))
    zone.put("git/refs/heads/main", b"f" * 40 + b"\n")  # a ref to a commit the zone does not hold
    with pytest.raises(gc.RefsChanged, match="changed while GC ran and its history cannot be read"):
        gc.sweep_zone(zone, plan, cache_dir=str(tmp_path / "c"))


# ------------------------------------------------------------------ S3 and gateway


def test_zone_gc_on_s3(tmp_path, s3_bucket):
    r, name = make_repo(tmp_path / "a", seed=11)
    url = f"s3://{s3_bucket}/zones/alice/a"
    r.config.add_remote("origin", url)
    push(r)
    with lindivc.open(r.abspath(name), "r+") as f:
        f["d"][:] = 0.5
    r.commit("constant", all=True)
    orphan(r)
    push(r, force=True)
    zone = open_zone(url)
    plan = gc.gc_zone(zone, grace=HOUR, cache_dir=str(tmp_path / "c"))
    assert plan.delete == []  # S3 LastModified is now: everything is young
    time.sleep(1.5)
    plan = gc.gc_zone(zone, prune=True, grace=gc.parse_grace("now", allow_now=True), cache_dir=str(tmp_path / "c"))
    assert plan.counts().get("pack") == 1 and plan.counts().get("version") == 1
    c = clone(url, str(tmp_path / "c2"))
    np.testing.assert_array_equal(lindivc.open(c.abspath(name), "r")["d"][:], np.full(5 * N, 0.5))


def test_prune_without_write_rights_is_access_denied(tmp_path, gateway, monkeypatch):
    r, name = make_repo(tmp_path / "a", seed=12, n_chunks=2)
    url = f"{gateway}/zones/alice/x"
    r.config.add_remote("origin", url)
    monkeypatch.setenv("GITHUB_TOKEN", "tok-alice")
    push(r)
    monkeypatch.setenv("GITHUB_TOKEN", "tok-bob")
    b = clone(url, str(tmp_path / "b"))
    plan = gc.gc_zone(open_zone(url, token="tok-bob"), grace=HOUR, cache_dir=str(tmp_path / "c"))  # dry run reads
    assert plan.roots.refs == 1
    with pytest.raises(AccessDenied):
        gc.gc_zone(open_zone(url, token="tok-bob"), prune=True, grace=HOUR, cache_dir=str(tmp_path / "c"))
    monkeypatch.chdir(b.root)
    res = CliRunner().invoke(cli, ["gc", "--remote", "origin", "--prune"])
    assert res.exit_code == 1 and "Error:" in res.output and "Traceback" not in res.output
    assert len(res.output.strip().splitlines()) == 1


# ------------------------------------------------------------------ local gc


def test_local_gc_keeps_reachable_young_and_working_deletes_old_garbage(tmp_path):
    r, name = make_repo(tmp_path / "a", seed=13)
    garbage = r.objects.put_bytes(os.urandom(1000))
    young = r.objects.put_bytes(os.urandom(1000))
    old = time.time() - 30 * 86400
    os.utime(r.objects.path(garbage), (old, old))
    # a working-file edit not committed: its new chunks are roots
    with lindivc.open(r.abspath(name), "r+") as f:
        f.create_dataset("w", data=np.random.default_rng(14).standard_normal(N), chunks=(N,))
    for sha in r.objects:
        if sha != young:
            os.utime(r.objects.path(sha), (old, old))
    plan = gc.gc_local(r)
    assert [d.key for d in plan.delete] == [garbage]
    assert plan.kept.get(gc.YOUNG) == 1
    plan = gc.gc_local(r, prune=True)
    assert garbage not in r.objects and young in r.objects
    assert lindi.LindiH5pyFile.from_lindi_file(r.abspath(name))["w"].shape == (N,)
    np.testing.assert_array_equal(read_all(r.abspath(name)), np.random.default_rng(13).standard_normal(5 * N))


def test_local_gc_deletes_temp_files_a_killed_write_left_and_keeps_young_ones(tmp_path):
    """A killed `lindivc pack` or object write leaves temp files in the store's root: older than
    grace they go (listed as "temp" in the dry run), a young one may be a write in progress."""
    from lindivc.atomic import TMP_PREFIX
    from lindivc.packstream import PACK_TMP_PREFIX
    r, name = make_repo(tmp_path / "a", seed=15)
    root = r.objects.root
    old = time.time() - 30 * 86400
    for n, data in ((PACK_TMP_PREFIX + "k1ll3d", b"p" * 5000), (TMP_PREFIX + "abc", b"o" * 300),
                    (PACK_TMP_PREFIX + "young", b"y" * 10)):
        with open(os.path.join(root, n), "wb") as f:
            f.write(data)
    for n in (PACK_TMP_PREFIX + "k1ll3d", TMP_PREFIX + "abc"):
        os.utime(os.path.join(root, n), (old, old))
    plan = gc.gc_local(r)  # dry run: nothing deleted
    temps = sorted((d.key, d.size) for d in plan.delete if d.kind == "temp")
    assert temps == [(TMP_PREFIX + "abc", 300), (PACK_TMP_PREFIX + "k1ll3d", 5000)]
    assert len(os.listdir(root)) >= 3
    gc.gc_local(r, prune=True)
    left = [n for n in os.listdir(root) if n.startswith((TMP_PREFIX, PACK_TMP_PREFIX))]
    assert left == [PACK_TMP_PREFIX + "young"]
    np.testing.assert_array_equal(read_all(r.abspath(name)), np.random.default_rng(15).standard_normal(5 * N))


def test_local_gc_reflog_and_packs(tmp_path):
    r, name = make_repo(tmp_path / "a", seed=15)
    first = r.history.head()
    from lindivc.consolidate import pack_loose

    pack_loose(r)
    assert len(r.packs) == 1
    orphan(r, {}, "empty")
    os.unlink(r.abspath(name))
    r.remove([r.abspath(name)], keep_file=True)
    old = time.time() - 30 * 86400
    for sha in r.objects:
        os.utime(r.objects.path(sha), (old, old))
    plan = gc.gc_local(r)  # the reflog entry of the old commit is recent: kept
    assert plan.delete == [] and plan.roots.reflog >= 1
    plan = gc.plan_local(r, now=time.time() + 30 * 86400)
    assert [d.kind for d in plan.delete] == ["pack"]
    gc.sweep_local(r, plan)
    assert len(r.packs) == 0 and not list(r.objects)
    assert r.history.has(first)


def test_local_gc_keeps_what_a_merge_in_progress_merges_in(tmp_path):
    from lindivc import mergestate
    from lindivc.consolidate import pack_loose

    r, name = make_repo(tmp_path / "a", seed=17)
    theirs = r.history.head()
    pack_loose(r)
    orphan(r, {}, "empty")
    os.unlink(r.abspath(name))
    r.remove([r.abspath(name)], keep_file=True)
    later = time.time() + 30 * 86400  # every reflog entry and object is past the grace period
    mergestate.save(r.lvc, mergestate.MergeState(ours=r.history.head(), theirs=theirs, base=None, branch="main",
                                                 label=theirs[:10], message="merge"))
    assert gc.plan_local(r, now=later).delete == []
    mergestate.remove(r.lvc)
    assert [d.kind for d in gc.plan_local(r, now=later).delete] == ["pack"]


def test_evict_pushed_rerenders_working_files_to_read_from_zone(tmp_path):
    r, name = make_repo(tmp_path / "a", seed=16)
    zdir = str(tmp_path / "zone")
    r.config.add_remote("origin", zdir)
    push(r)
    expected = read_all(r.abspath(name))
    with lindivc.open(r.abspath(name), "r+") as f:
        f.create_dataset("unpushed", data=np.random.default_rng(17).standard_normal(N), chunks=(N,))
    plan = gc.gc_local(r, prune=True, evict_pushed=True)
    assert plan.counts() == {"evict": 5}
    assert len(list(r.objects)) == 1  # the unpushed chunk stays
    np.testing.assert_array_equal(read_all(r.abspath(name)), expected)
    with open(r.abspath(name)) as fh:
        assert zdir in fh.read()
    assert r.status().files[0].unstaged == "modified"  # canonical form unchanged apart from the edit


def test_cli_gc_fsck_pin(tmp_path, monkeypatch):
    r, name = make_repo(tmp_path / "a", seed=18)
    zdir = str(tmp_path / "zone")
    r.config.add_remote("origin", zdir)
    push(r)
    monkeypatch.chdir(r.root)
    run = CliRunner().invoke
    res = run(cli, ["gc"])
    assert res.exit_code == 0 and res.output.startswith("roots: ") and "kept:" in res.output
    res = run(cli, ["gc", "--remote", "origin", "--json"])
    assert res.exit_code == 0 and json.loads(res.output)["roots"]["refs"] == 1
    res = run(cli, ["gc", "--grace", "fortnight"])
    assert res.exit_code == 1 and "invalid grace period" in res.output and len(res.output.splitlines()) == 1
    res = run(cli, ["gc", "--grace", "now"])
    assert res.exit_code == 1 and "--i-know-grace-now" in res.output
    res = run(cli, ["gc", "--grace", "now", "--i-know-grace-now", "--prune"])
    assert res.exit_code == 0, res.output
    res = run(cli, ["fsck", "--remote", "origin", "--read-data"])
    assert res.exit_code == 0 and "no problems" in res.output
    ext = tmp_path / "ext.lindi.json"
    ext.write_bytes(open(os.path.join(zdir, "f", name), "rb").read())
    res = run(cli, ["pin", str(ext)])
    assert res.exit_code == 0 and "pinned" in res.output
    res = run(cli, ["pin", "--list"])
    assert str(ext) in res.output
    res = run(cli, ["pin", str(tmp_path / "missing.lindi.json")])
    assert res.exit_code == 1 and "cannot read the file to pin" in res.output
    gc.acquire_lease(open_zone(zdir), ttl=600)
    res = run(cli, ["gc", "--remote", "origin", "--prune"])
    assert res.exit_code == 1 and "another GC holds the lease" in res.output
    for cmd in ("gc", "fsck", "pin"):
        h = run(cli, [cmd, "--help"])
        assert h.exit_code == 0 and "Usage" in h.output
    assert isinstance(gc.GCError("x"), LindivcError)
