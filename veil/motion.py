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

A full analysis itself looks again only where the picture changed (``LastLook``): each
cell of the frame is compared with what it showed when the detector last analysed it,
and the finer levels of the pyramid (``veil.tiling``), nearly all of its cost, are run
only over the changed cells and a face's size around them. The faces found before over
unchanged cells are kept: the same pixels give the detector the same answer. A still
camera (an interview, a counter, a corridor) then costs a fraction of a moving one.
Every ``REFRESH_ANALYSES`` intervals, after a cut, and where most of the frame changed,
the frame is analysed whole.

What is analysed depends on a bounded past only, so a run that starts part-way through a
video (a segment, ``veil.segments``) decides as a run from the start does: full analyses
fall on frames whose index is a multiple of the interval (not ``every`` frames after the
last one, which would carry the phase of the whole history), and "busy" is an average of
the last ``BUSY_FRAMES`` changes, computed in a fixed order from exact values. The
schedule's state (``state``/``restore``) is plain data. Whole analyses fall on the same
absolute grid, so what ``LastLook`` remembers goes back at most ``REFRESH_ANALYSES``
intervals.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections import deque
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from veil.detections import Detections, FloatArray
from veil.detector import FaceDetector, merged
from veil.tiling import NEAR_REACH, ChangedArea
from veil.tracker import Tracker
from veil.video import DecodedFrame, to_display
from veil.yunet import SURE, YuNet, beside_none

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


CELL_CHANGE = 4
"""Change of a cell's mean brightness or mean edge strength (0-255) since the detector
last analysed it that marks the cell changed: far above what compression noise does to
a cell's average, below what a face that appears in it does."""
MOST_CHANGED = 0.5
"""A frame changed over more than this fraction of its cells is analysed whole."""
REFRESH_ANALYSES = 6
"""Every this many intervals (frames a multiple of ``REFRESH_ANALYSES * detect_every``)
a frame is analysed whole whatever changed, so a run's memory is bounded (segments) and
a face missed on a look gets another."""
CELL = 8
"""Frame pixels a cell is wide and tall, at every frame size: the smallest face veil
covers (16 px) then covers a whole cell wherever it is, so even a low-contrast one
changes it by its full contrast."""


class LastLook:
    """What each cell of the picture showed when the detector last analysed it, and the
    faces the last full analysis found: where nothing changed since, those faces stand.

    A cell is ``CELL`` pixels square (display orientation); what it showed is its mean
    brightness and its mean horizontal edge strength, so a face appearing over a
    background as bright as it still changes the cell. Integers throughout: the same
    frames give the same decisions in any process."""

    def __init__(self) -> None:
        self._forget()

    def _forget(self) -> None:
        self._means: npt.NDArray[np.int16] | None = None
        self._edges: npt.NDArray[np.int16] | None = None
        self._size = (0, 0)
        self._found = Detections.empty()

    @property
    def remembers(self) -> bool:
        """Whether a frame was analysed before (since the last change of frame size)."""
        return self._means is not None

    def changed(self, frame: DecodedFrame) -> tuple[ChangedArea | None, Any]:
        """The part of ``frame`` that changed since it was last analysed (``None``: look
        at all of it), and what ``remember`` needs after the analysis."""
        cells = self._cells(frame)
        if self._means is None or self._edges is None or cells[2] != self._size:
            return None, cells
        means, edges, _ = cells
        changed = (np.abs(means - self._means) > CELL_CHANGE) | (
            np.abs(edges - self._edges) > CELL_CHANGE
        )
        area = ChangedArea(changed, CELL, *cells[2])
        return (None if area.fraction > MOST_CHANGED else area), cells

    def remember(self, cells: Any, area: ChangedArea | None, found: Detections) -> Detections:
        """Take in an analysis of the ``area`` of a frame (``None``: all of it) and the faces
        it ``found``; returns every face on the frame: those, and those found before over
        cells that did not change."""
        means, edges, self._size = cells
        if area is None or self._means is None or self._edges is None:
            self._means, self._edges = means, edges
        else:
            self._means = np.where(area.cells, means, self._means)
            self._edges = np.where(area.cells, edges, self._edges)
            kept = np.array([area.unchanged_under(box) for box in self._found.xyxy], bool)
            found = merged([found, self._found[kept]], area.width, area.height)
        self._found = found
        return found

    def _cells(
        self, frame: DecodedFrame
    ) -> tuple[npt.NDArray[np.int16], npt.NDArray[np.int16], tuple[int, int]]:
        """Each cell's mean brightness and edge strength, and the frame's displayed
        ``(width, height)``."""
        # Turned to display orientation first, so that the cells start at the displayed
        # top left as ``ChangedArea`` has them, and a cut cell is the last one.
        grey = to_display(frame.grey(), frame.rotation, frame.mirrored)
        height, width = grey.shape[:2]
        cell = CELL
        rows, columns = math.ceil(height / cell), math.ceil(width / cell)
        edges = cv2.absdiff(grey[:, 1:], grey[:, :-1])
        result = []
        for plane in (grey, edges):
            # Padded to whole cells by repeating the edge, so each cell's average is of its
            # own cell x cell pixels.
            h, w = plane.shape[:2]
            padded = cv2.copyMakeBorder(
                np.ascontiguousarray(plane),
                0,
                rows * cell - h,
                0,
                columns * cell - w,
                cv2.BORDER_REPLICATE,
            )
            small = np.asarray(
                cv2.resize(padded, (columns, rows), interpolation=cv2.INTER_AREA), np.uint8
            )
            result.append(small.astype(np.int16))
        return result[0], result[1], (width, height)

    def state(self) -> dict[str, Any] | None:
        """What it remembers, as plain data."""
        if self._means is None or self._edges is None:
            return None
        found = self._found
        return {
            "size": list(self._size),
            "shape": list(self._means.shape),
            # Bytes, as base64: a 4K frame has 32,400 cells.
            "means": base64.b64encode(self._means.astype(np.uint8).tobytes()).decode(),
            "edges": base64.b64encode(self._edges.astype(np.uint8).tobytes()).decode(),
            "boxes": [[float(v) for v in box] for box in found.xyxy],
            "scores": [float(v) for v in found.confidence],
            "landmarks": [[float(v) for v in point.ravel()] for point in found.landmarks],
        }

    def restore(self, state: dict[str, Any] | None) -> None:
        """Continue from ``state()``. A state this version cannot read (saved by an older
        veil, as a segment job in flight across an upgrade has it) is forgotten: the next
        analysis then looks at the whole frame, which is always safe."""
        self._forget()
        if state is None:
            return
        try:
            shape = tuple(int(n) for n in state["shape"])
            size = (int(state["size"][0]), int(state["size"][1]))
            means, edges = _cells_from(state["means"], shape), _cells_from(state["edges"], shape)
            count = len(state["scores"])
            found = Detections.from_boxes(
                np.asarray(state["boxes"], np.float32).reshape(count, 4),
                np.asarray(state["scores"], np.float32),
                np.asarray(state["landmarks"], np.float32).reshape(count, 5, 2),
            )
        except (KeyError, TypeError, ValueError, binascii.Error):
            return
        self._size, self._means, self._edges, self._found = size, means, edges, found


def _cells_from(text: str, shape: tuple[int, ...]) -> npt.NDArray[np.int16]:
    return np.frombuffer(base64.b64decode(text), np.uint8).reshape(shape).astype(np.int16)


class DetectionSchedule:
    """Decides, frame by frame, what the detector analyses: ``analyse`` is called with
    every frame in order and feeds the tracker.

    ``full_analyses`` and ``follow_ups`` count what it ran, for benchmarks and tests.
    """

    def __init__(self, detector: FaceDetector, every: int, moving: YuNet | None = None) -> None:
        self.detector = detector
        self.every = every
        self.moving = moving
        """A second detector family for the moving part of each full analysis
        (``veil.yunet``): it finds faces blurred by their motion."""
        self._change = PictureChange()
        self._changes: deque[float] = deque(maxlen=BUSY_FRAMES)
        self._last_look = LastLook()
        self.full_analyses = 0
        self.follow_ups = 0
        self.cuts: list[int] = []
        self._owed = False
        self._last_full = -1
        """The index of the last frame analysed in full."""

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
        return {
            "previous": self._change.state(),
            "changes": list(self._changes),
            "last_look": self._last_look.state(),
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Continue from ``state`` (``state()`` of a schedule at the frame before)."""
        self._change.restore(state["previous"])
        self._changes = deque((float(c) for c in state["changes"]), maxlen=BUSY_FRAMES)
        self._last_look.restore(state.get("last_look"))  # absent before 2026-12

    def analyse(self, frame: DecodedFrame, tracker: Tracker) -> list[tuple[int, Detections]]:
        """Analyse ``frame`` as much as it needs and hand the result to ``tracker``;
        returns the frames the tracker finished (``Tracker.update``)."""
        index = frame.index
        cut = self._cut(frame, tracker)
        owed, self._owed = self._owed, False
        # On the absolute grid of the interval, not counted from the last full analysis:
        # a run starting mid-video (a segment) then analyses the same frames.
        interval = self.interval()
        if cut or owed or index % interval == 0:
            self.full_analyses += 1
            self._last_full = index
            # The first analysis at or after each multiple of the refresh period (the
            # interval may be halved, and the period then fall between two analyses).
            whole = cut or index % (self.every * REFRESH_ANALYSES) < interval
            found = self._full_analysis(frame, whole, cut, tracker.options.start_threshold)
            return tracker.update(index, found)
        followed = tracker.followed(index, interval)
        if not followed:
            return tracker.update(index, None)
        self.follow_ups += 1
        rgb, boxes = frame.rgb(), np.stack(list(followed.values()))
        found = self.detector.detect_near(rgb, boxes)
        # A track seen once has no known motion: where the near look found nothing of it,
        # its face may have moved farther (a small face crossing a 4K frame), so look
        # again, farther. Only there: a face found near keeps the near look's box.
        reaches = [tracker.reach(track_id) for track_id in followed]
        lost = [
            i for i, reach in enumerate(reaches) if reach > 1 and not _found_near(found, boxes[i])
        ]
        if lost:
            farther = self.detector.detect_near(
                rgb, boxes[lost], [NEAR_REACH * reaches[i] for i in lost]
            )
            height, width = rgb.shape[:2]
            found = merged([found, farther], width, height)
        return tracker.update(index, found, only=followed.keys())

    def last_look(self, frame: DecodedFrame, tracker: Tracker) -> list[tuple[int, Detections]]:
        """At the end of a video or a stream, with ``frame`` the last one given: unless it
        was analysed in full, analyse it once more (where it changed since the last look,
        as any full analysis) and give what is found to the tracker as the frame after
        it, so a face that appeared since the last full analysis is covered on the frames
        it was on (the hold reaches back from there). Returns what the tracker finished;
        the caller writes no frame past ``frame``."""
        if self._last_full == frame.index:
            return []
        self.full_analyses += 1
        self._last_full = frame.index + 1
        found = self._full_analysis(frame, False, False, tracker.options.start_threshold)
        return tracker.update(frame.index + 1, found)

    def skip(self, frame: DecodedFrame, tracker: Tracker) -> list[tuple[int, Detections]]:
        """Take ``frame`` without analysing it (live: it came too late to be analysed in
        time, and leaves covered whole): its picture change and any cut are noted, and the
        next frame gets a full analysis, off the grid (of the part that changed since the
        last look: that takes in whatever moved on the frames skipped)."""
        self._cut(frame, tracker)
        self._owed = True
        return tracker.update(frame.index, None)

    def _cut(self, frame: DecodedFrame, tracker: Tracker) -> bool:
        cut = self.observe(frame) > CUT_CHANGE
        if cut:
            self.cuts.append(frame.index)
            tracker.cut(frame.index)
        return cut

    def _full_analysis(
        self, frame: DecodedFrame, whole: bool, cut: bool = False, start_threshold: float = 0.0
    ) -> Detections:
        """Every face on ``frame``: looked for where it changed since the last look, or,
        when ``whole``, everywhere; YuNet (``moving``) where it moved, at ``SURE`` on the
        first look at a shot (the first frame, a ``cut``), and not beside a face that
        CenterFace found at ``start_threshold`` (what starts a track)."""
        first_look = cut or not self._last_look.remembers
        area, cells = self._last_look.changed(frame)
        rgb = frame.rgb()
        found = self.detector.detect_frame(rgb, None if whole else area)
        if self.moving is not None:
            height, width = rgb.shape[:2]
            extra = self.moving.moving(rgb, area, SURE if first_look else None)
            extra = beside_none(extra, found[found.confidence >= start_threshold])
            found = merged([found, extra], width, height)
        return self._last_look.remember(cells, None if whole else area, found)


def _found_near(found: Detections, box: FloatArray) -> bool:
    """Whether ``found`` holds a face whose centre is within ``NEAR_REACH`` face sizes
    of ``box``'s: what a near look at ``box`` could find of its face."""
    if not len(found):
        return False
    side = max(float(box[2] - box[0]), float(box[3] - box[1]), 1.0)
    centres = (found.xyxy[:, :2] + found.xyxy[:, 2:]) / 2
    distance = np.abs(centres - (box[:2] + box[2:]) / 2).max(axis=1)
    return bool((distance <= side * (0.5 + NEAR_REACH)).any())
