"""Where videos come from and go to: a folder or any S3-compatible bucket, behind one interface.

Keys are data, never paths: ``check_key`` refuses any key that could leave its bucket or
folder (``..`` segments, absolute paths, backslashes, NUL), and every backend calls it.
"""

from __future__ import annotations

from veil.storage.base import ObjectInfo, Storage, check_key
from veil.storage.buckets import bucket_store
from veil.storage.local import LocalStorage
from veil.storage.memory import MemoryStorage
from veil.storage.s3 import S3Storage
from veil.storage.url import storage_from_url

__all__ = [
    "LocalStorage",
    "MemoryStorage",
    "ObjectInfo",
    "S3Storage",
    "Storage",
    "bucket_store",
    "check_key",
    "storage_from_url",
]
