"""Which store a bucket name means, for requests that name buckets (the face-detection
API's ``Video.S3Object.Bucket``)."""

from __future__ import annotations

from veil.errors import ObjectNotFoundError
from veil.storage.base import Storage
from veil.storage.local import LocalStorage
from veil.storage.s3 import S3Storage


def bucket_store(bucket: str, input: Storage, output: Storage) -> Storage:
    """Another bucket on the input's S3 endpoint or, with folder stores, the input or
    output folder of that name."""
    if isinstance(input, S3Storage):
        return S3Storage(bucket, "", endpoint_url=input.endpoint_url)
    for store in (input, output):
        if isinstance(store, LocalStorage) and store.root.name == bucket:
            return store
    raise ObjectNotFoundError(f"s3://{bucket}", None, "no such bucket")
