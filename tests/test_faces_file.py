"""faces.json: compact numbers, one entry a line, read back within 0.1 px, old files too."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from veil import faces_file
from veil.detections import Detections
from veil.errors import FacesFileError
from veil.faces_file import CONFIDENCE_DIGITS, FacesWriter, ratio_digits, read_faces
from veil.video import VideoInfo, probe

SIZES = [(320, 240), (1280, 720), (1920, 1080), (1080, 1920), (3840, 2160), (16000, 9000)]


@pytest.fixture(scope="module")
def clip_info(clip) -> VideoInfo:
    return probe(clip.path)


def make_detections(rng: np.random.Generator, width: int, height: int, n: int) -> Detections:
    """``n`` faces of 16 px up to the frame height anywhere in the frame, with track IDs;
    every third one held (no landmarks)."""
    size = rng.uniform(16, min(width, height), n)
    x1 = rng.uniform(0, width - size)
    y1 = rng.uniform(0, height - size)
    xyxy = np.stack([x1, y1, x1 + size, y1 + size], axis=1)
    marks = xyxy[:, None, :2] + rng.uniform(0, 1, (n, 5, 2)) * size[:, None, None]
    marks[::3] = np.nan
    return Detections.from_boxes(xyxy, rng.uniform(0.05, 1, n), marks, np.arange(n))


def write(path: Path, info: VideoInfo, frames: list[tuple[int, Detections]]) -> Path:
    writer = FacesWriter(path, info)
    for time_ms, detections in frames:
        writer.add(time_ms, detections)
    writer.commit()
    return path


def random_frames(info: VideoInfo, count: int = 20) -> list[tuple[int, Detections]]:
    rng = np.random.default_rng(info.width * 7 + info.height)
    return [(33 * i, make_detections(rng, info.width, info.height, 6)) for i in range(count)]


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_round_trip_within_a_tenth_of_a_pixel(clip_info, tmp_path, width, height):
    info = dataclasses.replace(clip_info, width=width, height=height)
    frames = random_frames(info)
    back = read_faces(write(tmp_path / "faces.json", info, frames), width, height)
    assert [t for t, _ in back] == [t for t, _ in frames]
    for (_, sent), (_, got) in zip(frames, back, strict=True):
        assert np.abs(got.xyxy - sent.xyxy).max() < 0.1
        assert np.array_equal(np.isnan(got.landmarks), np.isnan(sent.landmarks))
        known = ~np.isnan(sent.landmarks)
        assert np.abs(got.landmarks[known] - sent.landmarks[known]).max() < 0.1
        assert np.abs(got.confidence - sent.confidence).max() < 0.51 * 10**-CONFIDENCE_DIGITS / 100
        assert np.array_equal(got.track_id, sent.track_id)


@pytest.mark.parametrize(
    ("width", "height", "digits"),
    [
        (99, 50, 3),
        (320, 240, 4),
        (1280, 720, 5),
        (1080, 1920, 5),
        (3840, 2160, 5),
        (16000, 9000, 6),
    ],
)
def test_ratio_digits(width, height, digits):
    assert ratio_digits(width, height) == digits
    # The worst rounding error, in pixels of the larger side, stays under 0.05 px.
    assert 0.5 * 10**-digits * max(width, height) < 0.05


@pytest.mark.parametrize(("width", "height"), [(320, 240), (1280, 720), (3840, 2160)])
def test_compact_lines_and_precision(clip_info, tmp_path, width, height):
    info = dataclasses.replace(clip_info, width=width, height=height)
    path = write(tmp_path / "faces.json", info, random_frames(info, count=5))
    text = path.read_text()
    lines = text.splitlines()
    # A head line, one line per face-frame, a closing line: streamable, line by line.
    assert len(lines) == 2 + 5 * 6
    assert lines[-1] == "]}"
    for line in lines[1:-1]:
        entry = json.loads(line.rstrip(","))
        assert set(entry) == {"Timestamp", "Face"}
    assert ", " not in text and ": " not in text
    digits = ratio_digits(width, height)
    data = json.loads(text)
    for entry in data["Faces"]:
        face = entry["Face"]
        ratios = [*face["BoundingBox"].values()]
        ratios += [v for m in face.get("Landmarks", []) for v in (m["X"], m["Y"])]
        for value in ratios:
            assert round(value, digits) == value
        assert round(face["Confidence"], CONFIDENCE_DIGITS) == face["Confidence"]
    # Still a GetFaceDetection response.
    assert data["JobStatus"] == "SUCCEEDED"
    assert (data["VideoMetadata"]["FrameWidth"], data["VideoMetadata"]["FrameHeight"]) == (
        width,
        height,
    )
    assert {"BoundingBox", "Confidence", "TrackId"} <= set(data["Faces"][0]["Face"])


def test_held_faces_have_no_landmarks(clip_info, tmp_path):
    held = Detections.from_boxes([[10, 20, 50, 70]], [0.9], track_id=[4])
    data = json.loads(write(tmp_path / "f.json", clip_info, [(0, held)]).read_text())
    assert data["Faces"] == [
        {
            "Timestamp": 0,
            "Face": {
                "BoundingBox": {"Width": 0.125, "Height": 0.2083, "Left": 0.0312, "Top": 0.0833},
                "Confidence": 90.0,
                "TrackId": 4,
            },
        }
    ]


def test_no_faces_is_an_empty_list(clip_info, tmp_path):
    path = write(tmp_path / "f.json", clip_info, [])
    assert json.loads(path.read_text())["Faces"] == []
    assert read_faces(path, clip_info.width, clip_info.height) == []
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]


def test_abandoned_writer_leaves_nothing(clip_info, tmp_path):
    writer = FacesWriter(tmp_path / "f.json", clip_info)
    writer.add(0, Detections.from_boxes([[1, 2, 30, 40]]))
    writer.close()
    assert list(tmp_path.iterdir()) == []


def test_old_format_is_still_read(clip_info, tmp_path):
    """Files written before the compact format: spaced JSON, full float digits,
    landmarks on every frame."""
    width, height = clip_info.width, clip_info.height
    frames = random_frames(clip_info, count=4)
    old = tmp_path / "old.json"
    entries = [
        json.dumps({"Timestamp": t, "Face": face})
        for t, detections in frames
        for face in detections.to_rekognition(width, height)
    ]
    head = {"JobStatus": "SUCCEEDED", "VideoMetadata": {"FrameWidth": width}}
    old.write_text(json.dumps(head)[:-1] + ', "Faces": [\n' + ",\n".join(entries) + "\n]}\n")
    new = write(tmp_path / "new.json", clip_info, frames)
    assert new.stat().st_size < 0.7 * old.stat().st_size
    for (t_old, a), (t_new, b), (t, sent) in zip(
        read_faces(old, width, height), read_faces(new, width, height), frames, strict=True
    ):
        assert t_old == t_new == t
        assert np.abs(a.xyxy - sent.xyxy).max() < 1e-3
        assert np.abs(b.xyxy - a.xyxy).max() < 0.1
        assert np.array_equal(a.track_id, b.track_id)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file"),
        (b"", "not a JSON faces file"),
        (b'{"Faces": [', "not a JSON faces file"),
        (b"\xff\xfe not text", "not a JSON faces file"),
        (b"[]", 'no "Faces" list'),
        (b'{"JobStatus": "SUCCEEDED"}', 'no "Faces" list'),
        (b'{"Faces": {"Timestamp": 0}}', 'no "Faces" list'),
        (b'{"Faces": [{"Face": {}}]}', "entry 0 needs a Timestamp and a Face"),
        (b'{"Faces": [{"Timestamp": "soon", "Face": {}}]}', "entry 0 needs a Timestamp"),
        (b'{"Faces": [7]}', "entry 0 needs a Timestamp and a Face"),
        (b'{"Faces": [{"Timestamp": 40, "Face": {}}]}', "at Timestamp 40: face 0 has no valid"),
        (
            b'{"Faces": [{"Timestamp": 0, "Face": {"BoundingBox": {"Left": "x"}}}]}',
            "at Timestamp 0: face 0 has no valid BoundingBox",
        ),
    ],
    ids=[
        "missing",
        "empty",
        "truncated",
        "not-utf8",
        "list",
        "no-faces",
        "faces-not-list",
        "no-timestamp",
        "bad-timestamp",
        "entry-not-object",
        "no-box",
        "bad-box",
    ],
)
def test_malformed_files_are_refused(tmp_path, content, message):
    path = tmp_path / "faces.json"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(FacesFileError) as raised:
        read_faces(path, 320, 240)
    assert message in str(raised.value)
    assert raised.value.path == str(path)


def test_save_writes_what_load_reads_and_replaces_whole(clip_info, tmp_path):
    # The review's edited faces file goes through the same writer as the pipeline's: the
    # same layout (one entry a line), and a failed save leaves the old file whole.
    path = write(tmp_path / "f.json", clip_info, random_frames(clip_info, count=3))
    data = faces_file.load(path)
    data["Faces"] = data["Faces"][1:]
    faces_file.save(data, tmp_path / "g.json")
    assert faces_file.load(tmp_path / "g.json") == data
    lines = (tmp_path / "g.json").read_text().splitlines()
    assert len(lines) == len(data["Faces"]) + 2
    before = path.read_bytes()
    broken = {**data, "Faces": [*data["Faces"], {"Timestamp": 1, "Face": object()}]}
    with pytest.raises(TypeError):
        faces_file.save(broken, path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.json", "g.json"]


def test_track_ids(clip_info, tmp_path):
    data = {"Faces": [{"Timestamp": 0, "Face": {"TrackId": 3}}, {"Timestamp": 0, "Face": {}}]}
    assert faces_file.track_ids(data) == {3}
