"""The ``Storage`` interface shared by every backend."""

from __future__ import annotations

import abc
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from veil.errors import InvalidKeyError


@dataclass(frozen=True)
class ObjectInfo:
    """One stored object: its key, size in bytes and a version tag (ETag or equivalent)
    that changes whenever its content does."""

    key: str
    size: int
    etag: str


def check_key(key: str) -> str:
    """``key`` if it names an object inside the store; ``InvalidKeyError`` otherwise."""
    try:
        encoded = key.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates, from JSON's \ud800 escapes
        raise InvalidKeyError(key, "keys must be valid Unicode text") from None
    if not key or len(encoded) > 1024:
        raise InvalidKeyError(key, "keys must be 1 to 1024 bytes (UTF-8)")
    if any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in key):
        # Line breaks and terminal escapes in a key would forge lines on a console.
        raise InvalidKeyError(key, "keys may not contain control characters")
    if "\x00" in key or "\\" in key:
        raise InvalidKeyError(key, "keys may not contain NUL or backslashes")
    if key.startswith("/"):
        raise InvalidKeyError(key, "keys may not start with '/'")
    parts = key.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise InvalidKeyError(key, "keys may not contain empty, '.' or '..' segments")
    return key


class Storage(abc.ABC):
    """A bucket or folder of objects addressed by ``/``-separated keys."""

    url: str

    @abc.abstractmethod
    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every object whose key starts with ``prefix``."""

    @abc.abstractmethod
    def stat(self, key: str) -> ObjectInfo:
        """The object's info; ``ObjectNotFoundError`` if there is none."""

    @abc.abstractmethod
    def download(self, key: str, path: Path, etag: str | None = None) -> ObjectInfo:
        """Copy the object to a local file; with ``etag``, only that version of it
        (``ObjectChangedError`` once the key holds other bytes)."""

    @abc.abstractmethod
    def read_range(self, key: str, start: int, stop: int, etag: str) -> bytes:
        """Bytes ``start`` to ``stop`` (not included) of version ``etag`` of the object
        (``ObjectChangedError`` once the key holds other bytes), the rest not read: how a
        segment reads its part of a video in place (``veil.storage.ranged``)."""

    @abc.abstractmethod
    def upload(self, path: Path, key: str) -> ObjectInfo:
        """Store a local file as ``key``, so that readers see it whole or not at all."""

    def upload_moving(self, path: Path, key: str) -> ObjectInfo:
        """Store a local file its owner no longer needs as ``key``; the file is gone
        afterwards, whether or not this succeeded. Stores that can, move it."""
        try:
            return self.upload(path, key)
        finally:
            path.unlink(missing_ok=True)

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object if it exists."""

    def overlaps(self, other: Storage) -> bool:
        """Whether some object would be in both stores (the same folder or bucket, or one
        inside the other). Stores of different kinds never overlap."""
        return other is self

    def exists(self, key: str) -> bool:
        from veil.errors import ObjectNotFoundError

        try:
            self.stat(key)
        except ObjectNotFoundError:
            return False
        return True
