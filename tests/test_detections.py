from __future__ import annotations

import numpy as np
import pytest

from veil.detections import Detections, box_iou


def make_detections(
    *boxes: tuple[float, float, float, float], track_ids: list[int] | None = None
) -> Detections:
    return Detections.from_boxes(np.array(boxes, np.float32).reshape(-1, 4), track_id=track_ids)


@pytest.mark.parametrize(
    ("boxes", "factor", "expected"),
    [
        ([(10, 10, 20, 30)], 1.0, [(10, 10, 20, 30)]),
        ([(10, 10, 20, 30)], 2.0, [(5, 0, 25, 40)]),
        (
            [(0, 0, 10, 10), (100, 100, 110, 120)],
            1.5,
            [(-2.5, -2.5, 12.5, 12.5), (97.5, 95, 112.5, 125)],
        ),
    ],
)
def test_grown(boxes, factor, expected):
    np.testing.assert_allclose(make_detections(*boxes).grown(factor).xyxy, expected)


@pytest.mark.parametrize(
    ("boxes", "size", "expected"),
    [
        ([(-5, -5, 10, 10)], (100, 50), [(0, 0, 10, 10)]),
        ([(90, 40, 120, 60)], (100, 50), [(90, 40, 100, 50)]),
        ([(200, 10, 220, 20), (1, 1, 2, 2)], (100, 50), [(1, 1, 2, 2)]),  # outside dropped
    ],
)
def test_clipped(boxes, size, expected):
    np.testing.assert_allclose(make_detections(*boxes).clipped(*size).xyxy, expected)


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ((0, 0, 10, 10), (0, 0, 10, 10), 1.0),
        ((0, 0, 10, 10), (5, 0, 15, 10), 1 / 3),
        ((0, 0, 10, 10), (20, 20, 30, 30), 0.0),
    ],
)
def test_box_iou(a, b, expected):
    iou = box_iou(np.array([a], np.float32), np.array([b], np.float32))
    assert iou.shape == (1, 1)
    assert iou[0, 0] == pytest.approx(expected)


def test_shapes_are_validated():
    with pytest.raises(ValueError, match="confidence"):
        Detections(
            np.zeros((2, 4), np.float32),
            np.zeros(3, np.float32),
            np.zeros((2, 5, 2), np.float32),
            np.zeros(2, np.int64),
        )


def test_mask_selects_every_array():
    d = make_detections((0, 0, 1, 1), (2, 2, 3, 3), track_ids=[7, 8])
    picked = d[np.array([False, True])]
    assert len(picked) == 1
    assert picked.track_id.tolist() == [8]
    np.testing.assert_allclose(picked.xyxy, [(2, 2, 3, 3)])


def test_rekognition_round_trip():
    marks = np.arange(10, dtype=np.float32).reshape(1, 5, 2) + 50
    d = Detections.from_boxes([(64, 48, 128, 144)], [0.5], marks, [3])
    faces = d.to_rekognition(640, 480)
    assert faces[0]["BoundingBox"] == pytest.approx(
        {"Width": 0.1, "Height": 0.2, "Left": 0.1, "Top": 0.1}
    )
    assert faces[0]["Confidence"] == pytest.approx(50.0)
    assert [m["Type"] for m in faces[0]["Landmarks"]] == [
        "eyeLeft",
        "eyeRight",
        "nose",
        "mouthLeft",
        "mouthRight",
    ]
    back = Detections.from_rekognition(faces, 640, 480)
    np.testing.assert_allclose(back.xyxy, d.xyxy, atol=1e-3)
    np.testing.assert_allclose(back.landmarks, d.landmarks, atol=1e-3)
    assert back.track_id.tolist() == [3]


def test_unknown_landmarks_are_omitted():
    faces = make_detections((0, 0, 10, 10)).to_rekognition(100, 100)
    assert "Landmarks" not in faces[0]


@pytest.mark.parametrize("face", [{}, {"BoundingBox": {"Left": "x"}}, {"BoundingBox": None}])
def test_malformed_face_raises(face):
    with pytest.raises(ValueError, match="BoundingBox"):
        Detections.from_rekognition([face], 100, 100)


@pytest.mark.parametrize(
    ("boxes", "scores", "expected"),
    [
        # a confident part (eyes) inside a less confident whole face: the whole face stays
        ([[0, 0, 200, 200], [10, 20, 190, 120]], [0.5, 0.8], [[0, 0, 200, 200]]),
        # a box mostly inside a larger one: dropped, and the larger grows to hold it all
        ([[0, 0, 100, 100], [85, 10, 105, 40]], [0.9, 0.9], [[0, 0, 105, 100]]),
        # two looks at one face: the more confident kept, grown to their union
        ([[0, 0, 100, 100], [5, 5, 105, 105]], [0.9, 0.6], [[0, 0, 105, 105]]),
        # separate faces stay separate
        (
            [[0, 0, 50, 50], [300, 300, 320, 320]],
            [0.9, 0.3],
            [[0, 0, 50, 50], [300, 300, 320, 320]],
        ),
    ],
)
def test_deduplicated_keeps_one_whole_box_per_face(boxes, scores, expected):
    found = Detections.from_boxes(boxes, scores).deduplicated(iou=0.3, contained=0.7)
    assert found.xyxy.tolist() == expected
