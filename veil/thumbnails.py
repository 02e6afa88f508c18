"""Small pictures of each tracked face, taken from the original while a video is
redacted, so a reviewer can tell who a track is without downloading the original.

They are pictures of faces: the service keeps them only with the job (``veil.review``)
and serves them only to those who may read the original, never to a browser's cache.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from veil.detections import Detections
from veil.video import Frame

HEIGHT = 96
"""Pixels a thumbnail is tall (its width follows the face's shape, up to twice that)."""

MAX_TRACKS = 500
"""Tracks a video keeps thumbnails for: enough for a crowd, a bound for a stadium."""

_MARGIN = 0.2  # of the box on each side: some hair and chin make a face recognisable
_QUALITY = 80


class Thumbnails:
    """The most confident sighting of each track as a JPEG (``pictures``: track id →
    bytes). ``offer`` is called with each frame's original picture and its boxes."""

    def __init__(self) -> None:
        self.pictures: dict[int, bytes] = {}
        self._scores: dict[int, float] = {}

    def offer(self, picture: Callable[[], Frame], detections: Detections) -> None:
        """``picture`` makes the frame's RGB picture: called only when a crop is wanted,
        at most once (most frames improve on no track's best sighting)."""
        rgb: Frame | None = None
        for i in range(len(detections)):
            track = int(detections.track_id[i])
            score = float(detections.confidence[i])
            if track < 0 or score <= self._scores.get(track, -1.0):
                continue
            if track not in self._scores and len(self._scores) >= MAX_TRACKS:
                continue
            if rgb is None:
                rgb = picture()
            crop = _crop(rgb, detections.xyxy[i])
            if crop is not None:
                self._scores[track] = score
                self.pictures[track] = crop


def _crop(rgb: Frame, box: np.ndarray) -> bytes | None:
    height, width = rgb.shape[:2]
    x1, y1, x2, y2 = (float(v) for v in box)
    mx, my = (x2 - x1) * _MARGIN, (y2 - y1) * _MARGIN
    left, top = max(0, int(x1 - mx)), max(0, int(y1 - my))
    right, bottom = min(width, int(x2 + mx) + 1), min(height, int(y2 + my) + 1)
    if right - left < 2 or bottom - top < 2:
        return None
    region = rgb[top:bottom, left:right]
    scale = HEIGHT / region.shape[0]
    size = (max(1, min(2 * HEIGHT, round(region.shape[1] * scale))), HEIGHT)
    small = cv2.resize(region, size, interpolation=cv2.INTER_AREA)
    ok, encoded = cv2.imencode(
        ".jpg", cv2.cvtColor(small, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, _QUALITY]
    )
    return encoded.tobytes() if ok else None
