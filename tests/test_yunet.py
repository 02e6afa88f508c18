"""YuNet, the second detector family: where the picture moved, on each full analysis."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, replace

import av
import numpy as np
import pytest

from veil.detections import Detections, box_iou
from veil.faces import missing, sprites
from veil.jobs import JobRequest
from veil.motion import CELL, DetectionSchedule
from veil.photos import PhotoResult
from veil.pipeline import BlurOptions, blur_video
from veil.privacy_corpus import CorpusScene, exposure
from veil.report import photo_summary, privacy_report, run_summary
from veil.steps import blur_options
from veil.synthetic import MovingFace, Scene, write_video
from veil.tiling import ChangedArea
from veil.tracker import Tracker
from veil.video import DecodedFrame
from veil.yunet import MODEL, YuNet, beside_none

FACE = MovingFace(photo="grace_hopper", height=120, start=(0.4, 0.5))


def changed_cells(width: int, height: int, x1: int, y1: int, x2: int, y2: int) -> ChangedArea:
    """A ``ChangedArea`` whose cells under the pixel rectangle ``x1, y1, x2, y2`` changed."""
    cells = np.zeros((-(-height // CELL), -(-width // CELL)), bool)
    cells[y1 // CELL : -(-y2 // CELL), x1 // CELL : -(-x2 // CELL)] = True
    return ChangedArea(cells, CELL, width, height)


def best_match(found: Detections, truth: np.ndarray) -> float:
    return float(box_iou(found.xyxy, truth[None]).max(initial=0.0))


def test_the_model_is_the_one_its_notice_names():
    digest = hashlib.sha256(MODEL.read_bytes()).hexdigest()
    assert digest in (MODEL.parent / "NOTICE.md").read_text()


@pytest.mark.parametrize(("width", "height"), [(640, 360), (3840, 2160)])
def test_finds_a_face_in_frame_pixels_at_any_frame_size(width, height):
    # A 4K frame is shrunk to 720p for YuNet: its boxes must come back in 4K pixels.
    face = replace(FACE, height=FACE.height * height / 360)
    scene = Scene(width=width, height=height, frames=1, faces=(face,))
    frame, boxes, _ = scene.render(0)
    found = YuNet().find(frame)
    assert best_match(found, boxes[0]) > 0.5
    assert found.landmarks.shape == (len(found), 5, 2)


def test_looks_only_where_the_picture_changed():
    scene = Scene(width=640, height=360, frames=1, faces=(FACE,))
    frame, boxes, _ = scene.render(0)
    x1, y1 = (int(v) for v in boxes[0][:2])
    yunet = YuNet()
    assert best_match(yunet.moving(frame, None), boxes[0]) > 0.5  # nothing known: everywhere
    under_face = changed_cells(640, 360, x1 + 20, y1 + 20, x1 + 40, y1 + 40)
    assert best_match(yunet.moving(frame, under_face), boxes[0]) > 0.5
    # The face did not move: the same face on a still background is not YuNet's to find.
    far_away = changed_cells(640, 360, 600, 320, 632, 352)
    assert len(yunet.moving(frame, far_away)) == 0
    nothing = changed_cells(640, 360, 0, 0, 0, 0)
    assert len(yunet.moving(frame, nothing)) == 0


class Blind:
    """A main detector that finds nothing, as CenterFace on a face smeared by motion."""

    def detect_frame(self, frame: np.ndarray, changed: object = None) -> Detections:
        return Detections.empty()

    def detect_near(self, frame: np.ndarray, boxes: np.ndarray, reach: object = None) -> Detections:
        return Detections.empty()


def test_the_schedule_tracks_what_yunet_finds_on_full_analyses():
    scene = Scene(width=640, height=360, frames=12, faces=(FACE,))
    schedule = DetectionSchedule(Blind(), every=10, moving=YuNet())
    without = DetectionSchedule(Blind(), every=10)
    tracker, alone = (Tracker(BlurOptions().tracker_options(25)) for _ in range(2))
    found = []
    for index in range(scene.frames):
        image = scene.render(index)[0]
        picture = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p")
        frame = DecodedFrame(index, picture, index, index / 25)
        found += schedule.analyse(frame, tracker)
        assert not [d for _, d in without.analyse(frame, alone) if len(d)]
    found += tracker.flush()
    assert found and all(len(d) == 1 for _, d in found)
    assert BlurOptions().detector_name().endswith("+yunet")
    assert BlurOptions(yunet=False).moving_detector() is None


@pytest.mark.slow
def test_faces_smeared_by_fast_motion_stay_hidden_on_every_person(tmp_path):
    # Each of the corpus's people as a 100 px face crossing a 360p frame in 1.2 s, its
    # motion blur half its width. CenterFace alone left 422 of 1590 face-frames visible
    # (it scores most of these faces under 0.2); with YuNet on the moving part, 40 (30 of
    # them one grey face, Einstein, that YuNet scores low too).
    assert not missing(), "run python -m veil.faces fetch"
    visible = face_frames = 0
    for person in sprites():
        face = MovingFace(
            photo=person, height=100, start=(0.1, 0.5), end=(0.9, 0.45), motion_blur=0.5
        )
        item = CorpusScene(
            person.name, "fast", Scene(width=640, height=360, frames=30, faces=(face,))
        )
        source = write_video(tmp_path / "in.mp4", item.scene, audio=False).path
        blur_video(source, tmp_path / "out.mp4", BlurOptions())
        found = exposure(tmp_path / "out.mp4", item)
        visible += found.visible
        face_frames += found.face_frames
    assert face_frames > 1500
    assert visible <= 60, f"{visible} of {face_frames} face-frames visible"


def test_a_yunet_box_beside_a_found_face_is_left_out_and_the_same_face_is_kept():
    found = Detections.from_boxes([[100, 100, 160, 180]])
    extra = Detections.from_boxes(
        [
            [105, 40, 160, 100],  # touches the face from above: hair, a hat
            [102, 104, 158, 176],  # the same face: merged with it later
            [300, 100, 360, 180],  # apart: a face only YuNet found
        ]
    )
    kept = beside_none(extra, found)
    assert kept.xyxy.tolist() == [[102, 104, 158, 176], [300, 100, 360, 180]]
    assert len(beside_none(extra, Detections.empty())) == 3


def test_a_job_recorded_before_yunet_finishes_without_it():
    # Its segments may have run on a worker without it; the job keeps its options.
    recorded = {k: v for k, v in asdict(BlurOptions()).items() if k != "yunet"}
    request = JobRequest(key="a.mp4", etag="e", size=1, options=recorded)
    assert blur_options(request).yunet is False
    assert blur_options(replace(request, options=asdict(BlurOptions()))).yunet is True


def test_a_report_names_yunet_for_a_video_and_not_for_a_photo(tmp_path):
    # A photo has no motion: YuNet never looks at it, and its report says so.
    scene = Scene(width=160, height=120, frames=3, faces=())
    video = write_video(tmp_path / "in.mp4", scene, audio=False).path
    made = run_summary(blur_video(video, tmp_path / "out.mp4", BlurOptions(precision="int8")))
    photo = photo_summary(
        PhotoResult(width=160, height=120, format="JPEG", faces=Detections.empty())
    )
    for summary, model, yunet in (
        (made, "centerface-int8+yunet", True),
        (photo, "centerface-int8", False),
    ):
        report = privacy_report(
            input_name="a",
            input_sha256="",
            output_name="a",
            output_sha256="",
            options=BlurOptions(precision="int8"),
            run=summary,
            audit=None,
        )
        assert report["detector"]["model"] == model
        assert report["settings"]["yunet"] is yunet
