"""A picture's faces as the cloud's ``FaceDetail``: box, confidence, landmarks, and the
``Pose`` and ``Quality`` its image call (``DetectFaces``) also returns.

CenterFace gives a box, a score and five landmarks. ``Pose`` is estimated from the
landmarks (a rough estimate, in degrees: ``Roll`` from the line through the eyes,
``Yaw`` from how far the nose sits from the middle of the eyes, ``Pitch`` from where it
sits between the eyes and the mouth); ``Quality`` is measured on the face's pixels
(``Brightness``: mean luma, ``Sharpness``: fine detail, both 0-100). No other
attributes (age, emotions...) are estimated.
"""

from __future__ import annotations

import math
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from veil.detections import Detections

_DETAIL_FOR_SHARP = 8.0
"""Median fine detail (grey levels) a face shows when it is sharp: ``Sharpness`` 100."""


def face_details(
    picture: npt.NDArray[np.uint8], faces: Detections, box_scale: float
) -> list[dict[str, Any]]:
    """``FaceDetail``s of ``faces`` (pixels of ``picture``, RGB ``(h, w, 3)``), boxes grown
    by ``box_scale`` and kept inside the picture, as ratios: a client that hides exactly
    these boxes hides what veil hides."""
    height, width = picture.shape[:2]
    grey = np.asarray(cv2.cvtColor(picture, cv2.COLOR_RGB2GRAY), np.uint8)
    grown = faces.grown(box_scale).clipped(width, height)
    details = grown.to_rekognition(width, height)
    for detail, box, marks in zip(details, faces.xyxy, faces.landmarks, strict=True):
        detail.pop("TrackId", None)
        detail["Pose"] = _pose(marks)
        detail["Quality"] = _quality(grey, box)
    return details


def _pose(marks: npt.NDArray[np.float32]) -> dict[str, float]:
    if np.isnan(marks).any():
        return {"Roll": 0.0, "Yaw": 0.0, "Pitch": 0.0}
    left_eye, right_eye, nose, left_mouth, right_mouth = (m.astype(float) for m in marks)
    across = right_eye - left_eye
    span = max(1e-6, float(np.hypot(*across)))
    roll = math.degrees(math.atan2(across[1], across[0]))
    # In the face's own frame (rolled upright): the nose's offset from the eyes' middle.
    cos, sin = across / span
    eyes = (left_eye + right_eye) / 2
    mouth = (left_mouth + right_mouth) / 2
    offset = nose - eyes
    sideways = offset[0] * cos + offset[1] * sin
    down = -offset[0] * sin + offset[1] * cos
    face_length = max(1e-6, float((mouth - eyes) @ np.array([-sin, cos])))
    yaw = math.degrees(math.asin(max(-1.0, min(1.0, 2 * sideways / span))))
    # The nose sits about halfway down from the eyes to the mouth in a face seen level.
    pitch = math.degrees(math.asin(max(-1.0, min(1.0, 2 * (down / face_length - 0.5)))))
    return {"Roll": round(roll, 2), "Yaw": round(yaw, 2), "Pitch": round(pitch, 2)}


def _quality(grey: npt.NDArray[np.uint8], box: npt.NDArray[np.float32]) -> dict[str, float]:
    height, width = grey.shape
    x1, y1 = max(0, int(box[0])), max(0, int(box[1]))
    x2, y2 = min(width, math.ceil(box[2])), min(height, math.ceil(box[3]))
    region = grey[y1:y2, x1:x2]
    if region.size == 0:
        return {"Brightness": 0.0, "Sharpness": 0.0}
    brightness = float(region.mean()) / 255 * 100
    sigma = max(0.5, (y2 - y1) / 60)
    flat = region.astype(np.float32)
    detail = cv2.GaussianBlur(flat, (0, 0), sigma) - cv2.GaussianBlur(flat, (0, 0), 3 * sigma)
    sharpness = min(100.0, float(np.median(np.abs(detail))) / _DETAIL_FOR_SHARP * 100)
    return {"Brightness": round(brightness, 2), "Sharpness": round(sharpness, 2)}
