"""Long jobs in segments, spread over every worker sharing the job database.

A blur job (or a face-detection job) whose video is longer than ``--segment-seconds``
is cut at keyframes by Validate (``veil.segments.plan_segments``). Each segment is a
child workflow on the segment queue (``SEGMENT_QUEUE``), so any worker of any machine
takes any segment: it downloads the input, processes its own frames with a margin
before (``veil.segments.blur_segment``) and uploads its piece (video and faces) to the
output store under ``.veil/segments/JOB/``, out of the way of published keys. The job
waits for its segments, then Join downloads the pieces, runs again (locally) any
segment whose seam state differs from the one before (rare; exact by construction),
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
import json
import logging
from pathlib import Path
from typing import Any

from dbos import DBOS, SetWorkflowID

from veil import service
from veil.errors import JobFailed
from veil.jobs import SEGMENT_WORKFLOW, FaceDetectionRequest, JobRequest, segment_id
from veil.pipeline import RunResult
from veil.report import run_summary
from veil.segments import (
    SegmentPlan,
    SegmentRun,
    blur_segment,
    join_faces,
    join_segments,
    seam_ok,
    track_ids,
)
from veil.thumbnails import Thumbnails
from veil.video import probe
from veil.workflow import (
    _failing_job,
    _fetch_input,
    _progress,
    _results,
    _reviews,
    cleanup,
    piece_keys,
    retrying_step,
    work_dir,
)

log = logging.getLogger("veil.workflow")


def _config() -> service.ServiceConfig:
    return service.runtime().config


def _suffix(request: JobRequest) -> str:
    return Path(request.key).suffix.lower()


@retrying_step("Segment", attempts=4)
def process_segment(
    job_id: str, request: JobRequest, plan_data: dict[str, Any], index: int, detect_only: bool
) -> dict[str, Any]:
    """Process one segment and upload its piece; returns its ``SegmentRun``."""
    own = segment_id(job_id, index)
    local = _fetch_input(own, request)
    segments = SegmentPlan.from_json(plan_data)
    work = work_dir(own)
    video = None if detect_only else work / f"piece{_suffix(request)}"
    faces = work / "faces.json"
    thumbnails = Thumbnails()
    with _failing_job(request.key):
        run = blur_segment(
            local,
            segments,
            index,
            video,
            _config().blur,
            faces_out=faces,
            progress=_progress(own, "Segment"),
            thumbnails=None if detect_only else thumbnails,
        )
    service.runtime().progress.set(own, "Segment", run.frames, run.frames, force=True)
    video_key, faces_key = piece_keys(job_id, index, _suffix(request))
    store = _config().output
    if video is not None:
        store.upload(video, video_key)
        _reviews().keep_thumbnails(own, thumbnails.pictures)
    store.upload(faces, faces_key)
    return run.to_json()


@DBOS.workflow(name=SEGMENT_WORKFLOW)
def segment_workflow(data: dict[str, Any]) -> dict[str, Any]:
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
) -> list[dict[str, Any]]:
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
            handles.append(service.runtime().segment_queue.enqueue(segment_workflow, data))
    try:
        return [handle.get_result(polling_interval_sec=0.5) for handle in handles]
    except Exception as exc:
        for handle in handles:
            with contextlib.suppress(Exception):
                DBOS.cancel_workflow(handle.get_workflow_id())
        if isinstance(exc, JobFailed):
            raise
        raise JobFailed(f"{request.key}: a segment did not finish ({exc})") from None


def _pieces(
    job_id: str, request: JobRequest, count: int, *, videos: bool
) -> tuple[list[Path], list[Path]]:
    """The segments' pieces, downloaded into the job's work folder."""
    store = _config().output
    work = work_dir(job_id) / "pieces"
    work.mkdir(exist_ok=True)
    video_paths, faces_paths = [], []
    for index in range(count):
        video_key, faces_key = piece_keys(job_id, index, _suffix(request))
        faces = work / f"{index}.faces.json"
        store.download(faces_key, faces)
        faces_paths.append(faces)
        if videos:
            video = work / f"{index}{_suffix(request)}"
            store.download(video_key, video)
            video_paths.append(video)
    return video_paths, faces_paths


def _redo_inexact(
    job_id: str,
    request: JobRequest,
    segments: SegmentPlan,
    runs: list[SegmentRun],
    videos: list[Path] | None,
    faces: list[Path],
) -> list[int]:
    """Run again, here, each segment that entered its range in another state than the
    segment before left it, from that state: exact by construction. Returns them."""
    local = _fetch_input(job_id, request)
    redone = []
    for n in range(1, len(runs)):
        if seam_ok(runs[n - 1], runs[n]):
            continue
        redone.append(n)
        thumbnails = Thumbnails()
        with _failing_job(request.key):
            runs[n] = blur_segment(
                local,
                segments,
                n,
                videos[n] if videos is not None else None,
                _config().blur,
                faces_out=faces[n],
                entry=runs[n - 1].exit,
                thumbnails=thumbnails if videos is not None else None,
            )
        if videos is not None:
            _reviews().keep_thumbnails(segment_id(job_id, n), thumbnails.pictures)
    if redone:
        log.info(
            "%s: seams of segments %s were not exact; those segments ran again", job_id, redone
        )
    return redone


@retrying_step("Join", attempts=4)
def join(
    job_id: str, request: JobRequest, plan_data: dict[str, Any], runs_data: list[dict[str, Any]]
) -> dict[str, Any]:
    """Join the segments' pieces into the job's output and faces file, as Redact would
    have left them; returns what the passes saw (``veil.report.run_summary``)."""
    service.runtime().progress.set(job_id, "Join", 0, None, force=True)
    segments = SegmentPlan.from_json(plan_data)
    runs = [SegmentRun.from_json(r) for r in runs_data]
    local = _fetch_input(job_id, request)
    output, faces = _results(job_id, request.key)
    videos, pieces = _pieces(job_id, request, len(runs), videos=True)
    _redo_inexact(job_id, request, segments, runs, videos, pieces)
    with _failing_job(request.key):
        joined = join_segments(local, segments, videos, output, _config().blur)
        join_faces(runs, pieces, faces, metadata_removed=joined.metadata_removed)
        info = probe(local)
    # Each segment kept its tracks' thumbnails by its own ids; the job's are global.
    thumbnails: dict[int, bytes] = {}
    for run, global_id in zip(runs, track_ids(runs), strict=True):
        for track, picture in _reviews().thumbnails_of(segment_id(job_id, run.index)).items():
            thumbnails.setdefault(global_id(track), picture)
    _reviews().keep(job_id, faces, thumbnails)
    for run in runs:
        _reviews().keep_thumbnails(segment_id(job_id, run.index), {})
    total = RunResult(
        info,
        sum(r.frames for r in runs),
        _tracks_in(faces),  # segments count the tracks of their margins too
        analysed=sum(r.analysed for r in runs),
        followed=sum(r.followed for r in runs),
        metadata_removed=joined.metadata_removed,
    )
    return {**run_summary(total), "segments": len(runs)}


def _tracks_in(faces: Path) -> int:
    """The tracks of a faces file."""
    entries = json.loads(faces.read_text(encoding="utf-8"))["Faces"]
    return len({e["Face"]["TrackId"] for e in entries if "TrackId" in e["Face"]})


@retrying_step("JoinFaces", attempts=4)
def join_faces_only(
    job_id: str, request: JobRequest, plan_data: dict[str, Any], runs_data: list[dict[str, Any]]
) -> int:
    """A face-detection job's segments' faces as one faces file in its work folder."""
    segments = SegmentPlan.from_json(plan_data)
    runs = [SegmentRun.from_json(r) for r in runs_data]
    _, pieces = _pieces(job_id, request, len(runs), videos=False)
    _redo_inexact(job_id, request, segments, runs, None, pieces)
    with _failing_job(request.key):
        join_faces(runs, pieces, work_dir(job_id) / "faces.json")
    return _tracks_in(work_dir(job_id) / "faces.json")
