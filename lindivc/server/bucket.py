"""The gateway's view of its bucket: boto3 calls, with S3 errors turned into a few named outcomes.

The gateway keeps no state of its own; everything it knows is in this bucket (docs/gateway.md).
All methods are blocking (boto3); the app calls them from a thread pool.
"""
from __future__ import annotations

import email.utils
from dataclasses import dataclass
from typing import BinaryIO, Iterator

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

READ_BLOCK = 1 << 20


class BucketError(Exception):
    """An S3 failure the gateway reports as 502; ``status`` overrides that when S3 said why."""

    def __init__(self, message: str, status: int = 502) -> None:
        self.status = status
        super().__init__(message)


class KeyAbsent(BucketError):
    def __init__(self, key: str) -> None:
        super().__init__(f"{key} not found", 404)


class ConditionFailed(BucketError):
    def __init__(self, key: str) -> None:
        super().__init__(f"conditional write of {key} failed: it changed concurrently", 412)


class RangeNotSatisfiable(BucketError):
    def __init__(self, key: str) -> None:
        super().__init__(f"requested range not satisfiable for {key}", 416)


@dataclass(frozen=True)
class StoredObject:
    """Head of one stored object. ``mtime`` is seconds since the epoch, by the store's clock."""

    key: str
    size: int
    mtime: float
    etag: str | None


@dataclass
class ObjectStream:
    """An open GET: the head, the served byte range (``content_range`` set for 206), the body."""

    info: StoredObject
    length: int
    content_range: str | None
    body: Iterator[bytes]


def _code(e: ClientError) -> str:
    return str(e.response.get("Error", {}).get("Code", ""))


def _status(e: ClientError) -> int:
    return int(e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)


class Bucket:
    """One S3 bucket (any S3-compatible endpoint), addressed by full keys."""

    def __init__(self, name: str, endpoint_url: str | None = None, *, multipart_threshold: int = 64 << 20,
                 multipart_chunksize: int = 16 << 20, max_connections: int = 64) -> None:
        self.name = name
        self.endpoint_url = endpoint_url
        self.multipart_threshold = multipart_threshold
        self.multipart_chunksize = multipart_chunksize
        self.client = boto3.session.Session().client(
            "s3", endpoint_url=endpoint_url,
            config=Config(max_pool_connections=max_connections, retries={"mode": "standard", "max_attempts": 4}),
        )

    # -- reads --------------------------------------------------------------------------------
    def head(self, key: str) -> StoredObject | None:
        try:
            r = self.client.head_object(Bucket=self.name, Key=key)
        except ClientError as e:
            if _status(e) == 404 or _code(e) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise BucketError(f"S3 HEAD {key} failed: {_code(e) or _status(e)}") from None
        except BotoCoreError as e:
            raise BucketError(f"S3 unreachable: {type(e).__name__}") from None
        return StoredObject(key, int(r["ContentLength"]), r["LastModified"].timestamp(), r.get("ETag"))

    def open(self, key: str, range_header: str | None = None) -> ObjectStream:
        """GET ``key``, optionally one HTTP byte range (passed to S3, which answers it exactly)."""
        kw = {"Bucket": self.name, "Key": key}
        if range_header:
            kw["Range"] = range_header
        try:
            r = self.client.get_object(**kw)
        except ClientError as e:
            if _code(e) in ("NoSuchKey", "404", "NotFound") or _status(e) == 404:
                raise KeyAbsent(key) from None
            if _code(e) == "InvalidRange" or _status(e) == 416:
                raise RangeNotSatisfiable(key) from None
            raise BucketError(f"S3 GET {key} failed: {_code(e) or _status(e)}") from None
        except BotoCoreError as e:
            raise BucketError(f"S3 unreachable: {type(e).__name__}") from None
        length = int(r["ContentLength"])
        content_range = r.get("ContentRange")
        total = length
        if content_range and "/" in content_range:
            tail = content_range.rsplit("/", 1)[1]
            total = int(tail) if tail.isdigit() else length
        info = StoredObject(key, total, r["LastModified"].timestamp(), r.get("ETag"))
        body = r["Body"]

        def chunks() -> Iterator[bytes]:
            try:
                while True:
                    b = body.read(READ_BLOCK)
                    if not b:
                        break
                    yield b
            finally:
                body.close()

        return ObjectStream(info, length, content_range, chunks())

    def list(self, prefix: str, start_after: str | None = None, limit: int = 1000) -> tuple[list[StoredObject], bool]:
        """Up to ``limit`` objects under ``prefix`` in key order, after ``start_after``; and
        whether more follow."""
        kw = {"Bucket": self.name, "Prefix": prefix, "MaxKeys": limit}
        if start_after:
            kw["StartAfter"] = start_after
        try:
            r = self.client.list_objects_v2(**kw)
        except ClientError as e:
            raise BucketError(f"S3 LIST {prefix} failed: {_code(e) or _status(e)}") from None
        except BotoCoreError as e:
            raise BucketError(f"S3 unreachable: {type(e).__name__}") from None
        out = [StoredObject(o["Key"], int(o["Size"]), o["LastModified"].timestamp(), o.get("ETag"))
               for o in r.get("Contents", [])]
        return out, bool(r.get("IsTruncated"))

    def common_prefixes(self, prefix: str) -> list[str]:
        """The next path segment of every key under ``prefix`` (which ends with '/')."""
        out: list[str] = []
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.name, Prefix=prefix, Delimiter="/"):
                for cp in page.get("CommonPrefixes", []):
                    out.append(cp["Prefix"][len(prefix):].rstrip("/"))
        except ClientError as e:
            raise BucketError(f"S3 LIST {prefix} failed: {_code(e) or _status(e)}") from None
        except BotoCoreError as e:
            raise BucketError(f"S3 unreachable: {type(e).__name__}") from None
        return out

    def now(self) -> float:
        """The store's clock: the Date header of a cheap request to it."""
        try:
            r = self.client.head_bucket(Bucket=self.name)
        except ClientError as e:
            raise BucketError(f"S3 HEAD bucket failed: {_code(e) or _status(e)}") from None
        except BotoCoreError as e:
            raise BucketError(f"S3 unreachable: {type(e).__name__}") from None
        date = r.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
        if not date:
            raise BucketError("S3 sent no Date header")
        return email.utils.parsedate_to_datetime(date).timestamp()

    # -- writes -------------------------------------------------------------------------------
    def put(self, key: str, f: BinaryIO, size: int, *, if_none_match: bool = False,
            if_match: str | None = None, content_type: str = "application/octet-stream") -> str:
        """Store ``size`` bytes read from ``f`` (positioned at 0) at ``key``; return the new ETag.

        Conditional writes use S3's single PUT; others above ``multipart_threshold`` go multipart.
        """
        from boto3.s3.transfer import TransferConfig

        try:
            if (if_none_match or if_match) or size < self.multipart_threshold:
                kw = {"Bucket": self.name, "Key": key, "Body": f, "ContentLength": size, "ContentType": content_type}
                if if_none_match:
                    kw["IfNoneMatch"] = "*"
                if if_match:
                    kw["IfMatch"] = if_match
                return self.client.put_object(**kw)["ETag"]
            cfg = TransferConfig(multipart_threshold=self.multipart_threshold,
                                 multipart_chunksize=self.multipart_chunksize, use_threads=False)
            self.client.upload_fileobj(f, self.name, key, ExtraArgs={"ContentType": content_type}, Config=cfg)
        except ClientError as e:
            if _code(e) in ("PreconditionFailed", "ConditionalRequestConflict") or _status(e) in (409, 412):
                raise ConditionFailed(key) from None
            if _code(e) == "NoSuchKey" and if_match:
                raise ConditionFailed(key) from None
            raise BucketError(f"S3 PUT {key} failed: {_code(e) or _status(e)}") from None
        except BotoCoreError as e:
            raise BucketError(f"S3 unreachable: {type(e).__name__}") from None
        info = self.head(key)
        if info is None or info.etag is None:
            raise BucketError(f"S3 PUT {key}: object absent right after upload")
        return info.etag

    def delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.name, Key=key)
        except ClientError as e:
            if _code(e) in ("NoSuchKey",) or _status(e) == 404:
                return
            raise BucketError(f"S3 DELETE {key} failed: {_code(e) or _status(e)}") from None
        except BotoCoreError as e:
            raise BucketError(f"S3 unreachable: {type(e).__name__}") from None
