"""Exchange history and data with zones: push, fetch, pull, clone (DESIGN.md section 5).

Push writes, in this order, so that a crash at any point leaves the zone consistent and a retry
finishes without re-sending what arrived (docs/format.md, "Push"):

1. read the remote branch ref; refuse a non-fast-forward unless forced;
2. write a journal entry naming every object the new commits reference;
3. record borrowed chunks (borrow/ here, a pin in each lending zone);
4. upload missing chunks, consolidated into packs streamed from the chunk files (see the notes
   above UPLOAD_THREADS), each pack followed by its index;
5. upload the history objects (git/);
6. upload the rendered files (v/<commit>/<path>, then f/<path>);
7. compare-and-swap the branch ref; then drop the journal entry.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field

from . import gitsync
from . import lindijson
from .errors import ChecksumMismatch, LindivcError, NonFastForward, ObjectMissing, RefConflict, ZoneError, ZoneKeyMissing
from .layout import (BORROW_FORMAT, JOURNAL_FORMAT, PIN_FORMAT, borrow_key, file_key, index_key, object_key,
                     parse_zone_url, pin_key, version_key)
from .packs import PackIndex
from .packstream import PackSource, PackWriter, Segment, plan_packs
from .progress import Reporter
from .lindijson import ContentRef
from .catalog import (Placement, ZoneCatalog, catalog_for, public_prefix,
                      update_info, zone_for)
from .zones import Zone

# How push sends chunk data (chosen with scripts/bench/push_s3.py, issue 3: moto on loopback, 2 cores):
# - A pack is streamed from its chunk files straight into one PUT (packs.PackSource, S3Zone.put_stream)
#   with a known Content-Length: no temp pack is written, so the data is read twice (hash, send) and
#   written never (building the pack locally first doubled the disk I/O and cost more than the upload).
#   Resumable as before: the same chunks give the same pack bytes, hence the same name, and a pack the
#   zone holds is not sent again; a pack's index is written only after the pack.
# - Its name (SHA-1 of its bytes) must be known before the PUT starts: HASH_THREADS threads hash packs
#   ahead (one SHA-1 pass, 8 MiB blocks) and each pack is queued for upload as soon as it is named, so
#   the first upload starts after hashing one pack (~60 MiB, tens of ms). Each chunk is checked against
#   its name while it streams (its last bytes are held back on a mismatch, so no object appears).
# - Pack size: core.pack_size, 64 MiB (config.py). J1's 500 MiB is then 9 objects (<= 10), all in flight
#   at once with 8 threads; each is one single PUT (S3 takes up to 5 GiB; moto assembles multipart
#   uploads slowly; below S3Zone.multipart_threshold = 1 GiB there are no parts at all, above it parts
#   are S3Zone.part_size = 64 MiB). Bigger packs leave threads idle on small pushes and make the tail
#   (the last pack alone on the wire) longer; smaller ones mean more objects (and, on moto, requests of
#   <= 32 MiB are not cheaper per byte enough to matter).
# - 8 upload threads: the store is the bottleneck (moto is one core); 8 streams keep it busy, as the
#   floor's 8 threads do. Memory per stream is one 1 MiB block (botocore's payload hash) plus socket
#   buffers, so peak RSS does not grow with the data (2 GiB push: ~100 MB).
UPLOAD_THREADS = int(os.environ.get("LINDIVC_UPLOAD_THREADS", "8"))
HASH_THREADS = 2


# --------------------------------------------------------------------------- push


@dataclass
class PushResult:
    remote: str
    branch: str
    old: str | None
    new: str
    up_to_date: bool = False
    commits: int = 0
    objects_referenced: int = 0
    chunks_uploaded: int = 0
    chunk_bytes: int = 0
    packs_uploaded: int = 0
    chunks_borrowed: int = 0
    history_bytes: int = 0
    files_published: list[str] = field(default_factory=list)
    dry_run: bool = False
    urls: dict[str, str] = field(default_factory=dict)  # path -> public URL of f/<path>


def _referenced(repo, commits) -> tuple[set[str], dict[str, int]]:
    """Chunk sha1s named by every file of ``commits`` -> and each chunk's size (from refs)."""
    seen_blobs: set[str] = set()
    shas: set[str] = set()
    sizes: dict[str, int] = {}
    for c in commits:
        for blob in repo.history.tree_files(c.tree).values():
            if blob in seen_blobs:
                continue
            seen_blobs.add(blob)
            data = repo.history.read_blob(blob)
            shas |= lindijson.content_shas(data)
    return shas, sizes


def _sibling_placements(repo, zone: Zone, wanted: set[str]) -> dict[str, Placement]:
    """Chunks of ``wanted`` that other zones of the same cloud hold (from their indexes)."""
    found: dict[str, Placement] = {}
    if not wanted:
        return found
    for sib in zone.siblings():
        h = hashlib.sha1(sib.url.encode()).hexdigest()[:16]
        cat = ZoneCatalog(os.path.join(repo.lvc, "cloud", h), sib.url)
        cat._zone = sib
        try:
            cat.refresh()
        except ZoneError:
            continue
        for sha in wanted - set(found):
            p = cat.placements.get(sha)
            if p is not None and sha not in cat.borrowed:
                found[sha] = p
    return found


def push(repo, remote: str = "origin", branch: str | None = None, *, force: bool = False,
         dry_run: bool = False, borrow: bool = True, reporter: Reporter | None = None) -> PushResult:
    """Publish ``branch`` (default: the current one) to the zone of ``remote``."""
    rep = reporter or Reporter()
    repo.config.remote_url(remote)  # an unknown remote is the first thing to report
    branch = branch or repo.history.head_branch()
    if branch is None:
        raise LindivcError("HEAD is detached; name the branch to push")
    local = repo.history.ref(f"refs/heads/{branch}")
    if local is None:
        raise LindivcError(f"branch {branch!r} has no commits to push")
    cat = catalog_for(repo, remote)
    zone = cat.zone
    remote_sha, etag = gitsync.read_remote_ref(zone, branch)
    res = PushResult(remote, branch, remote_sha, local, dry_run=dry_run)
    if remote_sha == local:
        res.up_to_date = True
        repo.history.repo.refs[f"refs/remotes/{remote}/{branch}".encode()] = local.encode()
        return res
    known_remote = remote_sha is not None and repo.history.has(remote_sha)
    if remote_sha is not None and not force:
        if not known_remote or not repo.history.is_ancestor(remote_sha, local):
            raise NonFastForward(
                f"push to {remote}/{branch} rejected: the zone has commits you do not have "
                f"({remote_sha[:10]}); run `lindivc pull {remote} {branch}` and push again (or --force to overwrite)"
            )
    commits = list(repo.history.walk([local], exclude=[remote_sha] if known_remote else []))
    res.commits = len(commits)
    needed, _ = _referenced(repo, commits)
    res.objects_referenced = len(needed)
    jid = None
    if not dry_run:
        # 2. the journal comes before the zone's indexes are read: from here on, a GC of this
        # zone treats everything these commits reference as live (docs/gc.md)
        jid = f"{int(time.time())}-{uuid.uuid4().hex[:12]}"
        journal = {"format": JOURNAL_FORMAT, "id": jid, "branch": branch, "commit": local,
                   "objects": sorted(needed), "created": time.time()}
        zone.put(f"journal/{jid}", json.dumps(journal, sort_keys=True).encode())
    cat.refresh()
    # Chunks this zone borrows count as missing until the lender confirms them again below: the
    # lender's GC may have collected them since the borrow record was written.
    missing = needed - cat.own_chunks()
    borrowed: dict[str, Placement] = {}
    if borrow and missing and zone.location.in_cloud:
        borrowed = _sibling_placements(repo, zone, missing)
    to_upload = sorted(missing - set(borrowed))
    absent = [s for s in to_upload if not repo.has_object(s)]
    if absent and not dry_run:
        _download_from_catalogs(repo, absent, rep)  # e.g. --no-borrow of a cloned file: copy the data
    sizes = {s: _local_size(repo, s) for s in to_upload}
    res.chunks_borrowed = len(borrowed)
    if dry_run:
        res.chunks_uploaded = len(to_upload)
        res.chunk_bytes = sum(sizes.values())
        return res

    # 3. borrowing: a pin there, then the record here
    if borrowed:
        lost = _record_borrows(repo, cat, zone, borrowed)
        if lost:  # the lender collected them meanwhile: copy them instead
            for sha in lost:
                del borrowed[sha]
            to_upload = sorted(set(to_upload) | lost)
            absent = [s for s in lost if not repo.has_object(s)]
            if absent:
                _download_from_catalogs(repo, absent, rep)
            sizes.update({s: _local_size(repo, s) for s in lost})
            res.chunks_borrowed = len(borrowed)

    # 4. packs, each followed by its index
    groups = plan_packs(sizes, repo.config.pack_size)
    grouped = {s for g in groups for s in g}
    groups += [[s] for s in to_upload if s not in grouped]
    total = sum(sizes.values())
    with rep.task(f"Uploading {len(to_upload)} chunks in {len(groups)} objects", total) as advance:
        def upload(group: list[str]) -> int:
            return _upload_group(repo, zone, cat, group, sizes, advance)

        if groups:
            with ThreadPoolExecutor(max_workers=min(UPLOAD_THREADS, len(groups))) as ex, \
                    ThreadPoolExecutor(max_workers=HASH_THREADS) as hasher:
                futures = []
                try:
                    hashing = {}
                    for group in groups:
                        src = _pack_source(repo, zone, group, sizes)
                        if src is None:
                            futures.append(ex.submit(upload, group))
                        else:
                            hashing[hasher.submit(src.index)] = src
                    # each pack goes up as soon as its name is known, while later ones are hashed
                    for fut in as_completed(hashing):
                        futures.append(ex.submit(_upload_pack_stream, zone, cat, hashing[fut], fut.result(), advance))
                    res.packs_uploaded = sum(f.result() for f in futures)
                except BaseException:
                    hasher.shutdown(wait=True, cancel_futures=True)
                    ex.shutdown(wait=True, cancel_futures=True)
                    raise
    res.chunks_uploaded = len(to_upload)
    res.chunk_bytes = total
    update_info(zone, "idx", cat.packs)  # includes packs of an interrupted earlier push

    # 5. history
    with rep.task("Uploading history", None) as advance:
        res.history_bytes = gitsync.upload_history(repo.history.git_dir, zone, [local],
                                                   have=[remote_sha] if known_remote else [], progress=advance)

    # 6. rendered files
    files = repo.history.commit_files(local)
    old_files = repo.history.commit_files(remote_sha) if known_remote else {}
    default_branch = _zone_default_branch(zone) or branch
    for path, blob in sorted(files.items()):
        data = lindijson.dumps(lindijson.render(lindijson.parse(repo.history.read_blob(blob), path), _zone_locator(cat)))
        zone.put(version_key(local, path), data)
        if branch == default_branch:
            zone.put(file_key(path), data)
            res.urls[path] = zone.public_url(file_key(path))
        res.files_published.append(path)
    if branch == default_branch:
        for path in set(old_files) - set(files):
            zone.delete(file_key(path))

    # 7. the ref, compare-and-swap
    try:
        gitsync.cas_remote_ref(zone, branch, local, etag, expected_sha=remote_sha)
    except RefConflict as e:
        raise NonFastForward(
            f"push to {remote}/{branch} rejected: someone else pushed meanwhile ({e.actual and e.actual[:10]}); "
            f"run `lindivc pull {remote} {branch}` and push again"
        ) from None
    repo.history.repo.refs[f"refs/remotes/{remote}/{branch}".encode()] = local.encode()
    try:
        zone.delete(f"journal/{jid}")
    except ZoneError:
        pass  # GC drops stale journal entries after the grace period
    return res


def _download_from_catalogs(repo, shas: list[str], rep: Reporter) -> None:
    """Fetch chunks this repository knows in some zone into the local store (verified)."""
    cats = repo.catalogs()
    where = {}
    for s in shas:
        for c in cats:
            if s in c.placements:
                where[s] = c
                break
        else:
            raise ObjectMissing(s, "the local object store and every known zone; cannot push")
    with rep.task(f"Downloading {len(shas)} chunks to copy", sum(where[s].placements[s].size for s in shas)) as adv:
        def one(s: str) -> None:
            data = where[s].read_chunk(s)
            repo.objects.put_bytes(data)
            adv(len(data))

        with ThreadPoolExecutor(max_workers=UPLOAD_THREADS) as ex:
            list(ex.map(one, shas))


def _local_size(repo, sha: str) -> int:
    if sha in repo.objects:
        return repo.objects.size(sha)
    loc = repo.packs.locate(sha)
    if loc is not None:
        return loc.size
    for c in repo.catalogs():
        if sha in c.placements:
            return c.placements[sha].size
    raise ObjectMissing(sha, "the local object store and every known zone; cannot push")


def _zone_default_branch(zone: Zone) -> str | None:
    try:
        head = zone.get("git/HEAD").decode().strip()
    except ZoneKeyMissing:
        return None
    return head[len("ref: refs/heads/"):] if head.startswith("ref: refs/heads/") else None


def _zone_locator(cat: ZoneCatalog):
    def locate(cr: ContentRef) -> list:
        r = cat.locate(cr)
        if r is None:
            raise ObjectMissing(cr.sha1, cat.url)
        return r

    return locate


def _open_local_chunk(repo, sha: str):
    if sha in repo.objects:
        return repo.objects.open(sha)
    import io

    return io.BytesIO(repo.read_object(sha))


def _pack_source(repo, zone: Zone, group: list[str], sizes: dict[str, int]) -> PackSource | None:
    """The pack of ``group`` as ranges of local files, when the zone can take a streamed upload
    (``put_stream``) and every chunk is loose or in a local pack; else None (PackWriter path)."""
    if len(group) < 2 or not hasattr(zone, "put_stream"):
        return None
    segs = []
    for sha in group:
        if sha in repo.objects:
            segs.append(Segment(sha, repo.objects.path(sha), 0, sizes[sha]))
            continue
        loc = repo.packs.locate(sha)
        if loc is None or loc.pack not in repo.objects:
            return None
        segs.append(Segment(sha, repo.objects.path(loc.pack), loc.offset, loc.size))
    return PackSource(segs)


def _upload_pack_stream(zone: Zone, cat: ZoneCatalog, src: PackSource, idx: PackIndex, advance) -> int:
    """Upload a hashed pack straight from its chunk files (no temp pack), then its index; return 1.

    A pack is sent even if the zone holds an object of that name: without an index it may be
    one a GC is about to delete, and writing it again gives it a new mtime, which that GC checks
    (docs/gc.md). Packs that arrived whole in an interrupted push have their index, so the push
    does not reach here for them."""
    key = object_key(idx.pack)
    with src.open(advance) as body:  # checks each chunk against its name as it streams
        zone.put_stream(key, body, idx.size)
        if not body.verified:  # the client did not read the body from start to end
            try:
                src.index(verify=True)
            except ChecksumMismatch:
                zone.delete(key)
                raise
    zone.put(index_key(idx.pack), idx.to_bytes())
    cat.add_index(idx)
    return 1


def _upload_group(repo, zone: Zone, cat: ZoneCatalog, group: list[str], sizes: dict[str, int], advance) -> int:
    """Upload one pack (or a lone chunk) and then its index; return 1 (see _upload_pack_stream
    for why an object already in the zone is sent again)."""
    if len(group) == 1:
        sha = group[0]
        idx = PackIndex.single(sha, sizes[sha])
        if sha in repo.objects:
            zone.put_file(object_key(sha), repo.objects.path(sha), progress=advance)
        else:
            zone.put(object_key(sha), repo.read_object(sha))
            advance(sizes[sha])
        zone.put(index_key(sha), idx.to_bytes())
        cat.add_index(idx)
        return 1
    w = PackWriter(repo.objects)
    try:
        for sha in group:
            with _open_local_chunk(repo, sha) as f:
                w.add(sha, f)
        idx = w.finish()
    except BaseException:
        w.abort()
        raise
    existed_locally = repo.packs.is_pack(idx.pack)
    try:
        zone.put_file(object_key(idx.pack), repo.objects.path(idx.pack), progress=advance)
        zone.put(index_key(idx.pack), idx.to_bytes())
        cat.add_index(idx)
    finally:
        if not existed_locally:
            repo.objects.delete(idx.pack)  # the loose chunks stay the local copy
    return 1


def _record_borrows(repo, cat: ZoneCatalog, zone: Zone, borrowed: dict[str, Placement]) -> set[str]:
    """Pin the borrowed chunks in each lending zone, check that the lender still indexes them
    (a GC there may have just collected them), and record the borrow here. Returns the chunks
    that can no longer be borrowed."""
    by_lender: dict[str, list[tuple[str, Placement]]] = {}
    for sha, p in borrowed.items():
        by_lender.setdefault(p.zone_url, []).append((sha, p))
    lost: set[str] = set()
    for lender_url, items in by_lender.items():
        chunks = sorted([sha, p.pack, p.offset, p.size] for sha, p in items)
        name = hashlib.sha1(json.dumps([lender_url, chunks]).encode()).hexdigest()
        pin = {"format": PIN_FORMAT, "by": zone.url, "url": public_prefix(zone) + "f/",
               "objects": sorted({p.pack for _, p in items}), "chunks": [c[0] for c in chunks], "created": time.time()}
        lender = cat._lender(lender_url)
        lender.put(pin_key(f"{hashlib.sha1(zone.url.encode()).hexdigest()[:16]}-{name[:24]}"),
                   json.dumps(pin, sort_keys=True).encode())
        gone = {pack for pack in pin["objects"] if not lender.exists(index_key(pack))}
        if gone:
            lost |= {c[0] for c in chunks if c[1] in gone}
            chunks = [c for c in chunks if c[1] not in gone]
            if not chunks:
                continue
            name = hashlib.sha1(json.dumps([lender_url, chunks]).encode()).hexdigest()
        rec = {"format": BORROW_FORMAT, "lender": lender_url, "prefix": items[0][1].prefix, "chunks": chunks,
               "created": time.time()}
        zone.put(borrow_key(name), json.dumps(rec, sort_keys=True).encode())
        cat.add_borrow(name, rec)
        update_info(zone, "borrow", [name])
    return lost


# --------------------------------------------------------------------------- fetch / pull / clone


@dataclass
class FetchResult:
    remote: str
    refs: dict[str, str]
    history_bytes: int = 0
    indexes: int = 0
    objects_downloaded: int = 0
    object_bytes: int = 0


def fetch(repo, remote: str = "origin", *, objects: bool = False, reporter: Reporter | None = None) -> FetchResult:
    """Download the zone's history and pack indexes (and, with ``objects``, its chunk data)."""
    rep = reporter or Reporter()
    cat = catalog_for(repo, remote)
    zone = cat.zone
    refs = gitsync.list_remote_refs(zone)
    heads = {k[len("refs/heads/"):]: v for k, v in refs.items() if k.startswith("refs/heads/")}
    res = FetchResult(remote, heads)
    with rep.task("Downloading history", None) as advance:
        res.history_bytes = gitsync.download_history(zone, repo.history.git_dir, sorted(set(heads.values())),
                                                     progress=advance)
    res.indexes, _ = cat.refresh()
    for b, sha in heads.items():
        repo.history.repo.refs[f"refs/remotes/{remote}/{b}".encode()] = sha.encode()
    for name in repo.history.refs_under(f"refs/remotes/{remote}/"):
        if name not in heads:
            del repo.history.repo.refs[f"refs/remotes/{remote}/{name}".encode()]
    default = _zone_default_branch(zone)
    if default:
        cat.meta["default_branch"] = default
        cat._save_meta()
    if objects:
        n, nb = download_objects(repo, cat, list(heads.values()), rep)
        res.objects_downloaded, res.object_bytes = n, nb
    return res


def download_objects(repo, cat: ZoneCatalog, heads: list[str], reporter: Reporter | None = None) -> tuple[int, int]:
    """Copy every chunk that ``heads`` reference (latest files only) into the local store."""
    rep = reporter or Reporter()
    needed: set[str] = set()
    for h in heads:
        for blob in repo.history.commit_files(h).values():
            needed |= lindijson.content_shas(repo.history.read_blob(blob))
    todo = sorted(s for s in needed if not repo.has_object(s))
    total = sum(cat.placements[s].size for s in todo if s in cat.placements)
    nbytes = 0
    with rep.task(f"Downloading {len(todo)} chunks", total) as advance:
        def one(sha: str) -> int:
            data = cat.read_chunk(sha)
            repo.objects.put_bytes(data)
            advance(len(data))
            return len(data)

        with ThreadPoolExecutor(max_workers=UPLOAD_THREADS) as ex:
            nbytes = sum(ex.map(one, todo))
    return len(todo), nbytes


@dataclass
class PullResult:
    fetch: FetchResult
    branch: str
    old: str | None
    new: str | None
    kind: str  # "up-to-date" | "fast-forward" | "merge"


def pull(repo, remote: str = "origin", branch: str | None = None, *, reporter: Reporter | None = None) -> PullResult:
    """Fetch, then bring the current branch up to the zone's (fast-forward, or a merge of files
    changed on only one side); a clear error when both sides changed the same file."""
    branch = branch or repo.history.head_branch()
    if branch is None:
        raise LindivcError("HEAD is detached; check out a branch to pull into")
    fr = fetch(repo, remote, reporter=reporter)
    theirs = fr.refs.get(branch)
    if theirs is None:
        raise LindivcError(f"the zone of {remote} has no branch {branch!r}")
    ours = repo.history.ref(f"refs/heads/{branch}")
    if ours == theirs or (ours and repo.history.is_ancestor(theirs, ours)):
        return PullResult(fr, branch, ours, ours, "up-to-date")
    if ours is None or repo.history.is_ancestor(ours, theirs):
        kind, new = "fast-forward", theirs
    else:
        kind, new = "merge", _merge(repo, ours, theirs, f"Merge {remote}/{branch}")
    if repo.history.head_branch() == branch:
        st = repo.status()
        dirty = [f.path for f in st.files if f.unstaged or f.staged]
        if dirty:
            raise LindivcError(f"pull would overwrite uncommitted changes in {', '.join(dirty[:3])}; commit them first")
        repo.history.set_ref(f"refs/heads/{branch}", new, ours, f"pull: {kind}", repo.author)
        repo.checkout(branch, force=True)
    else:
        repo.history.set_ref(f"refs/heads/{branch}", new, ours, f"pull: {kind}", repo.author)
    return PullResult(fr, branch, ours, new, kind)


def _merge(repo, ours: str, theirs: str, message: str) -> str:
    from dulwich.graph import find_merge_base

    bases = find_merge_base(repo.history.repo, [ours.encode(), theirs.encode()])
    base_files = repo.history.commit_files(bases[0].decode()) if bases else {}
    a = repo.history.commit_files(ours)
    b = repo.history.commit_files(theirs)
    out: dict[str, str] = {}
    conflicts = []
    for p in sorted(set(a) | set(b) | set(base_files)):
        x, y, o = a.get(p), b.get(p), base_files.get(p)
        if x == y:
            v = x
        elif x == o:
            v = y
        elif y == o:
            v = x
        else:
            conflicts.append(p)
            continue
        if v is not None:
            out[p] = v
    if conflicts:
        raise NonFastForward(
            f"both sides changed {', '.join(conflicts[:3])}; the histories diverged and lindivc cannot merge "
            "the same file automatically. Keep one side (`lindivc checkout REV -- PATH`) and commit, or push to another branch"
        )
    tree = repo.history.write_tree(out)
    return repo.history.make_commit(tree, [ours, theirs], message, repo.author)


def clone(url: str, directory: str | None = None, *, objects: bool = False, branch: str | None = None,
          reporter: Reporter | None = None):
    """A new repository in ``directory`` with the zone at ``url`` as remote ``origin``, its
    default branch checked out. Working files read data from the zone unless ``objects``."""
    from .repo import Repository

    zone = zone_for(url)  # validates the URL before anything is created
    if directory is None:
        directory = parse_zone_url(url).name or os.path.basename(url.rstrip("/")) or "clone"
    if os.path.exists(directory) and (not os.path.isdir(directory) or os.listdir(directory)):
        raise LindivcError(f"destination {directory} exists and is not an empty directory")
    refs = gitsync.list_remote_refs(zone)
    if not refs:
        raise LindivcError(f"{url} holds no published history (nothing was pushed there)")
    repo = Repository.init(directory)
    try:
        repo.config.add_remote("origin", url)
        repo._catalogs = None
        fr = fetch(repo, "origin", objects=objects, reporter=reporter)
        b = branch or _zone_default_branch(zone) or ("main" if "main" in fr.refs else sorted(fr.refs)[0])
        if b not in fr.refs:
            raise LindivcError(f"the zone has no branch {b!r}")
        repo.history.set_ref(f"refs/heads/{b}", fr.refs[b], None, f"clone: from {url}", repo.author)
        repo.history.set_head_symbolic(b)
        repo.checkout(b, force=True)
    except BaseException:
        repo.close()
        raise
    return repo
