"""Group photos of real people's faces, with exact ground truth, for photo tests and
``bench/photos.py``.

A picture is a one-frame ``veil.synthetic.Scene``: faces of ``veil.faces`` (many people
from several packages) pasted with soft edges onto a seeded backdrop, each in a cell of
its own so no face covers another, at the heights asked for. ``hidden_badly`` judges an
output by the whole-face measure the video corpus uses (``veil.privacy_corpus.VISIBLE``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from veil.faces import sprites
from veil.privacy_corpus import VISIBLE
from veil.synthetic import MovingFace, Scene, face_visibility

Picture = npt.NDArray[np.uint8]


@dataclass(frozen=True)
class GroupPhoto:
    """A picture (``scene.render(0)``), its faces' boxes ``(n, 4)`` pixels and heights."""

    scene: Scene
    picture: Picture
    boxes: npt.NDArray[np.float32]
    heights: tuple[float, ...]


def group_photo(
    seed: int, width: int, height: int, heights: tuple[float, ...], *, first_person: int = 0
) -> GroupPhoto:
    """``len(heights)`` faces of different people (``first_person`` on, in turn) in a
    ``width`` x ``height`` picture, each in its own grid cell, shuffled by ``seed``."""
    rng = np.random.default_rng(seed)
    people = sprites()
    tallest = max(heights)
    columns = max(1, int(width // (tallest * 1.5)))
    rows = max(1, int(height // (tallest * 1.5)))
    if columns * rows < len(heights):
        raise ValueError(f"{len(heights)} faces up to {tallest} px do not fit {width}x{height}")
    cells = rng.permutation(columns * rows)[: len(heights)]
    faces = []
    for n, (cell, face_height) in enumerate(zip(cells, heights, strict=True)):
        row, column = divmod(int(cell), columns)
        jitter = rng.uniform(-0.15, 0.15, 2)
        x = (column + 0.5 + jitter[0]) / columns
        y = (row + 0.5 + jitter[1]) / rows
        person = people[(first_person + n) % len(people)]
        faces.append(MovingFace(photo=person, height=float(face_height), start=(x, y)))
    scene = Scene(width=width, height=height, frames=1, faces=tuple(faces), backdrop=seed)
    picture, boxes, ids = scene.render(0)
    order = np.argsort(ids)
    return GroupPhoto(scene, picture, boxes[order], tuple(float(h) for h in heights))


def hidden_badly(photo: GroupPhoto, output: Picture) -> list[tuple[int, float, float]]:
    """``(face, height, visibility)`` of every face of ``photo`` that keeps more than
    ``VISIBLE`` of its detail in ``output`` (RGB, upright, the same size)."""
    if output.shape != photo.picture.shape:
        raise ValueError(f"the output is {output.shape[1::-1]}, the photo {photo.picture.shape}")
    found = []
    for face, (box, face_height) in enumerate(zip(photo.boxes, photo.heights, strict=True)):
        seen = face_visibility(photo.picture, output, box)
        if seen > VISIBLE:
            found.append((face, face_height, round(seen, 2)))
    return found
