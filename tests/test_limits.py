"""Limits on the work one job may cost (issue 24): a tiny file can hold hours of 8K
frames, so jobs longer than ``--max-duration``, faster than ``--max-fps`` or holding more
megapixels a second than ``--max-pixel-rate`` fail at Validate, in plain words, before any frame is decoded. In-process, as ``test_workflow``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from harness import InProcess

from veil import runtime
from veil.synthetic import MovingFace, Scene, write_video


@pytest.fixture(scope="module")
def veil(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcess]:
    running = InProcess(
        tmp_path_factory.mktemp("limits"), max_duration=2.0, max_fps=50.0, max_pixel_rate=1.0
    )
    yield running
    runtime.shutdown()


@pytest.mark.parametrize(
    ("width", "frames", "fps", "status", "error"),
    [
        (160, 30, 30, "SUCCEEDED", None),
        (160, 90, 30, "FAILED", "too long (3 s of video; the limit is 2 s)"),
        (160, 30, 60, "FAILED", "frame rate too high (60.0 fps; the limit is 50)"),
        # 320x240 at 30 fps: 2.3 megapixels a second, as an 8K clip at 30 fps is 995.
        (
            320,
            30,
            30,
            "FAILED",
            "too many pixels a second (320x240 at 30.0 fps is 2.3 megapixels a second;"
            " the limit is 1)",
        ),
    ],
)
def test_jobs_beyond_the_limits_fail_at_validate(veil, tmp_path, width, frames, fps, status, error):
    scene = Scene(
        width=width, height=width * 3 // 4, frames=frames, fps=fps, faces=(MovingFace(height=40),)
    )
    key = f"clip-{width}-{frames}-{fps}.mp4"
    veil.input.objects[key] = write_video(tmp_path / key, scene, audio=False).path.read_bytes()
    job = veil.finished(veil.call("POST", "/api/jobs", json={"key": key}).json()["id"])
    assert job["status"] == status, job
    if error is not None:
        assert job["error"] == f"{key}: {error}"
        assert [s["name"] for s in job["steps"]] == ["Validate"]
        assert key not in veil.output.objects
