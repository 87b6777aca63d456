"""Remotes and their remote-tracking refs: every update states what it replaces."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

import lindivc
from lindivc import gitsync
from lindivc.catalog import catalog_dir
from lindivc.errors import LindivcError, RefConflict
from lindivc.fetch import clone, fetch
from lindivc.merge import merge_trees
from lindivc.push import push
from lindivc.remotes import add_remote, remove_remote, tracking_ref
from lindivc.repo import Repository
from lindivc.zones import open_zone


def _commit_array(r: Repository, seed: int, message: str) -> str:
    """Write a small chunked array (4 chunk objects) into a.lindi.json and commit it."""
    path = r.abspath("a.lindi.json")
    try:
        open(path, "x").write(json.dumps({"refs": {".zgroup": {"zarr_format": 2}}}))
    except FileExistsError:
        pass
    with lindivc.open(path, "r+") as f:
        f.create_dataset(f"x{seed}", data=np.random.default_rng(seed).standard_normal(40_000), chunks=(10_000,))
    r.add([path])
    return r.commit(message)


@pytest.fixture
def pushed(tmp_path):
    """A repository whose main (one commit) is pushed to the local zone of remote origin."""
    r = Repository.init(str(tmp_path / "a"))
    _commit_array(r, 1, "one")
    add_remote(r, "origin", str(tmp_path / "zone"))
    push(r)
    yield r
    r.close()


def test_push_sets_the_tracking_ref_without_a_reflog_entry(pushed):
    # the local GC keeps what reflogs name; a zone's branch is not the user's own history
    assert pushed.history.ref(tracking_ref("origin", "main")) == pushed.history.ref("refs/heads/main")
    assert not os.path.exists(os.path.join(pushed.history.git_dir, "logs", "refs", "remotes"))


def test_push_detects_a_concurrent_change_of_the_tracking_ref(pushed, monkeypatch):
    name = tracking_ref("origin", "main")
    first = pushed.history.ref(name)
    second = _commit_array(pushed, 2, "two")
    other = pushed.history.make_commit(pushed.history.commit(second).tree, [second], "elsewhere", pushed.author)
    real = gitsync.cas_remote_ref

    def a_fetch_moves_it_meanwhile(*a, **kw):
        pushed.history.repo.refs[name.encode()] = other.encode()  # another writer's value
        return real(*a, **kw)

    monkeypatch.setattr(gitsync, "cas_remote_ref", a_fetch_moves_it_meanwhile)
    with pytest.raises(RefConflict) as e:
        push(pushed)
    assert e.value.name == name and e.value.expected == first and e.value.actual == other
    assert "lindivc fetch origin" in str(e.value)
    assert pushed.history.ref(name) == other  # not overwritten
    zone = pushed.catalogs()[0].zone
    assert gitsync.read_remote_ref(zone, "main")[0] == second  # the push itself went through
    assert list(zone.list("journal/")) == []  # and its journal entry is gone


def test_fetch_detects_a_concurrent_change_of_a_tracking_ref(pushed, tmp_path, monkeypatch):
    b = clone(str(tmp_path / "zone"), str(tmp_path / "b"))
    name = tracking_ref("origin", "main")
    seen = b.history.ref(name)
    _commit_array(pushed, 2, "two")
    push(pushed)
    mine = _commit_array(b, 3, "local work")
    real = gitsync.download_history

    def another_writer_moves_it_meanwhile(*a, **kw):
        n = real(*a, **kw)
        b.history.repo.refs[name.encode()] = mine.encode()
        return n

    monkeypatch.setattr(gitsync, "download_history", another_writer_moves_it_meanwhile)
    with pytest.raises(RefConflict) as e:
        fetch(b)
    assert e.value.expected == seen and e.value.actual == mine
    assert b.history.ref(name) == mine
    monkeypatch.undo()
    fetch(b)  # run again, it finishes
    assert b.history.ref(name) == pushed.history.ref("refs/heads/main")
    b.close()


def test_fetch_deletes_tracking_refs_of_vanished_branches(pushed, tmp_path):
    pushed.history.set_ref(tracking_ref("origin", "gone"), pushed.history.ref("refs/heads/main"), None, None)
    fetch(pushed)
    assert pushed.history.ref(tracking_ref("origin", "gone")) is None
    assert pushed.history.ref(tracking_ref("origin", "main")) is not None


def test_remove_remote_forgets_config_catalog_and_tracking_refs(pushed, tmp_path):
    cat = catalog_dir(pushed, "origin")
    assert pushed.history.refs_under("refs/remotes/origin/")
    remove_remote(pushed, "origin")
    assert pushed.config.remotes() == {}
    assert pushed.history.refs_under("refs/remotes/origin/") == {}
    assert not os.path.exists(cat)
    assert pushed.catalogs() == []
    assert gitsync.read_remote_ref(open_zone(str(tmp_path / "zone")), "main")[0] is not None  # zone untouched
    with pytest.raises(LindivcError, match="unknown remote"):
        remove_remote(pushed, "origin")


def test_remove_remote_refuses_when_a_tracking_ref_moved_meanwhile(pushed, monkeypatch):
    import lindivc.remotes as remotes

    name = tracking_ref("origin", "main")
    stale = pushed.history.ref(name)
    moved = _commit_array(pushed, 2, "two")
    real = remotes.tracking_refs

    def read_then_moved(history, remote):
        refs = real(history, remote)
        history.repo.refs[name.encode()] = moved.encode()
        return refs

    monkeypatch.setattr(remotes, "tracking_refs", read_then_moved)
    with pytest.raises(RefConflict) as e:
        remove_remote(pushed, "origin")
    assert e.value.expected == stale and e.value.actual == moved
    assert pushed.history.ref(name) == moved
    assert "origin" in pushed.config.remotes()  # nothing else was removed either


def test_add_remote_returns_the_normalized_url_and_refuses_duplicates(tmp_path):
    r = Repository.init(str(tmp_path / "a"))
    assert add_remote(r, "z", f"file://{tmp_path}/zone/") == f"{tmp_path}/zone"
    assert [c.url for c in r.catalogs()] == [f"{tmp_path}/zone"]
    with pytest.raises(LindivcError, match="already exists"):
        add_remote(r, "z", str(tmp_path / "other"))
    r.close()


@pytest.mark.parametrize("base, ours, theirs, merged, conflicts", [
    ({"a": "1"}, {"a": "2"}, {"a": "1"}, {"a": "2"}, []),             # changed on our side only
    ({"a": "1"}, {"a": "1"}, {"a": "3"}, {"a": "3"}, []),             # changed on their side only
    ({"a": "1"}, {"a": "2"}, {"a": "2"}, {"a": "2"}, []),             # the same change on both sides
    ({"a": "1"}, {}, {"a": "1"}, {}, []),                             # deleted on one side
    ({}, {"b": "1"}, {"c": "2"}, {"b": "1", "c": "2"}, []),           # added on each side
    ({"a": "1"}, {"a": "2"}, {"a": "3"}, {}, ["a"]),                  # both changed it
    ({"a": "1"}, {}, {"a": "3"}, {}, ["a"]),                          # deleted here, changed there
])
def test_merge_trees_three_ways(base, ours, theirs, merged, conflicts):
    assert merge_trees(base, ours, theirs) == (merged, conflicts)
