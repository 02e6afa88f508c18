"""Which store a bucket name means, for requests that name buckets (the face-detection
API's ``Video.S3Object.Bucket``), and which bucket names a caller may use at all."""

from __future__ import annotations

from veil.errors import ObjectNotFoundError
from veil.storage.base import Storage
from veil.storage.local import LocalStorage
from veil.storage.s3 import S3Storage


def may_read(bucket: str, key: str, input: Storage, allowed: frozenset[str]) -> bool:
    """Whether a caller may have veil read ``key`` in ``bucket``: from the input (its
    bucket, under its prefix; with a folder store, the folder's name) or from a bucket
    the operator listed in ``allowed``.

    veil reads with its own credentials, which may reach far more than the input: a
    caller who could name any bucket would read through veil what it may not read
    itself (a confused deputy)."""
    if bucket in allowed:
        return True
    if isinstance(input, S3Storage):
        return bucket == input.bucket and key.startswith(input.prefix)
    return isinstance(input, LocalStorage) and bucket == input.root.name


def bucket_store(bucket: str, input: Storage, output: Storage) -> Storage:
    """Another bucket on the input's S3 endpoint or, with folder stores, the input or
    output folder of that name. Whether a caller may name it is ``may_read``'s to say."""
    if isinstance(input, S3Storage):
        return S3Storage(bucket, "", endpoint_url=input.endpoint_url)
    for store in (input, output):
        if isinstance(store, LocalStorage) and store.root.name == bucket:
            return store
    raise ObjectNotFoundError(f"s3://{bucket}", None, "no such bucket")
