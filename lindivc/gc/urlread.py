"""Reading the file an external pin names, by URL or path (http(s), s3://, file://, a local path).

The only place GC fetches a URL; it goes away when pins carry their roots (issue 10).
"""
from __future__ import annotations

from ..errors import PinUnreadable


def read_url(url: str) -> bytes:
    """The bytes of the file at ``url``; PinUnreadable if it cannot be read."""
    if url.startswith(("http://", "https://")):
        import requests  # imported when needed, like the zone backends

        try:
            r = requests.get(url, timeout=60)
            r.raise_for_status()
        except requests.RequestException as e:
            raise PinUnreadable(url, str(e).splitlines()[0][:200]) from None
        return r.content
    if url.startswith("s3://"):
        from ..zones.s3 import make_client  # any bucket, with the runner's credentials

        bucket, _, key = url[5:].partition("/")
        try:
            return make_client().get_object(Bucket=bucket, Key=key)["Body"].read()
        except Exception as e:  # noqa: BLE001 - any failure means: unreadable
            raise PinUnreadable(url, str(e)) from None
    path = url[len("file://"):] if url.startswith("file://") else url
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise PinUnreadable(url, str(e.strerror)) from None
