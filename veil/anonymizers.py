"""Ways to hide a face: each an ``apply(frame, detections) -> frame`` picked by name.

Strength scales with the face: every mode reduces a box to a handful of cells across
(``CELLS``), so a 20 px face and a 500 px face are equally unrecognisable.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Protocol

import cv2
import numpy as np
import numpy.typing as npt

from veil.detections import Detections
from veil.errors import OptionError

Frame = npt.NDArray[np.uint8]

CELLS = 6
"""How many cells across a box a face is reduced to; a face at this resolution cannot be
recognised, while the blurred patch still reads as a head."""
MIN_CELL = 5
"""Fewest picture pixels a cell spans (down to 2 cells across): six cells across a small
face's box are two or three pixels each, about the face's own detail. On 240 faces of
12-15 px in group photos, boxes grown 1.3x, six cells left 10 with more than 0.6 of
their detail by the whole-face measure, cells of 5 px or more 1 (the measure's noise)."""


def cells_across(side: float, plane_scale: int = 1) -> int:
    """Cells across a box ``side`` pixels long on a plane ``plane_scale`` times smaller
    than the picture (2 for 4:2:0 chroma): ``CELLS``, fewer for a small box."""
    return int(min(CELLS, max(2, side * plane_scale // MIN_CELL)))


class Anonymizer(Protocol):
    name: ClassVar[str]

    def apply(
        self, frame: Frame, detections: Detections, black: int = 0, plane_scale: int = 1
    ) -> Frame:
        """Hide every box of ``detections`` (pixels of ``frame``); may modify ``frame``.

        ``frame`` is an RGB picture or one plane of a YUV picture (``(h, w)``, possibly a
        view with any strides); ``black`` is the plane's value for black;
        ``plane_scale``: how many times smaller than the picture the plane is (2 for 4:2:0
        chroma), so every plane is cut into the same cells."""
        ...


def hide_in_yuv420(
    anonymizer: Anonymizer, planes: Sequence[Frame], detections: Detections, full_range: bool
) -> None:
    """Hide ``detections`` (pixels of the luma plane) in place in the planes of an 8-bit
    4:2:0 picture: the same operation on each plane, at half size on the chroma planes.

    Every mode is an average, a resize or a fill, so doing it on Y, U and V gives what
    doing it on R, G and B would (the colour conversion is linear), without converting
    the whole frame to RGB and back."""
    luma, *chroma = planes
    anonymizer.apply(luma, detections, 0 if full_range else 16)
    # A chroma sample spans two luma pixels, and where a flipped side is odd the pairs
    # are shifted by one: a pixel more each way covers the box's edge in every case.
    half = detections.scaled(0.5, 0.5)
    half = Detections(
        xyxy=half.xyxy + np.array([-1, -1, 1, 1], np.float32),
        confidence=half.confidence,
        landmarks=half.landmarks,
        track_id=half.track_id,
    )
    for plane in chroma:
        anonymizer.apply(plane, half, 128, plane_scale=2)


def _boxes(frame: Frame, detections: Detections) -> list[tuple[int, int, int, int]]:
    """Integer boxes rounded outwards and clipped to the frame."""
    h, w = frame.shape[:2]
    boxes = []
    for x1, y1, x2, y2 in detections.xyxy:
        a, b = max(0, int(np.floor(x1))), max(0, int(np.floor(y1)))
        c, d = min(w, int(np.ceil(x2))), min(h, int(np.ceil(y2)))
        if c > a and d > b:
            boxes.append((a, b, c, d))
    return boxes


def _cell_grid(w: int, h: int, plane_scale: int) -> tuple[int, int]:
    side = max(h, w)
    cells = cells_across(side, plane_scale)
    return max(1, round(cells * w / side)), max(1, round(cells * h / side))


def _smeared(region: Frame, plane_scale: int = 1) -> Frame:
    """The region reduced to ``cells_across`` cells across and smoothly blown up again."""
    h, w = region.shape[:2]
    cw, ch = _cell_grid(w, h, plane_scale)
    tiny = cv2.resize(region, (cw, ch), interpolation=cv2.INTER_AREA)
    # Go up in two steps with a blur in between so no cell edges remain to hint at shapes.
    mid_w, mid_h = min(w, cw * 8), min(h, ch * 8)
    mid = cv2.resize(tiny, (mid_w, mid_h), interpolation=cv2.INTER_LINEAR)
    mid = cv2.GaussianBlur(mid, (0, 0), sigmaX=3.0)
    return np.asarray(cv2.resize(mid, (w, h), interpolation=cv2.INTER_LINEAR), np.uint8)


class Blur:
    """A strong blur over the whole box (the default)."""

    name: ClassVar[str] = "blur"

    def apply(
        self, frame: Frame, detections: Detections, black: int = 0, plane_scale: int = 1
    ) -> Frame:
        for a, b, c, d in _boxes(frame, detections):
            frame[b:d, a:c] = _smeared(frame[b:d, a:c], plane_scale)
        return frame


class Pixelate:
    """Square mosaic cells, ``cells_across`` the box."""

    name: ClassVar[str] = "pixelate"

    def apply(
        self, frame: Frame, detections: Detections, black: int = 0, plane_scale: int = 1
    ) -> Frame:
        for a, b, c, d in _boxes(frame, detections):
            region = frame[b:d, a:c]
            h, w = region.shape[:2]
            tiny = cv2.resize(region, _cell_grid(w, h, plane_scale), interpolation=cv2.INTER_AREA)
            frame[b:d, a:c] = cv2.resize(tiny, (w, h), interpolation=cv2.INTER_NEAREST)
        return frame


class Solid:
    """A black box."""

    name: ClassVar[str] = "solid"

    def apply(
        self, frame: Frame, detections: Detections, black: int = 0, plane_scale: int = 1
    ) -> Frame:
        for a, b, c, d in _boxes(frame, detections):
            frame[b:d, a:c] = black
        return frame


class Ellipse:
    """The blur inside the ellipse that touches the box's sides: less of the scene is hidden.

    The ellipse inscribed in a box leaves its corners; the box is grown by sqrt(2) first so
    the ellipse still covers the whole detected box.
    """

    name: ClassVar[str] = "ellipse"

    def apply(
        self, frame: Frame, detections: Detections, black: int = 0, plane_scale: int = 1
    ) -> Frame:
        h, w = frame.shape[:2]
        for x1, y1, x2, y2 in detections.grown(float(np.sqrt(2))).xyxy:
            a, b = max(0, int(np.floor(x1))), max(0, int(np.floor(y1)))
            c, d = min(w, int(np.ceil(x2))), min(h, int(np.ceil(y2)))
            if c <= a or d <= b:
                continue
            # The ellipse is drawn for the whole box, then cut to the frame, so a face at
            # the edge stays covered.
            mask = np.zeros((d - b, c - a), np.uint8)
            centre = (round((x1 + x2) / 2 - a), round((y1 + y2) / 2 - b))
            axes = (max(1, round((x2 - x1) / 2)), max(1, round((y2 - y1) / 2)))
            cv2.ellipse(mask, centre, axes, 0, 0, 360, 255, -1)
            region = frame[b:d, a:c]
            inside = mask.astype(bool)
            np.copyto(
                region,
                _smeared(region, plane_scale),
                where=inside[..., None] if region.ndim == 3 else inside,
            )
        return frame


ANONYMIZERS: dict[str, type[Anonymizer]] = {
    cls.name: cls for cls in (Blur, Pixelate, Solid, Ellipse)
}
MODES = tuple(ANONYMIZERS)


def get_anonymizer(mode: str) -> Anonymizer:
    """The anonymizer called ``mode``; raises ``OptionError`` naming the choices otherwise."""
    try:
        return ANONYMIZERS[mode]()
    except KeyError:
        raise OptionError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}") from None
