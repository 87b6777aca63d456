"""GC racing pushes: what a review found, kept as tests (docs/gc.md, "Pushes while GC runs")."""
from __future__ import annotations

import json
import os

import numpy as np
from click.testing import CliRunner

import lindivc
from lindivc import gc, zonerefs
from lindivc.cli import cli
from lindivc.fsck import fsck_zone
from lindivc.fetch import clone
from lindivc.push import push
from lindivc.zones import open_zone
from test_gc import HOUR, N, age, make_repo, orphan, read_all

DAY = 86400.0


def child_with_files(r, files, msg="restore"):
    """A new commit on main (child of HEAD) holding ``files``; working tree checked out."""
    tree = r.history.write_tree(files)
    head = r.history.head()
    c = r.history.make_commit(tree, [head], msg, r.author)
    r.history.set_ref("refs/heads/main", c, head, msg, r.author)
    r.checkout("main", force=True)
    return c


def refs_of(path):
    """The refs of a published file, templates expanded."""
    from lindivc.lindijson import expand_templates

    with open(path) as f:
        rfs = json.load(f)
    expand_templates(rfs)
    return rfs["refs"]


def _on_first_index_delete(zone, action):
    """Run ``action`` when GC deletes its first index (sweep step 2), before the delete."""
    real = zone.delete
    fired = []

    def delete(key):
        if key.startswith("idx/") and not fired:
            fired.append(key)
            action()
        real(key)

    zone.delete = delete
    return fired



def test_push_during_repack_stops_gc_and_keeps_the_old_pack(tmp_path):
    r, name = make_repo(tmp_path / "a", seed=7)
    zdir = str(tmp_path / "zone")
    r.config.add_remote("origin", zdir)
    push(r)
    c1_files = r.history.commit_files(r.history.head())
    with lindivc.open(r.abspath(name), "r+") as f:
        f["d"][: 3 * N] = np.random.default_rng(8).standard_normal(3 * N)
    r.commit("replace three chunks", all=True)
    orphan(r)
    push(r, force=True)
    age(zdir, 2 * HOUR)
    zone = open_zone(zdir)
    plan = gc.gc_zone(zone, grace=HOUR, cache_dir=str(tmp_path / "cache"))
    assert len(plan.repack) == 1
    old_pack = plan.repack[0].pack
    real = zone.get_range
    fired = []

    def get_range(key, off, size):
        if not fired:
            fired.append(key)
            # a second file with the old content (references the 3 now-dead chunks of the pack)
            files = dict(r.history.commit_files(r.history.head()))
            files["y.lindi.json"] = c1_files[name]
            child_with_files(r, files, "add y")
            push(r)
        return real(key, off, size)

    zone.get_range = get_range
    try:
        gc.gc_zone(zone, prune=True, grace=HOUR, cache_dir=str(tmp_path / "cache"))
    except gc.GCError:
        pass
    assert fired
    y = refs_of(os.path.join(zdir, "f", "y.lindi.json"))
    used = {v[0] for v in y.values() if isinstance(v, list) and len(v) == 3}
    assert any(u.endswith(old_pack) for u in used)  # the push referenced the old pack
    assert os.path.exists(os.path.join(zdir, "idx", old_pack)), "GC deleted a pack a published file references"
    read_all(os.path.join(zdir, "f", "y.lindi.json"))


def test_push_re_pins_borrowed_chunks_the_lender_collected(tmp_path):
    cloud = tmp_path / "cloud"
    a_url, b_url = str(cloud / "zones" / "alice" / "a"), str(cloud / "zones" / "bob" / "b")
    a, name = make_repo(tmp_path / "a", seed=6)
    a.config.add_remote("origin", a_url)
    push(a)
    b = clone(a_url, str(tmp_path / "b"), objects=True)  # bob has every chunk locally
    b.config.add_remote("mine", b_url)
    with lindivc.open(b.abspath(name), "r+") as f:
        f.attrs["derived"] = "yes"
    b.commit("derivative", all=True)
    derived_files = b.history.commit_files(b.history.head())
    assert push(b, "mine").chunks_borrowed == 5
    # bob drops the file and collects his zone; alice drops hers and collects hers
    orphan(b, {}, "drop")
    push(b, "mine", force=True)
    orphan(a, {}, "drop everything")
    push(a, force=True)
    age(str(cloud), 2 * HOUR)
    gc.gc_zone(open_zone(b_url), prune=True, grace=HOUR, cache_dir=str(tmp_path / "cb"))
    plan = gc.gc_zone(open_zone(a_url), prune=True, grace=HOUR, cache_dir=str(tmp_path / "ca"))
    assert plan.counts().get("pack") == 1  # alice's pack is gone
    # bob publishes his derivative again
    child_with_files(b, derived_files, "restore derivative")
    push(b, "mine")
    read_all(os.path.join(b_url, "f", name))  # FileNotFoundError / missing pack


def _setup(tmp_path):
    r, name = make_repo(tmp_path / "a", seed=11)
    zdir = str(tmp_path / "zone")
    r.config.add_remote("origin", zdir)
    push(r)
    c1 = r.history.head()
    c1_files = r.history.commit_files(c1)
    with lindivc.open(r.abspath(name), "r+") as f:
        f["d"][:] = np.random.default_rng(12).standard_normal(5 * N)
    r.commit("replace data", all=True)
    orphan(r)
    push(r, force=True)
    return r, name, zdir, c1, c1_files


def test_gc_cache_notices_a_push_during_the_sweep(tmp_path, monkeypatch):
    """A push that lands while GC finishes its sweep must not be folded into the cached
    fingerprint: the next GC plans afresh instead of reusing a dead list that no longer holds."""
    r, name, zdir, c1, c1_files = _setup(tmp_path)
    age(os.path.join(zdir, "v", c1), 2 * HOUR)  # the old version file is old garbage, its pack is young
    zone = open_zone(zdir)
    cache = str(tmp_path / "cache")
    real = gc.cache.after_sweep

    def after(plan, cdir):
        child_with_files(r, c1_files)  # a push re-referencing the young dead pack, while GC finishes
        push(r)
        return real(plan, cdir)

    monkeypatch.setattr(gc.cache, "after_sweep", after)
    p1 = gc.gc_zone(zone, prune=True, grace=HOUR, cache_dir=cache)
    assert p1.deleted >= 1
    monkeypatch.setattr(gc.cache, "after_sweep", real)
    # two hours later by the store's clock
    plan = gc.plan_zone(zone, grace=HOUR, cache_dir=cache, now=zone.now() + 2 * HOUR)
    deleted_objs = [d.key for d in plan.delete if d.kind in ("pack", "object")]
    assert not deleted_objs, f"cached={plan.cached}: would delete {deleted_objs}, which f/{name} at the head references"



def test_gc_cache_is_not_reused_with_another_grace(tmp_path):
    """A dry run with a short grace, then --prune with the default 14 d: the short-grace result
    must not be reused, or a v/ file younger than 14 d (a root by docs/gc.md) would lose its data."""
    r, name, zdir, c1, c1_files = _setup(tmp_path)
    age(zdir, 2 * HOUR)                       # everything is 2 hours old...
    age(os.path.join(zdir, "sha1"), 30 * DAY)  # ...the data objects a month old
    age(os.path.join(zdir, "idx"), 30 * DAY)
    zone = open_zone(zdir)
    cache = str(tmp_path / "cache")
    gc.gc_zone(zone, grace=HOUR, cache_dir=cache)  # dry run, short grace
    fresh = gc.plan_zone(zone, grace=14 * DAY, cache_dir=str(tmp_path / "other"))
    assert not [d for d in fresh.delete if d.kind in ("pack", "object")]  # v/<c1> (2 h old) is a root
    gc.gc_zone(zone, prune=True, grace=14 * DAY, cache_dir=cache)
    assert os.path.exists(os.path.join(zdir, "v", c1, name))
    read_all(os.path.join(zdir, "v", c1, name))  # the permalink must still read


def test_clone_into_a_regular_file_is_a_one_line_error(tmp_path):
    r, name = make_repo(tmp_path / "a")
    z = str(tmp_path / "zone")
    r.config.add_remote("origin", z)
    push(r)
    dest = tmp_path / "afile"
    dest.write_text("x")
    res = CliRunner().invoke(cli, ["clone", z, str(dest)])
    assert res.exit_code == 1
    assert isinstance(res.exception, SystemExit), repr(res.exception)  # not a NotADirectoryError traceback


def test_push_during_index_deletion_stops_gc_and_puts_the_indexes_back(tmp_path):
    r, name = make_repo(tmp_path / "a", seed=1)
    zdir = str(tmp_path / "zone")
    r.config.add_remote("origin", zdir)
    push(r)
    c1_files = r.history.commit_files(r.history.head())
    with lindivc.open(r.abspath(name), "r+") as f:
        f["d"][:] = np.random.default_rng(2).standard_normal(5 * N)
    r.commit("replace data", all=True)
    orphan(r)
    push(r, force=True)
    age(zdir, 2 * HOUR)
    zone = open_zone(zdir)
    # a push that re-publishes the old data, relying on its (not yet deleted) indexes
    fired = _on_first_index_delete(zone, lambda: (child_with_files(r, c1_files), push(r)))
    try:
        gc.gc_zone(zone, prune=True, grace=HOUR, cache_dir=str(tmp_path / "cache"))
    except gc.RefsChanged:
        pass
    assert fired
    rep = fsck_zone(open_zone(zdir))
    assert rep.ok, [str(p) for p in rep.problems]
    read_all(os.path.join(zdir, "f", name))


def test_force_push_back_during_gc_keeps_the_permalink(tmp_path):
    r, name = make_repo(tmp_path / "a", seed=21)
    zdir = str(tmp_path / "zone")
    r.config.add_remote("origin", zdir)
    push(r)
    c1 = r.history.head()
    with lindivc.open(r.abspath(name), "r+") as f:
        f["d"][:] = np.random.default_rng(22).standard_normal(5 * N)
    r.commit("replace data", all=True)
    orphan(r)
    push(r, force=True)
    age(zdir, 2 * HOUR)
    zone = open_zone(zdir)

    def back():
        r.history.set_ref("refs/heads/main", c1, r.history.head(), "back", r.author)
        push(r, force=True)

    fired = _on_first_index_delete(zone, back)
    try:
        gc.gc_zone(zone, prune=True, grace=HOUR, cache_dir=str(tmp_path / "cache"))
    except gc.RefsChanged:
        pass
    assert fired
    assert zonerefs.read_remote_ref(open_zone(zdir), "main")[0] == c1
    read_all(os.path.join(zdir, "v", c1, name))
    read_all(os.path.join(zdir, "f", name))


def test_local_prune_refuses_while_a_working_file_is_open_for_writing(tmp_path):
    from lindivc.errors import LindivcError

    r, name = make_repo(tmp_path / "a", seed=31)
    with lindivc.open(r.abspath(name), "r+") as f:
        f.attrs["x"] = 1
        try:
            gc.gc_local(r, prune=True, grace=0.0)
        except LindivcError as e:
            assert name in str(e)
        else:
            raise AssertionError("local gc --prune ran while a writer had the file open")
    gc.gc_local(r, prune=True, grace=0.0)  # once closed, it runs


def test_gc_lease_is_renewed_and_a_takeover_stops_the_holder(tmp_path):
    zone = open_zone(str(tmp_path / "zone"))
    lease = gc.acquire_lease(zone, ttl=100.0)
    first = json.loads(zone.get("lease/gc"))
    lease.renew_if_due(ttl=100.0)  # not due yet: unchanged
    assert json.loads(zone.get("lease/gc")) == first
    lease.expires = zone.now() + 10  # past half its time
    lease.renew_if_due(ttl=100.0)
    renewed = json.loads(zone.get("lease/gc"))
    assert renewed["id"] == first["id"] and renewed["expires"] > first["expires"]
    # another GC breaks it (as --break-lease would, once expired): the holder must stop
    zone.put("lease/gc", json.dumps(dict(renewed, id="other", expires=0)).encode())
    lease.expires = 0
    try:
        lease.renew_if_due(ttl=100.0)
    except gc.GCError as e:
        assert "taken over" in str(e)
    else:
        raise AssertionError("a GC whose lease was taken over went on")


def test_gc_cache_reuse_reports_what_the_first_plan_reported(tmp_path):
    """A plan reused from the cache keeps the same objects for the same reasons as the plan that
    filled it: its young garbage is counted once, in ``kept`` and in ``kept_bytes`` alike."""
    r, name, zdir, c1, c1_files = _setup(tmp_path)
    age(os.path.join(zdir, "v", c1), 2 * HOUR)  # the old version file is old garbage, its pack is young
    zone = open_zone(zdir)
    cache = str(tmp_path / "cache")
    first = gc.plan_zone(zone, grace=HOUR, cache_dir=cache)
    assert first.kept.get(gc.YOUNG) and not first.cached
    again = gc.plan_zone(zone, grace=HOUR, cache_dir=cache)
    assert again.cached
    assert (again.kept, again.kept_bytes, again.live_objects) == (first.kept, first.kept_bytes, first.live_objects)


def test_lease_release_deletes_only_the_lease_it_last_wrote(tmp_path):
    """Releasing names the value it replaces: after a renewal the lease goes; a lease another GC
    took over (or rewrote) stays; a lease already gone is a no-op."""
    zone = open_zone(str(tmp_path / "zone"))
    lease = gc.acquire_lease(zone, ttl=100.0)
    lease.expires = zone.now() + 10
    lease.renew_if_due(ttl=100.0)  # a new etag
    assert lease.release() is True and zone.head("lease/gc") is None
    assert lease.release() is False

    mine = gc.acquire_lease(zone, ttl=-1)  # expired: another GC may break it
    theirs = gc.acquire_lease(zone, ttl=100.0, break_lease=True)
    assert mine.release() is False
    assert json.loads(zone.get("lease/gc"))["id"] == theirs.id
    # even a record that still names this lease's id is not ours once rewritten by someone else
    zone.put("lease/gc", json.dumps({"id": theirs.id, "holder": "x", "expires": 0, "touched": 1}).encode())
    assert theirs.release() is False and zone.head("lease/gc") is not None


def test_lease_release_on_s3_checks_the_etag(tmp_path, s3_bucket):
    zone = open_zone(f"s3://{s3_bucket}/zones/alice/lease")
    lease = gc.acquire_lease(zone, ttl=100.0)
    other = json.loads(zone.get("lease/gc"))
    zone.put("lease/gc", json.dumps(dict(other, expires=1)).encode())  # rewritten: not what we wrote
    assert lease.release() is False and zone.head("lease/gc") is not None
    zone.delete("lease/gc")
    lease = gc.acquire_lease(zone, ttl=100.0)
    assert lease.release() is True and zone.head("lease/gc") is None


def test_lease_release_through_the_gateway(tmp_path, gateway):
    """The etag a gateway answers a write with is the one it lists: a lease taken through it is
    released, and a GC that prunes through it leaves no lease behind."""
    zone = open_zone(f"{gateway}/zones/alice/lease", token="tok-alice")
    lease = gc.acquire_lease(zone, ttl=100.0)
    lease.expires = zone.now() + 10
    lease.renew_if_due(ttl=100.0)
    assert lease.release() is True and zone.head("lease/gc") is None
    gc.gc_zone(zone, prune=True, cache_dir=str(tmp_path / "c"))
    assert zone.head("lease/gc") is None


def test_push_during_the_sweep_joins_the_roots_and_gc_finishes(tmp_path):
    """A push that re-publishes the old data while GC deletes its indexes: its journal entry and
    the ref it moves join the roots; GC keeps what the push names, deletes the rest, and ends."""
    r, name = make_repo(tmp_path / "a", seed=3, n_chunks=4, pack_size=100_000)  # one object per chunk
    zdir = str(tmp_path / "zone")
    r.config.add_remote("origin", zdir)
    push(r)
    c1_files = r.history.commit_files(r.history.head())
    old = {os.path.basename(p) for p in _keys(zdir, "sha1")}
    with lindivc.open(r.abspath(name), "r+") as f:
        f["d"][: 2 * N] = np.random.default_rng(4).standard_normal(2 * N)  # two chunks replaced
    r.commit("replace two chunks", all=True)
    orphan(r)
    push(r, force=True)
    age(zdir, 2 * HOUR)
    zone = open_zone(zdir)
    files = {}

    def republish():
        files.update(r.history.commit_files(r.history.head()))
        files["old.lindi.json"] = c1_files[name]
        child_with_files(r, files, "bring the old file back")
        push(r)

    fired = _on_first_index_delete(zone, republish)
    plan = gc.gc_zone(zone, prune=True, grace=HOUR, cache_dir=str(tmp_path / "cache"))
    assert fired and plan.swept and plan.roots.late >= 1
    assert any("a root that appeared while GC ran" in n for n in plan.notes)
    assert old <= {os.path.basename(p) for p in _keys(zdir, "sha1")}  # the push named them all again
    rep = fsck_zone(open_zone(zdir))
    assert rep.ok, [str(p) for p in rep.problems]
    read_all(os.path.join(zdir, "f", "old.lindi.json"))


def _keys(root, top):
    return [os.path.join(d, n) for d, _, names in os.walk(os.path.join(root, top)) for n in names]
