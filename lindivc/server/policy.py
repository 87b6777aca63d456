"""Which documents the gateway stores, for whom (docs/gateway.md, "Documents").

Every ``pins/``, ``journal/`` and ``borrow/`` body, and ``info/public`` (the zone's public base
URL, which borrowers write into their published files), is parsed with lindivc.documents before it
reaches the bucket: a document that does not parse is refused (422), one over its size limit
413. A pin written into someone else's zone must also:

- go to a zone that exists (has a ref under ``git/refs/``), else 404;
- name its writer: id ``<login>.<name>`` and ``"by": "<login>"``;
- stay within ``max_pins_per_user`` pins per writer in that zone, else 403 (rewriting one of
  the writer's own pins adds none).

``lindivc-pin/1`` documents are read (GC keeps what they list) but no longer written: a new one
is refused (422), from anyone.

All methods block (boto3); the app calls them from its thread pool.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..documents import (
    MAX_BORROW_BYTES,
    MAX_JOURNAL_BYTES,
    MAX_PUBLIC_BYTES,
    parse_borrow_record,
    parse_journal_entry,
    parse_pin,
    parse_public_url,
    pin_writer,
)
from ..errors import InvalidDocument
from ..layout import PUBLIC_KEY
from .bucket import Bucket
from .guard import HTTPError

DOCUMENT_TOPS = ("pins", "journal", "borrow")


@dataclass(frozen=True)
class DocumentLimits:
    max_pin_bytes: int = 1 << 20
    max_pins_per_user: int = 100
    max_journal_bytes: int = MAX_JOURNAL_BYTES
    max_borrow_bytes: int = MAX_BORROW_BYTES


@dataclass(frozen=True)
class Write:
    """One document PUT: into zone ``user/zone`` (bucket key prefix ``base``) at ``key``, by
    ``login``, who ``owner``s the zone or not."""

    user: str
    zone: str
    base: str
    key: str
    login: str
    owner: bool


class DocumentPolicy:
    def __init__(self, bucket: Bucket, limits: DocumentLimits) -> None:
        self.bucket = bucket
        self.limits = limits

    def max_bytes(self, key: str) -> int | None:
        """The size limit of the document at ``key``; None if ``key`` holds no document."""
        if key == PUBLIC_KEY:
            return MAX_PUBLIC_BYTES
        top = key.split("/", 1)[0]
        return {"pins": self.limits.max_pin_bytes, "journal": self.limits.max_journal_bytes,
                "borrow": self.limits.max_borrow_bytes}.get(top)

    def admit(self, w: Write, data: bytes) -> None:
        """Raise HTTPError unless ``data`` may be stored at ``w.key``."""
        top, _, name = w.key.partition("/")
        try:
            if top == "journal":
                entry = parse_journal_entry(data, w.key, self.limits.max_journal_bytes)
                if entry.id != name:
                    raise HTTPError(422, f"{w.key}: the entry's id is {entry.id!r}, not {name!r}")
            elif top == "borrow":
                parse_borrow_record(data, w.key, self.limits.max_borrow_bytes)
            elif top == "pins":
                self._admit_pin(w, name, data)
            elif w.key == PUBLIC_KEY:
                parse_public_url(data, w.key)
        except InvalidDocument as e:
            raise HTTPError(422, f"refused: {e}") from None

    def _admit_pin(self, w: Write, pid: str, data: bytes) -> None:
        pin = parse_pin(data, w.key, self.limits.max_pin_bytes)
        if pin.legacy:
            raise HTTPError(422, f"{w.key}: lindivc-pin/1 is no longer written; write lindivc-pin/2")
        if pin.by is not None and pin.by.lower() != w.login.lower():
            raise HTTPError(422, f"{w.key}: the pin says it is by {pin.by!r}, but {w.login} is writing it")
        if w.owner:
            return
        if pin.by is None or pin_writer(pid) != w.login:
            raise HTTPError(422, f"{w.key}: a pin in another user's zone must have the id {w.login}.<name> "
                                 f"and \"by\": \"{w.login}\"")
        if not self._zone_exists(w):
            raise HTTPError(404, f"zone {w.user}/{w.zone} does not exist (it has no refs): nothing to pin")
        if self.bucket.head(w.base + w.key) is not None:
            return  # rewriting one of the writer's own pins adds none
        n = self._count(w.base + f"pins/{w.login}.", self.limits.max_pins_per_user)
        if n >= self.limits.max_pins_per_user:
            raise HTTPError(403, f"{w.login} already has {n} pins in zone {w.user}/{w.zone} "
                                 f"(the limit is {self.limits.max_pins_per_user}); ask its owner to drop some")

    def _zone_exists(self, w: Write) -> bool:
        objs, _ = self.bucket.list(w.base + "git/refs/", None, 1)
        return bool(objs)

    def _count(self, prefix: str, stop_at: int) -> int:
        """Keys under ``prefix``, counted up to ``stop_at``."""
        n, after = 0, None
        while n < stop_at:
            objs, more = self.bucket.list(prefix, after, min(1000, stop_at - n))
            n += len(objs)
            if not more or not objs:
                break
            after = objs[-1].key
        return n
