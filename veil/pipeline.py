"""The streaming loop: decode → detect → track → redact → encode, each stage overlapping.

Decoding runs in one thread and encoding in another (PyAV releases the GIL), detection
and redaction in the caller's thread (ONNX Runtime releases it too). Queues between
them are bounded, and frames wait only ``Tracker.latency`` frames for their final boxes,
so memory does not grow with the video's length.
"""

from __future__ import annotations

import math
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from veil.anonymizers import MODES, Anonymizer, get_anonymizer, hide_in_yuv420
from veil.detections import Detections
from veil.detector import DEVICES, PRECISIONS, CenterFace, FaceDetector, resolved_precision
from veil.errors import CorruptVideoError, OptionError
from veil.faces_file import FacesWriter, read_faces
from veil.motion import DetectionSchedule
from veil.thumbnails import Thumbnails
from veil.tracker import Tracker, TrackerOptions
from veil.video import (
    DecodedFrame,
    EncodeOptions,
    Frame,
    Keyframe,
    ReadInPlace,
    VideoInfo,
    VideoReader,
    VideoSource,
    VideoWriter,
    return_frame_memory_to_the_system,
    video_source,
)
from veil.yunet import YuNet

ProgressCallback = Callable[[int, int | None], None]
"""Called with (frames done, frames expected or None) as work advances."""


SHORT_WAIT_PIXELS = 2560 * 1440
"""Frames larger than this wait for their boxes only as long as the hold needs."""

TENTATIVE_RATIO = 0.5
"""Detections from this fraction of ``threshold`` start tentative tracks, drawn once
confirmed (``TrackerOptions.tentative_threshold``)."""

KEEP_RATIO = 0.25
"""A running track is extended by detections down to this fraction of ``threshold``."""


@dataclass(frozen=True, kw_only=True)
class BlurOptions:
    """Everything that shapes a run of ``veil blur``, ``detect`` or ``redact``.

    Detection: ``threshold`` (0-1), ``scale`` (input pixels per frame pixel at the
    detector's finest level: 2 finds faces from 16 px; see ``veil.tiling``),
    ``detect_every`` (analyse the whole frame once in N frames; ``veil.motion`` adds
    looks after cuts and near new or fast faces; the tracker fills the rest), ``device``,
    ``precision`` (int8 or fp32 model; auto: ``veil.detector.int8_is_exact``), ``yunet``
    (a second detector family where the picture moved: ``veil.yunet``). Tracking: ``hold``
    seconds a box stays before a face's first and after its last detection, ``max_gap``
    seconds a face may go undetected and stay covered.
    Redaction: ``mode``, ``box_scale`` (how much each box is grown, 1.3 = 30%). Encoding:
    ``crf``, ``preset``, ``codec`` (``veil.video.CODECS``), ``keep_audio``. Metadata
    (``veil.streams``): ``keep_metadata`` copies every tag and the cover art instead of
    the few players need; ``strip_time`` drops the creation time too.
    """

    mode: str = "blur"
    threshold: float = 0.2
    scale: float = 2.0
    detect_every: int = 10
    device: str = "cpu"
    precision: str = "auto"
    box_scale: float = 1.3
    hold: float = 0.5
    max_gap: float = 1.0
    crf: int = 20
    preset: str = "veryfast"
    codec: str = "auto"
    keep_audio: bool = True
    keep_metadata: bool = False
    strip_time: bool = False
    threads: int | None = None
    yunet: bool = True

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise OptionError(f"unknown mode {self.mode!r}; choose one of {', '.join(MODES)}")
        if self.device not in DEVICES:
            raise OptionError(f"unknown device {self.device!r}; choose one of {', '.join(DEVICES)}")
        if self.precision not in PRECISIONS:
            raise OptionError(
                f"unknown precision {self.precision!r}; choose one of {', '.join(PRECISIONS)}"
            )
        if not 0.0 < self.threshold < 1.0:
            raise OptionError(f"threshold must be between 0 and 1, got {self.threshold}")
        if not 0.0 < self.scale <= 4.0:
            raise OptionError(f"scale must be above 0 and at most 4, got {self.scale}")
        if self.detect_every < 1:
            raise OptionError(f"detect-every must be 1 or more, got {self.detect_every}")
        if not 1.0 <= self.box_scale <= 4.0:
            raise OptionError(f"box-scale must be between 1 and 4, got {self.box_scale}")
        if self.hold < 0 or self.max_gap < 0:
            raise OptionError("hold and max-gap must be 0 seconds or more")
        if not 0 <= self.crf <= 51:
            raise OptionError(f"crf must be between 0 and 51, got {self.crf}")

    def tracker_options(
        self, fps: float, *, detecting: bool = True, frame_pixels: int = 0
    ) -> TrackerOptions:
        """Frame counts for this video's rate. The hold spans at least two detection
        intervals, so a face that appears between analysed frames, or is missed once, is
        covered from its first frame; a gap may span three, so a small face the detector
        misses on two analysed frames in a row keeps its track. Frames larger than 1440p
        wait no longer than the hold needs (``TrackerOptions.short_wait``)."""
        fps = fps if math.isfinite(fps) and fps > 0 else 30.0
        hold = max(2 * self.detect_every, math.ceil(self.hold * fps))
        return TrackerOptions(
            max_gap=max(3 * self.detect_every, math.ceil(self.max_gap * fps)),
            pre_roll=hold,
            post_roll=hold,
            start_threshold=self.threshold if detecting else 0.0,
            tentative_threshold=self.threshold * TENTATIVE_RATIO if detecting else None,
            short_wait=frame_pixels > SHORT_WAIT_PIXELS,
        )

    def encode_options(self) -> EncodeOptions:
        return EncodeOptions(
            crf=self.crf,
            preset=self.preset,
            keep_audio=self.keep_audio,
            codec=self.codec,
            keep_metadata=self.keep_metadata,
            strip_time=self.strip_time,
        )

    def detector_name(self) -> str:
        """The model the detector runs, as reports name it (``centerface-int8``...)."""
        model = f"centerface-{resolved_precision(self.precision, self.device)}"
        return f"{model}+yunet" if self.yunet else model

    def moving_detector(self) -> YuNet | None:
        """The second detector family for the moving part of each full analysis
        (``veil.yunet``), unless ``yunet`` is off."""
        return YuNet() if self.yunet else None

    def detector(self) -> CenterFace:
        """The detector, reporting faces down to ``KEEP_RATIO * threshold``; the tracker
        starts tracks only at ``threshold``."""
        return CenterFace(
            threshold=self.threshold * KEEP_RATIO,
            scale=self.scale,
            device=self.device,
            precision=self.precision,
            threads=self.threads,
        )


@dataclass(frozen=True)
class RunResult:
    """What a run did: the video's facts, frames written and face tracks found; for
    detecting runs, the frames the detector analysed whole (``analysed``) and those it
    looked at only near tracked faces (``followed``); what the output lost of the input's
    metadata (``veil.streams.RemovedMetadata.to_json``), when an output was written."""

    info: VideoInfo
    frames: int
    tracks: int
    analysed: int = 0
    followed: int = 0
    metadata_removed: dict[str, list[str]] | None = None
    decoded: int = 0
    """Frames decoded: ``frames``, or for a ``Window`` its margins too."""


@dataclass(frozen=True, kw_only=True)
class Window:
    """The part of a video a run reads and writes: one segment of a longer video
    (``veil.segments``), its frames numbered as in the whole video.

    Decoding starts at the keyframe ``start`` (``None``: the first frame); frames from
    ``warm`` on only show the schedule how the picture changes; frames from ``analyse``
    on are analysed and tracked (a margin that brings the run to the state a run from
    the first frame has at ``first``); frames ``first`` to ``end`` (excluded; ``None``:
    to the last) are written, the first checked to have the time ``first_pts``; reading
    stops before frame ``stop`` (``None``: at the end of the video), the frames past
    ``end`` only looked at for the boxes of the last ones written. With ``entry`` (a
    run's state after frame ``first - 1``), the run goes on from it instead of analysing
    a margin. ``keyframes``: the frames to encode as keyframes (where another encoding
    of the same frames may take over).
    """

    start: Keyframe | None
    warm: int
    analyse: int
    first: int
    end: int | None
    stop: int | None
    first_pts: int | None
    entry: dict[str, Any] | None = None
    keyframes: frozenset[int] = frozenset()


_DONE = object()
# Frames queued between stages: enough for decoding and encoding to keep running while
# the detector works on an analysed frame, small enough to bound memory: at most 16
# frames, at most _QUEUE_BYTES of RGB pictures each way (two 4K frames).
_QUEUE_FRAMES = 16
_QUEUE_BYTES = 48 * 1024**2


def _queue_frames(info: VideoInfo) -> int:
    return max(2, min(_QUEUE_FRAMES, _QUEUE_BYTES // (info.width * info.height * 3)))


@dataclass(frozen=True)
class _Redacted:
    """A frame with faces hidden, for the encoder: RGB in display orientation."""

    image: Frame
    pts: int | None
    keyframe: bool = False


@dataclass(frozen=True)
class _Keyframe:
    """A frame without faces to encode as a keyframe (``Window.keyframes``)."""

    frame: DecodedFrame


def _background(items: Iterator[Any], maxsize: int) -> Iterator[Any]:
    """Runs ``items`` in a thread, passing values (and its exception) through a bounded queue."""
    q: queue.Queue[Any] = queue.Queue(maxsize)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(_DONE)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            q.put(exc)

    thread = threading.Thread(target=produce, daemon=True, name="veil-decode")
    thread.start()
    try:
        while True:
            item = q.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join(timeout=5)


class _EncoderThread:
    """Feeds a ``VideoWriter`` from a bounded queue in its own thread."""

    def __init__(self, writer: VideoWriter, maxsize: int) -> None:
        self._writer = writer
        self._queue: queue.Queue[Any] = queue.Queue(maxsize)
        self._error: BaseException | None = None
        self._abandoned = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="veil-encode")
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _DONE:
                return
            if self._error is not None or self._abandoned.is_set():
                continue  # drain so the producer never blocks on a dead or dropped writer
            try:
                if isinstance(item, _Redacted):
                    self._writer.write_frame(item.image, item.pts, keyframe=item.keyframe)
                elif isinstance(item, DecodedFrame):
                    self._writer.write_decoded(item)
                elif isinstance(item, _Keyframe):
                    self._writer.write_decoded(item.frame, keyframe=True)
                else:
                    self._writer.write_audio(item)
            except BaseException as exc:
                self._error = exc

    def put(self, item: Any) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(item)

    def finish(self) -> None:
        """Wait until every queued item is written; re-raise the writer's error."""
        self._queue.put(_DONE)
        self._thread.join()
        if self._error is not None:
            raise self._error

    def stop(self) -> None:
        """End the thread without writing what is still queued and without raising (after
        ``finish``, or on the way out of a failure)."""
        if self._thread.is_alive():
            self._abandoned.set()
            self._queue.put(_DONE)
            self._thread.join()


Analyse = Callable[[DecodedFrame, Tracker], list[tuple[int, Detections]]]
"""Finds a frame's faces (or not: the tracker can fill it in), feeds them to the tracker
and returns the frames the tracker finished."""


class _Span:
    """The frames a run reads, analyses and writes: every one, or a segment's
    ``Window`` of them (with its warm-up, margins and entry state), and where the run
    may end early (``end_after``). What ``_run``'s loop asks of a window."""

    def __init__(self, window: Window | None, input_path: Path) -> None:
        self.window = window
        self.input_path = input_path
        self.first = window.first if window else 0
        """The first frame written."""
        self.end: float = window.end if window and window.end is not None else math.inf
        """The frame after the last written."""
        # The last frame read: the last written one waits this long for its boxes.
        self.last: float = window.stop - 1 if window and window.stop is not None else math.inf
        self.keyframes = window.keyframes if window else frozenset()

    def tracker(self, options: TrackerOptions, schedule: DetectionSchedule | None) -> Tracker:
        """The run's tracker: a window's entry state restored (the schedule's too), or
        a new one starting where analysis starts."""
        window = self.window
        if window is not None and window.entry is not None:
            assert schedule is not None
            schedule.restore(window.entry["schedule"])
            return Tracker.restore(options, window.entry["tracker"])
        return Tracker(options, start=window.analyse if window else 0)

    def expected(self, info: VideoInfo) -> int | None:
        """Frames to write, for progress: Matroska and WebM headers carry no frame
        count, so the duration gives an estimate."""
        if self.window is not None and self.window.end is not None:
            return self.window.end - self.window.first
        return info.frame_count or (round(info.duration * info.fps) or None)

    def frames(self, reader: VideoReader) -> Iterator[DecodedFrame | Any]:
        """The decoded frames (and the packets passed through), from the window's
        keyframe on."""
        return iter(reader) if self.window is None else reader.frames(self.window.start)

    def writes(self, index: int) -> bool:
        return self.first <= index < self.end

    def analyses(
        self, frame: DecodedFrame, tracker: Tracker, schedule: DetectionSchedule | None
    ) -> bool:
        """Whether the run analyses ``frame``. A window's first written frame must have
        the time the plan says; its warm-up frames only show the schedule how the
        picture changes; frames its entry state already holds are skipped."""
        window = self.window
        if window is None:
            return True
        if (
            frame.index == window.first
            and window.first_pts is not None
            and frame.pts != window.first_pts
        ):
            raise CorruptVideoError(
                self.input_path,
                f"frame {window.first} has time {frame.pts}, "
                f"not {window.first_pts}: the decoder skipped or added frames",
            )
        if window.entry is None and window.warm <= frame.index < window.analyse:
            assert schedule is not None
            schedule.observe(frame)
            return False
        # Before the warm-up, or already in the entry state.
        return frame.index > tracker.seen

    def end_after(self, index: int, latency: int) -> None:
        """Write no frame after ``index``; read on only as far as its boxes need."""
        self.end, self.last = index + 1, min(self.last, index + latency)

    def check_written(self, done: int) -> None:
        """A window's run must have written every frame of it."""
        if self.window is not None and self.end != math.inf and done != self.end - self.first:
            first, end = self.first, int(self.end)
            raise CorruptVideoError(
                self.input_path,
                f"frames {first}-{end - 1}: the decoder gave {done} of {end - first}",
            )


def _run(
    input_path: VideoSource,
    analyse_for: Callable[[VideoReader], Analyse],
    options: BlurOptions,
    *,
    detecting: bool,
    output: Path | None,
    faces_out: Path | None,
    progress: ProgressCallback | None,
    thumbnails: Thumbnails | None = None,
    window: Window | None = None,
    schedule: DetectionSchedule | None = None,
    states: dict[int, dict[str, Any] | None] | None = None,
    done_at: Callable[[int, dict[str, Any]], bool] | None = None,
    times: dict[int, int | None] | None = None,
) -> RunResult:
    """The shared loop of blur, detect and redact: ``analyse_for`` gives what finds each
    frame's faces and feeds them to the tracker.

    ``window`` (with the ``schedule`` that ``analyse_for`` uses): only that part of the
    video. ``states``: the frame indices after which to record the run's state (tracker
    and schedule, plain data); filled in as the run passes them. ``done_at(index,
    state)``, asked at each of them: true ends the frames written after that one.
    ``times``: frame indices whose time (ms, as in the faces file) to note as they are
    written."""
    anonymizer: Anonymizer = get_anonymizer(options.mode)
    return_frame_memory_to_the_system()
    with VideoReader(input_path) as reader:
        info = reader.info
        analyse = analyse_for(reader)
        tracker_options = options.tracker_options(
            info.fps, detecting=detecting, frame_pixels=info.width * info.height
        )
        span = _Span(window, reader.path)
        tracker = span.tracker(tracker_options, schedule)
        pending: deque[DecodedFrame] = deque()
        done = 0
        expected = span.expected(info)
        writer: VideoWriter | None = None
        faces: FacesWriter | None = None
        encoder: _EncoderThread | None = None

        def emit(ready: list[tuple[int, Detections]]) -> None:
            nonlocal done
            for index, detections in ready:
                if not span.writes(index):
                    continue  # a window's margin: looked at, not written
                frame = pending.popleft()
                assert frame.index == index
                if times is not None and index in times:
                    times[index] = frame.time_ms
                if faces is not None and len(detections):
                    faces.add(frame.time_ms, detections)
                if encoder is not None and len(detections):
                    if thumbnails is not None:  # from the original, before it is hidden
                        thumbnails.offer(frame.rgb, detections)
                    boxes = detections.grown(options.box_scale)
                    editable = frame.editable_copy()
                    if editable is not None:  # hidden in YUV: no frame-sized RGB
                        copy, planes, full_range = editable
                        hide_in_yuv420(anonymizer, planes, boxes, full_range)
                        encoder.put(_Keyframe(copy) if index in span.keyframes else copy)
                    else:
                        image = anonymizer.apply(frame.rgb(), boxes)
                        encoder.put(_Redacted(image, frame.pts, index in span.keyframes))
                elif encoder is not None:
                    # No face: encoded as decoded, no trip through RGB.
                    encoder.put(_Keyframe(frame) if index in span.keyframes else frame)
                done += 1
                if progress is not None:
                    progress(done, expected)

        def record(index: int) -> None:
            if states is not None and index in states:
                state = {
                    "tracker": tracker.state(),
                    "schedule": schedule.state() if schedule is not None else None,
                }
                states[index] = state
                if done_at is not None and index + 1 < span.end and done_at(index, state):
                    span.end_after(index, tracker.latency)

        try:
            if output is not None:
                writer = VideoWriter(
                    output,
                    reader,
                    options.encode_options(),
                    video_only=window is not None,
                    time_offset=window.first_pts or 0 if window else 0,
                )
                encoder = _EncoderThread(writer, _queue_frames(info))
            if faces_out is not None:
                # The faces file says what the output lost of the input's metadata.
                removed = writer.metadata_removed.to_json() if writer is not None else None
                faces = FacesWriter(faces_out, info, metadata_removed=removed)
            record(tracker.seen)
            at_end = True
            last: DecodedFrame | None = None
            for item in _background(span.frames(reader), maxsize=_queue_frames(info)):
                if not isinstance(item, DecodedFrame):
                    if encoder is not None:
                        encoder.put(item)
                    continue
                if not span.analyses(item, tracker, schedule):
                    continue
                if span.writes(item.index):
                    pending.append(item)
                last = item
                emit(analyse(item, tracker))
                record(item.index)
                if item.index >= span.last:
                    at_end = False  # the last written frame has its boxes
                    break
            if at_end:
                if schedule is not None and last is not None:
                    # A face that came after the last full analysis is seen before the end.
                    emit([r for r in schedule.last_look(last, tracker) if r[0] <= last.index])
                emit([r for r in tracker.flush() if last is None or r[0] <= last.index])
            span.check_written(done)
            if encoder is not None and writer is not None:
                encoder.finish()
                writer.commit()
            if faces is not None:
                faces.commit()
        finally:
            # On failure: stop the encoder thread before its file is removed, and leave
            # no temporary files behind.
            if encoder is not None:
                encoder.stop()
            if writer is not None:
                writer.close()
            if faces is not None:
                faces.close()
        removed = writer.metadata_removed.to_json() if writer is not None else None
        return RunResult(
            info,
            done,
            tracker.tracks_started,
            metadata_removed=removed,
            decoded=reader.frames_decoded,
        )


def _detecting(
    input_path: VideoSource,
    detector: FaceDetector,
    options: BlurOptions,
    *,
    output: Path | None,
    faces_out: Path | None,
    progress: ProgressCallback | None,
    thumbnails: Thumbnails | None = None,
    window: Window | None = None,
    states: dict[int, dict[str, Any] | None] | None = None,
    done_at: Callable[[int, dict[str, Any]], bool] | None = None,
    times: dict[int, int | None] | None = None,
) -> RunResult:
    """A run that detects: the motion-aware schedule decides what the detector sees."""
    schedule = DetectionSchedule(detector, options.detect_every, options.moving_detector())
    result = _run(
        input_path,
        lambda _: schedule.analyse,
        options,
        detecting=True,
        output=output,
        faces_out=faces_out,
        progress=progress,
        thumbnails=thumbnails,
        window=window,
        schedule=schedule,
        states=states,
        done_at=done_at,
        times=times,
    )
    return replace(result, analysed=schedule.full_analyses, followed=schedule.follow_ups)


def blur_video(
    input_path: str | Path,
    output_path: str | Path,
    options: BlurOptions | None = None,
    *,
    faces_out: str | Path | None = None,
    detector: FaceDetector | None = None,
    progress: ProgressCallback | None = None,
    thumbnails: Thumbnails | None = None,
) -> RunResult:
    """Write a copy of ``input_path`` with every face anonymized to ``output_path``;
    ``thumbnails`` collects a picture of each tracked face from the original."""
    options = options or BlurOptions()
    detector = detector or options.detector()
    return _detecting(
        Path(input_path),
        detector,
        options,
        output=Path(output_path),
        faces_out=Path(faces_out) if faces_out else None,
        progress=progress,
        thumbnails=thumbnails,
    )


def blur_window(
    input_path: str | Path | ReadInPlace,
    output_path: str | Path | None,
    window: Window,
    options: BlurOptions | None = None,
    *,
    faces_out: str | Path | None = None,
    detector: FaceDetector | None = None,
    progress: ProgressCallback | None = None,
    thumbnails: Thumbnails | None = None,
    states: dict[int, dict[str, Any] | None] | None = None,
    done_at: Callable[[int, dict[str, Any]], bool] | None = None,
    times: dict[int, int | None] | None = None,
) -> RunResult:
    """``blur_video`` of the frames ``window`` writes (a segment, ``veil.segments``):
    the picture alone goes to ``output_path`` (``None``: none), their faces to
    ``faces_out``; ``states`` asks for the run's state after the frames it names (filled
    in), and ``done_at(index, state)`` at each of them whether the frames written may
    end after that one (``RunResult.frames`` says how many were); ``times`` gets the
    times (ms) of the frames it names as they are written."""
    options = options or BlurOptions()
    detector = detector or options.detector()
    return _detecting(
        video_source(input_path),
        detector,
        options,
        output=Path(output_path) if output_path else None,
        faces_out=Path(faces_out) if faces_out else None,
        progress=progress,
        thumbnails=thumbnails,
        window=window,
        states=states,
        done_at=done_at,
        times=times,
    )


def detect_video(
    input_path: str | Path,
    faces_out: str | Path,
    options: BlurOptions | None = None,
    *,
    detector: FaceDetector | None = None,
    progress: ProgressCallback | None = None,
) -> RunResult:
    """Write the tracked detections of ``input_path`` as a faces.json file."""
    options = options or BlurOptions()
    detector = detector or options.detector()
    return _detecting(
        Path(input_path),
        detector,
        options,
        output=None,
        faces_out=Path(faces_out),
        progress=progress,
    )


def redact_video(
    input_path: str | Path,
    faces_path: str | Path,
    output_path: str | Path,
    options: BlurOptions | None = None,
    *,
    progress: ProgressCallback | None = None,
    force: bool = False,
) -> RunResult:
    """Anonymize the boxes of a faces.json file (e.g. edited by hand) without detecting.

    Each entry applies to the frame nearest its ``Timestamp``; the tracker then links and
    holds boxes as it does for detections, so a box added at one timestamp is covered
    for the hold time around it. A faces file made for another video (another frame
    size or duration, ``veil.faces_file.check_made_for``) is refused unless ``force``:
    its boxes would land beside the faces.
    """
    options = options or BlurOptions()

    def analyse_for(reader: VideoReader) -> Analyse:
        info = reader.info
        made_for = None if force else info
        entries = deque(read_faces(faces_path, info.width, info.height, made_for=made_for))
        half_frame_ms = 500.0 / (info.fps or 30.0)

        def analyse(frame: DecodedFrame, tracker: Tracker) -> list[tuple[int, Detections]]:
            due = []
            while entries and entries[0][0] <= frame.time * 1000 + half_frame_ms:
                due.append(entries.popleft()[1])
            return tracker.update(frame.index, Detections.concatenate(due) if due else None)

        return analyse

    return _run(
        Path(input_path),
        analyse_for,
        options,
        detecting=False,
        output=Path(output_path),
        faces_out=None,
        progress=progress,
    )
