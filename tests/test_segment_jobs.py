"""Long jobs in segments through the service, in-process (``create_app`` on in-memory
buckets, DBOS on SQLite, as ``test_workflow``): a segmented job gives what a one-piece
run gives, and a segmented face-detection job the faces a one-piece run finds. Workers
sharing PostgreSQL, with one killed mid-segment, are in ``test_faults``."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import InProcess
from segment_clips import SCENE, SECONDS, SHORT, frame_times, keyed_clip

from veil import queue, runtime, segment_jobs, steps
from veil.errors import JobFailed, ObjectChangedError
from veil.jobs import FaceDetectionRequest
from veil.pipeline import blur_video, detect_video
from veil.storage import ranged
from veil.storage.ranged import StoredVideo
from veil.synthetic import visible_faces


@pytest.fixture(scope="module")
def veil(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcess]:
    running = InProcess(tmp_path_factory.mktemp("segmented"), blur=SHORT, segment_seconds=SECONDS)
    yield running
    runtime.shutdown()


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return keyed_clip(tmp_path_factory.mktemp("long") / "long.mp4", SCENE)


def test_segments_on_a_machine_without_the_jobs_copy_read_the_input_in_place(
    veil, long_clip, tmp_path, monkeypatch
):
    """Issue 25: a segment on another machine (no copy of the input in its work folder)
    reads the stored object in place, only the index and its own part, and the job gives
    what it gives from a copy."""
    sources: list[Any] = []

    def elsewhere(job_id: str, request: Any) -> Any:
        shutil.rmtree(steps.work_dir(job_id), ignore_errors=True)  # as on another machine
        sources.append(steps.segment_input(job_id, request))
        return sources[-1]

    monkeypatch.setattr(segment_jobs, "segment_input", elsewhere)
    monkeypatch.setattr(ranged, "BLOCK", 16 * 1024)  # blocks this short clip has many of
    veil.input.objects["far.mp4"] = long_clip.read_bytes()
    job = veil.finished(veil.call("POST", "/api/jobs", json={"key": "far.mp4"}).json()["id"])
    assert job["status"] == "SUCCEEDED", job
    assert len(sources) == 3 and all(isinstance(s, StoredVideo) for s in sources)
    # The first segment reads its part and the index; each later one (whose margin
    # reaches back over most of this short clip) about the whole: at most one block
    # again, where the index reaches into a block its frames' reading passed through.
    size = len(long_clip.read_bytes())
    fetched = [s.fetched for s in sources]
    assert 0 < fetched[0] < 0.8 * size, (fetched, size)
    assert max(fetched) <= size + ranged.BLOCK, (fetched, size)
    assert sources[0].copy is None
    whole = tmp_path / "whole.mp4"
    blur_video(long_clip, whole, SHORT)
    joined = tmp_path / "joined.mp4"
    joined.write_bytes(veil.output.objects["far.mp4"])
    assert frame_times(joined) == frame_times(whole)
    assert visible_faces(joined, SCENE) == []


def test_an_input_replaced_while_read_in_place_fails_the_job_plainly():
    replaced = r"^far\.mp4 was replaced by a newer upload after this job started"
    with pytest.raises(JobFailed, match=replaced), steps.failing_job("far.mp4"):
        raise ObjectChangedError("memory://in", "far.mp4")


def test_a_working_copy_that_cannot_be_made_fails_the_job_without_the_servers_path():
    with pytest.raises(JobFailed) as caught, steps.failing_job("far.mp4"):
        raise OSError(24, "Too many open files", "/srv/veil/work/job-1/input.mp4")
    assert str(caught.value) == (
        "far.mp4: the service cannot make its working copy (Too many open files); "
        "retry the job once that is fixed"
    )


def test_a_segmented_job_gives_what_one_piece_gives(veil, long_clip, tmp_path):
    veil.input.objects["long.mp4"] = long_clip.read_bytes()
    job_id = veil.call("POST", "/api/jobs", json={"key": "long.mp4"}).json()["id"]
    job = veil.finished(job_id, timeout=180)
    assert job["status"] == "SUCCEEDED", job
    names = [s["name"] for s in job["steps"]]
    assert names == ["Validate", "Join", "Audit", "Publish"], names
    assert [(s["index"], s["status"]) for s in job["segments"]] == [
        (0, "SUCCEEDED"),
        (1, "SUCCEEDED"),
        (2, "SUCCEEDED"),
    ]
    assert all(s["worker"] and s["frames_done"] == s["frames_total"] for s in job["segments"]), job[
        "segments"
    ]
    assert sum(s["frames_total"] for s in job["segments"]) == SCENE.frames

    # The same video and faces file as one run over the whole video.
    whole, whole_faces = tmp_path / "whole.mp4", tmp_path / "whole.faces.json"
    blur_video(long_clip, whole, SHORT, faces_out=whole_faces)
    joined = tmp_path / "joined.mp4"
    joined.write_bytes(veil.output.objects["long.mp4"])
    assert frame_times(joined) == frame_times(long_clip) == frame_times(whole)
    served = json.loads(veil.output.objects["long.mp4.faces.json"])
    assert served == json.loads(whole_faces.read_text())
    assert visible_faces(joined, SCENE) == []
    assert job["faces"] == len({f["Face"]["TrackId"] for f in served["Faces"]})

    # Each segment audited its own piece; the report holds their audits joined.
    audit = veil.call("GET", f"/api/jobs/{job_id}/report").json()["audit"]
    assert audit["passed"] and audit["settings"]["pieces"] == 3, audit
    assert audit["frames_total"] == SCENE.frames and audit["frames_checked"] >= 3

    # The pieces are gone; every track has its thumbnail, by the job's own track ids.
    assert [k for k in veil.output.objects if k.startswith(".veil/")] == []
    review = veil.call("GET", f"/api/jobs/{job_id}/review").json()
    assert [t["id"] for t in review["tracks"]] == sorted({t["id"] for t in review["tracks"]})
    for track in review["tracks"]:
        picture = veil.call("GET", f"/api/jobs/{job_id}/tracks/{track['id']}/thumbnail")
        assert picture.status_code == 200, track


def _face_detection(veil: InProcess, key: str) -> dict[str, Any]:
    """Start a face-detection job as StartFaceDetection does; its DBOS result."""
    from dbos import DBOS

    info = veil.input.stat(key)
    job_id = f"rk-test-{time.monotonic_ns()}"
    request = FaceDetectionRequest(key, info.etag, info.size, caller="anonymous")
    queue.submit_face_detection(job_id, request)
    status: Any = DBOS.retrieve_workflow(job_id).get_result(polling_interval_sec=0.2)
    assert isinstance(status, dict)
    return {"id": job_id, **status}


def test_a_segmented_face_detection_job_finds_what_one_piece_finds(veil, long_clip, tmp_path):
    veil.input.objects["talk.mp4"] = long_clip.read_bytes()
    result = _face_detection(veil, "talk.mp4")
    served = json.loads(veil.output.objects[result["faces_key"]])
    whole = tmp_path / "whole.faces.json"
    detect_video(long_clip, whole, SHORT)
    assert served == json.loads(whole.read_text())
    stamps = [f["Timestamp"] for f in served["Faces"]]
    assert stamps == sorted(stamps) and len(set(stamps)) > SCENE.frames * 0.9
    assert not any(k.startswith(".veil/segments") for k in veil.output.objects)


def test_cancelling_a_job_cancels_its_segments(veil, long_clip):
    veil.input.objects["stop.mp4"] = long_clip.read_bytes()
    job_id = veil.call("POST", "/api/jobs", json={"key": "stop.mp4"}).json()["id"]
    deadline = time.monotonic() + 60
    while not veil.call("GET", f"/api/jobs/{job_id}").json()["segments"]:
        assert time.monotonic() < deadline, "no segments started"
        time.sleep(0.1)
    assert veil.call("DELETE", f"/api/jobs/{job_id}").status_code == 202
    job = veil.finished(job_id, timeout=60)
    assert job["status"] == "CANCELLED", job
    deadline = time.monotonic() + 60
    while any(s["status"] in ("QUEUED", "RUNNING") for s in job["segments"]):
        assert time.monotonic() < deadline, job["segments"]
        time.sleep(0.2)
        job = veil.call("GET", f"/api/jobs/{job_id}").json()
    assert "CANCELLED" in {s["status"] for s in job["segments"]}, job["segments"]
    assert "stop.mp4" not in veil.output.objects


def test_an_upload_cannot_replace_another_jobs_piece(veil, long_clip, tmp_path):
    # Issue 24's attack: a blur job publishes under its input key, so an input named
    # after a running job's piece would overwrite it with another video's faces. Every
    # way in refuses such keys; the victim's output stays its own, blurred.
    veil.input.objects["victim.mp4"] = long_clip.read_bytes()
    job_id = veil.call("POST", "/api/jobs", json={"key": "victim.mp4"}).json()["id"]
    piece = f".veil/segments/{job_id}/1.mp4"
    veil.input.objects[piece] = long_clip.read_bytes()  # as if the store took it directly
    refused = veil.call("POST", "/api/jobs", json={"key": piece})
    assert refused.status_code == 400, refused.text
    assert "veil's own" in refused.json()["detail"]
    upload = veil.call(
        "POST", "/api/uploads", params={"key": piece}, files={"file": ("x.mp4", b"data")}
    )
    assert upload.status_code == 400, upload.text
    event = {"Records": [{"s3": {"bucket": {"name": "in"}, "object": {"key": piece}}}]}
    assert veil.call("POST", "/events/s3", json=event).json() == {"jobs": []}

    job = veil.finished(job_id, timeout=180)
    assert job["status"] == "SUCCEEDED", job
    assert {j["key"] for j in veil.call("GET", "/api/jobs").json()} >= {"victim.mp4"}
    assert piece not in {j["key"] for j in veil.call("GET", "/api/jobs").json()}
    published = tmp_path / "victim.mp4"
    published.write_bytes(veil.output.objects["victim.mp4"])
    assert visible_faces(published, SCENE) == []
    del veil.input.objects[piece]


def test_a_piece_replaced_in_the_store_fails_the_job(veil, long_clip):
    # Should anyone write over a piece after its segment (another process with the
    # store's credentials), Join reads the version the segment wrote, or nothing. The
    # stand-in here is the piece's own faces file, reformatted: it joins cleanly, so
    # only the version check can tell.
    veil.input.objects["swapped.mp4"] = long_clip.read_bytes()
    job_id = veil.call("POST", "/api/jobs", json={"key": "swapped.mp4"}).json()["id"]
    piece = f".veil/segments/{job_id}/0.faces.json"
    deadline = time.monotonic() + 120
    while piece not in veil.output.objects:
        assert time.monotonic() < deadline, "segment 0 left no piece"
        time.sleep(0.02)
    veil.output.objects[piece] = json.dumps(
        json.loads(veil.output.objects[piece]), indent=1
    ).encode()
    job = veil.finished(job_id, timeout=180)
    assert job["status"] == "FAILED", job
    assert "replaced" in job["error"], job
    assert "swapped.mp4" not in veil.output.objects


def test_a_cancelled_segmented_job_leaves_no_piece(veil, long_clip):
    # A cancelled job's finished segments left their pieces under .veil/segments/.
    veil.input.objects["dropped.mp4"] = long_clip.read_bytes() + b"dropped"
    job_id = veil.call("POST", "/api/jobs", json={"key": "dropped.mp4"}).json()["id"]
    prefix = f".veil/segments/{job_id}/"
    deadline = time.monotonic() + 120
    while not any(key.startswith(prefix) for key in veil.output.objects):
        assert time.monotonic() < deadline, "no segment finished"
        time.sleep(0.05)
    assert veil.call("DELETE", f"/api/jobs/{job_id}").status_code == 202
    assert veil.finished(job_id)["status"] == "CANCELLED"
    deadline = time.monotonic() + 40
    while any(key.startswith(prefix) for key in veil.output.objects):
        assert time.monotonic() < deadline, sorted(veil.output.objects)
        time.sleep(0.2)
