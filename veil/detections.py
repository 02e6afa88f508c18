"""Face detections on one frame, as parallel numpy arrays, and the cloud result format."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]

# The cloud face-detection API names the five landmarks in this order; CenterFace
# predicts them in the same order (eyes, nose, mouth corners).
LANDMARK_TYPES = ("eyeLeft", "eyeRight", "nose", "mouthLeft", "mouthRight")


@dataclass(frozen=True)
class Detections:
    """Faces found on one frame.

    Attributes:
        xyxy: ``(n, 4)`` float32 boxes ``x1, y1, x2, y2`` in pixels of the displayed frame.
        confidence: ``(n,)`` float32 scores in ``[0, 1]``.
        landmarks: ``(n, 5, 2)`` float32 ``x, y`` pixels, in ``LANDMARK_TYPES`` order;
            NaN where unknown (boxes drawn by hand, boxes filled in by the tracker).
        track_id: ``(n,)`` int64 track numbers, ``-1`` before tracking.
    """

    xyxy: FloatArray
    confidence: FloatArray
    landmarks: FloatArray
    track_id: IntArray

    def __post_init__(self) -> None:
        n = len(self.xyxy)
        shapes = {
            "xyxy": (self.xyxy.shape, (n, 4)),
            "confidence": (self.confidence.shape, (n,)),
            "landmarks": (self.landmarks.shape, (n, 5, 2)),
            "track_id": (self.track_id.shape, (n,)),
        }
        for name, (actual, expected) in shapes.items():
            if actual != expected:
                raise ValueError(f"Detections.{name} has shape {actual}, expected {expected}")

    @classmethod
    def empty(cls) -> Detections:
        return cls.from_boxes(np.zeros((0, 4), np.float32))

    @classmethod
    def from_boxes(
        cls,
        xyxy: npt.ArrayLike,
        confidence: npt.ArrayLike | None = None,
        landmarks: npt.ArrayLike | None = None,
        track_id: npt.ArrayLike | None = None,
    ) -> Detections:
        """Build detections from boxes, filling what is not given (score 1, no landmarks)."""
        boxes = np.asarray(xyxy, np.float32).reshape(-1, 4)
        n = len(boxes)
        return cls(
            xyxy=boxes,
            confidence=np.ones(n, np.float32)
            if confidence is None
            else np.asarray(confidence, np.float32).reshape(n),
            landmarks=np.full((n, 5, 2), np.nan, np.float32)
            if landmarks is None
            else np.asarray(landmarks, np.float32).reshape(n, 5, 2),
            track_id=np.full(n, -1, np.int64)
            if track_id is None
            else np.asarray(track_id, np.int64).reshape(n),
        )

    @classmethod
    def concatenate(cls, parts: Sequence[Detections]) -> Detections:
        if not parts:
            return cls.empty()
        return cls(
            xyxy=np.concatenate([p.xyxy for p in parts]),
            confidence=np.concatenate([p.confidence for p in parts]),
            landmarks=np.concatenate([p.landmarks for p in parts]),
            track_id=np.concatenate([p.track_id for p in parts]),
        )

    def __len__(self) -> int:
        return len(self.xyxy)

    def __getitem__(
        self, index: npt.NDArray[np.bool_] | npt.NDArray[np.integer[Any]]
    ) -> Detections:
        """Select detections with a boolean mask or an index array."""
        return Detections(
            xyxy=self.xyxy[index],
            confidence=self.confidence[index],
            landmarks=self.landmarks[index],
            track_id=self.track_id[index],
        )

    @property
    def width(self) -> FloatArray:
        return self.xyxy[:, 2] - self.xyxy[:, 0]

    @property
    def height(self) -> FloatArray:
        return self.xyxy[:, 3] - self.xyxy[:, 1]

    def scaled(self, sx: float, sy: float) -> Detections:
        """The same detections in a frame resized by ``sx`` horizontally, ``sy`` vertically."""
        factor = np.array([sx, sy], np.float32)
        return Detections(
            xyxy=self.xyxy * np.tile(factor, 2),
            confidence=self.confidence,
            landmarks=self.landmarks * factor,
            track_id=self.track_id,
        )

    def shifted(self, dx: float, dy: float) -> Detections:
        """The same detections moved ``dx`` right and ``dy`` down (pixels)."""
        offset = np.array([dx, dy], np.float32)
        return Detections(
            xyxy=self.xyxy + np.tile(offset, 2),
            confidence=self.confidence,
            landmarks=self.landmarks + offset,
            track_id=self.track_id,
        )

    def deduplicated(self, iou: float = 0.3, contained: float = 0.7) -> Detections:
        """One box per face. First, a box lying ``contained`` (a fraction of its area) or
        more inside a larger box at least half as confident is a part of that face (an
        eye region, a mouth found at a finer scale): it is dropped. Then, of boxes
        overlapping by more than ``iou``, the most confident is kept. Either way the box
        kept grows to the union of those it replaces, so no pixel a dropped box covered
        is left uncovered."""
        boxes = self.xyxy.copy()
        scores = self.confidence
        area = np.prod(np.clip(boxes[:, 2:] - boxes[:, :2], 0, None), axis=1)
        top_left = np.maximum(boxes[:, None, :2], boxes[None, :, :2])
        bottom_right = np.minimum(boxes[:, None, 2:], boxes[None, :, 2:])
        inter = np.prod(np.clip(bottom_right - top_left, 0, None), axis=2)
        # part[i, j]: box i is a part of the larger box j.
        part = (
            (inter >= contained * np.maximum(area[:, None], 1e-9))
            & (area[None, :] > area[:, None])
            & (scores[None, :] >= 0.5 * scores[:, None])
        )
        alive = np.ones(len(self), bool)
        for i in np.argsort(area, kind="stable"):  # smallest first: parts of parts too
            owners = np.flatnonzero(part[i] & alive)
            if len(owners):
                j = owners[np.argmax(area[owners])]
                boxes[j] = _union(boxes[j], boxes[i])
                alive[i] = False
        overlap = box_iou(boxes, boxes)
        kept: list[int] = []
        for i in np.argsort(-scores, kind="stable"):
            if not alive[i]:
                continue
            winner = next((k for k in kept if overlap[i, k] > iou), None)
            if winner is None:
                kept.append(int(i))
            else:
                boxes[winner] = _union(boxes[winner], boxes[i])
        index = np.sort(np.asarray(kept, np.int64))
        return Detections(boxes[index], scores[index], self.landmarks[index], self.track_id[index])

    def grown(self, factor: float) -> Detections:
        """Boxes grown about their centres: ``factor`` 1.3 makes each side 30% longer."""
        centre = (self.xyxy[:, :2] + self.xyxy[:, 2:]) / 2
        half = (self.xyxy[:, 2:] - self.xyxy[:, :2]) * (factor / 2)
        return Detections(
            xyxy=np.concatenate([centre - half, centre + half], axis=1).astype(np.float32),
            confidence=self.confidence,
            landmarks=self.landmarks,
            track_id=self.track_id,
        )

    def clipped(self, width: int, height: int) -> Detections:
        """Boxes clipped to a ``width`` x ``height`` frame; boxes left empty are dropped."""
        limits = np.array([width, height, width, height], np.float32)
        xyxy = np.clip(self.xyxy, 0, limits)
        keep = (xyxy[:, 2] > xyxy[:, 0]) & (xyxy[:, 3] > xyxy[:, 1])
        return Detections(xyxy, self.confidence, self.landmarks, self.track_id)[keep]

    # -- the cloud face-detection result format -------------------------------------------

    def to_rekognition(self, width: int, height: int) -> list[dict[str, Any]]:
        """One ``FaceDetail`` per face: box and landmarks as ratios of the frame, confidence 0-100."""
        faces = []
        for i in range(len(self)):
            x1, y1, x2, y2 = (float(v) for v in self.xyxy[i])
            face: dict[str, Any] = {
                "BoundingBox": {
                    "Width": (x2 - x1) / width,
                    "Height": (y2 - y1) / height,
                    "Left": x1 / width,
                    "Top": y1 / height,
                },
                "Confidence": float(self.confidence[i]) * 100.0,
            }
            marks = self.landmarks[i]
            if not np.isnan(marks).any():
                face["Landmarks"] = [
                    {"Type": name, "X": float(x) / width, "Y": float(y) / height}
                    for name, (x, y) in zip(LANDMARK_TYPES, marks, strict=True)
                ]
            if self.track_id[i] >= 0:
                # Not a cloud field; clients ignore unknown keys and veil uses it to
                # keep tracks together when a file is edited and applied again.
                face["TrackId"] = int(self.track_id[i])
            faces.append(face)
        return faces

    @classmethod
    def from_rekognition(
        cls, faces: Sequence[Mapping[str, Any]], width: int, height: int
    ) -> Detections:
        """Parse ``FaceDetail`` dicts back to pixels; raises ``ValueError`` on a malformed face."""
        if not faces:
            return cls.empty()
        boxes = np.zeros((len(faces), 4), np.float32)
        scores = np.ones(len(faces), np.float32)
        marks = np.full((len(faces), 5, 2), np.nan, np.float32)
        tracks = np.full(len(faces), -1, np.int64)
        for i, face in enumerate(faces):
            try:
                box = face["BoundingBox"]
                left, top = float(box["Left"]) * width, float(box["Top"]) * height
                w, h = float(box["Width"]) * width, float(box["Height"]) * height
            except (KeyError, TypeError, ValueError) as exc:
                raise ValueError(f"face {i} has no valid BoundingBox ({exc!r})") from exc
            boxes[i] = (left, top, left + w, top + h)
            if "Confidence" in face:
                scores[i] = float(face["Confidence"]) / 100.0
            for mark in face.get("Landmarks") or []:
                if mark.get("Type") in LANDMARK_TYPES:
                    j = LANDMARK_TYPES.index(mark["Type"])
                    marks[i, j] = (float(mark["X"]) * width, float(mark["Y"]) * height)
            if "TrackId" in face:
                tracks[i] = int(face["TrackId"])
        return cls(boxes, scores, marks, tracks)


def _union(a: FloatArray, b: FloatArray) -> FloatArray:
    """The smallest box ``(4,)`` holding boxes ``a`` and ``b``."""
    return np.concatenate([np.minimum(a[:2], b[:2]), np.maximum(a[2:], b[2:])])


def box_iou(a: FloatArray, b: FloatArray) -> FloatArray:
    """Intersection over union of every box in ``a`` ``(n, 4)`` with every box in ``b`` ``(m, 4)``."""
    top_left = np.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(bottom_right - top_left, 0, None), axis=2)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0).astype(np.float32)
