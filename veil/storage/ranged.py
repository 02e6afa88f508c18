"""A stored object's one version read in place, a block at a time.

A segment on a machine without the job's copy of the input reads the index and its own
part through this, not the whole object (``veil.steps.segment_input``). Blocks are
large (4 MiB) so that a demuxer's small sequential reads cost one request a block, and a
few are kept, shared by every file opened over the object (the header is read again by
each opening)."""

from __future__ import annotations

import io
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from veil.errors import StorageError
from veil.storage.base import Storage
from veil.video.source import ReadInPlace

BLOCK = 4 * 1024 * 1024
KEPT = 6
"""Blocks kept of the part being read, besides the first and the last."""
BUDGET = 1
"""Reading in place stops paying off past the object's size in requests: a file whose
index sends the reader back and forth between far-apart places (a crafted one can make
every packet cost a block) is then read from a whole copy (``whole``) instead."""


class StoredVideo(ReadInPlace):
    """Version ``etag`` of ``key`` in ``store`` (``size`` bytes); a read after the key
    was given other bytes raises ``ObjectChangedError``. ``whole()`` gives a whole local
    copy of that version, asked for only if reading in place goes over ``BUDGET`` (the
    job's one copy on this machine, shared by its segments here)."""

    def __init__(
        self,
        store: Storage,
        key: str,
        etag: str,
        size: int,
        *,
        whole: Callable[[], Path],
        block: int | None = None,
    ) -> None:
        self.store, self.name, self.etag, self.size = store, key, etag, size
        self.whole = whole
        self.block = block or BLOCK
        self.fetched = 0
        """Bytes read from the store in ranges so far."""
        self.copy: Path | None = None
        """The whole copy, once asked for."""
        self._blocks: OrderedDict[int, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def open(self) -> BinaryIO:
        return _RangedFile(self)  # type: ignore[return-value]  # a RawIOBase reads as one

    def read_at(self, position: int, count: int) -> bytes:
        """Up to ``count`` bytes from ``position`` (fewer at a block's end)."""
        with self._lock:
            if self.copy is None and self.fetched + self.block > BUDGET * self.size:
                self.copy = self.whole()
            copy = self.copy
        if copy is not None:
            with copy.open("rb") as whole:
                return os.pread(whole.fileno(), count, position)
        number, offset = divmod(position, self.block)
        return self._block(number)[offset : offset + count]

    def _block(self, number: int) -> bytes:
        with self._lock:
            if number in self._blocks:
                self._blocks.move_to_end(number)
                return self._blocks[number]
        start = number * self.block
        stop = min(self.size, start + self.block)
        data = self.store.read_range(self.name, start, stop, self.etag)
        if len(data) != stop - start:
            raise StorageError(
                "store",
                self.name,
                f"asked for {stop - start} bytes, got {len(data)}",
                transient=True,
            )
        with self._lock:
            self.fetched += len(data)
            self._blocks[number] = data
            # The first and last blocks hold the header and the index (an MP4's moov, a
            # Matroska file's cues), which every opening reads again: those stay.
            ends = {0, (self.size - 1) // self.block}
            for old in [n for n in self._blocks if n not in ends][: -KEPT or None]:
                del self._blocks[old]
        return data


class _RangedFile(io.RawIOBase):
    """One opening of a ``StoredVideo``: a position of its own over the shared blocks."""

    def __init__(self, video: StoredVideo) -> None:
        self.video = video
        self.position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.video.size}
        if whence not in base:
            raise ValueError(f"unsupported whence {whence}")
        self.position = max(0, base[whence] + offset)
        return self.position

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        if self.position >= self.video.size:
            return 0
        data = self.video.read_at(self.position, len(buffer))
        buffer[: len(data)] = data
        self.position += len(data)
        return len(data)
