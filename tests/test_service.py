"""veil serve end to end: real server processes, real videos, real SeaweedFS."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from pictures import decoded_frames, same_pictures
from servers import SeaweedFS, VeilServer, free_port, serve_argv, wait_for

from veil.errors import OptionError
from veil.service import private_folder, stored_api_key
from veil.synthetic import MovingFace, Scene, SyntheticVideo, visible_faces, write_video

# Redact detects, tracks and anonymizes in one decode of the video.
STEPS = ["Validate", "Redact", "Audit", "Publish"]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def long_video(folder: Path, frames: int) -> SyntheticVideo:
    """A 960x540 clip long enough (several seconds of work) to act on a job mid-step."""
    scene = Scene(
        width=960,
        height=540,
        frames=frames,
        faces=(MovingFace(height=40, start=(0.3, 0.4), end=(0.6, 0.5)),),
    )
    return write_video(folder / "long.mp4", scene, audio=False)


def job_for(server: VeilServer, key: str, timeout: float = 60) -> dict:
    return wait_for(
        lambda: next((j for j in server.jobs() if j["key"] == key), None),
        timeout,
        f"a job for {key}",
    )


@pytest.fixture
def local_server(tmp_path):
    server = VeilServer(
        tmp_path / "data", "--max-size", "2000000", "--poll-interval", "0.3"
    ).start()
    yield server
    server.stop()


def test_folder_drop_gives_anonymized_video(local_server, clip):
    inbox, outbox = local_server.data / "input", local_server.data / "output"
    shutil.copy(clip.path, inbox / "party.mp4")
    job = local_server.wait_job(job_for(local_server, "party.mp4")["id"])
    assert job["status"] == "SUCCEEDED", job
    assert [s["name"] for s in job["steps"]] == STEPS
    assert all(s["started_at"] <= s["ended_at"] for s in job["steps"])
    assert [h["state"] for h in job["history"]] == ["QUEUED", "RUNNING", "SUCCEEDED"]
    assert visible_faces(outbox / "party.mp4", clip.scene) == []
    assert (outbox / "party.mp4.faces.json").stat().st_size > 0
    assert digest(inbox / "party.mp4") == digest(clip.path)
    # The result and faces are also downloadable from the API.
    assert (
        local_server.get(f"/api/jobs/{job['id']}/result").content
        == (outbox / "party.mp4").read_bytes()
    )
    assert local_server.get(f"/api/jobs/{job['id']}/faces").json()["Faces"]
    # The console shows the job happen, one line per event.
    events = [
        line.split("  ", 2)[1] for line in local_server.log().splitlines() if job["id"] in line
    ]
    assert events == ["queued", *STEPS, "SUCCEEDED"], local_server.log()


def test_job_gives_what_veil_blur_gives(local_server, clip, tmp_path):
    """One pass, as `veil blur --faces-out`: the same faces file and the same output."""
    import json

    from click.testing import CliRunner

    from veil.cli import main

    shutil.copy(clip.path, local_server.data / "input" / "same.mp4")
    job = local_server.wait_job(job_for(local_server, "same.mp4")["id"])
    assert job["status"] == "SUCCEEDED", job
    blurred, faces = tmp_path / "same.mp4", tmp_path / "same.faces.json"
    args = ["blur", str(clip.path), "-o", str(blurred), "--faces-out", str(faces), "-q"]
    assert CliRunner().invoke(main, args, catch_exceptions=False).exit_code == 0

    served = json.loads((local_server.data / "output" / "same.mp4.faces.json").read_text())
    local = json.loads(faces.read_text())
    assert served["VideoMetadata"] == local["VideoMetadata"]
    assert len(served["Faces"]) == len(local["Faces"]) > clip.scene.frames
    for a, b in zip(served["Faces"], local["Faces"], strict=True):
        assert a == b
    assert job["faces"] == len({f["Face"]["TrackId"] for f in local["Faces"]})
    # The boxes hidden in the video are the same too, frame by frame.
    same_pictures(local_server.data / "output" / "same.mp4", blurred)
    assert len(decoded_frames(blurred)) == clip.scene.frames


def test_privacy_report_beside_the_output_and_from_veil_blur(clip, tmp_path):
    """--write-report publishes the job's report as KEY.veil.json; veil blur --report
    writes the same report for the same file (same hashes, audit and settings)."""
    import json

    from click.testing import CliRunner

    from veil.cli import main

    server = VeilServer(tmp_path / "data", "--write-report", "--poll-interval", "0.3").start()
    try:
        shutil.copy(clip.path, server.data / "input" / "party.mp4")
        job = server.wait_job(job_for(server, "party.mp4")["id"])
        assert job["status"] == "SUCCEEDED", job
        served = server.get(f"/api/jobs/{job['id']}/report").json()
    finally:
        server.stop()
    outbox = server.data / "output"
    assert sorted(p.name for p in outbox.iterdir()) == [
        "party.mp4",
        "party.mp4.faces.json",
        "party.mp4.veil.json",
    ]
    assert json.loads((outbox / "party.mp4.veil.json").read_text()) == served
    assert served["input"] == {"name": "party.mp4", "sha256": digest(clip.path)}
    assert served["output"]["sha256"] == digest(outbox / "party.mp4")
    assert served["audit"]["passed"] and served["edits"] == []
    assert served["tracks"] == job["faces"] and served["frames"] == clip.scene.frames
    assert 0 < served["frames_analysed"] < clip.scene.frames

    out, report = tmp_path / "party.blurred.mp4", tmp_path / "party.veil.json"
    args = ["blur", str(clip.path), "-o", str(out), "--report", str(report)]
    blurred = CliRunner().invoke(main, args, catch_exceptions=False)
    assert blurred.exit_code == 0
    local = json.loads(report.read_text())
    # The console says what the report and the page say: the verdict and the coverage.
    audit = served["audit"]
    assert audit["verdict"] == "passed: no face left visible was found"
    assert audit["coverage"].startswith(f"{audit['frames_checked']} of {audit['frames_total']}")
    assert f"{out}: audit {audit['verdict']} ({audit['coverage']})" in blurred.stderr
    assert local["input"]["sha256"] == served["input"]["sha256"]
    assert local["output"]["sha256"] == digest(out)
    for field in ("detector", "audit", "frames", "frames_analysed", "tracks", "metadata_removed"):
        assert local[field] == served[field], field
    assert local["settings"] == served["settings"]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.mp4", b"", "empty.mp4: empty file (0 bytes)"),
        (
            "notes.mov",
            b"this is text, not a video\n",
            "notes.mov: not a video (unrecognised file format)",
        ),
        ("huge.mp4", 2_100_000, "huge.mp4: too large (2,100,000 bytes; the limit is 2,000,000)"),
    ],
    ids=["empty", "text", "too-large"],
)
def test_bad_objects_fail_in_plain_words(local_server, name, content, message):
    content = b"\0" * content if isinstance(content, int) else content
    (local_server.data / "input" / name).write_bytes(content)
    job = local_server.wait_job(job_for(local_server, name)["id"])
    assert job["status"] == "FAILED"
    assert job["error"] == message
    assert job["steps"][-1]["name"] == "Validate" and job["steps"][-1]["error"] == message
    assert not (local_server.data / "output" / name).exists()
    assert (local_server.data / "input" / name).read_bytes() == content
    # The console says it in one line, without DBOS's traceback of the same error.
    log = local_server.log()
    assert f"{job['id']}  FAILED  {message}" in log
    assert "Traceback" not in log and "Exception encountered" not in log, log


def test_an_upload_is_queued_once_on_the_console(local_server, clip):
    # The upload submits it, and the folder's poller then sees the same file: one job,
    # and one "queued" line.
    answer = local_server.post(
        "/api/uploads", files={"file": ("up.mp4", clip.path.read_bytes(), "video/mp4")}
    )
    assert answer.status_code == 202, answer.text
    job = local_server.wait_job(answer.json()["id"])
    assert job["status"] == "SUCCEEDED", job
    time.sleep(1.5)  # several listings of the folder since
    lines = [line for line in local_server.log().splitlines() if job["id"] in line]
    assert [line.split("  ", 2)[1] for line in lines] == ["queued", *STEPS, "SUCCEEDED"]


def test_only_videos_start_jobs(local_server, clip):
    inbox = local_server.data / "input"
    (inbox / "readme.txt").write_text("hello")
    (inbox / "folder.mp4").mkdir()
    shutil.copy(clip.path, inbox / "real.mkv")
    job_for(local_server, "real.mkv")
    time.sleep(1)
    assert {j["key"] for j in local_server.jobs()} == {"real.mkv"}


@pytest.mark.parametrize(
    "key", ["../../etc/passwd.mp4", "a/../../b.mp4", "/etc/x.mp4", "a\\..\\b.mp4", "a//b.mp4"]
)
def test_keys_cannot_leave_the_buckets(local_server, key):
    r = local_server.post("/api/jobs", json={"key": key})
    assert r.status_code == 400
    assert "invalid key" in r.json()["detail"]
    r = local_server.post("/api/uploads", params={"key": key}, files={"file": ("x.mp4", b"data")})
    assert r.status_code == 400
    assert not list(local_server.data.parent.glob("*.mp4"))


def test_upload_through_the_api(local_server, clip):
    r = local_server.post("/api/uploads", files={"file": ("phone.mp4", clip.path.read_bytes())})
    assert r.status_code == 202, r.text
    job = local_server.wait_job(r.json()["id"])
    assert job["status"] == "SUCCEEDED"
    assert visible_faces(local_server.data / "output" / "phone.mp4", clip.scene) == []
    assert local_server.get("/api/jobs/job-unknown").status_code == 404


def test_api_keys(tmp_path):
    key = "s3cret-api-key-16"
    server = VeilServer(tmp_path / "data", "--api-key", key, api_key=key).start()
    try:
        assert server.get("/api/jobs").status_code == 200
        assert httpx.get(server.url + "/api/jobs").status_code == 401
        assert (
            httpx.get(
                server.url + "/api/jobs", headers={"Authorization": "Bearer wrong"}
            ).status_code
            == 401
        )
    finally:
        server.stop()


def test_refuses_open_network_listen_without_keys(tmp_path):
    result = subprocess.run(
        serve_argv(tmp_path, free_port(), "--host", "0.0.0.0", "--no-auth", "--insecure"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "refusing to listen on 0.0.0.0 without API keys (--no-auth)" in result.stderr


def test_keys_are_on_by_default(tmp_path):
    # Issue 24: without a key, every local account was an administrator (another user's
    # curl downloaded originals and approved held jobs). Now veil serve makes its own key,
    # keeps it 0600 in the data folder, prints the page's URL with it, and keeps it.
    data = tmp_path / "data"
    server = VeilServer(data, own_key=True).start()
    try:
        key_file = data / "api-key"
        key = key_file.read_text().strip()
        assert len(key) >= 32
        assert key_file.stat().st_mode & 0o777 == 0o600
        assert f"#key={key}" in server.log()
        assert httpx.get(server.url + "/api/jobs").status_code == 401
        authorized = {"Authorization": f"Bearer {key}"}
        assert httpx.get(server.url + "/api/jobs", headers=authorized).status_code == 200
        assert httpx.get(server.url + "/").status_code == 200  # the page itself, to sign in
    finally:
        server.stop()
    server.start()  # a restart keeps the key
    try:
        assert key_file.read_text().strip() == key
        authorized = {"Authorization": f"Bearer {key}"}
        assert httpx.get(server.url + "/api/jobs", headers=authorized).status_code == 200
    finally:
        server.stop()


def test_no_auth_warns_at_every_start(tmp_path):
    server = VeilServer(tmp_path / "data").start()  # the tests' servers pass --no-auth
    try:
        assert "--no-auth: every user and process that can reach" in server.log()
        assert httpx.get(server.url + "/api/jobs").status_code == 200
        assert not (tmp_path / "data" / "api-key").exists()
    finally:
        server.stop()


def test_a_key_file_others_can_read_is_refused(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "api-key").write_text("k" * 40 + "\n")
    (data / "api-key").chmod(0o644)
    result = subprocess.run(
        serve_argv(data, free_port()),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "may be read by other users: chmod 600 it" in result.stderr
    assert "k" * 40 not in result.stderr


def test_kill_9_mid_job_then_restart_finishes_once(tmp_path):
    video = long_video(tmp_path, frames=600)
    scene = video.scene
    data = tmp_path / "data"
    server = VeilServer(data, "--poll-interval", "0.3").start()
    try:
        shutil.copy(video.path, data / "input" / "long.mp4")
        job_id = job_for(server, "long.mp4")["id"]

        def redacting() -> bool:
            job = server.job(job_id)
            assert job["status"] in ("QUEUED", "RUNNING"), job
            return bool(job["step"] == "Redact" and job["frames_done"] > 0)

        # Killed in the middle of the one pass that detects, tracks and blurs.
        wait_for(redacting, 120, "the Redact step to be under way", interval=0.05)
        killed_at = time.time()
    finally:
        server.kill()
    assert not (data / "output" / "long.mp4").exists()

    server = VeilServer(data, "--poll-interval", "0.3", port=server.port).start()
    try:
        job = server.wait_job(job_id, timeout=180)
    finally:
        server.stop()
    assert job["status"] == "SUCCEEDED", job
    steps = {s["name"]: s for s in job["steps"]}
    assert list(steps) == STEPS
    # Validate finished before the kill and was not run again; Redact, cut short, was
    # done again after the restart.
    assert steps["Validate"]["ended_at"] < killed_at < steps["Redact"]["ended_at"]
    assert [j["id"] for j in server_jobs_after(data)] == [job_id]
    assert visible_faces(data / "output" / "long.mp4", scene) == []
    assert not list((data / "output").glob("*partial*"))
    # The same video a clean run gives: every frame, at the same times.
    assert stream_pts(data / "output" / "long.mp4") == stream_pts(video.path)


def stream_pts(path: Path) -> list[int]:
    import av

    with av.open(str(path)) as container:
        return [frame.pts or 0 for frame in container.decode(video=0)]


def server_jobs_after(data: Path) -> list[dict]:
    server = VeilServer(data, "--poll-interval", "0").start()
    try:
        return server.jobs()
    finally:
        server.stop()


@pytest.fixture(scope="module")
def seaweed(seaweed):
    """The run's SeaweedFS (tests/conftest.py) with this module's buckets."""
    seaweed.buckets("veil-in", "veil-out", "hook-in", "hook-out")
    return seaweed


def s3_args(fs: SeaweedFS, src: str, dst: str) -> list[str]:
    return [
        "--input",
        f"s3://{src}/uploads",
        "--output",
        f"s3://{dst}/blurred",
        "--s3-endpoint",
        fs.endpoint,
    ]


def test_s3_poller_and_events(seaweed, clip, tmp_path):
    s3 = seaweed.client()
    server = VeilServer(
        tmp_path / "data", *s3_args(seaweed, "veil-in", "veil-out"), "--poll-interval", "0.5"
    ).start()
    try:
        s3.upload_file(str(clip.path), "veil-in", "uploads/team photo.mp4")
        s3.put_object(Bucket="veil-in", Key="uploads/notes.txt", Body=b"not a video")
        job = server.wait_job(job_for(server, "team photo.mp4")["id"])
        assert job["status"] == "SUCCEEDED", job
        out = tmp_path / "out.mp4"
        s3.download_file("veil-out", "blurred/team photo.mp4", str(out))
        assert visible_faces(out, clip.scene) == []
        keys = {o["Key"] for o in s3.list_objects_v2(Bucket="veil-out")["Contents"]}
        assert keys == {"blurred/team photo.mp4", "blurred/team photo.mp4.faces.json"}
        assert {j["key"] for j in server.jobs()} == {"team photo.mp4"}

        # The same S3 event delivered three times (AWS/MinIO format, key URL-encoded): one job.
        event = {
            "Records": [
                {
                    "eventName": "ObjectCreated:Put",
                    "s3": {
                        "bucket": {"name": "veil-in"},
                        "object": {"key": "uploads/team+photo.mp4", "size": 1},
                    },
                }
            ]
        }
        ids = {tuple(server.post("/events/s3", json=event).json()["jobs"]) for _ in range(3)}
        assert ids == {(job["id"],)}
        assert len(server.jobs()) == 1

        # A re-upload with new content is a new job.
        s3.upload_file(
            str(clip.path), "veil-in", "uploads/team photo.mp4", ExtraArgs={"Metadata": {"v": "2"}}
        )
        shutil.copy(clip.path, tmp_path / "v2.mp4")
        with (tmp_path / "v2.mp4").open("ab") as f:
            f.write(b"\0" * 16)  # same video, different bytes, different ETag
        s3.upload_file(str(tmp_path / "v2.mp4"), "veil-in", "uploads/team photo.mp4")
        wait_for(lambda: len(server.jobs()) == 2, 60, "a second job for the new content")
    finally:
        server.stop()


def test_seaweedfs_webhook_starts_jobs(seaweed, clip, tmp_path):
    s3 = seaweed.client()
    server = VeilServer(
        tmp_path / "data",
        *s3_args(seaweed, "hook-in", "hook-out"),
        "--poll-interval",
        "0",
        port=seaweed.webhook_port,
    ).start()
    try:
        s3.upload_file(str(clip.path), "hook-in", "uploads/cam/a.mp4")
        job = server.wait_job(job_for(server, "cam/a.mp4")["id"])
        assert job["status"] == "SUCCEEDED", job
        out = tmp_path / "out.mp4"
        s3.download_file("hook-out", "blurred/cam/a.mp4", str(out))
        assert visible_faces(out, clip.scene) == []
    finally:
        server.stop()


def test_workers_share_jobs_through_postgresql(postgres, clip, tmp_path):
    """A submitter (veil serve) and two veil worker processes on one PostgreSQL: six
    uploads, six jobs, each done exactly once, spread over the processes."""
    from servers import VeilWorker

    shared = [
        "--input",
        str(tmp_path / "in"),
        "--output",
        str(tmp_path / "out"),
        "--database",
        postgres.url,
    ]
    workers = [
        VeilWorker(tmp_path / f"w{i}", *shared, "--worker-id", f"worker-{i}") for i in range(2)
    ]
    server = VeilServer(tmp_path / "s", *shared, "--worker-id", "submitter", "--poll-interval", "0")
    try:
        for w in workers:
            w.start()
        server.start()
        ids = []
        for i in range(6):
            r = server.post(
                "/api/uploads", files={"file": (f"clip{i}.mp4", clip.path.read_bytes())}
            )
            assert r.status_code == 202, r.text
            ids.append(r.json()["id"])
        jobs = [server.wait_job(job_id, timeout=240) for job_id in ids]
    finally:
        server.stop()
        for w in workers:
            w.stop()
    assert [j["status"] for j in jobs] == ["SUCCEEDED"] * 6
    for i, job in enumerate(jobs):
        assert [s["name"] for s in job["steps"]] == STEPS
        assert visible_faces(tmp_path / "out" / f"clip{i}.mp4", clip.scene) == []
    import sqlalchemy as sa

    engine = sa.create_engine(postgres.url)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT workflow_uuid, executor_id FROM dbos.workflow_status")
        ).all()
        steps = conn.execute(
            sa.text(
                "SELECT workflow_uuid, count(*) FROM dbos.operation_outputs WHERE function_name = 'Redact' GROUP BY workflow_uuid"
            )
        ).all()
    engine.dispose()
    assert sorted(r[0] for r in rows) == sorted(ids)
    assert len({r[1] for r in rows}) >= 2, f"all jobs ran in one process: {rows}"
    assert all(count == 1 for _, count in steps) and len(steps) == 6


def test_storage_outage_mid_job_is_retried(tmp_path, clip):
    """The S3 server goes away while a job is redacting and comes back a few seconds
    later: Publish retries with backoff and the job succeeds, with one output."""
    fs = SeaweedFS(tmp_path / "fs")
    fs.start()
    server = None
    try:
        s3 = fs.client()
        s3.create_bucket(Bucket="flaky-in")
        s3.create_bucket(Bucket="flaky-out")
        video = long_video(tmp_path, frames=450)
        scene = video.scene
        server = VeilServer(
            tmp_path / "data", *s3_args(fs, "flaky-in", "flaky-out"), "--poll-interval", "0.5"
        ).start()
        s3.upload_file(str(video.path), "flaky-in", "uploads/long.mp4")
        job_id = job_for(server, "long.mp4")["id"]
        wait_for(
            lambda: server.job(job_id)["step"] == "Redact", 120, "the Redact step", interval=0.05
        )
        fs.stop()
        time.sleep(4)
        fs.start()
        job = server.wait_job(job_id, timeout=240)
        assert job["status"] == "SUCCEEDED", job
        out = tmp_path / "out.mp4"
        fs.client().download_file("flaky-out", "blurred/long.mp4", str(out))
        assert visible_faces(out, scene) == []
        assert len(server.jobs()) == 1
    finally:
        if server is not None:
            server.stop()
        fs.stop()


def test_completion_webhook_and_cancel(clip, tmp_path):
    import http.server
    import json
    import threading

    # The test's webhook is on loopback, where only the operator can let webhooks go.
    local_server = VeilServer(
        tmp_path / "data",
        "--max-size",
        "2000000",
        "--poll-interval",
        "0.3",
        "--allow-webhook-host",
        "127.0.0.1",
    ).start()

    received: list[dict] = []

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    hook = http.server.HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    try:
        # Submitted by key with a webhook: the hook hears the outcome.
        shutil.copy(
            clip.path, local_server.data / "input" / ".staging.mp4"
        )  # hidden: the poller skips it
        (local_server.data / "input" / ".staging.mp4").rename(
            local_server.data / "input" / "hooked.mp4"
        )
        url = f"http://127.0.0.1:{hook.server_address[1]}/done"
        r = local_server.post("/api/jobs", json={"key": "hooked.mp4", "webhook_url": url})
        assert r.status_code == 202, r.text
        job = local_server.wait_job(r.json()["id"])
        wait_for(lambda: received, 30, "the completion webhook")
        assert received[0]["job_id"] == job["id"] and received[0]["status"] == "SUCCEEDED"
        assert received[0]["output_key"] == "hooked.mp4"

        # A cancelled job stops before publishing anything.
        long_video(tmp_path, frames=450)
        r = local_server.post(
            "/api/uploads", files={"file": ("long.mp4", (tmp_path / "long.mp4").read_bytes())}
        )
        job_id = r.json()["id"]
        wait_for(lambda: local_server.job(job_id)["status"] == "RUNNING", 60, "the job to start")
        assert local_server.request_delete(f"/api/jobs/{job_id}").status_code == 202
        job = local_server.wait_job(job_id)
        assert job["status"] == "CANCELLED"
        time.sleep(2)
        assert not (local_server.data / "output" / "long.mp4").exists()
    finally:
        hook.shutdown()
        hook.server_close()
        local_server.stop()


def test_veil_jobs_purge_forgets_a_job_through_the_api(tmp_path, clip):
    data = tmp_path / "data"
    server = VeilServer(data, "--poll-interval", "0.3", own_key=True).start()
    try:
        key = (data / "api-key").read_text().strip()
        server.headers = {"Authorization": f"Bearer {key}"}
        shutil.copy(clip.path, data / "input" / "bye.mp4")
        job = server.wait_job(job_for(server, "bye.mp4")["id"])
        assert (data / "output" / "bye.mp4").exists()
        # The address and the key from the data folder, the address checked to be veil's.
        purge = [sys.executable, "-m", "veil.cli", "jobs", "purge", job["id"], "--input"]
        purge += ["--data", str(data)]
        done = subprocess.run(purge, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert f"purged {job['id']}: 3 stored objects" in done.stdout
        assert not (data / "output" / "bye.mp4").exists()
        assert not (data / "input" / "bye.mp4").exists()
        assert server.get(f"/api/jobs/{job['id']}").status_code == 404
        again = subprocess.run(purge, capture_output=True, text=True, timeout=60)
        assert again.returncode == 1 and "no such job" in again.stderr
    finally:
        server.stop()


def test_the_data_folder_and_key_are_this_users_alone(tmp_path, monkeypatch):
    # An attacker's review: another user could plant DATA/api-key (owned by them, 0600)
    # and so know the key, or a link there; veil.sqlite and work copies were 0644.
    data = tmp_path / "data"
    key = stored_api_key(data)
    assert data.stat().st_mode & 0o777 == 0o700
    assert stored_api_key(data) == key
    data.chmod(0o755)
    private_folder(data)
    assert data.stat().st_mode & 0o777 == 0o700
    monkeypatch.setattr(os, "getuid", lambda: os.geteuid() + 1)
    with pytest.raises(OptionError, match="belongs to another user"):
        stored_api_key(data)
    monkeypatch.undo()
    (data / "api-key").unlink()
    (data / "api-key").symlink_to(tmp_path / "chosen-by-someone-else")
    with pytest.raises(OptionError, match="cannot read the API key"):
        stored_api_key(data)


def test_veil_jobs_sends_the_key_to_no_other_program(tmp_path):
    # An attacker's review: with the default address, veil jobs purge sent the key to
    # whatever listened on port 8000, another user's program included.
    data = tmp_path / "data"
    stored_api_key(data)
    with socket.socket() as imposter:
        imposter.bind(("127.0.0.1", 0))
        imposter.listen()
        imposter.settimeout(0.5)
        port = imposter.getsockname()[1]
        gone = subprocess.run(
            [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
        )
        (data / "serve.json").write_text(
            json.dumps({"url": f"http://127.0.0.1:{port}", "port": port, "pid": int(gone.stdout)})
        )
        purge = [sys.executable, "-m", "veil.cli", "jobs", "purge", "job-x", "--data", str(data)]
        done = subprocess.run(purge, capture_output=True, text=True, timeout=60)
        assert done.returncode == 2, done.stderr
        assert "no longer listens on port" in done.stderr
        with pytest.raises(TimeoutError):
            imposter.accept()  # nothing came
