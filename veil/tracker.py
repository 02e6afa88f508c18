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
"""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from veil.detections import Detections, FloatArray, box_iou

HOLD_GROWTH = 0.03
"""Relative growth of a held box per frame beyond its track's detections."""


@dataclass(frozen=True, kw_only=True)
class TrackerOptions:
    """How long boxes live without a detection, in frames."""

    max_gap: int = 8
    pre_roll: int = 8
    post_roll: int = 8
    smooth: int = 2
    """Neighbouring detections each side averaged for the box size."""
    min_iou: float = 0.05
    start_threshold: float = 0.0
    """Lowest confidence that starts a new track. Weaker detections only extend tracks
    already running (hysteresis), so a small face that the detector scores just under
    the threshold on a few frames keeps its track, while weak false alarms start none."""

    def __post_init__(self) -> None:
        for name in ("max_gap", "pre_roll", "post_roll", "smooth"):
            if getattr(self, name) < 0:
                raise ValueError(f"TrackerOptions.{name} must be 0 or more")

    @property
    def latency(self) -> int:
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

    @property
    def first(self) -> int:
        return self.observations[0].frame

    @property
    def last(self) -> int:
        return self.observations[-1].frame

    def predict(self, frame: int) -> FloatArray:
        """Where the box should be at ``frame``, moving at its last known speed."""
        last = self.observations[-1]
        if len(self.observations) < 2:
            return last.box
        prev = self.observations[-2]
        velocity = (last.box - prev.box) / max(1, last.frame - prev.frame)
        return (last.box + velocity * (frame - last.frame)).astype(np.float32)


class Tracker:
    """Streaming tracker: ``update()`` each frame in order, then ``flush()`` at the end.

    Both return ``(frame_index, Detections)`` pairs for frames whose boxes are final,
    in frame order, each frame exactly once.
    """

    def __init__(self, options: TrackerOptions | None = None) -> None:
        self.options = options or TrackerOptions()
        self._tracks: list[_Track] = []
        self._ids = itertools.count()
        self._next_out = 0
        self._seen = -1
        self.tracks_started = 0

    @property
    def latency(self) -> int:
        return self.options.latency

    def update(self, frame: int, detections: Detections | None) -> list[tuple[int, Detections]]:
        """Add ``frame``'s detections (``None`` when the frame was not analysed)."""
        if frame != self._seen + 1:
            raise ValueError(f"frames must arrive in order: expected {self._seen + 1}, got {frame}")
        self._seen = frame
        if detections is not None:
            self._associate(frame, detections)
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

    def _associate(self, frame: int, detections: Detections) -> None:
        opts = self.options
        live = [t for t in self._tracks if frame - t.last <= opts.max_gap + 1 and t.last < frame]
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
            allowance = 1.0 + 0.5 * np.array([frame - t.last for t in live], np.float32)
            near = distance < allowance[:, None]
            similarity = np.where(
                similarity >= opts.min_iou,
                similarity,
                np.where(near, 1e-3 * (1 - distance / allowance[:, None]), 0),
            )
            taken_tracks: set[int] = set()
            for flat in np.argsort(-similarity, axis=None):
                ti, di = divmod(int(flat), len(detections))
                if similarity[ti, di] <= 0:
                    break
                if ti in taken_tracks or di not in unmatched:
                    continue
                taken_tracks.add(ti)
                unmatched.discard(di)
                live[ti].observations.append(self._observation(frame, detections, di))
        for di in sorted(unmatched):
            if detections.confidence[di] < opts.start_threshold:
                continue
            track = _Track(next(self._ids))
            self.tracks_started += 1
            track.observations.append(self._observation(frame, detections, di))
            self._tracks.append(track)

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
            if not track.first - opts.pre_roll <= frame <= track.last + opts.post_roll:
                continue
            box, score, landmarks = self._interpolate(track, frame)
            boxes.append(box)
            scores.append(score)
            marks.append(landmarks)
            ids.append(track.id)
        if not boxes:
            return Detections.empty()
        return Detections(
            xyxy=np.stack(boxes).astype(np.float32),
            confidence=np.asarray(scores, np.float32),
            landmarks=np.stack(marks).astype(np.float32),
            track_id=np.asarray(ids, np.int64),
        )

    def _interpolate(self, track: _Track, frame: int) -> tuple[FloatArray, float, FloatArray]:
        obs = list(track.observations)
        frames = [o.frame for o in obs]
        after = int(np.searchsorted(frames, frame))
        if after < len(obs) and frames[after] == frame:
            return self._smoothed(obs, after), obs[after].score, obs[after].landmarks
        no_marks = np.full((5, 2), np.nan, np.float32)
        if after == 0:  # before the first detection: run the track backwards
            return self._held(obs, 0, 1, frame), obs[0].score, no_marks
        if after == len(obs):  # after the last detection: run it forwards
            return self._held(obs, len(obs) - 1, len(obs) - 2, frame), obs[-1].score, no_marks
        a, b = obs[after - 1], obs[after]
        t = (frame - a.frame) / (b.frame - a.frame)
        box = (1 - t) * self._smoothed(obs, after - 1) + t * self._smoothed(obs, after)
        return (
            box.astype(np.float32),
            min(a.score, b.score),
            (1 - t) * a.landmarks + t * b.landmarks,
        )

    def _held(self, obs: list[_Observation], edge: int, inner: int, frame: int) -> FloatArray:
        """A box beyond the track's ends: moved on at the track's speed and grown by
        ``HOLD_GROWTH`` a frame, as the face's position grows less certain."""
        box = self._smoothed(obs, edge)
        steps = abs(frame - obs[edge].frame)
        if 0 <= inner < len(obs):
            velocity = (obs[edge].box - obs[inner].box) / (obs[edge].frame - obs[inner].frame)
            box = (box + velocity * (frame - obs[edge].frame)).astype(np.float32)
        centre = (box[:2] + box[2:]) / 2
        half = (box[2:] - box[:2]) / 2 * (1 + HOLD_GROWTH * steps)
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
