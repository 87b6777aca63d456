"""Published files (docs/format.md section 6.7): what push writes under ``f/`` and ``v/``.

A published file is a commit's canonical file rendered for one zone so that anyone the zone is
shared with opens it by URL, with lindi, fsspec, pynwb or Neurosift in a browser: every content
ref, and every byte range of a local file (a chunk push uploaded, lindivc.localranges), becomes
a ref into the zone that holds the chunk (this zone, or a lender of its cloud), under the zone's
public base URL; refs are written with LINDI ``templates`` (lindijson.use_templates): a URL that
five or more refs use gets one of its own (lindi's rule, so templates of imported files are
re-derived rather than lost), and the other refs into a zone use one per zone base URL
(``{"z0": "https://.../zones/alice/acg/"}``, refs ``["{{z0}}sha1/aa/bb/cc/<sha1>", offset, size]``).
Nothing else of the file changes.

A zone's owner publishes its public base URL in ``info/public`` (:func:`update_public_url`), so
that a borrower's published files name the lender's chunks under it (:data:`LENDER_PUBLIC`).
"""
from __future__ import annotations

import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Sequence

from . import lindijson
from .catalog import ZoneCatalog, public_prefix
from .documents import parse_published_refs, public_url_document
from .errors import InvalidDocument, LocalFileUnpublishable, ObjectMissing, ZoneError, ZoneKeyMissing
from .history import CommitInfo
from .layout import PUBLIC_KEY, file_key, object_key, parse_zone_url, version_key
from .localranges import LocalRanges
from .remotes import tracking_refs
from .repo import Repository
from .zones import Zone

#: documents rendered and put at once (each holds one rendered file in memory)
PUBLISH_THREADS = 4
NEUROSIFT = "https://neurosift.app/nwb?url="
#: catalog meta: the URL this repository last wrote to the zone's ``info/public``
PUBLIC_WRITTEN = "public_written"
#: catalog meta: lender zone URL -> the public base URL its ``info/public`` named when last read
LENDER_PUBLIC = "lender_public"


def neurosift_url(file_url: str) -> str:
    """The Neurosift link that opens the published LINDI file at ``file_url`` (http(s))."""
    return NEUROSIFT + urllib.parse.quote(file_url, safe=":/")


def is_http(url: str) -> bool:
    return url.startswith(("http://", "https://"))


def public_base(repo: Repository, remote: str, zone: Zone) -> str:
    """The base URL the published refs of ``remote``'s zone start with (ends in ``/``): its
    ``--public-url``, else the zone's own (a gateway's URL, an S3 endpoint's, a directory's path)."""
    return repo.config.remote_public_url(remote) or public_prefix(zone)


def lender_base(lender_url: str, lender_prefix: str, zone_url: str, public_url: str | None,
                lender_public: str | None = None) -> str:
    """The public base of a lending zone of the same cloud: the public URL its owner published
    (``lender_public``, read from its ``info/public``) when known; else, when this zone has a
    public URL that ends in its own ``zones/<user>/<zone>/``, the cloud is served there as a
    whole and the lender's base is the same root with the lender's part; otherwise the lender's
    own public prefix."""
    if lender_public:
        return lender_public
    own, lender = parse_zone_url(zone_url), parse_zone_url(lender_url)
    tail = f"zones/{own.user}/{own.name}/"
    if public_url and own.in_cloud and lender.in_cloud and own.cloud_root == lender.cloud_root \
            and public_url.endswith("/" + tail):
        return public_url[: len(public_url) - len(tail)] + f"zones/{lender.user}/{lender.name}/"
    return lender_prefix


class Renderer:
    """Renders canonical files for one zone: content refs and local ranges become refs into the
    zone (or a lender) under their public bases, written with templates."""

    def __init__(self, cat: ZoneCatalog, local: LocalRanges, public_url: str | None) -> None:
        self.cat = cat
        self.local = local
        own = cat.meta.get("prefix") or public_prefix(cat.zone)
        self.bases: dict[str, str] = {own: public_url or own}  # placement prefix -> published base
        lenders = cat.meta.get(LENDER_PUBLIC) or {}
        for prefix, zurl in cat.prefixes.items():
            if zurl != cat.url:
                self.bases[prefix] = lender_base(zurl, prefix, cat.url, public_url, lenders.get(zurl))

    def _locate(self, sha: str, offset: int, size: int) -> list:
        p = self.cat.placements.get(sha)
        if p is None:
            raise ObjectMissing(sha, self.cat.url)
        return [self.bases.get(p.prefix, p.prefix) + object_key(p.pack), p.offset + offset, size]

    def render(self, canonical: bytes, name: str = "<blob>") -> bytes:
        """The published bytes of a canonical file. ObjectMissing if a chunk is in no zone the
        catalog knows (push uploads every one first)."""
        rfs = lindijson.parse(canonical, name, check=False)
        local_memo: dict[str, bool] = {}
        out: dict = {}
        with lindijson.no_gc():
            for k, v in rfs["refs"].items():
                if type(v) is list and len(v) == 3 and type(v[0]) is str:
                    u = v[0]
                    if u.startswith(lindijson.CONTENT_PREFIX):
                        v = self._locate(u[len(lindijson.CONTENT_PREFIX):], v[1], v[2])
                    else:
                        is_local = local_memo.get(u)
                        if is_local is None:
                            is_local = local_memo[u] = lindijson.is_local_location(u)
                        if is_local:
                            sha = self.local.chunk(u, v[1], v[2])
                            if sha is None:  # push records every range first (step 2)
                                raise LocalFileUnpublishable(u, f"has a range ({v[1]}+{v[2]}) no record names", name,
                                                             "push again")
                            v = self._locate(sha, 0, v[2])
                out[k] = v
            rfs["refs"] = out
            return lindijson.dumps(lindijson.use_templates(rfs, self.bases.values()))


@dataclass
class Published:
    """What step 7 of a push wrote."""

    files: list[str] = field(default_factory=list)  # paths of the head commit, published under v/
    urls: dict[str, str] = field(default_factory=dict)  # path -> public URL of f/<path> (default branch)
    versions: dict[str, str] = field(default_factory=dict)  # path -> public URL of v/<head>/<path>
    documents: int = 0  # documents put
    base: str = ""  # the zone's public base URL


def versions_to_publish(repo: Repository, remote: str, head: str, commits: list[CommitInfo],
                        previous: str | None) -> list[str]:
    """The commits that get ``v/<commit>/`` documents in a push of ``commits`` (new to the zone
    since ``previous``): all of them when the zone had the branch; for a branch new to the zone
    (``previous`` None), less those a remote-tracking ref of ``remote`` already reaches (published
    by an earlier push); the head always."""
    if previous is not None:
        return [c.sha for c in commits]
    pushed = [s for s in tracking_refs(repo.history, remote).values() if repo.history.has(s)]
    done: set[str] = set()
    if pushed:
        wanted = {c.sha for c in commits}
        done = {c.sha for c in repo.history.walk(pushed) if c.sha in wanted}
    return [c.sha for c in commits if c.sha == head or c.sha not in done]


def publish_files(repo: Repository, remote: str, cat: ZoneCatalog, zone: Zone, head: str,
                  versions: Sequence[str], previous: str | None, default_branch: bool, *,
                  also: Sequence[Callable[[], object]] = ()) -> Published:
    """Put the published documents of a push: ``v/<commit>/<path>`` for each commit of
    ``versions`` (:func:`versions_to_publish`); on the zone's default branch, ``f/<path>`` of the
    head, removing ``f/`` files of paths ``previous`` had and the head no longer has. Each distinct
    file is rendered once; documents go up in parallel, and the jobs ``also`` run alongside them."""
    base = public_base(repo, remote, zone)
    renderer = Renderer(cat, repo.local_ranges, repo.config.remote_public_url(remote))
    keys_of: dict[tuple[str, str], list[str]] = {}  # (path, blob) -> keys to put it at
    head_files = repo.history.commit_files(head)
    for sha in versions:
        files = head_files if sha == head else repo.history.commit_files(sha)
        for path, blob in files.items():
            keys_of.setdefault((path, blob), []).append(version_key(sha, path))
    if default_branch:
        for path, blob in head_files.items():
            keys_of.setdefault((path, blob), []).append(file_key(path))

    public = public_url_job(repo, remote, cat, zone)
    jobs = [*also, public] if public is not None else list(also)

    def put(item: tuple[tuple[str, str], list[str]]) -> int:
        (path, blob), keys = item
        data = renderer.render(repo.history.read_blob(blob), path)
        if len(keys) == 1:
            zone.put(keys[0], data)
        else:  # v/ and f/ of one file: the same bytes, put side by side (one round trip, not two)
            with ThreadPoolExecutor(len(keys)) as each:
                for f in [each.submit(zone.put, key, data) for key in keys]:
                    f.result()
        return len(keys)

    res = Published(files=sorted(head_files), base=base)
    items = sorted(keys_of.items())
    with ThreadPoolExecutor(max_workers=max(1, min(PUBLISH_THREADS, len(items) + len(jobs)))) as ex:
        extra = [ex.submit(job) for job in jobs]
        res.documents = sum(ex.map(put, items))
        done = [f.result() for f in extra]
    if public is not None and done[-1]:
        _remember_public_url(cat, repo.config.remote_public_url(remote))
    if default_branch and previous is not None:
        for path in sorted(set(repo.history.commit_files(previous)) - set(head_files)):
            zone.delete(file_key(path))
    for path in res.files:
        res.versions[path] = key_url(base, version_key(head, path))
        if default_branch:
            res.urls[path] = key_url(base, file_key(path))
    if cat.meta.get("published_base") != base:
        cat.meta["published_base"] = base
        cat._save_meta()
    return res


def public_url_job(repo: Repository, remote: str, cat: ZoneCatalog, zone: Zone) -> Callable[[], bool] | None:
    """The request that makes the zone's ``info/public`` name ``remote``'s public URL (put when
    it is set, deleted when it was cleared), or None when this repository already wrote that
    value there (docs/format.md 6.3). The job returns False if the store refused or failed (a
    gateway older than ``info/public``): the push goes on and the next one tries again. Once it
    returned True, :func:`_remember_public_url`."""
    url = repo.config.remote_public_url(remote)
    if url == cat.meta.get(PUBLIC_WRITTEN):
        return None
    doc = public_url_document(url) if url is not None else None

    def job() -> bool:
        try:
            if doc is None:
                zone.delete(PUBLIC_KEY)
            else:
                zone.put(PUBLIC_KEY, doc)
        except ZoneError:
            return False
        return True

    return job


def update_public_url(repo: Repository, remote: str, cat: ZoneCatalog, zone: Zone) -> bool:
    """Make the zone's ``info/public`` name ``remote``'s public URL unless this repository wrote
    that value last (:func:`public_url_job`, run here); True if it sent a request."""
    job = public_url_job(repo, remote, cat, zone)
    if job is None:
        return False
    if job():
        _remember_public_url(cat, repo.config.remote_public_url(remote))
    return True


def _remember_public_url(cat: ZoneCatalog, url: str | None) -> None:
    if url is None:
        cat.meta.pop(PUBLIC_WRITTEN, None)
    else:
        cat.meta[PUBLIC_WRITTEN] = url
    cat._save_meta()


def base_moved(repo: Repository, remote: str, cat: ZoneCatalog) -> bool:
    """True if ``remote``'s public base URL changed (``remote set-url --public-url``) since this
    repository last published there: a push with no new commits then publishes the head again."""
    last = cat.meta.get("published_base")
    return last is not None and last != public_base(repo, remote, cat.zone)


def learn_local_ranges(repo: Repository, cat: ZoneCatalog, commits: list[CommitInfo]) -> int:
    """Learn, from the zone's published versions, which chunk each range of a local file that
    ``commits`` reference is, where this repository does not know it yet (a clone: the file is on
    the pusher's machine): working files then read the zone's copy (docs/format.md 6.6). One
    ``v/<commit>/<path>`` is read per file version with unknown ranges; a version the zone lacks
    or that does not parse teaches nothing. Returns the ranges learned."""
    local = repo.local_ranges
    learned = 0
    seen: set[str] = set()
    for c in commits:
        for path, blob in sorted(repo.history.tree_files(c.tree).items()):
            if blob in seen:
                continue
            seen.add(blob)
            wanted: dict[str, tuple[str, int, int]] = {}
            for key, p, off, size in lindijson.iter_local_refs(repo.history.read_blob(blob), keys=True):
                if local.chunk(p, off, size) is None:
                    wanted[key] = (p, off, size)
            if wanted:
                learned += _learn_from(cat, version_key(c.sha, path), wanted, local)
    return learned


def _learn_from(cat: ZoneCatalog, key: str, wanted: dict[str, tuple[str, int, int]], local: LocalRanges) -> int:
    try:
        doc = parse_published_refs(cat.zone.get(key), key)
    except (ZoneKeyMissing, InvalidDocument):
        return 0
    found: dict[str, dict[tuple[int, int], str]] = {}
    for ref_key, ref in doc.items():
        w = wanted.get(ref_key)
        if w is None or ref.size != w[2]:
            continue
        obj = ref.object_sha1  # whatever public URL the pusher published under
        cr = cat.chunk_in(obj, ref.offset, ref.size) if obj is not None else None
        if cr is not None and cr.offset == 0 and cr.sha1 in cat.placements:
            found.setdefault(w[0], {})[(w[1], w[2])] = cr.sha1
    for p, ranges in found.items():
        local.learn(p, ranges)
    return sum(len(r) for r in found.values())


def key_url(base: str, key: str) -> str:
    """The public URL (or path) of zone key ``key`` under public base ``base``."""
    return base + (urllib.parse.quote(key, safe="/") if is_http(base) else key)
