"""An in-memory store for unit tests."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

from veil.errors import ObjectChangedError, ObjectNotFoundError
from veil.storage.base import ObjectInfo, Storage, check_key


class MemoryStorage(Storage):
    def __init__(self, name: str = "memory") -> None:
        self.url = f"memory://{name}"
        self.objects: dict[str, bytes] = {}

    def _info(self, key: str) -> ObjectInfo:
        data = self.objects[key]
        return ObjectInfo(key, len(data), hashlib.md5(data).hexdigest())

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        for key in sorted(self.objects):
            if key.startswith(prefix):
                yield self._info(key)

    def stat(self, key: str) -> ObjectInfo:
        if check_key(key) not in self.objects:
            raise ObjectNotFoundError(self.url, key)
        return self._info(key)

    def download(self, key: str, path: Path, etag: str | None = None) -> ObjectInfo:
        info = self.stat(key)
        if etag is not None and info.etag != etag:
            raise ObjectChangedError(self.url, key)
        path.write_bytes(self.objects[key])
        return info

    def read_range(self, key: str, start: int, stop: int, etag: str) -> bytes:
        if self.stat(key).etag != etag:
            raise ObjectChangedError(self.url, key)
        return self.objects[key][start:stop]

    def upload(self, path: Path, key: str) -> ObjectInfo:
        self.objects[check_key(key)] = path.read_bytes()
        return self._info(key)

    def delete(self, key: str) -> None:
        self.objects.pop(check_key(key), None)
