"""A full disk under a real ``veil serve``: its work folder is a small tmpfs. The job
fails with a plain message (no server path), nothing half-written is published, an
upload that does not fit is refused without leftovers, and the service goes on serving."""

from __future__ import annotations

import subprocess

import httpx
import pytest
from servers import VeilServer

from veil.synthetic import MovingFace, Scene, write_video


@pytest.fixture
def small_work_folder(tmp_path, clip):
    """A work folder with room for the clip's working copy and little more."""
    work = tmp_path / "data" / "work"
    work.mkdir(parents=True)
    size_kib = clip.path.stat().st_size // 1024 + 24
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_kib}k", "tmpfs", str(work)], check=True
    )
    yield work
    subprocess.run(["umount", "-l", str(work)], check=True)


def test_full_work_folder(small_work_folder, clip, tmp_path):
    data = small_work_folder.parent
    server = VeilServer(data, "--poll-interval", "0").start()
    try:
        r = server.post("/api/uploads", files={"file": ("big.mp4", clip.path.read_bytes())})
        assert r.status_code == 202, r.text
        job = server.wait_job(r.json()["id"])
        assert job["status"] == "FAILED"
        assert "no space left on device" in job["error"].lower(), job["error"]
        assert str(data) not in job["error"]
        assert list((data / "output").iterdir()) == []  # nothing half-written published
        assert list(small_work_folder.iterdir()) in ([], [small_work_folder / "uploads"])

        # An upload larger than the room left is refused, and leaves nothing behind.
        big = b"\0" * (2 * clip.path.stat().st_size)
        r = server.post("/api/uploads", files={"file": ("huge.mp4", big)})
        assert r.status_code == 507, r.text
        assert "cannot store the upload" in r.json()["detail"]
        assert not (data / "input" / "huge.mp4").exists()
        assert list((small_work_folder / "uploads").iterdir()) == []

        # The service is still up and a video that fits goes through.
        tiny = write_video(
            tmp_path / "tiny.mp4",
            Scene(width=64, height=48, frames=4, faces=(MovingFace(height=24),)),
            audio=False,
        )
        r = server.post("/api/uploads", files={"file": ("tiny.mp4", tiny.path.read_bytes())})
        assert r.status_code == 202, r.text
        assert server.wait_job(r.json()["id"])["status"] == "SUCCEEDED"
        assert httpx.get(f"{server.url}/healthz").status_code == 200
    finally:
        server.stop()
