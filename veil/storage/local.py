"""A folder as a bucket: the embedded default."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

from veil.errors import ObjectNotFoundError, StorageError
from veil.storage.base import ObjectInfo, Storage, check_key

PARTIAL_SUFFIX = ".veil-partial"


class LocalStorage(Storage):
    """Objects are files under ``root``; a key's ``/`` separates folders.

    The version tag is the file's size and modification time in nanoseconds, which
    changes when a file is replaced. Files being written by veil (``*.veil-partial``) and
    hidden files (a leading ``.`` in any segment) are not listed.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()
        self.url = self.root.as_uri()

    def _path(self, key: str) -> Path:
        path = (self.root / check_key(key)).resolve()
        # check_key already refuses '..'; this also refuses a symlink that leads out.
        if self.root not in path.parents:
            raise ObjectNotFoundError(self.url, key, "outside the storage folder")
        return path

    def _info(self, key: str, path: Path) -> ObjectInfo:
        st = path.stat()
        return ObjectInfo(key, st.st_size, f"{st.st_size:x}-{st.st_mtime_ns:x}")

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        if not self.root.is_dir():
            raise ObjectNotFoundError(self.url, None, "folder does not exist")
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                if name.startswith(".") or name.endswith(PARTIAL_SUFFIX):
                    continue
                path = Path(dirpath) / name
                key = path.relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    try:
                        yield self._info(key, path)
                    except FileNotFoundError:
                        continue  # removed while listing

    def stat(self, key: str) -> ObjectInfo:
        path = self._path(key)
        try:
            if path.is_file():
                return self._info(key, path)
        except OSError as exc:
            raise StorageError(self.url, key, exc.strerror or str(exc), transient=True) from exc
        raise ObjectNotFoundError(self.url, key)

    def download(self, key: str, path: Path) -> ObjectInfo:
        info = self.stat(key)
        try:
            shutil.copyfile(self._path(key), path)
        except FileNotFoundError as exc:
            raise ObjectNotFoundError(self.url, key) from exc
        except OSError as exc:
            raise StorageError(self.url, key, exc.strerror or str(exc), transient=True) from exc
        return info

    def upload(self, path: Path, key: str) -> ObjectInfo:
        target = self._path(key)
        partial = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}{PARTIAL_SUFFIX}")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, partial)
            os.replace(partial, target)
        except OSError as exc:
            partial.unlink(missing_ok=True)
            raise StorageError(self.url, key, exc.strerror or str(exc), transient=True) from exc
        return self._info(key, target)

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)
