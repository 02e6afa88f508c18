"""Square boxes for the tracker's tests: a detection at ``x, y``, and whether some box
covers that square whole."""

from __future__ import annotations

from veil.detections import Detections


def box(x: float, y: float = 50, size: float = 20) -> Detections:
    return Detections.from_boxes([(x, y, x + size, y + size)])


def covers(dets: Detections, x: float, y: float = 50, size: float = 20) -> bool:
    if not len(dets):
        return False
    b = dets.xyxy
    return bool(
        ((b[:, 0] <= x) & (b[:, 1] <= y) & (b[:, 2] >= x + size) & (b[:, 3] >= y + size)).any()
    )
