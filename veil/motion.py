"""When to look for faces: where they move fast, and when the picture changes.

A full analysis (every tile of every level, ``veil.tiling``) costs the same whatever the
frame shows, so it runs once every ``detect_every`` frames and the tracker fills in the
frames between. That is enough for faces that move less than about half their height
in that time. Two cheap signals decide when it is not:

- **The picture.** A grey 32x32 thumbnail of every frame is compared with the previous
  one. A large change is a cut (or a whip pan): the faces on screen may all be new, so
  the frame is analysed at once and the tracker is told not to link faces across it.
  A smaller but sustained change (a pan, a shaky camera) halves the interval.
- **The tracks.** A new track (its motion still unknown) and a track moving more than
  half its height per interval are looked at again on the next frames, in a small
  window around where the track predicts the face (``CenterFace.detect_near``): a few
  thousand input pixels instead of millions, so a face crossing the frame at 20-40 px a
  frame keeps a box on every frame without analysing every frame whole.

What is analysed depends on a bounded past only, so a run that starts part-way through a
video (a segment, ``veil.segments``) decides as a run from the start does: full analyses
fall on frames whose index is a multiple of the interval (not ``every`` frames after the
last one, which would carry the phase of the whole history), and "busy" is an average of
the last ``BUSY_FRAMES`` changes, computed in a fixed order from exact values. The
schedule's state (``state``/``restore``) is plain data.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from veil.detections import Detections
from veil.detector import FaceDetector
from veil.tracker import Tracker
from veil.video import DecodedFrame

Frame = npt.NDArray[np.uint8]

CUT_CHANGE = 28.0
"""Mean absolute difference of two thumbnails (0-255) that counts as a cut."""
BUSY_CHANGE = 8.0
"""Average difference (0-255) above which the picture counts as busy (panning)."""
_THUMB = 32
_BUSY_MEMORY = 0.8
"""How much of the average of picture change each older frame keeps."""
BUSY_FRAMES = 24
"""Frames the busy average looks back over (the oldest weighs 0.8**23, under 1%)."""
_BUSY_WEIGHTS = tuple((1 - _BUSY_MEMORY) * _BUSY_MEMORY**age for age in range(BUSY_FRAMES))


class PictureChange:
    """How much each frame differs from the one before: 0 (still) to 255.

    Computed in integers (a sum of absolute differences of 8-bit thumbnails) so the same
    two frames give the same value to the last bit in any process."""

    def __init__(self) -> None:
        self._previous: npt.NDArray[np.int32] | None = None

    def __call__(self, grey: Frame) -> float:
        """``grey``: the frame's ``(height, width)`` luma."""
        height, width = grey.shape[:2]
        # Subsample before the area resize: a 4K frame need not be read whole for this.
        step = max(1, min(height, width) // (8 * _THUMB))
        small = np.ascontiguousarray(grey[::step, ::step])
        thumb = cv2.resize(small, (_THUMB, _THUMB), interpolation=cv2.INTER_AREA).astype(np.int32)
        previous, self._previous = self._previous, thumb
        if previous is None:
            return 0.0
        return int(np.abs(thumb - previous).sum()) / thumb.size

    def state(self) -> list[int] | None:
        """The previous frame's thumbnail, as plain data."""
        return None if self._previous is None else [int(v) for v in self._previous.ravel()]

    def restore(self, state: list[int] | None) -> None:
        self._previous = (
            None if state is None else np.asarray(state, np.int32).reshape(_THUMB, _THUMB)
        )


class DetectionSchedule:
    """Decides, frame by frame, what the detector analyses: ``analyse`` is called with
    every frame in order and feeds the tracker.

    ``full_analyses`` and ``follow_ups`` count what it ran, for benchmarks and tests.
    """

    def __init__(self, detector: FaceDetector, every: int) -> None:
        self.detector = detector
        self.every = every
        self._change = PictureChange()
        self._changes: deque[float] = deque(maxlen=BUSY_FRAMES)
        self.full_analyses = 0
        self.follow_ups = 0
        self.cuts: list[int] = []

    @property
    def busy(self) -> float:
        """How much the picture has been changing lately (0-255): the changes of the last
        ``BUSY_FRAMES`` frames, the latest weighing most."""
        # A plain sum in a fixed order: the same changes give the same value everywhere.
        return sum(w * c for w, c in zip(_BUSY_WEIGHTS, reversed(self._changes), strict=False))

    def interval(self) -> int:
        """Frames between full analyses now: ``every``, halved while the picture is busy."""
        return max(1, self.every // 2) if self.busy > BUSY_CHANGE else self.every

    def observe(self, frame: DecodedFrame) -> float:
        """Take in ``frame``'s picture change without analysing it (a segment's warm-up);
        ``analyse`` does this itself. Returns the change."""
        change = self._change(frame.grey())
        self._changes.append(change)
        return change

    def state(self) -> dict[str, Any]:
        """What the next decisions depend on, as plain data (JSON)."""
        return {"previous": self._change.state(), "changes": list(self._changes)}

    def restore(self, state: dict[str, Any]) -> None:
        """Continue from ``state`` (``state()`` of a schedule at the frame before)."""
        self._change.restore(state["previous"])
        self._changes = deque((float(c) for c in state["changes"]), maxlen=BUSY_FRAMES)

    def analyse(self, frame: DecodedFrame, tracker: Tracker) -> list[tuple[int, Detections]]:
        """Analyse ``frame`` as much as it needs and hand the result to ``tracker``;
        returns the frames the tracker finished (``Tracker.update``)."""
        index = frame.index
        cut = self.observe(frame) > CUT_CHANGE
        if cut:
            self.cuts.append(index)
            tracker.cut(index)
        # On the absolute grid of the interval, not counted from the last full analysis:
        # a run starting mid-video (a segment) then analyses the same frames.
        if cut or index % self.interval() == 0:
            self.full_analyses += 1
            return tracker.update(index, self.detector.detect_frame(frame.rgb()))
        followed = tracker.followed(index, self.interval())
        if not followed:
            return tracker.update(index, None)
        self.follow_ups += 1
        found = self.detector.detect_near(frame.rgb(), np.stack(list(followed.values())))
        return tracker.update(index, found, only=followed.keys())
