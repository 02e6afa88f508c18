from __future__ import annotations

import numpy as np
import pytest

from veil.detector import CenterFace
from veil.errors import DetectorError, OptionError
from veil.synthetic import MovingFace, Scene, sprite


def test_finds_the_face_in_each_photo(detector):
    for name in ("astronaut", "grace_hopper", "cameraman"):
        spr = sprite(name)
        found = detector.detect([spr.rgb])[0]
        assert len(found) >= 1, name
        best = found.xyxy[np.argmax(found.confidence)]
        centre = (best[:2] + best[2:]) / 2
        fx1, fy1, fx2, fy2 = spr.face
        assert fx1 < centre[0] < fx2 and fy1 < centre[1] < fy2, name
        assert np.all(found.confidence <= 1) and np.all(found.confidence > 0.2)


@pytest.mark.parametrize("photo", ["astronaut", "grace_hopper", "cameraman"])
@pytest.mark.parametrize(("height", "at_least"), [(16, 0.3), (24, 0.9), (48, 1.0)])
def test_default_scale_finds_small_faces(detector, photo, height, at_least):
    # A single frame may miss a 16 px face; the tracker carries it across such misses,
    # so what matters is that most frames find it.
    scene = Scene(
        width=320,
        height=240,
        frames=10,
        faces=(MovingFace(photo=photo, height=height, start=(0.2, 0.3), end=(0.8, 0.7)),),
    )
    hits = 0
    for i in range(scene.frames):
        frame, truth, _ = scene.render(i)
        for x1, y1, x2, y2 in detector.detect([frame])[0].xyxy:
            cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
            hits += truth[0, 0] < cx < truth[0, 2] and truth[0, 1] < cy < truth[0, 3]
    assert hits / scene.frames >= at_least


def test_batches_and_odd_sizes(detector):
    scene = Scene(width=173, height=97, frames=2, faces=(MovingFace(height=40),))
    frames = [scene.render(i)[0] for i in range(2)]
    assert [len(d) for d in detector.detect(frames)] == [1, 1]
    assert detector.detect([]) == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"threshold": 0}, "threshold"),
        ({"threshold": 1.5}, "threshold"),
        ({"scale": 0}, "scale"),
        ({"device": "tpu"}, "unknown device"),
        ({"precision": "int4"}, "unknown precision"),
    ],
)
def test_bad_options(kwargs, message):
    with pytest.raises(OptionError, match=message):
        CenterFace(**kwargs)


def test_missing_cuda_says_what_to_do():
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        CenterFace(device="cuda")  # a machine with CUDA: it must simply work
        return
    with pytest.raises(DetectorError, match="pass --device cpu"):
        CenterFace(device="cuda")


@pytest.mark.parametrize(("device", "expected"), [("cpu", "int8")])
def test_auto_precision(device, expected):
    assert CenterFace(device=device).precision == expected


def test_missing_model(tmp_path):
    with pytest.raises(DetectorError, match="not found"):
        CenterFace(model_path=tmp_path / "none.onnx")
