"""FastAPI app: jobs, uploads, results, bucket events. OpenAPI at ``/openapi.json``."""

from __future__ import annotations

import hmac
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from fastapi import Body, Depends, FastAPI, File, Header, HTTPException, Query, Request, UploadFile
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from starlette.background import BackgroundTask

import veil
from veil import jobs
from veil.api.rekognition import RekognitionConfig
from veil.api.rekognition import install as install_rekognition
from veil.errors import ObjectNotFoundError, StorageError, VeilError
from veil.jobs import Job, JobRequest
from veil.service import ServiceConfig, runtime
from veil.storage import Storage, check_key
from veil.triggers import (
    is_video_key,
    s3_event_keys,
    seaweedfs_event_keys,
    submit_key,
    submit_keys,
)


@dataclass
class Service:
    """What the app serves: the stores, how to submit a job, and the API keys (none: open)."""

    config: ServiceConfig
    submit: Callable[[JobRequest], str]
    api_keys: frozenset[str] = field(default_factory=frozenset)
    rekognition: RekognitionConfig | None = None

    def bucket_prefix(self, store: Storage) -> tuple[str, str]:
        bucket = getattr(store, "bucket", "")
        return str(bucket), str(getattr(store, "prefix", ""))


class SubmitBody(BaseModel):
    key: str
    webhook_url: str | None = None


def _job(job_id: str, *, with_steps: bool = False) -> Job:
    return jobs.get(job_id, runtime().progress, with_steps=with_steps)


def create_app(service: Service) -> FastAPI:
    app = FastAPI(
        title="veil", version=veil.__version__, description="Anonymize every face in a video."
    )

    def authorize(
        authorization: Annotated[str | None, Header()] = None,
        access_token: Annotated[str | None, Query(include_in_schema=False)] = None,
    ) -> None:
        if not service.api_keys:
            return
        scheme, _, token = (authorization or "").partition(" ")
        if access_token and not authorization:
            # <video src> and download links cannot send headers; the web page puts the
            # key in the URL for those.
            scheme, token = "bearer", access_token
        if scheme.lower() != "bearer" or not any(
            hmac.compare_digest(token, key) for key in service.api_keys
        ):
            raise HTTPException(
                401, "missing or wrong API key", headers={"WWW-Authenticate": "Bearer"}
            )

    auth = [Depends(authorize)]

    @app.exception_handler(VeilError)
    async def veil_error(_: Request, exc: VeilError) -> JSONResponse:
        status = getattr(exc, "status_code", 400)
        return JSONResponse({"detail": str(exc)}, status_code=status)

    static = Path(__file__).with_name("static")
    app.mount("/static", StaticFiles(directory=static), name="static")

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        """The web page: upload, watch, compare, download."""
        return FileResponse(static / "index.html", headers={"Cache-Control": "no-cache"})

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/api/jobs", dependencies=auth)
    def list_jobs(limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[dict[str, Any]]:
        return [job.to_dict() for job in jobs.list_jobs(runtime().progress, limit)]

    @app.post("/api/jobs", dependencies=auth, status_code=202)
    def submit_job(body: SubmitBody) -> dict[str, str]:
        job_id = submit_key(
            service.config.input, body.key, service.submit, webhook_url=body.webhook_url
        )
        return {"id": job_id}

    @app.post("/api/uploads", dependencies=auth, status_code=202)
    def upload(
        file: Annotated[UploadFile, File()], key: Annotated[str | None, Query()] = None
    ) -> dict[str, str]:
        name = check_key(key or Path(file.filename or "").name)
        if not is_video_key(name):
            raise HTTPException(400, f"{name}: not a video file type")
        with tempfile.NamedTemporaryFile(suffix=Path(name).suffix) as tmp:
            shutil.copyfileobj(file.file, tmp)
            tmp.flush()
            if Path(tmp.name).stat().st_size > service.config.max_bytes:
                raise HTTPException(
                    413, f"{name}: larger than the limit of {service.config.max_bytes:,} bytes"
                )
            info = service.config.input.upload(Path(tmp.name), name)
        return {"id": service.submit(JobRequest(info.key, info.etag, info.size)), "key": name}

    @app.get("/api/jobs/{job_id}", dependencies=auth)
    def get_job(job_id: str) -> dict[str, Any]:
        return _job(job_id, with_steps=True).to_dict()

    @app.delete("/api/jobs/{job_id}", dependencies=auth, status_code=202)
    def cancel_job(job_id: str) -> dict[str, Any]:
        return jobs.cancel(job_id, runtime().progress).to_dict()

    def _send(store: Storage, key: str) -> FileResponse:
        tmp = Path(tempfile.mkdtemp(prefix="veil-dl-")) / Path(key).name
        try:
            store.download(key, tmp)
        except (ObjectNotFoundError, StorageError):
            shutil.rmtree(tmp.parent, ignore_errors=True)
            raise
        return FileResponse(
            tmp, filename=tmp.name, background=BackgroundTask(shutil.rmtree, tmp.parent, True)
        )

    def _download(job_id: str, suffix: str) -> FileResponse:
        job = _job(job_id)
        if job.output_key is None:
            raise HTTPException(409, f"job {job_id} is {job.status.value.lower()}; no result yet")
        return _send(service.config.output, job.output_key + suffix)

    @app.get("/api/jobs/{job_id}/input", dependencies=auth)
    def original(job_id: str) -> FileResponse:
        """The video the job read, for comparing with the result."""
        return _send(service.config.input, _job(job_id).key)

    @app.post("/api/jobs/{job_id}/retry", dependencies=auth, status_code=202)
    def retry(job_id: str) -> dict[str, str]:
        """Run a failed or cancelled job again from the start, as a new job."""
        return {"id": jobs.retry(job_id, runtime().progress)}

    @app.get("/api/objects", dependencies=auth)
    def objects(limit: Annotated[int, Query(ge=1, le=10000)] = 1000) -> list[dict[str, Any]]:
        """Videos in the input bucket, to start jobs for."""
        found = []
        for info in service.config.input.list():
            if is_video_key(info.key):
                found.append({"key": info.key, "size": info.size})
                if len(found) >= limit:
                    break
        return found

    @app.get("/api/jobs/{job_id}/result", dependencies=auth)
    def result(job_id: str) -> FileResponse:
        return _download(job_id, "")

    @app.get("/api/jobs/{job_id}/faces", dependencies=auth)
    def faces(job_id: str) -> FileResponse:
        return _download(job_id, ".faces.json")

    # Plain (not async) handlers: submitting talks to the job database synchronously, so
    # it runs in FastAPI's thread pool, not on the event loop.
    @app.post("/events/s3", dependencies=auth)
    def s3_event(event: Annotated[dict[str, Any], Body()]) -> dict[str, list[str]]:
        """An S3 event notification (AWS or MinIO format)."""
        keys = s3_event_keys(event, service.bucket_prefix(service.config.input))
        return {"jobs": submit_keys(service.config.input, keys, service.submit)}

    @app.post("/events/seaweedfs", dependencies=auth)
    def seaweedfs_event(event: Annotated[dict[str, Any], Body()]) -> dict[str, list[str]]:
        """A SeaweedFS filer webhook event."""
        keys = seaweedfs_event_keys(event, service.bucket_prefix(service.config.input))
        return {"jobs": submit_keys(service.config.input, keys, service.submit)}

    if service.rekognition is not None:
        install_rekognition(app, service.config, service.rekognition)
    return app
