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
Nearly all of that state depends on a bounded past (``veil.motion``, ``veil.tracker``),
so a run that starts a margin early usually arrives at the seam in the very state a run
from the first frame has there. Usually is not always: a track that weak detections
have kept alive since long before the margin (hysteresis), a face missed for longer than
the margin. So each segment records its state on entering its range
(``SegmentRun.entry``), on leaving it (``exit``) and at a few frames in between where
its encoding has a keyframe (``Segment.splices``), and ``to_repair`` compares each
entry with the exit of the segment before. Equal states give equal boxes from there on,
seams included. A segment whose entry differs is repaired: run again from the exit
state of the one before (``blur_segment(..., entry=..., base=...)``), which is exact
by construction, only until its state equals the first run's at a splice (the two runs
usually agree again within a second or two); the join takes the repair's frames up to
there and the first run's from there (``parts``). ``blur_segmented`` does all of this
in one process; the service spreads it over workers.

Everything that crosses a process boundary is plain data: ``SegmentPlan.to_json``,
``SegmentRun.to_json``.
"""

from __future__ import annotations

import bisect
import contextlib
import hashlib
import itertools
import json
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from veil.detector import FaceDetector
from veil.errors import OptionError, OutputError
from veil.faces_file import FacesFileWriter, load
from veil.motion import BUSY_FRAMES
from veil.pipeline import BlurOptions, ProgressCallback, Window, blur_window
from veil.thumbnails import Thumbnails
from veil.tracker import fingerprint as tracker_fingerprint
from veil.video import Keyframe, ReadInPlace, VideoReader, VideoWriter, index_video, probe

MAX_SEGMENTS = 64
"""The most segments one job is cut into: a long video's segments grow instead (a 16-hour
near-still file of 1 MB made 1,000 segments at 60 s, each a workflow and a piece)."""
SHORTEST_LAST = 0.5
"""A last segment shorter than this fraction of ``seconds`` joins the one before."""

SPLICE_SECONDS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
"""Seconds into a segment where its encoding has a keyframe that a repair may hand over
at (``Segment.splices``): close together near its start, where a repair usually ends."""


@dataclass(frozen=True, kw_only=True)
class Segment:
    """One piece of a video: its own frames ``first_frame`` to ``end`` (excluded), by
    presentation order, the first at time ``start_pts`` (video stream time base).

    To process them it decodes from the keyframe ``keyframe_pts`` (frame
    ``keyframe_index``; ``None``: from the beginning), shows the schedule the picture
    change of frames from ``warm_from``, analyses and tracks frames from
    ``analyse_from``, and reads up to frame ``stop`` (excluded; ``None``: to the end of
    the video), frames past ``end`` only looked at for the boxes of its last frames. Its
    encoding has a keyframe at each of ``splices``.
    """

    index: int
    first_frame: int
    frames: int
    start_pts: int
    keyframe_pts: int | None
    keyframe_dts: int | None
    keyframe_index: int
    warm_from: int
    analyse_from: int
    stop: int | None
    splices: tuple[int, ...] = ()

    @property
    def end(self) -> int:
        return self.first_frame + self.frames

    @property
    def margin_before(self) -> int:
        """Frames analysed before its own (the state's warm-up)."""
        return self.first_frame - self.analyse_from

    def window(self, entry: dict[str, Any] | None = None) -> Window:
        """What a run of it reads and writes; from ``entry`` (a state after the frame
        before it), no margin: decoding starts at its first frame, a keyframe."""
        start = (
            None
            if self.keyframe_pts is None
            else Keyframe(self.keyframe_pts, self.keyframe_dts, self.keyframe_index)
        )
        if entry is not None and self.index > 0:
            start = Keyframe(self.start_pts, None, self.first_frame)
        return Window(
            start=start,
            warm=self.warm_from,
            analyse=self.analyse_from,
            first=self.first_frame,
            end=self.end,
            stop=self.stop,
            first_pts=self.start_pts,
            entry=entry,
            keyframes=frozenset(self.splices),
        )

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Segment:
        return cls(**{**data, "splices": tuple(data.get("splices", ()))})


@dataclass(frozen=True, kw_only=True)
class SegmentPlan:
    """The segments of one video, in order, and what processing them assumes.

    ``frame_count``: the video's frames; ``time_base``: its video stream's, as
    ``(numerator, denominator)``; ``indexed``: whether its frames were found by their
    timestamps (``veil.video.index_video``; if not, the plan is one segment whose frames
    are counted as they are decoded and ``frame_count`` is the header's); ``latency``:
    the frames each frame waits for its boxes with the options the plan was made for
    (``TrackerOptions.latency``), which ``blur_segment`` checks; ``seconds``: the
    length asked for.
    """

    frame_count: int
    time_base: tuple[int, int]
    indexed: bool
    latency: int
    seconds: float
    segments: tuple[Segment, ...]

    def to_json(self) -> dict[str, Any]:
        names = ("frame_count", "indexed", "latency", "seconds")
        data = {name: getattr(self, name) for name in names}
        return data | {
            "time_base": list(self.time_base),
            "segments": [
                segment.__dict__ | {"splices": list(segment.splices)} for segment in self.segments
            ],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SegmentPlan:
        numerator, denominator = data["time_base"]
        return cls(
            frame_count=int(data["frame_count"]),
            time_base=(int(numerator), int(denominator)),
            indexed=bool(data["indexed"]),
            latency=int(data["latency"]),
            seconds=float(data["seconds"]),
            segments=tuple(Segment.from_json(s) for s in data["segments"]),
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
    32 + 5 x 10 = 82 frames (2.7 s). A track kept since long before (weak detections
    extend a running track but start none) or a face missed for longer than that may
    still leave the states apart; the seam check finds it (``to_repair``).
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
    segments, and so does one longer than ``MAX_SEGMENTS`` times ``seconds``. Raises
    what ``VideoReader`` raises for a file it cannot use.
    """
    info = probe(path)
    index = index_video(path) if seconds > 0 else None
    before, latency = margin_frames(options, info.fps, info.width * info.height)
    if index is None:
        # Not indexed: one segment read from the start, its frames counted as it goes.
        whole = Segment(
            index=0,
            first_frame=0,
            frames=info.frame_count or 0,
            start_pts=0,
            keyframe_pts=None,
            keyframe_dts=None,
            keyframe_index=0,
            warm_from=0,
            analyse_from=0,
            stop=None,
        )
        return SegmentPlan(
            frame_count=info.frame_count or 0,
            time_base=(0, 1),
            indexed=False,
            latency=latency,
            seconds=seconds,
            segments=(whole,),
        )
    total = len(index.pts)
    duration = index.seconds(total - 1) + (1 / info.fps if info.fps else 0)
    seconds = max(seconds, duration / MAX_SEGMENTS)
    cuts = [0]
    for keyframe in index.keyframes:
        shown = keyframe.index < total and index.pts[keyframe.index] == keyframe.pts
        if shown and index.seconds(keyframe.index) >= index.seconds(cuts[-1]) + seconds:
            cuts.append(keyframe.index)
    if len(cuts) > 1 and duration - index.seconds(cuts[-1]) < SHORTEST_LAST * seconds:
        cuts.pop()
    segments = []
    for n, first in enumerate(cuts):
        end = cuts[n + 1] if n + 1 < len(cuts) else total
        analyse_from = max(0, first - before)
        warm_from = max(0, analyse_from - BUSY_FRAMES)
        # The last keyframe at or before the warm-up; none (frames shown before the
        # first keyframe): from the beginning.
        key = next((k for k in reversed(index.keyframes) if k.index <= warm_from), None)
        splices = sorted(
            {
                bisect.bisect_left(index.pts, index.pts[first] + after / index.time_base)
                for after in SPLICE_SECONDS
            }
            - {first}
        )
        segments.append(
            Segment(
                index=n,
                first_frame=first,
                frames=end - first,
                start_pts=index.pts[first],
                keyframe_pts=key.pts if key else None,
                keyframe_dts=key.dts if key else None,
                keyframe_index=key.index if key else 0,
                warm_from=warm_from,
                analyse_from=analyse_from,
                stop=end + latency if end + latency < total else None,
                # The first segment has no seam before it: nothing to repair.
                splices=tuple(k for k in splices if k < end) if n > 0 else (),
            )
        )
    return SegmentPlan(
        frame_count=total,
        time_base=(index.time_base.numerator, index.time_base.denominator),
        indexed=True,
        latency=latency,
        seconds=seconds,
        segments=tuple(segments),
    )


@dataclass(frozen=True, kw_only=True)
class SegmentRun:
    """What one run of a segment (or of part of one) did, and its states.

    It wrote frames ``first`` to ``until`` (excluded) of segment ``index``; decoded
    ``decoded`` frames from its keyframe on (margins and the frames between the keyframe
    and the warm-up included); analysed ``analysed`` whole and looked at ``followed``
    near faces, margins included; started ``tracks``. Its states, as plain data
    (``veil.tracker.Tracker.state`` and ``veil.motion.DetectionSchedule.state``): on
    entering, after frame ``first - 1`` (``entry``), on leaving, after ``until - 1``
    (``exit``; ``None`` at the end of the video), and in brief (``fingerprint``) after
    the frame before each splice it passed (``checkpoints``: ``[frame, fingerprint,
    time in ms of that frame]``).
    ``handed``: it went on from a state it was given (a repair) instead of analysing a
    margin. ``seconds`` it took.
    """

    index: int
    first: int
    until: int
    decoded: int
    analysed: int
    followed: int
    tracks: int
    entry: dict[str, Any] | None
    exit: dict[str, Any] | None
    checkpoints: tuple[tuple[int, dict[str, Any], int | None], ...] = ()
    handed: bool = False
    seconds: float = 0.0
    start_ms: int | None = None
    """The time (ms) of frame ``first`` where it is not its segment's first (``after``)."""

    @property
    def frames(self) -> int:
        """Frames written."""
        return self.until - self.first

    def checkpoint(self, frame: int) -> dict[str, Any] | None:
        """The state after frame ``frame - 1`` in brief, if it was recorded."""
        return next((state for at, state, _ in self.checkpoints if at == frame), None)

    def after(self, frame: int) -> SegmentRun:
        """This run's frames from the splice ``frame`` on (the rest after a repair)."""
        at = next(c for c in self.checkpoints if c[0] == frame)
        return replace(
            self,
            first=frame,
            entry=at[1],
            checkpoints=tuple(c for c in self.checkpoints if c[0] > frame),
            start_ms=at[2],
        )

    def to_json(self) -> dict[str, Any]:
        return self.__dict__ | {"checkpoints": [list(c) for c in self.checkpoints]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SegmentRun:
        checkpoints = tuple((int(f), state, ms) for f, state, ms in data["checkpoints"])
        return cls(**{**data, "checkpoints": checkpoints})


def blur_segment(
    input_path: str | Path | ReadInPlace,
    plan: SegmentPlan,
    index: int,
    output_path: str | Path | None,
    options: BlurOptions | None = None,
    *,
    faces_out: str | Path | None = None,
    progress: ProgressCallback | None = None,
    thumbnails: Thumbnails | None = None,
    entry: dict[str, Any] | None = None,
    base: SegmentRun | None = None,
    detector: FaceDetector | None = None,
) -> SegmentRun:
    """``blur_video`` of segment ``index`` of ``plan``: its frames alone, the picture
    alone (no audio, no tags), to ``output_path`` (``None``: faces only), in the
    container its suffix names; name every segment of a video with its output's suffix,
    so they join. ``faces_out`` gets its frames' faces with track ids of its own
    (``join_faces`` numbers them as a run over the whole video would); ``thumbnails``
    gets pictures of its tracks by those ids (``track_ids`` maps them).

    A repair (``to_repair``): ``entry``, the state to go on from (the exit of the part
    before) instead of analysing a margin, and ``base``, the segment's first run: the
    repair stops at the first splice where its state equals ``base``'s (its frames up to
    there replace ``base``'s; ``parts``). ``progress`` counts the frames written. Raises
    ``OptionError`` if ``options`` make frames wait longer than the plan was made for.
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
    first = segment.first_frame
    states: dict[int, dict[str, Any] | None] = {
        at - 1: None for at in (first, *segment.splices, segment.end)
    }
    times: dict[int, int | None] = dict.fromkeys(segment.splices)
    window = segment.window(entry)
    if not plan.indexed:  # one segment, its frames counted as they are decoded
        window = replace(window, end=None, first_pts=None)

    def done_at(frame: int, state: dict[str, Any]) -> bool:
        """A repair is done where its state is its base's."""
        return base is not None and states_match(base.checkpoint(frame + 1), state)

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
        done_at=done_at if base is not None else None,
        times=times,
    )
    until = first + result.frames
    last = index + 1 == len(plan.segments) and until == segment.end
    return SegmentRun(
        index=index,
        first=first,
        until=until,
        decoded=result.decoded,
        analysed=result.analysed,
        followed=result.followed,
        tracks=result.tracks,
        entry=states[first - 1] if index > 0 else None,
        exit=None if last else states.get(until - 1),
        checkpoints=tuple(
            (at, fingerprint(state), times.get(at))
            for at in segment.splices
            if at < until and (state := states[at - 1]) is not None
        ),
        handed=entry is not None,
        seconds=time.monotonic() - began,
    )


def fingerprint(state: dict[str, Any]) -> dict[str, Any]:
    """A run's state (or its fingerprint) in brief: a digest of the tracker's and the
    schedule's states but for the track ids, the ids in the digest's order, the next id
    (``veil.tracker.fingerprint``)."""
    if "digest" in state:
        return state
    tracker = tracker_fingerprint(state["tracker"])
    schedule = json.dumps(state["schedule"])
    digest = hashlib.sha256(f"{tracker['digest']} {schedule}".encode()).hexdigest()
    return tracker | {"digest": digest}


def states_match(exit_state: dict[str, Any] | None, entry_state: dict[str, Any] | None) -> bool:
    """Whether a run that reached a frame in ``entry_state`` goes on as one that reached
    it in ``exit_state`` does: equal but for track ids (states or their fingerprints)."""
    if exit_state is None or entry_state is None:
        return False
    return bool(fingerprint(exit_state)["digest"] == fingerprint(entry_state)["digest"])


def seam_ok(before: SegmentRun, after: SegmentRun) -> bool:
    """Whether ``after`` goes on exactly from where ``before`` ends."""
    return before.until == after.first and states_match(before.exit, after.entry)


def parts(runs: Sequence[SegmentRun], repairs: Mapping[int, SegmentRun]) -> list[SegmentRun]:
    """The runs whose frames make the video, in order: each segment's run, or its repair
    followed by the rest of its run from where the repair stopped (``SegmentRun.after``)."""
    out = []
    for run in runs:
        repair = repairs.get(run.index)
        if repair is None:
            out.append(run)
            continue
        out.append(repair)
        if repair.until < run.until:
            out.append(run.after(repair.until))
    return out


def to_repair(
    runs: Sequence[SegmentRun], repairs: Mapping[int, SegmentRun] | None = None
) -> list[tuple[int, dict[str, Any]]]:
    """The segments to repair now, each with the state to repair it from: those whose
    first part does not go on exactly from the exit of the part before. Repair them
    (``blur_segment(..., entry=state, base=runs[index])``; they may run at once), add
    them to ``repairs`` and ask again: a repair that ran to the end of its segment
    without meeting its first run may leave an exit the next segment does not match."""
    repairs = repairs or {}
    todo = []
    done = parts(runs, repairs)
    for before, after in itertools.pairwise(done):
        if before.index != after.index and not seam_ok(before, after):
            assert before.exit is not None
            todo.append((after.index, before.exit))
    return todo


def track_ids(parts: Sequence[SegmentRun]) -> list[Callable[[int], int]]:
    """For each of ``parts`` (``parts()``), the map from its own track ids to those of a
    run over the whole video: a track that crosses a seam keeps the id it had before it;
    tracks started in a part are numbered on from the ids the video had used by its
    start; ``KeyError`` for a track that shows no box in the part's frames (started and
    ended in a margin). Needs every seam exact (``to_repair`` empty)."""
    maps: list[Callable[[int], int]] = []
    used = 0  # ids the whole video had used by the current part's start
    previous: Callable[[int], int] | None = None
    for n, part in enumerate(parts):
        if n == 0:
            base, entry_next, carried = 0, 0, {}
        else:
            before = parts[n - 1]
            if not seam_ok(before, part):
                raise OutputError(
                    Path(f"segment {part.index}"),
                    f"its state at frame {part.first} differs from the part before's: "
                    "repair it first (to_repair)",
                )
            assert previous is not None and before.exit is not None and part.entry is not None
            mine, theirs = fingerprint(part.entry), fingerprint(before.exit)
            # Equal states list their tracks in the same order.
            carried = {m: previous(t) for m, t in zip(mine["ids"], theirs["ids"], strict=True)}
            base, entry_next = used, int(mine["next_id"])
        previous = _id_map(carried, base, entry_next)
        maps.append(previous)
        if part.exit is not None:
            used = base + int(fingerprint(part.exit)["next_id"]) - entry_next
    return maps


def _id_map(carried: dict[int, int], base: int, entry_next: int) -> Callable[[int], int]:
    def global_id(local: int) -> int:
        if local in carried:
            return carried[local]
        if local < entry_next:  # a margin's, or a first run's before its repair
            raise KeyError(f"track {local} shows no box in its part's frames")
        return base + local - entry_next

    return global_id


def join_thumbnails(
    runs: Sequence[SegmentRun], pictures: Sequence[Mapping[int, bytes]]
) -> dict[int, bytes]:
    """One picture of each track of the whole video, by its ids (``track_ids``), from
    the pictures each of ``runs`` took by its own (``Thumbnails.pictures``): the first
    part's that has one. Tracks that show no box in their part's frames (a first run's
    before the splice its repair handed over at) are left out."""
    joined: dict[int, bytes] = {}
    for global_id, own in zip(track_ids(runs), pictures, strict=True):
        for track, picture in own.items():
            with contextlib.suppress(KeyError):
                joined.setdefault(global_id(track), picture)
    return joined


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
    videos: Sequence[str | Path],
    output_path: str | Path,
    options: BlurOptions | None = None,
    *,
    runs: Sequence[SegmentRun] | None = None,
) -> JoinResult:
    """Copy the video packets of ``videos``, in order, into ``output_path`` (its
    container from its suffix, as ``blur_video``), with the input's audio, subtitles,
    chapters and tags copied once under the same metadata policy; nothing is re-encoded.

    ``videos``: one file per segment, each written by a run of the whole segment; or,
    with ``runs`` (``parts()``, after repairs), the file each of those runs wrote.

    The files must share their codec parameters (the same encoder, settings and size
    give the same headers). Each part begins with a keyframe that refers to nothing
    before it (a segment's first frame, or a splice), so the joined stream decodes as
    one. Their timestamps are put back where the input has them; where an encoder's
    decoding delay would make a part's first decoding time fall before the last one of
    the part before, it is moved up to the next tick.
    """
    options = options or BlurOptions()
    began = time.monotonic()
    output = Path(output_path)
    covered = (
        [(run.index, run.first, run.until) for run in runs]
        if runs is not None
        else [(s.index, s.first_frame, s.end) for s in plan.segments]
    )
    starts = [first for _, first, _ in covered]
    if (
        len(covered) != len(videos)
        or starts != [0, *(until for _, _, until in covered[:-1])]
        or (plan.indexed and covered[-1][2] != plan.frame_count)
    ):
        raise OutputError(output, f"{len(videos)} files for parts {covered} of the video")
    with contextlib.ExitStack() as stack:
        files = [stack.enter_context(av.open(str(path))) for path in videos]
        streams = [f.streams.video[0] for f in files]
        _check_joinable(output, videos, streams)
        reader = stack.enter_context(VideoReader(input_path))
        writer = VideoWriter(output, reader, options.encode_options(), copy_video=streams[0])
        stack.callback(writer.close)
        others = _Lookahead(reader.other_packets())
        frames = moved = 0
        last_dts: int | None = None
        for (index, first, until), path, file, stream in zip(
            covered, videos, files, streams, strict=True
        ):
            segment = plan.segments[index]
            count = 0
            for packet in _part_packets(plan, segment, first, Path(path), file, stream):
                count += 1
                if last_dts is not None and (packet.dts is None or packet.dts <= last_dts):
                    # Matroska stores no decoding times: FFmpeg leaves a file's first ones
                    # unknown, and its muxer would guess them from the times before.
                    packet.dts = last_dts + 1
                    moved += 1
                    if packet.pts is not None and packet.dts > packet.pts:
                        raise OutputError(
                            output,
                            f"segment {segment.index} starts too early to join "
                            "(its decoding times overlap the part before)",
                        )
                if packet.dts is not None:
                    last_dts = packet.dts
                for other in others.until(_seconds(packet)):
                    writer.write_audio(other)
                writer.write_packet(packet)
            if plan.indexed and count != until - first:
                raise OutputError(Path(path), f"holds {count} frames of {first}-{until - 1}")
            frames += count
        for other in others.until(None):
            writer.write_audio(other)
        writer.commit()
        removed = writer.metadata_removed.to_json()
    return JoinResult(frames, removed, moved, time.monotonic() - began)


def _part_packets(
    plan: SegmentPlan, segment: Segment, first: int, path: Path, file: Any, stream: Any
) -> Iterator[Any]:
    """The packets of ``file`` for frames ``first`` on, their times put back where
    the input has them. Segments are written from time 0 (``VideoWriter``'s
    ``time_offset``): an MP4 file states a later start in milliseconds (8.667 s reads
    back 10 ticks of 1/15360 early) and an AVI file cannot state one."""
    with av.open(str(path)) as scan:  # a second reading: seeking back is by time
        times = sorted(
            p.pts for p in scan.demux(scan.streams.video[0]) if p.size and p.pts is not None
        )
    skip = first - segment.first_frame
    if not times or skip >= len(times):
        raise OutputError(path, f"holds no frame {first}")
    shift = 0
    if plan.indexed:
        clock = Fraction(*plan.time_base) / stream.time_base
        shift = round(segment.start_pts * clock) - times[0]
    found = skip == 0
    for packet in file.demux(stream):
        if not packet.size:
            continue
        if not found:
            # A repair wrote the frames before: from the keyframe at the splice on.
            if packet.pts != times[skip]:
                continue
            if not packet.is_keyframe:
                raise OutputError(path, f"frame {first} is not a keyframe to join at")
            found = True
        if shift:
            packet.pts = None if packet.pts is None else packet.pts + shift
            packet.dts = None if packet.dts is None else packet.dts + shift
        yield packet


def _check_joinable(output: Path, paths: Sequence[str | Path], streams: list[Any]) -> None:
    """Every file's video must have the first one's codec, size, pixel format, headers
    (extradata) and clock, or the packets of one cannot follow another's."""

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
    """One faces file of ``segment_faces`` (those ``runs`` wrote: every segment's run,
    or ``parts()`` after repairs), in order, timestamps ascending; track ids numbered as
    a run over the whole video numbers them (``track_ids``), each frame's faces in that
    order: the faces file ``blur_video`` writes. ``metadata_removed``: the join's
    (``JoinResult``), which a segment, writing no audio or tags, cannot know.
    """
    maps = track_ids(runs)
    head: dict[str, Any] = {k: v for k, v in load(segment_faces[0]).items() if k != "Faces"}
    if metadata_removed is not None:
        head["MetadataRemoved"] = metadata_removed
    with FacesFileWriter(output_faces, head) as out:
        for global_id, run, path in zip(maps, runs, segment_faces, strict=True):
            entries = load(path)["Faces"]
            if run.start_ms is not None:  # the rest of a run after a repair
                entries = [e for e in entries if e["Timestamp"] >= run.start_ms]
            for entry in _in_track_order(entries, global_id):
                out.add_entry(entry)
        out.commit()


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
    """``blur_segmented``: the plan, each segment's first run, the repairs by segment,
    and the join."""

    plan: SegmentPlan
    runs: list[SegmentRun]
    repairs: dict[int, SegmentRun]
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
    plan: SegmentPlan | None = None,
) -> SegmentedResult:
    """``blur_video`` done segment by segment in this process, as workers would do it:
    plan (or ``plan``), every segment, seams checked and repaired, join. ``work``: a
    folder for the segments' files (a temporary one by default)."""
    options = options or BlurOptions()
    output_path = Path(output_path)
    plan = plan or plan_segments(input_path, seconds, options)
    folder = Path(work) if work else Path(tempfile.mkdtemp(prefix="veil-segments-"))
    suffix = output_path.suffix
    try:
        detector = detector or options.detector()

        def files(run: SegmentRun) -> tuple[Path, Path]:
            name = f"segment-{run.index}{'-repair' if run.handed else ''}"
            return folder / f"{name}{suffix}", folder / f"{name}.json"

        def run_segment(index: int, **repair: Any) -> SegmentRun:
            name = f"segment-{index}{'-repair' if repair else ''}"
            return blur_segment(
                input_path,
                plan,
                index,
                folder / f"{name}{suffix}",
                options,
                faces_out=folder / f"{name}.json",
                detector=detector,
                **repair,
            )

        runs = [run_segment(s.index) for s in plan.segments]
        repairs: dict[int, SegmentRun] = {}
        while todo := to_repair(runs, repairs):
            for index, state in todo:
                repairs[index] = run_segment(index, entry=state, base=runs[index])
        made = parts(runs, repairs)
        videos = [files(run)[0] for run in made]
        joined = join_segments(input_path, plan, videos, output_path, options, runs=made)
        if faces_out is not None:
            faces = [files(run)[1] for run in made]
            join_faces(made, faces, faces_out, metadata_removed=joined.metadata_removed)
        return SegmentedResult(plan, runs, repairs, joined)
    finally:
        if not work:
            shutil.rmtree(folder, ignore_errors=True)


__all__ = [
    "SPLICE_SECONDS",
    "JoinResult",
    "Segment",
    "SegmentPlan",
    "SegmentRun",
    "SegmentedResult",
    "blur_segment",
    "blur_segmented",
    "fingerprint",
    "join_faces",
    "join_segments",
    "join_thumbnails",
    "margin_frames",
    "parts",
    "plan_segments",
    "seam_ok",
    "states_match",
    "to_repair",
    "track_ids",
]
