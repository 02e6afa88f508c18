"""The service launched in this process for a test module: ``create_app`` on in-memory
buckets, called through ``httpx.ASGITransport``, with the workflows running on DBOS over
a real SQLite file. One a module at a time (DBOS is one per process): a module's fixture
makes it and calls ``veil.runtime.shutdown()`` when done."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path
from typing import Any

import httpx

from veil import queue, runtime
from veil.api import Service, create_app
from veil.api.rekognition import RekognitionConfig
from veil.runtime import ServiceConfig
from veil.storage import MemoryStorage, Storage

ENDED = ("SUCCEEDED", "FAILED", "CANCELLED", "NEEDS_REVIEW")
"""A blur job's states once it has stopped."""


class InProcess:
    """The service launched in this process, and a client for its app. Its buckets are
    in memory unless ``stores`` (input, output) are given; ``rekognition`` sets up the
    face-detection API."""

    def __init__(
        self,
        work: Path,
        *,
        stores: tuple[Storage, Storage] | None = None,
        rekognition: RekognitionConfig | None = None,
        **settings: Any,
    ) -> None:
        # Any: the tests reach into a MemoryStorage's ``objects``.
        self.input: Any
        self.output: Any
        self.input, self.output = stores or (MemoryStorage("in"), MemoryStorage("out"))
        self.config = ServiceConfig(
            input=self.input,
            output=self.output,
            database_url=f"sqlite:///{work / 'jobs.sqlite'}",
            work_dir=work / "work",
            **settings,
        )
        self.rekognition = rekognition
        runtime.launch(self.config)
        self.app = self.app_with()

    def app_with(self, **blur: Any) -> Any:
        """An app over the same runtime, its blur options changed by ``blur``: what a
        server started with other flags serves."""
        config = dataclasses.replace(
            self.config, blur=dataclasses.replace(self.config.blur, **blur)
        )
        return create_app(Service(config=config, submit=queue.submit, rekognition=self.rekognition))

    def call(self, method: str, url: str, *, app: Any = None, **kwargs: Any) -> httpx.Response:
        """A request to the app (or to ``app``)."""

        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(app=app or self.app)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://localhost"
            ) as client:
                return await client.request(method, url, **kwargs)

        return asyncio.run(send())

    def finished(self, job_id: str, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job: dict[str, Any] = self.call("GET", f"/api/jobs/{job_id}").json()
            if job["status"] in ENDED:
                return job
            time.sleep(0.2)
        raise AssertionError(f"job {job_id} did not finish in {timeout} s")
