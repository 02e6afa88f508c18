"""The job workflow and the HTTP API in-process: ``create_app`` on in-memory buckets,
called through ``httpx.ASGITransport``, with the workflows running on DBOS over a real
SQLite file. Fast enough to cover every endpoint; the real servers (SeaweedFS,
PostgreSQL, Chromium, a ``veil serve`` process) are in ``test_service.py`` and
``tests/api/``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import SMALL_SCENE

from veil import service
from veil.api import Service, create_app
from veil.service import ServiceConfig
from veil.storage import MemoryStorage
from veil.synthetic import SyntheticVideo, visible_faces

STEPS = ["Validate", "Redact", "Publish"]


class InProcess:
    """The service launched in this process, and a client for its app."""

    def __init__(self, work: Path) -> None:
        self.input, self.output = MemoryStorage("in"), MemoryStorage("out")
        config = ServiceConfig(
            input=self.input,
            output=self.output,
            database_url=f"sqlite:///{work / 'jobs.sqlite'}",
            work_dir=work / "work",
        )
        service.launch(config)
        self.app = create_app(Service(config=config, submit=service.submit))

    def call(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://localhost"
            ) as client:
                return await client.request(method, url, **kwargs)

        return asyncio.run(send())

    def finished(self, job_id: str, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job: dict[str, Any] = self.call("GET", f"/api/jobs/{job_id}").json()
            if job["status"] in ("SUCCEEDED", "FAILED", "CANCELLED"):
                return job
            time.sleep(0.2)
        raise AssertionError(f"job {job_id} did not finish in {timeout} s")


@pytest.fixture(scope="module")
def veil(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcess]:
    running = InProcess(tmp_path_factory.mktemp("in-process"))
    yield running
    service.shutdown()


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
    ],
)
def test_bad_requests_get_a_4xx_that_says_why(veil, method, url, body, status):
    answer = veil.call(method, url, json=body) if body else veil.call(method, url)
    assert answer.status_code == status, answer.text
    assert answer.json()["detail"]
