"""The durable workflows, on DBOS.

A blur job is Validate → Redact → Publish. Redact decodes the video once: detection,
tracking, redaction and encoding share that pass (``blur_video``), which writes the
faces file beside the output, so a job's output and faces.json are those of
``veil blur --faces-out`` with the same options. A face-detection job (the cloud API's
``StartFaceDetection``) is Validate → DetectFaces → StoreFaces.

Each step is a DBOS step: its result is checkpointed, so a worker killed mid-job
resumes at the step it was in, not from the start. Storage faults are retried with
backoff; anything wrong with the video itself fails the job at once with a message in
plain words. The input object is only read; the output is uploaded only by Publish,
once the whole video is done.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from dbos import DBOS, SetWorkflowID

from veil.errors import InputError, JobFailed, ObjectNotFoundError, StorageError, VeilError
from veil.jobs import FACE_DETECTION_WORKFLOW, WORKFLOW_NAME, JobRequest, ProgressStore, job_id_for
from veil.pipeline import BlurOptions, blur_video, detect_video
from veil.storage import LocalStorage, S3Storage, Storage
from veil.video import MAX_INPUT_BYTES, VIDEO_EXTENSIONS, probe

log = logging.getLogger("veil.workflow")

P = ParamSpec("P")
R = TypeVar("R")

QUEUE_NAME = "veil-jobs"


@dataclass(frozen=True, kw_only=True)
class ServiceConfig:
    """Everything the workflow's steps need, set once per process before launch."""

    input: Storage
    output: Storage
    database_url: str
    work_dir: Path
    workers: int = 1
    worker_id: str = "local"
    """Who this process is to the job database. A restarted process with the same ID
    resumes the jobs it was running; two live processes must never share one."""
    max_bytes: int = MAX_INPUT_BYTES
    blur: BlurOptions = field(default_factory=BlurOptions)


class _Runtime:
    config: ServiceConfig | None = None
    progress: ProgressStore | None = None
    queue: Any = None


_runtime = _Runtime()


def config() -> ServiceConfig:
    if _runtime.config is None:
        raise RuntimeError("veil.workflow.launch() has not been called in this process")
    return _runtime.config


def progress_store() -> ProgressStore:
    if _runtime.progress is None:
        raise RuntimeError("veil.workflow.launch() has not been called in this process")
    return _runtime.progress


def launch(service: ServiceConfig) -> None:
    """Start DBOS on the service's database, recover unfinished jobs and start workers."""
    _runtime.config = service
    _runtime.progress = ProgressStore(service.database_url)
    service.work_dir.mkdir(parents=True, exist_ok=True)
    DBOS(
        config={
            "name": "veil",
            "system_database_url": service.database_url,
            "executor_id": service.worker_id,
            "log_level": "WARNING",
        }
    )
    DBOS.launch()
    _runtime.queue = DBOS.register_queue(
        QUEUE_NAME, worker_concurrency=service.workers, polling_interval_sec=0.5
    )


def shutdown() -> None:
    DBOS.destroy(workflow_completion_timeout_sec=0)


def submit(request: JobRequest) -> str:
    """Queue a job for one object version; the same version always gives the same job."""
    job_id = job_id_for(config().input.url, request.key, request.etag)
    with SetWorkflowID(job_id):
        _runtime.queue.enqueue(anonymize, request.to_dict())
    return job_id


def _transient(exc: BaseException) -> bool:
    return isinstance(exc, StorageError) and exc.transient


def _retrying_step(name: str, *, attempts: int) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """A DBOS step that retries storage faults with exponential backoff (1 s, 2 s, 4 s...)
    and fails at once on anything else."""
    return DBOS.step(
        name=name,
        retries_allowed=True,
        max_attempts=attempts,
        interval_seconds=1.0,
        backoff_rate=2.0,
        should_retry=_transient,
    )


def _work(job_id: str) -> Path:
    path = config().work_dir / job_id
    path.mkdir(parents=True, exist_ok=True)
    return path


def _suffix(key: str) -> str:
    return Path(key).suffix.lower()


def bucket_store(bucket: str) -> Storage:
    """The store a bucket name means: another bucket on the same S3 endpoint, or, with
    folder stores, the input or output folder by its name."""
    service = config()
    if isinstance(service.input, S3Storage):
        return S3Storage(bucket, "", endpoint_url=service.input.endpoint_url)
    for store in (service.input, service.output):
        if isinstance(store, LocalStorage) and store.root.name == bucket:
            return store
    raise ObjectNotFoundError(f"s3://{bucket}", None, "no such bucket")


def source_store(request: dict[str, Any]) -> Storage:
    """Where a job's video is: the input store, unless the request names a bucket."""
    bucket = request.get("bucket")
    return bucket_store(bucket) if bucket else config().input


def _fetch_input(job_id: str, request: dict[str, Any]) -> Path:
    """The input's local copy, downloaded once (again only if the work folder was lost)."""
    local = _work(job_id) / f"input{_suffix(request['key'])}"
    if not local.exists():
        partial = local.with_name(local.name + ".partial")
        source_store(request).download(request["key"], partial)
        partial.replace(local)
    return local


@contextlib.contextmanager
def _failing_job(key: str) -> Iterator[None]:
    """Turn a problem with the video itself into a job failure that names the key, not
    the work folder's copy, and is never retried."""
    try:
        yield
    except InputError as exc:
        raise JobFailed(f"{key}: {exc.reason}") from None
    except VeilError as exc:
        raise JobFailed(str(exc)) from None


def _progress(job_id: str, step: str) -> Any:
    store = progress_store()
    return lambda done, total: store.set(job_id, step, done, total)


@_retrying_step("Validate", attempts=6)
def validate(job_id: str, request: dict[str, Any]) -> dict[str, Any]:
    key = request["key"]
    progress_store().set(job_id, "Validate", 0, None, force=True)
    if _suffix(key) not in VIDEO_EXTENSIONS:
        raise JobFailed(
            f"{key}: not a video file type (expected one of {', '.join(VIDEO_EXTENSIONS)})"
        )
    size = source_store(request).stat(key).size
    limit = config().max_bytes
    if size > limit:
        raise JobFailed(f"{key}: too large ({size:,} bytes; the limit is {limit:,})")
    local = _fetch_input(job_id, request)
    with _failing_job(key):
        info = probe(local)
    progress_store().set(job_id, "Validate", 1, 1, force=True, duration=info.duration)
    return {
        "width": info.width,
        "height": info.height,
        "frames": info.frame_count,
        "duration": info.duration,
    }


@_retrying_step("DetectFaces", attempts=4)
def detect_faces(job_id: str, request: dict[str, Any]) -> int:
    """The faces file alone, for a face-detection job."""
    local = _fetch_input(job_id, request)
    faces = _work(job_id) / "faces.json"
    with _failing_job(request["key"]):
        result = detect_video(
            local, faces, config().blur, progress=_progress(job_id, "DetectFaces")
        )
    return result.tracks


def _results(job_id: str, key: str) -> tuple[Path, Path]:
    """Where Redact leaves a blur job's output and faces file in its work folder."""
    work = _work(job_id)
    return work / f"output{_suffix(key)}", work / "faces.json"


@_retrying_step("Redact", attempts=4)
def redact(job_id: str, request: dict[str, Any]) -> int:
    """Detect, track and anonymize in one decode of the video, writing the output and
    its faces file; returns the number of faces tracked."""
    local = _fetch_input(job_id, request)
    output, faces = _results(job_id, request["key"])
    with _failing_job(request["key"]):
        result = blur_video(
            local,
            output,
            config().blur,
            faces_out=faces,
            progress=_progress(job_id, "Redact"),
        )
    return result.tracks


@_retrying_step("Publish", attempts=8)
def publish(job_id: str, request: dict[str, Any]) -> str:
    key = str(request["key"])
    output, faces = _results(job_id, key)
    if not (output.exists() and faces.exists()):
        # The work folder was lost (another machine resumed the job): redo the pass.
        redact(job_id, request)
    store = config().output
    # The faces file first: once the video is there, everything about it is.
    store.upload(faces, f"{key}.faces.json")
    store.upload(output, key)
    progress_store().set(job_id, "Publish", 1, 1, force=True)
    return key


@DBOS.step(name="Cleanup")
def cleanup(job_id: str) -> None:
    shutil.rmtree(config().work_dir / job_id, ignore_errors=True)


@DBOS.step(name="Notify")
def notify(url: str, payload: dict[str, Any]) -> None:
    """Tell a webhook the job ended. Best effort: a dead webhook does not fail the job."""
    body = json.dumps(payload).encode()
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10):
            pass
    except OSError as exc:
        log.warning("webhook %s failed: %s", url, exc)


@DBOS.workflow(name=WORKFLOW_NAME)
def anonymize(request: dict[str, Any]) -> dict[str, Any]:
    job_id = DBOS.workflow_id
    assert job_id is not None
    JobRequest(**request)  # refuse malformed input before doing anything

    def steps() -> dict[str, Any]:
        validate(job_id, request)
        faces = redact(job_id, request)
        return {"output_key": str(publish(job_id, request)), "faces": faces}

    def message(status: str, result: dict[str, Any], error: str | None) -> dict[str, Any]:
        body = {"job_id": job_id, "key": request["key"], "status": status, **result}
        return {**body, "error": error} if error else body

    return _run_job(job_id, request, steps, message)


def _run_job(
    job_id: str,
    request: dict[str, Any],
    steps: Callable[[], dict[str, Any]],
    message: Callable[[str, dict[str, Any], str | None], dict[str, Any]],
) -> dict[str, Any]:
    """Run a workflow's steps, then remove its work folder and tell its webhook how it
    ended, whether it succeeded or failed."""
    try:
        result = steps()
    except Exception as exc:
        cleanup(job_id)
        if request.get("webhook_url"):
            notify(request["webhook_url"], message("FAILED", {}, str(exc)))
        raise
    cleanup(job_id)
    if request.get("webhook_url"):
        notify(request["webhook_url"], message("SUCCEEDED", result, None))
    return result


FACES_PREFIX = ".veil/face-detection"


def faces_key(job_id: str) -> str:
    """Where a face-detection job's result lives in the output store."""
    return f"{FACES_PREFIX}/{job_id}.json"


@_retrying_step("StoreFaces", attempts=8)
def store_faces(job_id: str) -> str:
    key = faces_key(job_id)
    config().output.upload(_work(job_id) / "faces.json", key)
    return key


def submit_face_detection(job_id: str, request: dict[str, Any]) -> None:
    """Queue a face-detection-only job (the cloud API's StartFaceDetection) under ``job_id``."""
    with SetWorkflowID(job_id):
        _runtime.queue.enqueue(face_detection, request)


@DBOS.workflow(name=FACE_DETECTION_WORKFLOW)
def face_detection(request: dict[str, Any]) -> dict[str, Any]:
    """Validate and DetectFaces, then keep the faces file for GetFaceDetection to page through."""
    job_id = DBOS.workflow_id
    assert job_id is not None

    def steps() -> dict[str, Any]:
        validate(job_id, request)
        faces = detect_faces(job_id, request)
        return {"faces_key": str(store_faces(job_id)), "faces": faces}

    def message(status: str, _: dict[str, Any], error: str | None) -> dict[str, Any]:
        return _completion(job_id, request, status, error)

    return _run_job(job_id, request, steps, message)


def _completion(
    job_id: str, request: dict[str, Any], status: str, error: str | None
) -> dict[str, Any]:
    """The completion message, shaped like the cloud's SNS notification."""
    message: dict[str, Any] = {
        "JobId": job_id,
        "Status": status,
        "API": "StartFaceDetection",
        "Timestamp": int(time.time() * 1000),
        "Video": {"S3ObjectName": request["key"], "S3Bucket": request.get("bucket")},
    }
    if request.get("job_tag"):
        message["JobTag"] = request["job_tag"]
    if error:
        message["StatusMessage"] = error
    return message
