"""Old job, new bytes: a job's downloads and its retry stay tied to the version of the
video it read and the output it wrote, against a real ``veil serve``."""

from __future__ import annotations

import pytest
from servers import VeilServer

from veil.synthetic import MovingFace, Scene, write_video


@pytest.fixture
def server(tmp_path):
    srv = VeilServer(tmp_path / "data", "--poll-interval", "0").start()
    yield srv
    srv.stop()


def upload(server: VeilServer, data: bytes) -> str:
    r = server.post("/api/uploads", files={"file": ("cam.mp4", data)})
    assert r.status_code == 202, r.text
    return str(r.json()["id"])


def test_old_job_never_serves_new_bytes(server, clip, tmp_path):
    second = write_video(
        tmp_path / "second.mp4",
        Scene(width=160, height=120, frames=10, faces=(MovingFace(height=40),)),
        audio=False,
    )
    first_bytes, second_bytes = clip.path.read_bytes(), second.path.read_bytes()
    old = upload(server, first_bytes)
    assert server.wait_job(old)["status"] == "SUCCEEDED"
    old_result = server.get(f"/api/jobs/{old}/result").content
    new = upload(server, second_bytes)
    assert new != old
    assert server.wait_job(new)["status"] == "SUCCEEDED"

    for what in ("result", "faces", "input"):
        r = server.get(f"/api/jobs/{old}/{what}")
        assert r.status_code == 410, (what, r.status_code)
        assert "newer upload of cam.mp4" in r.json()["detail"]
    assert server.get(f"/api/jobs/{new}/input").content == second_bytes
    new_result = server.get(f"/api/jobs/{new}/result").content
    assert new_result != old_result and len(new_result) > 1000


def test_failed_job_is_not_retried_on_bytes_it_never_read(server, clip):
    old = upload(server, b"not a video yet")
    assert server.wait_job(old)["status"] == "FAILED"
    new = upload(server, clip.path.read_bytes())
    r = server.post(f"/api/jobs/{old}/retry")
    assert r.status_code == 409, r.text
    assert "replaced by a newer upload" in r.json()["detail"]
    assert server.wait_job(new)["status"] == "SUCCEEDED"
