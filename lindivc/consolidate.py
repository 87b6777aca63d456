"""Consolidating a repository's loose chunk objects into packs (``lindivc pack``)."""
from __future__ import annotations

import os

from . import lindijson
from .errors import InvalidLindiFile, LindivcError, ObjectMissing
from .packstream import repack_loose
from .progress import Reporter
from .repo import Repository
from .worktree import is_trackable


def pack_loose(repo: Repository, target_size: int | None = None, reporter=None) -> tuple[int, int]:
    """Consolidate the loose chunk objects into packs; re-render the working files to read from
    them. Returns (packs written, bytes packed). Loose copies go only after a pack is verified
    and its index saved; the working files' canonical form does not change."""
    rep = reporter or Reporter()
    index = repo._index()
    paths = [p for p in sorted(set(index.entries) | set(repo.lindi_files())) if os.path.exists(repo.abspath(p))]
    failed: list[str] = []
    # a writer holding a working file open "r+" would save it back naming deleted loose copies
    with repo.locked(p for p in paths if is_trackable(p)):
        shas = [s for s in repo.objects if not repo.packs.is_pack(s)]
        total = sum(repo.objects.size(s) for s in shas)
        with rep.task(f"Packing {len(shas)} objects", total) as advance:
            done = repack_loose(repo.objects, repo.packs, shas, target_size or repo.config.pack_size,
                                progress=advance)
        # every working file is re-rendered, whatever fails in another one
        for path in paths:
            try:
                canon = repo.canonical_bytes_of(path)
            except InvalidLindiFile:
                continue  # a broken working file is the user's to fix; leave it as it is
            except LindivcError as e:
                failed.append(f"{path} ({e})")
                continue
            missing: list[str] = []

            def locate(cr: lindijson.ContentRef) -> list:
                try:
                    return repo.locate(cr)
                except ObjectMissing:  # keep the ref as it was; the rest of the file moves to the packs
                    missing.append(cr.sha1)
                    return [repo.objects.path(cr.sha1), cr.offset, cr.size]

            lindijson.write_lindi_json(repo.abspath(path), lindijson.render(lindijson.parse(canon, path), locate))
            if missing:
                failed.append(f"{path} (names missing object {missing[0]}"
                              f"{f' and {len(set(missing)) - 1} more' if len(set(missing)) > 1 else ''})")
    if failed:
        raise LindivcError(f"packed {len(done)} pack(s); the other working files were updated, but "
                           f"{len(failed)} could not be: {'; '.join(failed[:3])}{' ...' if len(failed) > 3 else ''}")
    return len(done), sum(i.size for i in done)
