"""Review edits: parsing, applying them to a faces file, and the same edits from the
command line (``veil redact --faces edited.json``) on a real video."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import SMALL_SCENE

from veil import faces_file
from veil.cli import main
from veil.review import (
    Edit,
    apply_edits,
    boxes_between,
    check_edits,
    parse_edits,
    tracks,
)
from veil.synthetic import SyntheticVideo, visible_faces

BOX = {"left": 0.1, "top": 0.2, "width": 0.3, "height": 0.4}


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"action": "show", "track": 3}, Edit(action="show", track=3)),
        (
            {"action": "remove", "track": 0, "note": "a poster"},
            Edit(action="remove", track=0, note="a poster"),
        ),
        (
            {"action": "add", "start_ms": 0, "end_ms": 500, "box": BOX},
            Edit(action="add", start_ms=0, end_ms=500, box=(0.1, 0.2, 0.3, 0.4)),
        ),
        ({"action": "show", "track": 2.0}, Edit(action="show", track=2)),
    ],
)
def test_edits_parse(data: dict[str, Any], expected: Edit) -> None:
    (edit,) = parse_edits([data])
    assert edit == expected
    assert parse_edits([edit.to_json()]) == [edit]  # what the store keeps reads back


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"action": "blur", "track": 1}, "unknown action 'blur'"),
        ({"action": "show"}, "needs the track's number"),
        ({"action": "show", "track": -1}, "needs the track's number"),
        ({"action": "show", "track": True}, "track must be a whole number"),
        ({"action": "show", "track": 1.5}, "track must be a whole number"),
        ({"action": "show", "track": 1, "shell": "rm"}, "unknown edit field(s): shell"),
        ({"action": "add", "start_ms": 0, "end_ms": 9}, "needs box, start_ms and end_ms"),
        ({"action": "add", "start_ms": 9, "end_ms": 0, "box": BOX}, "at most end_ms"),
        ({"action": "add", "start_ms": 0, "end_ms": 9, "box": {**BOX, "left": 0.9}}, "inside"),
        ({"action": "add", "start_ms": 0, "end_ms": 9, "box": {**BOX, "width": 0}}, "positive"),
        ({"action": "add", "start_ms": 0, "end_ms": 9, "box": {**BOX, "top": "x"}}, "numbers"),
        ({"action": "add", "start_ms": 0, "end_ms": 9, "box": [1, 2]}, "box is an object"),
        ({"action": "show", "track": 1, "note": "x" * 201}, "at most 200 characters"),
        ("show 1", "an edit is an object"),
    ],
)
def test_bad_edits_say_what_is_wrong(data: Any, message: str) -> None:
    with pytest.raises(ValueError, match="edit 0: ") as caught:
        parse_edits([data])
    assert message in str(caught.value)


def test_edits_are_a_bounded_list() -> None:
    with pytest.raises(ValueError, match="edits is a list"):
        parse_edits({"action": "show"})
    with pytest.raises(ValueError, match="at most 1000 edits"):
        parse_edits([{"action": "show", "track": 1}] * 1001)


def _face(track: int, left: float = 0.1, confidence: float = 90.0) -> dict[str, Any]:
    box = {"Width": 0.1, "Height": 0.2, "Left": left, "Top": 0.3}
    return {"BoundingBox": box, "Confidence": confidence, "TrackId": track}


FACES = {
    "VideoMetadata": {"FrameRate": 10.0, "DurationMillis": 1000},
    "Faces": [
        {"Timestamp": 0, "Face": _face(0)},
        {"Timestamp": 0, "Face": _face(1, 0.5)},
        {"Timestamp": 100, "Face": _face(0, confidence=99.0)},
        {"Timestamp": 100, "Face": _face(1, 0.5)},
        {"Timestamp": 200, "Face": _face(1, 0.5)},
    ],
}


def test_shown_and_removed_tracks_lose_their_boxes_and_added_ones_cover_each_frame() -> None:
    edits = parse_edits(
        [
            {"action": "show", "track": 0},
            {"action": "add", "start_ms": 50, "end_ms": 250, "box": BOX},
        ]
    )
    edited = apply_edits(FACES, edits)
    assert edited["VideoMetadata"] == FACES["VideoMetadata"]
    assert [(e["Timestamp"], e["Face"]["TrackId"]) for e in edited["Faces"]] == [
        (0, 1),
        (50, 2),  # a new track, one entry a frame (10 fps) over the range
        (100, 1),
        (150, 2),
        (200, 1),
        (250, 2),
    ]
    added = edited["Faces"][1]["Face"]
    assert added["BoundingBox"] == {"Width": 0.3, "Height": 0.4, "Left": 0.1, "Top": 0.2}
    removed = apply_edits(FACES, parse_edits([{"action": "remove", "track": 1}]))
    assert {e["Face"]["TrackId"] for e in removed["Faces"]} == {0}
    assert apply_edits(FACES, []) == FACES


def test_tracks_summarise_each_track_at_its_best_frame() -> None:
    assert tracks(FACES) == [
        {
            "id": 0,
            "start_ms": 0,
            "end_ms": 100,
            "frames": 2,
            "score": 99.0,
            "best_ms": 100,
            "box": {"left": 0.1, "top": 0.3, "width": 0.1, "height": 0.2},
        },
        {
            "id": 1,
            "start_ms": 0,
            "end_ms": 200,
            "frames": 3,
            "score": 90.0,
            "best_ms": 0,
            "box": {"left": 0.5, "top": 0.3, "width": 0.1, "height": 0.2},
        },
    ]


def _invoke(*args: object) -> Any:
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_an_edited_faces_file_leaves_a_shown_track_visible_and_hides_an_added_box(
    clip: SyntheticVideo, tmp_path
) -> None:
    faces_path = tmp_path / "faces.json"
    assert _invoke("detect", clip.path, "-o", faces_path, "-q").exit_code == 0
    faces = faces_file.load(faces_path)
    # The largest face of the clip (72 px, scene face 3) is the track with the tallest box.
    biggest = max(tracks(faces), key=lambda t: t["box"]["height"])
    shown = tmp_path / "shown.json"
    faces_file.save(apply_edits(faces, [Edit(action="show", track=biggest["id"])]), shown)
    out = tmp_path / "shown.mp4"
    assert _invoke("redact", clip.path, "--faces", shown, "-o", out, "-q").exit_code == 0
    visible = visible_faces(out, SMALL_SCENE)
    assert {face for _, face, _ in visible} == {3}  # that person, and nobody else
    assert len(visible) >= 20  # of its 26 frames; the rest are partly covered by others

    # The same face drawn by hand instead, over its whole time on screen, is hidden.
    first, last = SMALL_SCENE.faces[3].first_frame, SMALL_SCENE.faces[3].last_frame
    assert first is not None and last is not None
    box = {"left": 0.55, "top": 0.1, "width": 0.35, "height": 0.6}
    data = json.loads(shown.read_text())
    span = {"start_ms": first * 1000 // 30, "end_ms": last * 1000 // 30 + 34}
    drawn = apply_edits(data, parse_edits([{"action": "add", "box": box, **span}]))
    drawn_path = tmp_path / "drawn.json"
    faces_file.save(drawn, drawn_path)
    out = tmp_path / "drawn.mp4"
    assert _invoke("redact", clip.path, "--faces", drawn_path, "-o", out, "-q").exit_code == 0
    assert visible_faces(out, SMALL_SCENE) == []


def test_redact_keeps_a_track_and_hides_a_box_from_the_command_line(
    clip: SyntheticVideo, tmp_path
) -> None:
    # Issue 26: the same two edits without editing JSON by hand, the faces file untouched.
    faces_path = tmp_path / "faces.json"
    assert _invoke("detect", clip.path, "-o", faces_path, "-q").exit_code == 0
    before = faces_path.read_bytes()
    biggest = max(tracks(faces_file.load(faces_path)), key=lambda t: t["box"]["height"])
    out = tmp_path / "kept.mp4"
    kept = _invoke(
        "redact", clip.path, "--faces", faces_path, "--keep-track", biggest["id"], "-o", out, "-q"
    )
    assert kept.exit_code == 0, kept.output
    assert {face for _, face, _ in visible_faces(out, SMALL_SCENE)} == {3}
    assert faces_path.read_bytes() == before

    # That face hidden again by a box over its time on screen, in pixels.
    first, last = SMALL_SCENE.faces[3].first_frame, SMALL_SCENE.faces[3].last_frame
    assert first is not None and last is not None
    w, h = SMALL_SCENE.width, SMALL_SCENE.height
    hide = f"{first / 30:.3f}-{(last + 1) / 30:.3f}:{0.55 * w:.0f},{0.1 * h:.0f},{0.35 * w:.0f},{0.6 * h:.0f}"
    out = tmp_path / "hidden.mp4"
    args = ["--keep-track", biggest["id"], "--hide", hide, "-o", out, "-q"]
    hidden = _invoke("redact", clip.path, "--faces", faces_path, *args)
    assert hidden.exit_code == 0, hidden.output
    assert visible_faces(out, SMALL_SCENE) == []

    # Plain-word refusals: a track the file lacks, a box beyond the picture.
    for bad, said in (
        (["--keep-track", "999"], "no track 999"),
        (["--hide", f"0-1:{w - 10},0,20,20"], f"goes beyond the {w}x{h} picture"),
        (["--hide", "2-1:0,0,10,10"], "END must not come before START"),
    ):
        answer = _invoke("redact", clip.path, "--faces", faces_path, *bad, "-o", out, "-q")
        assert answer.exit_code == 2 and said in answer.output, answer.output


def test_a_faces_file_of_another_video_is_refused_unless_forced(
    clip: SyntheticVideo, tmp_path
) -> None:
    faces_path = tmp_path / "faces.json"
    assert _invoke("detect", clip.path, "-o", faces_path, "-q").exit_code == 0
    data = faces_file.load(faces_path)
    out = tmp_path / "out.mp4"
    for change, said in (
        ({"FrameWidth": 1920, "FrameHeight": 1080}, "made for a 1920x1080 video, not this"),
        ({"DurationMillis": 600_000}, "made for a video of 600.00 s, not this one of"),
    ):
        other = {**data, "VideoMetadata": {**data["VideoMetadata"], **change}}
        faces_file.save(other, tmp_path / "other.json")
        for extra in ([], ["--keep-track", "0"]):
            refused = _invoke(
                "redact", clip.path, "--faces", tmp_path / "other.json", *extra, "-o", out
            )
            assert refused.exit_code == 1 and said in refused.output, refused.output
            assert not out.exists()
        forced = _invoke(
            "redact", clip.path, "--faces", tmp_path / "other.json", "--force", "-o", out, "-q"
        )
        assert forced.exit_code == 0, forced.output
        out.unlink()


def test_added_boxes_stay_within_the_video_and_within_the_bound() -> None:
    # A range past the end (a hostile or careless request) covers the video's frames only.
    edit = Edit(action="add", start_ms=0, end_ms=10**15, box=(0.1, 0.1, 0.2, 0.2))
    added = [e for e in apply_edits(FACES, [edit])["Faces"] if e["Face"]["TrackId"] == 2]
    assert [e["Timestamp"] for e in added] == list(range(0, 1001, 100))
    check_edits(FACES, [edit] * 1000)  # 11 frames each
    long = {**FACES, "VideoMetadata": {"FrameRate": 30.0, "DurationMillis": 3_600_000}}
    check_edits(long, [edit] * 9)  # one box over the whole hour, 9 times: 972,000 frames
    with pytest.raises(ValueError, match="cover 1,080,000 frames; at most 1,000,000"):
        check_edits(long, [edit] * 10)
    with pytest.raises(ValueError, match="edit 1: no track 7 in this job's detections"):
        check_edits(FACES, [Edit(action="show", track=0), Edit(action="remove", track=7)])


def test_an_added_box_with_keyframes_moves_from_one_to_the_next() -> None:
    # Issue 26: a box drawn at two moments follows a face crossing the frame between them.
    first = {"left": 0.1, "top": 0.1, "width": 0.2, "height": 0.2}
    last = {"left": 0.5, "top": 0.3, "width": 0.3, "height": 0.2}
    keyframes = [{"at_ms": 200, "box": first}, {"at_ms": 600, "box": last}]
    (edit,) = parse_edits(
        [{"action": "add", "start_ms": 0, "end_ms": 800, "box": first, "keyframes": keyframes}]
    )
    assert Edit.from_json(edit.to_json()) == edit
    added = [e for e in apply_edits(FACES, [edit])["Faces"] if e["Face"]["TrackId"] == 2]
    boxes = {e["Timestamp"]: e["Face"]["BoundingBox"] for e in added}
    assert sorted(boxes) == list(range(0, 801, 100))
    assert boxes[0]["Left"] == boxes[200]["Left"] == 0.1  # held before the first keyframe
    assert boxes[400] == pytest.approx({"Left": 0.3, "Top": 0.2, "Width": 0.25, "Height": 0.2})
    assert boxes[800]["Left"] == boxes[600]["Left"] == 0.5  # and after the last
    for bad, said in (
        ({"keyframes": keyframes[::-1]}, "in time order"),
        ({"keyframes": [{"at_ms": 900, "box": first}]}, "from start_ms to end_ms"),
        ({"keyframes": [{"at_ms": 200, "box": last}]}, "box must be the first keyframe's"),
        ({"keyframes": [{"at_ms": 200, "box": {**first, "width": 2}}]}, "inside the frame"),
        ({"keyframes": [{"at_ms": 200}]}, "an object with at_ms and box"),
    ):
        body = {"action": "add", "start_ms": 0, "end_ms": 800, "box": first, **bad}
        with pytest.raises(ValueError, match=said):
            parse_edits([body])


def test_boxes_between_stops_at_the_bound_on_a_whole_timestamp(monkeypatch) -> None:
    monkeypatch.setattr("veil.review.MAX_BOXES", 5)
    face = {"BoundingBox": {"Left": 0.1, "Top": 0.1, "Width": 0.1, "Height": 0.1}}
    faces = {
        "Faces": [
            {"Timestamp": t, "Face": {**face, "TrackId": k}}
            for t in (0, 100, 200)
            for k in range(3)
        ]
    }
    answer = boxes_between(faces, 0, 1000)
    # Six boxes at 0 and 100 ms are more than 5: the answer ends before 100 ms, whole.
    assert answer["to_ms"] == 99 and [b["at_ms"] for b in answer["boxes"]] == [0, 0, 0]
    assert boxes_between(faces, 100, 150)["boxes"][0] == {
        "at_ms": 100,
        "track": 0,
        "box": {"left": 0.1, "top": 0.1, "width": 0.1, "height": 0.1},
        "score": 0.0,
    }
