"""Parameters shared by the detector tests: the same case on each of the synthetic
scenes' three photos.

The full suite runs every case on every photo. The quick tier (``-m "not slow"``) runs
each case on one photo, taking the photos in turn, so every case and every photo still
runs there, at a third of the cost.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest

PHOTOS = ("astronaut", "grace_hopper", "cameraman")


def each_photo(cases: Iterable[Any], *, slow: bool = False) -> list[Any]:
    """``pytest.param(photo, *case)`` for each case and photo (a case that is not a
    tuple is one value); all but one photo per case are marked slow, and every one
    when ``slow``."""
    params = []
    for i, case in enumerate(cases):
        values = case if isinstance(case, tuple) else (case,)
        for j, photo in enumerate(PHOTOS):
            quick = not slow and j == i % len(PHOTOS)
            marks = () if quick else (pytest.mark.slow,)
            params.append(pytest.param(photo, *values, marks=marks))
    return params
