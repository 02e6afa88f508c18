"""Two encodes of the same frames compared as a viewer would: the same pictures, up to
the encoder's own noise. x264 given the same frames twice, even in one process, now and
then writes different bytes on a busy machine (seen on one core and under pytest-xdist):
a byte or exact-pixel comparison then fails on nothing veil did."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

BLOCK = 8
"""Pixels a side of the squares compared: a face left unhidden (12 px and up) changes
whole squares, the encoder's noise single pixels."""
NOISE = 16.0
"""Most a square's mean may differ by, in 8-bit levels: the encoder's noise reached 9.4
(one core, six encodes of a segment), a hidden face against the same face unhidden
differs by 70-80."""


def decoded_frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def same_pictures(a: Path, b: Path) -> None:
    """Assert that videos ``a`` and ``b`` hold as many frames, each the same picture."""
    first, second = decoded_frames(a), decoded_frames(b)
    assert len(first) == len(second), (len(first), len(second))
    for index, (x, y) in enumerate(zip(first, second, strict=True)):
        assert x.shape == y.shape, (index, x.shape, y.shape)
        height, width = (s - s % BLOCK for s in x.shape[:2])
        difference = np.abs(x[:height, :width].astype(np.int16) - y[:height, :width])
        squares = difference.reshape(height // BLOCK, BLOCK, width // BLOCK, BLOCK, 3)
        worst = float(squares.mean(axis=(1, 3, 4)).max())
        assert worst <= NOISE, f"frame {index}: a {BLOCK} px square differs by {worst:.1f}"
