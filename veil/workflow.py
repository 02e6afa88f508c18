"""The blur job's durable workflows and their steps, on DBOS.

A blur job is Validate → Redact → Audit → Publish. Redact decodes the video once:
detection, tracking, redaction and encoding share that pass (``blur_video``), which
writes the faces file beside the output, so a job's output and faces.json are those of
``veil blur --faces-out`` with the options recorded with the job. A video longer than
``--segment-seconds`` is cut into segments by Validate and spread over the workers
(``veil.segment_jobs``), its Redact replaced by its segments and Join. Audit looks for
faces left in the output and writes the privacy report; a finding holds the job (``NEEDS_REVIEW``, nothing
published) unless ``--on-audit-finding publish``. A reviewer's re-render is a workflow of
its own (``rerender_job``): Rerender (the job's kept detections with the edits, no
detection) → Audit → Publish. A face-detection job (the cloud API's
``StartFaceDetection``, ``veil.face_detection``) is Validate → DetectFaces → StoreFaces.

Each step is a DBOS step: its result is checkpointed, so a worker killed mid-job
resumes at the step it was in, not from the start. Storage faults are retried with
backoff; anything wrong with the video itself fails the job at once with a message in
plain words. The input object is only read; the output is uploaded only by Publish,
once the whole video is done.

What every job's steps share (the retrying step, the input copy, progress, failing in
plain words, cleaning up) is in ``veil.steps``.
"""

from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path
from typing import Any

from dbos import DBOS

from veil import faces_file, segment_jobs
from veil.errors import (
    InvalidKeyError,
    JobFailed,
    ObjectNotFoundError,
    VeilError,
)
from veil.jobs import (
    RERENDER_WORKFLOW,
    WORKFLOW_NAME,
    JobRequest,
    JobStatus,
)
from veil.keys import check_media_key, faces_file_key, held_key, report_key
from veil.photos import audit_photo, blur_photo, is_photo_path, open_photo, redact_photo
from veil.pipeline import BlurOptions, blur_video, detect_video, redact_video
from veil.report import RunSummary, audit_and_report, photo_summary, run_summary, write_report
from veil.review import apply_edits, parse_edits
from veil.segments import plan_segments
from veil.steps import (
    blur_options,
    config,
    failing_job,
    fetch_input,
    progress_reporter,
    progress_store,
    results_paths,
    retrying_step,
    review_store,
    run_job,
    source_store,
    suffix_of,
    work_dir,
)
from veil.thumbnails import Thumbnails
from veil.video import VideoInfo, probe


@dataclasses.dataclass(frozen=True)
class Validated:
    """What Validate read of the input, and how the job runs: in one piece, or in the
    segments of ``segments`` (``SegmentPlan.to_json()``)."""

    width: int
    height: int
    frames: int | None
    duration: float
    segments: dict[str, Any] | None


@dataclasses.dataclass(frozen=True)
class Checked:
    """The Audit step's result: the audit (``AuditResult.to_json()``), the privacy report,
    and whether the job is held for review."""

    audit: dict[str, Any]
    report: dict[str, Any]
    hold: bool
    held_key: str | None = None
    """Where a held output waits for its reviewer (``keys.held_key``), at ``held_etag``."""
    held_etag: str | None = None


@dataclasses.dataclass(frozen=True)
class Published:
    """Where Publish put the output and faces file (and report), at which versions: the
    job's downloads ask for exactly these."""

    output_key: str
    output_etag: str
    faces_key: str
    faces_etag: str
    report_key: str | None = None
    report_etag: str | None = None


@retrying_step("Validate", attempts=6)
def validate(job_id: str, request: JobRequest) -> Validated:
    key = request.key
    progress_store().set(job_id, "Validate", 0, None, force=True)
    try:
        check_media_key(key)  # every way in checked it; a job queued by an older veil may not
    except InvalidKeyError as exc:
        raise JobFailed(f"{key}: {exc.reason}") from None
    size = source_store(request).stat(key).size
    limit = config().max_bytes
    if size > limit:
        raise JobFailed(f"{key}: too large ({size:,} bytes; the limit is {limit:,})")
    local = fetch_input(job_id, request)
    if is_photo_path(key):
        with failing_job(key):
            photo = open_photo(local)  # its header, size and pixels checked
        progress_store().set(job_id, "Validate", 1, 1, force=True, duration=0.0)
        return Validated(
            width=photo.width, height=photo.height, frames=1, duration=0.0, segments=None
        )
    seconds = config().segment_seconds
    with failing_job(key):
        info = probe(local)
    _check_work(key, info)
    with failing_job(key):
        # Long videos are cut into segments here, from the packets alone (cheap): the
        # decision is recorded with the step, so a replay decides the same.
        plan = (
            plan_segments(local, seconds, blur_options(request))
            if 0 < seconds < info.duration
            else None
        )
    progress_store().set(job_id, "Validate", 1, 1, force=True, duration=info.duration)
    return Validated(
        width=info.width,
        height=info.height,
        frames=info.frame_count,
        duration=info.duration,
        segments=plan.to_json() if plan is not None and len(plan.segments) > 1 else None,
    )


def _check_work(key: str, info: VideoInfo) -> None:
    """Refuse a video that would cost more than the service accepts: longer than
    ``--max-duration``, faster than ``--max-fps``, or more megapixels a second than
    ``--max-pixel-rate`` (a file of a few KB can hold hours of 8K frames)."""
    limit = config().max_duration
    if info.duration > limit:
        raise JobFailed(
            f"{key}: too long ({info.duration:,.0f} s of video; the limit is {limit:,.0f} s)"
        )
    if info.fps > config().max_fps:
        raise JobFailed(
            f"{key}: frame rate too high ({info.fps:,.1f} fps; the limit is {config().max_fps:g})"
        )
    rate = info.width * info.height * info.fps / 1e6
    if rate > config().max_pixel_rate:
        raise JobFailed(
            f"{key}: too many pixels a second ({info.width}x{info.height} at {info.fps:,.1f} fps"
            f" is {rate:,.1f} megapixels a second; the limit is {config().max_pixel_rate:g})"
        )


@retrying_step("DetectFaces", attempts=4)
def detect_faces(job_id: str, request: JobRequest) -> int:
    """The faces file alone, for a face-detection job."""
    local = fetch_input(job_id, request)
    faces = work_dir(job_id) / "faces.json"
    with failing_job(request.key):
        result = detect_video(
            local, faces, blur_options(request), progress=progress_reporter(job_id, "DetectFaces")
        )
    return result.tracks


def _detect_and_redact(job_id: str, request: JobRequest) -> RunSummary:
    """The job's one pass: detect, track and anonymize, writing the output and faces
    file; the detections and a thumbnail of each face are kept for review."""
    local = fetch_input(job_id, request)
    output, faces = results_paths(job_id, request.key)
    thumbnails = Thumbnails()
    if is_photo_path(request.key):
        with failing_job(request.key):
            options = blur_options(request)
            hidden = blur_photo(local, output, options, faces_out=faces, thumbnails=thumbnails)
        review_store().keep(job_id, faces, thumbnails.pictures)
        return photo_summary(hidden)
    with failing_job(request.key):
        result = blur_video(
            local,
            output,
            blur_options(request),
            faces_out=faces,
            progress=progress_reporter(job_id, "Redact"),
            thumbnails=thumbnails,
        )
    review_store().keep(job_id, faces, thumbnails.pictures)
    return run_summary(result)


def _render_options(options: BlurOptions) -> BlurOptions:
    """Redaction from reviewed detections: the faces file already holds every box the
    tracker held and filled in, so no hold is added again."""
    return dataclasses.replace(options, detect_every=1, hold=0.0)


def _redact_reviewed(
    job_id: str, render_id: str, request: JobRequest, edits: list[dict[str, Any]]
) -> RunSummary:
    """A re-render: the job's kept detections with a reviewer's edits, anonymized
    without detecting again; the edited faces file is the one published."""
    local = fetch_input(render_id, request)
    output, faces = results_paths(render_id, request.key)
    faces_file.save(apply_edits(review_store().faces(job_id), parse_edits(edits)), faces)
    if is_photo_path(request.key):
        with failing_job(request.key):
            hidden = redact_photo(local, faces, output, blur_options(request))
        return photo_summary(hidden)
    with failing_job(request.key):
        result = redact_video(
            local,
            faces,
            output,
            _render_options(blur_options(request)),
            progress=progress_reporter(job_id, "Rerender"),
        )
    return run_summary(result)


def _ensure_results(
    job_id: str, work_id: str, request: JobRequest, edits: list[dict[str, Any]] | None
) -> tuple[Path, Path]:
    """The output and faces file, made again if the work folder was lost (another machine
    resumed the job)."""
    output, faces = results_paths(work_id, request.key)
    if not (output.exists() and faces.exists()):
        if edits is None:
            _detect_and_redact(job_id, request)
        else:
            _redact_reviewed(job_id, work_id, request, edits)
    return output, faces


@retrying_step("Redact", attempts=4)
def redact(job_id: str, request: JobRequest) -> RunSummary:
    """Detect, track and anonymize in one decode of the video, writing the output and
    its faces file; returns what the pass saw (``veil.report.run_summary``)."""
    return _detect_and_redact(job_id, request)


@retrying_step("Rerender", attempts=4)
def rerender(
    job_id: str, render_id: str, request: JobRequest, edits: list[dict[str, Any]]
) -> RunSummary:
    """Anonymize the job's detections as a reviewer edited them."""
    return _redact_reviewed(job_id, render_id, request, edits)


@retrying_step("Audit", attempts=4)
def audit(
    job_id: str,
    work_id: str,
    request: JobRequest,
    edits: list[dict[str, Any]] | None,
    run: RunSummary,
) -> Checked:
    """Look for faces left in the output (a second opinion, ``veil.audit``, within the
    budget ``service_sampling`` sets) and write the privacy report. Returns the audit,
    the report, and whether the job is held for review (decided here, by the settings of
    the process that ran the audit, so a replay decides the same). A segmented job's
    segments audited their own pieces (``run.audit``, joined): only the report is
    made here."""
    output, faces = _ensure_results(job_id, work_id, request, edits)
    with failing_job(request.key):
        report = audit_and_report(
            input_path=fetch_input(work_id, request),
            output_path=output,
            faces_path=faces,
            input_name=request.key,
            output_name=request.key,
            options=blur_options(request)
            if edits is None
            else _render_options(blur_options(request)),
            run=run,
            edits=edits or [],
            redacted_from="detections" if edits is None else "reviewed detections",
            progress=progress_reporter(job_id, "Audit"),
            # A segmented job's, joined from its segments'; a photo's, its one look.
            audit=audit_photo(output).to_json() if is_photo_path(request.key) else run.audit,
        )
    found = report["audit"]
    hold = not found["passed"] and config().on_audit_finding == "hold"
    if not hold:
        return Checked(audit=found, report=report, hold=False)
    # Kept where a reviewer can watch it beside the original: never a published key.
    held = config().output.upload(output, held_key(job_id, suffix_of(request.key)))
    return Checked(audit=found, report=report, hold=True, held_key=held.key, held_etag=held.etag)


@retrying_step("Publish", attempts=8)
def publish(
    job_id: str,
    work_id: str,
    request: JobRequest,
    edits: list[dict[str, Any]] | None,
    report: dict[str, Any],
) -> Published:
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
    store = config().output
    # The faces file first: once the video is there, everything about it is.
    faces_key = faces_file_key(key)
    faces_info = store.upload(faces, faces_key)
    report_info = None
    if config().write_report:
        path = work_dir(work_id) / "report.json"
        write_report(report, path)
        report_info = store.upload(path, report_key(key))
    output_info = store.upload(output, key)
    with contextlib.suppress(VeilError, OSError):  # a held render this one replaces
        store.delete(held_key(job_id, suffix_of(key)))
    progress_store().set(job_id, "Publish", 1, 1, force=True)
    return Published(
        output_key=key,
        output_etag=output_info.etag,
        faces_key=faces_key,
        faces_etag=faces_info.etag,
        report_key=report_info.key if report_info else None,
        report_etag=report_info.etag if report_info else None,
    )


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
    run: RunSummary,
    checked: Checked,
    *,
    approved: bool = False,
    reviewer: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Publish, unless the audit found a face and nobody approved publishing it anyway:
    then the job ends held, ``NEEDS_REVIEW``, with nothing published. A reviewer's
    approval of an output with findings is said in its result and its report
    (``accepted_findings``); who asked for a re-render (``veil.review.Reviewer``) is in
    its report as ``reviewed_by``. Returns the job's result as the API shows it
    (``veil.jobs.job_from_status``)."""
    report = checked.report
    if reviewer is not None:
        report = {**report, "reviewed_by": {**reviewer, "approved": approved}}
    if checked.hold and not approved:
        held = {"faces": run.tracks, "audit": checked.audit, "report": report}
        where = {"held_key": checked.held_key, "held_etag": checked.held_etag}
        return {"status": JobStatus.NEEDS_REVIEW.value, **held, **where}
    accepted = len(checked.audit["findings"]) if approved else 0
    report = {**report, "accepted_findings": accepted} if accepted else report
    published = publish(job_id, work_id, request, edits, report)
    shown = {k: v for k, v in dataclasses.asdict(published).items() if v is not None}
    found = {"faces": run.tracks, "audit": checked.audit, "report": report}
    return {**shown, **found, **({"accepted_findings": accepted} if accepted else {})}


@DBOS.workflow(name=WORKFLOW_NAME)
def anonymize(data: dict[str, Any]) -> dict[str, Any]:
    """A blur job; ``data`` is a ``JobRequest.to_dict()``."""
    job_id = DBOS.workflow_id
    assert job_id is not None
    request = JobRequest.from_dict(data)  # refuses malformed input before anything runs

    def steps() -> dict[str, Any]:

        segments = validate(job_id, request).segments
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
        return _publish_or_hold(
            job_id,
            render_id,
            request,
            edits,
            run,
            checked,
            approved=approved,
            reviewer=data.get("reviewer") or {},  # re-renders queued by an older veil: {}
        )

    def message(status: str, result: dict[str, Any], error: str | None) -> dict[str, Any]:
        body = {"job_id": job_id, "key": request.key, "status": status, **result}
        return {**body, "error": error} if error else body

    return run_job(render_id, request, steps, message)
