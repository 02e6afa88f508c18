"""Linking detections into tracks so no face flickers through between detections.

The tracker sees frames in order, some with detections (analysed frames) and some
without (frames the detector skipped). It answers with each frame's final boxes a
fixed number of frames later (``latency``), which lets it:

- fill a gap of up to ``max_gap`` frames between two detections of the same face by
  linear interpolation, whether the detector skipped those frames or missed the face;
- show a track's box ``pre_roll`` frames before its first detection and ``post_roll``
  frames after its last, moving on at the track's speed and growing a little each
  frame, so a face is covered while it enters and leaves;
- smooth the box size over neighbouring detections (the box only grows, never shrinks
  below what was detected).

Memory is bounded by ``latency``: observations older than that are dropped.

The state is plain data (``state``/``restore``), so a run can hand it to another, and a
run that starts part-way through a video (a segment, ``veil.segments``) can tell whether
it reached the same state as a run from the start (``same_state``).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import deque
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from veil.detections import Detections, FloatArray, box_iou

HOLD_GROWTH = 0.03
"""Relative growth of a held box per frame beyond its track's detections."""
MAX_SIZE_CHANGE = 1.5
"""A detection this many times larger or smaller than a track's box is not its face
(a detector's box of one face varies by about a fifth from frame to frame)."""
UNKNOWN_SIZE_CHANGE = 2.25
"""``MAX_SIZE_CHANGE`` for a track seen once: its one box can be far off its face's size
(the first box of a face half behind another took in some of its neighbour, 41x52 for a
31 px face, corpus scene 027)."""
MAX_MOTION_GROWTH = 0.3
"""Most a box grows for its face's motion (``_motion_grown``)."""
VELOCITY_SPAN = 4
"""Frames, at least, between the two observations a track's speed is measured over."""
WEAK_REACH = 1.0
"""Face sizes from its predicted centre within which a weak detection extends a track
that it does not overlap."""
JUMP = 0.5
"""Face heights a track's centre may move between two detections with frames between
them before that move is not trusted as motion (``Tracker._jumps``)."""
FOLLOW_DISTANCE = 2.0
"""A track moving more than this many face heights between full analyses is followed
frame by frame (``Tracker.followed``): its face could outrun the association."""
UNKNOWN_MOTION_REACH = 2.0
"""How many times farther a track seen once (its motion unknown) is looked for on the
next frames (``Tracker.reach``), and may take a detection from: a small face crossing a
4K frame moves two face heights a frame, out of the reach of a track whose speed is
known."""


@dataclass(frozen=True, kw_only=True)
class TrackerOptions:
    """How long boxes live without a detection, in frames."""

    max_gap: int = 8
    pre_roll: int = 8
    post_roll: int = 8
    smooth: int = 2
    """Neighbouring detections each side averaged for the box size."""
    min_iou: float = 0.05
    short_wait: bool = False
    """Let frames wait only until no track that starts later could reach back over them
    (``pre_roll``); a gap's frames that the near end's hold (``post_roll``) covers are
    then drawn with the hold instead of waiting for the far end. Saves memory on large
    frames (a 4K frame waiting costs 12 MB) at the price of looser boxes in long gaps."""
    start_threshold: float = 0.0
    """Lowest confidence that starts a new track. Weaker detections only extend tracks
    already running (hysteresis), so a small face that the detector scores just under
    the threshold on a few frames keeps its track, while weak false alarms start none."""
    tentative_threshold: float | None = None
    """Detections from this confidence up to ``start_threshold`` start a *tentative*
    track: followed (``followed``) but drawn only once ``confirm_after`` looks found it,
    or one scored ``start_threshold``. A fast, motion-blurred face the detector scores
    low on every frame is then covered from its first frame (frames wait for their boxes
    long enough), while a one-off weak false alarm draws nothing."""
    confirm_after: int = 3

    def __post_init__(self) -> None:
        for name in ("max_gap", "pre_roll", "post_roll", "smooth"):
            if getattr(self, name) < 0:
                raise ValueError(f"TrackerOptions.{name} must be 0 or more")

    @property
    def latency(self) -> int:
        """Frames each frame waits for its final boxes."""
        if self.short_wait:
            return max(self.pre_roll, self.max_gap - self.post_roll) + self.smooth
        return max(self.max_gap, self.pre_roll) + self.smooth


@dataclass
class _Observation:
    frame: int
    box: FloatArray  # (4,)
    score: float
    landmarks: FloatArray  # (5, 2)


@dataclass
class _Track:
    id: int
    observations: deque[_Observation] = field(default_factory=deque)
    closed: bool = False
    """Ended by a cut: it links no more detections (the face it followed is in another shot)."""
    confirmed: bool = True
    """Drawn. A tentative track (``TrackerOptions.tentative_threshold``) is not, yet."""

    @property
    def first(self) -> int:
        return self.observations[0].frame

    @property
    def last(self) -> int:
        return self.observations[-1].frame

    @property
    def seen_once(self) -> bool:
        """One detection so far: the face's motion is unknown and its size uncertain."""
        return len(self.observations) == 1

    def predict(self, frame: int) -> FloatArray:
        """Where the box should be at ``frame``: moved on at the track's speed, same size."""
        last = self.observations[-1]
        return _shifted(last.box, self.velocity() * (frame - last.frame))

    def velocity(self) -> FloatArray:
        """``(2,)`` pixels a frame the box centre moves, over the last ``VELOCITY_SPAN``
        frames or more (two detections one frame apart jitter too much to extrapolate)."""
        obs = self.observations
        last = obs[-1]
        earlier = next((o for o in reversed(obs) if o.frame <= last.frame - VELOCITY_SPAN), obs[0])
        return _centre_velocity(earlier, last)


def _centre_velocity(a: _Observation, b: _Observation) -> FloatArray:
    if a.frame == b.frame:
        return np.zeros(2, np.float32)
    moved = (b.box[:2] + b.box[2:] - a.box[:2] - a.box[2:]) / 2
    return (moved / (b.frame - a.frame)).astype(np.float32)


def _motion_grown(box: FloatArray, velocity: FloatArray) -> FloatArray:
    """``box`` grown about its centre by its face's speed, as a fraction of its size per
    frame, up to ``MAX_MOTION_GROWTH``: a moving face is smeared by motion blur, and the
    detector's box of a smeared face is smaller than the face and lags behind it."""
    size = np.maximum(box[2:] - box[:2], 1.0)
    growth = min(MAX_MOTION_GROWTH, float(np.hypot(*velocity)) / float(size.max()))
    if growth <= 0:
        return box
    centre, half = (box[:2] + box[2:]) / 2, size / 2 * (1 + growth)
    return np.concatenate([centre - half, centre + half]).astype(np.float32)


def _shifted(box: FloatArray, by: FloatArray) -> FloatArray:
    return (box + np.tile(by, 2)).astype(np.float32)


class Tracker:
    """Streaming tracker: ``update()`` each frame in order, then ``flush()`` at the end.

    Both return ``(frame_index, Detections)`` pairs for frames whose boxes are final,
    in frame order, each frame exactly once. ``start``: the index of the first frame
    (a run that begins part-way through a video).
    """

    def __init__(self, options: TrackerOptions | None = None, *, start: int = 0) -> None:
        self.options = options or TrackerOptions()
        self._tracks: list[_Track] = []
        self._next_id = 0
        self._next_out = start
        self._seen = start - 1
        self.tracks_started = 0

    def state(self) -> dict[str, Any]:
        """Everything later boxes depend on, as plain data (JSON: NaN as ``None``):
        the frames seen and returned, the next track id, and each track's flags and kept
        observations ``[frame, x1, y1, x2, y2, score, 10 landmark coordinates]``."""
        return {
            "seen": self._seen,
            "next_out": self._next_out,
            "next_id": self._next_id,
            "tracks": [
                {
                    "id": t.id,
                    "closed": t.closed,
                    "confirmed": t.confirmed,
                    "observations": [_observation_data(o) for o in t.observations],
                }
                for t in self._tracks
            ],
        }

    @classmethod
    def restore(cls, options: TrackerOptions, state: Mapping[str, Any]) -> Tracker:
        """A tracker that goes on from ``state`` (another tracker's ``state()``)."""
        tracker = cls(options, start=int(state["next_out"]))
        tracker._seen = int(state["seen"])
        tracker._next_id = int(state["next_id"])
        for data in state["tracks"]:
            track = _Track(int(data["id"]), closed=data["closed"], confirmed=data["confirmed"])
            track.observations.extend(_observation_from(o) for o in data["observations"])
            tracker._tracks.append(track)
        return tracker

    @property
    def latency(self) -> int:
        return self.options.latency

    @property
    def seen(self) -> int:
        """The index of the last frame given to ``update`` (one before the first: none yet)."""
        return self._seen

    def update(
        self,
        frame: int,
        detections: Detections | None,
        *,
        only: Collection[int] | None = None,
    ) -> list[tuple[int, Detections]]:
        """Add ``frame``'s detections (``None`` when the frame was not analysed).

        ``only``: the detections come from a look near these tracks (``followed``), not
        from the whole frame: they extend those tracks and start none.
        """
        if frame != self._seen + 1:
            raise ValueError(f"frames must arrive in order: expected {self._seen + 1}, got {frame}")
        self._seen = frame
        if detections is not None:
            self._associate(frame, detections, only)
        ready = []
        while self._next_out <= self._seen - self.latency:
            ready.append((self._next_out, self._boxes_at(self._next_out)))
            self._next_out += 1
        self._forget()
        return ready

    def flush(self) -> list[tuple[int, Detections]]:
        """Every frame not yet returned."""
        ready = []
        while self._next_out <= self._seen:
            ready.append((self._next_out, self._boxes_at(self._next_out)))
            self._next_out += 1
        return ready

    def cut(self, frame: int) -> None:
        """The shot changes at ``frame``: no track links a detection across it, so no box
        sweeps from a face in one shot to a face in the next."""
        for track in self._tracks:
            if track.last < frame:
                track.closed = True

    def followed(self, frame: int, interval: int) -> dict[int, FloatArray]:
        """Predicted boxes ``(4,)`` at ``frame``, by track id, of the tracks worth a look
        before the next full analysis, ``interval`` frames apart: new tracks (one
        observation, motion unknown), tracks last seen at a weak score (under
        ``start_threshold``: a face the detector barely finds, small, dim or blurred by
        motion, is looked for on every frame while it lasts) and tracks moving more than
        ``FOLLOW_DISTANCE`` face heights in ``interval`` frames."""
        boxes = {}
        for track in self._tracks:
            if track.closed or not 0 < frame - track.last <= self.options.max_gap:
                continue
            box = track.predict(frame)
            height = max(1.0, float(box[3] - box[1]))
            if track.seen_once or not track.confirmed:
                if frame - track.last <= interval:
                    boxes[track.id] = box
                continue
            weak = track.observations[-1].score < self.options.start_threshold
            if weak or float(np.hypot(*track.velocity())) * interval > FOLLOW_DISTANCE * height:
                boxes[track.id] = box
        return boxes

    def reach(self, track_id: int) -> float:
        """How many times farther than usual to look for track ``track_id``'s face (one of
        ``followed``): ``UNKNOWN_MOTION_REACH`` while it has been seen once."""
        return _reach(next(t for t in self._tracks if t.id == track_id))

    def _associate(self, frame: int, detections: Detections, only: Collection[int] | None) -> None:
        opts = self.options
        live = [
            t
            for t in self._tracks
            if not t.closed
            and frame - t.last <= opts.max_gap + 1
            and t.last < frame
            and (only is None or t.id in only)
        ]
        unmatched = set(range(len(detections)))
        if live and len(detections):
            predicted = np.stack([t.predict(frame) for t in live])
            similarity = box_iou(predicted, detections.xyxy)
            # A small face moving fast may not overlap its prediction, least of all when
            # frames were skipped; accept it when its centre is near the predicted centre,
            # the allowance growing with the frames since the track was last seen.
            pc = (predicted[:, :2] + predicted[:, 2:]) / 2
            dc = (detections.xyxy[:, :2] + detections.xyxy[:, 2:]) / 2
            size = np.maximum(predicted[:, 2:] - predicted[:, :2], 1).max(axis=1)
            distance = np.linalg.norm(pc[:, None] - dc[None], axis=2) / size[:, None]
            allowance = np.array(
                [(1.0 + 0.5 * (frame - t.last)) * _reach(t) for t in live], np.float32
            )
            near = distance < allowance[:, None]
            # A weak detection (one that could not start a track) extends a track only
            # near where it is predicted: it must not pull the box across the frame.
            weak = detections.confidence < opts.start_threshold
            near &= ~weak[None, :] | (distance < WEAK_REACH)
            similarity = np.where(
                similarity >= opts.min_iou,
                similarity,
                np.where(near, 1e-3 * (1 - distance / allowance[:, None]), 0),
            )
            # A face does not halve or double in size between two looks: a box that does
            # is something else (a false alarm beside a face the detector missed).
            d_size = np.maximum(detections.xyxy[:, 2:] - detections.xyxy[:, :2], 1).max(axis=1)
            ratio = d_size[None, :] / size[:, None]
            change = np.array(
                [UNKNOWN_SIZE_CHANGE if t.seen_once else MAX_SIZE_CHANGE for t in live],
                np.float32,
            )[:, None]
            similarity = np.where((ratio > 1 / change) & (ratio < change), similarity, 0)
            taken_tracks: set[int] = set()
            for flat in np.argsort(-similarity, axis=None):
                ti, di = divmod(int(flat), len(detections))
                if similarity[ti, di] <= 0:
                    break
                if ti in taken_tracks or di not in unmatched:
                    continue
                taken_tracks.add(ti)
                unmatched.discard(di)
                self._extend(live[ti], self._observation(frame, detections, di))
        tentative = opts.tentative_threshold
        for di in sorted(unmatched):
            score = detections.confidence[di]
            weak = score < opts.start_threshold
            if only is not None or (weak and (tentative is None or score < tentative)):
                continue
            track = _Track(self._next_id, confirmed=not weak)
            self._next_id += 1
            self.tracks_started += track.confirmed
            track.observations.append(self._observation(frame, detections, di))
            self._tracks.append(track)

    def _extend(self, track: _Track, observation: _Observation) -> None:
        track.observations.append(observation)
        if not track.confirmed and (
            observation.score >= self.options.start_threshold
            or len(track.observations) >= self.options.confirm_after
        ):
            track.confirmed = True
            self.tracks_started += 1

    @staticmethod
    def _observation(frame: int, detections: Detections, i: int) -> _Observation:
        return _Observation(
            frame,
            detections.xyxy[i].copy(),
            float(detections.confidence[i]),
            detections.landmarks[i].copy(),
        )

    def _boxes_at(self, frame: int) -> Detections:
        opts = self.options
        boxes, scores, marks, ids = [], [], [], []
        for track in self._tracks:
            if not track.confirmed:
                continue
            if not track.first - opts.pre_roll <= frame <= track.last + opts.post_roll:
                continue
            box, score, landmarks, held_ends = self._interpolate(track, frame)
            boxes.append(_motion_grown(box, track.velocity()))
            scores.append(score)
            marks.append(landmarks)
            ids.append(track.id)
            for held in held_ends:
                boxes.append(held)
                scores.append(score)
                marks.append(np.full((5, 2), np.nan, np.float32))
                ids.append(track.id)
        if not boxes:
            return Detections.empty()
        return Detections(
            xyxy=np.stack(boxes).astype(np.float32),
            confidence=np.asarray(scores, np.float32),
            landmarks=np.stack(marks).astype(np.float32),
            track_id=np.asarray(ids, np.int64),
        )

    def _interpolate(
        self, track: _Track, frame: int
    ) -> tuple[FloatArray, float, FloatArray, list[FloatArray]]:
        """The track's box, score and landmarks on ``frame``, and the boxes of the faces
        either side of its jumps (``_jump_boxes``)."""
        obs = list(track.observations)
        frames = [o.frame for o in obs]
        after = int(np.searchsorted(frames, frame))
        # A jump's holds reach frames where the track has a detection of its own too: a
        # far end's face may be there beside the near end's.
        jumps = self._jump_boxes(obs, frame)
        if after < len(obs) and frames[after] == frame:
            return self._smoothed(obs, after), obs[after].score, obs[after].landmarks, jumps
        no_marks = np.full((5, 2), np.nan, np.float32)
        if after == 0:  # before the first detection: run the track backwards
            return self._held(obs, 0, frame), obs[0].score, no_marks, jumps
        if after == len(obs):  # after the last detection: run it forwards
            return self._held(obs, len(obs) - 1, frame), obs[-1].score, no_marks, jumps
        a, b = obs[after - 1], obs[after]
        t = (frame - a.frame) / (b.frame - a.frame)
        box = (1 - t) * self._smoothed(obs, after - 1) + t * self._smoothed(obs, after)
        # Landmarks only where the detector saw them: between two detections they would
        # be invented (and would double the faces file).
        return box.astype(np.float32), min(a.score, b.score), no_marks, jumps

    def _jump_boxes(self, obs: list[_Observation], frame: int) -> list[FloatArray]:
        """Boxes besides the track's own on ``frame`` for each jump in the track
        (``_jumps``): the detections either side of a jump may be of two faces (a track
        that took another face's detection from afar, one face that left as another
        came, a cut the picture change missed) rather than one that moved. So on the
        frames between them both
        ends' boxes stay where they were seen, and each end is also held as a track's
        own end would be: the far one back ``pre_roll`` frames, the near one on
        ``post_roll`` frames, at the speed of its own side of the jump. A face first
        found by a track that took it from a false alarm is then covered on the frames
        before, as its own track would have covered it."""
        boxes = []
        opts = self.options
        for j in self._jumps(obs):
            near, far = obs[j - 1], obs[j]
            if near.frame < frame < far.frame:
                boxes += [self._smoothed(obs, j - 1), self._smoothed(obs, j)]
            if far.frame - opts.pre_roll <= frame < far.frame:
                boxes.append(self._held(obs, j, frame))
            if near.frame < frame <= near.frame + opts.post_roll:
                boxes.append(self._held(obs, j - 1, frame))
        return boxes

    @staticmethod
    def _jumps(obs: list[_Observation]) -> list[int]:
        """Indices ``j`` where the track jumps between observations ``j - 1`` and ``j``:
        its centre moved more than ``JUMP`` face heights with frames between them,
        too far to trust as motion. A face the detector saw move frame by frame
        (followed) makes no jump."""
        jumps = []
        for j in range(1, len(obs)):
            a, b = obs[j - 1], obs[j]
            if b.frame - a.frame < 2:
                continue
            height = max(a.box[3] - a.box[1], b.box[3] - b.box[1])
            moved = np.hypot(*((b.box[:2] + b.box[2:]) / 2 - (a.box[:2] + a.box[2:]) / 2))
            if moved > JUMP * height:
                jumps.append(j)
        return jumps

    def _held(self, obs: list[_Observation], edge: int, frame: int) -> FloatArray:
        """A box beyond observation ``edge`` (the track's first or last, or an end of a
        jump): moved on at the track's speed near it and grown by ``HOLD_GROWTH`` a
        frame, as the face's position grows less certain. Only the centre moves:
        extrapolating a change of size could turn the box inside out."""
        box = self._smoothed(obs, edge)
        here = obs[edge]
        if frame < here.frame:
            other = next((o for o in obs if o.frame >= here.frame + VELOCITY_SPAN), obs[-1])
        else:
            other = next(
                (o for o in reversed(obs) if o.frame <= here.frame - VELOCITY_SPAN), obs[0]
            )
        box = _shifted(box, _centre_velocity(here, other) * (frame - here.frame))
        centre = (box[:2] + box[2:]) / 2
        half = (box[2:] - box[:2]) / 2 * (1 + HOLD_GROWTH * abs(frame - here.frame))
        return np.concatenate([centre - half, centre + half]).astype(np.float32)

    def _smoothed(self, obs: list[_Observation], i: int) -> FloatArray:
        """The box at observation ``i`` with its size averaged over its neighbours, never smaller
        than detected."""
        k = self.options.smooth
        if k == 0:
            return obs[i].box
        window = np.stack([o.box for o in obs[max(0, i - k) : i + k + 1]])
        size = (window[:, 2:] - window[:, :2]).mean(axis=0)
        box = obs[i].box
        centre = (box[:2] + box[2:]) / 2
        smooth = np.concatenate([centre - size / 2, centre + size / 2])
        return np.concatenate([np.minimum(box[:2], smooth[:2]), np.maximum(box[2:], smooth[2:])])

    def _forget(self) -> None:
        """Drop tracks that can no longer show a box and observations no frame needs."""
        opts = self.options
        horizon = self._next_out
        keep = []
        for track in self._tracks:
            if track.last + opts.post_roll < horizon and self._seen - track.last > opts.max_gap + 1:
                continue
            # Keep one observation before the horizon for interpolation, plus the smoothing window.
            while (
                len(track.observations) > opts.smooth + 2
                and track.observations[opts.smooth + 1].frame < horizon
            ):
                track.observations.popleft()
            keep.append(track)
        self._tracks = keep


def _observation_data(o: _Observation) -> list[float | None]:
    values = [float(v) for v in (*o.box, o.score, *o.landmarks.ravel())]
    return [o.frame, *(None if math.isnan(v) else v for v in values)]


def _observation_from(data: list[Any]) -> _Observation:
    values = np.asarray([math.nan if v is None else v for v in data[1:]], np.float64)
    return _Observation(
        int(data[0]),
        values[:4].astype(np.float32),
        float(values[4]),
        values[5:15].reshape(5, 2).astype(np.float32),
    )


def same_state(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether two trackers' ``state()`` will give the same boxes from here on: equal but
    for the track ids (numbered by each run from its own start) and their order."""
    return bool(fingerprint(a)["digest"] == fingerprint(b)["digest"])


def fingerprint(state: Mapping[str, Any]) -> dict[str, Any]:
    """A tracker's ``state()`` in brief, as plain data: a digest of everything but the
    track ids and their order (equal digests: ``same_state``), the ids in the order the
    digest takes the tracks (two equal states pair their tracks by position), and the
    next id."""
    tracks = sorted(
        (json.dumps([t["closed"], t["confirmed"], t["observations"]]), int(t["id"]))
        for t in state["tracks"]
    )
    content = json.dumps([state["seen"], state["next_out"], [key for key, _ in tracks]])
    return {
        "digest": hashlib.sha256(content.encode()).hexdigest(),
        "ids": [track for _, track in tracks],
        "next_id": int(state["next_id"]),
    }


def _reach(track: _Track) -> float:
    """``Tracker.reach`` of ``track``."""
    return UNKNOWN_MOTION_REACH if track.seen_once else 1.0
