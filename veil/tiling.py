"""Where the detector looks: a pyramid of scales, each cut into tiles of bounded size.

CenterFace finds a face whole when it is about ``MIN_FACE`` to ``MAX_FACE`` pixels tall
at its input. Larger, it finds the face's parts instead (an eye region, a mouth) or
false boxes; smaller, nothing. No single scale covers a 16 px face and a close-up that
fills a 4K frame, so a frame is analysed at several scales:

- the **coarsest level** shrinks the whole frame until its shorter side is
  ``COARSE_SIDE`` pixels, so the largest face a frame can hold is still whole;
- the **finest level** is the detector's ``scale`` (2 by default: a 16 px face becomes
  32 px, big enough to find);
- levels in between keep neighbours at most ``MAX_LEVEL_RATIO`` apart, so a face too
  small for one level is large enough for the next.

Each level is cut into tiles of at most ``MAX_TILE_PIXELS`` input pixels, so the
detector's input, and with it ONNX Runtime's memory, does not depend on the frame's
size. Neighbouring tiles overlap by the largest face the level must see whole (a larger
one is found at the coarser level), so a face on a seam is whole in one of them.

Where only part of the picture changed since the last analysis (``ChangedArea``, from
``veil.motion``), the finer levels are analysed only over that part, grown by the
largest face each level must see whole (``TilePlan.tiles_within``): a face that touches
a change is whole in a tile, and the rest of the picture, unchanged, holds the faces
found there before.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

MIN_FACE = 28
"""Input pixels: the smallest face height CenterFace finds reliably."""
MAX_FACE = 300
"""Input pixels: the largest face height CenterFace still finds as one whole box."""
COARSE_SIDE = 256
"""Input pixels the frame's shorter side gets at the coarsest level."""
MAX_LEVEL_RATIO = 4.0
"""Largest scale ratio between neighbouring levels: a face just too small for a level
(``MIN_FACE``) is ``MIN_FACE * ratio`` at the next, well under ``MAX_FACE``."""
MAX_TILE_PIXELS = 1024 * 1024
"""Input pixels per tile, at most: this bounds the detector's memory."""
MAX_TILE_SIDE = 1536
"""Input pixels per tile side, at most."""
ALIGN = 32
"""The network needs input sides that are multiples of 32."""
NEAR_FACE = 64
"""Input pixels a face is scaled to when the detector looks only near it."""
NEAR_REACH = 1.5
"""How far around a predicted face the detector looks, in face sizes each way."""
_SEAM_MARGIN = 1.2
"""How much more than the largest face a level owns neighbouring tiles overlap."""


@dataclass(frozen=True)
class Tile:
    """One detector input (``level`` -1 for a tile near a tracked face): the frame region ``x1, y1, x2, y2`` (pixels, ints) resized by
    ``scale`` into the top-left of an ``input_width`` x ``input_height`` input, padded
    with black to the aligned size."""

    level: int
    scale: float
    x1: int
    y1: int
    x2: int
    y2: int
    input_width: int
    input_height: int

    @property
    def content_size(self) -> tuple[int, int]:
        """``(width, height)`` the region takes in the input once resized."""
        return (
            min(self.input_width, max(1, round((self.x2 - self.x1) * self.scale))),
            min(self.input_height, max(1, round((self.y2 - self.y1) * self.scale))),
        )


@dataclass(frozen=True)
class TilePlan:
    """Every tile analysed on a ``width`` x ``height`` frame, coarsest level first.

    ``scales`` are input pixels per frame pixel, one per level.
    """

    width: int
    height: int
    scales: tuple[float, ...]
    tiles: tuple[Tile, ...]

    @property
    def input_pixels(self) -> int:
        """Detector input pixels per analysed frame, padding included: its cost."""
        return _pixels(self.tiles)

    def largest_face(self, level: int) -> float:
        """Input pixels: faces taller than this at ``level`` are found whole at a coarser
        level, so its detections that tall are parts of a face or false alarms."""
        return math.inf if level == 0 else MAX_FACE

    def tiles_within(self, changed: ChangedArea) -> tuple[Tile, ...]:
        """The tiles a frame needs where only ``changed`` differs from the frame its
        other faces were found on: the coarsest level whole (its tiles are the smallest),
        each finer level over the changed cells grown by the faces it must see whole."""
        tiles = [tile for tile in self.tiles if tile.level == 0]
        for level in range(1, len(self.scales)):
            s = self.scales[level]
            overlap = math.ceil(_owned(self.scales, level) * _SEAM_MARGIN)
            within = []
            # Around each change: a face the level owns (and the margin a tile needs to
            # see it whole), beyond the two cells within which a face found before no
            # longer stands (``unchanged_under``): such a face must be seen again whole.
            for x1, y1, x2, y2 in changed.regions(overlap / s + 2 * changed.cell):
                columns, rows = _grid((x2 - x1) * s, (y2 - y1) * s, overlap)
                for a, b, in_h in _axis(y2 - y1, s, rows):
                    for c, d, in_w in _axis(x2 - x1, s, columns):
                        within.append(Tile(level, s, x1 + c, y1 + a, x1 + d, y1 + b, in_w, in_h))
            whole = [tile for tile in self.tiles if tile.level == level]
            # Where the changes are spread out, their tiles (each padded and overlapping
            # its neighbours) can cost more than the whole level.
            tiles.extend(within if _pixels(within) < _pixels(whole) else whole)
        return tuple(tiles)


@dataclass(frozen=True)
class ChangedArea:
    """The cells of a ``width`` x ``height`` frame whose picture changed: ``cells``
    ``(rows, columns)``, true where changed, each ``cell`` frame pixels square (the last
    row and column may be cut by the frame's edge)."""

    cells: npt.NDArray[np.bool_]
    cell: int
    width: int
    height: int

    @property
    def fraction(self) -> float:
        return float(self.cells.mean()) if self.cells.size else 0.0

    def regions(self, reach: float) -> list[tuple[int, int, int, int]]:
        """Rectangles ``x1, y1, x2, y2`` (frame pixels) that cover every changed cell and
        ``reach`` pixels around it, none overlapping another."""
        steps = math.ceil(reach / self.cell)
        grown = cv2.dilate(
            self.cells.astype(np.uint8), np.ones((2 * steps + 1, 2 * steps + 1), np.uint8)
        )
        count, _, stats, _ = cv2.connectedComponentsWithStats(grown, connectivity=8)
        boxes = [(int(x), int(y), int(x + w), int(y + h)) for x, y, w, h, _ in stats[1:count]]
        # Components' bounding boxes may overlap: merge those until none do, so no
        # pixels are analysed twice.
        merged = True
        while merged:
            merged = False
            for i in range(len(boxes)):
                for j in range(i + 1, len(boxes)):
                    a, b = boxes[i], boxes[j]
                    if a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]:
                        boxes[i] = (
                            min(a[0], b[0]),
                            min(a[1], b[1]),
                            max(a[2], b[2]),
                            max(a[3], b[3]),
                        )
                        del boxes[j]
                        merged = True
                        break
                if merged:
                    break
        c = self.cell
        return [
            (x1 * c, y1 * c, min(self.width, x2 * c), min(self.height, y2 * c))
            for x1, y1, x2, y2 in boxes
        ]

    def unchanged_under(self, box: Sequence[float]) -> bool:
        """Whether no cell under ``box`` (frame pixels), or next to it, changed."""
        rows, columns = self.cells.shape
        c = self.cell
        x1, y1 = max(0, math.floor(box[0] / c) - 1), max(0, math.floor(box[1] / c) - 1)
        x2, y2 = min(columns, math.floor(box[2] / c) + 2), min(rows, math.floor(box[3] / c) + 2)
        return not self.cells[y1:y2, x1:x2].any()


def _pixels(tiles: Sequence[Tile]) -> int:
    return sum(t.input_width * t.input_height for t in tiles)


def _owned(scales: Sequence[float], level: int) -> float:
    """Input pixels: the largest face ``level`` must see whole. The coarsest level, the
    largest face a frame holds; a finer one, those too small for the level before."""
    return MAX_FACE if level == 0 else MIN_FACE * scales[level] / scales[level - 1]


def plan_tiles(width: int, height: int, scale: float = 2.0) -> TilePlan:
    """The levels and tiles for a ``width`` x ``height`` frame, ``scale`` the finest level's."""
    if width < 1 or height < 1:
        raise ValueError(f"frame size must be positive, got {width}x{height}")
    # The largest face a frame holds is as tall as its shorter side, or, in a tall frame,
    # a third taller than its width: either way about COARSE_SIDE pixels at this scale.
    coarse = min(scale, COARSE_SIDE / min(width, height), COARSE_SIDE / (0.75 * height))
    steps = max(0, math.ceil(math.log(scale / coarse) / math.log(MAX_LEVEL_RATIO) - 1e-9))
    ratio = (scale / coarse) ** (1 / steps) if steps else 1.0
    scales = tuple(coarse * ratio**k for k in range(steps + 1))
    tiles: list[Tile] = []
    for level, s in enumerate(scales):
        # A level must see whole the faces too small for the coarser one; the coarsest
        # level, when it needs tiles at all (a very long, thin frame), the largest.
        overlap = math.ceil(_owned(scales, level) * _SEAM_MARGIN)
        columns, rows = _grid(width * s, height * s, overlap)
        for y1, y2, in_h in _axis(height, s, rows):
            for x1, x2, in_w in _axis(width, s, columns):
                tiles.append(Tile(level, s, x1, y1, x2, y2, in_w, in_h))
    return TilePlan(width, height, scales, tuple(tiles))


def near_tile(
    box: Sequence[float], width: int, height: int, scale: float = 2.0, reach: float = NEAR_REACH
) -> Tile | None:
    """A small tile around a face predicted at ``box`` (``x1, y1, x2, y2`` pixels of a
    ``width`` x ``height`` frame): ``reach`` face sizes around it each way, scaled so the
    face is about ``NEAR_FACE`` input pixels tall but never finer than ``scale``.
    ``None`` when that region lies outside the frame (a face predicted to have left)."""
    x1, y1, x2, y2 = (float(v) for v in box)
    side = max(x2 - x1, y2 - y1, 1.0)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    reach = side * (0.5 + reach)
    left, top = max(0, math.floor(cx - reach)), max(0, math.floor(cy - reach))
    right, bottom = min(width, math.ceil(cx + reach)), min(height, math.ceil(cy + reach))
    if right <= left or bottom <= top:
        return None
    s = min(scale, NEAR_FACE / side, math.sqrt(MAX_TILE_PIXELS / ((right - left) * (bottom - top))))
    return Tile(
        -1, s, left, top, right, bottom, _aligned((right - left) * s), _aligned((bottom - top) * s)
    )


def _grid(width: float, height: float, overlap: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """``(count, input size)`` of tiles across and down a level ``width`` x ``height``
    input pixels large: the layout with the fewest input pixels in all (overlap and
    alignment padding cost), each tile within ``MAX_TILE_PIXELS`` and ``MAX_TILE_SIDE``."""
    best: tuple[int, int, tuple[int, int], tuple[int, int]] | None = None
    for across in range(1, _most_tiles(width, overlap) + 1):
        tile_w = _aligned((width + (across - 1) * overlap) / across)
        for down in range(1, _most_tiles(height, overlap) + 1):
            tile_h = _aligned((height + (down - 1) * overlap) / down)
            if tile_w * tile_h > MAX_TILE_PIXELS or max(tile_w, tile_h) > MAX_TILE_SIDE:
                continue
            cost = (
                across * down * tile_w * tile_h,
                across * down,
                (across, tile_w),
                (down, tile_h),
            )
            best = cost if best is None or cost[:2] < best[:2] else best
    if best is None:
        raise ValueError(f"no tile layout for a {width:.0f}x{height:.0f} level")
    return best[2], best[3]


def _most_tiles(length: float, overlap: int) -> int:
    """Tiles worth trying along a side: none needs to be narrower than half the widest."""
    return math.ceil(length / max(ALIGN, MAX_TILE_SIDE // 2 - overlap)) + 1


def _axis(length: int, scale: float, layout: tuple[int, int]) -> list[tuple[int, int, int]]:
    """``(start, end, input size)`` of ``layout``'s tiles along one side of the frame,
    spread evenly from edge to edge."""
    count, size = layout
    if count == 1:
        return [(0, length, size)]
    span = min(length, math.ceil(size / scale))
    starts = [round(i * (length - span) / (count - 1)) for i in range(count)]
    return [(start, start + span, size) for start in starts]


def _aligned(pixels: float) -> int:
    return max(ALIGN, math.ceil(pixels / ALIGN) * ALIGN)
