import numpy as np
import pytest

from veil.detector import CenterFace
from veil.face_details import face_details
from veil.synthetic import MovingFace, Scene


def details_of(angle: float, photo: str = "astronaut") -> dict:
    scene = Scene(
        width=320, height=240, frames=1, faces=(MovingFace(photo=photo, height=120, angle=angle),)
    )
    picture, _, _ = scene.render(0)
    found = CenterFace(threshold=0.5, scale=1.0, precision="fp32").detect_frame(picture)
    assert len(found) == 1
    (detail,) = face_details(picture, found, 1.3)
    return detail


@pytest.mark.parametrize("photo", ["astronaut", "grace_hopper"])
def test_roll_follows_a_turned_head(photo):
    upright, turned = details_of(0, photo), details_of(25, photo)
    turned_by = turned["Pose"]["Roll"] - upright["Pose"]["Roll"]
    # An estimate from five landmarks: within 8 degrees.
    assert abs(abs(turned_by) - 25) < 8, (upright["Pose"], turned["Pose"])


def test_a_face_detail_as_the_cloud_gives_it():
    detail = details_of(0)
    assert set(detail) == {"BoundingBox", "Confidence", "Landmarks", "Pose", "Quality"}
    box = detail["BoundingBox"]
    assert box["Left"] >= 0 and box["Left"] + box["Width"] <= 1
    assert 0 < detail["Quality"]["Brightness"] <= 100 and 0 < detail["Quality"]["Sharpness"] <= 100
    assert all(abs(v) <= 90 for v in detail["Pose"].values())
    assert not np.isnan([m["X"] for m in detail["Landmarks"]]).any()
