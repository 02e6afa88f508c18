"""Where a video is read from: a local file, or a stored object read in place.

A job's segment on another machine reads only its own part of the input (and the index
that says where that part is) instead of a copy of the whole: ``veil.storage.ranged``
gives the object as a ``ReadInPlace``, and the video layer opens it as FFmpeg opens a
file."""

from __future__ import annotations

import abc
from pathlib import Path
from typing import BinaryIO


class ReadInPlace(abc.ABC):
    """A video read where it is kept, a part at a time. The checks that need the whole
    file (its signature, its boxes) were made where it was validated."""

    name: str
    """What messages call it (an object's key)."""

    @abc.abstractmethod
    def open(self) -> BinaryIO:
        """A seekable binary file of its own over the video."""


VideoSource = Path | ReadInPlace
"""A local video file, or a stored one read in place."""


def video_source(source: str | Path | ReadInPlace) -> VideoSource:
    return source if isinstance(source, ReadInPlace) else Path(source)


def shown_as(source: VideoSource) -> Path:
    """What errors about ``source`` name: its path, or its key."""
    return Path(source.name) if isinstance(source, ReadInPlace) else source
