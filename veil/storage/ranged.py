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
import uuid
from collections import OrderedDict
from pathlib import Path
from typing import BinaryIO

from veil.storage.base import Storage
from veil.video.source import ReadInPlace

BLOCK = 4 * 1024 * 1024
KEPT = 6
"""Blocks kept of the part being read, besides the first and the last."""
BUDGET = 2
"""Reading in place stops paying off past this many times the object's size: a file
whose index sends the reader back and forth between far-apart places (a crafted one could
make every packet cost a block) is then copied whole, once, and read from the copy."""


class StoredVideo(ReadInPlace):
    """Version ``etag`` of ``key`` in ``store`` (``size`` bytes); a read after the key
    was given other bytes raises ``ObjectChangedError``."""

    def __init__(
        self,
        store: Storage,
        key: str,
        etag: str,
        size: int,
        *,
        spill: Path,
        block: int | None = None,
    ) -> None:
        self.store, self.name, self.etag, self.size = store, key, etag, size
        self.spill = spill
        """The folder that gets the whole copy, if reading in place goes over budget."""
        self.block = block or BLOCK
        self.fetched = 0
        """Bytes read from the store so far."""
        self.copy: Path | None = None
        """The whole copy, once made."""
        self._blocks: OrderedDict[int, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def open(self) -> BinaryIO:
        return _RangedFile(self)  # type: ignore[return-value]  # a RawIOBase reads as one

    def read_block(self, number: int) -> bytes:
        start = number * self.block
        stop = min(self.size, start + self.block)
        with self._lock:
            if number in self._blocks:
                self._blocks.move_to_end(number)
                return self._blocks[number]
            if self.copy is None and self.fetched + self.block > BUDGET * self.size:
                self.spill.mkdir(parents=True, exist_ok=True)
                whole = self.spill / f"whole.{uuid.uuid4().hex[:8]}"
                self.store.download(self.name, whole, etag=self.etag)
                self.fetched += self.size
                self.copy = whole
            if self.copy is not None:
                with self.copy.open("rb") as whole_file:
                    return os.pread(whole_file.fileno(), stop - start, start)
        data = self.store.read_range(self.name, start, stop, self.etag)
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
        number, offset = divmod(self.position, self.video.block)
        data = self.video.read_block(number)
        count = min(len(buffer), len(data) - offset)
        buffer[:count] = data[offset : offset + count]
        self.position += count
        return count
