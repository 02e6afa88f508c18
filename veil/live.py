"""Live: a camera feed anonymized before anyone sees it (``veil live``).

A reader thread takes frames from the source (a network stream, a device, or a file
played at its own pace) and stamps each with the moment it arrived. The main loop runs
them through the same detection schedule and tracker as files (``veil.motion``,
``veil.tracker``) and sends each to the output (an HLS folder, or a stream pushed to a
URL) once the tracker has its final boxes. That wait is the live delay: the tracker's
backward hold, which covers a face before its first detection, is cut to fit in
``LOOK_SHARE`` of ``--delay``, and the rest of the delay pays for the analysis.

It fails closed: no frame leaves without its boxes. A frame that arrives too late to
be analysed within the delay is covered whole (``cover_whole``) with the frames waiting
for the analysis it would have had, and frames are passed over so until the newest,
which is analysed (``DetectionSchedule.skip`` owes it that); a frame still waiting for
its boxes when its delay is spent leaves covered whole too; all are counted. A source's
reconnection and a looped file's restart start a new schedule, after a last look at the
old one's last frame (``DetectionSchedule.last_look``). While the source is lost the
output shows a slate, and the reader reconnects with growing waits; timestamps go on
rising across all of it.
"""

from __future__ import annotations

import contextlib
import math
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import av
import cv2
import numpy as np

from veil.anonymizers import get_anonymizer, hide_in_yuv420
from veil.detections import Detections
from veil.detector import FaceDetector
from veil.errors import LiveSourceError, OptionError, OutputError
from veil.motion import DetectionSchedule
from veil.pipeline import BlurOptions
from veil.tracker import Tracker, TrackerOptions
from veil.video.info import MAX_PIXELS, MAX_SIDE, Frame, probe
from veil.video.reader import (
    EDITABLE_FORMATS,
    DecodedFrame,
    plane_array,
    return_frame_memory_to_the_system,
)

NETWORK_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "srt", "udp", "tcp", "http", "https")
"""Sources read from the network: lost connections are retried."""
PUSH_FORMATS = {"udp": "mpegts", "tcp": "mpegts", "srt": "mpegts", "rtmp": "flv", "rtsp": "rtsp"}
"""Outputs that are URLs, and the container sent to each."""
DEFAULT_DELAY = 1.0
"""Seconds a frame may wait between arriving and leaving (``--delay``)."""
LOOK_SHARE = 0.6
"""Share of the delay the tracker's hold may use; the rest pays for analysis time."""
MIN_HOLD = 2
"""Frames a box is held at least before a face's first detection (and so frames a
frame waits at least): with an analysis every frame, one frame missed is covered."""
COVER_CELLS = 12
"""A frame covered whole keeps this many blurred colour cells along its longer side (and
fewer along the other): a shape of light, no face, even a close-up that fills an upright
phone's picture."""
RECONNECT_WAITS = (0.5, 1.0, 2.0, 4.0, 8.0)
"""Seconds between tries to reach a lost source; the last repeats."""
QUEUE_SECONDS = 3.0
QUEUE_BYTES = 256 * 1024**2
"""Decoded frames waiting for the main loop beyond this much video, or these many bytes,
are dropped by the reader (and counted): a source faster than its claimed rate, or of
huge frames, cannot fill the memory."""
WAITING_BYTES = 1024**3
"""Frames held for their boxes beyond these many bytes leave covered whole: a long
``--delay`` at a large size cannot fill the memory either."""
MAX_LIVE_FPS = 240.0
"""Frame rates above this (as a stream claims them) are taken as this for the hold."""
AUDIO_RATE = 48_000
"""Audio goes out as AAC, stereo, at this rate, whatever the source's."""
MAX_DRIFT = 2.0
"""Seconds a source's timestamps may stray from the pace its frames arrive at before the
output's clock is set back in step with the arrivals."""
OPEN_TIMEOUT = 10.0
"""Seconds to wait for a source to answer, and for its next packet."""
READER_THREAD = "veil-live-reader"


def shown(source: str) -> str:
    """``source`` as it may be shown in logs and errors: a URL without its user,
    password, query or fragment (camera addresses often carry credentials), and an RTMP
    address without its last part (the stream key)."""
    try:
        parts = urlsplit(source)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:  # an address Python cannot take apart: nothing of it is shown
        return "(an address that cannot be read)"
    if len(parts.scheme) < 2:  # a path (or a drive letter)
        return source
    if ":" in host:
        host = f"[{host}]"
    if port is not None:
        host += f":{port}"
    path = parts.path
    if parts.scheme.lower() in ("rtmp", "rtmps") and path.count("/") >= 2:
        path = path.rsplit("/", 1)[0] + "/…"
    return urlunsplit((parts.scheme, host, path, "", ""))


def is_network_source(source: str) -> bool:
    try:
        return urlsplit(source).scheme.lower() in NETWORK_SCHEMES
    except ValueError:
        return False


@dataclass(frozen=True)
class LiveOptions:
    """How a live run reads and writes, besides what ``BlurOptions`` says of faces.

    ``delay``: seconds from a frame's arrival to its departure, at most. ``keep_audio``:
    the source's first audio stream goes on with the video (as AAC). ``realtime``:
    play a file source at its own pace (required for files: a live output cannot take
    frames faster). ``loop``: start a file source again at its end. ``segment_seconds``
    and ``window``: an HLS output's segment length and how many segments its playlist
    lists (older ones are deleted). ``rtsp_transport``: ``tcp`` or ``udp``. ``record``: a
    folder where the anonymized stream is also kept, in files of ``record_seconds``,
    each deleted ``record_keep`` seconds after it was finished (0: kept)."""

    delay: float = DEFAULT_DELAY
    keep_audio: bool = True
    realtime: bool = False
    loop: bool = False
    segment_seconds: float = 1.0
    window: int = 6
    rtsp_transport: str = "tcp"
    record: Path | None = None
    record_seconds: float = 60.0
    record_keep: float = 24 * 3600.0

    def __post_init__(self) -> None:
        if not 0.2 <= self.delay <= 30:
            raise OptionError(f"delay must be between 0.2 and 30 seconds, got {self.delay}")
        if not 0.5 <= self.segment_seconds <= 30:
            raise OptionError(
                f"segment-seconds must be between 0.5 and 30, got {self.segment_seconds}"
            )
        if not 2 <= self.window <= 100:
            raise OptionError(f"window must be between 2 and 100 segments, got {self.window}")
        if not 5 <= self.record_seconds <= 24 * 3600:
            raise OptionError(
                f"record-seconds must be between 5 and 86400, got {self.record_seconds}"
            )
        if self.record_keep < 0:
            raise OptionError(f"record-keep must be 0 or more, got {self.record_keep}")
        if self.rtsp_transport not in ("tcp", "udp"):
            raise OptionError(f"rtsp-transport must be tcp or udp, got {self.rtsp_transport!r}")


def live_tracking(blur: BlurOptions, fps: float, delay: float) -> tuple[TrackerOptions, int]:
    """The tracker's options and the detection interval for a live run at ``fps``: the
    same rules as files (``BlurOptions.tracker_options``), with the hold cut so a frame
    waits at most ``LOOK_SHARE`` of ``delay`` for its boxes, and full analyses often
    enough that the hold still spans two of them. A delay too short for ``MIN_HOLD``
    frames at this rate is an ``OptionError`` that says the delay it takes."""
    fps = fps if math.isfinite(fps) and fps > 0 else 30.0
    base = blur.tracker_options(fps)
    frames = math.floor(delay * LOOK_SHARE * fps)  # the most a frame may wait
    smooth = min(base.smooth, 2) if frames >= 3 * MIN_HOLD else 0
    hold = min(base.pre_roll, frames - smooth)
    if hold < MIN_HOLD:
        needed = math.ceil(10 * MIN_HOLD / (LOOK_SHARE * fps)) / 10
        raise OptionError(
            f"at {fps:g} frames a second a delay of {delay:g} s is too short to cover a face "
            f"before it is found: give --delay {needed:g} or more"
        )
    every = max(1, min(blur.detect_every, hold // 2))
    options = replace(
        base,
        pre_roll=hold,
        post_roll=hold,
        max_gap=min(base.max_gap, 2 * hold),
        smooth=smooth,
        short_wait=True,  # a gap's frames take the near end's hold rather than wait
    )
    return options, every


def cover_whole(picture: Any) -> Any:
    """``picture`` (an ``av.VideoFrame``) shrunk to ``COVER_CELLS`` cells along its longer
    side and blown up again: nothing of a face is left, only light and colour. Done on
    each plane of an 8-bit 4:2:0 picture as it is (a tenth of the time of a trip through
    RGB)."""
    if picture.format.name in EDITABLE_FORMATS:
        covered = av.VideoFrame(picture.width, picture.height, picture.format.name)
        covered.color_range = picture.color_range
        for source, target in zip(picture.planes, covered.planes, strict=True):
            _blown_up(plane_array(source), plane_array(target))
        return covered
    rgb = picture.to_ndarray(format="rgb24")
    _blown_up(rgb, rgb)
    return av.VideoFrame.from_ndarray(rgb, format="rgb24")


def _blown_up(source: Frame, target: Frame) -> None:
    height, width = source.shape[:2]
    cell = max(width, height) / COVER_CELLS
    across, down = max(1, round(width / cell)), max(1, round(height / cell))
    small = cv2.resize(source, (across, down), interpolation=cv2.INTER_AREA)
    target[:] = cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR).reshape(
        target.shape
    )


def slate(width: int, height: int, words: str) -> Any:
    """A grey picture that says ``words``: what the output shows while the source is lost."""
    image = np.full((height, width, 3), 48, np.uint8)
    size = max(0.4, height / 720)
    (w, h), _ = cv2.getTextSize(words, cv2.FONT_HERSHEY_SIMPLEX, size, 2)
    origin = (max(0, (width - w) // 2), (height + h) // 2)
    cv2.putText(image, words, origin, cv2.FONT_HERSHEY_SIMPLEX, size, (220, 220, 220), 2)
    return av.VideoFrame.from_ndarray(image, format="rgb24")


@dataclass
class LiveStats:
    """What a live run has done so far; ``line()`` says it in one line."""

    frames_in: int = 0
    frames_out: int = 0
    covered_whole: int = 0
    """Frames sent covered whole because analysis could not keep within the delay."""
    slate_frames: int = 0
    reconnects: int = 0
    dropped: int = 0
    """Frames the reader let go because more than ``QUEUE_SECONDS`` waited."""
    lost: str | None = None
    """Why the source is lost, while it is (``None``: it is not)."""
    started: float = field(default_factory=time.monotonic)
    delays: deque[float] = field(default_factory=lambda: deque(maxlen=3000))
    """Seconds from arrival to departure of the latest frames."""

    def delay_at(self, share: float) -> float | None:
        """The delay that ``share`` (0-1) of the latest frames stayed within."""
        if not self.delays:
            return None
        ordered = sorted(self.delays)
        return ordered[min(len(ordered) - 1, math.ceil(share * len(ordered)) - 1)]

    @property
    def fps(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.frames_out / elapsed if elapsed > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        p50, p95 = self.delay_at(0.5), self.delay_at(0.95)
        return {
            "frames_in": self.frames_in,
            "frames_out": self.frames_out,
            "covered_whole": self.covered_whole,
            "slate_frames": self.slate_frames,
            "reconnects": self.reconnects,
            "dropped": self.dropped,
            "fps": round(self.fps, 2),
            "delay_p50": None if p50 is None else round(p50, 3),
            "delay_p95": None if p95 is None else round(p95, 3),
            "lost": self.lost,
        }

    def line(self) -> str:
        p50, p95 = self.delay_at(0.5), self.delay_at(0.95)
        delay = "-" if p50 is None or p95 is None else f"{p50:.2f}/{p95:.2f} s"
        lost = f"; source lost ({self.lost}), reconnecting" if self.lost else ""
        return (
            f"{self.frames_out} frames out at {self.fps:.1f} fps, delay p50/p95 {delay}, "
            f"{self.covered_whole} covered whole, {self.reconnects} reconnects{lost}"
        )


@dataclass(frozen=True)
class _Arrival:
    frame: DecodedFrame
    arrived: float
    """``time.monotonic()`` when the reader had it."""
    connection: int
    """Which opening of the source it came from (a reconnection or a loop's restart)."""


@dataclass(frozen=True)
class _Sound:
    """Decoded audio, passed on in step with the frames (``_Output.write_sound``)."""

    frame: Any
    """The ``av.AudioFrame``."""
    arrived: float
    connection: int


@dataclass(frozen=True)
class _Lost:
    reason: str


class _Ended:
    pass


class _Reader(threading.Thread):
    """Reads the source into ``frames``: ``_Arrival`` and ``_Sound`` in the source's
    order, ``_Lost`` when a network source's opening ends, ``_Ended`` last."""

    def __init__(self, source: str, options: LiveOptions, stop: threading.Event) -> None:
        super().__init__(name=READER_THREAD, daemon=True)
        self.source = source
        self.options = options
        self.stop = stop
        self.network = is_network_source(source)
        self.frames: queue.Queue[_Arrival | _Sound | _Lost | _Ended] = queue.Queue()
        self.error: LiveSourceError | None = None
        self.down = False
        self.reconnects = 0
        self.dropped = 0
        self.sender_fault = False
        self.fps = 30.0
        self.has_audio = False
        """The first opening had audio (the output carries audio from its start or never)."""

    def run(self) -> None:
        connection = 0
        waits = 0
        try:
            while not self.stop.is_set():
                try:
                    container = self._open()
                except LiveSourceError as exc:
                    # A listener goes on waiting past a sender that has not come or sent
                    # no video (not past an address it cannot listen on).
                    waiting = self.listening and self.sender_fault
                    if (connection == 0 and not waiting) or not self.network:
                        self.error = exc
                        return
                    self._wait(RECONNECT_WAITS[min(waits, len(RECONNECT_WAITS) - 1)])
                    waits += 1
                    continue
                connection += 1
                if connection > 1 and self.network:
                    self.reconnects += 1
                waits = 0
                self.down = False
                with container:
                    reason = self._read(container, connection)
                ended = reason is None and not self.options.loop
                if not self.network and (ended or self.error is not None):
                    return  # a file's end, or its fault
                if self.network:
                    self.down = True
                    self.frames.put(_Lost(reason or "the stream ended"))
        finally:
            self.frames.put(_Ended())

    def _wait(self, seconds: float) -> None:
        self.stop.wait(seconds)

    def _open(self) -> Any:
        url, options = self._address()
        device = "v4l2" if url.startswith("/dev/video") else None
        self.sender_fault = False
        try:
            container = av.open(
                url, format=device, options=options, timeout=(OPEN_TIMEOUT, OPEN_TIMEOUT)
            )
        except (av.error.FFmpegError, OSError) as exc:
            self.sender_fault = isinstance(
                exc,
                TimeoutError | av.error.ExitError | av.error.InvalidDataError | av.error.EOFError,
            )
            raise LiveSourceError(shown(self.source), _reason(exc)) from None
        self.sender_fault = True
        if not container.streams.video:
            container.close()
            raise LiveSourceError(shown(self.source), "no video stream")
        stream = container.streams.video[0]
        if stream.codec_context is None or not stream.codec_context.name:
            container.close()
            raise LiveSourceError(shown(self.source), "a video codec this build cannot decode")
        # Threads on slices of a frame, not on several frames at once: frame threads hold
        # back as many frames as there are threads, which a live stream pays in delay.
        stream.thread_type = "SLICE"
        rate = stream.average_rate or stream.guessed_rate
        if rate and 1 <= float(rate) <= MAX_LIVE_FPS:
            self.fps = float(rate)
        return container

    def _address(self) -> tuple[str, dict[str, str]]:
        """The address FFmpeg opens and its options."""
        parts = urlsplit(self.source)
        scheme = parts.scheme.lower()
        options = {}
        if self.network:
            # The packets FFmpeg reads while it studies a new stream come out only after
            # (5 s of them by default for MPEG-TS): every frame would be that much later.
            options["analyzeduration"] = "100000"
        if scheme in ("rtsp", "rtsps"):
            options["rtsp_transport"] = self.options.rtsp_transport
        if scheme == "udp":
            # Room for a burst while the reader is busy, and a full buffer is a lost
            # packet or two, not the end of the stream.
            options.update(buffer_size=str(4 * 1024**2), overrun_nonfatal="1")
        if scheme in ("rtmp", "rtmps") and self.listening:
            # FFmpeg's RTMP takes "listen" as an option only (its TCP, in the address too).
            options["listen"] = "1"
            return urlunsplit(parts._replace(query="")), options
        return self.source, options

    @property
    def listening(self) -> bool:
        """The source waits for a sender: ``?listen=1``, or UDP (which only receives)."""
        parts = urlsplit(self.source)
        return parts.scheme.lower() == "udp" or ("listen", "1") in parse_qsl(parts.query)

    def _read(self, container: Any, connection: int) -> str | None:
        """Frames of one opening, paced for a file; the reason it stopped, or ``None``
        at the end of a file."""
        rotation, mirrored = 0, False
        if not self.network:
            with contextlib.suppress(Exception):
                info = probe(Path(self.source))
                rotation, mirrored = info.rotation, info.mirrored
        started = time.monotonic()
        first: float | None = None
        count = 0
        video = container.streams.video[0]
        audio = None
        if self.options.keep_audio and container.streams.audio:
            audio = container.streams.audio[0]
            self.has_audio = self.has_audio or connection == 1
        try:
            for packet in container.demux(*([video, audio] if audio else [video])):
                if self.stop.is_set():
                    return "stopped"
                if packet.stream is audio:
                    for sound in _decoded(packet):
                        self.frames.put(_Sound(sound, time.monotonic(), connection))
                    continue
                for picture in _decoded(packet):
                    if self._too_large(picture):
                        return f"a picture too large ({picture.width}x{picture.height})"
                    at = float(picture.time) if picture.time is not None else count / self.fps
                    first = at if first is None else first
                    if self.options.realtime and not self.network:
                        self._wait(started + (at - first) - time.monotonic())
                    frame = DecodedFrame(count, picture, picture.pts, at, rotation, mirrored)
                    count += 1
                    room = min(QUEUE_SECONDS * self.fps, QUEUE_BYTES / max(1, frame.nbytes))
                    if self.frames.qsize() > room:
                        self.dropped += 1
                        continue
                    self.frames.put(_Arrival(frame, time.monotonic(), connection))
        except (av.error.FFmpegError, OSError) as exc:
            return _reason(exc)
        return None

    def _too_large(self, picture: Any) -> bool:
        """Whether ``picture`` is beyond what veil processes. A network source's opening
        ends there (and is tried again); a file's run ends with the error."""
        if max(picture.width, picture.height) <= MAX_SIDE and (
            picture.width * picture.height <= MAX_PIXELS
        ):
            return False
        if not self.network:
            self.error = LiveSourceError(
                shown(self.source),
                f"picture too large ({picture.width}x{picture.height}); veil processes up "
                f"to {MAX_SIDE} pixels a side and {MAX_PIXELS:,} a picture (8K UHD)",
            )
        return True


def _decoded(packet: Any) -> list[Any]:
    """A packet's frames; none from a damaged one (a live stream goes on past it)."""
    try:
        return list(packet.decode())
    except av.error.InvalidDataError:
        return []


def _reason(exc: BaseException) -> str:
    """A foreign error in plain words, without the source's address (FFmpeg names it)."""
    if isinstance(exc, ConnectionRefusedError | av.error.ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, TimeoutError | av.error.ExitError):
        return f"no answer within {OPEN_TIMEOUT:g} s"
    if isinstance(exc, FileNotFoundError | av.error.FileNotFoundError):
        return "no such file or stream"
    if isinstance(exc, av.error.InvalidDataError):
        return "not a video stream veil can read"
    if isinstance(exc, av.error.ProtocolNotFoundError):
        return "this FFmpeg build cannot open that kind of address"
    strerror = getattr(exc, "strerror", None)
    return str(strerror or type(exc).__name__).rstrip(".").lower()


@dataclass
class _Clock:
    """How an opening's own timestamps map to the output's (``_Output.at``)."""

    connection: int
    offset: float
    start: float
    """The output time of the opening's first picture or sound."""
    arrived: float
    """When that arrived."""


class _Recording:
    """The anonymized stream also kept in a folder (``--record``): MPEG-TS files of
    ``record_seconds`` named by the run's start (UTC) and their number, each deleted
    ``record_keep`` seconds after it was last written (0: kept)."""

    PATTERN = "live-*.ts"
    SWEEP_SECONDS = 10.0

    def __init__(self, folder: Path, options: LiveOptions) -> None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(folder, exc.strerror or "cannot make the folder") from None
        self.folder = folder
        self.options = options
        self.container: Any = None
        self.streams: dict[Any, Any] = {}
        self._swept = 0.0

    def open(self, streams: list[Any]) -> None:
        """Start the files with the output's streams (their encoders open)."""
        started = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
        name = str(self.folder / f"live-{started}-%05d.ts")
        options = {"segment_time": f"{self.options.record_seconds:g}", "segment_format": "mpegts"}
        try:
            self.container = av.open(name, "w", format="segment", options=options)
        except (av.error.FFmpegError, OSError) as exc:
            raise OutputError(self.folder, _reason(exc)) from None
        self.streams = {
            stream: self.container.add_stream_from_template(stream) for stream in streams
        }

    def add(self, packet: Any, stream: Any) -> None:
        """A copy of ``packet`` (of the output's ``stream``) into the files: the output's
        muxer takes the packet itself. A keyframe carries its stream's parameters, so
        each file plays on its own."""
        if self.container is None:
            return
        data = bytes(packet)
        if stream.type == "video" and packet.is_keyframe:
            data = bytes(stream.codec_context.extradata or b"") + data
        copy = av.Packet(data)
        copy.pts, copy.dts, copy.time_base = packet.pts, packet.dts, packet.time_base
        copy.is_keyframe = packet.is_keyframe
        copy.stream = self.streams[stream]
        try:
            self.container.mux(copy)
        except (av.error.FFmpegError, OSError) as exc:
            raise OutputError(self.folder, _reason(exc)) from None
        if time.monotonic() - self._swept > self.SWEEP_SECONDS:
            self.sweep()

    def sweep(self) -> None:
        """Delete the files older than ``record_keep`` (veil's own names only)."""
        self._swept = time.monotonic()
        keep = self.options.record_keep
        if not keep:
            return
        for path in self.folder.glob(self.PATTERN):
            with contextlib.suppress(OSError):
                if time.time() - path.stat().st_mtime > keep:
                    path.unlink()

    def close(self) -> None:
        if self.container is not None:
            with contextlib.suppress(av.error.FFmpegError, OSError):
                self.container.close()
            self.container = None


class _Output:
    """The anonymized stream: opened at the first frame (its size and rate), pictures
    written with rising timestamps, closed with its end (HLS: the end tag)."""

    def __init__(self, target: str, options: LiveOptions, blur: BlurOptions) -> None:
        self.target = target
        self.options = options
        self.blur = blur
        self.container: Any = None
        self.stream: Any = None
        self.size = (0, 0)
        self.period = 1 / 30
        self.last: float | None = None
        """Output time (s) of the last picture written."""
        self.last_written = 0.0
        """``time.monotonic()`` when it was written."""
        self._clock: _Clock | None = None
        """The current opening's (an older opening's frames have all left by then)."""
        self.audio: Any = None
        self._resampler: Any = None
        self._fifo: Any = None
        self._next_sample: int | None = None
        """Where the next audio sample goes, in samples of ``AUDIO_RATE`` from 0."""
        self._format()
        self.recording = (
            _Recording(options.record, options) if options.record else None
        )  # a target that is no live output is refused before any frame

    def _format(self) -> tuple[str, dict[str, str]]:
        """The container format for the target, and its options."""
        try:
            scheme = urlsplit(self.target).scheme.lower()
        except ValueError:
            raise OutputError(shown(self.target), "not an address veil can read") from None
        if scheme in PUSH_FORMATS:
            if scheme == "rtsp":
                return "rtsp", {"rtsp_transport": self.options.rtsp_transport}
            return PUSH_FORMATS[scheme], {"flush_packets": "1"}  # each frame sent as it is made
        if self.target.endswith(".m3u8"):
            playlist = Path(self.target)
            folder = playlist.parent
            if playlist.is_dir():
                raise OutputError(playlist, "is a folder: give FOLDER/index.m3u8")
            if folder.exists() and not folder.is_dir():
                raise OutputError(folder, "is a file, not a folder")
            return "hls", {
                "hls_time": f"{self.options.segment_seconds:g}",
                "hls_list_size": str(self.options.window),
                "hls_flags": "delete_segments+independent_segments",
                "hls_segment_filename": str(folder / "segment-%06d.ts"),
            }
        raise OutputError(
            self.target,
            "not a live output: give DIR/index.m3u8 (HLS) or a udp://, tcp://, srt://, "
            "rtmp:// or rtsp:// address",
        )

    def open(self, width: int, height: int, fps: float, audio: bool) -> None:
        fps = fps if math.isfinite(fps) and 1 <= fps <= 240 else 30.0
        self.period = 1 / fps
        width, height = width - width % 2, height - height % 2
        self.size = (width, height)
        container_format, container_options = self._format()
        if container_format == "hls":
            folder = Path(self.target).parent
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise OutputError(folder, exc.strerror or "cannot make the folder") from None
        gop = str(max(1, round(fps * self.options.segment_seconds)))
        try:
            self.container = av.open(
                self.target, "w", format=container_format, options=container_options
            )
            stream = self.container.add_stream(
                "libx264", rate=Fraction(fps).limit_denominator(1001)
            )
        except (av.error.FFmpegError, OSError) as exc:
            raise OutputError(shown(self.target), _reason(exc)) from None
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        stream.codec_context.options = {
            "preset": self.blur.preset,
            "tune": "zerolatency",  # no frames held back in the encoder
            "crf": str(self.blur.crf),
            "g": gop,
            "keyint_min": gop,
            "sc_threshold": "0",  # keyframes where segments start, not at picture changes
        }
        self.stream = stream
        if audio:
            self.audio = self.container.add_stream("aac", rate=AUDIO_RATE, layout="stereo")
            self._resampler = av.AudioResampler(format="fltp", layout="stereo", rate=AUDIO_RATE)
            self._fifo = av.AudioFifo()
        if self.recording is not None:
            streams = [self.stream] + ([self.audio] if self.audio is not None else [])
            for each in streams:
                each.codec_context.open()  # its parameters, for the recording's files
            self.recording.open(streams)

    def _send(self, packet: Any, stream: Any) -> None:
        if self.recording is not None:
            self.recording.add(packet, stream)
        self.container.mux(packet)

    def at(self, connection: int, source_time: float, arrived: float) -> float:
        """The output time of what is ``source_time`` s into opening ``connection`` and
        arrived at ``arrived`` (``time.monotonic()``): the source's own pace within an
        opening, after the last picture across openings, and never more than
        ``MAX_DRIFT`` s from the pace things arrived at (a sender's clock that jumps,
        starts again or runs fast is set back in step)."""
        clock = self._clock
        if clock is None or clock.connection != connection:
            start = 0.0 if self.last is None else self.last + self.period
            clock = self._clock = _Clock(connection, start - source_time, start, arrived)
        when = clock.offset + source_time
        paced = clock.start + (arrived - clock.arrived)
        if abs(when - paced) > MAX_DRIFT:
            clock.offset = paced - source_time
            when = paced
        return when

    def write(self, picture: Any, when: float) -> None:
        if self.last is not None and when <= self.last:
            when = self.last + 0.001  # timestamps only rise
        width, height = self.size
        frame = picture.reformat(width=width, height=height, format="yuv420p")
        frame.pts = round(when * 1000)
        frame.time_base = Fraction(1, 1000)
        try:
            for packet in self.stream.encode(frame):
                self._send(packet, self.stream)
        except (av.error.FFmpegError, OSError) as exc:
            raise OutputError(shown(self.target), _reason(exc)) from None
        self.last = frame.pts / 1000
        self.last_written = time.monotonic()

    def write_sound(self, sound: Any, when: float) -> None:
        """Audio that starts at ``when`` s of the output: resampled, re-cut into the
        encoder's frames, and placed where it belongs (a gap or a jump of more than a
        tenth of a second starts it afresh; it never goes back)."""
        if self.audio is None:
            return
        due = round(when * AUDIO_RATE)
        if self._next_sample is None or due > self._next_sample + AUDIO_RATE // 10:
            self._fifo = av.AudioFifo()  # what was left is dropped: a few ms at a gap
            self._next_sample = max(due, self._next_sample or 0)
        sound.pts = None  # the FIFO goes by sample count, not by the source's clock
        for resampled in self._resampler.resample(sound):
            self._fifo.write(resampled)
        size = self.audio.codec_context.frame_size or 1024
        while self._fifo.samples >= size:
            chunk = self._fifo.read(size)
            chunk.pts = self._next_sample
            chunk.time_base = Fraction(1, AUDIO_RATE)
            self._next_sample += size
            try:
                for packet in self.audio.encode(chunk):
                    self._send(packet, self.audio)
            except (av.error.FFmpegError, OSError) as exc:
                raise OutputError(shown(self.target), _reason(exc)) from None

    def close(self) -> None:
        if self.container is None:
            return
        try:
            with contextlib.suppress(av.error.FFmpegError):
                for stream in (self.stream, self.audio):
                    for packet in stream.encode() if stream is not None else ():
                        self._send(packet, stream)
        finally:
            if self.recording is not None:
                self.recording.close()
            with contextlib.suppress(av.error.FFmpegError, OSError):
                self.container.close()
            self.container = None


@dataclass
class _Epoch:
    """The schedule and tracker of one opening of the source: frames are numbered from 0
    within it, so its first frame gets a full analysis."""

    connection: int
    tracker: Tracker
    schedule: DetectionSchedule
    next_index: int = 0
    last: DecodedFrame | None = None


@dataclass
class _Waiting:
    """A frame waiting for its boxes; ``covered``: it leaves covered whole instead."""

    arrival: _Arrival
    covered: bool = False


def run_live(
    source: str,
    output: str,
    options: LiveOptions | None = None,
    blur: BlurOptions | None = None,
    *,
    stop: threading.Event | None = None,
    detector: FaceDetector | None = None,
    status: Callable[[LiveStats], None] | None = None,
    status_every: float = 5.0,
) -> LiveStats:
    """Anonymize ``source`` live into ``output`` until the source ends (a file without
    ``loop``) or ``stop`` is set; ``status`` is called with the figures every
    ``status_every`` seconds; ``detector``: one already made (``blur.detector()``).
    Raises ``LiveSourceError`` when the source cannot be opened, ``OutputError`` when
    the output cannot be written."""
    options = options or LiveOptions()
    blur = blur or BlurOptions()
    _check_source(source, options)
    live = _Live(source, output, options, blur, stop or threading.Event(), detector)
    return live.run(status, status_every)


def _check_source(source: str, options: LiveOptions) -> None:
    try:
        urlsplit(source)
    except ValueError:
        raise LiveSourceError(shown(source), "not an address veil can read") from None
    if is_network_source(source):
        return
    path = Path(source)
    if not path.exists():
        raise LiveSourceError(source, "no such file or device")
    if path.is_file() and not options.realtime:
        raise LiveSourceError(
            source,
            "is a file: give --realtime to play it at its own pace as a live source "
            "(or veil blur to anonymize it as fast as it can)",
        )


class _Live:
    """One live run: frames from the reader in, anonymized frames out."""

    def __init__(
        self,
        source: str,
        output: str,
        options: LiveOptions,
        blur: BlurOptions,
        stop: threading.Event,
        detector: FaceDetector | None,
    ) -> None:
        self.options = options
        self.blur = blur
        self.stop = stop
        self.out = _Output(output, options, blur)  # a target that is no output fails first
        self.detector = detector or blur.detector()
        self.moving = blur.moving_detector()
        self.anonymizer = get_anonymizer(blur.mode)
        self.reader = _Reader(source, options, stop)
        self.stats = LiveStats()
        self.waiting: deque[_Waiting] = deque()
        self.epoch: _Epoch | None = None
        self.tracking: tuple[TrackerOptions, int] | None = None
        self.late_after = options.delay
        """A frame that waited this long before its analysis cannot be held in time."""
        self.catching_up = False

    def run(self, status: Callable[[LiveStats], None] | None, every: float) -> LiveStats:
        return_frame_memory_to_the_system()  # hours of frames, and the memory stays flat
        self.detector.detect_frame(np.zeros((64, 64, 3), np.uint8))  # start-up, not on a frame
        reader = self.reader
        reader.start()
        said = time.monotonic()
        try:
            while True:
                if status is not None and time.monotonic() - said >= every:
                    said = time.monotonic()
                    status(self._counted())
                try:
                    item = reader.frames.get(timeout=0.05)
                except queue.Empty:
                    if self.stop.is_set():
                        break
                    self._check_deadline()  # the source paused with frames waiting
                    if reader.down:
                        self._show_slate()
                    continue
                if isinstance(item, _Ended):
                    break
                if isinstance(item, _Lost):
                    self.stats.lost = item.reason
                    self._finish_epoch()
                    continue
                if isinstance(item, _Sound):
                    if self.epoch is not None and item.connection != self.epoch.connection:
                        self._finish_epoch()  # a looped file's new round: the old frames first
                    if self.out.stream is not None:  # before the first frame: no output yet
                        source_time = float(item.frame.time or 0)
                        when = self.out.at(item.connection, source_time, item.arrived)
                        self.out.write_sound(item.frame, when)
                    continue
                self._take(item)
            self._finish_epoch()
        finally:
            self.stop.set()
            reader.join(timeout=2)  # one blocked in a read or a listen ends with the process
            self.out.close()
        if reader.error is not None:
            raise reader.error
        return self._counted()

    def _take(self, item: _Arrival) -> None:
        self.stats.frames_in += 1
        self.stats.lost = None
        fps = self.reader.fps
        if self.out.stream is None:
            picture = item.frame.picture
            turned = item.frame.rotation in (90, 270)  # a phone's file: shown upright
            width, height = (
                (picture.height, picture.width) if turned else (picture.width, picture.height)
            )
            self.out.open(width, height, fps, self.reader.has_audio)
        if self.tracking is None:
            self.tracking = live_tracking(self.blur, fps, self.options.delay)
            self.late_after = max(0.0, self.options.delay - self.tracking[0].latency / fps)
        if self.epoch is not None and item.connection != self.epoch.connection:
            self._finish_epoch()
        if self.epoch is None:
            tracker, every = self.tracking
            self.epoch = _Epoch(
                item.connection,
                Tracker(tracker),
                DetectionSchedule(self.detector, every, self.moving),
            )
        epoch = self.epoch
        frame = replace(item.frame, index=epoch.next_index)
        epoch.next_index += 1
        epoch.last = frame
        self.waiting.append(_Waiting(replace(item, frame=frame)))
        self._check_memory()
        age = time.monotonic() - item.arrived
        if age > self.late_after or (self.catching_up and age > 2 / fps):
            # Too late to be analysed and held within the delay: it leaves covered whole,
            # and so do the frames waiting for the analysis it would have had. Frames are
            # passed over until the newest is reached, so the next analysis is not late
            # again for the backlog alone.
            self.catching_up = True
            for waiting in self.waiting:
                waiting.covered = True
            self._emit(epoch.schedule.skip(frame, epoch.tracker))
        else:
            self.catching_up = False
            self._emit(epoch.schedule.analyse(frame, epoch.tracker))
        self._check_deadline()

    def _check_deadline(self) -> None:
        """Frames still waiting for their boxes when their delay is spent leave covered
        whole, now; the tracker's answer for them later is passed over."""
        waiting = self.waiting
        if waiting and time.monotonic() - waiting[0].arrival.arrived > self.options.delay:
            while waiting:
                item = waiting.popleft()
                item.covered = True
                self._leave(item, None)

    def _check_memory(self) -> None:
        """The oldest frames leave covered whole while those held pass ``WAITING_BYTES``."""
        held = sum(w.arrival.frame.nbytes for w in self.waiting)
        while held > WAITING_BYTES and len(self.waiting) > 1:
            item = self.waiting.popleft()
            held -= item.arrival.frame.nbytes
            item.covered = True
            self._leave(item, None)

    def _emit(self, ready: list[tuple[int, Detections]]) -> None:
        for index, detections in ready:
            if not self.waiting or self.waiting[0].arrival.frame.index != index:
                continue  # left already, covered whole at its deadline
            self._leave(self.waiting.popleft(), detections)

    def _leave(self, item: _Waiting, detections: Detections | None) -> None:
        arrival = item.arrival
        if item.covered or detections is None:
            frame = arrival.frame
            upright = frame.rotation == 0 and not frame.mirrored
            picture = cover_whole(
                frame.picture
                if upright
                else av.VideoFrame.from_ndarray(frame.rgb(), format="rgb24")
            )
            self.stats.covered_whole += 1
        else:
            picture = self._hidden(arrival.frame, detections)
        when = self.out.at(arrival.connection, arrival.frame.time, arrival.arrived)
        self.out.write(picture, when)
        self.stats.frames_out += 1
        self.stats.delays.append(time.monotonic() - arrival.arrived)

    def _hidden(self, frame: DecodedFrame, detections: Detections) -> Any:
        upright = frame.rotation == 0 and not frame.mirrored
        if not len(detections):
            return (
                frame.picture
                if upright
                else av.VideoFrame.from_ndarray(frame.rgb(), format="rgb24")
            )
        boxes = detections.grown(self.blur.box_scale)
        editable = frame.editable_copy() if upright else None
        if editable is not None:  # hidden in YUV, as files are
            copy, planes, full_range = editable
            hide_in_yuv420(self.anonymizer, planes, boxes, full_range)
            return copy.picture
        hidden = self.anonymizer.apply(frame.rgb(), boxes)
        return av.VideoFrame.from_ndarray(hidden, format="rgb24")

    def _finish_epoch(self) -> None:
        """The source's opening ended: the frames still held leave with their boxes,
        after a last look for a face that came since the last full analysis."""
        epoch = self.epoch
        if epoch is not None:
            if epoch.last is not None:
                self._emit(epoch.schedule.last_look(epoch.last, epoch.tracker))
            self._emit(epoch.tracker.flush())
        self.epoch = None

    def _show_slate(self) -> None:
        out = self.out
        if out.stream is None:
            return
        width, height = out.size
        while time.monotonic() - out.last_written >= out.period:
            out.write(
                slate(width, height, "source lost: reconnecting"), (out.last or 0) + out.period
            )
            self.stats.slate_frames += 1

    def _counted(self) -> LiveStats:
        self.stats.reconnects = self.reader.reconnects
        self.stats.dropped = self.reader.dropped
        return self.stats
