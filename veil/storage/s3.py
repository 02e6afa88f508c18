"""Any S3-compatible bucket (AWS S3, MinIO, SeaweedFS, Ceph, R2) through boto3."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from veil.errors import ObjectChangedError, ObjectNotFoundError, StorageError
from veil.storage.base import ObjectInfo, Storage, check_key

_NOT_FOUND = {"404", "NoSuchKey", "NoSuchBucket", "NotFound"}
_TRANSIENT = {
    "500",
    "502",
    "503",
    "504",
    "SlowDown",
    "InternalError",
    "ServiceUnavailable",
    "RequestTimeout",
}


def _credentials_session(endpoint_url: str | None) -> Any:
    """A botocore session whose credential lookup stays on this machine for a store that
    is not AWS (an ``endpoint_url``): without credentials in the environment or
    ``~/.aws``, botocore would next ask the cloud's metadata addresses (169.254.169.254,
    the container credentials endpoint), a connection the user never configured. On AWS
    itself (no endpoint) an instance or container role is the usual credential, so there
    the lookup is kept."""
    import botocore.session

    session = botocore.session.get_session()
    if endpoint_url is not None:
        resolver = session.get_component("credential_provider")
        for provider in ("container-role", "iam-role"):
            resolver.remove(provider)
    return session


class S3Storage(Storage):
    """Objects under ``prefix`` in ``bucket``; veil's keys are relative to the prefix.

    Credentials and region come from boto3's usual chain (``AWS_ACCESS_KEY_ID`` and
    friends, ``~/.aws``). A PUT, multipart included, makes an object appear whole or not
    at all, so outputs are uploaded straight to their key.
    """

    def __init__(self, bucket: str, prefix: str = "", *, endpoint_url: str | None = None) -> None:
        import boto3
        from botocore.config import Config

        self.bucket = bucket
        self.endpoint_url = endpoint_url
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.url = f"s3://{bucket}/{self.prefix}".rstrip("/")
        config = Config(
            retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=60
        )
        session = boto3.session.Session(botocore_session=_credentials_session(endpoint_url))
        self.client: Any = session.client("s3", endpoint_url=endpoint_url, config=config)

    def _name(self, key: str) -> str:
        return self.prefix + check_key(key)

    @contextlib.contextmanager
    def _translated(self, key: str | None) -> Iterator[None]:
        """botocore's errors, raised inside, come out as veil's ``StorageError``s."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            yield
        except (BotoCoreError, ClientError) as exc:
            raise self._error(exc, key) from exc

    def _error(self, exc: Exception, key: str | None) -> StorageError:
        from botocore.exceptions import BotoCoreError, ClientError

        if isinstance(exc, ClientError):
            code = str(exc.response.get("Error", {}).get("Code", ""))
            message = exc.response.get("Error", {}).get("Message") or code
            if code in ("412", "PreconditionFailed"):
                return ObjectChangedError(self.url, key)
            if code in _NOT_FOUND:
                return ObjectNotFoundError(
                    self.url, key, "no such object" if key else "no such bucket"
                )
            return StorageError(self.url, key, f"{code}: {message}", transient=code in _TRANSIENT)
        if isinstance(exc, BotoCoreError):  # connection refused, timeouts, ...
            return StorageError(self.url, key, str(exc), transient=True)
        return StorageError(self.url, key, repr(exc), transient=False)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        with self._translated(None):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix + prefix
            )
            for page in pages:
                for item in page.get("Contents", []):
                    key = item["Key"][len(self.prefix) :]
                    if key and not key.endswith("/"):
                        yield ObjectInfo(key, int(item["Size"]), str(item["ETag"]).strip('"'))

    def stat(self, key: str) -> ObjectInfo:
        with self._translated(key):
            head = self.client.head_object(Bucket=self.bucket, Key=self._name(key))
        return ObjectInfo(key, int(head["ContentLength"]), str(head["ETag"]).strip('"'))

    def download(self, key: str, path: Path, etag: str | None = None) -> ObjectInfo:
        info = self.stat(key)
        if etag is not None and info.etag != etag:
            raise ObjectChangedError(self.url, key)
        # One GET with If-Match: a new version stored after the check fails the download
        # (412) instead of being what we read. (download_file takes no If-Match.)
        with self._translated(key), path.open("wb") as out:
            body = self.client.get_object(
                Bucket=self.bucket, Key=self._name(key), IfMatch=f'"{info.etag}"'
            )["Body"]
            for chunk in body.iter_chunks(1024 * 1024):
                out.write(chunk)
        return info

    def read_range(self, key: str, start: int, stop: int, etag: str) -> bytes:
        if stop <= start:
            return b""
        with self._translated(key):
            answer = self.client.get_object(
                Bucket=self.bucket,
                Key=self._name(key),
                IfMatch=f'"{etag}"',
                Range=f"bytes={start}-{stop - 1}",
            )
            with contextlib.closing(answer["Body"]) as body:
                # A server that ignores Range sends the whole object: never read it all.
                if not str(answer.get("ContentRange", "")).startswith(f"bytes {start}-"):
                    raise StorageError(
                        self.url, key, "the server ignored a range request", transient=False
                    )
                return bytes(body.read(stop - start))

    def upload(self, path: Path, key: str) -> ObjectInfo:
        with self._translated(key):
            self.client.upload_file(str(path), self.bucket, self._name(key))
        return self.stat(key)

    def overlaps(self, other: Storage) -> bool:
        if not isinstance(other, S3Storage):
            return False
        same_bucket = (self.endpoint_url, self.bucket) == (other.endpoint_url, other.bucket)
        return same_bucket and (
            self.prefix.startswith(other.prefix) or other.prefix.startswith(self.prefix)
        )

    def delete(self, key: str) -> None:
        with self._translated(key):
            self.client.delete_object(Bucket=self.bucket, Key=self._name(key))
