"""The user's GitHub token for pushing through zone gateways (`lindivc login`).

The token is stored in ``token_path()`` (``$LINDIVC_CONFIG_DIR/token``, else
``$XDG_CONFIG_HOME/lindivc/token``, else ``~/.config/lindivc/token``) with file mode 0600.
``GITHUB_TOKEN``, when set and non-empty, takes precedence over the stored token. Tokens never
appear in messages: use :func:`redact` on any text that might contain one.
"""
from __future__ import annotations

import os
from pathlib import Path

from .atomic import atomic_write
from .errors import LindivcError

TOKEN_ENV = "GITHUB_TOKEN"
CONFIG_ENV = "LINDIVC_CONFIG_DIR"


def config_dir() -> Path:
    """Where lindivc keeps per-user configuration."""
    d = os.environ.get(CONFIG_ENV)
    if d:
        return Path(d)
    xdg = os.environ.get("XDG_CONFIG_HOME")
    return (Path(xdg) if xdg else Path.home() / ".config") / "lindivc"


def token_path() -> Path:
    """The file ``login`` writes and ``load_token`` reads."""
    return config_dir() / "token"


def login(token: str) -> Path:
    """Store ``token`` (mode 0600, replacing any earlier one); return the file's path.

    Raises LindivcError for an empty token or one containing whitespace.
    """
    token = (token or "").strip()
    if not token or any(c.isspace() for c in token) or not token.isprintable():
        raise LindivcError("not a token: expected one word without spaces (a GitHub token)")
    path = token_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    atomic_write(str(path), (token + "\n").encode(), mode=0o600)
    return path


def logout() -> bool:
    """Remove the stored token; return whether there was one."""
    try:
        token_path().unlink()
        return True
    except FileNotFoundError:
        return False


def load_token() -> str | None:
    """``GITHUB_TOKEN`` if set, else the stored token, else None."""
    env = os.environ.get(TOKEN_ENV, "").strip()
    if env:
        return env
    try:
        text = token_path().read_text().strip()
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return None
    return text or None


def redact(text: str, token: str | None) -> str:
    """``text`` with every occurrence of ``token`` replaced by ``***``."""
    if token and len(token) >= 4:
        return text.replace(token, "***")
    return text
