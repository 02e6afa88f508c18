"""The job workflow and the HTTP API in-process: ``create_app`` on in-memory buckets,
called through ``httpx.ASGITransport``, with the workflows running on DBOS over a real
SQLite file. Fast enough to cover every endpoint; the real servers (SeaweedFS,
PostgreSQL, Chromium, a ``veil serve`` process) are in ``test_service.py`` and
``tests/api/``."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import av
import httpx
import pytest
from conftest import SMALL_SCENE
from harness import ENDED, InProcess

from veil import queue, runtime
from veil.errors import DatabaseError, StorageError
from veil.jobs import JobRequest
from veil.pipeline import BlurOptions
from veil.segment_jobs import SegmentDone
from veil.steps import restored
from veil.synthetic import MovingFace, Scene, SyntheticVideo, visible_faces, write_video
from veil.workflow import Checked, Validated

STEPS = ["Validate", "Redact", "Audit", "Publish"]


@pytest.fixture(scope="module")
def veil(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcess]:
    running = InProcess(tmp_path_factory.mktemp("in-process"))
    yield running
    runtime.shutdown()


def test_a_job_runs_its_steps_and_publishes_a_hidden_video(veil, clip: SyntheticVideo, tmp_path):
    veil.input.objects["party.mp4"] = clip.path.read_bytes()
    answer = veil.call("POST", "/api/jobs", json={"key": "party.mp4"})
    assert answer.status_code == 202, answer.text
    job = veil.finished(answer.json()["id"])
    assert job["status"] == "SUCCEEDED", job
    assert [s["name"] for s in job["steps"]] == STEPS
    assert [h["state"] for h in job["history"]] == ["QUEUED", "RUNNING", "SUCCEEDED"]
    assert set(veil.output.objects) == {"party.mp4", "party.mp4.faces.json"}
    published = tmp_path / "published.mp4"
    published.write_bytes(veil.output.objects["party.mp4"])
    assert visible_faces(published, SMALL_SCENE) == []
    assert veil.input.objects["party.mp4"] == clip.path.read_bytes()  # the input untouched

    # The same object version is the same job, however often it is submitted.
    again = veil.call("POST", "/api/jobs", json={"key": "party.mp4"})
    assert again.json()["id"] == job["id"]
    listed = veil.call("GET", "/api/jobs").json()
    assert [j["id"] for j in listed].count(job["id"]) == 1
    result = veil.call("GET", f"/api/jobs/{job['id']}/result")
    assert result.content == veil.output.objects["party.mp4"]
    # Saved as veil blur names its output, not under the original's name.
    assert 'filename="party.blurred.mp4"' in result.headers["content-disposition"]
    # Only a failed or cancelled job is retried.
    retry = veil.call("POST", f"/api/jobs/{job['id']}/retry")
    assert retry.status_code == 409
    assert "only failed or cancelled jobs" in retry.json()["detail"]


def test_a_broken_video_fails_its_job_in_plain_words_and_publishes_nothing(veil):
    veil.input.objects["broken.mp4"] = b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 400
    job = veil.finished(veil.call("POST", "/api/jobs", json={"key": "broken.mp4"}).json()["id"])
    assert job["status"] == "FAILED"
    assert job["error"].startswith("broken.mp4: ")
    assert "work" not in job["error"]  # names the key, not the server's copy
    assert not any(key.startswith("broken") for key in veil.output.objects)
    assert veil.input.objects["broken.mp4"].startswith(b"\x00\x00\x00\x18ftyp")

    # Retried once at a time: five clicks made five jobs (issue 24).
    first = veil.call("POST", f"/api/jobs/{job['id']}/retry")
    assert first.status_code == 202, first.text
    again = veil.call("POST", f"/api/jobs/{job['id']}/retry")
    assert again.status_code == 409, again.text
    assert f"is being retried already, as {first.json()['id']}" in again.json()["detail"]
    assert veil.finished(first.json()["id"])["status"] == "FAILED"
    later = veil.call("POST", f"/api/jobs/{job['id']}/retry")
    assert later.status_code == 202, later.text  # once that retry has ended
    veil.finished(later.json()["id"])


@pytest.mark.parametrize(
    ("method", "url", "body", "status"),
    [
        ("GET", "/api/jobs/job-unknown", None, 404),
        ("DELETE", "/api/jobs/job-unknown", None, 404),
        ("POST", "/api/jobs/job-unknown/retry", None, 404),
        ("POST", "/api/jobs", {"key": "notes.txt"}, 400),
        ("POST", "/api/jobs", {"key": "../outside.mp4"}, 400),
        ("POST", "/api/jobs", {"key": "missing.mp4"}, 404),
        ("GET", "/api/jobs?limit=0", None, 422),
        ("GET", "/api/jobs/job-unknown/review", None, 404),
        ("GET", "/api/jobs/job-unknown/report", None, 404),
        ("GET", "/api/jobs/job-unknown/tracks/0/thumbnail", None, 404),
        ("POST", "/api/jobs/job-unknown/review", {"edits": [], "renders": 0}, 404),
    ],
)
def test_bad_requests_get_a_4xx_that_says_why(veil, method, url, body, status):
    answer = veil.call(method, url, json=body) if body else veil.call(method, url)
    assert answer.status_code == status, answer.text
    assert answer.json()["detail"]


def _rerender(veil: InProcess, job_id: str, body: dict[str, Any]) -> dict[str, Any]:
    answer = veil.call("POST", f"/api/jobs/{job_id}/review", json=body)
    assert answer.status_code == 202, answer.text
    assert answer.json()["render_id"] == f"{job_id}-r{body['renders'] + 1}"
    return veil.finished(job_id)


# Two people on screen the whole clip: one who agreed to be shown, one who did not.
REVIEW_SCENE = Scene(
    width=320,
    height=240,
    frames=60,
    faces=(
        MovingFace(photo="astronaut", height=80, start=(0.3, 0.45), end=(0.32, 0.45)),
        MovingFace(photo="grace_hopper", height=48, start=(0.75, 0.5), end=(0.7, 0.55)),
    ),
)


def test_review_a_published_job_a_shown_face_is_held_until_approved(veil, tmp_path):
    clip = write_video(tmp_path / "review.mp4", REVIEW_SCENE)
    veil.input.objects["review.mp4"] = clip.path.read_bytes()
    job = veil.finished(veil.call("POST", "/api/jobs", json={"key": "review.mp4"}).json()["id"])
    job_id = job["id"]
    assert job["status"] == "SUCCEEDED", job
    assert job["audit"]["passed"] and job["audit"]["frames_checked"] > 0
    assert job["reviewable"] and job["renders"] == 0 and job["edits"] == []
    report = veil.call("GET", f"/api/jobs/{job_id}/report").json()
    assert report["audit"] == job["audit"] and report["edits"] == []
    assert report["input"]["sha256"] == hashlib.sha256(clip.path.read_bytes()).hexdigest()
    first = veil.output.objects["review.mp4"]
    assert report["output"]["sha256"] == hashlib.sha256(first).hexdigest()

    review = veil.call("GET", f"/api/jobs/{job_id}/review").json()
    assert len(review["tracks"]) == 2
    biggest = max(review["tracks"], key=lambda t: t["box"]["height"])
    picture = veil.call("GET", f"/api/jobs/{job_id}/tracks/{biggest['id']}/thumbnail")
    assert picture.status_code == 200
    assert picture.headers["content-type"] == "image/jpeg"
    assert picture.content[:2] == b"\xff\xd8"
    assert "no-store" in picture.headers["cache-control"]
    assert veil.call("GET", f"/api/jobs/{job_id}/tracks/9999/thumbnail").status_code == 404

    # A reviewer leaves the biggest face visible: its audit finds it, so the re-render is
    # held and the first output stays published.
    show = [{"action": "show", "track": biggest["id"], "note": "agreed to be filmed"}]
    held = _rerender(veil, job_id, {"edits": show, "renders": 0})
    assert held["status"] == "NEEDS_REVIEW", held
    assert held["audit"]["findings"] and held["edits"] == show and held["renders"] == 1
    assert [s["name"] for s in held["steps"]] == [*STEPS, "Rerender", "Audit"]
    assert veil.output.objects["review.mp4"] == first
    # What the audit held is kept for the reviewer to watch, under veil's own folder.
    assert held["held_key"] == f".veil/held/{job_id}.mp4"
    watched = veil.call("GET", f"/api/jobs/{job_id}/held")
    assert watched.status_code == 200 and watched.content == veil.output.objects[held["held_key"]]
    assert watched.content != first
    # Who asked is in the report: no name given, and no key (this service asks none).
    assert held["report"]["reviewed_by"] == {
        "name": None,
        "api_key": None,
        "asked_at": held["report"]["reviewed_by"]["asked_at"],
        "approved": False,
    }
    odd = {"edits": show, "renders": 1, "reviewer": "Ada\nLovelace"}
    refused = veil.call("POST", f"/api/jobs/{job_id}/review", json=odd)
    assert refused.status_code == 422 and "reviewer" in refused.text
    stale = veil.call("POST", f"/api/jobs/{job_id}/review", json={"edits": [], "renders": 0})
    assert stale.status_code == 409 and "re-rendered by someone else" in stale.text
    bad = veil.call(
        "POST", f"/api/jobs/{job_id}/review", json={"edits": [{"action": "x"}], "renders": 1}
    )
    assert bad.status_code == 400 and "edit 0: unknown action" in bad.text

    # Approved as it is: published with that face visible, and the report says why.
    approved = _rerender(
        veil, job_id, {"edits": show, "renders": 1, "approve": True, "reviewer": " Ada L. "}
    )
    assert approved["status"] == "SUCCEEDED", approved
    assert approved["accepted_findings"] == len(approved["audit"]["findings"]) > 0
    published = tmp_path / "approved.mp4"
    published.write_bytes(veil.output.objects["review.mp4"])
    assert {face for _, face, _ in visible_faces(published, REVIEW_SCENE)} == {0}
    report = veil.call("GET", f"/api/jobs/{job_id}/report").json()
    assert report["edits"] == show and report["redacted_from"] == "reviewed detections"
    assert not report["audit"]["passed"]
    assert report["accepted_findings"] == approved["accepted_findings"]
    assert report["reviewed_by"]["name"] == "Ada L." and report["reviewed_by"]["approved"]
    assert held["held_key"] not in veil.output.objects  # published: nothing held any more
    assert veil.call("GET", f"/api/jobs/{job_id}/held").status_code == 409
    faces = json.loads(veil.output.objects["review.mp4.faces.json"])
    assert biggest["id"] not in {f["Face"].get("TrackId") for f in faces["Faces"]}

    # A re-render cancelled before it ran is retried, with the same edits.
    answer = veil.call("POST", f"/api/jobs/{job_id}/review", json={"edits": [], "renders": 2})
    assert answer.status_code == 202, answer.text
    cancelled = veil.call("DELETE", f"/api/jobs/{job_id}").json()
    assert veil.finished(job_id)["status"] == "CANCELLED", cancelled
    assert veil.output.objects["review.mp4"] == published.read_bytes()  # still the approved
    retried = veil.call("POST", f"/api/jobs/{job_id}/retry")
    assert retried.status_code == 202 and retried.json() == {"id": job_id}, retried.text
    again = veil.finished(job_id)
    # Edits replace, not add to, the earlier ones: with none, every face is hidden again.
    assert again["status"] == "SUCCEEDED" and again["audit"]["passed"], again
    assert again["renders"] == 4 and again["edits"] == []
    assert again["accepted_findings"] is None  # a clean re-render: nothing accepted now
    published.write_bytes(veil.output.objects["review.mp4"])
    assert visible_faces(published, REVIEW_SCENE) == []
    history = [h["state"] for h in again["history"]]
    assert history[:3] == ["QUEUED", "RUNNING", "SUCCEEDED"] and history[-1] == "SUCCEEDED"


def test_cancel_stops_the_running_step_within_seconds(veil, tmp_path):
    # Issue 24: a cancelled job's step (and a segment) ran on for minutes; each step now
    # looks about once a second whether its job was cancelled.
    scene = Scene(width=640, height=360, frames=600, faces=(MovingFace(height=48),))
    veil.input.objects["stop.mp4"] = write_video(tmp_path / "stop.mp4", scene).path.read_bytes()
    job_id = veil.call("POST", "/api/jobs", json={"key": "stop.mp4"}).json()["id"]
    deadline = time.monotonic() + 60
    while (job := veil.call("GET", f"/api/jobs/{job_id}").json())["step"] != "Redact" or not job[
        "frames_done"
    ]:
        assert time.monotonic() < deadline, job
        time.sleep(0.1)
    assert veil.call("DELETE", f"/api/jobs/{job_id}").status_code == 202
    time.sleep(2.5)  # a check a second, and the frames already in the pipeline
    stopped_at = veil.call("GET", f"/api/jobs/{job_id}").json()["frames_done"]
    time.sleep(1.5)
    job = veil.call("GET", f"/api/jobs/{job_id}").json()
    assert job["status"] == "CANCELLED", job
    assert job["frames_done"] == stopped_at < scene.frames, (stopped_at, job["frames_done"])
    assert "stop.mp4" not in veil.output.objects


def test_review_drafts_are_kept_on_the_server_until_a_re_render(veil, clip):
    # Issue 26: edits vanished on reload. A draft is saved as it is made, seen by any tab,
    # refused when another save came first, and becomes the re-render's edits.
    veil.input.objects["draft.mp4"] = clip.path.read_bytes() + b"draft"
    job = veil.finished(veil.call("POST", "/api/jobs", json={"key": "draft.mp4"}).json()["id"])
    job_id = job["id"]
    assert veil.call("GET", f"/api/jobs/{job_id}/review").json()["draft"] is None
    keep = [{"action": "show", "track": 0}]
    box = {"left": 0.1, "top": 0.1, "width": 0.2, "height": 0.2}
    added = [*keep, {"action": "add", "start_ms": 0, "end_ms": 500, "box": box}]

    def put(edits: list[dict[str, Any]], version: int) -> httpx.Response:
        body = {"edits": edits, "version": version}
        return veil.call("PUT", f"/api/jobs/{job_id}/review/draft", json=body)

    first = put(keep, 0)
    assert first.status_code == 200, first.text
    assert first.json()["version"] == 1 and first.json()["edits"] == keep
    other_tab = put(added, 0)  # started from no draft, but there is one now
    assert other_tab.status_code == 409 and "saved by someone else" in other_tab.text
    assert put(added, 1).json()["version"] == 2
    assert put(keep, 1).status_code == 409  # an older version of the draft
    assert put([{"action": "show", "track": 999}], 2).status_code == 400
    seen = veil.call("GET", f"/api/jobs/{job_id}/review").json()["draft"]
    assert seen["version"] == 2 and seen["edits"] == added
    assert seen["saved_at"] <= time.time()

    _rerender(veil, job_id, {"edits": added, "renders": 0})
    again = veil.call("GET", f"/api/jobs/{job_id}/review").json()
    assert again["draft"] is None and again["edits"] == added


def test_the_tracked_boxes_are_served_for_drawing_on_the_picture(veil, clip):
    veil.input.objects["boxes.mp4"] = clip.path.read_bytes() + b"boxes"
    job = veil.finished(veil.call("POST", "/api/jobs", json={"key": "boxes.mp4"}).json()["id"])
    faces = json.loads(veil.output.objects["boxes.mp4.faces.json"])["Faces"]
    whole = veil.call("GET", f"/api/jobs/{job['id']}/review/boxes?from_ms=0&to_ms=100000").json()
    assert len(whole["boxes"]) == len(faces) > 0 and whole["to_ms"] == 100000
    first = whole["boxes"][0]
    assert set(first) == {"at_ms", "track", "box", "score"} and 0 < first["score"] <= 1
    part = veil.call("GET", f"/api/jobs/{job['id']}/review/boxes?from_ms=500&to_ms=900").json()
    assert part["boxes"] and all(500 <= b["at_ms"] <= 900 for b in part["boxes"])
    assert part["boxes"] == [b for b in whole["boxes"] if 500 <= b["at_ms"] <= 900]
    backwards = veil.call("GET", f"/api/jobs/{job['id']}/review/boxes?from_ms=900&to_ms=500")
    assert backwards.status_code == 400


def test_a_job_whose_input_was_replaced_meanwhile_publishes_nothing(veil, tmp_path):
    # Publish checks what it replaces (issue 24): an older version's job finishing after a
    # newer upload must not put the old video (or its faces file) back over the new one.
    scene = Scene(width=640, height=360, frames=240, faces=(MovingFace(height=48),))
    old = write_video(tmp_path / "old.mp4", scene).path.read_bytes()
    veil.input.objects["swap.mp4"] = old
    job_id = veil.call("POST", "/api/jobs", json={"key": "swap.mp4"}).json()["id"]
    deadline = time.monotonic() + 60
    while not veil.call("GET", f"/api/jobs/{job_id}").json()["frames_done"]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    veil.input.objects["swap.mp4"] = old + b"a newer upload"
    job = veil.finished(job_id)
    assert job["status"] == "FAILED", job
    assert "replaced by a newer upload while this job ran; nothing was published" in job["error"]
    assert "swap.mp4" not in veil.output.objects
    assert "swap.mp4.faces.json" not in veil.output.objects
    # The job says its input is gone (issue 26), so its page closes review and retry.
    assert job["superseded"] is True
    assert veil.call("GET", "/api/jobs").json()[0]["superseded"] is None  # lists: not checked
    newer = veil.call("POST", "/api/jobs", json={"key": "swap.mp4"}).json()["id"]
    assert newer != job_id and veil.call("GET", f"/api/jobs/{newer}").json()["superseded"] is False


def test_a_step_that_gives_up_says_why(veil, clip, monkeypatch):
    # The job database stays unreachable during Redact: the step retries (1, 2, 4 s),
    # then gives up. The job used to name only "Step Redact has exceeded its maximum of
    # 4 retries", never the cause the log had.
    progress = runtime.runtime().progress
    recorded = progress.set

    def unreachable(job_id: str, step: str, *args: Any, **kwargs: Any) -> None:
        if step == "Redact":
            raise DatabaseError("job database", None, "connection refused", transient=True)
        recorded(job_id, step, *args, **kwargs)

    monkeypatch.setattr(progress, "set", unreachable)
    veil.input.objects["stuck.mp4"] = clip.path.read_bytes() + b"stuck"
    job = veil.finished(veil.call("POST", "/api/jobs", json={"key": "stuck.mp4"}).json()["id"])
    assert job["status"] == "FAILED", job
    assert job["error"] == (
        "Redact gave up after 4 tries: job database: connection refused;"
        " retry the job once that is fixed"
    )


def test_a_retrying_step_shows_its_cause_until_it_gets_through(veil, clip, monkeypatch):
    # Issue 25: while a step waits to try again, the job says which step and why, in
    # plain words, with when the next try is due; once through, it says nothing more.
    upload = veil.output.upload
    faults: list[str] = []

    def not_writable(path: Path, key: str) -> Any:
        if key == "shy.mp4" and len(faults) < 2:
            faults.append(key)
            raise StorageError("output store", key, "Operation not permitted", transient=True)
        return upload(path, key)

    monkeypatch.setattr(veil.output, "upload", not_writable)
    veil.input.objects["shy.mp4"] = clip.path.read_bytes() + b"shy"
    job_id = veil.call("POST", "/api/jobs", json={"key": "shy.mp4"}).json()["id"]
    seen = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        job = veil.call("GET", f"/api/jobs/{job_id}").json()
        if job["retrying"]:
            seen.append((job["retrying"], time.time()))
        if job["status"] in ENDED:
            break
        time.sleep(0.1)
    assert job["status"] == "SUCCEEDED", job
    assert job["retrying"] is None
    assert seen, "the job never said it was retrying"
    retry, when = seen[0]
    assert retry["step"] == "Publish"
    assert retry["cause"] == "output store/shy.mp4: Operation not permitted"
    assert when - 1 <= retry["retry_at"] <= when + 4
    assert veil.output.objects["shy.mp4"]


def test_a_job_runs_with_the_options_it_was_queued_with(veil, clip: SyntheticVideo, tmp_path):
    # A job queued by a process with other flags (here: solid boxes 1.6 times the face)
    # is finished by this one, whose flags are the defaults. It ran, and its report
    # said, the options of whichever process ran each step.
    queued_with = BlurOptions(mode="solid", box_scale=1.6)
    veil.input.objects["flags.mp4"] = clip.path.read_bytes() + b"flags"
    stat = veil.input.stat("flags.mp4")
    request = JobRequest("flags.mp4", stat.etag, stat.size, options=asdict(queued_with))
    job = veil.finished(queue.submit(request))
    assert job["status"] == "SUCCEEDED", job
    report = veil.call("GET", f"/api/jobs/{job['id']}/report").json()
    assert report["settings"]["mode"] == "solid" and report["settings"]["box_scale"] == 1.6
    published = tmp_path / "flags.mp4"
    published.write_bytes(veil.output.objects["flags.mp4"])
    assert visible_faces(published, SMALL_SCENE) == []
    # Solid boxes: the middle of a face is one flat colour, as a blur's is not.
    _, boxes, _ = SMALL_SCENE.render(10)
    with av.open(str(published)) as container:
        picture = next(
            f.to_ndarray(format="gray") for n, f in enumerate(container.decode(video=0)) if n == 10
        )
    x1, y1, x2, y2 = (int(v) for v in boxes[0])
    middle = picture[
        (3 * y1 + y2) // 4 : (y1 + 3 * y2) // 4, (3 * x1 + x2) // 4 : (x1 + 3 * x2) // 4
    ]
    assert float(middle.std()) < 2.0


def test_a_step_result_recorded_by_an_older_veil_is_replayed_as_its_type():
    # Steps returned dicts before they returned dataclasses; DBOS replays a resumed job's
    # finished steps from their records, so an old record must still read.
    old = {"width": 640, "height": 360, "frames": 90, "duration": 3.0, "segments": None}
    assert restored(Validated, old) == Validated(640, 360, 90, 3.0, None)
    new = Validated(640, 360, 90, 3.0, None)
    assert restored(Validated, new) is new
    done = restored(SegmentDone, {"run": {"index": 0}, "audit": None})  # before versions
    assert done == SegmentDone(run={"index": 0}, audit=None, versions={})
    kept = {"audit": {"passed": True}, "report": {}, "hold": False, "later": 1}
    assert restored(Checked, kept) == Checked({"passed": True}, {}, False)


def test_a_photo_is_a_job_with_review(veil, tmp_path):
    """Issue 27: a photo through the same workflow (validate, redact, audit, publish), its
    faces kept for review; a person kept visible is held by the audit, then approved."""
    import io

    import numpy as np
    from PIL import Image

    from veil.photo_corpus import group_photo, hidden_badly

    photo = group_photo(7, 480, 360, (40.0, 64.0, 96.0))
    source = io.BytesIO()
    exif = Image.Exif()
    exif[0x013B] = "Ada Lovelace"  # Artist: names who took it
    Image.fromarray(photo.picture).save(source, format="JPEG", quality=92, exif=exif)
    veil.input.objects["party/group.jpg"] = source.getvalue()
    job = veil.finished(
        veil.call("POST", "/api/jobs", json={"key": "party/group.jpg"}).json()["id"]
    )
    assert job["status"] == "SUCCEEDED", job
    assert [s["name"] for s in job["steps"]] == STEPS
    assert job["audit"]["passed"] and job["audit"]["frames_checked"] == 1
    published = np.asarray(Image.open(io.BytesIO(veil.output.objects["party/group.jpg"])))
    assert hidden_badly(photo, published) == []
    assert Image.open(io.BytesIO(veil.output.objects["party/group.jpg"])).getexif() == {}
    faces = json.loads(veil.output.objects["party/group.jpg.faces.json"])
    assert faces["VideoMetadata"]["FrameRate"] == 0 and len(faces["Faces"]) >= 3
    assert "EXIF:Artist" in faces["MetadataRemoved"]["Tags"]
    report = veil.call("GET", f"/api/jobs/{job['id']}/report").json()
    assert report["frames"] == 1 and report["video"]["codec"] == "jpeg"

    # Review: each face a track with a thumbnail; keep the largest visible.
    review = veil.call("GET", f"/api/jobs/{job['id']}/review").json()
    biggest = max(review["tracks"], key=lambda t: t["box"]["height"])
    thumbnail = veil.call("GET", f"/api/jobs/{job['id']}/tracks/{biggest['id']}/thumbnail")
    assert thumbnail.status_code == 200 and thumbnail.content[:2] == b"\xff\xd8"
    show = [{"action": "show", "track": biggest["id"]}]
    held = _rerender(veil, job["id"], {"edits": show, "renders": 0})
    assert held["status"] == "NEEDS_REVIEW", held
    assert held["held_key"] == f".veil/held/{job['id']}.jpg"
    # What shows faces is never kept by a browser; a photo is shown as veil turned it.
    watched = veil.call("GET", f"/api/jobs/{job['id']}/held")
    assert watched.status_code == 200 and "no-store" in watched.headers["cache-control"]
    view = veil.call("GET", f"/api/jobs/{job['id']}/input?upright=1")
    assert "no-store" in view.headers["cache-control"]
    assert Image.open(io.BytesIO(view.content)).size == (480, 360)
    approved = _rerender(veil, job["id"], {"edits": show, "renders": 1, "approve": True})
    assert approved["status"] == "SUCCEEDED", approved
    published = np.asarray(Image.open(io.BytesIO(veil.output.objects["party/group.jpg"])))
    assert [face for face, _, _ in hidden_badly(photo, published)] == [2]  # the 96 px one

    # A box added over the picture (its times do not matter: a photo is one moment).
    added = [
        {
            "action": "add",
            "box": {"left": 0.0, "top": 0.0, "width": 0.2, "height": 0.2},
            "start_ms": 0,
            "end_ms": 5000,
        }
    ]
    again = _rerender(veil, job["id"], {"edits": added, "renders": 2})
    assert again["status"] == "SUCCEEDED", again
    faces = json.loads(veil.output.objects["party/group.jpg.faces.json"])
    assert len([f for f in faces["Faces"] if f["Face"]["Confidence"] == 100.0]) == 1

    # Held again, then the photo is deleted: what the audit held goes with it.
    held = _rerender(veil, job["id"], {"edits": show, "renders": 3})
    assert held["status"] == "NEEDS_REVIEW", held
    del veil.input.objects["party/group.jpg"]
    assert veil.call("GET", f"/api/jobs/{job['id']}/held").status_code == 410
