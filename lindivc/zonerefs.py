"""The zone's git refs: ``git/refs/heads/<branch>``, the only mutable files of a zone's history,
updated by compare-and-swap, and the files derived from them, ``git/HEAD`` (written once, by the
first push) and ``git/info/refs`` (``"<sha1>\\t<refname>\\n"`` per ref, sorted).

dulwich has no compare-and-swap update of a ref in a bucket; this module is that, on the zone.
"""
from __future__ import annotations

from .errors import MalformedRef, PreconditionFailed, RefConflict, ZoneError, ZoneKeyMissing
from .infofiles import CAS_ATTEMPTS, cas_rewrite, cas_rewrite_cached
from .layout import git_key, validate_key
from .objects import is_sha1
from .zones.base import Zone

INFO_REFS = git_key("info/refs")
HEAD_KEY = git_key("HEAD")


def ref_key(branch: str) -> str:
    """The zone key of branch ``branch`` (InvalidKey for a name outside the layout)."""
    return validate_key(git_key("refs/heads/" + branch))



def _parse_ref(data: bytes, key: str) -> str:
    sha = data.decode("ascii", "replace").strip()
    if not is_sha1(sha):
        raise MalformedRef(key, sha)
    return sha


def read_remote_ref(zone: Zone, branch: str) -> tuple[str | None, str | None]:
    """The commit the zone's ``branch`` names and the etag to pass to :func:`cas_remote_ref`;
    ``(None, None)`` if the branch does not exist. The etag belongs to the value returned."""
    key = ref_key(branch)
    if zone.atomic_get_etag:  # one GET answers value and etag together
        try:
            data, etag = zone.get_if_changed(key)
        except ZoneKeyMissing:
            return None, None
        return _parse_ref(data, key), etag
    for _ in range(CAS_ATTEMPTS):
        before = zone.head(key)
        if before is None:
            return None, None
        try:
            data = zone.get(key)
        except ZoneKeyMissing:
            continue
        after = zone.head(key)
        if after is not None and after.etag == before.etag:
            return _parse_ref(data, key), before.etag
    raise ZoneError(f"{key} keeps changing; try again")


def cas_remote_ref(
    zone: Zone,
    branch: str,
    new_sha: str,
    expected_etag: str | None,
    *,
    expected_sha: str | None = None,
    derived: bool = True,
) -> str:
    """Point the zone's ``branch`` at ``new_sha`` if it is still the value read with
    ``expected_etag`` (None: only if the branch does not exist yet); return the new etag.

    Raises RefConflict (hint "fetch and merge first") if the branch changed since it was read;
    ``expected_sha`` only makes that message name the commit the caller expected. On success,
    also writes ``git/HEAD`` if the zone has none and rewrites ``git/info/refs``; those derived
    files are best effort (their failures are swallowed: the ref update already happened).
    ``derived=False`` leaves them to the caller (push updates them from what it remembers).
    """
    if not is_sha1(new_sha):
        raise ValueError(f"not a commit sha1: {new_sha!r}")
    key = ref_key(branch)
    data = (new_sha + "\n").encode("ascii")
    try:
        if expected_etag is None:
            etag = zone.put(key, data, if_none_match=True)
        else:
            etag = zone.put(key, data, if_match=expected_etag)
    except PreconditionFailed:
        try:
            actual, _ = read_remote_ref(zone, branch)
        except ZoneError:
            actual = None
        raise RefConflict("refs/heads/" + branch, expected_sha, actual,
                          hint="fetch and merge first") from None
    if not derived:
        return etag
    try:
        if zone.head(HEAD_KEY) is None:
            zone.put(HEAD_KEY, f"ref: refs/heads/{branch}\n".encode("ascii"), if_none_match=True)
    except ZoneError:
        pass
    try:
        update_info_refs(zone)
    except ZoneError:
        pass
    return etag


def list_remote_refs(zone: Zone) -> dict[str, str]:
    """Every ref of the zone as full name (``refs/heads/main``) -> sha1. Read from the ref files
    when the zone can be listed, else from the derived ``git/info/refs``. Malformed refs, and
    refs deleted while they are read, are skipped; any other error (AccessDenied: the zone may
    be listed but not read) is raised, never taken for "no refs"."""
    refs: dict[str, str] = {}
    if zone.supports_listing:
        prefix = git_key("refs/")
        for info in zone.list(prefix):
            try:
                refs[info.key[len("git/"):]] = _parse_ref(zone.get(info.key), info.key)
            except (ZoneKeyMissing, MalformedRef):
                continue
        return refs
    try:
        text = zone.get(INFO_REFS).decode("ascii", "replace")
    except ZoneKeyMissing:
        return refs
    for line in text.splitlines():
        sha, _, name = line.partition("\t")
        if is_sha1(sha) and name.startswith("refs/"):
            refs[name] = sha
    return refs


def update_info_refs(zone: Zone) -> int:
    """Rewrite ``git/info/refs`` from the ref files (needs listing); return the bytes written
    (0 if it was already current). Compare-and-swap with retries, so a slower writer never
    replaces a newer list with an older one."""
    if not zone.supports_listing:
        return 0

    def render(_: bytes | None) -> bytes:
        refs = list_remote_refs(zone)
        return "".join(f"{sha}\t{name}\n" for name, sha in sorted(refs.items())).encode("ascii")

    return cas_rewrite(zone, INFO_REFS, render)


def update_info_refs_cached(zone: Zone, branch: str, sha: str,
                            cached: tuple[str, bytes] | None) -> tuple[str | None, bytes]:
    """:func:`update_info_refs` after ``branch`` moved to ``sha``, as one conditional PUT when
    ``cached`` (etag, content) is still current; else from the listing. Returns (etag, content)."""
    if not zone.supports_listing:
        return None, b""
    if cached is not None:
        lines = {}
        for line in cached[1].decode("ascii", "replace").splitlines():
            old, _, name = line.partition("\t")
            lines[name] = old
        lines["refs/heads/" + branch] = sha
        new = "".join(f"{v}\t{k}\n" for k, v in sorted(lines.items())).encode("ascii")
        if new == cached[1]:
            return cached
        try:
            return zone.put(INFO_REFS, new, if_match=cached[0]), new
        except PreconditionFailed:
            pass  # another writer: render from the listing

    def render(_: bytes | None) -> bytes:
        refs = list_remote_refs(zone)
        return "".join(f"{v}\t{k}\n" for k, v in sorted(refs.items())).encode("ascii")

    etag, content, _ = cas_rewrite_cached(zone, INFO_REFS, render)
    return etag, content
