"""Long jobs in segments, spread over every worker sharing the job database.

A blur job (or a face-detection job) whose video is longer than ``--segment-seconds``
is cut at keyframes by Validate (``veil.segments.plan_segments``). Each segment is a
child workflow on the segment queue (``SEGMENT_QUEUE``), so any worker of any machine
takes any segment: it downloads the input, processes its own frames with a margin
before (``veil.segments.blur_segment``) and uploads its piece (video and faces) to the
output store under ``.veil/segments/JOB/``, out of the way of published keys. The job
waits for its segments, then Join downloads the pieces, repairs (locally) any seam
whose tracking state differs from the one the segment before left (rare: the segment
is run again from that state until it meets its first run; exact by construction),
joins the videos by packet copy with the audio copied once, and merges the faces files;
Audit and Publish go on as for a one-piece job. The pieces are deleted when the job
ends.

The job's own workflow waits on the job queue; its segments run on their own queue so
a waiting job never holds the worker slot one of its segments needs.

A segment that fails for a reason in the video fails the job with that reason, and the
job's other segments are cancelled; a segment whose worker dies is recovered by
another (``veil.heartbeats``) and redone once; cancelling a job cancels its segments.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dbos import DBOS, SetWorkflowID

from veil import faces_file, runtime
from veil.audit import join_audits
from veil.errors import JobFailed
from veil.jobs import SEGMENT_WORKFLOW, FaceDetectionRequest, JobRequest, segment_id
from veil.keys import piece_keys
from veil.pipeline import RunResult
from veil.report import RunSummary, run_summary, service_audit
from veil.segments import (
    SegmentPlan,
    SegmentRun,
    blur_segment,
    join_faces,
    join_segments,
    join_thumbnails,
    parts,
    to_repair,
)
from veil.steps import (
    blur_options,
    cleanup,
    config,
    failing_job,
    fetch_input,
    progress_reporter,
    progress_store,
    restored,
    results_paths,
    retrying_step,
    review_store,
    segment_input,
    stop_if_cancelled,
    suffix_of,
    work_dir,
)
from veil.thumbnails import Thumbnails
from veil.video import probe

log = logging.getLogger("veil.workflow")


@dataclass(frozen=True)
class SegmentDone:
    """A segment's result: its ``SegmentRun.to_json()`` (``run``), the audit of its piece
    (``None`` for faces only), and the versions of the piece's objects it uploaded
    (``video``, ``faces``), which Join downloads and no others."""

    run: dict[str, Any]
    audit: dict[str, Any] | None
    versions: dict[str, str] = field(default_factory=dict)
    """Empty for a segment an older veil finished: Join reads what is there."""


@retrying_step("Segment", attempts=4)
def process_segment(
    job_id: str, request: JobRequest, plan_data: dict[str, Any], index: int, detect_only: bool
) -> SegmentDone:
    """Process one segment and upload its piece; returns its ``SegmentDone``. Each segment audits
    its own piece, so the audit is spread over the workers like the rest: Join only
    joins the audits (``veil.audit.join_audits``)."""
    own = segment_id(job_id, index)
    source = segment_input(job_id, request)  # the job's copy, or the input read in place
    segments = SegmentPlan.from_json(plan_data)
    work = work_dir(own)
    video = None if detect_only else work / f"piece{suffix_of(request.key)}"
    faces = work / "faces.json"
    thumbnails = Thumbnails()
    with failing_job(request.key):
        fps = probe(source).fps  # before the run: read in place, its header is read once
        run = blur_segment(
            source,
            segments,
            index,
            video,
            blur_options(request),
            faces_out=faces,
            progress=progress_reporter(own, "Segment"),
            thumbnails=None if detect_only else thumbnails,
        )
    progress_store().set(own, "Segment", run.frames, run.frames, force=True)
    with failing_job(request.key):
        audit = (
            None
            if video is None
            else _audit_piece(fps, video, faces, segments, run, blur_options(request).device)
        )
    video_key, faces_key = piece_keys(job_id, index, suffix_of(request.key))
    store = config().output
    # Not written for a job cancelled meanwhile: its cleanup may already have run.
    stop_if_cancelled(DBOS.workflow_id, own, "Segment")
    # Join reads exactly the versions written here: a piece replaced in the store by
    # anyone else fails the job instead of being published.
    versions = {}
    if video is not None:
        versions["video"] = store.upload(video, video_key).etag
        review_store().keep_thumbnails(own, thumbnails.pictures)
    versions["faces"] = store.upload(faces, faces_key).etag
    return SegmentDone(run=run.to_json(), audit=audit, versions=versions)


def _audit_piece(
    fps: float,
    video: Path,
    faces: Path,
    segments: SegmentPlan,
    run: SegmentRun,
    device: str,
) -> dict[str, Any]:
    """The audit of a segment's piece, within the budget a one-piece job has for as many
    frames, its times those of the whole video."""
    segment = segments.segments[run.index]
    numerator, denominator = segments.time_base
    start_ms = round(segment.start_pts * numerator * 1000 / denominator)
    return service_audit(
        video,
        faces,
        frames=run.frames,
        fps=fps,
        device=device,
        start_ms=start_ms,
    )


@DBOS.workflow(name=SEGMENT_WORKFLOW)
def segment_workflow(data: dict[str, Any]) -> SegmentDone:
    """One segment of a job: ``data`` holds the job's ID and request, the plan and the
    segment's index, and whether only faces are wanted (a face-detection job)."""
    job_id = str(data["job_id"])
    kind = FaceDetectionRequest if data["face_detection"] else JobRequest
    request = kind.from_dict(data["request"])
    index = int(data["index"])
    try:
        return process_segment(job_id, request, data["plan"], index, bool(data["detect_only"]))
    finally:
        cleanup(segment_id(job_id, index))


def run_segments(
    job_id: str, request: JobRequest, plan_data: dict[str, Any], *, detect_only: bool = False
) -> list[SegmentDone]:
    """Start every segment of the job as a child workflow on the segment queue and wait
    for them all (workflow code: DBOS records each start and each result). A segment
    that fails fails the job with its reason, after its siblings are cancelled."""
    request_data = request.to_dict()
    handles = []
    for segment in SegmentPlan.from_json(plan_data).segments:
        data = {
            "job_id": job_id,
            "request": request_data,
            "plan": plan_data,
            "index": segment.index,
            "detect_only": detect_only,
            "face_detection": isinstance(request, FaceDetectionRequest),
        }
        with SetWorkflowID(segment_id(job_id, segment.index)):
            handles.append(runtime.runtime().segment_queue.enqueue(segment_workflow, data))
    try:
        return [
            restored(SegmentDone, handle.get_result(polling_interval_sec=0.5)) for handle in handles
        ]
    except Exception as exc:
        for handle in handles:
            with contextlib.suppress(Exception):
                DBOS.cancel_workflow(handle.get_workflow_id())
        if isinstance(exc, JobFailed):
            raise
        raise JobFailed(f"{request.key}: a segment did not finish ({exc})") from None


@dataclass
class _Parts:
    """The runs whose frames make the video (``veil.segments.parts``), each with its
    video (``None`` for faces only), faces file and thumbnails by its own track ids."""

    runs: list[SegmentRun]
    videos: list[Path | None]
    faces: list[Path]
    thumbnails: list[dict[int, bytes]]


def _repaired(
    job_id: str,
    request: JobRequest,
    segments: SegmentPlan,
    done: list[SegmentDone],
    *,
    videos: bool,
) -> _Parts:
    """The segments' pieces (``done``: what ``process_segment`` returned), downloaded at
    the versions the segments wrote, with each seam that is not exact repaired here: the
    segment after it run again from the state the one before left, until it meets its
    first run (``veil.segments.to_repair``). Exact by construction."""
    work = work_dir(job_id) / "pieces"
    work.mkdir(exist_ok=True)
    suffix = suffix_of(request.key)
    runs = [SegmentRun.from_json(d.run) for d in done]
    own = {}
    for run, result in zip(runs, done, strict=True):
        versions = result.versions
        video_key, faces_key = piece_keys(job_id, run.index, suffix)
        video = work / f"{run.index}{suffix}" if videos else None
        faces = work / f"{run.index}.faces.json"
        config().output.download(faces_key, faces, versions.get("faces"))
        if video is not None:
            config().output.download(video_key, video, versions.get("video"))
        pictures = review_store().thumbnails_of(segment_id(job_id, run.index)) if videos else {}
        own[run.index] = (video, faces, pictures)
    local = fetch_input(job_id, request)
    repairs: dict[int, SegmentRun] = {}
    mended = {}
    while todo := to_repair(runs, repairs):
        for index, state in todo:
            video = work / f"{index}-repair{suffix}" if videos else None
            faces = work / f"{index}-repair.faces.json"
            thumbnails = Thumbnails()
            with failing_job(request.key):
                repairs[index] = blur_segment(
                    local,
                    segments,
                    index,
                    video,
                    blur_options(request),
                    faces_out=faces,
                    entry=state,
                    base=runs[index],
                    thumbnails=thumbnails if videos else None,
                )
            mended[index] = (video, faces, thumbnails.pictures)
    if repairs:
        log.info("%s: the seams before segments %s were repaired", job_id, sorted(repairs))
    made = parts(runs, repairs)
    files = [mended[p.index] if p.handed else own[p.index] for p in made]
    return _Parts(made, [f[0] for f in files], [f[1] for f in files], [f[2] for f in files])


@retrying_step("Join", attempts=4)
def join(
    job_id: str, request: JobRequest, plan_data: dict[str, Any], done: list[SegmentDone]
) -> RunSummary:
    """Join the segments' pieces (``done``: what ``process_segment`` returned) into the
    job's output and faces file, as Redact would have left them; returns what the passes
    saw (``veil.report.RunSummary``) with the audit of the whole output (``audit``), the
    segments' joined, or ``None`` where a seam was repaired: a repair's frames are not
    the ones a segment audited, so then the Audit step audits the output whole."""
    progress_store().set(job_id, "Join", 0, None, force=True)
    segments = SegmentPlan.from_json(plan_data)
    runs = [SegmentRun.from_json(d.run) for d in done]
    local = fetch_input(job_id, request)
    output, faces = results_paths(job_id, request.key)
    made = _repaired(job_id, request, segments, done, videos=True)
    videos = [v for v in made.videos if v is not None]
    with failing_job(request.key):
        joined = join_segments(
            local, segments, videos, output, blur_options(request), runs=made.runs
        )
        join_faces(made.runs, made.faces, faces, metadata_removed=joined.metadata_removed)
        info = probe(local)
    # Each part kept its tracks' thumbnails by its own ids; the job's are the video's.
    review_store().keep(job_id, faces, join_thumbnails(made.runs, made.thumbnails))
    for run in runs:
        review_store().keep_thumbnails(segment_id(job_id, run.index), {})
    total = RunResult(
        info,
        sum(r.frames for r in made.runs),
        _tracks_in(faces),  # segments count the tracks of their margins too
        analysed=sum(r.analysed for r in made.runs),
        followed=sum(r.followed for r in made.runs),
        metadata_removed=joined.metadata_removed,
    )
    repaired = any(run.handed for run in made.runs)
    audits = [d.audit for d in done if d.audit is not None]
    audit = None if repaired or len(audits) < len(done) else join_audits(audits)
    return run_summary(total, segments=len(runs), audit=audit)


def _tracks_in(faces: Path) -> int:
    """The tracks of a faces file."""
    return len(faces_file.track_ids(faces_file.load(faces)))


@retrying_step("JoinFaces", attempts=4)
def join_faces_only(
    job_id: str, request: JobRequest, plan_data: dict[str, Any], done: list[SegmentDone]
) -> int:
    """A face-detection job's segments' faces (``done``: what ``process_segment``
    returned) as one faces file in its work folder."""
    segments = SegmentPlan.from_json(plan_data)
    made = _repaired(job_id, request, segments, done, videos=False)
    with failing_job(request.key):
        join_faces(made.runs, made.faces, work_dir(job_id) / "faces.json")
    return _tracks_in(work_dir(job_id) / "faces.json")
