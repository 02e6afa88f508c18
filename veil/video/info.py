"""What a video is before any frame is decoded: ``probe`` (``VideoInfo``), the limits
veil processes within, which files are videos, the container's own signature checked
against its name, and the rotation a player applies (``to_display``, ``from_display``)."""

from __future__ import annotations

import contextlib
import struct
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import numpy.typing as npt

from veil.errors import (
    CorruptVideoError,
    FrameSizeError,
    InputAccessError,
    InputNotFoundError,
    NotAVideoError,
    UnsupportedCodecError,
)
from veil.video.source import ReadInPlace, VideoSource, shown_as, video_source

Frame = npt.NDArray[np.uint8]

MAX_SIDE = 8192
"""Pixels: the longest picture side veil processes (8K is 7680)."""
MAX_PIXELS = 7680 * 4320
"""Pixels per picture veil processes: 8K UHD. Larger pictures are refused up front,
before any frame is decoded, since a frame alone would take hundreds of megabytes."""
MAX_DURATION = 12 * 3600.0
"""The longest video a service job accepts by default (``--max-duration``), in seconds."""
MAX_FPS = 240.0
"""The highest frame rate a service job accepts by default (``--max-fps``)."""
MAX_PIXEL_RATE = 1000.0
"""The most megapixels a second of video may hold in a service job by default
(``--max-pixel-rate``): 8K at 30 fps is 995, 4K at 120 fps 995, 1080p at 240 fps 498.
The detector's cost follows pixels, so this bounds what one second of input costs."""

MAX_INPUT_BYTES = 10 * 1024**3
"""Bytes: the largest input ``veil serve`` accepts by default (``--max-size``), as the
cloud API does."""

VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".ts", ".mts", ".m2ts")
_SIGNATURES = (
    (4, b"ftyp", "MP4/MOV"),
    (0, b"\x1a\x45\xdf\xa3", "Matroska/WebM"),
    (8, b"AVI ", "AVI"),
)
# A transport stream has no header, only its sync byte at the start of every packet.
_TS_PACKETS = ((0, 188, "MPEG-TS"), (4, 192, "M2TS"))


@dataclass(frozen=True)
class VideoInfo:
    """What veil needs to know about a video before processing it.

    ``width``/``height`` are the displayed size (after rotation); ``rotation`` is the
    counter-clockwise angle in degrees a player turns the coded picture by.
    """

    path: str
    container: str
    codec: str
    width: int
    height: int
    rotation: int
    fps: float
    frame_count: int | None
    duration: float
    pix_fmt: str
    color_range: int
    audio_codecs: tuple[str, ...] = field(default_factory=tuple)
    display_matrix: tuple[int, ...] | None = None
    """The container's 3x3 display matrix (FFmpeg layout), copied to the output as is,
    flips included."""

    @property
    def mirrored(self) -> bool:
        """Whether the display matrix flips the picture (its 2x2 part has a negative
        determinant)."""
        m = self.display_matrix
        return m is not None and m[0] * m[4] - m[1] * m[3] < 0

    @property
    def duration_ms(self) -> int:
        return round(self.duration * 1000)


def display_view(plane: Frame, rotation: int, mirrored: bool = False) -> Frame:
    """``to_display`` as a view: writing to it writes to ``plane``."""
    shown = np.rot90(plane, k=rotation // 90) if rotation else plane
    return shown[:, ::-1] if mirrored else shown


def is_video_path(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_EXTENSIONS


def open_input(source: VideoSource) -> Any:
    """The video opened by PyAV, or an ``InputError`` that says why it cannot be."""
    if isinstance(source, ReadInPlace):
        return _open_in_place(source)
    path = source
    if not path.exists():
        raise InputNotFoundError(path, "no such file")
    if path.is_dir():
        raise NotAVideoError(path, "is a folder, not a video file")
    size = path.stat().st_size
    if size == 0:
        raise NotAVideoError(path, "empty file (0 bytes)")
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except PermissionError as exc:
        raise InputAccessError(path, "permission denied") from exc
    except (av.error.InvalidDataError, av.error.EOFError, av.error.FFmpegError) as exc:
        kind = _container_signature(path)
        if kind:
            raise CorruptVideoError(
                path, f"corrupt or truncated {kind} file (cannot read its header or index)"
            ) from exc
        raise NotAVideoError(path, "not a video (unrecognised file format)") from exc
    if _container_signature(path) == "MP4/MOV":
        try:
            _check_boxes(path)
        except CorruptVideoError:
            container.close()
            raise
    kind = container.format.name
    if kind.endswith("_pipe") or kind == "image2":
        # FFmpeg reads a picture as a one-frame video; whatever its name says, it is not one.
        container.close()
        image = kind.removesuffix("_pipe").upper() if kind != "image2" else "image"
        raise NotAVideoError(path, f"a still {image} picture, not a video")
    return container


def _open_in_place(source: ReadInPlace) -> Any:
    try:
        return av.open(source.open(), metadata_errors="ignore")
    except (av.error.InvalidDataError, av.error.EOFError, av.error.FFmpegError) as exc:
        raise CorruptVideoError(
            shown_as(source), f"cannot read its header or index ({exc})"
        ) from exc


def _check_boxes(path: Path) -> None:
    """An MP4/MOV file's top-level boxes must all end inside the file. FFmpeg reads what
    it can of a box cut short: an index (moov) cut in its middle loses the tracks it no
    longer describes, without an error, and the output would silently lack them."""
    size = path.stat().st_size
    offset = 0
    with path.open("rb") as f:
        while offset + 8 <= size:
            f.seek(offset)
            head = f.read(16)
            length, kind = struct.unpack(">I4s", head[:8])
            if length == 1 and len(head) == 16:  # a 64-bit size follows
                length = struct.unpack(">Q", head[8:16])[0]
            elif length == 0:  # the last box, to the end of the file
                return
            name = kind.decode("latin-1")
            if length < 8 or offset + length > size:
                raise CorruptVideoError(
                    path, f"corrupt or truncated MP4/MOV file (its {name!r} box runs past the end)"
                )
            offset += length


def _container_signature(path: Path) -> str | None:
    with path.open("rb") as f:
        head = f.read(3 * 192)
    for offset, magic, name in _SIGNATURES:
        if head[offset : offset + len(magic)] == magic:
            return name
    for first, size, name in _TS_PACKETS:
        if all(head[i : i + 1] == b"\x47" for i in range(first, len(head), size)):
            return name if len(head) > first + 2 * size else None
    return None


def video_stream(container: Any, path: Path) -> Any:
    if not container.streams.video:
        raise NotAVideoError(path, "not a video (no video stream)")
    stream = container.streams.video[0]
    context = stream.codec_context
    if context is None or not context.is_decoder:
        name = context.name if context is not None else "unknown to FFmpeg"
        raise UnsupportedCodecError(path, f"unsupported video codec ({name}): no decoder for it")
    return stream


def probe(source: str | Path | ReadInPlace) -> VideoInfo:
    """Read a video's header and first frame; raises an ``InputError`` if it cannot be used."""
    source = video_source(source)
    path = shown_as(source)
    with contextlib.closing(open_input(source)) as container:
        stream = video_stream(container, path)
        check_frame_size(path, stream.codec_context.width, stream.codec_context.height)
        rotation = 0
        matrix = None
        try:
            for frame in container.decode(stream):
                rotation = _rotation(frame)
                matrix = _display_matrix(frame)
                break
            else:
                raise CorruptVideoError(path, "no decodable video frame")
        except av.error.FFmpegError as exc:
            raise CorruptVideoError(path, f"cannot decode the first frame ({exc})") from exc
        cc = stream.codec_context
        width, height = cc.width, cc.height
        if rotation % 180:
            width, height = height, width
        rate = stream.average_rate or stream.guessed_rate or Fraction(30)
        if stream.duration is not None and stream.time_base:
            duration = float(stream.duration * stream.time_base)
        elif container.duration:
            duration = container.duration / av.time_base
        else:
            duration = 0.0
        return VideoInfo(
            path=str(path),
            container=container.format.name,
            codec=cc.name,
            width=width,
            height=height,
            rotation=rotation,
            fps=float(rate),
            frame_count=_shown_frames(stream, rate, duration),
            duration=duration,
            pix_fmt=cc.pix_fmt or "yuv420p",
            color_range=int(cc.color_range or 0),
            audio_codecs=tuple(a.codec_context.name for a in container.streams.audio),
            display_matrix=matrix,
        )


def _shown_frames(stream: Any, rate: Fraction, duration: float) -> int | None:
    """Frames a player shows: the header's count, unless an edit list hides some. An MP4
    cut without re-encoding (trimmed at a point inside a GOP) keeps the frames before the
    cut, which its decoder needs, and an edit list that starts playback after them; the
    header counts them all, its duration only those shown."""
    stored = stream.frames or None
    if stored and duration and rate:
        shown = round(duration * float(rate))
        if shown < stored * 0.98:
            return shown
    return stored


def check_frame_size(path: Path, width: int, height: int) -> None:
    if max(width, height) > MAX_SIDE or width * height > MAX_PIXELS:
        raise FrameSizeError(
            path,
            f"picture too large ({width}x{height}); veil processes up to {MAX_SIDE} pixels "
            f"a side and {MAX_PIXELS:,} pixels a frame (8K UHD)",
        )


def _display_matrix(frame: Any) -> tuple[int, ...] | None:
    for data in frame.side_data:
        if "DISPLAYMATRIX" in str(data.type):
            return tuple(struct.unpack("<9i", bytes(data)[:36]))
    return None


def _rotation(frame: Any) -> int:
    return round((frame.rotation or 0) / 90.0) * 90 % 360


def to_display(image: Frame, rotation: int, mirrored: bool = False) -> Frame:
    """Turn a coded picture the way a player does: ``rotation`` degrees counter-clockwise,
    then a horizontal flip when the display matrix mirrors."""
    if rotation == 0 and not mirrored:
        return image
    return np.ascontiguousarray(display_view(image, rotation, mirrored))


def from_display(image: Frame, rotation: int, mirrored: bool = False) -> Frame:
    """Undo ``to_display``."""
    if rotation == 0 and not mirrored:
        return image
    unflipped = image[:, ::-1] if mirrored else image
    return np.ascontiguousarray(np.rot90(unflipped, k=-(rotation // 90)))
