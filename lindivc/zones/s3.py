"""A zone in S3 or any S3-compatible store (``s3://bucket/prefix``), through boto3.

Credentials and endpoint come from the standard AWS chain (environment, profile, instance role;
``AWS_ENDPOINT_URL`` for MinIO, R2, moto...). Without any credentials the client is unsigned, so
public buckets stay readable. Retries are botocore's ("standard" mode) with a short connect timeout
and few attempts, so an endpoint that does not answer fails in seconds (``AWS_MAX_ATTEMPTS`` and
``AWS_RETRY_MODE`` override).

Payload signing is off (:func:`make_client`): botocore sends ``UNSIGNED-PAYLOAD`` instead of
reading each body once more to hash it. Upload progress counts bytes as they are sent: should
botocore read a body before sending it (a client configured otherwise), the zone tells a body
that offers s3transfer's ``signal_not_transferring``/``signal_transferring`` protocol
(packstream.ConcatReader does) which reads are the send.

Conditional writes use S3's ``If-None-Match: *`` and ``If-Match: <etag>``. ``put_file`` is one PUT
up to ``multipart_threshold`` (1 GiB by default: single PUTs are faster on every store we tried)
and a parallel multipart upload above it, streamed from the file by s3transfer. ``put_stream`` sends
a seekable stream of known size (a pack read from its chunk files) in one PUT. The client comes from
botocore directly, and s3transfer is imported only for multipart uploads: importing boto3 costs
about 0.1 s, a fifth of a no-op push.
"""
from __future__ import annotations

import email.utils
import os
import threading
import time
import urllib.parse
from typing import BinaryIO, Callable, Iterator

from ..errors import AccessDenied, InvalidKey, PreconditionFailed, ZoneError, ZoneKeyMissing, ZoneUnreachable
from ..layout import NAME_RE, ZoneURL, parse_zone_url
from .base import ObjectInfo, Zone, ZoneReader, check_key, check_prefix, check_range

GiB = 1 << 30
MiB = 1 << 20

DENIED_CODES = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403", "Forbidden",
                "AllAccessDisabled", "ExpiredToken", "InvalidToken", "AccountProblem"}
MISSING_CODES = {"NoSuchKey", "404", "NotFound"}
PRECONDITION_CODES = {"PreconditionFailed", "412", "ConditionalRequestConflict"}
CLOCK_REFRESH = 600.0  # seconds between re-reads of the store's clock


def make_client(*, max_pool_connections: int = 32):
    """An S3 client from the standard credential chain, configured for zones."""
    # botocore directly: importing boto3 also imports s3transfer (~0.1 s of a no-op push)
    import botocore.session
    from botocore import UNSIGNED
    from botocore.config import Config

    from .s3loader import data_loader

    session = botocore.session.get_session()
    # the same model files, read ~60 ms faster (s3loader.py)
    session.register_component("data_loader", data_loader(session.get_config_variable("data_path")))
    kw: dict = dict(
        connect_timeout=3,
        read_timeout=60,
        max_pool_connections=max_pool_connections,
        # compatible with S3 look-alikes that do not know the newer default checksums
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        # no SHA-256 of each body (botocore signs payloads on plain http unless told not to): that
        # read the data a second time, costing CPU the upload needs. Safe: zone objects are
        # content-addressed and checked by every reader and by fsck, https protects the bytes in
        # transit, and boto3 itself skips it for streamed uploads on https (docs/s3.md)
        s3={"payload_signing_enabled": False},
    )
    retries = {}
    if not os.environ.get("AWS_RETRY_MODE"):
        retries["mode"] = "standard"
    if not os.environ.get("AWS_MAX_ATTEMPTS"):
        retries["max_attempts"] = 3
    if retries:
        kw["retries"] = retries
    if session.get_credentials() is None:
        kw["signature_version"] = UNSIGNED
    return session.create_client("s3", config=Config(**kw))


UPLOAD_OPERATIONS = ("PutObject", "UploadPart")


class _NotModified(Exception):
    """A conditional GET found the value unchanged (HTTP 304)."""


def _bare_404(e: Exception) -> bool:
    """A 404 without an error code (HEAD): it cannot tell a missing key from a missing bucket."""
    code = str(getattr(e, "response", {}).get("Error", {}).get("Code", ""))
    return code in ("", "404", "NotFound")


def _not_sending(request, operation_name: str, **kw) -> None:
    """First handler of a request: what reads the body now (the signer hashing it) is no send."""
    if operation_name in UPLOAD_OPERATIONS and hasattr(request.body, "signal_not_transferring"):
        request.body.signal_not_transferring()


def _sending(request, operation_name: str, **kw) -> None:
    """Last handler of a request, after signing: the next reads of the body send it."""
    if operation_name in UPLOAD_OPERATIONS and hasattr(request.body, "signal_transferring"):
        request.body.signal_transferring()


def count_sent_bytes(client) -> None:
    """Make ``client`` tell upload bodies which of their reads are sends (idempotent; the same
    handlers as s3transfer registers, under the same ids)."""
    client.meta.events.register_first("request-created.s3", _not_sending, unique_id="s3upload-not-transferring")
    client.meta.events.register_last("request-created.s3", _sending, unique_id="s3upload-transferring")


class S3Zone(Zone):
    """A zone at ``s3://bucket/prefix``. ``client`` may be shared between zones (boto3 clients are thread-safe)."""

    single_put_limit = 5 * GiB  # S3's largest single PUT

    def __init__(self, url: str | ZoneURL, *, client=None, multipart_threshold: int = GiB,
                 part_size: int = 64 * MiB, max_concurrency: int = 8) -> None:
        self.location = url if isinstance(url, ZoneURL) else parse_zone_url(url)
        if self.location.scheme != "s3":
            raise InvalidKey(f"not an S3 zone: {self.location.url}")
        rest = self.location.url[len("s3://"):]
        self.bucket, _, prefix = rest.partition("/")
        self.prefix = prefix.strip("/")
        self._owns_client = client is None
        self.client = client if client is not None else make_client()
        count_sent_bytes(self.client)
        self.multipart_threshold = multipart_threshold
        self.part_size = part_size
        self.max_concurrency = max_concurrency
        self._bucket_checked = False
        self._clock_offset: float | None = None
        self._clock_read_at = 0.0
        self._lock = threading.Lock()

    # helpers -------------------------------------------------------------------------------
    def _k(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    @property
    def endpoint(self) -> str:
        return self.client.meta.endpoint_url

    def _error(self, e: Exception, key: str | None = None) -> Exception:
        """The lindivc error for a botocore exception."""
        from botocore import UNSIGNED
        from botocore.exceptions import (ClientError, ConnectionClosedError, ConnectTimeoutError,
                                         EndpointConnectionError, NoCredentialsError, ReadTimeoutError)

        if isinstance(e, (EndpointConnectionError, ConnectTimeoutError, ConnectionClosedError)):
            return ZoneUnreachable(f"{self.url}: cannot reach the S3 endpoint {self.endpoint}")
        if isinstance(e, ReadTimeoutError):
            return ZoneUnreachable(f"{self.url}: the S3 endpoint {self.endpoint} stopped answering")
        if isinstance(e, NoCredentialsError):
            return AccessDenied(f"{self.url}: no AWS credentials found")
        if isinstance(e, ClientError):
            err = e.response.get("Error", {})
            code = str(err.get("Code", ""))
            status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code == "NoSuchBucket":
                return ZoneError(f"{self.url}: bucket {self.bucket} does not exist")
            if code in PRECONDITION_CODES or status == 412:
                return PreconditionFailed(key or "?")
            if code in DENIED_CODES or status == 403:
                if self.client.meta.config.signature_version is UNSIGNED:  # make_client found no credentials
                    return AccessDenied(f"{self.url}: no AWS credentials found, and the store refused an "
                                        f"anonymous request ({code or status})")
                return AccessDenied(f"{self.url}: access denied ({code or status})")
            if code in MISSING_CODES or status == 404:
                return ZoneKeyMissing(key or "?", self.url)
            if code == "InvalidRange" or status == 416:
                return ZoneError(f"{self.url}: byte range outside {key}")
            msg = err.get("Message") or code or status
            return ZoneError(f"{self.url}: S3 error on {key or self.bucket}: {msg}")
        return ZoneError(f"{self.url}: {e}")

    def _call(self, fn, key: str | None = None, **kw):
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            resp = fn(**kw)
        except (BotoCoreError, ClientError) as e:
            if isinstance(e, ClientError) and e.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 304:
                raise _NotModified() from None
            err = self._error(e, key)
            if isinstance(err, ZoneKeyMissing) and not self._bucket_checked and _bare_404(e):
                self._check_bucket()
            raise err from None
        self._note_date(resp)
        return resp

    def _check_bucket(self) -> None:
        """A bare 404 (HEAD) cannot tell a missing key from a missing bucket: ask once."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as e:
            status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if status == 404 or e.response.get("Error", {}).get("Code") in ("NoSuchBucket", "404"):
                raise ZoneError(f"{self.url}: bucket {self.bucket} does not exist") from None
            raise self._error(e) from None
        except BotoCoreError as e:
            raise self._error(e) from None
        self._bucket_checked = True

    def _note_date(self, resp) -> None:
        date = (resp or {}).get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
        if not date:
            return
        try:
            server = email.utils.parsedate_to_datetime(date).timestamp()
        except (TypeError, ValueError):
            return
        local = time.time()
        with self._lock:
            # Date is truncated to the second: the true time is on average half a second later
            self._clock_offset = server + 0.5 - local
            self._clock_read_at = local

    @staticmethod
    def _etag(resp) -> str | None:
        e = resp.get("ETag")
        return e.strip('"') if e else None

    # reads ---------------------------------------------------------------------------------
    def get(self, key: str) -> bytes:
        resp = self._call(self.client.get_object, key, Bucket=self.bucket, Key=self._k(key))
        with resp["Body"] as body:
            return self._read_body(body, key)

    def _read_body(self, body, key):
        from botocore.exceptions import BotoCoreError

        try:
            return body.read()
        except BotoCoreError as e:
            raise self._error(e, key) from None

    atomic_get_etag = True

    def get_if_changed(self, key: str, etag: str | None = None) -> tuple[bytes | None, str | None]:
        """One GET (``If-None-Match`` with ``etag``): a 304 answers ``(None, etag)``."""
        kw = dict(Bucket=self.bucket, Key=self._k(key))
        if etag:
            kw["IfNoneMatch"] = '"' + etag.strip('"') + '"'
        try:
            resp = self._call(self.client.get_object, key, **kw)
        except _NotModified:
            return None, etag
        with resp["Body"] as body:
            return self._read_body(body, key), self._etag(resp)

    def get_range(self, key: str, offset: int, size: int) -> bytes:
        check_range(offset, size)
        if size == 0:
            return self._empty_range(key)
        resp = self._call(self.client.get_object, key, Bucket=self.bucket, Key=self._k(key),
                          Range=f"bytes={offset}-{offset + size - 1}")
        with resp["Body"] as body:
            data = self._read_body(body, key)
        if len(data) != size:
            raise ZoneError(f"{self.url}: range {offset}+{size} of {key} returned {len(data)} bytes")
        return data

    def open_read(self, key: str) -> BinaryIO:
        from botocore.exceptions import BotoCoreError
        from urllib3.exceptions import HTTPError

        resp = self._call(self.client.get_object, key, Bucket=self.bucket, Key=self._k(key))
        return ZoneReader(resp["Body"], self.url, key, (BotoCoreError, HTTPError, OSError))

    def head(self, key: str) -> ObjectInfo | None:
        try:
            resp = self._call(self.client.head_object, key, Bucket=self.bucket, Key=self._k(key))
        except ZoneKeyMissing:
            return None
        return ObjectInfo(key, int(resp["ContentLength"]), resp["LastModified"].timestamp(), self._etag(resp))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        check_prefix(prefix)
        full = (f"{self.prefix}/" if self.prefix else "") + prefix
        strip = len(self.prefix) + 1 if self.prefix else 0
        token = None
        while True:
            kw = dict(Bucket=self.bucket, Prefix=full)
            if token:
                kw["ContinuationToken"] = token
            resp = self._call(self.client.list_objects_v2, None, **kw)
            for o in resp.get("Contents", []):
                yield ObjectInfo(o["Key"][strip:], int(o["Size"]), o["LastModified"].timestamp(),
                                 o.get("ETag", "").strip('"') or None)
            if not resp.get("IsTruncated"):
                return
            token = resp["NextContinuationToken"]

    # writes --------------------------------------------------------------------------------
    def put(self, key: str, data: bytes, *, if_none_match: bool = False, if_match: str | None = None) -> str:
        kw = dict(Bucket=self.bucket, Key=self._k(key), Body=bytes(data), ContentType="application/octet-stream")
        if if_none_match:
            kw["IfNoneMatch"] = "*"
        if if_match is not None:
            kw["IfMatch"] = '"' + if_match.strip('"') + '"'
        try:
            resp = self._call(self.client.put_object, key, **kw)
        except ZoneKeyMissing:  # If-Match on an absent key: S3 answers 404
            raise PreconditionFailed(key) from None
        return self._etag(resp) or ""

    def put_file(self, key: str, path: str, *, progress: "Callable[[int], None] | None" = None) -> str:
        size = os.path.getsize(path)
        if size <= self.multipart_threshold:
            from ..packstream import ConcatReader, Segment

            with ConcatReader([Segment("", os.fspath(path), 0, size)], progress) as body:
                return self.put_stream(key, body, size)
        return self._put_file_multipart(key, path, progress=progress)

    @property
    def supports_put_stream(self) -> bool:
        return True

    def put_stream(self, key: str, stream: BinaryIO, size: int) -> str:
        """Store ``size`` bytes read from the seekable ``stream`` (from its start) in one PUT with
        a known Content-Length; return the etag. The stream is re-read from the start on a retry.
        Used for packs streamed from their chunk files (no temp file, see push.py); a value above
        ``single_put_limit`` (S3's 5 GiB) goes up as a multipart upload of ``part_size`` parts,
        one at a time from the same stream."""
        if size > self.single_put_limit:
            return self._put_stream_multipart(key, stream, size)
        stream.seek(0)
        resp = self._call(self.client.put_object, key, Bucket=self.bucket, Key=self._k(key), Body=stream,
                          ContentLength=size, ContentType="application/octet-stream")
        return self._etag(resp) or ""

    def _put_stream_multipart(self, key: str, stream: BinaryIO, size: int) -> str:
        full = self._k(key)
        part = max(self.part_size, -(-size // 10000), 5 * MiB)
        up = self._call(self.client.create_multipart_upload, key, Bucket=self.bucket, Key=full,
                        ContentType="application/octet-stream")["UploadId"]
        try:
            parts = []
            for n, off in enumerate(range(0, size, part), start=1):
                body = _Window(stream, off, min(part, size - off))
                r = self._call(self.client.upload_part, key, Bucket=self.bucket, Key=full, UploadId=up,
                               PartNumber=n, Body=body, ContentLength=body.size)
                parts.append({"ETag": r["ETag"], "PartNumber": n})
            resp = self._call(self.client.complete_multipart_upload, key, Bucket=self.bucket, Key=full,
                              UploadId=up, MultipartUpload={"Parts": parts})
        except BaseException:
            try:
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=full, UploadId=up)
            except Exception:
                pass
            raise
        return self._etag(resp) or ""

    def _put_file_multipart(self, key: str, path: str, *, progress: "Callable[[int], None] | None" = None) -> str:
        """Above ``multipart_threshold``: a parallel multipart upload streamed by s3transfer."""
        from boto3.s3.transfer import ProgressCallbackInvoker, TransferConfig, create_transfer_manager
        from botocore.exceptions import BotoCoreError, ClientError

        full = self._k(key)
        config = TransferConfig(
            multipart_threshold=self.multipart_threshold,
            multipart_chunksize=self.part_size,
            max_concurrency=self.max_concurrency,
            use_threads=True,
            preferred_transfer_client="classic",
        )
        subscribers = [ProgressCallbackInvoker(progress)] if progress else None
        manager = create_transfer_manager(self.client, config)
        try:
            with manager:
                future = manager.upload(os.fspath(path), self.bucket, full,
                                        extra_args={"ContentType": "application/octet-stream"},
                                        subscribers=subscribers)
                future.result()
        except (BotoCoreError, ClientError) as e:
            raise self._error(e, key) from None
        info = self.head(key)
        if info is None:
            raise ZoneError(f"{self.url}: {key} is missing right after its upload")
        return info.etag or ""

    def delete(self, key: str) -> None:
        self._call(self.client.delete_object, key, Bucket=self.bucket, Key=self._k(key))

    # clock, urls, cloud ----------------------------------------------------------------------
    def now(self) -> float:
        """The store's clock: the ``Date`` of its latest answer, corrected by the local clock since."""
        if self._clock_offset is None or time.time() - self._clock_read_at > CLOCK_REFRESH:
            try:
                self._call(self.client.head_bucket, None, Bucket=self.bucket)
            except ZoneKeyMissing:
                raise ZoneError(f"{self.url}: bucket {self.bucket} does not exist") from None
        if self._clock_offset is None:  # a store that sends no Date header
            return time.time()
        return time.time() + self._clock_offset

    def public_url(self, key: str) -> str:
        """An http(s) URL of ``key``: virtual-host style on AWS, path style on other endpoints."""
        path = urllib.parse.quote(self._k(key), safe="/")
        endpoint = self.endpoint.rstrip("/")
        host = urllib.parse.urlparse(endpoint).hostname or ""
        if host == "amazonaws.com" or host.endswith(".amazonaws.com"):
            if "." in self.bucket:  # a dotted bucket breaks the wildcard TLS certificate
                return f"https://s3.amazonaws.com/{self.bucket}/{path}"
            return f"https://{self.bucket}.s3.amazonaws.com/{path}"
        return f"{endpoint}/{self.bucket}/{path}"

    def siblings(self) -> Iterator[Zone]:
        loc = self.location
        if not loc.in_cloud:
            return iter(())
        root_prefix = loc.cloud_root[len("s3://"):].partition("/")[2].strip("/")
        zones_prefix = (root_prefix + "/" if root_prefix else "") + "zones/"
        out = []
        for user_prefix in self._common_prefixes(zones_prefix):
            for zone_prefix in self._common_prefixes(user_prefix):
                user, name = zone_prefix.rstrip("/").split("/")[-2:]
                if not (NAME_RE.match(user) and NAME_RE.match(name)):
                    continue
                if zone_prefix.rstrip("/") == self.prefix:
                    continue
                out.append(S3Zone(f"s3://{self.bucket}/{zone_prefix.rstrip('/')}", client=self.client,
                                  multipart_threshold=self.multipart_threshold, part_size=self.part_size,
                                  max_concurrency=self.max_concurrency))
        return iter(out)

    def _common_prefixes(self, prefix: str) -> list[str]:
        out, token = [], None
        while True:
            kw = dict(Bucket=self.bucket, Prefix=prefix, Delimiter="/")
            if token:
                kw["ContinuationToken"] = token
            resp = self._call(self.client.list_objects_v2, None, **kw)
            out += [p["Prefix"] for p in resp.get("CommonPrefixes", [])]
            if not resp.get("IsTruncated"):
                return sorted(out)
            token = resp["NextContinuationToken"]

    def close(self) -> None:
        if self._owns_client:
            self.client.close()


class _Window:
    """``size`` bytes at ``offset`` of a seekable stream, as a seekable stream of its own (one
    part of a multipart upload)."""

    def __init__(self, stream: BinaryIO, offset: int, size: int) -> None:
        self._s, self._off, self.size, self._pos = stream, offset, size, 0

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = 0) -> int:
        self._pos = max(0, {0: 0, 1: self._pos, 2: self.size}[whence] + offset)
        return self._pos

    def signal_not_transferring(self) -> None:
        if hasattr(self._s, "signal_not_transferring"):
            self._s.signal_not_transferring()

    def signal_transferring(self) -> None:
        if hasattr(self._s, "signal_transferring"):
            self._s.signal_transferring()

    def read(self, n: int = -1) -> bytes:
        left = self.size - self._pos
        n = left if n is None or n < 0 else min(n, left)
        if n <= 0:
            return b""
        self._s.seek(self._off + self._pos)
        data = self._s.read(n)
        self._pos += len(data)
        return data
