"""Push's round trips (issue 13): requests per push, the cached catalog and its safety, f/ after the ref."""
from __future__ import annotations

import boto3
import pytest

import lindivc
from lindivc import push as push_mod
from lindivc.catalog import catalog_for, update_info
from lindivc.layout import index_key, object_key
from lindivc.push import push
from lindivc.testdata import make_nwb
from test_sync import _make_repo


@pytest.fixture(scope="module")
def nwb_path(tmp_path_factory):
    return make_nwb(str(tmp_path_factory.mktemp("nwb") / "session.nwb"), n_units=6, duration=30, n_channels=4,
                    lfp_seconds=1)


def _setup(tmp_path, nwb_path, url):
    r, rel, _ = _make_repo(tmp_path / "a", nwb_path)
    r.config.add_remote("origin", url)
    push(r)
    return r, rel


def _count(r) -> list[str]:
    seen: list[str] = []
    zone = catalog_for(r, "origin").zone
    zone.client.meta.events.register("before-send.s3", lambda request, **kw: seen.append(f"{request.method} {request.url}"))
    return seen


def _change(r, rel, value=0.0):
    with lindivc.open(r.abspath(rel), "r+") as f:
        f["derived"][:10] = value
    r.commit("change", all=True)


def test_noop_push_is_one_request_and_a_change_lists_nothing(tmp_path, nwb_path, s3_bucket):
    r, rel = _setup(tmp_path, nwb_path, f"s3://{s3_bucket}/plain/a")
    seen = _count(r)
    assert push(r).up_to_date
    assert len(seen) == 1 and seen[0].startswith("GET ")
    seen.clear()
    _change(r, rel)
    res = push(r)
    assert res.chunks_uploaded >= 1
    assert not [s for s in seen if "list-type" in s], seen  # no listing: the catalog is current
    assert not [s for s in seen if s.startswith("HEAD ")], seen
    # the ref and info/idx are not read: this repository wrote both last (steps 1 and 3 from memory)
    assert not [s for s in seen if s.startswith("GET ")], seen
    assert len(seen) <= 10 + res.packs_uploaded * 2, seen
    if res.packs_uploaded == 1:  # issue 13's one-chunk push: at most 12 requests
        assert len(seen) <= 12, seen


def test_catalog_is_refreshed_when_an_index_went_away(tmp_path, nwb_path, s3_bucket):
    """GC removes an index (info/idx first, then idx/, then the pack): the next push must not
    reference the gone pack from its cached catalog, but upload those chunks again."""
    r, rel = _setup(tmp_path, nwb_path, f"s3://{s3_bucket}/plain/a")
    cat = catalog_for(r, "origin")
    zone = cat.zone
    pack = sorted(cat.packs, key=lambda p: -len(cat.packs[p].chunks))[0]
    update_info(zone, "idx", remove=[pack], only_if_present=True)  # as gc/sweep.py step 2
    zone.delete(index_key(pack))
    zone.delete(object_key(pack))
    _change(r, rel, 3.0)
    res = push(r)
    assert res.chunks_uploaded > 1  # the chunks of the gone pack came back
    assert pack not in cat.packs
    s3 = boto3.client("s3")
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=s3_bucket).get("Contents", [])}
    for p in cat.packs:
        assert f"plain/a/{object_key(p)}" in keys


def test_f_files_are_finished_by_a_rerun_after_a_crash_past_the_ref(tmp_path, nwb_path, s3_bucket, monkeypatch):
    r, rel = _setup(tmp_path, nwb_path, f"s3://{s3_bucket}/plain/a")
    zone = catalog_for(r, "origin").zone
    before = zone.get(f"f/{rel}")
    _change(r, rel, 5.0)
    real = push_mod._finish_publication

    def crash(*a, **kw):
        raise KeyboardInterrupt  # killed between the ref and f/

    monkeypatch.setattr(push_mod, "_finish_publication", crash)
    with pytest.raises(KeyboardInterrupt):
        push(r)
    assert zone.get(f"f/{rel}") == before  # the ref moved, f/ not yet
    monkeypatch.setattr(push_mod, "_finish_publication", real)
    res = push(r)
    assert res.up_to_date
    new = zone.get(f"f/{rel}")
    assert new != before and new == zone.get(f"v/{r.history.ref('refs/heads/main')}/{rel}")
    assert push(r).up_to_date  # nothing pending any more


def test_v_files_are_finished_by_a_rerun_too(tmp_path, nwb_path, s3_bucket, monkeypatch):
    """Published files all follow the ref (step 7 after 8): a crash between leaves neither v/
    nor f/ of the new head, and the rerun puts both."""
    r, rel = _setup(tmp_path, nwb_path, f"s3://{s3_bucket}/plain/a")
    zone = catalog_for(r, "origin").zone
    _change(r, rel, 6.0)
    head = r.history.ref("refs/heads/main")
    monkeypatch.setattr(push_mod, "_finish_publication", lambda *a, **kw: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        push(r)
    assert zone.head(f"v/{head}/{rel}") is None
    monkeypatch.undo()
    assert push(r).up_to_date
    assert zone.get(f"v/{head}/{rel}") == zone.get(f"f/{rel}")


def _clone_to(tmp_path, url, name):
    from lindivc.fetch import clone_repository
    return clone_repository(url, str(tmp_path / name), objects=True).repo


def test_a_remembered_ref_that_moved_is_read_and_the_push_refused(tmp_path, nwb_path, s3_bucket):
    """Step 1 from memory: another clone pushed meanwhile, so the compare-and-swap fails; the push
    starts again, reads the ref, and refuses (non-fast-forward) without publishing anything."""
    url = f"s3://{s3_bucket}/plain/a"
    r, rel = _setup(tmp_path, nwb_path, url)
    other = _clone_to(tmp_path, url, "b")
    _change(other, rel, 7.0)
    push(other)
    theirs = other.history.ref("refs/heads/main")
    zone = catalog_for(r, "origin").zone
    f_before = zone.get(f"f/{rel}")
    _change(r, rel, 8.0)
    mine = r.history.ref("refs/heads/main")
    with pytest.raises(push_mod.NonFastForward, match="pull"):
        push(r)
    assert gitsync_ref(zone) == theirs
    assert zone.head(f"v/{mine}/{rel}") is None and zone.get(f"f/{rel}") == f_before
    assert not list(zone.list("journal/"))  # the first attempt's entry went with it


def test_a_remembered_ref_that_moved_back_is_read_and_the_history_sent(tmp_path, nwb_path, s3_bucket):
    """Someone force-pushed the branch back to an older commit: the zone may lack history this
    repository remembers it had. The swap from memory fails, the push starts again from the ref
    it reads, and a fresh clone gets every commit."""
    url = f"s3://{s3_bucket}/plain/a"
    r, rel = _setup(tmp_path, nwb_path, url)
    first = r.history.ref("refs/heads/main")
    _change(r, rel, 1.0)
    push(r)
    other = _clone_to(tmp_path, url, "b")
    other.history.set_ref("refs/heads/main", first, other.history.ref("refs/heads/main"), "rewind")
    push(other, force=True)
    zone = catalog_for(r, "origin").zone
    assert gitsync_ref(zone) == first
    _change(r, rel, 2.0)
    res = push(r)
    assert res.old == first and gitsync_ref(zone) == r.history.ref("refs/heads/main")
    again = _clone_to(tmp_path, url, "c")
    assert again.history.ref("refs/heads/main") == r.history.ref("refs/heads/main")
    assert len(list(again.history.walk([again.history.ref("refs/heads/main")]))) == 3


def gitsync_ref(zone):
    from lindivc import gitsync
    return gitsync.read_remote_ref(zone, "main")[0]


def _info_idx_matches_listing(zone) -> bool:
    listed = {i.key.rsplit("/", 1)[-1] for i in zone.list("idx/")}
    return set(zone.get("info/idx").decode().split()) == listed


def test_info_idx_goes_up_alongside_the_indexes_and_names_them(tmp_path, nwb_path, s3_bucket):
    r, rel = _setup(tmp_path, nwb_path, f"s3://{s3_bucket}/plain/a")
    zone = catalog_for(r, "origin").zone
    seen = _count(r)
    _change(r, rel, 9.0)
    res = push(r)
    assert res.packs_uploaded >= 1
    puts = [s.split("?")[0] for s in seen if s.startswith("PUT ")]
    info = next(i for i, s in enumerate(puts) if s.endswith("/info/idx"))
    ref = next(i for i, s in enumerate(puts) if s.endswith("/git/refs/heads/main"))
    assert info < ref  # info/idx (the catalog's check) before the ref
    assert _info_idx_matches_listing(zone)


def test_an_index_that_failed_after_info_idx_is_repaired_by_the_next_push(tmp_path, nwb_path, s3_bucket, monkeypatch):
    """info/idx may name a pack whose index PUT then failed: the push stops before the ref, the
    catalog does not remember that info/idx, and the next push lists the zone and finishes."""
    r, rel = _setup(tmp_path, nwb_path, f"s3://{s3_bucket}/plain/a")
    cat = catalog_for(r, "origin")
    zone = cat.zone
    before = gitsync_ref(zone)
    _change(r, rel, 10.0)
    real_put = type(zone).put

    def failing_put(self, key, data, **kw):
        if key.startswith("idx/"):
            raise push_mod.ZoneError(f"{key}: connection reset")
        return real_put(self, key, data, **kw)

    monkeypatch.setattr(type(zone), "put", failing_put)
    with pytest.raises(push_mod.ZoneError):
        push(r)
    monkeypatch.undo()
    assert gitsync_ref(zone) == before  # no ref without its indexes
    res = push(r)
    assert gitsync_ref(zone) == r.history.ref("refs/heads/main") and res.old == before
    assert _info_idx_matches_listing(zone)
    for p in cat.packs:
        assert zone.head(index_key(p)) is not None and zone.head(object_key(p)) is not None


@pytest.mark.parametrize("kind", ["s3", "dir"])
def test_a_remembered_ref_that_was_deleted_is_read_and_the_branch_pushed_again(tmp_path, nwb_path, s3_bucket, kind):
    """The zone lost the branch (deleted by hand): the swap from memory cannot match, the push
    starts again from step 1, finds no branch, and creates it."""
    url = f"s3://{s3_bucket}/plain/a" if kind == "s3" else str(tmp_path / "zone")
    r, rel = _setup(tmp_path, nwb_path, url)
    zone = catalog_for(r, "origin").zone
    zone.delete("git/refs/heads/main")
    _change(r, rel, 11.0)
    res = push(r)
    assert res.old is None and gitsync_ref(zone) == r.history.ref("refs/heads/main")
    _change(r, rel, 12.0)
    assert push(r).old == res.new  # and the next push is from memory again
