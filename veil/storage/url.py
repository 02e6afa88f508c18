"""Choosing a store by URL: ``s3://bucket/prefix``, ``file:///path``, a plain path, ``memory://``."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse

from veil.errors import OptionError
from veil.storage.base import Storage
from veil.storage.local import LocalStorage
from veil.storage.memory import MemoryStorage
from veil.storage.s3 import S3Storage


def storage_from_url(url: str, *, s3_endpoint: str | None = None) -> Storage:
    parsed = urlparse(url)
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise OptionError(f"{url}: an s3:// URL needs a bucket, e.g. s3://videos/incoming")
        return S3Storage(parsed.netloc, parsed.path, endpoint_url=s3_endpoint)
    if parsed.scheme == "file":
        return LocalStorage(Path(unquote(parsed.path)))
    if parsed.scheme == "memory":
        return MemoryStorage(parsed.netloc or "memory")
    if parsed.scheme in ("", "local") or len(parsed.scheme) == 1:  # a path (or C:\\...)
        return LocalStorage(Path(url))
    raise OptionError(f"{url}: unknown storage; use a folder, file://, or s3://bucket/prefix")
