from __future__ import annotations

import numpy as np
import pytest

from veil.anonymizers import MODES, get_anonymizer
from veil.detections import Detections
from veil.errors import OptionError
from veil.synthetic import MovingFace, Scene, face_visibility


def face_frame(height: int) -> tuple[np.ndarray, np.ndarray]:
    scene = Scene(
        width=max(160, height * 3),
        height=max(120, height * 2),
        frames=1,
        faces=(MovingFace(height=height),),
    )
    frame, boxes, _ = scene.render(0)
    return frame, boxes[0]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("height", [16, 32, 64, 160, 400])
def test_face_is_unrecognisable_at_every_size(mode, height):
    frame, face = face_frame(height)
    out = get_anonymizer(mode).apply(frame.copy(), Detections.from_boxes([face]).grown(1.3))
    assert face_visibility(frame, frame, face) > 0.99
    assert face_visibility(frame, out, face) < 0.5


@pytest.mark.parametrize("mode", MODES)
def test_only_the_box_changes(mode):
    frame, face = face_frame(64)
    out = get_anonymizer(mode).apply(frame.copy(), Detections.from_boxes([face]))
    grown = Detections.from_boxes([face]).grown(1.5).xyxy[0].astype(int)
    outside = np.ones(frame.shape[:2], bool)
    outside[max(0, grown[1]) : grown[3], max(0, grown[0]) : grown[2]] = False
    assert np.array_equal(out[outside], frame[outside])


@pytest.mark.parametrize("mode", MODES)
def test_box_at_the_edge_and_empty(mode):
    frame, _ = face_frame(64)
    anonymizer = get_anonymizer(mode)
    out = anonymizer.apply(frame.copy(), Detections.from_boxes([(-30, -30, 20, 20)]))
    assert not np.array_equal(out[:20, :20], frame[:20, :20])
    assert np.array_equal(anonymizer.apply(frame.copy(), Detections.empty()), frame)


def test_unknown_mode_names_the_choices():
    with pytest.raises(OptionError, match="blur, pixelate, solid, ellipse"):
        get_anonymizer("smudge")
