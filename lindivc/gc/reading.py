"""Reading documents that other users wrote, as GC does (docs/gc.md, "Untrusted documents").

Each document is read from a stream capped at its size limit (a key listed larger than the
limit is not read at all), a few at once in worker threads, their sizes together at most
:data:`READ_BUDGET` bytes; then, one at a time in the caller's thread, it is turned into what
GC needs by a ``use`` function (a parse function of :mod:`lindivc.documents`, then whatever
filtering keeps the result small). So memory holds the raw documents in flight and one parsed
document, whatever the cloud holds; results come back in the order asked.

A document that does not parse comes back as an :class:`~.model.InvalidDoc` and one that is
gone as None: only a failing store (ZoneError: GC cannot know what the document says) raises.
Nothing here follows a URL that a document contains: it reads zone keys, nothing else.
"""
from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Iterable, Iterator, TypeVar

from ..errors import InvalidDocument, InvalidKey, ZoneKeyMissing
from ..zones.base import ObjectInfo, Zone
from .model import InvalidDoc

READ_THREADS = 16  # parallel reads (S3 and gateways answer each in a round trip)
READ_BUDGET = 16 << 20  # bytes of documents read ahead (at least one document)
READ_BLOCK = 1 << 20

T = TypeVar("T")
Use = Callable[[bytes, str], T]


def read_raw(zone: Zone, info: ObjectInfo, max_bytes: int) -> bytes | InvalidDoc | None:
    """The bytes of document ``info.key`` of ``zone``: an InvalidDoc if it is over ``max_bytes``
    (by its listed size: then it is not read; else by what it holds, reading at most one byte
    past the limit), None if it is gone. ZoneError propagates."""
    if info.size > max_bytes:
        return InvalidDoc(zone.url, info.key, f"larger than the limit of {max_bytes} bytes (not read)")
    try:
        stream = zone.open_read(info.key)
    except ZoneKeyMissing:
        return None
    except InvalidKey:
        return InvalidDoc(zone.url, info.key, "a key outside the zone layout (not read)")
    parts, n = [], 0
    try:
        while n <= max_bytes:
            block = stream.read(min(READ_BLOCK, max_bytes + 1 - n))
            if not block:
                break
            parts.append(block)
            n += len(block)
    finally:
        stream.close()
    data = b"".join(parts)
    if len(data) > max_bytes:
        return InvalidDoc(zone.url, info.key, f"larger than the limit of {max_bytes} bytes")
    return data


def _use(zone: Zone, info: ObjectInfo, got: bytes | InvalidDoc | None, use: Use) -> T | InvalidDoc | None:
    if not isinstance(got, bytes):
        return got
    try:
        return use(got, info.key)
    except InvalidDocument as e:
        return InvalidDoc(zone.url, info.key, e.reason)


def read_documents(items: Iterable[tuple[Zone, ObjectInfo]], use: Use, max_bytes: int, *,
                   threads: int = READ_THREADS, budget: int = READ_BUDGET
                   ) -> Iterator[tuple[Zone, ObjectInfo, T | InvalidDoc | None]]:
    """Each document ``(zone, info)`` of ``items`` read (:func:`read_raw`, several at once) and
    given to ``use(data, key)``; yields ``(zone, info, result)`` in the order of ``items``: what
    ``use`` returned, an InvalidDoc (over the limit, or ``use`` raised InvalidDocument), or None
    (gone). Raises ZoneError when a store fails."""
    ex = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="gc-read")
    pending: deque[tuple[Zone, ObjectInfo, Future, int]] = deque()
    inflight = 0
    try:
        for zone, info in items:
            cost = min(max(info.size, 0), max_bytes) + 1
            while pending and (inflight + cost > budget or len(pending) >= 4 * threads):
                z, i, fut, c = pending.popleft()
                inflight -= c
                yield z, i, _use(z, i, fut.result(), use)
            pending.append((zone, info, ex.submit(read_raw, zone, info, max_bytes), cost))
            inflight += cost
        while pending:
            z, i, fut, _ = pending.popleft()
            yield z, i, _use(z, i, fut.result(), use)
    finally:
        ex.shutdown(wait=True, cancel_futures=True)
