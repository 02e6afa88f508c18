"""Decoding: ``VideoReader`` hands out ``DecodedFrame``s (YUV planes, timestamp, RGB on
request, in display orientation) and the packets a writer copies (audio, subtitles...)."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
from collections.abc import Generator, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import av
import numpy as np

from veil.errors import (
    CorruptVideoError,
    FrameSizeError,
)
from veil.streams import packet_streams
from veil.video.index import Keyframe, packets_from
from veil.video.info import (
    Frame,
    check_frame_size,
    display_view,
    open_input,
    probe,
    to_display,
    video_stream,
)
from veil.video.source import ReadInPlace, shown_as, video_source


@dataclass(frozen=True)
class DecodedFrame:
    """One decoded frame with its timestamp, kept as the decoder gave it (YUV, coded
    orientation: half the memory of RGB, and ready for the encoder as it is); ``rgb()``
    turns it into the picture a player shows."""

    index: int
    picture: Any
    """The ``av.VideoFrame``."""
    pts: int | None
    time: float
    rotation: int = 0
    mirrored: bool = False

    @property
    def time_ms(self) -> int:
        return round(self.time * 1000)

    @property
    def nbytes(self) -> int:
        return sum(plane.buffer_size for plane in self.picture.planes)

    def rgb(self) -> Frame:
        """A new ``(height, width, 3)`` RGB array in display orientation."""
        picture = self.picture
        rgb = picture.reformat(format="rgb24", src_color_range=picture.color_range or None)
        return to_display(rgb.to_ndarray(), self.rotation, self.mirrored)

    def editable_copy(self) -> tuple[DecodedFrame, list[Frame], bool] | None:
        """A copy of this frame to draw on, its planes (luma, then the two half-size chroma
        planes) as views in display orientation, and whether its range is full (black is
        luma 0, not 16); ``None`` unless the picture is 8-bit 4:2:0 (``EDITABLE_FORMATS``).

        A copy, because the decoder's buffers may be pictures later frames are predicted
        from; each plane is copied once, a third of the bytes of one RGB frame."""
        picture = self.picture
        name = picture.format.name
        if name not in EDITABLE_FORMATS:
            return None
        copy = av.VideoFrame(picture.width, picture.height, name)
        copy.color_range = picture.color_range
        views = []
        for source, target in zip(picture.planes, copy.planes, strict=True):
            rows = plane_array(target)
            rows[:] = plane_array(source)
            views.append(display_view(rows, self.rotation, self.mirrored))
        full_range = name == "yuvj420p" or picture.color_range == 2
        return replace(self, picture=copy), views, full_range

    def grey(self) -> Frame:
        """The luma plane, coded orientation, as stored (no copy for 8-bit YUV): enough to
        tell how much the picture changed."""
        picture = self.picture
        name = picture.format.name
        if name.startswith(("yuv", "nv12", "gray")) and picture.format.components[0].bits == 8:
            return plane_array(picture.planes[0])
        return np.asarray(picture.to_ndarray(format="gray"), np.uint8)


EDITABLE_FORMATS = ("yuv420p", "yuvj420p")
"""Decoded formats a face can be hidden in without a trip through RGB (``editable_copy``):
8-bit 4:2:0, what nearly every camera and phone records."""


def plane_array(plane: Any) -> Frame:
    """An 8-bit plane's pixels as a ``(height, width)`` view of its buffer (rows padded to
    ``line_size`` in memory)."""
    rows = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
    return rows[:, : plane.width]


def return_frame_memory_to_the_system() -> None:
    """Make glibc give freed frame-sized buffers back to the system at once.

    glibc raises its mmap threshold each time a large block is freed, up to 32 MiB, after
    which 4K frames (12-25 MB) come from the heap and freed ones stay with the process:
    measured at 4K, 200 MB of peak memory. A fixed 1 MiB threshold keeps every frame
    buffer in its own mapping. A no-op where the C library is not glibc.
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(_M_MMAP_THRESHOLD, 1024 * 1024)
    except (OSError, AttributeError):
        pass


_M_MMAP_THRESHOLD = -3


class VideoReader:
    """Demuxes a video once: decoded video frames and the audio packets to copy.

    Iterating yields ``DecodedFrame`` for video and PyAV packets for audio, subtitles
    and cover art (``extra_streams``), in file order. Use as a context manager.
    """

    def __init__(self, path: str | Path | ReadInPlace, *, decode_threads: int = 0) -> None:
        self.source = video_source(path)
        self.path = shown_as(self.source)
        """What errors name: the file, or the stored object's key."""
        self.info = probe(self.source)
        self._container = open_input(self.source)
        self.video_stream = video_stream(self._container, self.path)
        self.video_stream.thread_type = "AUTO"
        self.video_stream.codec_context.thread_count = decode_threads
        self.audio_streams = list(self._container.streams.audio)
        # Subtitles and cover art, for the writer's ExtraStreams to copy or drop.
        self.extra_streams = packet_streams(self._container, self.video_stream)
        self.frames_decoded = 0
        context = self.video_stream.codec_context
        # The size probe checked; every decoded frame must keep it (``_same_size``).
        self._size: tuple[int, int] | None = (
            (context.width, context.height) if context.width and context.height else None
        )

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._container.close()

    def frames(self, start: Keyframe | None = None) -> Iterator[DecodedFrame]:
        """The video's frames alone (no other stream's packets), from the keyframe
        ``start`` on, numbered from its index; frames with earlier timestamps that the
        decoder gives after it (an open GOP's leading pictures) are skipped. Unlike
        iterating, no check that the file is whole: a part of it is read."""
        stream = self.video_stream
        rate = self.info.fps or 30.0
        index = 0 if start is None else start.index
        try:
            packets = (
                self._demux_from(start) if start is not None else self._container.demux(stream)
            )
            for packet in packets:
                for frame in packet.decode():
                    if start is not None and frame.pts is not None and frame.pts < start.pts:
                        continue
                    self._same_size(frame, index)
                    time = frame.time if frame.time is not None else index / rate
                    yield DecodedFrame(
                        index, frame, frame.pts, time, self.info.rotation, self.info.mirrored
                    )
                    index += 1
                    self.frames_decoded += 1
        except av.error.FFmpegError as exc:
            raise CorruptVideoError(
                self.path, f"corrupt or truncated video after frame {index} ({exc})"
            ) from exc

    def _same_size(self, frame: Any, index: int) -> None:
        """Refuse a frame whose size differs from the stream's: the limits, every box,
        the encoder and the report assume one size. A stream that switched to a huge
        picture after a few frames passed the header's check, cost minutes a frame, and
        its boxes were scaled by the first size (``FrameSizeError``)."""
        size = (frame.width, frame.height)
        if self._size is None:
            check_frame_size(self.path, *size)
            self._size = size
        elif size != self._size:
            raise FrameSizeError(
                self.path,
                f"the picture size changes at frame {index} (from {self._size[0]}x"
                f"{self._size[1]} to {size[0]}x{size[1]}); veil processes videos whose "
                "frames all have one size",
            )

    def _demux_from(self, start: Keyframe) -> Generator[Any, None, None]:
        """The video's packets from the keyframe ``start`` on. Seeking is exact in MP4 and
        Matroska (an index) but a search by time in a transport stream, which may land
        after the keyframe: each try seeks earlier (its decoding time, then a second
        before), the last one reads from the beginning."""
        stream = self.video_stream
        second = round(1 / stream.time_base) if stream.time_base else 90000
        before = start.dts if start.dts is not None else start.pts
        for target in (start.pts, before, before - second):
            self._container.seek(target, stream=stream, backward=True, any_frame=False)
            found = yield from packets_from(self._container.demux(stream), start, before)
            if found:
                return
        # The last resort: from the beginning, in a container of its own (a seek to the
        # start is by time too).
        with contextlib.closing(open_input(self.source)) as container:
            again = video_stream(container, self.path)
            again.thread_type = "AUTO"
            again.codec_context.thread_count = stream.codec_context.thread_count
            if not (yield from packets_from(container.demux(again), start, None)):
                raise CorruptVideoError(self.path, f"no keyframe at time {start.pts}")

    def other_packets(self) -> Iterator[Any]:
        """The packets of the audio and the other streams a writer may copy (subtitles,
        cover art), in file order, the video not decoded: what a join of separately
        encoded parts copies from the input once."""
        streams = [*self.audio_streams, *self.extra_streams]
        if not streams:
            return
        try:
            for packet in self._container.demux(*streams):
                if packet.stream.type == "audio":
                    if packet.dts is not None:
                        yield packet
                elif packet.size:
                    yield packet
        except av.error.FFmpegError as exc:
            raise CorruptVideoError(self.path, f"corrupt or truncated file ({exc})") from exc

    def __iter__(self) -> Iterator[DecodedFrame | Any]:
        stream = self.video_stream
        rate = self.info.fps or 30.0
        last_time = 0.0
        stored = 0  # the video's packets read: what the file holds, decodable or not
        try:
            for packet in self._container.demux(stream, *self.audio_streams, *self.extra_streams):
                if packet.stream.type == "audio":
                    if packet.dts is not None:
                        yield packet
                    continue
                if packet.stream.index != stream.index:
                    if packet.size:  # cover art has no timestamps; end-of-stream is empty
                        yield packet
                    continue
                stored += packet.size > 0
                for frame in packet.decode():
                    self._same_size(frame, self.frames_decoded)
                    time = frame.time if frame.time is not None else self.frames_decoded / rate
                    yield DecodedFrame(
                        self.frames_decoded,
                        frame,
                        frame.pts,
                        time,
                        self.info.rotation,
                        self.info.mirrored,
                    )
                    last_time = time
                    self.frames_decoded += 1
        except av.error.FFmpegError as exc:
            at = f" after frame {self.frames_decoded}" if self.frames_decoded else ""
            raise CorruptVideoError(self.path, f"corrupt or truncated video{at} ({exc})") from exc
        expected = stream.frames or None
        # A header that promises more frames than the file holds means the file was cut.
        # Counted in packets, not decoded frames: a stream that starts on an open GOP
        # holds leading pictures no decoder (and no player) can show, and an edit list
        # hides frames it keeps for the decoder; neither is a cut file.
        if expected and stored < expected * 0.98 - 1:
            raise CorruptVideoError(
                self.path, f"truncated video: the file holds {stored} of {expected} frames"
            )
        if self.frames_decoded == 0:
            raise CorruptVideoError(self.path, "no decodable video frame")
        # Containers without a frame count (Matroska, WebM) still state a duration; video
        # that stops well before it was cut off. The slack allows an audio track to run on.
        ends = last_time + 1 / rate
        if not self.info.frame_count and self.info.duration > ends + max(
            0.5, 0.05 * self.info.duration
        ):
            raise CorruptVideoError(
                self.path,
                f"truncated video: frames stop at {ends:.1f} s of {self.info.duration:.1f} s",
            )
