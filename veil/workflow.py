"""The blur job's durable workflow and the steps every job shares, on DBOS.

A blur job is Validate → Redact → Audit → Publish. Redact decodes the video once:
detection, tracking, redaction and encoding share that pass (``blur_video``), which
writes the faces file beside the output, so a job's output and faces.json are those of
``veil blur --faces-out`` with the same options. A video longer than ``--segment-seconds`` is cut into segments by Validate and spread
over the workers (``veil.segment_jobs``), its Redact replaced by its segments and Join.
Audit looks for faces left in the
output and writes the privacy report; a finding holds the job (``NEEDS_REVIEW``, nothing
published) unless ``--on-audit-finding publish``. A reviewer's re-render is a workflow of
its own (``rerender_job``): Rerender (the job's kept detections with the edits, no
detection) → Audit → Publish. A face-detection job (the cloud API's
``StartFaceDetection``, ``veil.face_detection``) is Validate → DetectFaces → StoreFaces.

Each step is a DBOS step: its result is checkpointed, so a worker killed mid-job
resumes at the step it was in, not from the start. Storage faults are retried with
backoff; anything wrong with the video itself fails the job at once with a message in
plain words. The input object is only read; the output is uploaded only by Publish,
once the whole video is done.

Steps run in DBOS's threads and take only plain arguments, so what they need of the
process (stores, settings, the progress table) comes from ``veil.runtime.runtime()``,
set by ``veil.runtime.launch``: DBOS offers no other way to hand it to them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import logging
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from dbos import DBOS
from dbos import error as dbos_errors

from veil import runtime
from veil.db import database_errors
from veil.errors import (
    InputError,
    InvalidKeyError,
    JobCancelled,
    JobFailed,
    ObjectChangedError,
    ObjectNotFoundError,
    OutputError,
    StorageError,
    VeilError,
)
from veil.jobs import (
    RERENDER_WORKFLOW,
    WORKFLOW_NAME,
    FaceDetectionRequest,
    JobRequest,
    JobStatus,
    ProgressStore,
    segments_of,
)
from veil.keys import FACES_SUFFIX, REPORT_SUFFIX, RESERVED_FOLDER, check_video_key
from veil.pipeline import BlurOptions, blur_video, detect_video, redact_video
from veil.report import audit_and_report, run_summary, write_report
from veil.review import ReviewStore, apply_edits, parse_edits, write_faces_file
from veil.segments import plan_segments
from veil.storage import Storage, bucket_store
from veil.storage.local import NAME_MAX, fitting_name
from veil.thumbnails import Thumbnails
from veil.video import VideoInfo, probe
from veil.webhooks import WebhookError, post_json

if TYPE_CHECKING:
    from veil.runtime import ServiceConfig

log = logging.getLogger("veil.workflow")
events = logging.getLogger("veil.jobs")
"""One line per job event (queued, each step, how it ended): the console of veil serve
and veil worker shows them."""

P = ParamSpec("P")
R = TypeVar("R")


def _config() -> ServiceConfig:
    return runtime.runtime().config


def _progress_store() -> ProgressStore:
    return runtime.runtime().progress


def _reviews() -> ReviewStore:
    return runtime.runtime().reviews


def _transient(exc: BaseException) -> bool:
    return isinstance(exc, StorageError) and exc.transient


def retrying_step(name: str, *, attempts: int) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """A DBOS step that retries storage faults with exponential backoff (1 s, 2 s, 4 s...)
    and fails at once on anything else."""
    step = DBOS.step(
        name=name,
        retries_allowed=True,
        max_attempts=attempts,
        interval_seconds=1.0,
        backoff_rate=2.0,
        should_retry=_transient,
    )

    def announced(func: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(func)
        def run(*args: P.args, **kwargs: P.kwargs) -> R:
            # Only a step that really runs (not one DBOS replays from its records) is
            # announced; a retry is announced again.
            events.info("%s  %s", args[0], name)
            return func(*args, **kwargs)

        stepped = step(run)

        @functools.wraps(func)
        def giving_up_plainly(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return stepped(*args, **kwargs)
            except dbos_errors.DBOSMaxStepRetriesExceeded as exc:
                raise JobFailed(_gave_up(name, attempts, exc.errors)) from None

        return giving_up_plainly

    return announced


def _gave_up(step: str, attempts: int, errors: Sequence[BaseException]) -> str:
    """What a job says when a step's retries ran out: the step, and the fault of its
    last try in plain words (DBOS says only that the retries ran out)."""
    cause = f": {errors[-1]}" if errors else ""
    return f"{step} gave up after {attempts} tries{cause}; retry the job once that is fixed"


def work_dir(job_id: str) -> Path:
    """The job's folder for its intermediate files, made when first asked for."""
    path = _config().work_dir / job_id
    path.mkdir(parents=True, exist_ok=True)
    return path


def _suffix(key: str) -> str:
    return Path(key).suffix.lower()


def source_store(request: JobRequest) -> Storage:
    """Where a job's video is: the input store, unless the request names a bucket."""
    bucket = getattr(request, "bucket", None)
    config = _config()
    return bucket_store(bucket, config.input, config.output) if bucket else config.input


_FETCH_LOCKS = tuple(threading.Lock() for _ in range(64))
"""One download of an input at a time in this process (by the copy's path, hashed)."""


def _fetch_input(job_id: str, request: JobRequest) -> Path:
    """The input's local copy in ``job_id``'s work folder, downloaded once on each machine
    (again only if the work folder was lost): a job's segments on one machine share their
    job's copy, however many of them start at once."""
    local = work_dir(job_id) / f"input{_suffix(request.key)}"
    with _FETCH_LOCKS[hash(local) % len(_FETCH_LOCKS)]:
        if not local.exists():
            partial = local.with_name(f"{local.name}.{uuid.uuid4().hex[:8]}.partial")
            try:
                source_store(request).download(request.key, partial, etag=request.etag)
            except ObjectChangedError:
                raise JobFailed(
                    f"{request.key} was replaced by a newer upload after this job started; "
                    "the new version is a job of its own"
                ) from None
            partial.replace(local)
    return local


@contextlib.contextmanager
def _failing_job(key: str) -> Iterator[None]:
    """Turn a problem with the video itself into a job failure that names the key, not
    the work folder's copy, and is never retried. A fault of a store or of the job
    database that is worth retrying (a restart, a timeout: ``StorageError.transient``)
    is not the video's: it goes on to the step, which retries it."""
    try:
        yield
    except StorageError as exc:
        if exc.transient:
            raise
        raise JobFailed(str(exc)) from None
    except InputError as exc:
        raise JobFailed(f"{key}: {exc.reason}") from None
    except OutputError as exc:  # its path is the work folder's, which clients must not see
        raise JobFailed(
            f"{key}: the service cannot write its working copy ({exc.reason}); "
            "retry the job once its work folder has room"
        ) from None
    except VeilError as exc:
        raise JobFailed(str(exc)) from None


CANCEL_CHECK_SECONDS = 1.0
"""How often a running step looks whether its job was cancelled."""


def _progress(job_id: str, step: str) -> Callable[[int, int | None], None]:
    """A step's progress callback (called for each frame): records the frames done and,
    about once a second, looks whether the workflow running the step was cancelled
    meanwhile, so a cancelled job or segment stops within a second or two
    (``JobCancelled``) instead of running its step to the end."""
    store = _progress_store()
    workflow = DBOS.workflow_id
    next_check = time.monotonic() + CANCEL_CHECK_SECONDS

    def report(done: int, total: int | None) -> None:
        nonlocal next_check
        store.set(job_id, step, done, total)
        if workflow is None or time.monotonic() < next_check:
            return
        next_check = time.monotonic() + CANCEL_CHECK_SECONDS
        with database_errors():
            status = DBOS.get_workflow_status(workflow)
        if status is not None and status.status == "CANCELLED":
            raise JobCancelled(f"{job_id}: cancelled during {step}")

    return report


@retrying_step("Validate", attempts=6)
def validate(job_id: str, request: JobRequest) -> dict[str, Any]:
    key = request.key
    _progress_store().set(job_id, "Validate", 0, None, force=True)
    try:
        check_video_key(key)  # every way in checked it; a job queued by an older veil may not
    except InvalidKeyError as exc:
        raise JobFailed(f"{key}: {exc.reason}") from None
    size = source_store(request).stat(key).size
    limit = _config().max_bytes
    if size > limit:
        raise JobFailed(f"{key}: too large ({size:,} bytes; the limit is {limit:,})")
    local = _fetch_input(job_id, request)
    seconds = _config().segment_seconds
    with _failing_job(key):
        info = probe(local)
    _check_work(key, info)
    with _failing_job(key):
        # Long videos are cut into segments here, from the packets alone (cheap): the
        # decision is recorded with the step, so a replay decides the same.
        plan = (
            plan_segments(local, seconds, _config().blur) if 0 < seconds < info.duration else None
        )
    _progress_store().set(job_id, "Validate", 1, 1, force=True, duration=info.duration)
    return {
        "width": info.width,
        "height": info.height,
        "frames": info.frame_count,
        "duration": info.duration,
        "segments": plan.to_json() if plan is not None and len(plan.segments) > 1 else None,
    }


def _check_work(key: str, info: VideoInfo) -> None:
    """Refuse a video that would cost more than the service accepts: longer than
    ``--max-duration``, faster than ``--max-fps``, or more megapixels a second than
    ``--max-pixel-rate`` (a file of a few KB can hold hours of 8K frames)."""
    limit = _config().max_duration
    if info.duration > limit:
        raise JobFailed(
            f"{key}: too long ({info.duration:,.0f} s of video; the limit is {limit:,.0f} s)"
        )
    if info.fps > _config().max_fps:
        raise JobFailed(
            f"{key}: frame rate too high ({info.fps:,.1f} fps; the limit is {_config().max_fps:g})"
        )
    rate = info.width * info.height * info.fps / 1e6
    if rate > _config().max_pixel_rate:
        raise JobFailed(
            f"{key}: too many pixels a second ({info.width}x{info.height} at {info.fps:,.1f} fps"
            f" is {rate:,.1f} megapixels a second; the limit is {_config().max_pixel_rate:g})"
        )


@retrying_step("DetectFaces", attempts=4)
def detect_faces(job_id: str, request: JobRequest) -> int:
    """The faces file alone, for a face-detection job."""
    local = _fetch_input(job_id, request)
    faces = work_dir(job_id) / "faces.json"
    with _failing_job(request.key):
        result = detect_video(
            local, faces, _config().blur, progress=_progress(job_id, "DetectFaces")
        )
    return result.tracks


def _results(work_id: str, key: str) -> tuple[Path, Path]:
    """Where a blur job (or a re-render: ``work_id``) leaves its output and faces file."""
    work = work_dir(work_id)
    return work / f"output{_suffix(key)}", work / "faces.json"


def _detect_and_redact(job_id: str, request: JobRequest) -> dict[str, Any]:
    """The job's one pass: detect, track and anonymize, writing the output and faces
    file; the detections and a thumbnail of each face are kept for review."""
    local = _fetch_input(job_id, request)
    output, faces = _results(job_id, request.key)
    thumbnails = Thumbnails()
    with _failing_job(request.key):
        result = blur_video(
            local,
            output,
            _config().blur,
            faces_out=faces,
            progress=_progress(job_id, "Redact"),
            thumbnails=thumbnails,
        )
    _reviews().keep(job_id, faces, thumbnails.pictures)
    return run_summary(result)


def _render_options(options: BlurOptions) -> BlurOptions:
    """Redaction from reviewed detections: the faces file already holds every box the
    tracker held and filled in, so no hold is added again."""
    return dataclasses.replace(options, detect_every=1, hold=0.0)


def _redact_reviewed(
    job_id: str, render_id: str, request: JobRequest, edits: list[dict[str, Any]]
) -> dict[str, Any]:
    """A re-render: the job's kept detections with a reviewer's edits, anonymized
    without detecting again; the edited faces file is the one published."""
    local = _fetch_input(render_id, request)
    output, faces = _results(render_id, request.key)
    write_faces_file(apply_edits(_reviews().faces(job_id), parse_edits(edits)), faces)
    with _failing_job(request.key):
        result = redact_video(
            local,
            faces,
            output,
            _render_options(_config().blur),
            progress=_progress(job_id, "Rerender"),
        )
    return run_summary(result)


def _ensure_results(
    job_id: str, work_id: str, request: JobRequest, edits: list[dict[str, Any]] | None
) -> tuple[Path, Path]:
    """The output and faces file, made again if the work folder was lost (another machine
    resumed the job)."""
    output, faces = _results(work_id, request.key)
    if not (output.exists() and faces.exists()):
        if edits is None:
            _detect_and_redact(job_id, request)
        else:
            _redact_reviewed(job_id, work_id, request, edits)
    return output, faces


@retrying_step("Redact", attempts=4)
def redact(job_id: str, request: JobRequest) -> dict[str, Any]:
    """Detect, track and anonymize in one decode of the video, writing the output and
    its faces file; returns what the pass saw (``veil.report.run_summary``)."""
    return _detect_and_redact(job_id, request)


@retrying_step("Rerender", attempts=4)
def rerender(
    job_id: str, render_id: str, request: JobRequest, edits: list[dict[str, Any]]
) -> dict[str, Any]:
    """Anonymize the job's detections as a reviewer edited them."""
    return _redact_reviewed(job_id, render_id, request, edits)


@retrying_step("Audit", attempts=4)
def audit(
    job_id: str,
    work_id: str,
    request: JobRequest,
    edits: list[dict[str, Any]] | None,
    run: dict[str, Any],
) -> dict[str, Any]:
    """Look for faces left in the output (a second opinion, ``veil.audit``, within the
    budget ``service_sampling`` sets) and write the privacy report. Returns the audit,
    the report, and whether the job is held for review (decided here, by the settings of
    the process that ran the audit, so a replay decides the same). A segmented job's
    segments audited their own pieces (``run["audit"]``, joined): only the report is
    made here."""
    output, faces = _ensure_results(job_id, work_id, request, edits)
    with _failing_job(request.key):
        report = audit_and_report(
            input_path=_fetch_input(work_id, request),
            output_path=output,
            faces_path=faces,
            input_name=request.key,
            output_name=request.key,
            options=_config().blur if edits is None else _render_options(_config().blur),
            run=run,
            edits=edits or [],
            redacted_from="detections" if edits is None else "reviewed detections",
            progress=_progress(job_id, "Audit"),
            audit=run.get("audit"),  # a segmented job's, joined from its segments'
        )
    found = report["audit"]
    return {
        "audit": found,
        "report": report,
        "hold": not found["passed"] and _config().on_audit_finding == "hold",
    }


@retrying_step("Publish", attempts=8)
def publish(
    job_id: str,
    work_id: str,
    request: JobRequest,
    edits: list[dict[str, Any]] | None,
    report: dict[str, Any],
) -> dict[str, str]:
    """Upload the output and faces file (and the privacy report, with
    ``--write-report``); returns their key and versions, which the job's downloads ask
    for, so a later job's output under the same key is never served as this one's."""
    key = request.key
    # What this replaces must be older: once a newer upload replaced the input, its own
    # job publishes, and this one (finishing later) must not put the old video back.
    if request.etag and _current_version(request) not in (request.etag, None):
        raise JobFailed(
            f"{key} was replaced by a newer upload while this job ran; nothing was "
            "published (the new version is a job of its own)"
        )
    output, faces = _ensure_results(job_id, work_id, request, edits)
    store = _config().output
    # The faces file first: once the video is there, everything about it is.
    faces_key = faces_file_key(key)
    faces_info = store.upload(faces, faces_key)
    published = {}
    if _config().write_report:
        path = work_dir(work_id) / "report.json"
        write_report(report, path)
        report_info = store.upload(path, report_key(key))
        published = {"report_key": report_info.key, "report_etag": report_info.etag}
    output_info = store.upload(output, key)
    _progress_store().set(job_id, "Publish", 1, 1, force=True)
    return {
        "output_key": key,
        "output_etag": output_info.etag,
        "faces_key": faces_key,
        "faces_etag": faces_info.etag,
        **published,
    }


def _current_version(request: JobRequest) -> str | None:
    """The ETag the job's input key holds now; ``None`` once it was deleted (the version
    the job read is still the latest there was)."""
    try:
        return source_store(request).stat(request.key).etag
    except ObjectNotFoundError:
        return None


def _publish_or_hold(
    job_id: str,
    work_id: str,
    request: JobRequest,
    edits: list[dict[str, Any]] | None,
    run: dict[str, Any],
    checked: dict[str, Any],
    *,
    approved: bool = False,
) -> dict[str, Any]:
    """Publish, unless the audit found a face and nobody approved publishing it anyway:
    then the job ends held, ``NEEDS_REVIEW``, with nothing published."""
    found = {"faces": run.get("tracks"), "audit": checked["audit"], "report": checked["report"]}
    if checked["hold"] and not approved:
        return {"status": JobStatus.NEEDS_REVIEW.value, **found}
    return {**publish(job_id, work_id, request, edits, checked["report"]), **found}


def faces_file_key(key: str) -> str:
    """Where a blur job's faces file goes: ``KEY.faces.json``, beside the output."""
    return _beside(key, FACES_SUFFIX)


def report_key(key: str) -> str:
    """Where ``--write-report`` puts a job's privacy report: ``KEY.veil.json``."""
    return _beside(key, REPORT_SUFFIX)


def _beside(key: str, suffix: str) -> str:
    """``KEY`` + ``suffix``. A name with no room left for the suffix (a folder store's
    names end at 255 bytes) is shortened and keeps a digest of the whole name, so it
    stays the output's own."""
    folder, _, name = key.rpartition("/")
    beside = f"{name}{suffix}"
    if len(beside.encode()) > NAME_MAX:
        digest = hashlib.sha256(name.encode()).hexdigest()[:12]
        beside = fitting_name(name, f"-{digest}{suffix}")
    return f"{folder}/{beside}" if folder else beside


PIECES_PREFIX = f"{RESERVED_FOLDER}/segments"
"""Where a long job's segments leave their pieces in the output store, out of the way of
published keys (``veil.segment_jobs``)."""


def piece_keys(job_id: str, index: int, suffix: str) -> tuple[str, str]:
    """Where segment ``index`` of job ``job_id`` leaves its video and faces file."""
    folder = f"{PIECES_PREFIX}/{job_id}"
    return f"{folder}/{index}{suffix}", f"{folder}/{index}.faces.json"


@DBOS.step(name="Cleanup")
def cleanup(job_id: str, key: str | None = None) -> None:
    """Remove the job's work folder and, for a job of video ``key`` that ran in segments,
    the pieces they left in the output store (best effort: they are hidden under
    ``.veil/`` and never published)."""
    shutil.rmtree(_config().work_dir / job_id, ignore_errors=True)
    if key is None:
        return
    store = _config().output
    for segment in segments_of(job_id):
        index = int(segment.workflow_id.rsplit("-s", 1)[1])
        for piece in piece_keys(job_id, index, _suffix(key)):
            with contextlib.suppress(VeilError, OSError):
                store.delete(piece)


@DBOS.step(name="Notify")
def notify(url: str, payload: dict[str, Any], *, operator: bool = False) -> None:
    """Tell a webhook the job ended. Best effort: a dead webhook does not fail the job.

    A caller's URL is checked again now, against the addresses its host has now. The
    operator's own URL (``operator``: ``--notification-webhook``) is configuration, as
    trusted as the stores, which veil reaches on loopback or private addresses too: its
    address is not checked, so it works in every process, ``veil worker`` included,
    without also listing its host in ``--allow-webhook-host``.
    """
    allowed = None if operator else _config().webhook_hosts
    try:
        post_json(url, payload, allowed_hosts=allowed)
    except WebhookError as exc:
        log.warning("%s", exc)  # names the URL by safe_url: tokens stay out of logs


@DBOS.workflow(name=WORKFLOW_NAME)
def anonymize(data: dict[str, Any]) -> dict[str, Any]:
    """A blur job; ``data`` is a ``JobRequest.to_dict()``."""
    job_id = DBOS.workflow_id
    assert job_id is not None
    request = JobRequest.from_dict(data)  # refuses malformed input before anything runs

    def steps() -> dict[str, Any]:
        from veil import segment_jobs  # imports this module

        segments = validate(job_id, request)["segments"]
        if segments is None:
            run = redact(job_id, request)
        else:
            runs = segment_jobs.run_segments(job_id, request, segments)
            run = segment_jobs.join(job_id, request, segments, runs)
        checked = audit(job_id, job_id, request, None, run)
        return _publish_or_hold(job_id, job_id, request, None, run, checked)

    def message(status: str, result: dict[str, Any], error: str | None) -> dict[str, Any]:
        body = {"job_id": job_id, "key": request.key, "status": status, **result}
        return {**body, "error": error} if error else body

    return run_job(job_id, request, steps, message)


@DBOS.workflow(name=RERENDER_WORKFLOW)
def rerender_job(data: dict[str, Any]) -> dict[str, Any]:
    """A reviewer's re-render of blur job ``data["job_id"]``: its kept detections with
    ``data["edits"]``, then Audit and Publish as in the job itself; ``data["approve"]``
    publishes even if the audit finds a face (the reviewer says it is none)."""
    render_id = DBOS.workflow_id
    assert render_id is not None
    job_id = str(data["job_id"])
    request = JobRequest.from_dict(data["request"])
    edits = list(data["edits"])
    parse_edits(edits)  # refuses malformed edits before anything runs

    def steps() -> dict[str, Any]:
        run = rerender(job_id, render_id, request, edits)
        checked = audit(job_id, render_id, request, edits, run)
        approved = bool(data.get("approve"))
        return _publish_or_hold(job_id, render_id, request, edits, run, checked, approved=approved)

    def message(status: str, result: dict[str, Any], error: str | None) -> dict[str, Any]:
        body = {"job_id": job_id, "key": request.key, "status": status, **result}
        return {**body, "error": error} if error else body

    return run_job(render_id, request, steps, message)


def run_job(
    job_id: str,
    request: JobRequest,
    steps: Callable[[], dict[str, Any]],
    message: Callable[[str, dict[str, Any], str | None], dict[str, Any]],
) -> dict[str, Any]:
    """Run a workflow's steps, then remove its work folder and tell its webhook how it
    ended, whether it succeeded or failed."""
    # A face-detection job's webhook is always the operator's --notification-webhook: its
    # caller can only ask for it (NotificationChannel), never say where it goes.
    operator = isinstance(request, FaceDetectionRequest)
    try:
        result = steps()
    except Exception as exc:
        events.info("%s  FAILED  %s", job_id, exc)
        cleanup(job_id, request.key)
        if request.webhook_url:
            notify(request.webhook_url, message("FAILED", {}, str(exc)), operator=operator)
        raise
    faces = result.get("faces")
    status = str(result.get("status", "SUCCEEDED"))
    if status == JobStatus.NEEDS_REVIEW:
        findings = len(result["audit"]["findings"])
        events.info(
            "%s  NEEDS_REVIEW  %s (audit: %s faces left visible)", job_id, request.key, findings
        )
    else:
        events.info("%s  SUCCEEDED  %s (%s faces tracked)", job_id, request.key, faces)
    cleanup(job_id, request.key)
    if request.webhook_url:
        # The webhook hears the job's outcome, not the report: that is the API's.
        public = {k: v for k, v in result.items() if k != "report"}
        notify(request.webhook_url, message(status, public, None), operator=operator)
    return result
