"""Long videos in pieces: cut at keyframes, processed apart, joined without re-encoding.

A video is cut at keyframes about ``seconds`` apart (``plan_segments``). Each segment is
processed on its own, by any process on any machine (``blur_segment``): it decodes from a
keyframe before its range and analyses a margin of frames first, so that its tracks,
holds and look-ahead reach the seam as they would in one run over the whole video; it
writes only its own frames, the picture alone, encoded with the same settings as every
other segment. ``join_segments`` then copies the segments' packets into one file,
re-encoding nothing, with the input's audio, subtitles and tags copied once;
``join_faces`` makes one faces file of theirs.

Exactness, and how it is checked. The boxes of a frame depend on the run's state (the
tracker's tracks and the schedule's memory of picture change) and the frames to come.
Every part of that state depends on a bounded past (``veil.motion``, ``veil.tracker``),
so a run that starts a margin early usually arrives at the seam in the very state a run
from the first frame has there. Usually is not always (a face missed for a long time, a
fast face followed frame by frame, whose looks depend on where each one before found
it), so each segment records its state on entering its range (``SegmentRun.entry``) and
on leaving it (``exit``), and ``inexact_seams`` compares each entry with the exit of the
segment before. Equal states give equal boxes from there on, seams included; a segment
whose entry differs is run again from the exit state of the one before
(``blur_segment(..., entry=...)``), which is exact by construction. ``blur_segmented``
does all of this in one process; the service spreads it over workers.

Everything that crosses a process boundary is plain data: ``SegmentPlan.to_json``,
``SegmentRun.to_json``.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from veil.detector import FaceDetector
from veil.errors import OptionError, OutputError
from veil.motion import BUSY_FRAMES
from veil.pipeline import BlurOptions, ProgressCallback, Window, blur_window
from veil.thumbnails import Thumbnails
from veil.tracker import matching_tracks, same_state
from veil.video import Keyframe, VideoReader, VideoWriter, index_video, probe

SHORTEST_LAST = 0.5
"""A last segment shorter than this fraction of ``seconds`` joins the one before."""


@dataclass(frozen=True, kw_only=True)
class Segment:
    """One piece of a video: its own frames ``first_frame`` to ``end`` (excluded), by
    presentation order, the first at time ``start_pts`` (video stream time base).

    To process them it decodes from the keyframe ``keyframe_pts`` (frame
    ``keyframe_index``), shows the schedule the picture change of frames from
    ``warm_from``, analyses and tracks frames from ``analyse_from``, and reads up to
    frame ``stop`` (excluded; ``None``: to the end of the video), frames past ``end``
    only looked at for the boxes of its last frames.
    """

    index: int
    first_frame: int
    frames: int
    start_pts: int
    keyframe_pts: int
    keyframe_dts: int | None
    keyframe_index: int
    warm_from: int
    analyse_from: int
    stop: int | None

    @property
    def end(self) -> int:
        return self.first_frame + self.frames

    @property
    def margin_before(self) -> int:
        """Frames analysed before its own (the state's warm-up)."""
        return self.first_frame - self.analyse_from

    def window(self, entry: dict[str, Any] | None = None) -> Window:
        return Window(
            start=Keyframe(self.keyframe_pts, self.keyframe_dts, self.keyframe_index),
            warm=self.warm_from,
            analyse=self.analyse_from,
            first=self.first_frame,
            end=self.end,
            stop=self.stop,
            first_pts=self.start_pts,
            entry=entry,
        )


@dataclass(frozen=True, kw_only=True)
class SegmentPlan:
    """The segments of one video, in order, and what processing them assumes.

    ``frame_count``: the video's frames; ``time_base``: its video stream's, as
    ``(numerator, denominator)``; ``latency``: the frames each frame waits for its boxes
    with the options the plan was made for (``TrackerOptions.latency``), which
    ``blur_segment`` checks; ``seconds``: the length asked for.
    """

    frame_count: int
    time_base: tuple[int, int]
    latency: int
    seconds: float
    segments: tuple[Segment, ...]

    def to_json(self) -> dict[str, Any]:
        data = {name: getattr(self, name) for name in ("frame_count", "latency", "seconds")}
        return data | {
            "time_base": list(self.time_base),
            "segments": [segment.__dict__.copy() for segment in self.segments],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SegmentPlan:
        numerator, denominator = data["time_base"]
        return cls(
            frame_count=int(data["frame_count"]),
            time_base=(int(numerator), int(denominator)),
            latency=int(data["latency"]),
            seconds=float(data["seconds"]),
            segments=tuple(Segment(**s) for s in data["segments"]),
        )


def margin_frames(options: BlurOptions, fps: float, frame_pixels: int) -> tuple[int, int]:
    """Frames a segment analyses before its own, and after (its latency).

    After: the frames each frame waits for its final boxes (``TrackerOptions.latency``:
    a track that starts that much later reaches back over it with its hold; a gap that
    long is filled in), exactly, since frames further on change nothing before them.

    Before: what the state at the seam is made of, each part with the frames it needs.
    The frames still waiting at the seam (the latency); the observations the tracker
    keeps from before the oldest of them (``smooth + 1``: its smoothing and
    interpolation), about one per full analysis, ``detect_every`` frames apart; and two
    intervals more for the one observation only a margin makes (a track new to the
    segment, old in a run from the start, is looked at again on the frame after its
    first detection), which must be forgotten by the seam. With the defaults at 30 fps:
    32 + 5 x 10 = 82 frames (2.7 s). A face undetected for longer than that around a seam
    may still leave the states apart; the seam check finds it (``inexact_seams``).
    The schedule's busy average looks back ``BUSY_FRAMES`` frames: those are decoded
    and their picture change taken in (``warm_from``), nothing analysed.
    """
    tracker = options.tracker_options(fps, detecting=True, frame_pixels=frame_pixels)
    before = tracker.latency + (tracker.smooth + 3) * options.detect_every
    return before, tracker.latency


def plan_segments(path: str | Path, seconds: float, options: BlurOptions) -> SegmentPlan:
    """Cut ``path`` at keyframes about ``seconds`` apart (packets read, not decoded).

    One segment, the whole video, when it is shorter than ``1 + SHORTEST_LAST``
    segments, when ``seconds`` is 0 or less, or when its frames cannot be found by
    timestamp (``veil.video.index_video``). Cuts fall on the first keyframe at least
    ``seconds`` after the previous cut; a video with keyframes far apart gets longer
    segments. Raises what ``VideoReader`` raises for a file it cannot use.
    """
    info = probe(path)
    index = index_video(path)
    pixels = info.width * info.height
    before, latency = margin_frames(options, info.fps, pixels)
    if index is None:
        # Not indexed: one segment read from the start, its frames counted as it goes.
        whole = Segment(
            index=0,
            first_frame=0,
            frames=info.frame_count or 0,
            start_pts=0,
            keyframe_pts=0,
            keyframe_dts=None,
            keyframe_index=-1,
            warm_from=0,
            analyse_from=0,
            stop=None,
        )
        return SegmentPlan(
            frame_count=info.frame_count or 0,
            time_base=(0, 1),
            latency=latency,
            seconds=seconds,
            segments=(whole,),
        )
    total = len(index.pts)
    cuts = [0]
    if seconds > 0:
        for key in index.keyframes:
            at = index.seconds(key.index)
            if at >= index.seconds(cuts[-1]) + seconds:
                cuts.append(key.index)
        duration = index.seconds(total - 1) + (1 / info.fps if info.fps else 0)
        if len(cuts) > 1 and duration - index.seconds(cuts[-1]) < SHORTEST_LAST * seconds:
            cuts.pop()
    keyframes = index.keyframes
    segments = []
    for n, first in enumerate(cuts):
        end = cuts[n + 1] if n + 1 < len(cuts) else total
        analyse_from = max(0, first - before)
        warm_from = max(0, analyse_from - BUSY_FRAMES)
        key = next(k for k in reversed(keyframes) if k.index <= warm_from)
        stop = end + latency if end + latency < total else None
        segments.append(
            Segment(
                index=n,
                first_frame=first,
                frames=end - first,
                start_pts=index.pts[first],
                keyframe_pts=key.pts,
                keyframe_dts=key.dts,
                keyframe_index=key.index,
                warm_from=warm_from,
                analyse_from=analyse_from,
                stop=stop,
            )
        )
    return SegmentPlan(
        frame_count=total,
        time_base=(index.time_base.numerator, index.time_base.denominator),
        latency=latency,
        seconds=seconds,
        segments=tuple(segments),
    )


@dataclass(frozen=True, kw_only=True)
class SegmentRun:
    """What processing one segment did and the state it left at its seams.

    ``frames`` written; ``decoded`` from its keyframe on (margins and the frames between
    the keyframe and the warm-up included); ``analysed`` whole and ``followed`` (looked
    at near faces), margins included; ``tracks`` it started, margins included; ``entry``
    its state after frame ``first_frame - 1`` and ``exit`` after its last frame (plain
    data: ``veil.tracker.Tracker.state`` and ``veil.motion.DetectionSchedule.state``;
    ``None`` where there is no seam); ``handed``: it went on from a state it was given
    instead of analysing a margin; ``seconds`` it took.
    """

    index: int
    frames: int
    decoded: int
    analysed: int
    followed: int
    tracks: int
    entry: dict[str, Any] | None
    exit: dict[str, Any] | None
    handed: bool = False
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SegmentRun:
        return cls(**data)


def blur_segment(
    input_path: str | Path,
    plan: SegmentPlan,
    index: int,
    output_path: str | Path | None,
    options: BlurOptions | None = None,
    *,
    faces_out: str | Path | None = None,
    progress: ProgressCallback | None = None,
    thumbnails: Thumbnails | None = None,
    entry: dict[str, Any] | None = None,
    detector: FaceDetector | None = None,
) -> SegmentRun:
    """``blur_video`` of segment ``index`` of ``plan``: its frames alone, the picture
    alone (no audio, no tags), to ``output_path`` (``None``: faces only), in the
    container its suffix names; name every segment of a video with its output's suffix,
    so they join. ``faces_out`` gets its frames' faces with track ids of its own
    (``join_faces`` numbers them as a run over the whole video would); ``thumbnails``
    gets pictures of its tracks by those ids (``track_ids`` maps them).

    ``entry``: the ``exit`` state of the segment before, to go on from (exact) instead
    of analysing a margin; see ``inexact_seams``. ``progress`` counts this segment's
    frames. Raises ``OptionError`` if ``options`` make frames wait longer than the plan
    was made for.
    """
    options = options or BlurOptions()
    segment = plan.segments[index]
    info = probe(input_path)
    _, latency = margin_frames(options, info.fps, info.width * info.height)
    if latency != plan.latency:
        raise OptionError(
            f"these options make frames wait {latency} frames for their boxes; the "
            f"segments were planned for {plan.latency}: plan again with these options"
        )
    first, last = segment.first_frame - 1, segment.end - 1
    states: dict[int, dict[str, Any] | None] = {first: None, last: None}
    window = segment.window(entry)
    if segment.keyframe_index < 0:  # not indexed: read from the start
        window = replace(window, start=None, end=None, first_pts=None)
    began = time.monotonic()
    result = blur_window(
        input_path,
        output_path,
        window,
        options,
        faces_out=faces_out,
        detector=detector,
        progress=progress,
        thumbnails=thumbnails,
        states=states,
    )
    return SegmentRun(
        index=index,
        frames=result.frames,
        decoded=result.decoded,
        analysed=result.analysed,
        followed=result.followed,
        tracks=result.tracks,
        entry=states[first] if index > 0 else None,
        exit=states[last] if index + 1 < len(plan.segments) else None,
        handed=entry is not None,
        seconds=time.monotonic() - began,
    )


def states_match(exit_state: dict[str, Any] | None, entry_state: dict[str, Any] | None) -> bool:
    """Whether a segment that entered its range in ``entry_state`` goes on as the run
    that left the segment before in ``exit_state`` does (equal but for track ids)."""
    if exit_state is None or entry_state is None:
        return False
    return exit_state["schedule"] == entry_state["schedule"] and same_state(
        exit_state["tracker"], entry_state["tracker"]
    )


def inexact_seams(runs: Sequence[SegmentRun]) -> list[int]:
    """The segments (by index) whose entry state differs from the exit state of the
    segment before: their boxes near the seam may differ from a run over the whole
    video. Run each again with ``entry=runs[i - 1].exit``, in order (a segment run
    again leaves its own exit state, which the next seam is then checked against)."""
    return [run.index for prev, run in itertools.pairwise(runs) if not seam_ok(prev, run)]


def seam_ok(before: SegmentRun, after: SegmentRun) -> bool:
    """Whether the seam between two consecutive segments is exact."""
    return (after.handed and after.entry == before.exit) or states_match(before.exit, after.entry)


def track_ids(runs: Sequence[SegmentRun]) -> list[Callable[[int], int]]:
    """For each segment, the map from its own track ids to those of a run over the whole
    video: a track that crosses a seam keeps the id it had before it; tracks started in
    a segment are numbered on from the ids the video had used by its start. Needs every
    seam exact (``inexact_seams``)."""
    maps: list[Callable[[int], int]] = []
    used = 0  # ids the whole video had used by the current segment's start
    previous: Callable[[int], int] | None = None
    for n, run in enumerate(runs):
        if n == 0:
            base, entry_next, carried = 0, 0, {}
        else:
            before = runs[n - 1]
            if not seam_ok(before, run):
                raise OutputError(
                    Path(f"segment {run.index}"),
                    "its entry state differs from the exit of the segment before: "
                    "run it again from that state first",
                )
            assert previous is not None and before.exit is not None and run.entry is not None
            own = matching_tracks(before.exit["tracker"], run.entry["tracker"])
            carried = {mine: previous(theirs) for mine, theirs in own.items()}
            base, entry_next = used, int(run.entry["tracker"]["next_id"])
        previous = _id_map(carried, base, entry_next)
        maps.append(previous)
        if run.exit is not None:
            used = base + int(run.exit["tracker"]["next_id"]) - entry_next
    return maps


def _id_map(carried: dict[int, int], base: int, entry_next: int) -> Callable[[int], int]:
    def global_id(local: int) -> int:
        if local in carried:
            return carried[local]
        if local < entry_next:
            raise ValueError(f"track {local} ended before its segment's range")
        return base + local - entry_next

    return global_id


@dataclass(frozen=True)
class JoinResult:
    """The join: video packets copied, what the output lost of the input's metadata
    (as ``RunResult.metadata_removed``), decoding times moved to keep them increasing
    across seams, and the seconds it took."""

    frames: int
    metadata_removed: dict[str, list[str]]
    dts_moved: int = 0
    seconds: float = 0.0


def join_segments(
    input_path: str | Path,
    plan: SegmentPlan,
    segment_videos: Sequence[str | Path],
    output_path: str | Path,
    options: BlurOptions | None = None,
) -> JoinResult:
    """Copy the segments' video packets, in order, into ``output_path`` (its container
    from its suffix, as ``blur_video``), with the input's audio, subtitles, chapters and
    tags copied once under the same metadata policy; nothing is re-encoded.

    The segments must share their codec parameters (the same encoder, settings and size
    give the same headers): each begins with a keyframe that refers to nothing before
    it, so the joined stream decodes as one. Their timestamps are the input's already;
    where an encoder's decoding delay would make a segment's first decoding time fall
    before the last one of the segment before, it is moved up to the next tick.
    """
    options = options or BlurOptions()
    began = time.monotonic()
    if len(segment_videos) != len(plan.segments):
        raise OutputError(
            Path(output_path),
            f"{len(segment_videos)} segment videos for {len(plan.segments)} segments",
        )
    with contextlib.ExitStack() as stack:
        parts = [stack.enter_context(av.open(str(p))) for p in segment_videos]
        streams = [part.streams.video[0] for part in parts]
        _check_joinable(Path(output_path), segment_videos, streams)
        reader = stack.enter_context(VideoReader(input_path))
        writer = VideoWriter(output_path, reader, options.encode_options(), copy_video=streams[0])
        stack.callback(writer.close)
        others = _Lookahead(reader.other_packets())
        frames = moved = 0
        last_dts: int | None = None
        for segment, part, stream in zip(plan.segments, parts, streams, strict=True):
            count = 0
            shift: int | None = None
            for packet in part.demux(stream):
                if not packet.size:
                    continue
                count += 1
                if shift is None:
                    shift = _shift(plan, segment, packet, Path(segment_videos[segment.index]))
                if shift:
                    packet.pts = None if packet.pts is None else packet.pts + shift
                    packet.dts = None if packet.dts is None else packet.dts + shift
                if last_dts is not None and (packet.dts is None or packet.dts <= last_dts):
                    # Matroska stores no decoding times: FFmpeg leaves a segment's first
                    # ones unknown, and its muxer would guess them from the times before.
                    packet.dts = last_dts + 1
                    moved += 1
                    if packet.pts is not None and packet.dts > packet.pts:
                        raise OutputError(
                            Path(output_path),
                            f"segment {segment.index} starts too early to join "
                            "(its decoding times overlap the segment before)",
                        )
                if packet.dts is not None:
                    last_dts = packet.dts
                at = _seconds(packet)
                for other in others.until(at):
                    writer.write_audio(other)
                writer.write_packet(packet)
            if segment.keyframe_index >= 0 and count != segment.frames:
                raise OutputError(
                    Path(segment_videos[segment.index]),
                    f"holds {count} frames; segment {segment.index} has {segment.frames}",
                )
            frames += count
        for other in others.until(None):
            writer.write_audio(other)
        writer.commit()
        removed = writer.metadata_removed.to_json()
    return JoinResult(frames, removed, moved, time.monotonic() - began)


def _shift(plan: SegmentPlan, segment: Segment, first: Any, path: Path) -> int:
    """Ticks to add to a segment's timestamps to put its first frame back at its time.

    An MP4 or MOV file says when its first frame starts in an edit list counted in the
    movie's clock (milliseconds), not the track's: a segment starting at 8.667 s reads
    back 10 ticks of 1/15360 early. Within a segment the times are exact."""
    if segment.keyframe_index < 0 or first.pts is None:
        return 0
    clock = Fraction(*plan.time_base) / first.time_base
    shift: int = round(segment.start_pts * clock) - int(first.pts)
    if abs(shift * first.time_base) > _MOST_SHIFT:
        raise OutputError(
            path,
            f"starts at {float(first.pts * first.time_base):.3f} s, not where "
            f"segment {segment.index} starts: a segment of another plan?",
        )
    return shift


_MOST_SHIFT = Fraction(1, 20)
"""Seconds a segment's start may be off by (a millisecond is usual) before it is refused."""


def _check_joinable(output: Path, paths: Sequence[str | Path], streams: list[Any]) -> None:
    """Every segment's video must have the first one's codec, size, pixel format,
    headers (extradata) and clock, or the packets of one cannot follow another's."""

    def shape(stream: Any) -> tuple[Any, ...]:
        context = stream.codec_context
        return (
            context.name,
            context.width,
            context.height,
            context.pix_fmt,
            bytes(context.extradata or b""),
            stream.time_base,
        )

    first = shape(streams[0])
    for path, stream in zip(paths, streams, strict=True):
        if shape(stream) != first:
            raise OutputError(
                output,
                f"segment {path} was encoded differently from the first "
                "(codec, size, pixel format, headers or clock): encode every segment "
                "with the same options and output suffix",
            )


def _seconds(packet: Any) -> float | None:
    stamp = packet.dts if packet.dts is not None else packet.pts
    if stamp is None or packet.time_base is None:
        return None
    return float(stamp * packet.time_base)


class _Lookahead:
    """The input's other packets, handed out up to a time (for interleaving)."""

    def __init__(self, packets: Iterator[Any]) -> None:
        self._packets = packets
        self._next: Any = None
        self._done = False

    def until(self, at: float | None) -> Iterator[Any]:
        """Packets up to time ``at`` (all that are left for ``None``); those without a
        time go out at once."""
        while not self._done:
            if self._next is None:
                self._next = next(self._packets, None)
                if self._next is None:
                    self._done = True
                    return
            stamp = _seconds(self._next)
            if at is not None and stamp is not None and stamp > at:
                return
            packet, self._next = self._next, None
            yield packet


def join_faces(
    runs: Sequence[SegmentRun],
    segment_faces: Sequence[str | Path],
    output_faces: str | Path,
    *,
    metadata_removed: dict[str, list[str]] | None = None,
) -> None:
    """One faces file of the segments' (in order, timestamps ascending), their track ids
    numbered as a run over the whole video numbers them (``track_ids``), each frame's
    faces in that order: the faces file ``blur_video`` writes. ``metadata_removed``:
    the join's (``JoinResult``), which a segment, writing no audio or tags, cannot know.
    """
    maps = track_ids(runs)
    output = Path(output_faces)
    tmp = output.with_name(f".{output.name}.veil-{os.getpid()}.part")
    try:
        with tmp.open("w", encoding="utf-8") as out:
            head: dict[str, Any] | None = None
            first = True
            for global_id, path in zip(maps, segment_faces, strict=True):
                data = json.loads(Path(path).read_text(encoding="utf-8"))
                if head is None:
                    head = {k: v for k, v in data.items() if k != "Faces"}
                    if metadata_removed is not None:
                        head["MetadataRemoved"] = metadata_removed
                    out.write(json.dumps(head, separators=_COMPACT)[:-1] + ',"Faces":[')
                for entry in _in_track_order(data["Faces"], global_id):
                    out.write(("\n" if first else ",\n") + json.dumps(entry, separators=_COMPACT))
                    first = False
            out.write("\n]}\n")
        os.replace(tmp, output)
    except OSError as exc:
        raise OutputError(output, f"cannot write ({exc.strerror or exc})") from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


_COMPACT = (",", ":")


def _in_track_order(
    faces: list[dict[str, Any]], global_id: Callable[[int], int]
) -> Iterator[dict[str, Any]]:
    """``faces`` with their ids mapped, each timestamp's sorted by id (the order a run
    over the whole video gives: its tracks in the order they started)."""
    group: list[dict[str, Any]] = []
    for entry in faces:
        face = entry["Face"]
        if "TrackId" in face:
            face["TrackId"] = global_id(int(face["TrackId"]))
        if group and group[0]["Timestamp"] != entry["Timestamp"]:
            yield from sorted(group, key=lambda e: e["Face"].get("TrackId", -1))
            group = []
        group.append(entry)
    yield from sorted(group, key=lambda e: e["Face"].get("TrackId", -1))


@dataclass(frozen=True)
class SegmentedResult:
    """``blur_segmented``: the plan, each segment's run (the last one made), the
    segments run again from the state before them, and the join."""

    plan: SegmentPlan
    runs: list[SegmentRun]
    redone: list[int]
    join: JoinResult


def blur_segmented(
    input_path: str | Path,
    output_path: str | Path,
    seconds: float,
    options: BlurOptions | None = None,
    *,
    faces_out: str | Path | None = None,
    detector: FaceDetector | None = None,
    work: str | Path | None = None,
) -> SegmentedResult:
    """``blur_video`` done segment by segment in this process, as workers would do it:
    plan, every segment, seams checked (and segments run again where needed), join.
    ``work``: a folder for the segments' files (a temporary one by default)."""
    options = options or BlurOptions()
    output_path = Path(output_path)
    plan = plan_segments(input_path, seconds, options)
    folder = Path(work) if work else Path(tempfile.mkdtemp(prefix="veil-segments-"))
    try:
        videos = [folder / f"segment-{s.index}{output_path.suffix}" for s in plan.segments]
        faces = [folder / f"segment-{s.index}.json" for s in plan.segments]
        detector = detector or options.detector()
        runs = [
            blur_segment(
                input_path,
                plan,
                s.index,
                videos[s.index],
                options,
                faces_out=faces[s.index],
                detector=detector,
            )
            for s in plan.segments
        ]
        redone = []
        for n in range(1, len(runs)):
            if not seam_ok(runs[n - 1], runs[n]):
                redone.append(n)
                runs[n] = blur_segment(
                    input_path,
                    plan,
                    n,
                    videos[n],
                    options,
                    faces_out=faces[n],
                    detector=detector,
                    entry=runs[n - 1].exit,
                )
        joined = join_segments(input_path, plan, videos, output_path, options)
        if faces_out is not None:
            join_faces(runs, faces, faces_out, metadata_removed=joined.metadata_removed)
        return SegmentedResult(plan, runs, redone, joined)
    finally:
        if not work:
            shutil.rmtree(folder, ignore_errors=True)


__all__ = [
    "JoinResult",
    "Segment",
    "SegmentPlan",
    "SegmentRun",
    "SegmentedResult",
    "blur_segment",
    "blur_segmented",
    "inexact_seams",
    "join_faces",
    "join_segments",
    "margin_frames",
    "plan_segments",
    "seam_ok",
    "states_match",
    "track_ids",
]
