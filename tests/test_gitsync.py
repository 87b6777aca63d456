import os
import subprocess
import uuid

import pytest
from dulwich.objects import Blob, Commit, Tree
from dulwich.repo import Repo

from lindivc.errors import ChecksumMismatch, ObjectMissing, PreconditionFailed, RefConflict
from lindivc.gitsync import download_history, upload_history
from lindivc.infofiles import remote_packs, update_info_packs
from lindivc.zonerefs import cas_remote_ref, list_remote_refs, read_remote_ref
from lindivc.zones import open_zone


@pytest.fixture(params=["memory", "local"])
def zone(request, tmp_path):
    if request.param == "memory":
        z = open_zone(f"memory://gitsync-{uuid.uuid4().hex[:12]}")
    else:
        z = open_zone(str(tmp_path / "zone"))
    yield z
    z.close()


def new_repo(path):
    os.makedirs(path)
    Repo.init_bare(str(path), default_branch=b"main").close()
    return str(path)


def commit(git_dir, files, message, parent=None, when=1_700_000_000):
    """Commit ``files`` ({name: bytes}, one level of subdirectory allowed) on top of ``parent``."""
    with Repo(git_dir) as repo:
        store = repo.object_store
        subtrees = {}
        root = Tree()
        for name, data in files.items():
            blob = Blob.from_string(data)
            store.add_object(blob)
            if "/" in name:
                d, f = name.split("/", 1)
                subtrees.setdefault(d, Tree()).add(f.encode(), 0o100644, blob.id)
            else:
                root.add(name.encode(), 0o100644, blob.id)
        for d, t in subtrees.items():
            store.add_object(t)
            root.add(d.encode(), 0o040000, t.id)
        store.add_object(root)
        c = Commit()
        c.tree = root.id
        c.parents = [parent.encode()] if parent else []
        c.author = c.committer = b"Test User <test@example.org>"
        c.author_time = c.commit_time = when
        c.author_timezone = c.commit_timezone = 0
        c.message = message.encode()
        store.add_object(c)
        repo.refs[b"refs/heads/main"] = c.id
        return c.id.decode()


def history(git_dir):
    c1 = commit(git_dir, {"a.lindi.json": b'{"refs": {}}\n', "sub/b.lindi.json": b"b1\n"}, "first")
    c2 = commit(git_dir, {"a.lindi.json": b'{"refs": {"x": 1}}\n', "sub/b.lindi.json": b"b1\n"}, "second", c1, 1_700_000_100)
    c3 = commit(git_dir, {"a.lindi.json": b'{"refs": {"x": 2}}\n', "c.lindi.json": b"c\n"}, "third", c2, 1_700_000_200)
    return [c1, c2, c3]


def git(git_dir, *args):
    return subprocess.run(["git", "--git-dir", git_dir, *args], check=True, capture_output=True, text=True).stdout


def push(git_dir, zone, head, branch="main"):
    sha, etag = read_remote_ref(zone, branch)
    n = upload_history(git_dir, zone, [head], [sha] if sha else [])
    cas_remote_ref(zone, branch, head, etag, expected_sha=sha)
    return n


def test_upload_then_download_round_trips_history(zone, tmp_path):
    src = new_repo(tmp_path / "src")
    shas = history(src)
    sent = upload_history(src, zone, [shas[-1]])
    assert sent > 0
    assert read_remote_ref(zone, "main") == (None, None)  # upload does not move refs
    cas_remote_ref(zone, "main", shas[-1], None)
    assert list_remote_refs(zone) == {"refs/heads/main": shas[-1]}
    assert len(remote_packs(zone)) == 1

    dst = new_repo(tmp_path / "dst")
    got = download_history(zone, dst, [shas[-1]])
    assert got >= sent - 100  # the pack and its index, give or take
    with Repo(dst) as repo:
        repo.refs[b"refs/heads/main"] = shas[-1].encode()
    assert git(dst, "log", "--format=%H", "main").split() == list(reversed(shas))
    assert git(dst, "log", "--format=%H", "main") == git(src, "log", "--format=%H", "main")
    git(dst, "fsck", "--strict", "--no-dangling")
    assert git(dst, "show", "main:c.lindi.json") == "c\n"
    # a second download has nothing to do
    assert download_history(zone, dst, [shas[-1]]) == 0


def test_dumb_layout_files_are_written(zone, tmp_path):
    src = new_repo(tmp_path / "src")
    shas = history(src)
    push(src, zone, shas[-1])
    assert zone.get("git/HEAD") == b"ref: refs/heads/main\n"
    assert zone.get("git/refs/heads/main") == (shas[-1] + "\n").encode()
    assert zone.get("git/info/refs") == f"{shas[-1]}\trefs/heads/main\n".encode()
    [name] = remote_packs(zone)
    assert zone.get("git/objects/info/packs") == f"P pack-{name}.pack\n\n".encode()
    assert zone.exists(f"git/objects/pack/pack-{name}.pack")
    assert zone.exists(f"git/objects/pack/pack-{name}.idx")


def test_local_zone_git_dir_is_clonable_by_git(tmp_path):
    zone = open_zone(str(tmp_path / "zone"))
    src = new_repo(tmp_path / "src")
    shas = history(src)
    push(src, zone, shas[-1])
    out = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", "--bare", str(tmp_path / "zone" / "git"), str(out)], check=True,
                   capture_output=True)
    assert git(str(out), "rev-parse", "main").strip() == shas[-1]
    git(str(out), "fsck", "--strict")


def test_second_upload_with_nothing_new_sends_zero_bytes(zone, tmp_path):
    src = new_repo(tmp_path / "src")
    shas = history(src)
    assert push(src, zone, shas[-1]) > 0
    assert upload_history(src, zone, [shas[-1]], [shas[-1]]) == 0
    # the zone's own refs count as "have" even when the caller passes none
    assert upload_history(src, zone, [shas[-1]]) == 0
    assert upload_history(src, zone, [shas[0]]) == 0
    assert len(remote_packs(zone)) == 1


def test_retried_push_does_not_resend_the_pack(zone, tmp_path):
    src = new_repo(tmp_path / "src")
    shas = history(src)
    assert upload_history(src, zone, [shas[-1]]) > 0
    # the push died before its ref update: the retry finds the same pack in the zone
    assert upload_history(src, zone, [shas[-1]]) == 0
    cas_remote_ref(zone, "main", shas[-1], None)
    assert len(remote_packs(zone)) == 1


def test_incremental_push_and_fetch_send_only_new_objects(zone, tmp_path):
    src = new_repo(tmp_path / "src")
    shas = history(src)
    first = push(src, zone, shas[1])
    dst = new_repo(tmp_path / "dst")
    download_history(zone, dst, [shas[1]])

    second = push(src, zone, shas[2])
    assert 0 < second
    assert len(remote_packs(zone)) == 2
    got = download_history(zone, dst, [shas[2]])
    assert 0 < got < first + second
    with Repo(dst) as repo:
        repo.refs[b"refs/heads/main"] = shas[2].encode()
    git(dst, "fsck", "--strict", "--no-dangling")
    assert git(dst, "log", "--format=%s", "main").split() == ["third", "second", "first"]


def test_cas_conflict_raises_ref_conflict(zone, tmp_path):
    src = new_repo(tmp_path / "src")
    shas = history(src)
    upload_history(src, zone, [shas[-1]])
    etag = cas_remote_ref(zone, "main", shas[0], None)
    # creating a branch that exists
    with pytest.raises(RefConflict) as e:
        cas_remote_ref(zone, "main", shas[1], None)
    assert e.value.actual == shas[0]
    assert "fetch and merge first" in str(e.value)
    # someone else moved the branch since we read it
    sha, etag = read_remote_ref(zone, "main")
    assert sha == shas[0]
    cas_remote_ref(zone, "main", shas[2], etag, expected_sha=sha)
    with pytest.raises(RefConflict) as e:
        cas_remote_ref(zone, "main", shas[1], etag, expected_sha=sha)
    assert e.value.expected == shas[0] and e.value.actual == shas[2]
    assert read_remote_ref(zone, "main")[0] == shas[2]


def test_corrupted_pack_in_zone_is_detected_on_download(zone, tmp_path):
    src = new_repo(tmp_path / "src")
    shas = history(src)
    push(src, zone, shas[-1])
    [name] = remote_packs(zone)
    key = f"git/objects/pack/pack-{name}.pack"
    good = zone.get(key)
    for pos in (len(good) // 2, 20, len(good) - 1):
        bad = bytearray(good)
        bad[pos] ^= 0xFF
        zone.put(key, bytes(bad))
        dst = new_repo(tmp_path / f"dst{pos}")
        with pytest.raises(ChecksumMismatch):
            download_history(zone, dst, [shas[-1]])
        with Repo(dst) as repo:
            assert shas[-1].encode() not in repo.object_store
            assert list(repo.object_store.packs) == []
    zone.put(key, good[:-30])
    with pytest.raises(ChecksumMismatch):
        download_history(zone, new_repo(tmp_path / "dst-trunc"), [shas[-1]])


def test_missing_history_in_zone_raises_object_missing(zone, tmp_path):
    src = new_repo(tmp_path / "src")
    shas = history(src)
    with pytest.raises(ObjectMissing):
        download_history(zone, new_repo(tmp_path / "dst"), [shas[-1]])


def test_loose_objects_in_zone_are_downloaded(zone, tmp_path):
    """A zone written by plain git (update-server-info on a repository with loose objects)."""
    src = new_repo(tmp_path / "src")
    shas = history(src)
    with Repo(src) as repo:
        for oid in repo.object_store:
            obj = repo.object_store[oid]
            h = oid.decode()
            zone.put(f"git/objects/{h[:2]}/{h[2:]}", obj.as_legacy_object())
    dst = new_repo(tmp_path / "dst")
    assert download_history(zone, dst, [shas[-1]]) > 0
    with Repo(dst) as repo:
        repo.refs[b"refs/heads/main"] = shas[-1].encode()
    git(dst, "fsck", "--strict", "--no-dangling")
    # a loose object whose bytes do not match its name is refused
    h = shas[0]
    with Repo(src) as repo:
        other = repo.object_store[shas[1].encode()]
    zone.put(f"git/objects/{h[:2]}/{h[2:]}", other.as_legacy_object())
    with pytest.raises(ChecksumMismatch):
        download_history(zone, new_repo(tmp_path / "dst2"), [shas[0]])
    # bytes that are not a loose object at all (not zlib; an unknown type) are refused too
    import zlib

    for junk in (b"not zlib", zlib.compress(b"weird 5\0hello")):
        zone.put(f"git/objects/{h[:2]}/{h[2:]}", junk)
        with pytest.raises(ChecksumMismatch, match="unreadable object"):
            download_history(zone, new_repo(tmp_path / f"dst-{len(junk)}"), [shas[0]])


def test_list_remote_refs_skips_malformed_refs_only(zone, tmp_path):
    src = new_repo(tmp_path / "src")
    shas = history(src)
    cas_remote_ref(zone, "main", shas[-1], None)
    zone.put("git/refs/heads/broken", b"not a sha\n")
    assert list_remote_refs(zone) == {"refs/heads/main": shas[-1]}


def test_info_packs_update_retries_after_concurrent_change(zone, tmp_path):
    src = new_repo(tmp_path / "src")
    shas = history(src)
    upload_history(src, zone, [shas[-1]])
    [name] = remote_packs(zone)
    real_put = zone.put
    raced = []

    def racing_put(key, data, **kw):
        if key == "git/objects/info/packs" and not raced:
            raced.append(1)
            real_put(key, b"P pack-" + b"0" * 40 + b".pack\n\n")  # another pusher's update
            raise PreconditionFailed(key)
        return real_put(key, data, **kw)

    zone.put = racing_put
    try:
        update_info_packs(zone, ["f" * 40])
    finally:
        del zone.put
    assert raced
    listed = remote_packs(zone)
    assert name in listed and "f" * 40 in listed


def test_s3_zone_round_trip(s3_bucket, tmp_path):
    zone = open_zone(f"s3://{s3_bucket}/z")
    src = new_repo(tmp_path / "src")
    shas = history(src)
    push(src, zone, shas[-1])
    with pytest.raises(RefConflict):
        cas_remote_ref(zone, "main", shas[0], None)
    dst = new_repo(tmp_path / "dst")
    download_history(zone, dst, [shas[-1]])
    with Repo(dst) as repo:
        repo.refs[b"refs/heads/main"] = shas[-1].encode()
    git(dst, "fsck", "--strict", "--no-dangling")
    assert upload_history(src, zone, [shas[-1]]) == 0
