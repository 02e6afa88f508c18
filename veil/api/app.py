"""FastAPI app: jobs, uploads, results, bucket events. OpenAPI at ``/openapi.json``."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from fastapi import Body, FastAPI, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from PIL import Image
from pydantic import BaseModel, Field
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

import veil
from veil import erasure, jobs
from veil.api.guard import CALLER, Guard, Policy
from veil.api.rekognition import RekognitionConfig
from veil.api.rekognition import install as install_rekognition
from veil.api.uploads import receive_upload
from veil.errors import (
    InvalidKeyError,
    ObjectChangedError,
    ObjectNotFoundError,
    StorageError,
    VeilError,
)
from veil.jobs import Job, JobRequest, JobStatus
from veil.keys import check_media_key, is_media_key
from veil.photos import is_photo_path, open_photo
from veil.queue import submit_rerender
from veil.review import (
    MAX_WHOLE,
    Edit,
    Reviewer,
    boxes_between,
    check_edits,
    parse_edits,
    tracks,
)
from veil.runtime import ServiceConfig, kept, runtime
from veil.storage import Storage
from veil.triggers import s3_event_keys, seaweedfs_event_keys, submit_key, submit_keys


@dataclass
class Service:
    """What the app serves: the stores, how to submit a job, and the API keys (none: open)."""

    config: ServiceConfig
    submit: Callable[[JobRequest], str]
    api_keys: frozenset[str] = field(default_factory=frozenset)
    host_names: frozenset[str] = field(default_factory=frozenset)
    """Names besides ``localhost`` that clients reach the service by (``Host``)."""
    rekognition: RekognitionConfig | None = None

    def bucket_prefix(self, store: Storage) -> tuple[str, str]:
        bucket = getattr(store, "bucket", "")
        return str(bucket), str(getattr(store, "prefix", ""))


_UPLOAD_FORM: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary"}},
                }
            }
        },
    }
}
"""The upload's form, for the API schema: the handler reads the body itself."""


class SubmitBody(BaseModel):
    key: str
    webhook_url: str | None = None


class DraftBody(BaseModel):
    edits: list[dict[str, Any]]
    """The whole list of edits being made (``veil.review.Edit``)."""
    version: Annotated[int, Field(ge=0, le=MAX_WHOLE)]
    """The draft's version the reviewer started from (0: none): refused if another was
    saved since."""


class ReviewBody(BaseModel):
    edits: list[dict[str, Any]]
    """The whole list of edits (``veil.review.Edit``), applied to the job's own
    detections: a later re-render replaces, not adds to, an earlier one's edits."""
    renders: Annotated[int, Field(ge=0, le=MAX_WHOLE)]
    """Re-renders the reviewer saw (``renders`` of the job): refused if another began."""
    approve: bool = False
    """Publish even if the audit finds a face (the reviewer checked: it is none)."""
    reviewer: Annotated[str | None, Field(max_length=100, pattern=r"^[^\x00-\x1f\x7f]*$")] = None
    """The reviewer's name as they gave it, for the privacy report (beside the API key
    the request came with, which the service checked)."""


def _caller(request: Request) -> str | None:
    """The API key ``request`` came with (``veil.api.guard.key_label``); None when the
    service asks for none."""
    return getattr(request.state, CALLER, None)


_ENDED_BADLY = (JobStatus.FAILED, JobStatus.CANCELLED)
_REVIEWABLE = (JobStatus.NEEDS_REVIEW, JobStatus.SUCCEEDED, *_ENDED_BADLY)
"""States a reviewer may re-render from: held, finished, or a re-render that failed
(``reviewable`` says the job's own pass kept its detections)."""
_PRIVATE = {"Cache-Control": "no-store, private"}
"""For pictures of faces from the original: never kept by a browser or a proxy."""


def _job(job_id: str, *, with_steps: bool = False) -> Job:
    return jobs.get(job_id, runtime().progress, runtime().reviews, with_steps=with_steps)


def create_app(service: Service) -> FastAPI:
    # No /docs or /redoc: FastAPI's pages load scripts from a CDN into veil's origin,
    # where they could read the page's key. The schema stays at /openapi.json.
    app = FastAPI(
        title="veil",
        version=veil.__version__,
        description="Anonymize every face in a video.",
        docs_url=None,
        redoc_url=None,
    )
    # Uploads a previous run of this service was receiving when it stopped are no one's,
    # nor copies it was sending (originals among them: never left in $TMPDIR).
    shutil.rmtree(service.config.work_dir / "uploads", ignore_errors=True)
    downloads = service.config.work_dir / "downloads"
    shutil.rmtree(downloads, ignore_errors=True)

    app.add_middleware(
        Guard,
        policy=Policy(
            api_keys=service.api_keys,
            max_upload=service.config.max_bytes,
            host_names=service.host_names,
        ),
    )

    @app.exception_handler(VeilError)
    async def veil_error(_: Request, exc: VeilError) -> JSONResponse:
        status = getattr(exc, "status_code", 400)
        # A message may quote the caller's own text, lone surrogates included: encodable.
        detail = str(exc).encode("utf-8", "replace").decode("utf-8")
        return JSONResponse({"detail": detail}, status_code=status)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's own answer quotes each bad value back: a non-finite number (NaN,
        # Infinity or 1e400, which Python's JSON parser takes) cannot be written out as
        # JSON, and made a 500. Where and why is enough, without the caller's value.
        errors = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
        return JSONResponse({"detail": errors}, status_code=422)

    static = Path(__file__).with_name("static")
    app.mount("/static", StaticFiles(directory=static), name="static")

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        """The web page: upload, watch, compare, download."""
        return FileResponse(static / "index.html", headers={"Cache-Control": "no-cache"})

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/api/jobs")
    def list_jobs(limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[dict[str, Any]]:
        found = jobs.list_jobs(runtime().progress, runtime().reviews, limit)
        return [job.to_dict() for job in found]

    @app.post("/api/jobs", status_code=202)
    def submit_job(body: SubmitBody) -> dict[str, str]:
        job_id = submit_key(
            service.config.input,
            body.key,
            service.submit,
            webhook_url=body.webhook_url,
            webhook_hosts=service.config.webhook_hosts,
        )
        return {"id": job_id}

    def _upload_key(key: str) -> str:
        """``key`` if an upload may be stored under it; a 400 naming it (or the file)
        and why otherwise."""
        try:
            return check_media_key(key)
        except InvalidKeyError as exc:
            shown = key if len(key) <= 100 else key[:100] + "..."
            raise HTTPException(400, f"{shown}: {exc.reason}") from None

    @app.post("/api/uploads", status_code=202, openapi_extra=_UPLOAD_FORM)
    async def upload(
        request: Request, key: Annotated[str | None, Query()] = None
    ) -> dict[str, str]:
        """Store a video in the input bucket and start its job. The form's ``file`` part
        is written straight to the service's work folder as it arrives and refused at
        ``--max-size``."""
        if key is not None:
            _upload_key(key)  # before the body
        config = service.config
        received = await receive_upload(request, config.work_dir / "uploads", config.max_bytes)
        try:
            name = _upload_key(key or Path(received.filename).name)
            info = await run_in_threadpool(config.input.upload_moving, received.path, name)
        finally:
            received.path.unlink(missing_ok=True)  # moved or copied by now, or refused
        return {
            "id": await run_in_threadpool(
                service.submit, JobRequest(info.key, info.etag, info.size)
            ),
            "key": name,
        }

    @app.get("/api/jobs/{job_id}")
    def get_job(job_id: str) -> dict[str, Any]:
        job = _job(job_id, with_steps=True)
        with contextlib.suppress(StorageError):  # the store out of reach: not known
            job.superseded = _input_gone(job)
        return job.to_dict()

    @app.delete("/api/jobs/{job_id}", status_code=202)
    def cancel_job(
        job_id: str,
        purge: bool = False,
        with_input: Annotated[bool, Query(alias="input")] = False,
    ) -> dict[str, Any]:
        """Cancel a job; with ``purge``, instead remove everything veil keeps of an ended
        job (``veil.erasure``): its published output, faces file and report, thumbnails,
        detections, edits and history, and with ``input`` its input too. A face-detection
        job (``rk-``) loses its faces file and history."""
        if not purge:
            return jobs.cancel(job_id, runtime().progress, runtime().reviews).to_dict()
        if job_id.startswith(jobs.FACE_DETECTION_PREFIX):
            return erasure.purge_face_detection(job_id, kept(), with_input=with_input).to_dict()
        return erasure.purge(_job(job_id), kept(), with_input=with_input).to_dict()

    def _rerender_job(
        job: Job,
        edits: list[Edit],
        *,
        approve: bool,
        asked_by: Request,
        reviewer: str | None = None,
        renders: int | None = None,
    ) -> str:
        request = JobRequest.from_dict(jobs.workflow_request(jobs.find(job.id)))
        seen = job.renders if renders is None else renders
        who = Reviewer(name=(reviewer or "").strip() or None, key=_caller(asked_by))
        return submit_rerender(job.id, request, edits, approve=approve, renders=seen, by=who)

    def _input_gone(job: Job) -> bool:
        """Whether the version of the video job ``job`` read is gone: deleted, or
        replaced by a newer upload (which has a job of its own)."""
        try:
            current = service.config.input.stat(job.key).etag
        except ObjectNotFoundError:
            current = None
        return bool(job.etag) and current != job.etag

    def _original_kept(job: Job) -> None:
        """Refuse (410) what shows the faces of a job's original (thumbnails, its boxes)
        once the version of the video it read is gone: deleted or replaced, its faces go
        with it."""
        if _input_gone(job):
            raise HTTPException(
                410, f"the video job {job.id} read is gone ({job.key} was deleted or replaced)"
            )

    def _still_current(job: Job) -> None:
        """Refuse (409) to run a job's video again once a newer upload replaced it."""
        if job.etag and service.config.input.stat(job.key).etag != job.etag:
            raise HTTPException(
                409, f"{job.key} was replaced by a newer upload, which has a job of its own"
            )

    def _send(
        store: Storage,
        key: str,
        etag: str | None,
        what: str,
        name: str | None = None,
        *,
        private: bool = False,
        upright: bool = False,
    ) -> FileResponse:
        """The version ``etag`` of ``key`` (what the job read or wrote), never newer bytes
        a later upload or job stored under the same key; saved as ``name`` (the key's).
        ``private``: faces unhidden, never kept by a browser or a proxy. ``upright``: a
        photo as veil turned it and saw it (a JPEG of its pixels alone), for the page to
        draw boxes on: browsers ignore some orientation tags veil follows."""
        downloads.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix="dl-", dir=downloads)) / Path(key).name
        try:
            store.download(key, tmp, etag=etag or None)
            if upright:
                view = tmp.with_name("upright.jpg")
                picture = open_photo(tmp).rgb()
                Image.fromarray(picture).save(view, format="JPEG", quality=90)
                tmp, name = view, f"{Path(key).stem}.upright.jpg"
        except ObjectChangedError:
            shutil.rmtree(tmp.parent, ignore_errors=True)
            raise HTTPException(
                410, f"{what} was replaced: a newer upload of {key} has a job of its own"
            ) from None
        except VeilError:
            shutil.rmtree(tmp.parent, ignore_errors=True)
            raise
        return FileResponse(
            tmp,
            filename=name or tmp.name,
            headers=_PRIVATE if private else None,
            background=BackgroundTask(shutil.rmtree, tmp.parent, True),
        )

    def _download(job_id: str, faces: bool) -> FileResponse:
        job = _job(job_id)
        if job.output_key is None:
            raise HTTPException(409, f"job {job_id} is {job.status.value.lower()}; no result yet")
        if faces:
            key, etag, what = (
                job.faces_key or job.output_key + ".faces.json",  # older jobs: beside it
                job.faces_etag,
                "this job's faces file",
            )
        else:
            # Saved as veil blur names its output, never as the original it hides.
            output = Path(job.output_key)
            name = f"{output.stem}.blurred{output.suffix}"
            what = "this job's result"
            return _send(service.config.output, job.output_key, job.output_etag, what, name)
        return _send(service.config.output, key, etag, what)

    @app.get("/api/jobs/{job_id}/input")
    def original(job_id: str, upright: bool = False) -> FileResponse:
        """The video or photo the job read, for comparing with the result; ``upright``: a
        photo as veil turned it (``_send``)."""
        job = _job(job_id)
        what = "the video this job read"
        shown = upright and is_photo_path(job.key)
        return _send(service.config.input, job.key, job.etag, what, private=True, upright=shown)

    @app.post("/api/jobs/{job_id}/retry", status_code=202)
    def retry(job_id: str, request: Request) -> dict[str, str]:
        """Run a failed or cancelled job again from the start, as a new job, on the same
        version of its video; refused (409) once a newer upload replaced it."""
        job = _job(job_id)
        _still_current(job)
        if job.renders and job.status in _ENDED_BADLY:
            # The latest re-render failed or was cancelled: run it again, same edits.
            _rerender_job(job, parse_edits(job.edits), approve=False, asked_by=request)
            return {"id": job_id}
        return {"id": jobs.retry(job_id, runtime().progress)}

    @app.get("/api/jobs/{job_id}/report")
    def report(job_id: str) -> dict[str, Any]:
        """The privacy report of the job's latest output (``veil.report``)."""
        job = _job(job_id)
        if job.report is None:
            raise HTTPException(409, f"job {job_id} is {job.status.value.lower()}; no report yet")
        return job.report

    @app.get("/api/jobs/{job_id}/review")
    def review(job_id: str) -> dict[str, Any]:
        """What a reviewer works on: the job's tracks (from its own detections), the
        edits of its latest re-render, and its audit."""
        job = _job(job_id)
        if not job.reviewable:
            raise HTTPException(409, f"job {job_id} has no detections to review yet")
        _original_kept(job)
        faces = runtime().reviews.faces(job_id)
        draft = runtime().reviews.draft(job_id)
        return {
            "id": job_id,
            "status": job.status.value,
            "video": faces.get("VideoMetadata", {}),
            "tracks": tracks(faces),
            "edits": job.edits,
            "renders": job.renders,
            "audit": job.audit,
            "draft": draft.to_json() if draft is not None else None,
        }

    kept_faces: OrderedDict[tuple[str, float], dict[str, Any]] = OrderedDict()
    kept_lock = threading.Lock()

    def _kept_faces(job_id: str) -> dict[str, Any]:
        """The job's own detections, parsed: the last few jobs' kept for paging through."""
        review = runtime().reviews.get(job_id)
        key = (job_id, review.updated_at if review is not None else 0.0)
        with kept_lock:
            if key in kept_faces:
                kept_faces.move_to_end(key)
                return kept_faces[key]
        faces = runtime().reviews.faces(job_id)
        with kept_lock:
            kept_faces[key] = faces
            while len(kept_faces) > 4:
                kept_faces.popitem(last=False)
        return faces

    @app.get("/api/jobs/{job_id}/review/boxes")
    def review_boxes(
        job_id: str,
        from_ms: Annotated[int, Query(ge=0, le=MAX_WHOLE)] = 0,
        to_ms: Annotated[int, Query(ge=0, le=MAX_WHOLE)] = 10_000,
    ) -> dict[str, Any]:
        """The job's tracked boxes from ``from_ms`` to ``to_ms`` (``veil.review.boxes_between``),
        drawn on the reviewer's picture."""
        if to_ms < from_ms:
            raise HTTPException(400, "to_ms must not be before from_ms")
        job = _job(job_id)
        if not job.reviewable:
            raise HTTPException(409, f"job {job_id} has no detections to review yet")
        _original_kept(job)
        return boxes_between(_kept_faces(job_id), from_ms, to_ms)

    @app.put("/api/jobs/{job_id}/review/draft")
    def save_draft(job_id: str, body: DraftBody) -> dict[str, Any]:
        """Save the edits a reviewer is making (not yet re-rendered), so a reload, a second
        tab or another reviewer sees them; refused (409) when another save came first."""
        job = _job(job_id)
        if not job.reviewable:
            raise HTTPException(409, f"job {job_id} has no detections to review yet")
        _original_kept(job)
        try:
            edits = parse_edits(body.edits)
            check_edits(runtime().reviews.faces(job_id), edits)
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from None
        return runtime().reviews.save_draft(job_id, edits, body.version).to_json()

    @app.get("/api/jobs/{job_id}/tracks/{track}/thumbnail")
    def thumbnail(job_id: str, track: Annotated[int, PathParam(ge=0, le=MAX_WHOLE)]) -> Response:
        """A small picture of a tracked face, from the original video: shown to those who
        may read the original (the API's key holders), and never cached."""
        _original_kept(_job(job_id))
        picture = runtime().reviews.thumbnail(job_id, track)
        if picture is None:
            raise HTTPException(404, f"no thumbnail of track {track} in job {job_id}")
        return Response(picture, media_type="image/jpeg", headers=_PRIVATE)

    @app.post("/api/jobs/{job_id}/review", status_code=202)
    def rerender(job_id: str, body: ReviewBody, request: Request) -> dict[str, str]:
        """Re-render a held or finished job from its detections with a reviewer's edits,
        without detecting again; then audit and publish it as the job itself does."""
        job = _job(job_id)
        if job.status not in _REVIEWABLE or not job.reviewable:
            raise HTTPException(
                409, f"job {job_id} is {job.status.value.lower()}; only held or finished jobs"
            )
        try:
            edits = parse_edits(body.edits)
            check_edits(runtime().reviews.faces(job_id), edits)
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from None
        _still_current(job)
        render_id = _rerender_job(
            job,
            edits,
            approve=body.approve,
            asked_by=request,
            reviewer=body.reviewer,
            renders=body.renders,
        )
        return {"id": job_id, "render_id": render_id}

    @app.get("/api/objects")
    def objects(limit: Annotated[int, Query(ge=1, le=10000)] = 1000) -> list[dict[str, Any]]:
        """Videos in the input bucket, to start jobs for."""
        found = []
        for info in service.config.input.list():
            if is_media_key(info.key):
                found.append({"key": info.key, "size": info.size})
                if len(found) >= limit:
                    break
        return found

    @app.get("/api/jobs/{job_id}/result")
    def result(job_id: str) -> FileResponse:
        return _download(job_id, faces=False)

    @app.get("/api/jobs/{job_id}/held")
    def held(job_id: str) -> FileResponse:
        """The output a held job's audit held (``NEEDS_REVIEW``): what a reviewer watches
        beside the original. Never published; gone once a re-render is published."""
        job = _job(job_id)
        if job.status is not JobStatus.NEEDS_REVIEW or job.held_key is None:
            raise HTTPException(409, f"job {job_id} is {job.status.value.lower()}; nothing held")
        _original_kept(job)  # it may show faces: gone with the video it came from
        return _send(
            service.config.output, job.held_key, job.held_etag, "the held output", private=True
        )

    @app.get("/api/jobs/{job_id}/faces")
    def faces(job_id: str) -> FileResponse:
        return _download(job_id, faces=True)

    # Plain (not async) handlers: submitting talks to the job database synchronously, so
    # it runs in FastAPI's thread pool, not on the event loop.
    @app.post("/events/s3")
    def s3_event(event: Annotated[dict[str, Any], Body()]) -> dict[str, list[str]]:
        """An S3 event notification (AWS or MinIO format)."""
        keys = s3_event_keys(event, service.bucket_prefix(service.config.input))
        return {"jobs": submit_keys(service.config.input, keys, service.submit)}

    @app.post("/events/seaweedfs")
    def seaweedfs_event(event: Annotated[dict[str, Any], Body()]) -> dict[str, list[str]]:
        """A SeaweedFS filer webhook event."""
        keys = seaweedfs_event_keys(event, service.bucket_prefix(service.config.input))
        return {"jobs": submit_keys(service.config.input, keys, service.submit)}

    if service.rekognition is not None:
        install_rekognition(app, service.config, service.rekognition)
    return app
