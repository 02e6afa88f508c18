"""veil audit: faces found in an unblurred clip, none in veil's outputs of it (every
mode), and the one track deliberately left visible; sampling, track edges, the CLI."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import av
import numpy as np
import pytest
from click.testing import CliRunner

from veil.anonymizers import MODES, get_anonymizer
from veil.audit import (
    _CHECK_COST,
    _DECODE_SHARE,
    _SWEEP_COST,
    AUDIT_SHARE,
    FOCUS_MS,
    MAX_SIGHTINGS,
    MIN_DETAIL,
    SWEEP_SECONDS,
    AuditDetector,
    AuditResult,
    Finding,
    audit_video,
    face_detail,
    join_audits,
    planned_frames,
    service_sampling,
    thinned,
    track_edges,
)
from veil.cli import AUDIT_FINDINGS_EXIT, main
from veil.detections import Detections, box_iou
from veil.errors import FacesFileError, InputError, OptionError
from veil.pipeline import BlurOptions, detect_video, redact_video
from veil.report import service_audit
from veil.synthetic import MovingFace, Scene, SyntheticVideo, write_video

# Three faces large enough to recognise, drifting; the third leaves before the end.
SCENE = Scene(
    width=640,
    height=360,
    frames=45,
    fps=30,
    faces=(
        MovingFace(photo="astronaut", height=32, start=(0.15, 0.3), end=(0.2, 0.35)),
        MovingFace(photo="cameraman", height=56, start=(0.75, 0.3), end=(0.7, 0.35), angle=10),
        MovingFace(
            photo="grace_hopper", height=96, start=(0.45, 0.6), end=(0.5, 0.6), last_frame=35
        ),
    ),
)


@pytest.fixture(scope="module")
def detector() -> AuditDetector:
    return AuditDetector()


class NoFaces(AuditDetector):
    """A detector that finds nothing at no cost: for tests of sampling alone."""

    def __init__(self) -> None:
        self.calls = 0

    @property
    def settings(self) -> dict:
        return {"detector": "none"}

    def detect_frame(self, frame: np.ndarray, changed: object = None) -> Detections:
        self.calls += 1
        return Detections.empty()


@pytest.fixture(scope="module")
def scene_clip(tmp_path_factory: pytest.TempPathFactory) -> SyntheticVideo:
    return write_video(tmp_path_factory.mktemp("audit") / "faces.mp4", SCENE)


@pytest.fixture(scope="module")
def faces_json(scene_clip: SyntheticVideo) -> Path:
    out = scene_clip.path.with_name("faces.json")
    detect_video(scene_clip.path, out)
    return out


def faces_of(findings: list[Finding], scene: Scene) -> list[int | None]:
    """Which face of ``scene`` each finding is (by its box at the start and end of its
    span), or None for a finding on no face."""
    found: list[int | None] = []
    for finding in findings:
        left, top, width, height = finding.box
        cx = (left + width / 2) * scene.width
        cy = (top + height / 2) * scene.height
        which = None
        for ms in (finding.start_ms, finding.end_ms):
            _, boxes, ids = scene.render(round(ms * scene.fps / 1000))
            # The best sighting lies between the two: a face's box grown by its motion.
            for (x1, y1, x2, y2), face in zip(boxes, ids, strict=True):
                margin = 0.5 * (y2 - y1)
                if x1 - margin <= cx <= x2 + margin and y1 - margin <= cy <= y2 + margin:
                    which = face
        found.append(which)
    return found


def test_finds_every_face_in_the_unblurred_clip(scene_clip, detector):
    result = audit_video(scene_clip.path, detector=detector)
    assert not result.passed
    assert sorted(faces_of(result.findings, SCENE), key=str) == [0, 1, 2]
    assert (result.frames_total, result.frames_checked) == (45, 9)
    by_face = dict(zip(faces_of(result.findings, SCENE), result.findings, strict=True))
    # The third face leaves after frame 35 (1167 ms): seen on the checks up to it only.
    assert by_face[2].end_ms == 1167 and by_face[2].frames == 8
    assert by_face[0].frames == 9 and by_face[0].start_ms == 0
    assert all(0.5 <= f.score <= 1 for f in result.findings)


@pytest.mark.parametrize("mode", MODES)
def test_finds_no_face_in_veils_output(scene_clip, faces_json, detector, tmp_path, mode):
    out = tmp_path / f"{mode}.mp4"
    redact_video(scene_clip.path, faces_json, out, BlurOptions(mode=mode))
    result = audit_video(out, every=3, detector=detector)
    assert result.passed, result.findings
    assert result.frames_checked == 15


def test_finds_the_track_left_visible(scene_clip, faces_json, detector, tmp_path):
    # A reviewer keeps the cameraman (face 1) visible: his track is dropped from the file.
    data = json.loads(faces_json.read_text())
    kept = tracks_on_face(data, 1)
    assert len(kept) == 1
    data["Faces"] = [e for e in data["Faces"] if e["Face"]["TrackId"] not in kept]
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(data))
    out = tmp_path / "one_visible.mp4"
    redact_video(scene_clip.path, edited, out)

    result = audit_video(out, detector=detector)
    assert faces_of(result.findings, SCENE) == [1]
    (finding,) = result.findings
    # From the first checks to the last (veil also made a short track on his ear, whose
    # held box hides half his face on the first frames: not every check sees him whole).
    assert finding.start_ms <= 333 and finding.end_ms == 1333 and finding.frames >= 7
    assert finding.box[3] * SCENE.height == pytest.approx(56, rel=0.35)
    # Where it was on each checked frame, for a reviewer's box to follow: on the face.
    assert len(finding.sightings) == finding.frames
    assert [at for at, _ in finding.sightings] == sorted(at for at, _ in finding.sightings)
    for at, (left, top, width, height) in finding.sightings:
        _, boxes, ids = SCENE.render(round(at * SCENE.fps / 1000))
        x1, y1 = left * SCENE.width, top * SCENE.height
        seen = np.array([[x1, y1, x1 + width * SCENE.width, y1 + height * SCENE.height]])
        assert box_iou(seen.astype(np.float32), boxes[[ids.index(1)]])[0, 0] > 0.3


def tracks_on_face(data: dict, face: int) -> set[int]:
    """The track ids of a faces.json whose boxes lie on ``face`` of ``SCENE``."""
    tracks = set()
    for entry in data["Faces"]:
        _, boxes, ids = SCENE.render(round(entry["Timestamp"] * SCENE.fps / 1000))
        if face not in ids:
            continue
        b = entry["Face"]["BoundingBox"]
        x1, y1 = b["Left"] * SCENE.width, b["Top"] * SCENE.height
        box = np.array([[x1, y1, x1 + b["Width"] * SCENE.width, y1 + b["Height"] * SCENE.height]])
        if box_iou(box.astype(np.float32), boxes[[ids.index(face)]])[0, 0] > 0.3:
            tracks.add(entry["Face"]["TrackId"])
    return tracks


@pytest.mark.parametrize("mode", MODES)
def test_anonymized_faces_are_not_found_on_a_frame(detector, mode):
    frame, boxes, _ = SCENE.render(0)
    assert len(detector.detect_frame(frame)) == 3
    hidden = get_anonymizer(mode).apply(frame.copy(), Detections.from_boxes(boxes).grown(1.3))
    assert len(detector.detect_frame(hidden)) == 0
    grey, hidden_grey = (np.asarray(f.mean(axis=2), np.uint8) for f in (frame, hidden))
    for box in boxes:
        assert face_detail(grey, box) >= 2 * MIN_DETAIL
        # A mosaic's cell borders are sharp detail: the detector and its second look
        # are what turn mosaics down.
        if mode != "pixelate":
            assert face_detail(hidden_grey, box) < MIN_DETAIL


@pytest.mark.parametrize(
    ("box", "expected"),
    [
        ((10, 10, 10, 50), 0.0),  # no width
        ((-50, -50, -10, -10), 0.0),  # outside the frame
        ((0, 0, 40, 40), 0.0),  # a flat picture
    ],
)
def test_face_detail_of_degenerate_boxes(box, expected):
    assert face_detail(np.full((60, 80), 90, np.uint8), box) == pytest.approx(expected, abs=1e-3)


def test_max_frames_caps_the_checks_and_progress_counts_every_frame(scene_clip):
    seen: list[tuple[int, int | None]] = []
    nothing = NoFaces()
    result = audit_video(
        scene_clip.path,
        every=1,
        max_frames=4,
        detector=nothing,
        progress=lambda done, total: seen.append((done, total)),
    )
    assert result.frames_checked == nothing.calls == 4
    assert seen[0] == (1, 45) and seen[-1] == (45, 45) and len(seen) == 45
    assert result.settings["max_frames"] == 4 and result.passed


@pytest.mark.parametrize(
    ("total", "every", "focus", "cap", "expected"),
    [
        (10, 5, (), None, [0, 5]),
        (10, 1, (), 3, [0, 4, 9]),
        (10, 20, (), None, [0]),
        # Within FOCUS_MS of a focus time, one frame in every // FOCUS_DENSITY: at 10 fps,
        # a focus at 2 s, the 10 frames each side.
        (40, 20, (2000,), None, [0, 10, 15, 20, 25, 30]),
        (40, 8, (2000,), None, [0, 8, *range(10, 31, 2), 32]),
        (40, 3, (2000,), None, [0, 3, 6, 9, *range(10, 31), 33, 36, 39]),
        # Thinned evenly along the list: the focus stretch keeps most of the checks.
        (40, 8, (2000,), 5, [0, 12, 18, 26, 32]),
        (40, 20, (-5000, 99000), None, [0, 20]),  # focus times outside the video
    ],
)
def test_planned_frames(total, every, focus, cap, expected):
    assert FOCUS_MS == 1000
    plan = planned_frames(total, 10.0, every=every, focus_ms=focus, max_frames=cap)
    assert plan == expected


def test_focus_times_are_checked_densely(scene_clip):
    plain = audit_video(scene_clip.path, every=15, detector=NoFaces())
    focused = audit_video(scene_clip.path, every=15, focus_ms=[1167], detector=NoFaces())
    assert (plain.frames_checked, focused.frames_checked) == (3, 17)
    assert focused.settings["focus_points"] == 1


def test_a_cut_ends_a_finding(tmp_path, detector):
    # The same face in the same place on both sides of a cut: two shots, two findings.
    scene = Scene(width=320, height=240, frames=30, faces=(MovingFace(height=48),), cuts=(15,))
    clip = write_video(tmp_path / "cut.mp4", scene, audio=False)
    result = audit_video(clip.path, detector=detector)
    spans = [(f.start_ms, f.end_ms, f.frames) for f in result.findings]
    assert spans == [(0, 333, 3), (500, 833, 3)]  # checks every 5th frame; the cut at 15


def _cut(clip: Path, first: int, end: int, out: Path) -> Path:
    """Frames ``first`` to ``end`` (excluded) of ``clip`` as a file of their own, its
    times from 0, as a segment's piece is written."""
    with av.open(str(clip)) as src, av.open(str(out), "w") as dst:
        stream = dst.add_stream("libx264", rate=SCENE.fps)
        stream.width, stream.height, stream.pix_fmt = SCENE.width, SCENE.height, "yuv420p"
        stream.options = {"crf": "16"}
        for n, frame in enumerate(src.decode(video=0)):
            if first <= n < end:
                picture = av.VideoFrame.from_ndarray(frame.to_ndarray(format="rgb24"), "rgb24")
                picture.pts = n - first
                dst.mux(stream.encode(picture))
        dst.mux(stream.encode(None))
    return out


def test_pieces_audited_apart_are_the_whole_videos_audit(
    scene_clip, faces_json, detector, tmp_path
):
    # A segmented job audits each piece in the whole video's time and joins the audits:
    # the same faces over the same spans as one audit of the whole video.
    whole = audit_video(scene_clip.path, every=3, detector=detector)
    seam = 23
    start_ms = round(seam * 1000 / SCENE.fps)
    pieces = [
        audit_video(_cut(scene_clip.path, 0, seam, tmp_path / "0.mp4"), every=3, detector=detector),
        audit_video(
            _cut(scene_clip.path, seam, SCENE.frames, tmp_path / "1.mp4"),
            every=3,
            detector=detector,
            start_ms=start_ms,
        ),
    ]
    assert min(f.start_ms for f in pieces[1].findings) >= start_ms
    joined = join_audits([piece.to_json() for piece in pieces])
    assert joined["frames_total"] == SCENE.frames
    assert joined["settings"]["pieces"] == 2
    found = [
        Finding(f["start_ms"], f["end_ms"], f["frames"], tuple(f["box"].values()), f["score"])
        for f in joined["findings"]
    ]
    # Each face once, the ones seen on both sides of the seam joined into one finding.
    assert sorted(map(str, faces_of(found, SCENE))) == ["0", "1", "2"]
    assert sorted(map(str, faces_of(whole.findings, SCENE))) == ["0", "1", "2"]
    by_face = dict(zip(faces_of(whole.findings, SCENE), whole.findings, strict=True))
    for face, finding in zip(faces_of(found, SCENE), found, strict=True):
        assert finding.start_ms == pytest.approx(by_face[face].start_ms, abs=70)
        assert finding.end_ms == pytest.approx(by_face[face].end_ms, abs=70)


def test_join_audits_keeps_apart_what_is_not_one_face():
    def audit(*findings: tuple[int, int, float, float]) -> dict:
        def finding(a: int, b: int, left: float, top: float) -> Finding:
            box = (left, top, 0.1, 0.2)
            return Finding(a, b, 2, box, 0.5, sightings=((a, box), (b, box)))

        return AuditResult(
            [finding(*f) for f in findings],
            4,
            10,
            {"every": 5, "focus_points": 1},
        ).to_json()

    # Across the seam at 2000 ms: the face near the seam goes on; a face too far to
    # have moved there in the time, or one last seen long before the seam, is another.
    joined = join_audits(
        [
            audit((0, 300, 0.1, 0.1), (1800, 1967, 0.5, 0.1)),
            audit((2000, 2500, 0.55, 0.15), (2000, 2200, 0.9, 0.7), (2033, 2200, 0.1, 0.1)),
        ]
    )
    spans = [(f["start_ms"], f["end_ms"], f["box"]["left"]) for f in joined["findings"]]
    assert spans == [(0, 300, 0.1), (1800, 2500, 0.5), (2000, 2200, 0.9), (2033, 2200, 0.1)]
    assert joined["findings"][1]["frames"] == 4
    # The face that went on across the seam has its sightings of both pieces, in order.
    at = [s["at_ms"] for s in joined["findings"][1]["sightings"]]
    assert at == [1800, 1967, 2000, 2500]
    assert (joined["frames_checked"], joined["frames_total"]) == (8, 20)
    assert joined["settings"]["focus_points"] == 2 and not joined["passed"]
    assert join_audits([audit(), audit()])["passed"]


@pytest.mark.parametrize(
    ("frames", "fps"),
    [(1, 30.0), (45, 30.0), (300, 30.0), (1800, 30.0), (108_000, 30.0), (3600, 60.0), (500, 0.0)],
)
def test_service_sampling_stays_within_the_budget(frames, fps):
    sampling = service_sampling(frames, fps)
    checks, every, sweep = sampling["max_frames"], sampling["every"], sampling["sweep"]
    assert (
        set(sampling) == {"every", "max_frames", "sweep"} and every >= 1 and 1 <= checks <= frames
    )
    # The sweep: a frame a second, so a face visible for a second is on one.
    assert sweep == max(1, math.floor((fps or 30.0) * SWEEP_SECONDS))
    seconds = frames / (fps or 30.0)
    if seconds > 60:  # long enough for the job's own frames to dominate its time
        cost = (checks * _CHECK_COST + frames // sweep * _SWEEP_COST) / frames
        assert cost + _DECODE_SHARE <= AUDIT_SHARE + 1e-9
    else:  # short videos get a check every 2 s, up to 5
        assert checks >= min(frames, math.ceil(min(10, seconds) / 2))
    assert len(planned_frames(frames, fps, every=every, max_frames=checks)) <= checks


def faces_file(tmp_path: Path, entries: list[tuple[int, int | None]]) -> Path:
    faces = []
    for time_ms, track in entries:
        face: dict = {
            "BoundingBox": {"Left": 0.1, "Top": 0.1, "Width": 0.2, "Height": 0.2},
            "Confidence": 90.0,
        }
        if track is not None:
            face["TrackId"] = track
        faces.append({"Timestamp": time_ms, "Face": face})
    path = tmp_path / "faces.json"
    path.write_text(json.dumps({"JobStatus": "SUCCEEDED", "Faces": faces}))
    return path


@pytest.mark.parametrize(
    ("entries", "expected"),
    [
        ([], []),
        ([(0, 1), (33, 1), (67, 1)], [0, 67]),
        ([(0, 1), (100, 2), (200, 1), (500, 2)], [0, 100, 200, 500]),
        ([(40, 3)], [40]),  # a track seen once starts and ends there
        ([(0, None), (900, None), (300, 5), (400, 5)], [300, 400]),  # hand-drawn boxes
    ],
)
def test_track_edges(tmp_path, entries, expected):
    assert track_edges(faces_file(tmp_path, entries)) == expected


def test_track_edges_of_a_real_faces_file(faces_json):
    # The faces are there from the first frame; the last edge is the video's end or the
    # end of the third face (gone after 1167 ms) and its hold. How many edges lie
    # between depends on when the detector first sees the smallest face.
    edges = track_edges(faces_json)
    assert edges[0] == 0 and 1167 <= edges[-1] <= 1500 and edges == sorted(set(edges))


def test_track_edges_refuses_a_file_that_is_not_a_faces_file(tmp_path):
    with pytest.raises(FacesFileError):
        track_edges(tmp_path / "missing.json")
    (tmp_path / "list.json").write_text("[]")
    with pytest.raises(FacesFileError):
        track_edges(tmp_path / "list.json")


def test_thinned_keeps_the_ends_and_spreads_the_rest():
    assert thinned(list(range(5)), 10) == [0, 1, 2, 3, 4]
    assert thinned(list(range(101)), 5) == [0, 25, 50, 75, 100]
    assert len(thinned(list(range(1000)), MAX_SIGHTINGS)) == MAX_SIGHTINGS


def test_json_shapes():
    finding = Finding(start_ms=100, end_ms=400, frames=3, box=(0.1, 0.2, 0.05, 0.1), score=0.9)
    result = AuditResult([finding], frames_checked=10, frames_total=50, settings={"every": 5})
    assert result.to_json() == {
        "passed": False,
        "frames_checked": 10,
        "frames_total": 50,
        "settings": {"every": 5},
        "findings": [
            {
                "start_ms": 100,
                "end_ms": 400,
                "frames": 3,
                "box": {"left": 0.1, "top": 0.2, "width": 0.05, "height": 0.1},
                "score": 0.9,
                "sightings": [],
            }
        ],
        "coverage": "10 of 50 frames checked: one frame in 5 at scale 2",
        "verdict": "1 face may still be visible",
    }
    assert AuditResult([], 1, 1, {}).passed
    wide = {"every": 40, "max_frames": 12, "focus_points": 4, "sweep": 30, "sweep_scale": 1.0}
    assert AuditResult([], 52, 900, wide).to_json()["coverage"] == (
        "52 of 900 frames checked: one frame in 40 (at most 12) at scale 2; more often "
        "within 1 s of 4 track starts and ends; and one frame in 30 at scale 1"
    )
    assert AuditResult([], 5, 5, {}).to_json()["verdict"] == (
        "passed: no face left visible was found"
    )
    assert finding.pixels(640, 360) == (64, 72, 32, 36)


def test_bad_options_and_inputs(scene_clip, detector, tmp_path):
    with pytest.raises(OptionError):
        audit_video(scene_clip.path, every=0, detector=detector)
    with pytest.raises(OptionError):
        audit_video(scene_clip.path, max_frames=0, detector=detector)
    with pytest.raises(OptionError):
        AuditDetector(confirm_threshold=1.5)
    (tmp_path / "notes.mp4").write_text("not a video\n")
    with pytest.raises(InputError):
        audit_video(tmp_path / "notes.mp4", detector=detector)


def invoke(*args: object):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_cli_lists_findings_and_exits_3(scene_clip):
    result = invoke("audit", scene_clip.path, "--every", "15")
    assert result.exit_code == AUDIT_FINDINGS_EXIT == 3
    lines = result.stdout.splitlines()
    assert len(lines) == 3 and all("score" in line and " at " in line for line in lines)
    assert lines[0].startswith("0:00.000-0:01.000  box ")
    said = "3 faces may still be visible (3 of 45 frames checked: one frame in 15 at scale 2)"
    assert said in result.stderr


def test_cli_json_and_a_clean_output_exits_0(scene_clip, faces_json, tmp_path):
    out = tmp_path / "blurred.mp4"
    redact_video(scene_clip.path, faces_json, out)
    result = invoke("audit", out, "--json", "--every", "15", "-q")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["video"] == str(out) and data["passed"] is True and data["findings"] == []
    assert (data["frames_checked"], data["frames_total"]) == (3, 45)
    assert data["settings"]["threshold"] < BlurOptions().threshold
    assert data["settings"]["precision"] == "fp32"


@pytest.mark.parametrize("name", ["missing.mp4", "notes.mp4"])
def test_cli_errors_exit_1(tmp_path, name):
    (tmp_path / "notes.mp4").write_text("not a video\n")
    result = invoke("audit", tmp_path / name)
    assert result.exit_code == 1
    assert result.stderr.startswith("veil: error: ") and result.stdout == ""


# A minute at 15 fps: one face all along, hidden; another shown for one second (15
# frames, from frame 436: between two of the sweep's frames, 435 and 450) and left
# unblurred, as a detector miss would leave it. Fine checks alone (one frame in
# hundreds) pass it by.
LONG = Scene(
    width=320,
    height=180,
    frames=900,
    fps=15,
    faces=(
        MovingFace(photo="astronaut", height=48, start=(0.25, 0.4), end=(0.3, 0.45)),
        MovingFace(
            photo="grace_hopper",
            height=36,
            start=(0.7, 0.5),
            end=(0.72, 0.5),
            first_frame=436,
            last_frame=450,
        ),
    ),
)


def hidden_but_one(scene: Scene, out: Path, tmp_path: Path) -> Path:
    """``scene`` written with face 0 blurred at its true boxes and the rest left
    visible; returns the faces file that made it (face 0's track alone)."""
    clip = write_video(tmp_path / "long.mp4", scene, audio=False)
    faces = []
    for index in range(scene.frames):
        _, boxes, ids = scene.render(index)
        x1, y1, x2, y2 = (float(v) for v in boxes[ids.index(0)])
        box = {
            "Left": x1 / scene.width,
            "Top": y1 / scene.height,
            "Width": (x2 - x1) / scene.width,
            "Height": (y2 - y1) / scene.height,
        }
        time_ms = round(index * 1000 / scene.fps)
        faces.append({"Timestamp": time_ms, "Face": {"BoundingBox": box, "TrackId": 1}})
    path = tmp_path / "long.faces.json"
    path.write_text(json.dumps({"JobStatus": "SUCCEEDED", "Faces": faces}))
    redact_video(clip.path, path, out)
    return path


def test_the_service_audit_sees_a_face_left_visible_for_one_second(tmp_path):
    out = tmp_path / "long.blurred.mp4"
    faces = hidden_but_one(LONG, out, tmp_path)
    audit = service_audit(out, faces, frames=LONG.frames, fps=LONG.fps, device="cpu")
    assert audit["settings"]["sweep"] == 15
    assert audit["frames_checked"] < LONG.frames / 10
    (finding,) = audit["findings"]
    assert finding["start_ms"] == finding["end_ms"] == 30000  # frame 450, the sweep's
    box = finding["box"]
    assert (box["left"] + box["width"] / 2) * LONG.width == pytest.approx(0.72 * 320, abs=12)
    # Without the sweep, the fine checks' budget falls elsewhere and the face passes.
    sampling = service_sampling(LONG.frames, LONG.fps)
    fine_only = audit_video(
        out,
        focus_ms=track_edges(faces),
        every=sampling["every"],
        max_frames=sampling["max_frames"],
    )
    assert fine_only.passed


def test_the_service_audit_passes_a_clean_long_clip(tmp_path):
    clean = replace(LONG, faces=LONG.faces[:1])
    out = tmp_path / "clean.blurred.mp4"
    faces = hidden_but_one(clean, out, tmp_path)
    audit = service_audit(out, faces, frames=clean.frames, fps=clean.fps, device="cpu")
    assert audit["passed"], audit["findings"]
