"""A folder as a bucket: the embedded default."""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

from veil.errors import InvalidKeyError, ObjectChangedError, ObjectNotFoundError, StorageError
from veil.storage.base import ObjectInfo, Storage, check_key

PARTIAL_SUFFIX = ".veil-partial"
NAME_MAX = 255
"""Bytes in one file name on the file systems veil runs on (ext4, XFS, APFS, NTFS)."""


def fitting_name(stem: str, tail: str) -> str:
    """``stem + tail``, the stem cut short (whole characters) where the name would pass
    ``NAME_MAX`` bytes: a name already at the limit has no room for a tail."""
    while len(f"{stem}{tail}".encode()) > NAME_MAX:
        stem = stem[:-1]
    return stem + tail


class LocalStorage(Storage):
    """Objects are files under ``root``; a key's ``/`` separates folders.

    The version tag is the file's size and modification time in nanoseconds, which
    changes when a file is replaced. Files being written by veil (``*.veil-partial``) and
    hidden files (a leading ``.`` in any segment) are not listed.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()
        self.url = self.root.as_uri()
        # Errors name the folder, never the server's path to it: their messages reach
        # API clients and webhooks.
        self.label = self.root.name or "/"

    def _path(self, key: str) -> Path:
        check_key(key)
        if any(len(part.encode()) > NAME_MAX for part in key.split("/")):
            raise InvalidKeyError(key, f"a folder store's names are at most {NAME_MAX} bytes")
        try:
            path = (self.root / key).resolve()
        except RuntimeError:  # a symlink loop (Python 3.11 says so this way)
            raise ObjectNotFoundError(self.label, key, "a symlink loop") from None
        # check_key already refuses '..'; this also refuses a symlink that leads out.
        if self.root not in path.parents:
            raise ObjectNotFoundError(self.label, key, "outside the storage folder")
        return path

    def _info(self, key: str, found: Path | os.stat_result) -> ObjectInfo:
        st = found.stat() if isinstance(found, Path) else found
        return ObjectInfo(key, st.st_size, f"{st.st_size:x}-{st.st_mtime_ns:x}")

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        if not self.root.is_dir():
            raise ObjectNotFoundError(self.label, None, "folder does not exist")
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
                    except (OSError, RuntimeError):
                        continue  # removed while listing, or a link that leads nowhere

    def stat(self, key: str) -> ObjectInfo:
        path = self._path(key)
        try:
            if path.is_file():
                return self._info(key, path)
        except OSError as exc:
            raise StorageError(self.label, key, exc.strerror or str(exc), transient=True) from exc
        raise ObjectNotFoundError(self.label, key)

    def download(self, key: str, path: Path, etag: str | None = None) -> ObjectInfo:
        source = self._path(key)
        try:
            # The version is read from the open file, so a file replaced between the check
            # and the copy cannot slip in: the copy reads the file that was checked.
            with source.open("rb") as src:
                info = self._info(key, os.fstat(src.fileno()))
                if etag is not None and info.etag != etag:
                    raise ObjectChangedError(self.label, key)
                with path.open("wb") as dst:
                    shutil.copyfileobj(src, dst, 1024 * 1024)
        except (FileNotFoundError, IsADirectoryError) as exc:
            raise ObjectNotFoundError(self.label, key) from exc
        except OSError as exc:
            raise StorageError(self.label, key, exc.strerror or str(exc), transient=True) from exc
        return info

    def read_range(self, key: str, start: int, stop: int, etag: str) -> bytes:
        source = self._path(key)
        try:
            with source.open("rb") as src:
                if self._info(key, os.fstat(src.fileno())).etag != etag:
                    raise ObjectChangedError(self.label, key)
                return os.pread(src.fileno(), max(0, stop - start), start)
        except (FileNotFoundError, IsADirectoryError) as exc:
            raise ObjectNotFoundError(self.label, key) from exc
        except OSError as exc:
            raise StorageError(self.label, key, exc.strerror or str(exc), transient=True) from exc

    def upload(self, path: Path, key: str) -> ObjectInfo:
        target = self._path(key)
        # Not named after the target: a name at the file system's limit has no room for more.
        partial = target.with_name(f".{uuid.uuid4().hex[:12]}{PARTIAL_SUFFIX}")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, partial)
            os.replace(partial, target)
        except (NotADirectoryError, FileExistsError, IsADirectoryError) as exc:
            # A file is where the key needs a folder, or a folder where it needs a file.
            with contextlib.suppress(OSError):
                partial.unlink(missing_ok=True)
            raise InvalidKeyError(key, "another object of the store is in its way") from exc
        except OSError as exc:
            with contextlib.suppress(OSError):
                partial.unlink(missing_ok=True)
            raise StorageError(self.label, key, exc.strerror or str(exc), transient=True) from exc
        return self._info(key, target)

    def upload_moving(self, path: Path, key: str) -> ObjectInfo:
        # A rename when the file is on the same file system (the upload folder is in the
        # service's data folder, as the input folder is by default): written once.
        try:
            target = self._path(key)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, target)
        except InvalidKeyError:
            path.unlink(missing_ok=True)
            raise
        except OSError:
            return super().upload_moving(path, key)
        return self._info(key, target)

    def delete(self, key: str) -> None:
        path = self._path(key)
        path.unlink(missing_ok=True)
        if key.startswith("."):
            # Under a hidden top folder (the service's own: segment pieces), folders go
            # with their last object, as prefixes do in S3. Users' folders stay.
            for folder in path.parents:
                if folder == self.root:  # ``_path`` keeps every key under it
                    break
                try:
                    folder.rmdir()
                except OSError:  # not empty (or gone): its parents are not either
                    break

    def overlaps(self, other: Storage) -> bool:
        if not isinstance(other, LocalStorage):
            return False
        return self.root.is_relative_to(other.root) or other.root.is_relative_to(self.root)
