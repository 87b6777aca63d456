"""Reading documents that other users wrote, as GC does (docs/gc.md, "Untrusted documents").

Each document is read from a stream capped at its size limit (a key listed larger than the
limit is not read at all) and turned into what GC needs by a ``use`` function (a parse function
of :mod:`lindivc.documents`, then whatever filtering keeps the result small) in a worker thread.
A few documents are in flight at once, their sizes together at most :data:`READ_BUDGET` bytes,
so memory stays bounded whatever the cloud holds; results come back in the order asked.

A document that does not parse comes back as an :class:`~.model.InvalidDoc` and one that is
gone as None: only a failing store (ZoneError: GC cannot know what the document says) raises.
Nothing here follows a URL that a document contains: it reads zone keys, nothing else.
"""
from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import BinaryIO, Callable, Iterable, Iterator, TypeVar

from ..errors import InvalidDocument, InvalidKey, ZoneKeyMissing
from ..zones.base import ObjectInfo, Zone
from .model import InvalidDoc

READ_THREADS = 16  # parallel reads (S3 and gateways answer each in a round trip)
READ_BUDGET = 32 << 20  # bytes of documents being read and parsed at once (at least one document)

T = TypeVar("T")
Use = Callable[[BinaryIO, str], T]


def read_one(zone: Zone, info: ObjectInfo, use: Use, max_bytes: int) -> T | InvalidDoc | None:
    """``use(stream, key)`` over the document ``info.key`` of ``zone``: its result, an InvalidDoc
    if the document is over ``max_bytes`` (by its listed size: then it is not read) or ``use``
    raises InvalidDocument, None if it is gone. ZoneError propagates."""
    if info.size > max_bytes:
        return InvalidDoc(zone.url, info.key, f"larger than the limit of {max_bytes} bytes (not read)")
    try:
        stream = zone.open_read(info.key)
    except ZoneKeyMissing:
        return None
    except InvalidKey:
        return InvalidDoc(zone.url, info.key, "a key outside the zone layout (not read)")
    try:
        return use(stream, info.key)
    except InvalidDocument as e:
        return InvalidDoc(zone.url, info.key, e.reason)
    finally:
        stream.close()


def read_documents(items: Iterable[tuple[Zone, ObjectInfo]], use: Use, max_bytes: int, *,
                   threads: int = READ_THREADS, budget: int = READ_BUDGET
                   ) -> Iterator[tuple[Zone, ObjectInfo, T | InvalidDoc | None]]:
    """:func:`read_one` over every ``(zone, info)`` of ``items``, several at once; yields
    ``(zone, info, result)`` in the order of ``items``. Raises ZoneError when a store fails."""
    ex = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="gc-read")
    pending: deque[tuple[Zone, ObjectInfo, Future, int]] = deque()
    inflight = 0
    try:
        for zone, info in items:
            cost = min(max(info.size, 0), max_bytes) + 1
            while pending and (inflight + cost > budget or len(pending) >= 2 * threads):
                z, i, fut, c = pending.popleft()
                inflight -= c
                yield z, i, fut.result()
            pending.append((zone, info, ex.submit(read_one, zone, info, use, max_bytes), cost))
            inflight += cost
        while pending:
            z, i, fut, _ = pending.popleft()
            yield z, i, fut.result()
    finally:
        ex.shutdown(wait=True, cancel_futures=True)
