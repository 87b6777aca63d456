"""Zone backends (docs/format.md section 6) and ``open_zone``, which picks one from a zone URL.

    /path, file:///path            LocalZone
    s3://bucket/prefix             S3Zone
    http(s)://host/...             HttpZone (read-only)
    https://host/.../zones/u/z     GatewayZone when a token is given (lindivc.zones.gateway)
    memory://name                  MemoryZone (tests)
"""
from __future__ import annotations

import importlib.util

from ..layout import parse_zone_url
from .base import ObjectInfo, Zone

__all__ = ["open_zone", "Zone", "ObjectInfo"]


def _gateway_class():
    """GatewayZone if lindivc.zones.gateway exists, else None (import errors inside it propagate)."""
    if importlib.util.find_spec(__name__ + ".gateway") is None:
        return None
    from .gateway import GatewayZone

    return GatewayZone


def open_zone(url: str, *, token: str | None = None) -> Zone:
    """The zone at ``url``; InvalidKey for a malformed or unsupported URL.

    ``token`` (a GitHub token) selects the gateway backend for an http(s) cloud zone
    (``https://host/.../zones/<user>/<zone>``); without one such a zone is read-only HTTP.
    """
    if isinstance(url, str) and url.strip().startswith("memory://"):
        from .memory import MemoryZone

        return MemoryZone(url.strip())
    loc = parse_zone_url(url)
    if loc.scheme == "file":
        from .local import LocalZone

        return LocalZone(loc)
    if loc.scheme == "s3":
        from .s3 import S3Zone

        return S3Zone(loc)
    # ---- gateway hook: the gateway backend (lindivc/zones/gateway.py) takes writable cloud zones
    if loc.in_cloud and token:
        gateway_zone = _gateway_class()
        if gateway_zone is not None:
            return gateway_zone(url, token=token)
    # ----
    from .http import HttpZone

    return HttpZone(loc)
