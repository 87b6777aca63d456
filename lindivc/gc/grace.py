"""Grace periods: nothing younger than one is deleted (``14d``, ``36h``, ``30m``, ``90s``, ``2w``)."""
from __future__ import annotations

import re

from ..errors import InvalidGrace
from .model import DEFAULT_GRACE

_GRACE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|d|w)?\s*$")
_UNITS = {None: 1, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_grace(text: str | float | int | None, *, allow_now: bool = False) -> float:
    """Seconds in a grace period such as ``14d``, ``36h``, ``30m``, ``90s``, ``2w`` (a bare number
    is seconds); None is the default. ``now`` (zero) only with ``allow_now``. Raises InvalidGrace."""
    if text is None:
        return DEFAULT_GRACE
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        secs = float(text)
    else:
        s = str(text).strip().lower()
        if s == "now":
            secs = 0.0
        else:
            m = _GRACE_RE.match(s)
            if not m:
                raise InvalidGrace(str(text), "use a number and a unit, like 14d, 36h, 30m, 90s")
            secs = float(m.group(1)) * _UNITS[m.group(2)]
    if secs < 0:
        raise InvalidGrace(str(text), "negative")
    if secs == 0 and not allow_now:
        raise InvalidGrace(str(text), "a grace period of 0 (`now`) can delete objects that a push in flight or "
                           "another process is about to use; pass --i-know-grace-now to allow it")
    return secs


def format_duration(secs: float) -> str:
    """``secs`` in the largest whole unit of :func:`parse_grace` (``14d``, ``36h``), else seconds."""
    for unit, n in (("d", 86400), ("h", 3600), ("m", 60)):
        if secs >= n and secs % n == 0:
            return f"{int(secs // n)}{unit}"
    return f"{secs:g}s"
