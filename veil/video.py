"""Reading and writing videos with PyAV: probe, decode to RGB frames, encode with audio copied.

Frames are handed out in the orientation a player shows (a phone video's rotation
matrix applied) and turned back before encoding, so the output keeps the input's
coded size and matrix. Timestamps pass through untouched, which keeps variable frame
rates. Audio packets are copied, never decoded, unless the output container cannot
hold the input's audio codec.
"""

from __future__ import annotations

import bisect
import contextlib
import ctypes
import ctypes.util
import functools
import os
import struct
import uuid
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Any, cast

import av
import numpy as np
import numpy.typing as npt

from veil.errors import (
    CorruptVideoError,
    FrameSizeError,
    InputAccessError,
    InputNotFoundError,
    NotAVideoError,
    OptionError,
    OutputError,
    UnsupportedCodecError,
)
from veil.streams import ExtraStreams, RemovedMetadata, packet_streams

Frame = npt.NDArray[np.uint8]

# SVT-AV1 prints its whole configuration to stderr each time an encoder opens; 1 keeps
# its errors only. Set before the first AV1 encoder starts; a user's own setting wins.
os.environ.setdefault("SVT_LOG", "1")

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

CODECS = ("auto", "h264", "hevc", "vp9", "av1")
"""Output video codecs (``--codec``). ``auto`` keeps the input's family where the output
container holds it (a phone's 10-bit HEVC stays HEVC, so HDR stays HDR as recorded),
and otherwise takes the container's usual codec."""
_ENCODERS = {"h264": "libx264", "hevc": "libx265", "vp9": "libvpx-vp9", "av1": "libsvtav1"}
# Codecs each container holds, its usual one first. AVI stores no presentation times
# and H.264 in AVI comes back shifted by a frame, so AVI gets MPEG-4 Part 2, its classic
# codec, without B-frames.
_CONTAINER_CODECS = {
    "mp4": ("h264", "hevc", "vp9", "av1"),
    "mov": ("h264", "hevc"),
    "matroska": ("h264", "hevc", "vp9", "av1"),
    "webm": ("vp9", "av1"),
    "mpegts": ("h264", "hevc"),
    "avi": ("mpeg4",),
}
# Pictures larger than 1440p get a shorter x264 look-ahead (_LOOKAHEAD_PIXELS in all)
# and one B-frame.
_LARGE_PICTURE = 2560 * 1440
_LOOKAHEAD_PIXELS = 24_000_000
_FULL_RANGE_ALIASES = {"yuvj420p": "yuv420p", "yuvj422p": "yuv422p", "yuvj444p": "yuv444p"}
# Audio codecs each container can hold; anything else is re-encoded to the first entry.
_AUDIO_CODECS = {
    "mp4": ("aac", "mp3", "alac", "ac3", "eac3", "opus", "flac"),
    "mov": ("aac", "mp3", "alac", "ac3", "eac3", "pcm_s16le", "pcm_s24le", "pcm_s16be"),
    "webm": ("opus", "vorbis"),
    "avi": ("mp3", "ac3", "pcm_s16le", "aac"),
    "mpegts": ("aac", "mp3", "mp2", "ac3", "eac3", "opus"),
}
_CONTAINER_BY_EXT = {
    ".mp4": "mp4",
    ".m4v": "mp4",
    ".mov": "mov",
    ".mkv": "matroska",
    ".webm": "webm",
    ".avi": "avi",
    # Camcorder and broadcast files: MPEG transport streams; .mts and .m2ts are the
    # Blu-ray/AVCHD flavour, with a 4-byte timestamp before each 188-byte packet.
    ".ts": "mpegts",
    ".mts": "mpegts",
    ".m2ts": "mpegts",
}
_M2TS_EXTENSIONS = (".mts", ".m2ts")
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
            rows = _plane_array(target)
            rows[:] = _plane_array(source)
            views.append(display_view(rows, self.rotation, self.mirrored))
        full_range = name == "yuvj420p" or picture.color_range == 2
        return replace(self, picture=copy), views, full_range

    def grey(self) -> Frame:
        """The luma plane, coded orientation, as stored (no copy for 8-bit YUV): enough to
        tell how much the picture changed."""
        picture = self.picture
        name = picture.format.name
        if name.startswith(("yuv", "nv12", "gray")) and picture.format.components[0].bits == 8:
            return _plane_array(picture.planes[0])
        return np.asarray(picture.to_ndarray(format="gray"), np.uint8)


EDITABLE_FORMATS = ("yuv420p", "yuvj420p")
"""Decoded formats a face can be hidden in without a trip through RGB (``editable_copy``):
8-bit 4:2:0, what nearly every camera and phone records."""


def display_view(plane: Frame, rotation: int, mirrored: bool = False) -> Frame:
    """``to_display`` as a view: writing to it writes to ``plane``."""
    shown = np.rot90(plane, k=rotation // 90) if rotation else plane
    return shown[:, ::-1] if mirrored else shown


def _plane_array(plane: Any) -> Frame:
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


def is_video_path(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_EXTENSIONS


def _open_input(path: Path) -> Any:
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


def _video_stream(container: Any, path: Path) -> Any:
    if not container.streams.video:
        raise NotAVideoError(path, "not a video (no video stream)")
    stream = container.streams.video[0]
    context = stream.codec_context
    if context is None or not context.is_decoder:
        name = context.name if context is not None else "unknown to FFmpeg"
        raise UnsupportedCodecError(path, f"unsupported video codec ({name}): no decoder for it")
    return stream


def probe(path: str | Path) -> VideoInfo:
    """Read a video's header and first frame; raises an ``InputError`` if it cannot be used."""
    path = Path(path)
    with contextlib.closing(_open_input(path)) as container:
        stream = _video_stream(container, path)
        _check_frame_size(path, stream.codec_context.width, stream.codec_context.height)
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


def _check_frame_size(path: Path, width: int, height: int) -> None:
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


@dataclass(frozen=True)
class Keyframe:
    """A frame decoding can start at: its presentation and decoding times (in the video
    stream's time base) and its index among the frames a player shows."""

    pts: int
    dts: int | None
    index: int


@dataclass(frozen=True)
class VideoIndex:
    """Where a video's frames are, read from its packets (``index_video``)."""

    time_base: Fraction
    pts: tuple[int, ...]
    """Each shown frame's presentation time, in order: ``pts[i]`` is frame ``i``'s."""
    keyframes: tuple[Keyframe, ...]
    """The frames decoding can start at, in order."""

    def seconds(self, index: int) -> float:
        """Frame ``index``'s time from the first frame, in seconds."""
        return float((self.pts[index] - self.pts[0]) * self.time_base)


def index_video(path: str | Path) -> VideoIndex | None:
    """Every frame's timestamp and the keyframes, from the packets (decoding only the
    first frame), or ``None`` when the video cannot be entered part-way by timestamp:
    a packet without one, two frames with the same one, or no keyframe.

    The frames are numbered as ``VideoReader`` numbers them: in presentation order,
    without those an edit list hides (FFmpeg marks their packets to discard) or a decoder
    cannot show (leading pictures of an open GOP at the very start). A truncated file is
    refused as ``VideoReader`` refuses it (``CorruptVideoError``).
    """
    path = Path(path)
    with contextlib.closing(_open_input(path)) as container:
        stream = _video_stream(container, path)
        pts: list[int] = []
        keyframes: list[tuple[int, int | None]] = []
        timed = True
        stored = 0
        try:
            for packet in container.demux(stream):
                if not packet.size:
                    continue
                stored += 1
                if packet.is_discard:
                    continue
                if packet.pts is None:
                    timed = False
                    continue
                pts.append(packet.pts)
                if packet.is_keyframe:
                    keyframes.append((packet.pts, packet.dts))
        except av.error.FFmpegError as exc:
            raise CorruptVideoError(path, f"corrupt or truncated video ({exc})") from exc
        expected = stream.frames or None
        if expected and stored < expected * 0.98 - 1:
            raise CorruptVideoError(
                path, f"truncated video: the file holds {stored} of {expected} frames"
            )
        time_base = stream.time_base
    shown = sorted(pts)
    if not timed or not shown or not keyframes or len(set(shown)) < len(shown):
        return None
    first = _first_shown_pts(path)
    if first is None:
        return None
    shown = [p for p in shown if p >= first]
    # A keyframe before the first frame shown (an edit list starting mid-GOP) is where
    # decoding the first frames starts: numbered 0, as the first frame shown after it.
    starts = tuple(Keyframe(p, d, bisect.bisect_left(shown, p)) for p, d in sorted(set(keyframes)))
    return VideoIndex(time_base, tuple(shown), starts)


def _first_shown_pts(path: Path) -> int | None:
    """The timestamp of the first frame a decoder shows (``None``: it has none)."""
    with contextlib.closing(_open_input(path)) as container:
        try:
            for frame in container.decode(_video_stream(container, path)):
                return cast(int | None, frame.pts)
        except av.error.FFmpegError as exc:
            raise CorruptVideoError(path, f"cannot decode the first frame ({exc})") from exc
    return None


def _packets_from(
    packets: Iterator[Any], start: Keyframe, before: int | None
) -> Generator[Any, None, bool]:
    """Yield ``packets`` from the keyframe ``start`` on; returns whether it was found,
    giving up at a packet decoded after it (``before``: its decoding time)."""
    for packet in packets:
        if not packet.size:
            continue
        if packet.is_keyframe and packet.pts == start.pts:
            yield packet
            yield from packets
            return True
        passed = packet.dts if packet.dts is not None else packet.pts
        if before is not None and passed is not None and passed > before:
            return False  # landed after the keyframe: seek earlier
    return False


class VideoReader:
    """Demuxes a video once: decoded video frames and the audio packets to copy.

    Iterating yields ``DecodedFrame`` for video and PyAV packets for audio, subtitles
    and cover art (``extra_streams``), in file order. Use as a context manager.
    """

    def __init__(self, path: str | Path, *, decode_threads: int = 0) -> None:
        self.path = Path(path)
        self.info = probe(self.path)
        self._container = _open_input(self.path)
        self.video_stream = _video_stream(self._container, self.path)
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
            _check_frame_size(self.path, *size)
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
            found = yield from _packets_from(self._container.demux(stream), start, before)
            if found:
                return
        # The last resort: from the beginning, in a container of its own (a seek to the
        # start is by time too).
        with contextlib.closing(_open_input(self.path)) as container:
            again = _video_stream(container, self.path)
            again.thread_type = "AUTO"
            again.codec_context.thread_count = stream.codec_context.thread_count
            if not (yield from _packets_from(container.demux(again), start, None)):
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


@dataclass(frozen=True, kw_only=True)
class EncodeOptions:
    crf: int = 20
    preset: str = "veryfast"
    keep_audio: bool = True
    threads: int = 0
    codec: str = "auto"
    """One of ``CODECS``."""
    keep_metadata: bool = False
    """Copy every tag and the cover art; by default only ``veil.streams.KEPT_TAGS``."""
    strip_time: bool = False
    """Drop the creation time too (``veil.streams.TIME_TAGS``)."""


@functools.cache
def _encoder_formats(encoder: str) -> frozenset[str]:
    """The pixel formats ``encoder`` takes as they are, as this FFmpeg build has it (its
    libvpx, for one, has no 10-bit VP9)."""
    return frozenset(f.name for f in av.codec.Codec(encoder, "w").video_formats or ())


def output_encoder(codec: str, container_name: str, input_codec: str) -> str:
    """The FFmpeg encoder for ``codec`` (``CODECS``) in ``container_name``, given the
    input's codec; ``OptionError`` for a codec the container cannot hold."""
    allowed = _CONTAINER_CODECS.get(container_name, ("h264",))
    if codec == "auto":
        family = {"h264": "h264", "hevc": "hevc", "vp9": "vp9", "av1": "av1"}.get(input_codec)
        chosen = family if family in allowed else allowed[0]
    elif codec in allowed:
        chosen = codec
    else:
        raise OptionError(
            f"--codec {codec}: the {container_name} container cannot hold it "
            f"(it holds {', '.join(allowed)})"
        )
    return _ENCODERS.get(chosen, chosen)


class VideoWriter:
    """Encodes display-oriented RGB frames into ``path`` like the reader's input.

    Writes to a temporary name next to ``path`` and renames it on ``commit()``; closing
    without committing removes the temporary file, so no half-written video is left.

    ``video_only``: the picture alone, no audio, subtitles or tags (a segment of a longer
    video, ``veil.segments``), its frames' timestamps less ``time_offset`` (a segment
    starts at 0: MP4 states a later start in milliseconds, AVI cannot state one; the
    join puts it back). ``copy_video``: a video stream (of another file) whose
    packets ``write_packet`` copies instead of encoding frames; audio and the rest come
    from ``reader`` as usual (the join of a segmented video).
    """

    def __init__(
        self,
        path: str | Path,
        reader: VideoReader,
        options: EncodeOptions,
        *,
        video_only: bool = False,
        copy_video: Any | None = None,
        time_offset: int = 0,
    ) -> None:
        self.path = Path(path)
        self._info = reader.info
        # Not named after the output: a name at the file system's limit has no room for more.
        self._tmp = self.path.with_name(
            f".veil-{os.getpid()}-{uuid.uuid4().hex[:8]}.part{self.path.suffix}"
        )
        container_name = _CONTAINER_BY_EXT.get(self.path.suffix.lower())
        if container_name is None:
            raise OutputError(
                self.path, f"unsupported output extension; use one of {', '.join(VIDEO_EXTENSIONS)}"
            )
        container_options = {}
        if container_name == "mpegts":
            # Timestamps as they were, even before zero: a transport stream's clock wraps
            # (every 26.5 hours), and a stream cut just before a wrap reads back with
            # negative times, which the muxer would otherwise shift.
            container_options["avoid_negative_ts"] = "disabled"
            if self.path.suffix.lower() in _M2TS_EXTENSIONS:
                container_options["mpegts_m2ts_mode"] = "1"
        try:
            self._container = av.open(
                str(self._tmp), "w", format=container_name, options=container_options
            )
        except (OSError, av.error.FFmpegError) as exc:
            raise OutputError(self.path, f"cannot write here ({_reason(exc)})") from exc
        self._committed = False
        self._copying = copy_video is not None
        self._offset = time_offset
        try:
            if copy_video is not None:
                self._video = self._copy_video_stream(reader, copy_video)
            else:
                self._video = self._add_video_stream(reader, container_name, options)
            keep_audio = options.keep_audio and not video_only
            self._audio_map = self._add_audio_streams(reader, container_name) if keep_audio else {}
            mapped = {reader.video_stream.index: self._video} | {
                index: target.stream if isinstance(target, _Reencoder) else target
                for index, target in self._audio_map.items()
            }
            self._extras = (
                ExtraStreams({}, RemovedMetadata())
                if video_only
                else ExtraStreams.add(
                    reader._container,
                    self._container,
                    mapped,
                    keep_metadata=options.keep_metadata,
                    strip_time=options.strip_time,
                )
            )
        except BaseException:
            self.close()
            raise

    def _add_video_stream(
        self, reader: VideoReader, container_name: str, options: EncodeOptions
    ) -> Any:
        src = reader.video_stream
        info = self._info
        codec = output_encoder(options.codec, container_name, src.codec_context.name)
        rate = src.average_rate or src.guessed_rate or Fraction(30)
        stream = cast(av.video.stream.VideoStream, self._container.add_stream(codec, rate=rate))
        coded_w, coded_h = src.codec_context.width, src.codec_context.height
        stream.width, stream.height = coded_w, coded_h
        # Non-square pixels (anamorphic DV, some phones' and broadcast files) display at
        # another shape than coded: keep the ratio, or players show the output distorted.
        aspect = src.sample_aspect_ratio or src.codec_context.sample_aspect_ratio
        if aspect and aspect != 1:
            stream.codec_context.sample_aspect_ratio = aspect
            stream.sample_aspect_ratio = aspect  # the container's copy (Matroska's display size)
        pix_fmt = _FULL_RANGE_ALIASES.get(info.pix_fmt, info.pix_fmt)
        formats = _encoder_formats(codec)
        if pix_fmt not in formats:
            # Keep 10 bits where the encoder has them (HDR needs them), else 8.
            deep = "p10" in pix_fmt or "p12" in pix_fmt
            pix_fmt = "yuv420p10le" if deep and "yuv420p10le" in formats else "yuv420p"
        if (coded_w % 2 or coded_h % 2) and pix_fmt.startswith(("yuv420", "yuv422")):
            # 4:2:0 cannot code an odd size exactly; 4:4:4 keeps the picture's size.
            odd = pix_fmt.replace("420", "444").replace("422", "444")
            pix_fmt = odd if odd in formats else pix_fmt
        stream.pix_fmt = pix_fmt
        full_range = info.color_range == 2 or info.pix_fmt in _FULL_RANGE_ALIASES
        # MPEG-4 Part 2 in AVI cannot say its range, and players take it as limited: a
        # full-range picture (an MJPEG camera's) is converted, not mislabelled.
        self._color_range = 2 if full_range and codec != "mpeg4" else 1
        stream.codec_context.color_range = self._color_range
        # The colour description (primaries, transfer, matrix): without it an HDR (HLG,
        # PQ) or BT.2020 picture plays washed out. The encoders write it in their headers.
        source = src.codec_context
        for name in ("color_primaries", "color_trc", "colorspace"):
            value = getattr(source, name, None)
            if value and value != 2:  # 2: unspecified
                setattr(stream.codec_context, name, value)
        # Keep the input's clock so every frame keeps its exact timestamp (variable rate too).
        stream.time_base = src.time_base
        stream.codec_context.time_base = src.time_base
        stream.thread_count = options.threads
        if codec == "libx264":
            # A keyframe asked for (``write_frame``) is an IDR picture, not an I picture
            # later frames may look past.
            stream.options = {
                "crf": str(options.crf),
                "preset": options.preset,
                "forced-idr": "1",
            }
            if coded_w * coded_h > _LARGE_PICTURE:
                # x264 keeps its look-ahead and B-frames in memory: half a gigabyte at 4K
                # with veryfast's 10 and 3. Fewer for large pictures keeps veil near 1 GiB
                # (measured at 4K: 530 MiB -> about 270 MiB, a few % larger files).
                frames = max(3, _LOOKAHEAD_PIXELS // (coded_w * coded_h))
                stream.options = {
                    **stream.options,
                    "rc-lookahead": str(frames),
                    "x264-params": "bframes=1",
                }
        elif codec == "libx265":
            stream.options = {
                "crf": str(options.crf + 2),  # x265's scale: crf 22 looks like x264's 20
                "preset": options.preset,
                "x265-params": "log-level=error",
                "forced-idr": "1",
            }
        elif codec == "libsvtav1":
            stream.options = {"crf": str(options.crf + 10), "preset": "10"}
        elif codec == "mpeg4":
            # A fixed quantiser (crf 20 maps to 3, visually clean), pinned through qmin and
            # qmax because PyAV cannot set the per-frame quality the qscale flag reads.
            quantiser = max(2, min(31, options.crf // 6))
            stream.codec_context.qmin = stream.codec_context.qmax = quantiser
            stream.codec_context.max_b_frames = 0
        else:
            stream.options = {
                "crf": str(options.crf + 11),
                "b": "0",
                "deadline": "realtime",
                "cpu-used": "8",
                "row-mt": "1",
            }
        if info.display_matrix is not None:
            stream.set_display_matrix(list(info.display_matrix))
        return stream

    def _copy_video_stream(self, reader: VideoReader, template: Any) -> Any:
        """A video stream with ``template``'s codec parameters (extradata, size, colour,
        display matrix), on the input's clock, for packets copied from it."""
        try:
            stream = self._container.add_stream_from_template(template)
        except (ValueError, av.error.FFmpegError) as exc:
            raise OutputError(self.path, f"cannot copy the encoded video ({exc})") from exc
        src = reader.video_stream
        stream.time_base = src.time_base
        # The rate the encoder was given: the MOV muxer's timecode track counts in it.
        stream.codec_context.framerate = src.average_rate or src.guessed_rate or Fraction(30)
        aspect = template.sample_aspect_ratio
        if aspect and aspect != 1:
            stream.sample_aspect_ratio = aspect
        return stream

    def write_packet(self, packet: Any) -> None:
        """Copy an encoded video packet of the ``copy_video`` stream."""
        packet.stream = self._video
        self._mux([packet])

    def _add_audio_streams(self, reader: VideoReader, container_name: str) -> dict[int, Any]:
        allowed = _AUDIO_CODECS.get(container_name)
        mapping: dict[int, Any] = {}
        for src in reader.audio_streams:
            name = src.codec_context.name
            if allowed is None or name in allowed:
                mapping[src.index] = self._container.add_stream_from_template(src)
            else:
                mapping[src.index] = _Reencoder(self._container, src, allowed[0])
        return mapping

    def write_frame(self, image: Frame, pts: int | None, *, keyframe: bool = False) -> None:
        """Encode a display-oriented RGB picture; ``keyframe``: as one that refers to
        nothing before it (an IDR picture), where another encoding may take over."""
        coded = from_display(image, self._info.rotation, self._info.mirrored)
        frame = av.VideoFrame.from_ndarray(coded, format="rgb24")
        frame = frame.reformat(format=self._video.pix_fmt, dst_color_range=self._color_range)
        frame.pts = None if pts is None else pts - self._offset
        frame.time_base = self._video.codec_context.time_base
        if keyframe:
            frame.pict_type = av.video.frame.PictureType.I
        self._mux(self._encode(frame))

    def write_decoded(self, frame: DecodedFrame, *, keyframe: bool = False) -> None:
        """Encode a decoded frame unchanged (no face on it): no trip through RGB."""
        picture = frame.picture
        if (
            picture.format.name != self._video.pix_fmt
            or (picture.color_range or 1) != self._color_range
        ):
            picture = picture.reformat(
                format=self._video.pix_fmt,
                src_color_range=picture.color_range or None,
                dst_color_range=self._color_range,
            )
        picture.pts = None if frame.pts is None else frame.pts - self._offset
        picture.time_base = self._video.codec_context.time_base
        # The decoder's picture type (I, P, B) must not force the encoder's choice.
        picture.pict_type = (
            av.video.frame.PictureType.I if keyframe else av.video.frame.PictureType.NONE
        )
        self._mux(self._encode(picture))

    @property
    def metadata_removed(self) -> RemovedMetadata:
        """The input's tags and streams this output lacks by the metadata policy."""
        return self._extras.removed

    def write_audio(self, packet: Any) -> None:
        """Copy (or re-encode) an audio packet; other packets go to ``ExtraStreams``."""
        target = self._audio_map.get(packet.stream.index)
        if target is None:
            self._mux(self._extras.write(packet))
            return
        if isinstance(target, _Reencoder):
            self._mux(target.encode(packet))
            return
        packet.stream = target
        self._mux([packet])

    def _encode(self, picture: Any) -> Any:
        """The encoder's packets for ``picture`` (``None`` flushes), its errors translated."""
        try:
            return self._video.encode(picture)
        except av.error.FFmpegError as exc:
            raise OutputError(self.path, f"encoding failed ({_reason(exc)})") from exc

    def _mux(self, packets: Any) -> None:
        try:
            self._container.mux(packets)
        except OSError as exc:
            raise OutputError(self.path, f"cannot write ({_reason(exc)})") from exc
        except av.error.FFmpegError as exc:
            raise OutputError(self.path, f"encoding failed ({_reason(exc)})") from exc

    def commit(self) -> None:
        """Flush the encoders, close the file and move it into place."""
        if not self._copying:
            self._mux(self._encode(None))
        for target in self._audio_map.values():
            if isinstance(target, _Reencoder):
                self._mux(target.flush())
        try:
            self._container.close()
            os.replace(self._tmp, self.path)
        except OSError as exc:
            raise OutputError(self.path, f"cannot write ({_reason(exc)})") from exc
        self._committed = True

    def close(self) -> None:
        """Abandon an uncommitted output: close and delete the temporary file."""
        if self._committed:
            return
        with contextlib.suppress(Exception):
            self._container.close()
        with contextlib.suppress(FileNotFoundError):
            self._tmp.unlink()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Reencoder:
    """Decodes one audio stream and encodes it with a codec the output container accepts."""

    def __init__(self, container: Any, src: Any, codec: str) -> None:
        self.stream = container.add_stream(codec, rate=src.codec_context.sample_rate or 48000)
        self.stream.layout = src.codec_context.layout

    def encode(self, packet: Any) -> list[Any]:
        out = []
        for frame in packet.decode():
            frame.pts = None
            out.extend(self.stream.encode(frame))
        return out

    def flush(self) -> list[Any]:
        return list(self.stream.encode(None))


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc)
