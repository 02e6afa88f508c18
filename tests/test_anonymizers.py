from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from veil.anonymizers import MODES, get_anonymizer, hide_in_yuv420
from veil.detections import Detections
from veil.errors import OptionError
from veil.synthetic import MovingFace, Scene, face_visibility, write_video
from veil.video import DecodedFrame, VideoReader


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


@pytest.mark.parametrize("height", [16, 32, 64])
def test_the_measure_counts_what_is_left_of_a_face_not_its_faint_trace(height):
    # The whole-face measure (veil.synthetic.face_visibility) correlates fine detail,
    # which is blind to scale: a blurred 16 px face keeping a hundredth of its detail read
    # 0.78 by chance. A face kept at a fifth of its contrast (a dim, hazy face) is still
    # there to see; one at 5% (the faint trace a blur leaves) is not.
    frame, face = face_frame(height)
    x1, y1, x2, y2 = (round(v) for v in face)
    flat = frame.astype(np.float32)
    flat[y1:y2, x1:x2] = flat[y1:y2, x1:x2].mean(axis=(0, 1))
    for keep, seen in ((0.2, True), (0.05, False)):
        faded = flat + keep * (frame.astype(np.float32) - flat)
        out = np.clip(faded, 0, 255).round().astype(np.uint8)
        assert (face_visibility(frame, out, face) > 0.6) is seen, (keep, height)


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


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("rotation", "mirrored"), [(0, False), (90, True), (180, False), (270, True)]
)
def test_hiding_in_yuv_planes_matches_hiding_in_rgb(tmp_path, mode, rotation, mirrored):
    """The pipeline hides faces in the decoded YUV planes (no RGB round trip): a face is
    as hidden as in RGB, in display orientation, and the decoder's picture is untouched."""
    scene = Scene(width=192, height=128, frames=1, faces=(MovingFace(height=64),))
    write_video(tmp_path / "face.mp4", scene, audio=False)
    with VideoReader(tmp_path / "face.mp4") as reader:
        decoded = next(f for f in reader if isinstance(f, DecodedFrame))
    frame = replace(decoded, rotation=rotation, mirrored=mirrored)
    original = frame.rgb()
    height, width = original.shape[:2]
    # One box in the picture, one over a corner (as a face at the edge has).
    boxes = Detections.from_boxes(
        [(20.5, 30.2, 90.7, 110.1), (width - 25, height - 30, width + 9, height + 6)]
    )
    anonymizer = get_anonymizer(mode)
    in_rgb = anonymizer.apply(frame.rgb(), boxes)
    editable = frame.editable_copy()
    assert editable is not None
    copy, planes, full_range = editable
    hide_in_yuv420(anonymizer, planes, boxes, full_range)
    in_yuv = copy.rgb()

    assert np.array_equal(frame.rgb(), original)  # the decoder's buffers are not drawn on
    changed = np.abs(in_rgb.astype(int) - original.astype(int)).sum(axis=2) > 0
    difference = np.abs(in_yuv.astype(int) - in_rgb.astype(int))
    assert changed.sum() > 1000
    assert difference[changed].mean() < 3  # rounding and chroma subsampling
    # Outside the boxes, at most the chroma samples next to a box's edge change.
    near = np.zeros(changed.shape, bool)
    reach = boxes.grown(1.5 if mode == "ellipse" else 1.0).xyxy
    for x1, y1, x2, y2 in reach:
        near[
            max(0, int(y1) - 4) : int(np.ceil(y2)) + 4, max(0, int(x1) - 4) : int(np.ceil(x2)) + 4
        ] = True
    assert np.array_equal(in_yuv[~near], original[~near])


def test_only_8_bit_420_pictures_are_edited_in_yuv(tmp_path):
    write_video(
        tmp_path / "444.mp4", Scene(width=64, height=64, frames=1), pix_fmt="yuv444p", audio=False
    )
    with VideoReader(tmp_path / "444.mp4") as reader:
        decoded = next(f for f in reader if isinstance(f, DecodedFrame))
    assert decoded.editable_copy() is None
