"""Opening LINDI files for reading and writing, converting HDF5 to LINDI, ingesting byte ranges.

A LINDI file (``.lindi.json`` or ``.zarr.json``) is a JSON reference file system (rfs):
``{"refs": {key: value}, "templates": {...}, ...}`` where a value is a dict (zarr metadata),
a string (inline bytes, ``base64:`` or ASCII) or ``[url_or_path, offset, size]``.

:func:`open_file` returns an h5py-compatible :class:`LindiFile`. Opened ``"r+"``, every zarr
chunk of at least ``chunk_threshold`` bytes that h5py/pynwb writes is stored as an object of
the local :class:`~lindivc.objects.ObjectStore` and referenced by its absolute path, so the
working file stays small and any plain ``lindi`` reader can open it. Blosc threading is off
while a file is open for writing, so the same data always encodes to the same objects.
"""
from __future__ import annotations

import copy
import os
import threading
from concurrent.futures import Future
from typing import Any, Callable, Iterator

import numcodecs
import numcodecs.blosc
import zarr
from lindi.LindiH5pyFile.LindiH5pyFile import LindiH5pyFile
from lindi.LindiH5pyFile.LindiH5pyGroup import LindiH5pyGroup
from lindi.LindiH5pyFile.LindiReferenceFileSystemStore import LindiReferenceFileSystemStore
from lindi.LindiH5pyFile.writers.LindiH5pyGroupWriter import LindiH5pyGroupWriter
from numcodecs.compat import ensure_bytes

from . import httpread
from .config import DEFAULT_CHUNK_THRESHOLD
from .errors import ConversionFailed, FileLocked, HttpError, IngestFailed, InvalidLindiFile
from .lindijson import apply_templates as _apply_templates
from .lindijson import expand_templates, is_chunk_key
from .lindijson import load as load_rfs
from .lindijson import validate as validate_rfs
from .lindijson import write_lindi_json as _write_json_atomic
from .objects import COPY_BLOCK, ObjectStore, ObjectWriter

META_SUFFIXES = (".zarray", ".zattrs", ".zgroup")

ReadRange = Callable[[str, int, int], "bytes | None"]
Save = Callable[[dict], None]

__all__ = [
    "LindiFile",
    "open_file",
    "load_rfs",
    "validate_rfs",
    "expand_templates",
    "convert_hdf5",
    "ingest",
    "is_chunk_key",
]


# --------------------------------------------------------------------------- rfs helpers

def _is_url(s: str) -> bool:
    return s.startswith("http://") or s.startswith("https://")


# --------------------------------------------------------------------------- deterministic blosc

_blosc_lock = threading.Lock()
_blosc_users = 0
_blosc_saved: Any = None


def _blosc_threads_off() -> None:
    global _blosc_users, _blosc_saved
    with _blosc_lock:
        if _blosc_users == 0:
            _blosc_saved = numcodecs.blosc.use_threads
            numcodecs.blosc.use_threads = False
        _blosc_users += 1


def _blosc_threads_restore() -> None:
    global _blosc_users
    with _blosc_lock:
        _blosc_users -= 1
        if _blosc_users == 0:
            numcodecs.blosc.use_threads = _blosc_saved


# --------------------------------------------------------------------------- write locks

class WriteLock:
    """An exclusive ``flock`` on the lock file ``lock_path``, standing for the working file ``name``.

    A working file open "r+" holds its lock until closed: a second writer would save the
    snapshot it loaded at open over the first one's changes, so it is refused instead (and so
    is anything else that rewrites working files, such as ``lindivc pack``). The kernel drops
    the lock when the process dies, so a crashed writer leaves nothing to clean up. Locks are
    per open file description: a second open in the same process is refused too.
    """

    def __init__(self, lock_path: str, name: str) -> None:
        self.lock_path = lock_path
        self.name = name
        self._fd: int | None = None

    def acquire(self) -> "WriteLock":
        import fcntl

        os.makedirs(os.path.dirname(self.lock_path), exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise FileLocked(self.name) from None
        self._fd = fd
        return self

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing the only descriptor drops the flock

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> "WriteLock":
        return self.acquire()

    def __exit__(self, *a) -> None:
        self.release()


# --------------------------------------------------------------------------- store

class ObjectBackedStore(LindiReferenceFileSystemStore):
    """lindi's reference-file-system store, with large chunks written to an ObjectStore.

    Writes: a chunk of ``chunk_threshold`` bytes or more goes to ``objects`` and its ref becomes
    ``[objects.path(sha1), 0, size]``; smaller chunks and metadata stay inline as lindi does.
    Objects are written through an :class:`~lindivc.objects.ObjectWriter` (hashed and fsynced
    in the background, so a write returns before its chunk is hashed); ``rfs`` waits until
    every chunk written so far is named and shows its ref, ``writer.wait()`` puts every object
    in place, and a read of a chunk waits for its own object.
    Reads: for a list ref, ``read_range(url, offset, size)`` is asked first (when given) and its
    bytes are used unless it returns None.
    """

    def __init__(
        self,
        rfs: dict,
        *,
        mode: str = "r",
        objects: ObjectStore | None = None,
        chunk_threshold: int = DEFAULT_CHUNK_THRESHOLD,
        read_range: ReadRange | None = None,
    ) -> None:
        self._naming: dict[str, tuple[Future, int]] = {}  # chunk key -> (future sha1, size), being hashed
        super().__init__(rfs, mode=mode)  # type: ignore[arg-type]
        self.objects = objects
        self.chunk_threshold = chunk_threshold
        self.read_range = read_range
        self.writer = ObjectWriter(objects) if objects is not None and mode == "r+" else None

    @property
    def rfs(self) -> dict:  # type: ignore[override]
        """The reference file system, with the ref of every chunk written so far (waits until
        each is hashed; raises the error of one that could not be)."""
        while self._naming:
            key, (named, size) = next(iter(self._naming.items()))
            sha = named.result()
            del self._naming[key]
            self._rfs["refs"][key] = [self.objects.path(sha), 0, size]  # type: ignore[union-attr]
        return self._rfs

    @rfs.setter
    def rfs(self, value: dict) -> None:
        self._rfs = value

    def _get_helper(self, key: str):
        if self.writer is not None and self.writer.busy:
            x = self.rfs["refs"].get(key)
            if isinstance(x, list) and len(x) == 3 and isinstance(x[0], str):
                self.writer.wait_path(x[0])
        if self.read_range is not None:
            x = self.rfs["refs"].get(key)
            if isinstance(x, list) and len(x) == 3:
                url = _apply_templates(x[0], self.rfs.get("templates") or {})
                data = self.read_range(url, x[1], x[2])
                if data is not None:
                    return bytes(data)
        return super()._get_helper(key)

    def __setitem__(self, key: str, value: Any) -> None:
        if self.mode != "r+":
            raise PermissionError(f"store is read-only: cannot write {key}")
        if not isinstance(value, bytes):
            # zarr hands over an ndarray (or other buffer) for arrays without a compressor
            value = ensure_bytes(value)
        if self.objects is not None and len(value) >= self.chunk_threshold and is_chunk_key(key):
            if self.writer is not None:
                self._naming.pop(key, None)  # re-inserted last: names resolve in write order
                self._naming[key] = (self.writer.put_later(value), len(value))
                return
            sha = self.objects.put_bytes(value)
            self.rfs["refs"][key] = [self.objects.path(sha), 0, len(value)]
            return
        self._naming.pop(key, None)  # this value replaces the chunk being hashed
        super().__setitem__(key, value)

    def setitems(self, values: dict) -> None:
        for k, v in values.items():
            self[k] = v

    def export_rfs(self) -> dict:
        """A deep copy of the rfs with templates expanded and metadata values as dicts."""
        rfs = copy.deepcopy(self.rfs)
        _meta_as_dicts(rfs)
        expand_templates(rfs)
        return rfs


def _meta_as_dicts(rfs: dict) -> None:
    """Metadata values (.zarray/.zattrs/.zgroup) as JSON objects, in place, where they hold one.

    Unlike lindi's replace_meta_file_contents_with_dicts_in_rfs, a value that does not hold a
    JSON object ("null", "5", bad base64) is kept as it is: lindi reads it so, and a null or a
    number there would make the file invalid.
    """
    import json

    from .lindijson import _meta_to_dict

    store = None
    for k, v in rfs["refs"].items():
        if not k.endswith(META_SUFFIXES):
            continue
        if isinstance(v, str):
            rfs["refs"][k] = _meta_to_dict(v, k)
        elif isinstance(v, list):  # bytes elsewhere: read them as lindi does
            if store is None:
                store = LindiReferenceFileSystemStore(rfs)
            try:
                d = json.loads(store[k].decode("utf-8"))
            except Exception:  # unreadable or not JSON: keep the ref
                continue
            if isinstance(d, dict):
                rfs["refs"][k] = d


# --------------------------------------------------------------------------- h5py layer

class _GroupWriter(LindiH5pyGroupWriter):
    """lindi's group writer, accepting ``maxshape`` and handing out lindivc groups."""

    def create_group(self, name, track_order=None):
        return _as_group(super().create_group(name, track_order=track_order))

    def create_dataset(self, name, shape=None, dtype=None, data=None, **kwds):
        # hdmf makes VectorData expandable (maxshape=(None, ...)). A LINDI array can be
        # rewritten later (its .zarray replaced), so any dataset is expandable: ignore it.
        kwds.pop("maxshape", None)
        return super().create_dataset(name, shape=shape, dtype=dtype, data=data, **kwds)


class _Group(LindiH5pyGroup):
    """A LindiH5pyGroup whose writer is :class:`_GroupWriter` and whose subgroups are _Groups."""

    def __init__(self, _zarr_group: zarr.Group, _file: LindiH5pyFile) -> None:
        super().__init__(_zarr_group, _file)
        if self._writer is not None:
            self._writer = _GroupWriter(self)

    def __getitem__(self, name):
        return _as_group(super().__getitem__(name))


def _as_group(x: Any) -> Any:
    if type(x) is LindiH5pyGroup:
        return _Group(x._zarr_group, x._file)
    return x


class LindiFile(LindiH5pyFile):
    """An h5py-compatible LINDI file opened by :func:`open_file`.

    In ``"r+"`` mode, :meth:`flush` and :meth:`close` hand the rfs (templates expanded,
    metadata as dicts) to ``save``, or write it atomically to the source path. Closing twice
    is harmless.
    """

    _lindivc_path: str
    _lindivc_save: Save | None
    _lindivc_blosc: bool
    _lindivc_lock: WriteLock | None = None

    @classmethod
    def _open_store(cls, store: ObjectBackedStore, mode: str, path: str, save: Save | None) -> "LindiFile":
        # What LindiH5pyFile.from_zarr_store does, with this class and group type.
        zarr_group = zarr.open(store=store, mode=mode)
        if not isinstance(zarr_group, zarr.Group):
            raise InvalidLindiFile(path, "the root is not a zarr group")
        f = cls(zarr_group, _zarr_store=store, _mode=mode)  # type: ignore[arg-type]
        f._the_group = _Group(zarr_group, f)
        f._lindivc_path = path
        f._lindivc_save = save
        f._lindivc_blosc = False
        return f

    def to_rfs(self) -> dict:
        """The current reference file system: a copy, templates expanded, metadata as dicts."""
        store = self._zarr_store
        assert isinstance(store, ObjectBackedStore)
        return store.export_rfs()

    def flush(self) -> None:
        if not self._is_open or self._mode == "r":
            return
        writer = getattr(self._zarr_store, "writer", None)
        if writer is not None:
            writer.wait()  # every object the file will name is in place before the file is saved
        rfs = self.to_rfs()
        if self._lindivc_save is not None:
            self._lindivc_save(rfs)
        else:
            _write_json_atomic(self._lindivc_path, rfs)

    def close(self) -> None:
        if not self._is_open:
            return
        try:
            self.flush()
        finally:
            self._is_open = False
            if self._lindivc_blosc:
                self._lindivc_blosc = False
                _blosc_threads_restore()
            try:
                writer = getattr(self._zarr_store, "writer", None)
                if writer is not None:
                    writer.close()
            finally:
                if self._lindivc_lock is not None:
                    self._lindivc_lock.release()

    def __del__(self) -> None:
        # An unclosed writer must not keep Blosc threading off for the whole process.
        if getattr(self, "_lindivc_blosc", False):
            self._lindivc_blosc = False
            _blosc_threads_restore()
        lock = getattr(self, "_lindivc_lock", None)
        if lock is not None:
            lock.release()


def open_file(
    path: str,
    mode: str = "r",
    *,
    objects: ObjectStore | None = None,
    chunk_threshold: int = DEFAULT_CHUNK_THRESHOLD,
    save: Save | None = None,
    read_range: ReadRange | None = None,
    lock: WriteLock | None = None,
) -> LindiFile:
    """Open the LINDI JSON file at ``path`` (any name, e.g. ``.lindi.json``/``.zarr.json``).

    ``mode`` is ``"r"`` or ``"r+"``. In ``"r+"`` mode chunks of ``chunk_threshold`` bytes or
    more are stored in ``objects`` (when given) and referenced by absolute object path; on
    flush/close the rfs goes to ``save(rfs)``, or, without ``save``, replaces ``path``
    atomically (JSON, indent 1, sorted keys). ``read_range(url, offset, size)``, if given, is
    asked first for every byte-range ref; it returns the bytes or None to let lindi read them.

    In ``"r+"`` mode ``lock`` (when given) is acquired before the file is read and held until
    close; FileLocked if another writer holds it.

    Raises InvalidLindiFile if the file is not a valid LINDI JSON file, FileNotFoundError if
    it does not exist.
    """
    if mode not in ("r", "r+"):
        raise ValueError(f"mode must be 'r' or 'r+', not {mode!r}")
    if mode != "r+":
        lock = None
    if lock is not None:
        lock.acquire()  # before reading: the snapshot loaded is the last writer's
    try:
        rfs = load_rfs(path)
        store = ObjectBackedStore(
            rfs, mode=mode, objects=objects, chunk_threshold=chunk_threshold, read_range=read_range
        )
        if mode == "r+":
            _blosc_threads_off()
        try:
            f = LindiFile._open_store(store, mode, path, save)
        except BaseException:
            if mode == "r+":
                _blosc_threads_restore()
            raise
    except BaseException:
        if lock is not None:
            lock.release()
        raise
    f._lindivc_blosc = mode == "r+"
    f._lindivc_lock = lock
    return f


# --------------------------------------------------------------------------- conversion / ingest

def convert_hdf5(source: str, *, num_dataset_chunks_threshold: int | None = 1000) -> dict:
    """The LINDI rfs of an HDF5/NWB file (local path or http(s) URL).

    Refs point at ``source`` (made absolute for a local file), templates are expanded and
    metadata values are dicts. Datasets with more than ``num_dataset_chunks_threshold`` chunks
    become lindi external array links (None: never).
    """
    from lindi.LindiH5ZarrStore.LindiH5ZarrStoreOpts import LindiH5ZarrStoreOpts

    url = source if _is_url(source) else os.path.abspath(source)
    opts = LindiH5ZarrStoreOpts(num_dataset_chunks_threshold=num_dataset_chunks_threshold)
    try:
        f = LindiH5pyFile.from_hdf5_file(url, url=url, zarr_store_opts=opts)
        try:
            rfs = f.to_reference_file_system()
        finally:
            f.close()
            store = f._zarr_store
            if hasattr(store, "close"):
                store.close()
    except OSError as e:  # h5py: truncated or corrupt file; requests: the URL failed
        msg = str(e).splitlines()[0][:300] if str(e) else e.__class__.__name__
        raise ConversionFailed(source, msg) from None
    _meta_as_dicts(rfs)
    expand_templates(rfs)
    return rfs


def _read_local_range(fh, offset: int, size: int) -> Iterator[bytes]:
    fh.seek(offset)
    left = size
    while left > 0:
        block = fh.read(min(COPY_BLOCK, left))
        if not block:
            raise OSError(f"range {offset}+{size} is past the end of the file")
        left -= len(block)
        yield block


def ingest(rfs: dict, objects: ObjectStore, *, only_local: bool = True) -> int:
    """Copy the byte ranges that refs of ``rfs`` point at into ``objects``; return bytes copied.

    Every ``[path, offset, size]`` ref to a local file (absolute path) is repointed, in place,
    to ``[objects.path(sha1), 0, size]``. With ``only_local=False`` http(s) ranges are copied
    too. Refs already in ``objects``, relative paths and inline values are left alone. Memory
    stays bounded: each range is streamed into the store.
    """
    templates = rfs.get("templates") or {}
    handles: dict[str, Any] = {}
    total = 0
    try:
        for key, v in rfs["refs"].items():
            if not (isinstance(v, list) and len(v) == 3):
                continue
            url = _apply_templates(v[0], templates)
            offset, size = v[1], v[2]
            try:
                if _is_url(url):
                    if only_local:
                        continue
                    blocks = httpread.iter_range(url, offset, size)
                elif os.path.isabs(url):
                    fh = handles.get(url)
                    if fh is None:
                        if objects.sha1_from_path(url) is not None:
                            continue
                        fh = handles[url] = open(url, "rb")
                    blocks = _read_local_range(fh, offset, size)
                else:
                    continue
                sha, n = objects.put_stream(blocks)
            except HttpError as e:  # its message names the URL and the cause
                raise IngestFailed(key, url, str(e)) from None
            except OSError as e:  # missing, unreadable or too short file
                why = e.strerror if isinstance(e, FileNotFoundError) else (str(e).splitlines()[0][:300] or e.__class__.__name__)
                raise IngestFailed(key, url, f"{url}: {why}") from None
            rfs["refs"][key] = [objects.path(sha), 0, n]
            total += n
    finally:
        for fh in handles.values():
            fh.close()
    return total
