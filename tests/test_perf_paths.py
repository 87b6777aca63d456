"""The fast paths for large LINDI files agree with the plain ones, on random files.

- ``refs.canonical_dumps`` (one pass, a classifier memoized per URL) against
  ``refs.dumps(refs.canonicalize(...))`` with the resolver alone, byte for byte, and the same
  InvalidLindiFile reason for broken files;
- ``diff._parse_narrowed`` (changed lines found by bytes, only they parsed) against full
  parses, through ``diff.diff_rfs``.
"""
from __future__ import annotations

import base64
import copy
import random
import subprocess

import orjson
import pytest

from lindivc import lindijson
from lindivc.diff import _parse_narrowed, diff_rfs
from lindivc.errors import InvalidLindiFile
from lindivc.consolidate import pack_loose
from lindivc.repo import Repository

ZONE = "https://zone.example/bucket/z1/"
EXTERNAL = "https://dandiarchive.example/blobs/abc"
ODD_KEYS = ['q"uote', "back\\slash", "new\nline", "tab\t", "caf\u00e9", "emoji \U0001F600", "del\x7f", "ctl\x01", "sl/ash"]


class _ZoneCatalog:
    """A zone that resolves sha1 keys under its prefix, but only offsets below 1000 (so a None
    from the resolver depends on the offset: the classifier must say RESOLVE)."""

    prefixes = {ZONE: "s3://bucket/z1"}

    def resolve(self, url, offset, size):
        if url.startswith(ZONE) and url[len(ZONE):].startswith("sha1/") and offset < 1000:
            return lindijson.ContentRef(url.rsplit("/", 1)[-1], offset, size)
        return None

    def locate(self, cr):
        return None


class _OpaqueCatalog:
    """A catalog without ``prefixes``: every URL must be resolved ref by ref."""

    def resolve(self, url, offset, size):
        return lindijson.ContentRef("c" * 40, offset, size) if url.endswith("/opaque") else None

    def locate(self, cr):
        return None


@pytest.fixture
def repo(tmp_path):
    r = Repository.init(str(tmp_path / "work"))
    packed = [r.objects.put_bytes(bytes([i]) * (200 + i)) for i in range(6, 12)]
    pack_loose(r, target_size=1 << 20)  # packs every loose object
    assert all(r.packs.locate(s) is not None for s in packed)
    loose = [r.objects.put_bytes(bytes([i]) * (100 + i)) for i in range(6)]
    r.locations._pack_flag.clear()
    r._packs = None
    r._catalogs = [_ZoneCatalog(), _OpaqueCatalog()]
    r.test_loose = loose
    r.test_packed = packed
    yield r
    r.close()


def _rand_key(rng: random.Random, i: int) -> str:
    base = rng.choice(["acq/ts", "units/spike_times", "g", rng.choice(ODD_KEYS)])
    return f"{base}/{rng.choice(['data', 'x'])}/{i}" if rng.random() < 0.8 else f"{base}/{i}.{rng.randint(0, 3)}"


def _rand_location(rng: random.Random, repo: Repository) -> list:
    kind = rng.randrange(9)
    o, n = rng.randrange(0, 3000), rng.randrange(0, 50)
    if kind == 0:
        return ["{{u0}}", o, n]
    if kind == 1:
        return ["{{ u1 }}/part", o, n]
    if kind == 2:
        return ["{{nope}}", o, n]
    if kind == 3:
        return [repo.objects.path(rng.choice(repo.test_loose)), rng.randrange(0, 50), n]
    if kind == 4:  # a local pack, at the offset of one of its chunks
        sha = rng.choice(repo.test_packed)
        pack, off, size = repo.packs.locate(sha)
        return [repo.objects.path(pack), off + rng.randrange(0, size // 2), rng.randrange(0, size // 2)]
    if kind == 5:
        return [ZONE + "sha1/aa/bb/cc/" + "d" * 40, rng.choice([5, 999, 1000, 2000]), n]
    if kind == 6:
        return ["https://else.example/x/opaque", o, n]
    if kind == 7:
        return ["sha1:" + "e" * 40, o, n]
    return [rng.choice(["/abs/file.h5", EXTERNAL, "rel/path", "caf\u00e9 \"q\""]), o, n]


def _rand_rfs(rng: random.Random, repo: Repository, n: int) -> dict:
    refs: dict = {".zgroup": {"zarr_format": 2}}
    for i in range(n):
        k = _rand_key(rng, i)
        r = rng.random()
        if r < 0.7:
            refs[k] = _rand_location(rng, repo)
        elif r < 0.8:
            refs[k] = "base64:" + base64.b64encode(bytes([i % 256]) * 3).decode()
        elif r < 0.9:
            refs[k.rsplit("/", 1)[0] + "/.zattrs"] = rng.choice([
                '{"b": 1, "a": [1, 2]}', "base64:" + base64.b64encode(b'{"z": "\\u00e9", "y": null}').decode(),
                "not json {", {"unit": "s", "a": {"d": 1, "c": 2}}])
        else:
            refs[k.rsplit("/", 1)[0] + "/.zarray"] = {"shape": [i], "chunks": [1], "dtype": "<f8", "zarr_format": 2}
    keys = list(refs)
    if rng.random() < 0.5:
        rng.shuffle(keys)
    rfs: dict = {"refs": {k: refs[k] for k in keys}}
    if rng.random() < 0.8:
        rfs["templates"] = {"u0": EXTERNAL, "u1": ZONE + "sha1/aa/bb/cc/" + "f" * 40}
    if rng.random() < 0.5:
        rfs["version"] = 1
    if rng.random() < 0.5:
        rfs["generationMetadata"] = {"z": 1, "a": "caf\u00e9"}
    return orjson.loads(orjson.dumps(rfs))  # as a parse gives it


def _slow(rfs: dict, repo: Repository) -> bytes:
    lindijson.validate(rfs)
    return lindijson.dumps(lindijson.canonicalize(copy.deepcopy(rfs), repo.locations.resolve))


@pytest.mark.parametrize("seed", range(40))
def test_canonical_dumps_matches_canonicalize_then_dumps(repo, seed):
    rng = random.Random(seed)
    if seed % 2:
        repo._catalogs = repo._catalogs[:1]  # without the opaque catalog most URLs are unmanaged
    rfs = _rand_rfs(rng, repo, rng.choice([0, 1, 5, 60, 300]))
    slow = _slow(rfs, repo)
    assert lindijson.canonical_dumps(rfs, repo.locations.resolve, repo.locations.classify) == slow
    assert lindijson.dumps(lindijson.canonicalize(rfs, repo.locations.resolve, repo.locations.classify)) == slow
    assert lindijson.canonical_dumps(rfs, repo.locations.resolve) == slow  # no classifier: resolve each
    assert orjson.loads(slow)  # valid JSON


@pytest.mark.parametrize("bad", [
    ["u", 1], ["u", -1, 2], ["u", 1, True], ["u", 1.5, 2], [3, 1, 2], ["u", 1, None], 7, None, 1.5, True,
])
def test_canonical_dumps_rejects_as_validate_does(repo, bad):
    rng = random.Random(1)
    rfs = _rand_rfs(rng, repo, 30)
    keys = list(rfs["refs"])
    rfs["refs"][keys[len(keys) // 2]] = bad
    rfs["refs"]["zz/also bad"] = ["u", -5, 1]
    with pytest.raises(InvalidLindiFile) as slow:
        lindijson.validate(rfs, "f")
    with pytest.raises(InvalidLindiFile) as fast:
        lindijson.canonical_dumps(rfs, repo.locations.resolve, repo.locations.classify, "f")
    assert fast.value.reason == slow.value.reason


def test_canonical_dumps_rejects_bad_top_level(repo):
    for rfs in ([], {}, {"refs": []}, {"refs": {}, "templates": {"a": 1}}):
        with pytest.raises(InvalidLindiFile) as slow:
            lindijson.validate(rfs, "f")
        with pytest.raises(InvalidLindiFile) as fast:
            lindijson.canonical_dumps(rfs, repo.locations.resolve, repo.locations.classify, "f")
        assert fast.value.reason == slow.value.reason


@pytest.mark.parametrize("opaque", [True, False])
def test_classifier_agrees_with_resolver(repo, opaque):
    rng = random.Random(7)
    if not opaque:
        repo._catalogs = repo._catalogs[:1]
    seen = set()
    for _ in range(500):
        url, o, n = _rand_location(rng, repo)
        url = lindijson.apply_templates(url, {"u0": EXTERNAL, "u1": ZONE + "sha1/x"})
        c = repo.locations.classify(url)
        cr = repo.locations.resolve(url, o, n)
        seen.add("none" if c is None else "resolve" if c is lindijson.RESOLVE else "sha")
        if c is None:
            assert cr is None, url
        elif c is not lindijson.RESOLVE:
            assert cr == lindijson.ContentRef(c, o, n)
    assert seen == ({"sha", "resolve"} if opaque else {"none", "sha", "resolve"})


# --------------------------------------------------------------------------- narrowed diff


def _chunk(rng: random.Random, shas: list[str]) -> list:
    return ["sha1:" + rng.choice(shas), rng.randrange(0, 4) * 10, 10]


def _rand_canonical(rng: random.Random, shas: list[str]) -> dict:
    refs: dict = {".zgroup": {"zarr_format": 2}, ".zattrs": {"a": 1}}
    for g in range(rng.randint(0, 4)):
        grp = rng.choice(["acq", "units", 'we"ird', "proc"]) + str(g)
        refs[f"{grp}/.zgroup"] = {"zarr_format": 2}
        refs[f"{grp}/.zattrs"] = {"description": f"group {g}"}
        for a in range(rng.randint(0, 3)):
            arr = f"{grp}/arr{a}"
            n = rng.randint(0, 30)
            refs[f"{arr}/.zarray"] = {"shape": [n * 10], "chunks": [10], "dtype": "<i4", "zarr_format": 2}
            refs[f"{arr}/.zattrs"] = {"unit": "s"}
            for i in range(n):
                refs[f"{arr}/{i}"] = _chunk(rng, shas) if rng.random() < 0.8 else [EXTERNAL, i * 10, 10]
    return {"generationMetadata": {"by": "test"}, "refs": refs, "version": 1}


def _mutate(rng: random.Random, rfs: dict, shas: list[str]) -> dict:
    out = copy.deepcopy(rfs)
    refs = out["refs"]
    for _ in range(rng.choice([0, 1, 1, 2, 5, 20])):
        keys = sorted(refs) or ["solo/.zattrs"]
        k = rng.choice(keys)
        what = rng.randrange(9)
        if what == 0 and k.endswith(".zattrs"):
            refs[k] = dict(refs.get(k, {}), description=rng.choice(["x", "y", 3]))
        elif what == 1:
            refs.pop(k, None)
        elif what == 2 and isinstance(refs.get(k), list):
            refs[k] = _chunk(rng, shas + ["9" * 40, "8" * 40])
        elif what == 3:  # a new array, with chunks
            arr = f"new{rng.randrange(5)}/arr"
            refs[f"{arr}/.zarray"] = {"shape": [20], "chunks": [10], "dtype": "<f4", "zarr_format": 2}
            refs[f"{arr}/0"] = _chunk(rng, shas + ["7" * 40])
            refs[f"{arr}/1"] = _chunk(rng, shas)
        elif what == 4:  # an array removed whole
            arr = k.rsplit("/", 1)[0] + "/"
            for kk in [x for x in refs if x.startswith(arr)]:
                del refs[kk]
        elif what == 5 and k.endswith(".zarray") and k in refs:
            refs[k] = dict(refs[k], shape=[rng.randrange(100)])
        elif what == 6:
            out["generationMetadata"] = {"by": rng.choice(["test", "other"])}
        elif what == 7:
            refs[k + "/5"] = _chunk(rng, shas + ["6" * 40])
        else:
            refs[f"newgroup{rng.randrange(3)}/.zgroup"] = {"zarr_format": 2}
    if rng.random() < 0.05:
        out["refs"] = {}
    return out


def _fd(d) -> dict:
    return d.to_json()


@pytest.mark.parametrize("seed", range(200))
def test_parse_narrowed_gives_the_full_diff(seed):
    rng = random.Random(seed)
    shas = [f"{i:040x}" for i in range(1, rng.randint(2, 12))]
    a = _rand_canonical(rng, shas)
    if rng.random() < 0.05:
        a["refs"] = {}
    b = _mutate(rng, a, shas)
    da, db = lindijson.dumps(a), lindijson.dumps(b)
    full = diff_rfs("f", lindijson.parse(da), lindijson.parse(db))
    fast = diff_rfs("f", *_parse_narrowed(da, db, "f"))
    assert _fd(fast) == _fd(full)
    back = diff_rfs("f", *_parse_narrowed(db, da, "f"))
    assert _fd(back) == _fd(diff_rfs("f", lindijson.parse(db), lindijson.parse(da)))


def test_big_blob_is_valid_git(tmp_path):
    r = Repository.init(str(tmp_path / "w"))
    data = b"x" * (3 << 20) + b"tail"
    sha = r.history.write_blob(data)
    assert r.history.read_blob(sha) == data
    git_dir = r.history.git_dir
    r.close()
    out = subprocess.run(["git", "--git-dir", git_dir, "cat-file", "-p", sha], capture_output=True, check=True)
    assert out.stdout == data
    subprocess.run(["git", "--git-dir", git_dir, "fsck", "--strict"], capture_output=True, check=True)
