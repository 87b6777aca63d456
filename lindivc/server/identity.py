"""Who a GitHub token belongs to, asked of the GitHub API and cached for a bounded time.

The cache is keyed by a SHA-256 of the token (the token itself is never stored, logged or put in a
message), holds at most ``max_entries`` answers, keeps a login for ``ttl`` seconds and a refusal
for ``negative_ttl`` seconds. Concurrent lookups of the same uncached token share one request.

GitHub is asked from a pool of its own (``threads`` threads, at most ``max_pending`` lookups
waiting), so slow or bogus tokens never hold the threads that serve S3 reads and writes; when
the pool is full, :meth:`GitHubIdentity.verify` refuses at once (IdentityBusy).
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import requests

log = logging.getLogger("lindivc.gateway")


class InvalidToken(Exception):
    """GitHub does not recognise the token (its /user answered 401)."""


class IdentityUnavailable(Exception):
    """GitHub could not be asked or gave an unexpected answer; the token may still be good."""


class IdentityBusy(IdentityUnavailable):
    """Too many token lookups are waiting for GitHub; try again shortly."""


@dataclass(frozen=True)
class _Entry:
    login: str | None  # None: GitHub refused the token
    expires: float


class GitHubIdentity:
    """Resolve tokens to GitHub logins via ``<api_url>/user``."""

    def __init__(self, api_url: str = "https://api.github.com", *, ttl: float = 300.0,
                 negative_ttl: float = 10.0, max_entries: int = 10_000, timeout: float = 10.0,
                 threads: int = 4, max_pending: int = 64) -> None:
        self.api_url = api_url.rstrip("/")
        self.ttl = float(ttl)
        self.negative_ttl = float(min(negative_ttl, ttl))
        self.max_entries = int(max_entries)
        self.timeout = timeout
        self._cache: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = threading.Lock()
        self._inflight: dict[str, threading.Event] = {}
        self._session = requests.Session()
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="lindivc-github")
        self.max_pending = max_pending
        self._pending = 0  # lookups submitted to the pool and not finished (event loop only)

    async def verify(self, token: str) -> str:
        """The login of ``token``: from the cache, else asked of GitHub on the identity pool.
        Raises InvalidToken, IdentityUnavailable, IdentityBusy."""
        hit = self.cached(token)
        if hit is not None:
            return hit
        if self._pending >= self.max_pending:
            raise IdentityBusy(f"{self._pending} token checks are waiting for GitHub")
        self._pending += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, self.login, token)
        finally:
            self._pending -= 1

    @staticmethod
    def _fingerprint(token: str) -> str:
        return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()

    def cached(self, token: str) -> str | None:
        """The cached login for ``token``; raise InvalidToken if a refusal is cached; None if
        nothing (fresh) is cached."""
        fp = self._fingerprint(token)
        with self._lock:
            return self._cached_locked(fp)

    def _cached_locked(self, fp: str) -> str | None:
        e = self._cache.get(fp)
        if e is None:
            return None
        if e.expires <= time.monotonic():
            del self._cache[fp]
            return None
        self._cache.move_to_end(fp)
        if e.login is None:
            raise InvalidToken()
        return e.login

    def login(self, token: str) -> str:
        """The GitHub login of ``token``. Raises InvalidToken or IdentityUnavailable. Blocking."""
        fp = self._fingerprint(token)
        while True:
            with self._lock:
                hit = self._cached_locked(fp)
                if hit is not None:
                    return hit
                ev = self._inflight.get(fp)
                if ev is None:
                    ev = self._inflight[fp] = threading.Event()
                    mine = True
                else:
                    mine = False
            if not mine:
                ev.wait(self.timeout + 1)
                continue  # the owner filled the cache (or failed: then we ask ourselves)
            try:
                login = self._ask(token)
                self._store(fp, login)
                if login is None:
                    raise InvalidToken()
                return login
            finally:
                with self._lock:
                    self._inflight.pop(fp, None)
                ev.set()

    def _store(self, fp: str, login: str | None) -> None:
        ttl = self.ttl if login is not None else self.negative_ttl
        with self._lock:
            self._cache[fp] = _Entry(login, time.monotonic() + ttl)
            self._cache.move_to_end(fp)
            while len(self._cache) > self.max_entries:
                self._cache.popitem(last=False)

    def _ask(self, token: str) -> str | None:
        try:
            r = self._session.get(
                self.api_url + "/user", timeout=self.timeout,
                headers={"Authorization": f"token {token}", "Accept": "application/vnd.github+json",
                         "User-Agent": "lindivc-gateway"},
            )
        except requests.RequestException as e:
            log.warning("GitHub API unreachable: %s", type(e).__name__)
            raise IdentityUnavailable(f"GitHub API at {self.api_url} unreachable") from None
        if r.status_code == 401:
            return None
        if r.status_code != 200:
            log.warning("GitHub API /user answered HTTP %s", r.status_code)
            raise IdentityUnavailable(f"GitHub API /user answered HTTP {r.status_code}")
        try:
            login = r.json()["login"]
        except (ValueError, KeyError, TypeError):
            raise IdentityUnavailable("GitHub API /user answered without a login") from None
        if not isinstance(login, str) or not login:
            raise IdentityUnavailable("GitHub API /user answered without a login")
        return login
