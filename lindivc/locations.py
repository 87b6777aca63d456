"""Clean and smudge (docs/format.md section 4): content refs and the locations of their bytes.

A working file names each chunk by a location a plain reader opens: a local loose object, a range
of a local pack, or a URL in a zone. Committing turns those locations back into content refs
(:meth:`Locations.resolve`); checking out turns content refs into locations (:meth:`Locations.locate`).
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Callable

from . import lindijson
from .errors import InvalidLindiFile, ObjectMissing
from .objects import ObjectStore

if TYPE_CHECKING:
    from .localranges import LocalRange, LocalRanges
    from .packs import PackSet


class Locations:
    """The mapping for one repository: its object store, its pack indexes (``idx_dir``,
    ``packs()``) and what it knows of zones (``catalogs()``, lindivc.catalog)."""

    def __init__(self, objects: ObjectStore, idx_dir: str, packs: Callable[[], PackSet],
                 catalogs: Callable[[], list], local_ranges: LocalRanges | None = None) -> None:
        self.objects = objects
        self.local_ranges = local_ranges
        self.idx_dir = idx_dir
        self.packs = packs
        self.catalogs = catalogs
        self._path_sha: dict[str, str | None] = {}  # object path -> sha1 (None: not an object path)
        self._pack_flag: dict[str, bool] = {}  # sha1 -> is a local pack

    def _object_at(self, path: str) -> str | None:
        sha = self._path_sha.get(path, "")
        if sha == "":
            sha = self._path_sha[path] = self.objects.sha1_from_path(path)
        return sha

    def resolve(self, url: str, offset: int, size: int) -> lindijson.ContentRef | LocalRange | None:
        """The content ref for a materialized location, if lindivc manages it; for a copy of a
        range of a local file that is not on this machine (docs/format.md 6.6), that range."""
        cr = self._resolve(url, offset, size)
        if cr is not None and self.local_ranges is not None:
            lr = self.local_ranges.origin(cr)
            if lr is not None:
                return lr
        return cr

    def _resolve(self, url: str, offset: int, size: int) -> lindijson.ContentRef | None:
        sha = self._object_at(url) if url.startswith("/") else None
        if sha is not None:
            return self._unpack(sha, offset, size, url)
        for cat in self.catalogs():
            cr = cat.resolve(url, offset, size)
            if cr is not None:
                return cr
        return None

    def classify(self, url: str) -> object:
        """What :meth:`resolve` makes of every ref to ``url`` (lindijson.Classifier): None if no
        ref to it is managed, the sha1 of a loose object, else lindijson.RESOLVE."""
        if url.startswith("/"):
            sha = self._object_at(url)
            if sha is not None:
                if self._is_pack(sha) or (self.local_ranges is not None and self.local_ranges.is_origin(sha)):
                    return lindijson.RESOLVE
                return sha
        for cat in self.catalogs():
            prefixes = getattr(cat, "prefixes", None)  # a catalog resolves only URLs under these
            if prefixes is None or any(url.startswith(p) for p in prefixes):
                return lindijson.RESOLVE
        return None

    def _is_pack(self, sha: str) -> bool:
        is_pack = self._pack_flag.get(sha)
        if is_pack is None:
            is_pack = self._pack_flag[sha] = os.path.exists(os.path.join(self.idx_dir, sha)) and self.packs().is_pack(sha)
        return is_pack

    def _unpack(self, sha: str, offset: int, size: int, url: str) -> lindijson.ContentRef:
        if self._is_pack(sha):
            packs = self.packs()
            pos = packs.chunk_at(sha, offset)  # (chunk, its offset in the pack, offset inside it)
            if pos is None:
                raise InvalidLindiFile(url, f"offset {offset} is in no chunk of pack {sha}")
            chunk_size = packs.locate(pos.chunk).size
            if pos.inner_offset + size > chunk_size:
                raise InvalidLindiFile(url, f"range {offset}+{size} crosses a chunk boundary in pack {sha}")
            return lindijson.ContentRef(pos.chunk, pos.inner_offset, size)
        return lindijson.ContentRef(sha, offset, size)

    def locate(self, cr: lindijson.ContentRef) -> list:
        """Where a plain reader finds a content ref: a local path, else a zone URL
        (ObjectMissing if nowhere)."""
        p = self.objects.path(cr.sha1)
        if os.path.exists(p):
            return [p, cr.offset, cr.size]
        loc = self.packs().locate(cr.sha1)
        if loc is not None:
            pack, off, _ = loc
            return [self.objects.path(pack), off + cr.offset, cr.size]
        for cat in self.catalogs():
            r = cat.locate(cr)
            if r is not None:
                return r
        raise ObjectMissing(cr.sha1, "the local object store and every known zone")

    def read_range_hook(self) -> Callable[[str, int, int], bytes | None] | None:
        """A ``read_range(url, offset, size)`` for lindi_io that reads zone URLs through the
        catalogs that can (with the zone's credentials), or None if none can."""
        cats = [c for c in self.catalogs() if hasattr(c, "read_range")]
        if not cats:
            return None

        def read_range(url: str, offset: int, size: int) -> bytes | None:
            for c in cats:
                data = c.read_range(url, offset, size)
                if data is not None:
                    return data
            return None

        return read_range
