"""fsck finds and names corruption: local objects and packs, zone objects, packs and indexes."""
from __future__ import annotations

import os

from click.testing import CliRunner

from lindivc.cli import cli
from lindivc.consolidate import pack_loose
from lindivc.fsck import fsck_local, fsck_zone
from lindivc.push import push
from lindivc.zones import open_zone

from test_gc import make_repo


def flip(path: str, at: int = 100) -> None:
    with open(path, "r+b") as f:
        f.seek(at)
        b = f.read(1)
        f.seek(at)
        f.write(bytes([b[0] ^ 0x40]))


def zpath(zdir: str, sha: str) -> str:
    return os.path.join(zdir, "sha1", sha[:2], sha[2:4], sha[4:6], sha)


def test_fsck_local_finds_flipped_object_and_pack(tmp_path, monkeypatch):
    r, name = make_repo(tmp_path / "a", seed=1)
    assert fsck_local(r).ok
    shas = list(r.objects)
    flip(r.objects.path(shas[0]))
    rep = fsck_local(r)
    assert [(p.kind, p.name) for p in rep.problems] == [("corrupt-object", shas[0])]
    monkeypatch.chdir(r.root)
    res = CliRunner().invoke(cli, ["fsck"])
    assert res.exit_code == 1 and f"corrupt-object: {shas[0]}" in res.output
    assert res.output.strip().splitlines()[-1] == "Error: fsck found 1 problem(s)"
    # repair by removing it: now a committed file's chunk is missing
    os.unlink(r.objects.path(shas[0]))
    rep = fsck_local(r)
    assert [(p.kind, p.name) for p in rep.problems] == [("missing-object", shas[0])]

    r2, _ = make_repo(tmp_path / "b", seed=2)
    pack_loose(r2)
    (pack,) = r2.packs.packs
    assert fsck_local(r2).ok
    flip(r2.objects.path(pack), 5)
    rep = fsck_local(r2)
    assert [(p.kind, p.name) for p in rep.problems] == [("corrupt-pack", pack)]
    # a truncated local index
    idx = os.path.join(r2.idx_dir, pack)
    data = open(idx, "rb").read()
    open(idx, "wb").write(data[: len(data) // 2])
    r2._packs = None
    rep = fsck_local(r2)
    assert ("bad-index", pack) in [(p.kind, p.name) for p in rep.problems]


def test_fsck_zone_finds_flipped_object_pack_and_truncated_index(tmp_path, monkeypatch):
    r, name = make_repo(tmp_path / "a", seed=3, n_chunks=7, pack_size=300_000)  # packs of 3 and a lone chunk
    zdir = str(tmp_path / "zone")
    r.config.add_remote("origin", zdir)
    push(r)
    zone = open_zone(zdir)
    assert fsck_zone(zone, read_data=True, cache_dir=str(tmp_path / "c")).ok
    names = sorted(os.listdir(os.path.join(zdir, "idx")))
    import json

    docs = {n: json.load(open(os.path.join(zdir, "idx", n))) for n in names}
    packs = [n for n in names if len(docs[n]["chunks"]) > 1]
    lone = [n for n in names if len(docs[n]["chunks"]) == 1]
    assert packs and lone
    flip(zpath(zdir, lone[0]))
    flip(zpath(zdir, packs[0]))
    victim = packs[-1] if len(packs) > 1 else lone[-1]
    ipath = os.path.join(zdir, "idx", victim)
    data = open(ipath, "rb").read()
    open(ipath, "wb").write(data[:40])
    # without reading data: only the index is visibly broken
    rep = fsck_zone(zone, cache_dir=str(tmp_path / "c"))
    lost = {c[0] for c in docs[victim]["chunks"]}  # unindexed chunks: no longer resolvable
    assert sorted((p.kind, p.name) for p in rep.problems) == sorted(
        [("bad-index", f"idx/{victim}")] + [("missing-object", c) for c in lost])
    rep = fsck_zone(zone, read_data=True, cache_dir=str(tmp_path / "c"))
    found = {(p.kind, p.name) for p in rep.problems}
    assert ("corrupt-object", f"sha1/{lone[0][:2]}/{lone[0][2:4]}/{lone[0][4:6]}/{lone[0]}") in found
    assert ("corrupt-pack", f"sha1/{packs[0][:2]}/{packs[0][2:4]}/{packs[0][4:6]}/{packs[0]}") in found
    assert any(k == "corrupt-chunk" for k, _ in found)
    assert ("bad-index", f"idx/{victim}") in found
    monkeypatch.chdir(r.root)
    res = CliRunner().invoke(cli, ["fsck", "--remote", "origin", "--read-data"])
    assert res.exit_code == 1 and "corrupt-pack" in res.output and "bad-index" in res.output
    res = CliRunner().invoke(cli, ["fsck", "--remote", "origin", "--json"])
    assert res.exit_code == 1 and '"ok": false' in res.output


def test_fsck_zone_finds_ref_to_missing_commit_and_missing_pack(tmp_path):
    r, name = make_repo(tmp_path / "a", seed=4)
    zdir = str(tmp_path / "zone")
    r.config.add_remote("origin", zdir)
    push(r)
    zone = open_zone(zdir)
    zone.put("git/refs/heads/ghost", b"1234567890123456789012345678901234567890\n")
    (pack,) = os.listdir(os.path.join(zdir, "idx"))
    os.unlink(zpath(zdir, pack))
    rep = fsck_zone(zone, cache_dir=str(tmp_path / "c"))
    kinds = {(p.kind, p.name) for p in rep.problems}
    assert ("missing-commit", "refs/heads/ghost") in kinds
    assert ("missing-object", f"sha1/{pack[:2]}/{pack[2:4]}/{pack[4:6]}/{pack}") in kinds


def test_fsck_counts_a_commit_that_two_refs_name_once(tmp_path, monkeypatch):
    r, name = make_repo(tmp_path / "a", seed=5)
    r.create_branch("other")  # the same commit as main
    rep = fsck_local(r)
    assert rep.ok and rep.checked["refs"] == 2 and rep.checked["commits"] == 1
    zdir = str(tmp_path / "zone")
    r.config.add_remote("origin", zdir)
    push(r)
    push(r, "origin", "other")
    rep = fsck_zone(open_zone(zdir), cache_dir=str(tmp_path / "cache"))
    assert rep.ok and rep.checked["refs"] == 2 and rep.checked["commits"] == 1
    monkeypatch.chdir(r.root)
    res = CliRunner().invoke(cli, ["fsck", "--remote", "origin"])
    assert res.exit_code == 0 and "1 commits" in res.output and "2 refs" in res.output


def test_fsck_local_names_a_missing_file_and_tree_of_a_commit(tmp_path):
    r, name = make_repo(tmp_path / "a", seed=6)
    c = r.history.commit(r.history.head())
    blob = r.history.tree_files(c.tree)[name]
    os.unlink(os.path.join(r.root, ".lindivc", "git", "objects", blob[:2], blob[2:]))
    rep = fsck_local(r)
    assert [(p.kind, p.name) for p in rep.problems] == [("missing-blob", blob)]
    os.unlink(os.path.join(r.root, ".lindivc", "git", "objects", c.tree[:2], c.tree[2:]))
    rep = fsck_local(r)
    assert [(p.kind, p.name) for p in rep.problems] == [("missing-tree", c.tree)]
    assert rep.checked["commits"] == 1
