"""Limits on the work one job may cost (issue 24): a tiny file can hold hours of 8K
frames, so jobs longer than ``--max-duration`` or faster than ``--max-fps`` fail at
Validate, in plain words, before any frame is decoded. In-process, as ``test_workflow``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from test_workflow import InProcess

from veil import service
from veil.synthetic import MovingFace, Scene, write_video


@pytest.fixture(scope="module")
def veil(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcess]:
    running = InProcess(tmp_path_factory.mktemp("limits"), max_duration=2.0, max_fps=50.0)
    yield running
    service.shutdown()


@pytest.mark.parametrize(
    ("frames", "fps", "status", "error"),
    [
        (30, 30, "SUCCEEDED", None),
        (90, 30, "FAILED", "too long (3 s of video; the limit is 2 s)"),
        (30, 60, "FAILED", "frame rate too high (60.0 fps; the limit is 50)"),
    ],
)
def test_jobs_beyond_the_limits_fail_at_validate(veil, tmp_path, frames, fps, status, error):
    scene = Scene(width=160, height=120, frames=frames, fps=fps, faces=(MovingFace(height=40),))
    key = f"clip-{frames}-{fps}.mp4"
    veil.input.objects[key] = write_video(tmp_path / key, scene, audio=False).path.read_bytes()
    job = veil.finished(veil.call("POST", "/api/jobs", json={"key": key}).json()["id"])
    assert job["status"] == status, job
    if error is not None:
        assert job["error"] == f"{key}: {error}"
        assert [s["name"] for s in job["steps"]] == ["Validate"]
        assert key not in veil.output.objects
