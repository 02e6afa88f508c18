"""YuNet, a second detector family on every full analysis: it finds the motion-blurred
faces CenterFace misses.

CenterFace (``veil.detector``) scores a face smeared by fast motion next to nothing,
however its pyramid is tiled: 41 of the corpus's 53 people at a motion blur of 0.6 of
the face's width score under 0.2. YuNet, trained on other data with another
architecture, scores 30 of those 41 at 0.3 or more. ``veil.motion.DetectionSchedule``
runs it beside CenterFace on each full analysis, where the picture moved since the last
one (``YuNet.moving``); its boxes start tracks that the tracker then holds between
analyses. It does not take part in the looks near tracks between analyses; those find a
followed face cheaply, and the tracker's hold bridges the frames a blurred face is not
found on.

YuNet looks at the rectangle around what moved, shrunk to at most ``MAX_PIXELS``: the
faces it is here for are large (small ones are CenterFace's, whose finest level sees
them from 16 px), and its cost and memory then stay those of a 720p frame at any
resolution. Its false alarms are kept from starting tracks that could take a real
face's detections: only where the picture moved, at ``SURE`` on the first look at a
shot, never beside a face CenterFace found (``beside_none``). docs/privacy.md has the
measures.

The model is OpenCV Zoo's ``face_detection_yunet_2023mar.onnx`` (MIT, Shiqi Yu), vendored
in ``veil/models`` (NOTICE.md). It runs on OpenCV's DNN module (``cv2.FaceDetectorYN``):
its graph is laid out for one input size, which OpenCV re-plans for each frame size, as
ONNX Runtime cannot.
"""

from __future__ import annotations

import math
import threading
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from veil.detections import Detections, FloatArray, box_iou
from veil.detector import Frame
from veil.errors import DetectorError
from veil.tiling import ChangedArea

MODEL = Path(__file__).with_name("models") / "face_detection_yunet_2023mar.onnx"
THRESHOLD = 0.3
"""Lowest YuNet score kept. Measured on the privacy corpus: the motion-blurred faces
CenterFace misses score 0.2 to 0.54 on the frames a full analysis falls on, so a higher
threshold finds them too seldom for the tracker to hold them."""
SURE = 0.5
"""Lowest YuNet score kept on the first look at a shot (the first frame, after a cut),
when nothing tells what moved and so nothing rules out YuNet's false faces on a still
background: at 0.3 the bench's 720p action clip got three on its first frame, each a
track that blurred background, one of them a fifth of the frame. Such a track, looked
for farther since its motion is unknown, also took a real face's detections and left
that face's first frames uncovered, until the tracker held the far end of a jump back
as a track's first detection (``Tracker._jump_boxes``). A blurred face missed here is
found on the next analysis, where what moved is known, and the hold reaches back."""
SAME_FACE = 0.3
"""Overlap (IoU) at which a YuNet box and a CenterFace box are one face (merged as one)."""
MAX_PIXELS = 1280 * 720
"""YuNet's input is the frame shrunk to at most this many pixels."""
REACH = 0.15
"""Around the changed cells, YuNet looks this fraction of the frame's shorter side."""
_SMALLEST = 32
"""Pixels: a picture narrower or lower than this holds no face YuNet finds."""
_NMS_IOU = 0.3
_TOP_K = 5000
_QUIET = threading.Lock()


class YuNet:
    """The YuNet face detector on one whole frame at a time."""

    def __init__(self, threshold: float = THRESHOLD, model_path: Path = MODEL) -> None:
        if not model_path.is_file():
            raise DetectorError(f"face model not found at {model_path}; reinstall veil")
        # OpenCV warns on stderr that its new graph engine ignores the (default) target:
        # nothing a user of veil can act on. The log level is the process's: jobs made
        # in threads at once must not restore each other's ERROR for good.
        with _QUIET:
            level = cv2.utils.logging.getLogLevel()
            cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
            try:
                self._net = cv2.FaceDetectorYN.create(
                    str(model_path), "", (320, 320), threshold, _NMS_IOU, _TOP_K
                )
            except cv2.error as exc:
                raise DetectorError(f"cannot load face model {model_path}: {exc}") from exc
            finally:
                cv2.utils.logging.setLogLevel(level)
        self._size = (320, 320)

    def moving(
        self, frame: Frame, changed: ChangedArea | None, at_least: float | None = None
    ) -> Detections:
        """The faces on ``frame`` over the part of it that ``changed`` since the last full
        analysis (``None``: all of it counts), scored ``at_least`` where given. A face
        blurred by its motion is where the picture changes; what YuNet takes for a face on
        a still background (about one box a frame on the corpus, most of them there on
        every frame) is left out, and a still camera's frame costs only the rectangle
        around what moved."""
        found = self._moving(frame, changed)
        return found if at_least is None else found[found.confidence >= at_least]

    def _moving(self, frame: Frame, changed: ChangedArea | None) -> Detections:
        if changed is None:
            return self.find(frame)
        rows, columns = np.nonzero(changed.cells)
        if not len(rows):
            return Detections.empty()
        height, width = frame.shape[:2]
        # A moving face changes the cells of its edges and features, not always its
        # middle: look a face's size around them (and never at less than YuNet can use).
        reach = max(REACH * min(width, height), _SMALLEST)
        c = changed.cell
        x1, y1 = max(0, int(columns.min() * c - reach)), max(0, int(rows.min() * c - reach))
        x2 = min(width, int((columns.max() + 1) * c + reach))
        y2 = min(height, int((rows.max() + 1) * c + reach))
        found = self.find(frame[y1:y2, x1:x2]).shifted(x1, y1)
        return found[np.array([not changed.unchanged_under(box) for box in found.xyxy], bool)]

    def find(self, frame: Frame) -> Detections:
        """The faces on ``frame`` (RGB), in its pixels."""
        height, width = frame.shape[:2]
        shrink = min(1.0, math.sqrt(MAX_PIXELS / max(1, width * height)))
        size = (max(1, round(width * shrink)), max(1, round(height * shrink)))
        if min(size) < _SMALLEST:
            return Detections.empty()  # no face YuNet can find fits
        picture = frame if shrink == 1.0 else cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
        if size != self._size:
            self._net.setInputSize(size)
            self._size = size
        try:
            _, found = self._net.detect(cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))
        except cv2.error as exc:
            raise DetectorError(f"face detection failed: {exc}") from exc
        if found is None or not len(found):
            return Detections.empty()
        # Each row: x, y, width, height, five landmarks (x, y), score.
        xyxy = np.concatenate([found[:, :2], found[:, :2] + found[:, 2:4]], axis=1)
        landmarks = found[:, 4:14].reshape(-1, 5, 2)
        back = 1.0 / shrink
        return Detections.from_boxes(xyxy * back, found[:, 14], landmarks * back).clipped(
            width, height
        )


def beside_none(extra: Detections, found: Detections) -> Detections:
    """The boxes of ``extra`` (YuNet's) that do not touch a box of ``found`` (CenterFace's)
    unless they are the same face (``SAME_FACE``). A YuNet box beside a face CenterFace
    found is a part of that person (hair, a shoulder): as a track of its own, seen
    once, it can take that face's detections (seen on a test clip: a box above a head
    that then followed the face it touched)."""
    if not len(extra) or not len(found):
        return extra
    overlap = box_iou(extra.xyxy, found.xyxy)
    keep = ~np.any(_touching(extra.xyxy, found.xyxy) & (overlap < SAME_FACE), axis=1)
    return extra[keep]


def _touching(a: FloatArray, b: FloatArray) -> npt.NDArray[np.bool_]:
    """Whether each box of ``a`` ``(n, 4)`` meets each box of ``b`` ``(m, 4)``, edges too."""
    return (
        (a[:, None, 0] <= b[None, :, 2])
        & (b[None, :, 0] <= a[:, None, 2])
        & (a[:, None, 1] <= b[None, :, 3])
        & (b[None, :, 1] <= a[:, None, 3])
    )
