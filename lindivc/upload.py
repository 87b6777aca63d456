"""Sending chunk data to a zone: the missing chunks grouped into packs (docs/format.md section 5),
each object followed by its index (push step 5, docs/format.md 6.4)."""
from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, TypeVar

from .catalog import ZoneCatalog
from .errors import ChecksumMismatch, ObjectMissing, ZoneError
from .fetch import copy_chunks
from .layout import index_key, object_key
from .objects import ObjectStore
from .packs import PackIndex, pack_name
from .packstream import PackSource, PackWriter, Progress, Segment, plan_packs
from .progress import Reporter
from .repo import Repository
from .zones import Zone

# How push sends chunk data (chosen with scripts/bench/push_s3.py, issues 3 and 13: moto on loopback, 2 cores):
# - Where the zone declares `supports_put_stream` (S3), a pack is streamed from its chunk files
#   straight into one PUT (packstream.PackSource, Zone.put_stream) with a known Content-Length: no temp
#   pack is written, and the data is read once, as it is sent. Other zones get the pack written to a
#   temp file in the object store and sent with put_file (the gateway checks it against its manifest).
# - A pack is named by its manifest, the list of the chunks it holds (docs/format.md section 5), so its
#   name is known before any byte is read: every PUT starts at once, with no hashing pass first (naming
#   a pack by the SHA-1 of its bytes, as before issue 13, cost one full read of the data ahead of the
#   upload: ~0.5 CPU-s per 500 MiB on a machine where the store needs the rest). Resumable as before:
#   the same chunks give the same name, a pack the zone holds with an index is not sent again, and a
#   pack's index is written only after the pack.
# - Each chunk is checked against its name while it streams (ConcatReader holds back its last bytes on
#   a mismatch, so the PUT never completes and no object appears); a body the client did not read
#   straight through is checked again before the index goes up (else the pack is deleted).
# - S3 payload signing is off (zones/s3.py), so botocore does not read each body a second time to
#   compute its SHA-256: the chunks are content-addressed and checked by every reader and by fsck.
# - Pack size: core.pack_size, 64 MiB (packstream.DEFAULT_PACK_SIZE). J1's 500 MiB is then 9 objects
#   (<= 10), all in flight at once; each is one single PUT (S3 takes up to 5 GiB; moto
#   assembles multipart uploads slowly; below S3Zone.multipart_threshold = 1 GiB there are no parts at
#   all, above it parts are S3Zone.part_size = 64 MiB). Bigger packs leave threads idle on small pushes
#   and make the tail (the last pack alone on the wire) longer; smaller ones mean more objects (and, on
#   moto, requests of <= 32 MiB are not cheaper per byte enough to matter).
# - One upload thread per object up to 16 (UPLOAD_THREADS, LINDIVC_UPLOAD_THREADS): with 8, J1's 9th
#   pack waited for a free thread and alone made the tail (issue 13). Memory per stream is one 1 MiB
#   block plus socket buffers, so peak RSS does not grow with the data (2 GiB push: ~70 MB).
UPLOAD_THREADS = int(os.environ.get("LINDIVC_UPLOAD_THREADS", "16"))
T = TypeVar("T")


def upload_packs(repo: Repository, cat: ZoneCatalog, zone: Zone, upload: list[str], sizes: dict[str, int],
                 rep: Reporter, after_data: Callable[[list[str]], T] | None = None) -> tuple[int, T | None]:
    """Upload the chunks ``upload`` (sha1 -> size in ``sizes``) grouped into packs, each object
    followed by its index, up to UPLOAD_THREADS at once. Returns the number of objects (packs and
    lone chunks) sent, and what ``after_data`` returned: given the names of those objects, it runs
    once all their bytes are stored, alongside their indexes (not at all if an upload failed)."""
    absent = [s for s in upload if not repo.has_object(s) and s not in repo.local_ranges]
    if absent:  # e.g. --no-borrow of a cloned file: copy the data
        _download_from_catalogs(repo, absent, rep)
    groups = plan_packs(sizes, repo.config.pack_size)
    grouped = {s for g in groups for s in g}
    groups += [[s] for s in upload if s not in grouped]
    landed = _Landed(len(groups))
    sent, result = 0, None
    with rep.task(f"Uploading {len(upload)} chunks in {len(groups)} objects", sum(sizes.values())) as advance:
        with ThreadPoolExecutor(max_workers=max(1, min(UPLOAD_THREADS, len(groups)))) as ex:
            futures = []
            try:
                for group in groups:
                    src = _pack_source(repo, group, sizes) if zone.supports_put_stream else None
                    if src is None:
                        futures.append(ex.submit(landed.run, _upload_group, repo, zone, cat, group, sizes, advance))
                    else:  # named by its manifest: no read before its PUT starts
                        futures.append(ex.submit(landed.run, _upload_pack_stream, zone, cat, src, src.index(), advance))
                if after_data is not None and landed.wait():
                    result = after_data(landed.names)
                sent = sum(f.result() for f in futures)
            except BaseException:
                ex.shutdown(wait=True, cancel_futures=True)
                raise
    return sent, result


class _Landed:
    """Counts the objects of an upload whose bytes are stored (their indexes come after)."""

    def __init__(self, n: int) -> None:
        self.names: list[str] = []  # of the objects stored
        self._left = n
        self._failed = False
        self._lock = threading.Lock()
        self._all = threading.Event()
        if n == 0:
            self._all.set()

    def landed(self, name: str) -> None:
        with self._lock:
            self.names.append(name)
            self._left -= 1
            if self._left == 0:
                self._all.set()

    def run(self, upload: Callable[..., int], *args) -> int:
        try:
            return upload(*args, landed=self.landed)
        except BaseException:
            self._failed = True
            self._all.set()
            raise

    def wait(self) -> bool:
        """Wait until every object's bytes are stored (True) or an upload failed (False)."""
        self._all.wait()
        return not self._failed


def _download_from_catalogs(repo: Repository, shas: list[str], rep: Reporter) -> None:
    """Fetch chunks this repository knows in some zone into the local store (verified)."""
    cats = repo.catalogs()
    where: dict[str, ZoneCatalog] = {}
    for s in shas:
        for c in cats:
            if s in c.placements:
                where[s] = c
                break
        else:
            raise ObjectMissing(s, "the local object store and every known zone; cannot push")
    copy_chunks(repo, where, f"Downloading {len(shas)} chunks to copy", rep)


def _pack_source(repo: Repository, group: list[str], sizes: dict[str, int]) -> PackSource | None:
    """The pack of ``group`` as ranges of local files, when every chunk is loose or in a local
    pack; else None (then the pack is written with PackWriter)."""
    if len(group) < 2:
        return None
    segs = []
    for sha in group:
        if sha in repo.local_ranges:  # issue 11: a range of a local file
            segs.append(repo.local_ranges.segment(sha))
            continue
        if sha in repo.objects:
            segs.append(Segment(sha, repo.objects.path(sha), 0, sizes[sha]))
            continue
        loc = repo.packs.locate(sha)
        if loc is None or loc.pack not in repo.objects:
            return None
        segs.append(Segment(sha, repo.objects.path(loc.pack), loc.offset, loc.size))
    return PackSource(segs)


def _upload_pack_stream(zone: Zone, cat: ZoneCatalog, src: PackSource, idx: PackIndex, advance: Progress,
                        landed: Callable[[str], None] = lambda name: None) -> int:
    """Upload a pack straight from its chunk files (no temp pack, one read), then its index;
    return 1.

    A pack is sent even if the zone holds an object of that name (step 5). Packs that arrived
    whole in an interrupted push have their index, so the push does not reach here for them."""
    key = object_key(idx.pack)
    with src.open(advance) as body:  # checks each chunk against its name as it streams
        try:
            zone.put_stream(key, body, idx.size)
        except ZoneError:
            if body.failure is not None:  # the client reports the body's mismatch as its own error
                raise body.failure from None
            raise
        if not body.verified:  # the client did not read the body from start to end
            try:
                src.verify()
            except ChecksumMismatch:
                zone.delete(key)
                raise
    landed(idx.pack)
    zone.put(index_key(idx.pack), idx.to_bytes())
    cat.add_index(idx)
    return 1


def _upload_group(repo: Repository, zone: Zone, cat: ZoneCatalog, group: list[str], sizes: dict[str, int],
                  advance: Progress, landed: Callable[[str], None] = lambda name: None) -> int:
    """Upload one pack (written to a temp pack first) or a lone chunk, then its index; return 1."""
    if len(group) == 1:
        sha = group[0]
        if sha in repo.objects:
            zone.put_file(object_key(sha), repo.objects.path(sha), progress=advance)
        elif sha in repo.local_ranges:  # issue 11: a range of a local file, copied out first (bounded memory)
            with repo.local_ranges.open(sha) as f:
                repo.objects.put_stream(iter(lambda: f.read(1 << 20), b""), expected=sha)
            try:
                zone.put_file(object_key(sha), repo.objects.path(sha), progress=advance)
            finally:
                repo.objects.delete(sha)
        else:
            zone.put(object_key(sha), repo.read_object(sha))
            advance(sizes[sha])
        landed(sha)
        idx = PackIndex.single(sha, sizes[sha])
        zone.put(index_key(sha), idx.to_bytes())
        cat.add_index(idx)
        return 1
    name = pack_name((sha, sizes[sha]) for sha in sorted(group))
    if repo.packs.is_pack(name) and name in repo.objects:  # `lindivc pack` made it: send that file
        return _send_pack(zone, cat, repo.packs.index(name), repo.objects.path(name), advance, landed)
    # the temporary pack is written outside the object store, so that a push killed here leaves
    # no unindexed pack there (fsck would call it corrupt); stale scratch dirs are removed later
    scratch = tempfile.mkdtemp(prefix="push-", dir=_scratch_root(repo))
    w = PackWriter(ObjectStore(scratch, fsync=False))
    try:
        for sha in group:
            if sha in repo.local_ranges:  # issue 11
                with repo.local_ranges.open(sha) as f:
                    w.add(sha, f)
            elif sha in repo.objects:
                with repo.objects.open(sha) as f:
                    w.add(sha, f)
            else:
                w.add(sha, repo.read_object(sha))
        idx = w.finish()
        return _send_pack(zone, cat, idx, w.objects.path(idx.pack), advance, landed)
    finally:
        w.abort()
        shutil.rmtree(scratch, ignore_errors=True)  # the loose chunks stay the local copy


def _send_pack(zone: Zone, cat: ZoneCatalog, idx: PackIndex, path: str, advance: Progress,
               landed: Callable[[str], None]) -> int:
    """Put the pack file at ``path`` after its manifest, then its index; return 1."""
    zone.put_pack(object_key(idx.pack), path, idx.manifest(), progress=advance)
    landed(idx.pack)
    zone.put(index_key(idx.pack), idx.to_bytes())
    cat.add_index(idx)
    return 1


SCRATCH_MAX_AGE = 24 * 3600.0  # a push's scratch dir this old is left by a killed push


def _scratch_root(repo: Repository) -> str:
    """``.lindivc/tmp``, where pushes write temporary packs; scratch dirs a killed push left
    (older than SCRATCH_MAX_AGE) are removed first."""
    root = os.path.join(repo.lvc, "tmp")
    os.makedirs(root, exist_ok=True)
    now = time.time()
    for name in os.listdir(root):
        p = os.path.join(root, name)
        try:
            if name.startswith("push-") and now - os.stat(p).st_mtime > SCRATCH_MAX_AGE:
                shutil.rmtree(p, ignore_errors=True)
        except OSError:
            pass
    return root
