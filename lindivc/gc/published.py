"""Published (rendered) LINDI files as GC reads them: the byte ranges of a zone's objects that
they reference.

A published file is parsed by :func:`lindivc.documents.parse_published_refs` (a file of any
zone of the cloud is untrusted input); of its refs, a ``[url, offset, size]`` whose URL (after
template expansion) ends in ``sha1/aa/bb/cc/<sha1>`` names ``size`` bytes at ``offset`` of that
object, whatever zone or host comes before it (conservative). Nothing else in the file counts,
and no URL in it is ever fetched.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Container

from ..documents import MAX_PUBLISHED_BYTES, Source, parse_published_refs

#: size limit of a published file GC reads (larger ones are reported and reference nothing)
MAX_FILE_BYTES = MAX_PUBLISHED_BYTES


@dataclass(frozen=True)
class FileRanges:
    """What one published file references in a zone: ``(object, offset, size)`` of each ref
    into one of the zone's objects, and how many refs were malformed (they keep nothing)."""

    ranges: list[tuple[str, int, int]]
    skipped: int


def ranges_in(objects: Container[str]) -> Callable[[Source, str], FileRanges]:
    """A reader (for :func:`.reading.read_documents`) of the refs of a published file into
    ``objects`` (the zone's object names); raises InvalidDocument for a file that is not a LINDI
    file."""

    def use(data: Source, key: str) -> FileRanges:
        refs = parse_published_refs(data, key, MAX_FILE_BYTES)
        out = []
        for r in refs:
            sha = r.object_sha1
            if sha is not None and sha in objects:
                out.append((sha, r.offset, r.size))
        return FileRanges(out, refs.skipped)

    return use

