"""Forgetting a job (issue 24): its faces go with its video, a purge removes everything
veil keeps of it, and retention does so on its own after a set time. In-process, as
``test_workflow`` (``create_app`` on in-memory buckets, DBOS on SQLite)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from harness import InProcess

from veil import heartbeats, jobs, queue, runtime
from veil.erasure import Retention, RetentionPolicy
from veil.jobs import FaceDetectionRequest
from veil.keys import face_detection_key
from veil.synthetic import MovingFace, Scene, write_video


@pytest.fixture(scope="module")
def veil(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcess]:
    running = InProcess(tmp_path_factory.mktemp("erasure"), write_report=True)
    yield running
    runtime.shutdown()


def finished_job(veil: InProcess, key: str, video: bytes) -> dict:
    veil.input.objects[key] = video
    job = veil.finished(veil.call("POST", "/api/jobs", json={"key": key}).json()["id"])
    assert job["status"] == "SUCCEEDED", job
    return job


def kept_of(job_id: str) -> tuple[int, int]:
    """Thumbnails and progress rows the job database keeps of a job."""
    running = runtime.runtime()
    return len(running.reviews.thumbnails_of(job_id)), len(running.progress.get([job_id]))


def test_faces_go_with_their_video(veil, clip):
    # Finding 3: after the input was replaced and deleted, the old job's thumbnails still
    # served 13 unblurred face crops, and its review every box.
    job = finished_job(veil, "gone.mp4", clip.path.read_bytes())
    review = veil.call("GET", f"/api/jobs/{job['id']}/review")
    assert review.status_code == 200
    track = review.json()["tracks"][0]["id"]
    thumbnail = f"/api/jobs/{job['id']}/tracks/{track}/thumbnail"
    assert veil.call("GET", thumbnail).status_code == 200
    veil.input.objects["gone.mp4"] = clip.path.read_bytes() + b"another upload"
    for path in (thumbnail, f"/api/jobs/{job['id']}/review"):
        answer = veil.call("GET", path)
        assert answer.status_code == 410, (path, answer.text)
        assert "was deleted or replaced" in answer.json()["detail"]
    del veil.input.objects["gone.mp4"]
    assert veil.call("GET", thumbnail).status_code == 410


def test_a_purge_forgets_everything_of_the_job(veil, clip):
    job = finished_job(veil, "forget.mp4", clip.path.read_bytes())
    published = {"forget.mp4", "forget.mp4.faces.json", "forget.mp4.veil.json"}
    assert published <= set(veil.output.objects)
    assert kept_of(job["id"])[0] > 0
    answer = veil.call("DELETE", f"/api/jobs/{job['id']}", params={"purge": "true"})
    assert answer.status_code == 202, answer.text
    assert sorted(answer.json()["objects"]) == sorted(f"output:{k}" for k in published)
    assert not published & set(veil.output.objects)
    assert "forget.mp4" in veil.input.objects  # the input only when asked
    assert kept_of(job["id"]) == (0, 0)
    assert veil.call("GET", f"/api/jobs/{job['id']}").status_code == 404
    assert job["id"] not in {j["id"] for j in veil.call("GET", "/api/jobs").json()}
    assert not list((runtime.runtime().config.work_dir).glob(f"{job['id']}*"))
    # The version left in place starts no job again (a restarted poller ran it anew and
    # brought its thumbnails back: an attacker's review of the purge).
    again = veil.call("POST", "/api/jobs", json={"key": "forget.mp4"})
    assert again.status_code == 409, again.text
    assert "was purged; upload it again" in again.json()["detail"]
    assert kept_of(job["id"]) == (0, 0)

    # With input=true the input goes too, only the version the job read.
    job = finished_job(veil, "forget.mp4", clip.path.read_bytes() + b"2")
    answer = veil.call(
        "DELETE", f"/api/jobs/{job['id']}", params={"purge": "true", "input": "true"}
    )
    assert "input:forget.mp4" in answer.json()["objects"]
    assert "forget.mp4" not in veil.input.objects


def test_a_purge_keeps_a_later_jobs_output(veil, clip, tmp_path):
    first = finished_job(veil, "twice.mp4", clip.path.read_bytes())
    other = write_video(tmp_path / "other.mp4", Scene(frames=10, faces=(MovingFace(),)))
    second = finished_job(veil, "twice.mp4", other.path.read_bytes())
    output = veil.output.objects["twice.mp4"]
    answer = veil.call("DELETE", f"/api/jobs/{first['id']}", params={"purge": "true"})
    assert answer.json()["objects"] == []
    assert veil.output.objects["twice.mp4"] == output  # the second job's, untouched
    assert veil.call("GET", f"/api/jobs/{second['id']}/result").status_code == 200


def test_a_cancelled_jobs_leftovers_go_with_its_purge(veil, clip):
    # An attacker's review: cancelled mid-step, then purged at once, a job left its input
    # copy in the work folder, and the sweep kept it (its workflow was gone).
    veil.input.objects["left.mp4"] = clip.path.read_bytes() + b"left"
    job_id = veil.call("POST", "/api/jobs", json={"key": "left.mp4"}).json()["id"]
    work = runtime.runtime().config.work_dir
    (work / f"{job_id}-s3").mkdir(parents=True)
    (work / f"{job_id}-s3" / "input.mp4").write_bytes(b"a segment's copy")
    veil.call("DELETE", f"/api/jobs/{job_id}")
    veil.finished(job_id)
    answer = veil.call("DELETE", f"/api/jobs/{job_id}", params={"purge": "true"})
    assert answer.status_code == 202, answer.text
    assert not list(work.glob(f"{job_id}*"))
    # And on other machines, whose work folders the purge cannot reach, the sweep does.
    (work / job_id).mkdir()
    (work / "uploads").mkdir(exist_ok=True)
    heartbeats.Heartbeats(runtime.runtime().config.database_url, "sweeper", work_dir=work).sweep()
    assert not (work / job_id).exists()
    assert (work / "uploads").exists()  # not a job's


def test_a_running_job_is_not_purged(veil, clip):
    veil.input.objects["busy.mp4"] = clip.path.read_bytes() + b"busy"
    job_id = veil.call("POST", "/api/jobs", json={"key": "busy.mp4"}).json()["id"]
    answer = veil.call("DELETE", f"/api/jobs/{job_id}", params={"purge": "true"})
    assert answer.status_code == 409, answer.text
    assert "cancel it before purging" in answer.json()["detail"]
    veil.finished(job_id)


def test_retention_removes_inputs_then_jobs_once_they_are_old_enough(veil, clip):
    job = finished_job(veil, "old.mp4", clip.path.read_bytes() + b"old")
    retention = Retention(RetentionPolicy(inputs=3600, jobs=7 * 86400), runtime.kept())
    ended = job["updated_at"]
    assert retention.apply_once(now=ended + 60) == []
    assert "old.mp4" in veil.input.objects
    assert retention.apply_once(now=ended + 3600 + 60) == []
    assert "old.mp4" not in veil.input.objects  # the input after an hour
    assert "old.mp4" in veil.output.objects
    assert job["id"] in retention.apply_once(now=ended + 7 * 86400 + 60)
    assert "old.mp4" not in veil.output.objects
    assert jobs.find(job["id"]) is None


def finished_face_detection(veil: InProcess, key: str, video: bytes) -> str:
    """A face-detection job (the cloud API's) on ``key``, run to its end: its ID."""
    veil.input.objects[key] = video
    stat = veil.input.stat(key)
    job_id = jobs.face_detection_job_id("anonymous", key)
    request = FaceDetectionRequest(key=key, etag=stat.etag, size=stat.size, caller="anonymous")
    queue.submit_face_detection(job_id, request)
    deadline = time.monotonic() + 60
    while (status := jobs.find(job_id, jobs.FACE_DETECTION_WORKFLOW)) is None or (
        status.status != "SUCCESS"
    ):
        assert status is None or status.status in ("PENDING", "ENQUEUED"), status
        assert time.monotonic() < deadline, status
        time.sleep(0.2)
    return job_id


def test_a_face_detection_jobs_faces_go_with_a_purge(veil, clip):
    # Its faces file sat under .veil/face-detection/ for ever: no purge, no retention.
    job_id = finished_face_detection(veil, "detected.mp4", clip.path.read_bytes() + b"rk")
    faces = face_detection_key(job_id)
    assert faces in veil.output.objects
    answer = veil.call("DELETE", f"/api/jobs/{job_id}", params={"purge": "true"})
    assert answer.status_code == 202, answer.text
    assert answer.json()["objects"] == [f"output:{faces}"]
    assert faces not in veil.output.objects
    assert "detected.mp4" in veil.input.objects  # the caller's own, unless asked
    assert jobs.find(job_id, jobs.FACE_DETECTION_WORKFLOW) is None
    again = veil.call("DELETE", f"/api/jobs/{job_id}", params={"purge": "true"})
    assert again.status_code == 404, again.text


def test_retention_purges_face_detection_jobs_too(veil, clip):
    job_id = finished_face_detection(veil, "detected-old.mp4", clip.path.read_bytes() + b"rk2")
    retention = Retention(RetentionPolicy(jobs=7 * 86400), runtime.kept())
    assert job_id not in retention.apply_once()
    assert job_id in retention.apply_once(now=time.time() + 7 * 86400 + 60)
    assert face_detection_key(job_id) not in veil.output.objects
    assert jobs.find(job_id, jobs.FACE_DETECTION_WORKFLOW) is None
