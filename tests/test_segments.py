"""Segments: a video cut at keyframes, processed piece by piece and joined, is the video
a run over the whole of it writes: the same frames at the same times, the same boxes on
every frame (seams included), the audio copied once."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import av
import av.logging
import pytest
from boxes import box
from pictures import same_pictures
from segment_clips import SCENE, SECONDS, SHORT, frame_times, keyed_clip

from veil.detections import Detections
from veil.errors import ObjectChangedError
from veil.pipeline import BlurOptions, blur_video
from veil.segments import (
    MAX_SEGMENTS,
    SegmentPlan,
    SegmentRun,
    blur_segment,
    blur_segmented,
    join_faces,
    join_segments,
    join_thumbnails,
    parts,
    plan_segments,
    to_repair,
    track_ids,
)
from veil.storage import MemoryStorage
from veil.storage.ranged import StoredVideo
from veil.synthetic import visible_faces
from veil.thumbnails import Thumbnails
from veil.tracker import Tracker, TrackerOptions, same_state
from veil.video import probe


def boxes_by_time(faces_path: Path) -> dict[int, list[list[float]]]:
    """Each timestamp's boxes, sorted, track ids left out."""
    by_time: dict[int, list[list[float]]] = {}
    for entry in json.loads(faces_path.read_text())["Faces"]:
        b = entry["Face"]["BoundingBox"]
        by_time.setdefault(entry["Timestamp"], []).append(
            [b["Left"], b["Top"], b["Width"], b["Height"]]
        )
    return {t: sorted(v) for t, v in by_time.items()}


def decoder_complaints(path: Path) -> list[str]:
    """What FFmpeg's decoder says, at warning level and above, decoding the whole video."""
    level = av.logging.get_level()
    av.logging.set_level(av.logging.WARNING)
    try:
        with av.logging.Capture() as logs, av.open(str(path)) as container:
            for frame in container.decode(video=0):
                assert not frame.is_corrupt
    finally:
        av.logging.set_level(level)
    return [message for _, _, message in logs]


def packets(path: Path, kind: str) -> list[tuple[Any, ...]]:
    with av.open(str(path)) as container:
        stream = getattr(container.streams, kind)[0]
        return [
            (p.pts, p.dts, hashlib.sha256(bytes(p)).hexdigest())
            for p in container.demux(stream)
            if p.size
        ]


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("segments")


def one_run(
    folder: Path, suffix: str, options: BlurOptions, *, hard: bool = False
) -> tuple[Path, Path, Path]:
    """A clip and what a run over all of it writes: (clip, output, faces)."""
    name = f"{suffix[1:]}-{options.detect_every}-{hard}"
    clip = folder / f"clip-{name}{suffix}"
    if not clip.exists():
        keyed_clip(clip, SCENE, hard=hard)
    out, faces = folder / f"one-{name}{suffix}", folder / f"one-{name}.json"
    if not out.exists():
        blur_video(clip, out, options, faces_out=faces)
    return clip, out, faces


@pytest.mark.parametrize(
    ("suffix", "options", "hard"),
    [
        (".mp4", BlurOptions(), False),
        # In the full suite only: their containers and options each run in another case
        # of the quick tier (MPEG-TS in tests/test_segment_formats.py).
        pytest.param(".mp4", SHORT, False, marks=pytest.mark.slow),
        (".mp4", SHORT, True),
        pytest.param(".ts", SHORT, False, marks=pytest.mark.slow),
        (".mkv", SHORT, False),
    ],
)
def test_a_segmented_run_is_the_run_over_the_whole_video(clips, tmp_path, suffix, options, hard):
    clip, one, one_faces = one_run(clips, suffix, options, hard=hard)
    out, faces = tmp_path / f"out{suffix}", tmp_path / "faces.json"
    result = blur_segmented(clip, out, SECONDS, options, faces_out=faces, work=tmp_path)
    plan = result.plan
    # At a variable rate 2 s hold more frames; the keyframes are 30 frames apart.
    cuts = [(0, 90), (90, 90)] if hard else [(0, 60), (60, 60), (120, 60)]
    assert [(s.first_frame, s.frames) for s in plan.segments] == cuts
    assert plan.segments[-1].analyse_from > 0  # a margin, not the whole past
    assert result.repairs == {}  # every seam reached the state of the whole run
    assert frame_times(out) == frame_times(clip) == frame_times(one)
    assert boxes_by_time(faces) == boxes_by_time(one_faces)
    # Track ids too: the faces file is the one the whole run writes.
    assert json.loads(faces.read_text()) == json.loads(one_faces.read_text())
    assert visible_faces(clip, SCENE)
    assert visible_faces(out, SCENE) == []
    assert decoder_complaints(out) == []
    dts = [d for _, d, _ in packets(out, "video") if d is not None]
    assert dts == sorted(set(dts))
    assert packets(out, "audio") == packets(one, "audio")
    with av.open(str(out)) as joined, av.open(str(clip)) as source:
        assert joined.format.name == source.format.name
        assert [s.type for s in joined.streams] == [s.type for s in source.streams]
    assert probe(out).display_matrix == probe(clip).display_matrix


def test_a_video_shorter_than_a_segment_is_one_segment(clips, tmp_path):
    clip = keyed_clip(clips / "short.mp4", replace(SCENE, frames=45))
    plan = plan_segments(clip, SECONDS, BlurOptions())
    assert [(s.first_frame, s.frames, s.stop) for s in plan.segments] == [(0, 45, None)]
    result = blur_segmented(clip, tmp_path / "out.mp4", SECONDS)
    assert frame_times(tmp_path / "out.mp4") == frame_times(clip)
    assert result.join.frames == 45


@pytest.mark.parametrize(
    ("seconds", "cuts"), [(0, [0]), (1.0, [0, 30, 60, 90, 120, 150]), (2.5, [0, 90])]
)
def test_cuts_fall_on_keyframes_about_the_length_apart(clips, seconds, cuts):
    clip, _, _ = one_run(clips, ".mp4", SHORT)
    plan = plan_segments(clip, seconds, SHORT)
    assert [s.first_frame for s in plan.segments] == cuts
    assert sum(s.frames for s in plan.segments) == plan.frame_count == 180
    for s in plan.segments:
        assert s.keyframe_index % 30 == 0 and s.keyframe_index <= s.warm_from <= s.analyse_from
        assert s.stop is None or s.stop == s.end + plan.latency


def test_a_job_has_at_most_max_segments(clips):
    # Issue 24: a long near-still file with sparse keyframes became 1,000 segments at the
    # default length, each a workflow downloading the input. Here a keyframe every 2
    # frames and 0.01 s segments would make 90.
    clip = keyed_clip(clips / "dense.mp4", SCENE, every=2, audio=False)
    plan = plan_segments(clip, 0.01, SHORT)
    assert 32 <= len(plan.segments) <= MAX_SEGMENTS
    assert sum(s.frames for s in plan.segments) == plan.frame_count == SCENE.frames


def bare(plan: SegmentPlan) -> SegmentPlan:
    """``plan`` without margins: each segment decoded from its first frame (a keyframe)
    and analysed from there, meeting its seam with no tracks."""
    return replace(
        plan,
        segments=tuple(
            replace(
                s,
                warm_from=s.first_frame,
                analyse_from=s.first_frame,
                keyframe_index=s.first_frame,
                keyframe_pts=s.start_pts,
                keyframe_dts=None,
            )
            for s in plan.segments
        ),
    )


def test_a_seam_the_margin_did_not_bring_together_is_found_and_repaired(clips, tmp_path):
    """Without a margin a segment meets its seam with no tracks: the seam check finds it;
    run again from the state the segment before left, only until its state is its first
    run's at a splice (a keyframe of its encoding), it makes the video exact."""
    clip, _, one_faces = one_run(clips, ".mp4", SHORT)
    plan = bare(plan_segments(clip, 3.0, SHORT))
    assert [(s.first_frame, s.splices) for s in plan.segments] == [(0, ()), (90, (120, 150))]
    out, faces = tmp_path / "out.mp4", tmp_path / "faces.json"
    result = blur_segmented(clip, out, 3.0, SHORT, plan=plan, faces_out=faces, work=tmp_path)
    repair = result.repairs[1]
    assert sorted(result.repairs) == [1] and repair.handed
    assert repair.first == 90 and repair.until in (120, 150)  # handed over at a splice
    assert [(p.index, p.first, p.until) for p in parts(result.runs, result.repairs)] == [
        (0, 0, 90),
        (1, 90, repair.until),
        (1, repair.until, 180),
    ]
    assert json.loads(faces.read_text()) == json.loads(one_faces.read_text())
    assert frame_times(out) == frame_times(clip)
    assert decoder_complaints(out) == []
    with av.open(str(tmp_path / "segment-1.mp4")) as first_run:
        keyframes = [p.pts for p in first_run.demux(video=0) if p.size and p.is_keyframe]
    assert len(keyframes) == 3  # the segment's first frame and its two splices


def test_a_repair_that_never_meets_its_first_run_is_the_segment_and_the_next_is_repaired_after_it(
    clips, tmp_path
):
    """With 2 s segments the only splice comes before the states meet again: each repair
    runs to its segment's end, and the next segment is repaired from its exit."""
    clip, _, one_faces = one_run(clips, ".mp4", SHORT)
    plan = bare(plan_segments(clip, SECONDS, SHORT))
    out, faces = tmp_path / "out.mp4", tmp_path / "faces.json"
    result = blur_segmented(clip, out, SECONDS, SHORT, plan=plan, faces_out=faces, work=tmp_path)
    assert [(p.index, p.first, p.until, p.handed) for p in parts(result.runs, result.repairs)] == [
        (0, 0, 60, False),
        (1, 60, 120, True),
        (2, 120, 180, True),
    ]
    assert json.loads(faces.read_text()) == json.loads(one_faces.read_text())
    assert frame_times(out) == frame_times(clip)


def test_a_segment_run_again_whole_from_the_state_before_is_exact(clips, tmp_path):
    """A run from the state before, without a first run to meet, writes the whole
    segment: each seam is then exact too."""
    clip, _, one_faces = one_run(clips, ".mp4", SHORT)
    plan = bare(plan_segments(clip, SECONDS, SHORT))
    videos = [tmp_path / f"{n}.mp4" for n in range(3)]
    faces = [tmp_path / f"{n}.json" for n in range(3)]
    pictures = [Thumbnails() for _ in range(3)]
    detector = SHORT.detector()
    runs = [
        blur_segment(clip, plan, n, videos[n], SHORT, faces_out=faces[n], detector=detector)
        for n in range(3)
    ]
    assert [n for n, _ in to_repair(runs)] == [1, 2]
    with pytest.raises(Exception, match="repair it first"):
        track_ids(runs)
    for n in (1, 2):  # in order: each from the exit of the one before, run again
        runs[n] = blur_segment(
            clip,
            plan,
            n,
            videos[n],
            SHORT,
            faces_out=faces[n],
            detector=detector,
            entry=runs[n - 1].exit,
            thumbnails=pictures[n],
        )
        assert (runs[n].first, runs[n].until) == (60 * n, 60 * n + 60)
    assert to_repair(runs) == []
    joined = join_segments(clip, plan, videos, tmp_path / "out.mp4", SHORT)
    join_faces(runs, faces, tmp_path / "faces.json", metadata_removed=joined.metadata_removed)
    assert json.loads((tmp_path / "faces.json").read_text()) == json.loads(one_faces.read_text())
    # A picture of each track that crosses into a segment run again, by the whole run's ids.
    tracks = {e["Face"]["TrackId"] for e in json.loads(one_faces.read_text())["Faces"]}
    thumbnails = join_thumbnails(runs, [p.pictures for p in pictures])
    assert thumbnails and set(thumbnails) <= tracks


def test_plans_and_runs_are_plain_data(clips, tmp_path):
    clip, _, _ = one_run(clips, ".mp4", SHORT)
    plan = plan_segments(clip, SECONDS, SHORT)
    assert SegmentPlan.from_json(json.loads(json.dumps(plan.to_json()))) == plan
    run = blur_segment(clip, plan, 1, None, SHORT, faces_out=tmp_path / "f.json")
    assert run.entry is not None and run.exit is not None
    assert SegmentRun.from_json(json.loads(json.dumps(run.to_json()))) == run
    assert run.frames == 60 and run.decoded > run.frames


def test_a_segment_read_in_place_reads_its_part_and_writes_what_the_file_gives(clips, tmp_path):
    """Issue 25: a segment on a machine without the job's copy reads the stored object in
    place (``StoredVideo``), the index and its own part, never the whole, and writes
    exactly what it writes from a local file."""
    clip, _, _ = one_run(clips, ".mp4", SHORT)
    plan = plan_segments(clip, SECONDS, SHORT)
    store = MemoryStorage()
    store.objects["cam/clip.mp4"] = clip.read_bytes()
    info = store.stat("cam/clip.mp4")
    stored = StoredVideo(
        store, "cam/clip.mp4", info.etag, info.size, whole=lambda: clip, block=16 * 1024
    )
    local, local_faces = tmp_path / "local.mp4", tmp_path / "local.json"
    local_run = blur_segment(clip, plan, 0, local, SHORT, faces_out=local_faces)
    kept, kept_faces = tmp_path / "stored.mp4", tmp_path / "stored.json"
    stored_run = blur_segment(stored, plan, 0, kept, SHORT, faces_out=kept_faces)
    # How many frames the decoder read ahead before the segment ended depends on the
    # threads' timing, as its time does.
    assert stored_run == replace(local_run, seconds=stored_run.seconds, decoded=stored_run.decoded)
    assert abs(stored_run.decoded - local_run.decoded) <= 2
    # The same frames, times and boxes; the same pictures (tests/pictures.py says why
    # not the same bytes).
    assert kept_faces.read_text() == local_faces.read_text()
    assert frame_times(kept) == frame_times(local)
    same_pictures(kept, local)
    # The first of three segments, the frames its last boxes wait for, what the decoder
    # reads ahead, and the index at the file's end: about 64% of this short file, not
    # the rest of it.
    assert 0 < stored.fetched < 0.75 * info.size, (stored.fetched, info.size)
    assert stored.copy is None

    # A new upload under the key meanwhile: the next block read refuses it.
    store.objects["cam/clip.mp4"] += b"a newer upload"
    again = StoredVideo(
        store, "cam/clip.mp4", info.etag, info.size, whole=lambda: clip, block=16 * 1024
    )
    with pytest.raises(ObjectChangedError):
        blur_segment(again, plan, 0, tmp_path / "again.mp4", SHORT)


def test_options_that_make_frames_wait_longer_are_refused(clips, tmp_path):
    clip, _, _ = one_run(clips, ".mp4", SHORT)
    plan = plan_segments(clip, SECONDS, SHORT)
    with pytest.raises(Exception, match="plan again"):
        blur_segment(clip, plan, 0, tmp_path / "o.mp4", BlurOptions())


# The tracker's state, in the picture-like patterns of test_tracker: D a detection of a
# face moving 2 px a frame, "." a frame without one.
OPTS = TrackerOptions(max_gap=4, pre_roll=2, post_roll=2, smooth=1)


def feed(tracker: Tracker, pattern: str, start: int) -> list[tuple[int, Detections]]:
    out = []
    for i, c in enumerate(pattern, start):
        out.extend(tracker.update(i, box(2 * i) if c == "D" else None))
    return out


@pytest.mark.parametrize(
    ("pattern", "margin", "same"),
    [
        # a face seen all along: a run started 12 frames early has forgotten nothing it lacks
        ("D.D.D.D.D.D.D.D.D.D.D.D.D.D.D.D.D.D.D.D", 12, True),
        # started 2 frames early, it lacks the observations the whole run keeps (32 to 36)
        ("D.D.D.D.D.D.D.D.D.D.D.D.D.D.D.D.D.D.D.D", 2, False),
        # no face near the seam: nothing to remember
        ("DDDD................................", 6, True),
    ],
)
def test_a_tracker_started_a_margin_early_reaches_the_same_state(pattern, margin, same):
    seam = len(pattern) - 1
    whole = Tracker(OPTS)
    feed(whole, pattern, 0)
    late = Tracker(OPTS, start=seam - margin)
    feed(late, pattern[seam - margin :], seam - margin)
    assert same_state(whole.state(), late.state()) is same


def test_a_restored_tracker_goes_on_as_the_one_it_came_from():
    pattern = "D.DD.D..D.D.DDD..D"
    a = Tracker(OPTS)
    feed(a, pattern[:9], 0)
    b = Tracker.restore(OPTS, json.loads(json.dumps(a.state())))
    rest_a = feed(a, pattern[9:], 9) + a.flush()
    rest_b = feed(b, pattern[9:], 9) + b.flush()
    assert [(i, d.xyxy.tolist(), d.track_id.tolist()) for i, d in rest_a] == [
        (i, d.xyxy.tolist(), d.track_id.tolist()) for i, d in rest_b
    ]
