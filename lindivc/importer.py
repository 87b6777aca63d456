"""Bringing a file into the working tree: a LINDI file or an HDF5/NWB file (converted), local or http(s)."""
from __future__ import annotations

import os

from . import httpread, lindijson
from .errors import NoSuchFile, NotALindiName, WorkingFileExists
from .repo import Repository

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def _is_url(s: str) -> bool:
    return s.startswith(("http://", "https://"))


def _default_name(source: str, is_hdf5: bool) -> str:
    base = source.rstrip("/").rsplit("/", 1)[-1].split("?")[0] or "file"
    if is_hdf5:
        return base + ".lindi.json"
    return base if lindijson.is_lindi_name(base) else base + ".lindi.json"


def import_file(repo: Repository, source: str, as_path: str | None = None, ingest: bool = False,
                force: bool = False, directory: str | None = None) -> str:
    """Bring a LINDI file (or an HDF5/NWB file, converted) into the working tree and stage it.

    ``source`` is a local path or an http(s) URL. Relative local paths inside a local LINDI
    file are made absolute against the file's directory. With ``ingest``, byte ranges of local
    files are copied into the object store. A relative ``as_path`` (or, without one, the
    source's file name) is placed in ``directory`` (default: the top of the working tree).
    Returns the worktree path.
    """
    from .lindi_io import convert_hdf5, ingest as ingest_ranges  # deferred: lindi, h5py and zarr are heavy

    if _is_url(source):
        is_hdf5 = httpread.get_prefix(source, len(HDF5_MAGIC)) == HDF5_MAGIC
        if is_hdf5:
            rfs = convert_hdf5(source)
        else:
            rfs = lindijson.parse(httpread.get(source), source)
    else:
        if not os.path.isfile(source):
            raise NoSuchFile(source)
        with open(source, "rb") as f:
            is_hdf5 = f.read(8) == HDF5_MAGIC
        if is_hdf5:  # a ref per chunk, however many: push can then publish them (docs/format.md 6.6)
            rfs = convert_hdf5(os.path.abspath(source), num_dataset_chunks_threshold=None)
            if not ingest:
                repo.local_ranges.note_import(os.path.abspath(source))
        else:
            rfs = lindijson.load(source)
            base = os.path.dirname(os.path.abspath(source))
            for v in rfs["refs"].values():
                if isinstance(v, list) and not (v[0].startswith(("/", "http://", "https://", lindijson.CONTENT_PREFIX, "{{"))):
                    v[0] = os.path.normpath(os.path.join(base, v[0]))
    lindijson.expand_templates(rfs)
    target = as_path or _default_name(source, is_hdf5)
    rel = repo.relpath(os.path.join(directory or repo.root, target) if not os.path.isabs(target) else target)
    if not lindijson.is_lindi_name(rel):
        raise NotALindiName(target)
    dest = repo.abspath(rel)
    if os.path.exists(dest) and not force:
        raise WorkingFileExists(rel)
    if ingest:
        ingest_ranges(rfs, repo.objects)
    lindijson.write_lindi_json(dest, rfs)
    repo.add([dest])
    return rel
