"""Repository configuration: ``.lindivc/config.json``.

    {"core": {"chunk_threshold": 65536, "pack_size": 67108864},
     "remotes": {"origin": {"url": "s3://bucket/zones/alice/analysis",
                            "public_url": "https://cdn.example.org/zones/alice/analysis/"}},
     "user": {"name": "...", "email": "..."}}
"""
from __future__ import annotations

import getpass
import json
import os
import re
import socket
from typing import Any

from .atomic import atomic_write
from .errors import ConfigInvalid, LindivcError
from .packstream import DEFAULT_PACK_SIZE

#: the default ``core.chunk_threshold`` (docs/format.md section 3)
DEFAULT_CHUNK_THRESHOLD = 64 * 1024
DEFAULTS: dict[str, Any] = {
    "core": {"chunk_threshold": DEFAULT_CHUNK_THRESHOLD, "pack_size": DEFAULT_PACK_SIZE},
    "remotes": {},
}
REMOTE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def _check(path: str, loaded: Any) -> None:
    """ConfigInvalid for the first value of ``loaded`` (a parsed config.json) of the wrong type."""
    def positive_int(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and v > 0

    def want(key: str, value: Any, ok: bool, expected: str) -> None:
        if not ok:
            raise ConfigInvalid(path, key, value, expected)

    want("(the file)", loaded, isinstance(loaded, dict), "a JSON object")
    for section in ("core", "remotes", "user"):
        if section in loaded:
            want(section, loaded[section], isinstance(loaded[section], dict), "an object")
    for key in ("chunk_threshold", "pack_size"):
        if key in loaded.get("core", {}):
            want(f"core.{key}", loaded["core"][key], positive_int(loaded["core"][key]),
                 "a positive integer (a number of bytes, e.g. 65536)")
    for name, remote in loaded.get("remotes", {}).items():
        want(f"remotes.{name}", remote, isinstance(remote, dict), 'an object {"url": URL}')
        want(f"remotes.{name}.url", remote.get("url"), isinstance(remote.get("url"), str), "a zone URL (a string)")
        if "public_url" in remote:
            want(f"remotes.{name}.public_url", remote["public_url"], isinstance(remote["public_url"], str),
                 "an http(s) URL (a string)")
    for key in ("name", "email"):
        if key in loaded.get("user", {}):
            want(f"user.{key}", loaded["user"][key], isinstance(loaded["user"][key], str), "a string")


class Config:
    """The JSON configuration file of one repository."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.data: dict[str, Any] = json.loads(json.dumps(DEFAULTS))
        if os.path.exists(path):
            try:
                with open(path) as f:
                    loaded = json.load(f)
            except json.JSONDecodeError as e:
                raise LindivcError(f"{path}: config is not valid JSON ({e.msg})") from None
            _check(path, loaded)
            for section, values in loaded.items():
                if isinstance(values, dict) and isinstance(self.data.get(section), dict):
                    self.data[section].update(values)
                else:
                    self.data[section] = values

    def save(self) -> None:
        atomic_write(self.path, (json.dumps(self.data, indent=2, sort_keys=True) + "\n").encode())

    @property
    def author(self) -> str:
        """The author of new commits: ``LINDIVC_AUTHOR`` ("Name <email>"), else ``user``, else the login."""
        env = os.environ.get("LINDIVC_AUTHOR")
        if env:
            return env
        u = self.data.get("user", {})
        if u.get("name") and u.get("email"):
            return f"{u['name']} <{u['email']}>"
        user = getpass.getuser()
        return f"{user} <{user}@{socket.gethostname()}>"

    @property
    def chunk_threshold(self) -> int:
        return int(self.data["core"]["chunk_threshold"])

    @property
    def pack_size(self) -> int:
        return int(self.data["core"]["pack_size"])

    # remotes
    def remotes(self) -> dict[str, str]:
        return {k: v["url"] for k, v in self.data["remotes"].items()}

    def remote_url(self, name: str) -> str:
        r = self.data["remotes"].get(name)
        if r is None:
            known = ", ".join(sorted(self.data["remotes"])) or "none"
            raise LindivcError(f"unknown remote {name!r} (known: {known}); add it with `lindivc remote add {name} URL`")
        return r["url"]

    def remote_public_url(self, name: str) -> str | None:
        """The public base URL set for remote ``name`` (``--public-url``), or None."""
        self.remote_url(name)
        return self.data["remotes"][name].get("public_url")

    def add_remote(self, name: str, url: str, public_url: str | None = None) -> None:
        from .layout import normalize_public_url, parse_zone_url

        if not REMOTE_NAME_RE.match(name):
            raise LindivcError(f"invalid remote name {name!r}")
        if name in self.data["remotes"]:
            raise LindivcError(f"remote {name!r} already exists")
        loc = parse_zone_url(url)
        self.data["remotes"][name] = {"url": loc.url}
        if public_url is not None:
            self.data["remotes"][name]["public_url"] = normalize_public_url(public_url)
        self.save()

    def set_remote(self, name: str, url: str | None = None, public_url: str | None = None,
                   clear_public_url: bool = False) -> None:
        """Change the zone URL and/or the public base URL of remote ``name``."""
        from .layout import normalize_public_url, parse_zone_url

        self.remote_url(name)
        entry = dict(self.data["remotes"][name])
        if url is not None:
            entry["url"] = parse_zone_url(url).url
        if clear_public_url:
            entry.pop("public_url", None)
        elif public_url is not None:
            entry["public_url"] = normalize_public_url(public_url)
        self.data["remotes"][name] = entry
        self.save()

    def remove_remote(self, name: str) -> None:
        self.remote_url(name)
        del self.data["remotes"][name]
        self.save()
