"""The derived files of a zone's ``git/`` prefix, rewritten by compare-and-swap.

Several writers rewrite a derived file (``git/objects/info/packs`` here, ``git/info/refs`` in
:mod:`lindivc.zonerefs`, the catalog's ``info/`` lists) from the zone's own listing, so each
rewrite is conditional on the value it read and retried when another writer got there first; a
slower writer therefore never replaces a newer list with an older one. A caller that remembers
the file's (etag, content) makes the usual update one conditional PUT.

``git/objects/info/packs`` holds ``"P pack-<N>.pack\\n"`` per pack, sorted, then ``"\\n"``
(docs/format.md, "History in a zone"); a pack counts as present when both its ``.pack`` and its
``.idx`` are in the zone.
"""
from __future__ import annotations

from typing import Callable, Iterable

from .errors import PreconditionFailed, ZoneError, ZoneKeyMissing
from .layout import git_key
from .objects import is_sha1
from .zones.base import Zone

INFO_PACKS = git_key("objects/info/packs")
PACK_PREFIX = git_key("objects/pack/")
CAS_ATTEMPTS = 20


def pack_key(name: str, ext: str) -> str:
    """The zone key of git pack ``name``'s file with extension ``ext`` (``pack`` or ``idx``)."""
    return f"{PACK_PREFIX}pack-{name}.{ext}"


def cas_rewrite(zone: Zone, key: str, render: Callable[[bytes | None], bytes]) -> int:
    """Replace the derived file ``key`` by ``render(current)`` with compare-and-swap, retrying when
    another writer got there first. Returns bytes written (0 if unchanged)."""
    return cas_rewrite_cached(zone, key, render)[2]


def cas_rewrite_cached(zone: Zone, key: str, render: Callable[[bytes | None], bytes],
                       cached: tuple[str, bytes] | None = None) -> tuple[str | None, bytes, int]:
    """:func:`cas_rewrite`, first trying ``cached`` = (etag, content) the caller remembers, so
    that the usual update is one conditional PUT (a stale cache costs a failed PUT, then the
    read-render-write loop). Returns (etag, content now, bytes written)."""
    if cached is not None:
        etag, current = cached
        new = render(current)
        if new == current:
            return etag, current, 0
        try:
            return zone.put(key, new, if_match=etag), new, len(new)
        except PreconditionFailed:
            pass
    for _ in range(CAS_ATTEMPTS):
        info = zone.head(key)
        current: bytes | None = None
        if info is not None:
            try:
                current = zone.get(key)
            except ZoneKeyMissing:
                continue
        new = render(current)
        if new == current:
            return (info.etag if info else None), new, 0
        try:
            if info is None:
                etag = zone.put(key, new, if_none_match=True)
            else:
                etag = zone.put(key, new, if_match=info.etag)
            return etag, new, len(new)
        except PreconditionFailed:
            continue
    raise ZoneError(f"{key}: too many concurrent updates; try again")


# -------------------------------------------------------------------------------- info/packs


def _parse_info_packs(data: bytes | None) -> set[str]:
    names = set()
    for line in (data or b"").decode("ascii", "replace").splitlines():
        if line.startswith("P pack-") and line.endswith(".pack"):
            name = line[len("P pack-"):-len(".pack")]
            if is_sha1(name):
                names.add(name)
    return names


def _render_info_packs(names: Iterable[str]) -> bytes:
    return ("".join(f"P pack-{n}.pack\n" for n in sorted(set(names))) + "\n").encode("ascii")


def _listed_packs(zone: Zone) -> set[str]:
    """Packs whose .pack and .idx are both in the zone."""
    packs, idxs = set(), set()
    for info in zone.list(PACK_PREFIX):
        base = info.key[len(PACK_PREFIX):]
        for ext, into in ((".pack", packs), (".idx", idxs)):
            if base.startswith("pack-") and base.endswith(ext) and is_sha1(base[5:-len(ext)]):
                into.add(base[5:-len(ext)])
    return packs & idxs


def remote_packs(zone: Zone) -> list[str]:
    """Names of the git packs the zone advertises in ``git/objects/info/packs``."""
    try:
        return sorted(_parse_info_packs(zone.get(INFO_PACKS)))
    except ZoneKeyMissing:
        return []


def update_info_packs(zone: Zone, add: Iterable[str] = ()) -> int:
    """Rewrite ``git/objects/info/packs`` (compare-and-swap, retried) so it lists ``add`` and, when
    the zone can be listed, exactly the packs present; return bytes written."""
    add = set(add)

    def render(current: bytes | None) -> bytes:
        if zone.supports_listing:
            names = _listed_packs(zone) | add
        else:
            names = _parse_info_packs(current) | add
        return _render_info_packs(names)

    return cas_rewrite(zone, INFO_PACKS, render)


def update_info_packs_cached(zone: Zone, add: Iterable[str],
                             cached: tuple[str, bytes] | None) -> tuple[str | None, bytes]:
    """:func:`update_info_packs` as one conditional PUT when ``cached`` (etag, content) is
    current (the list then gains ``add``); else as :func:`update_info_packs`. Returns (etag, content)."""
    add = set(add)
    if cached is not None:
        new = _render_info_packs(_parse_info_packs(cached[1]) | add)
        if new == cached[1]:
            return cached
        try:
            return zone.put(INFO_PACKS, new, if_match=cached[0]), new
        except PreconditionFailed:
            pass

    def render(current: bytes | None) -> bytes:
        if zone.supports_listing:
            return _render_info_packs(_listed_packs(zone) | add)
        return _render_info_packs(_parse_info_packs(current) | add)

    etag, content, _ = cas_rewrite_cached(zone, INFO_PACKS, render)
    return etag, content
