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
"""

from __future__ import annotations

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
"""How much of the running average of picture change each frame keeps."""


class PictureChange:
    """How much each frame differs from the one before: 0 (still) to 255."""

    def __init__(self) -> None:
        self._previous: npt.NDArray[np.float32] | None = None

    def __call__(self, grey: Frame) -> float:
        """``grey``: the frame's ``(height, width)`` luma."""
        height, width = grey.shape[:2]
        # Subsample before the area resize: a 4K frame need not be read whole for this.
        step = max(1, min(height, width) // (8 * _THUMB))
        small = np.ascontiguousarray(grey[::step, ::step])
        thumb = cv2.resize(small, (_THUMB, _THUMB), interpolation=cv2.INTER_AREA).astype(np.float32)
        previous, self._previous = self._previous, thumb
        return 0.0 if previous is None else float(np.abs(thumb - previous).mean())


class DetectionSchedule:
    """Decides, frame by frame, what the detector analyses: ``analyse`` is called with
    every frame in order and feeds the tracker.

    ``full_analyses`` and ``follow_ups`` count what it ran, for benchmarks and tests.
    """

    def __init__(self, detector: FaceDetector, every: int) -> None:
        self.detector = detector
        self.every = every
        self._change = PictureChange()
        self._busy = 0.0
        self._last_full: int | None = None
        self.full_analyses = 0
        self.follow_ups = 0
        self.cuts: list[int] = []

    def interval(self) -> int:
        """Frames between full analyses now: ``every``, halved while the picture is busy."""
        return max(1, self.every // 2) if self._busy > BUSY_CHANGE else self.every

    def analyse(self, frame: DecodedFrame, tracker: Tracker) -> list[tuple[int, Detections]]:
        """Analyse ``frame`` as much as it needs and hand the result to ``tracker``;
        returns the frames the tracker finished (``Tracker.update``)."""
        index = frame.index
        change = self._change(frame.grey())
        self._busy = _BUSY_MEMORY * self._busy + (1 - _BUSY_MEMORY) * change
        cut = change > CUT_CHANGE
        if cut:
            self.cuts.append(index)
            tracker.cut(index)
        if cut or self._last_full is None or index - self._last_full >= self.interval():
            self._last_full = index
            self.full_analyses += 1
            return tracker.update(index, self.detector.detect_frame(frame.rgb()))
        followed = tracker.followed(index, self.interval())
        if not followed:
            return tracker.update(index, None)
        self.follow_ups += 1
        found = self.detector.detect_near(frame.rgb(), np.stack(list(followed.values())))
        return tracker.update(index, found, only=followed.keys())
