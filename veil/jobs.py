"""Jobs: one per input object version, their status, progress and history.

A job *is* a DBOS workflow: its ID is derived from the object (store, key, ETag), so the
same upload announced many times starts one job, and a re-upload with new content
starts a new one. Status and the per-step history (start, end, error) come from DBOS's
own records; progress (frames done) lives in one small table beside them, in the same
database.

This module is the one place that reads and changes jobs (``get``, ``list_jobs``,
``cancel``, ``retry``, ``find``, ``count_active``) and maps DBOS's states to
``JobStatus``; the HTTP API calls only these. Submitting is ``veil.service``'s, which
holds the job queue.
"""

from __future__ import annotations

import datetime
import hashlib
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from typing import Any, Self

import sqlalchemy as sa
from dbos import DBOS

from veil.db import create_tables, database_errors, owned_by
from veil.errors import JobNotFoundError, JobStateError
from veil.review import Review, ReviewStore

STEPS = ("Validate", "Redact", "Audit", "Publish")
"""A blur job's steps, in order. Redact detects, tracks and anonymizes in one decode;
Audit looks for faces left in the output. A job whose audit finds one waits for review
instead of publishing; a reviewer's re-render runs Rerender, Audit and Publish."""
# Steps a job may have recorded: a re-render's, a face-detection job's (Validate,
# DetectFaces, StoreFaces), and DetectFaces in blur jobs run before Redact took
# detection in.
_RECORDED_STEPS = frozenset(STEPS) | {
    "Join",
    "JoinFaces",
    "Rerender",
    "DetectFaces",
    "StoreFaces",
}
WORKFLOW_NAME = "veil.anonymize"
RERENDER_WORKFLOW = "veil.rerender"
SEGMENT_WORKFLOW = "veil.segment"
SEGMENT_QUEUE = "veil-segments"
"""Segments of long jobs (``veil.segment_jobs``) wait here, apart from the jobs: a job
waiting for its segments must not hold the slot a segment needs."""
FACE_DETECTION_WORKFLOW = "veil.face_detection"


class JobStatus(StrEnum):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    NEEDS_REVIEW = "NEEDS_REVIEW"
    """The audit found a face in the output: nothing is published until a reviewer
    re-renders or approves it (``veil.review``)."""


_FROM_DBOS = {
    "ENQUEUED": JobStatus.QUEUED,
    "DELAYED": JobStatus.QUEUED,
    "PENDING": JobStatus.RUNNING,
    "SUCCESS": JobStatus.SUCCEEDED,
    "ERROR": JobStatus.FAILED,
    "CANCELLED": JobStatus.CANCELLED,
    "MAX_RECOVERY_ATTEMPTS_EXCEEDED": JobStatus.FAILED,
}


@dataclass(frozen=True)
class JobRequest:
    """What a blur job works on. Workflows take it as plain data (``to_dict``: DBOS
    stores a workflow's arguments) and turn it back into this at once (``from_dict``)."""

    key: str
    etag: str
    size: int
    webhook_url: str | None = None
    """Where to POST the job's ending, if anywhere."""
    options: dict[str, Any] | None = None
    """The ``BlurOptions`` (as a dict) the job runs with, recorded with it when it is
    queued (``veil.queue``): a job resumed after a crash, or a segment on a worker
    started with other flags, runs and reports exactly these. ``None`` in jobs queued
    before they were recorded: those use the running process's."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """The request ``to_dict`` made; ``TypeError`` on anything else."""
        names = {f.name for f in fields(cls)}
        if not isinstance(data, Mapping) or not names >= set(data):
            raise TypeError(f"not a {cls.__name__}: {data!r}")
        return cls(**data)


@dataclass(frozen=True)
class FaceDetectionRequest(JobRequest):
    """A face-detection job (the cloud API's ``StartFaceDetection``): the object, the
    bucket the caller named, its ``JobTag``, the request's identity (the parameters
    a repeated ``ClientRequestToken`` must match), and who asked."""

    bucket: str | None = None
    job_tag: str | None = None
    identity: dict[str, Any] = field(default_factory=dict)
    caller: str | None = None
    """The access key that started the job (``"anonymous"`` with signature checks off);
    the job is visible to it alone."""


FACE_DETECTION_PREFIX = "rk-"
"""How a face-detection job's ID starts."""
JOB_ID_PREFIXES = ("job-", FACE_DETECTION_PREFIX)
"""How every job's ID (and so its work folder's name) starts: blur and face-detection."""


def job_id_for(input_url: str, key: str, etag: str) -> str:
    """The job of one version of one object; the same everywhere, so events dedupe."""
    digest = hashlib.sha256(f"{input_url}\x00{key}\x00{etag}".encode()).hexdigest()
    return f"job-{digest[:24]}"


def segment_id(job_id: str, index: int) -> str:
    """The workflow (and work folder) of segment ``index`` of job ``job_id``."""
    return f"{job_id}-s{index}"


def face_detection_job_id(caller: str, token: str | None) -> str:
    """A face-detection job's ID: the same for the same caller and ``ClientRequestToken``
    (the cloud API's idempotency), a fresh one without a token."""
    if token is None:
        return FACE_DETECTION_PREFIX + uuid.uuid4().hex
    return FACE_DETECTION_PREFIX + hashlib.sha256(f"{caller}\0{token}".encode()).hexdigest()[:40]


@dataclass
class StepRecord:
    name: str
    started_at: float | None
    ended_at: float | None
    error: str | None = None


@dataclass
class StateChange:
    state: JobStatus
    at: float | None


@dataclass
class SegmentState:
    """One segment of a long job: its state, the process running or that ran it, and its
    frames done of its own."""

    index: int
    status: JobStatus
    worker: str | None
    frames_done: int = 0
    frames_total: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "status": self.status.value}


@dataclass
class Job:
    """A job as the API shows it; times are Unix seconds."""

    id: str
    key: str
    size: int
    status: JobStatus
    created_at: float | None
    updated_at: float | None
    error: str | None = None
    steps: list[StepRecord] = field(default_factory=list)
    history: list[StateChange] = field(default_factory=list)
    """QUEUED when submitted, RUNNING when a worker took it, then how it ended."""
    step: str | None = None
    """The step now running, or the last one that reported progress."""
    frames_done: int = 0
    frames_total: int | None = None
    duration: float | None = None
    """Seconds of video, once Validate has read it."""
    faces: int | None = None
    output_key: str | None = None
    output_etag: str | None = None
    """The version of the output this job published (a later job may replace it)."""
    faces_key: str | None = None
    faces_etag: str | None = None
    report_key: str | None = None
    report_etag: str | None = None
    """The privacy report published beside the output (``--write-report``), if any."""
    etag: str = ""
    """The version of the input this job read."""
    audit: dict[str, Any] | None = None
    """The audit of the latest output (``veil.audit.AuditResult.to_json``)."""
    held_key: str | None = None
    """Where the output its audit held waits for a reviewer to watch (``NEEDS_REVIEW``),
    at ``held_etag``; never published."""
    held_etag: str | None = None
    superseded: bool | None = None
    """Whether the version of the input this job read is gone (replaced by a newer
    upload, or deleted): its review and retry are closed. Checked for one job
    (``GET /api/jobs/{id}``); ``None`` in lists."""
    accepted_findings: int | None = None
    """Findings of that audit a reviewer saw and approved the output with ("Approve and
    publish as is"); ``None`` when no reviewer did."""
    report: dict[str, Any] | None = None
    """The privacy report of the latest output (``veil.report``)."""
    edits: list[dict[str, Any]] = field(default_factory=list)
    """A reviewer's edits the latest output was rendered with."""
    renders: int = 0
    """Re-renders a reviewer started."""
    reviewable: bool = False
    """Its detections are kept, so a reviewer may edit and re-render it."""
    segments: list[SegmentState] = field(default_factory=list)
    """A long job's segments (``veil.segment_jobs``), in order; empty for one piece."""
    retrying: dict[str, Any] | None = None
    """While a step waits to try again after a fault: ``step``, ``cause`` (plain words)
    and ``retry_at`` (Unix seconds); ``segment``, the index of the segment whose step it
    is, for a long job's."""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["status"] = self.status.value
        data["segments"] = [segment.to_dict() for segment in self.segments]
        data["history"] = [{"state": c.state.value, "at": c.at} for c in self.history]
        return data


def state_of(status: Any) -> JobStatus:
    """A DBOS ``WorkflowStatus``'s state as a ``JobStatus``."""
    return _FROM_DBOS.get(str(status.status), JobStatus.RUNNING)


def find(job_id: str, workflow: str = WORKFLOW_NAME) -> Any | None:
    """The DBOS status of job ``job_id`` if it is a ``workflow`` job, else ``None``."""
    with database_errors():
        status = DBOS.get_workflow_status(job_id)
    return status if status is not None and status.name == workflow else None


def get(
    job_id: str,
    progress: ProgressStore,
    reviews: ReviewStore | None = None,
    *,
    with_steps: bool = False,
) -> Job:
    """The blur job ``job_id`` as its latest re-render left it; ``JobNotFoundError`` if
    there is none."""
    status = find(job_id)
    if status is None:
        raise JobNotFoundError(job_id)
    review = reviews.get(job_id) if reviews is not None else None
    renders = _renders([review] if review else [])
    job = job_from_status(status, progress.get([job_id]).get(job_id))
    render = renders.get(review.render_id) if review and review.render_id else None
    job = with_review(job, review, render)
    if with_steps:
        add_segments(job, progress)
        with database_errors():
            job.steps = step_records(DBOS.list_workflow_steps(job_id))
            if review is not None and review.render_id in renders:
                job.steps += step_records(DBOS.list_workflow_steps(review.render_id))
    return job


def segments_of(job_id: str, *, active_only: bool = False) -> list[Any]:
    """The DBOS statuses of a job's segment workflows, in order."""
    status = [n for n, state in _FROM_DBOS.items() if state in _ACTIVE] if active_only else None
    with database_errors():
        found = DBOS.list_workflows(
            workflow_id_prefix=f"{job_id}-s",
            name=SEGMENT_WORKFLOW,
            status=status,
            load_input=False,
            load_output=False,
        )
    return sorted(found, key=lambda s: int(s.workflow_id.rsplit("-s", 1)[1]))


def add_segments(job: Job, progress: ProgressStore) -> None:
    """Fill in a long job's segments and, while they run, its progress over all of them."""
    found = segments_of(job.id)
    if not found:
        return
    rows = progress.get([s.workflow_id for s in found])
    job.segments = [
        SegmentState(
            index=int(s.workflow_id.rsplit("-s", 1)[1]),
            status=state_of(s),
            # DBOS names the process that queued a segment until one takes it.
            worker=None if state_of(s) is JobStatus.QUEUED else getattr(s, "executor_id", None),
            frames_done=int((rows.get(s.workflow_id) or {}).get("frames_done") or 0),
            frames_total=(rows.get(s.workflow_id) or {}).get("frames_total"),
        )
        for s in found
    ]
    if any(s.status in _ACTIVE for s in job.segments):
        job.step = "Segments"
        job.frames_done = sum(s.frames_done for s in job.segments)
        totals = [s.frames_total for s in job.segments]
        job.frames_total = sum(t for t in totals if t) if all(totals) else None
        waiting = [
            (s.index, rows[s.workflow_id]["retrying"])
            for s in found
            if state_of(s) in _ACTIVE and "retrying" in rows.get(s.workflow_id, {})
        ]
        if waiting and job.retrying is None:
            index, retry = waiting[0]
            job.retrying = {**retry, "segment": index}


def _renders(reviews: Sequence[Review]) -> dict[str, Any]:
    """The DBOS statuses of the re-renders ``reviews`` point to, by workflow ID."""
    ids = [r.render_id for r in reviews if r.render_id]
    if not ids:
        return {}
    with database_errors():
        found = DBOS.list_workflows(workflow_ids=ids, load_output=True)
    return {s.workflow_id: s for s in found}


def list_jobs(
    progress: ProgressStore,
    reviews: ReviewStore | None = None,
    limit: int | None = 100,
    *,
    created_before: float | None = None,
) -> list[Job]:
    """The newest ``limit`` blur jobs (all with ``None``), newest first; with
    ``created_before`` (Unix seconds), only those submitted before it."""
    before = (
        None
        if created_before is None
        else datetime.datetime.fromtimestamp(created_before, datetime.UTC).isoformat()
    )
    with database_errors():
        statuses = DBOS.list_workflows(
            name=WORKFLOW_NAME, sort_desc=True, limit=limit, load_output=True, end_time=before
        )
    ids = [s.workflow_id for s in statuses]
    rows = progress.get(ids)
    found = reviews.get_many(ids) if reviews is not None else {}
    renders = _renders(list(found.values()))
    jobs = []
    for status in statuses:
        review = found.get(status.workflow_id)
        render = renders.get(review.render_id) if review and review.render_id else None
        job = with_review(job_from_status(status, rows.get(status.workflow_id)), review, render)
        if job.status is JobStatus.RUNNING:
            add_segments(job, progress)  # one query per running job: few run at once
        jobs.append(job)
    return jobs


def cancel(job_id: str, progress: ProgressStore, reviews: ReviewStore | None = None) -> Job:
    """Cancel a blur job (its re-render, if one is the latest): it stops after the step
    it is in."""
    get(job_id, progress)
    review = reviews.get(job_id) if reviews is not None else None
    with database_errors():
        DBOS.cancel_workflow(review.render_id if review and review.render_id else job_id)
        for segment in segments_of(job_id, active_only=True):
            DBOS.cancel_workflow(segment.workflow_id)
    return get(job_id, progress, reviews)


_retrying = threading.Lock()


def retry(job_id: str, progress: ProgressStore) -> str:
    """Run a failed or cancelled job again from the start, as a new job; its ID. Refused
    while an earlier retry of it is queued or running: five clicks make one job."""
    job = get(job_id, progress)
    if job.status not in (JobStatus.FAILED, JobStatus.CANCELLED):
        raise JobStateError(
            job_id, f"is {job.status.value.lower()}; only failed or cancelled jobs are retried"
        )
    with _retrying:
        if running := active_retry(job_id):
            raise JobStateError(job_id, f"is being retried already, as {running}")
        with database_errors():
            return str(DBOS.fork_workflow(job_id, 1).workflow_id)


def active_retry(job_id: str) -> str | None:
    """The ID of a retry of job ``job_id`` that is queued or running, if any."""
    active = [name for name, state in _FROM_DBOS.items() if state in _ACTIVE]
    with database_errors():
        running = DBOS.list_workflows(
            forked_from=job_id, status=active, load_input=False, load_output=False
        )
    return str(running[0].workflow_id) if running else None


def count_active(workflow: str) -> int:
    """Jobs of ``workflow`` queued or running."""
    active = [name for name, state in _FROM_DBOS.items() if state in _ACTIVE]
    with database_errors():
        found = DBOS.list_workflows(
            name=workflow, status=active, load_input=False, load_output=False
        )
    return len(found)


_ACTIVE = (JobStatus.QUEUED, JobStatus.RUNNING)


def _seconds(ms: int | None) -> float | None:
    return None if ms is None else ms / 1000.0


def workflow_request(status: Any) -> dict[str, Any]:
    """The request dict a job's workflow was started with, from its DBOS status."""
    inputs = status.input or {}
    args = inputs.get("args") if isinstance(inputs, dict) else getattr(inputs, "args", None)
    return dict(args[0]) if args else {}


def job_from_status(status: Any, progress: dict[str, Any] | None = None) -> Job:
    """Build a ``Job`` from a DBOS ``WorkflowStatus`` (and its progress row)."""
    request = workflow_request(status)
    output = status.output if isinstance(status.output, dict) else {}
    progress = progress or {}
    error = str(status.error) if status.error is not None else None
    state = state_of(status)
    if state is JobStatus.SUCCEEDED and output.get("status") == JobStatus.NEEDS_REVIEW:
        state = JobStatus.NEEDS_REVIEW
    if state is JobStatus.QUEUED and progress.get("step"):
        state = JobStatus.RUNNING  # dequeued and working, DBOS has not said so yet
    history = [StateChange(JobStatus.QUEUED, _seconds(status.created_at))]
    started = getattr(status, "dequeued_at", None)
    if state is not JobStatus.QUEUED and (started or state is JobStatus.RUNNING):
        history.append(StateChange(JobStatus.RUNNING, _seconds(started)))
    if state in _ENDED:
        history.append(StateChange(state, _seconds(status.updated_at)))
    return Job(
        id=status.workflow_id,
        history=history,
        key=request.get("key", ""),
        size=int(request.get("size", 0)),
        status=state,
        created_at=_seconds(status.created_at),
        updated_at=_seconds(status.updated_at),
        error=error,
        step=progress.get("step"),
        frames_done=int(progress.get("frames_done") or 0),
        frames_total=progress.get("frames_total"),
        duration=progress.get("duration"),
        retrying=progress.get("retrying") if state not in _ENDED else None,
        faces=output.get("faces"),
        output_key=output.get("output_key"),
        output_etag=output.get("output_etag"),
        faces_key=output.get("faces_key"),
        faces_etag=output.get("faces_etag"),
        report_key=output.get("report_key"),
        report_etag=output.get("report_etag"),
        etag=str(request.get("etag", "")),
        audit=output.get("audit"),
        accepted_findings=output.get("accepted_findings"),
        held_key=output.get("held_key"),
        held_etag=output.get("held_etag"),
        report=output.get("report"),
    )


_ENDED = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.NEEDS_REVIEW)


def with_review(job: Job, review: Review | None, render: Any | None) -> Job:
    """``job`` as its review left it: the latest re-render (``render``, its DBOS status)
    decides its state, and what it published replaces what the job first did."""
    if review is None:
        return job
    job.reviewable = True
    job.edits = [edit.to_json() for edit in review.edits]
    job.renders = review.renders
    if render is None:
        return job
    latest = job_from_status(render)
    job.status = latest.status
    job.error = latest.error
    job.updated_at = latest.updated_at
    job.history += latest.history
    published = ("output_key", "output_etag", "faces_key", "faces_etag", "report_key")
    for name in (*published, "report_etag", "audit", "report"):
        if getattr(latest, name) is not None:
            setattr(job, name, getattr(latest, name))
    if latest.faces is not None:
        job.faces = latest.faces
    job.accepted_findings = latest.accepted_findings
    job.held_key, job.held_etag = latest.held_key, latest.held_etag
    return job


def step_records(steps: Sequence[Mapping[str, Any]]) -> list[StepRecord]:
    """The workflow's named steps from DBOS's step list, in order."""
    records = []
    for step in steps:
        name = str(step.get("function_name", "")).rsplit(".", 1)[-1]
        if name not in _RECORDED_STEPS:
            continue
        error = step.get("error")
        records.append(
            StepRecord(
                name=name,
                started_at=_seconds(step.get("started_at_epoch_ms")),
                ended_at=_seconds(step.get("completed_at_epoch_ms")),
                error=str(error) if error is not None else None,
            )
        )
    return records


class ProgressStore:
    """Frames done per job, shared by every process through the job database.

    Writes are throttled to one a second per job and step: progress is for people watching.
    """

    def __init__(self, url: str) -> None:
        self.engine = sa.create_engine(url, pool_pre_ping=True)
        self.table = sa.Table(
            "veil_progress",
            sa.MetaData(),
            sa.Column("job_id", sa.String(64), primary_key=True),
            sa.Column("step", sa.String(32)),
            sa.Column("frames_done", sa.Integer),
            sa.Column("frames_total", sa.Integer, nullable=True),
            sa.Column("duration", sa.Float, nullable=True),
            sa.Column("updated_at", sa.Float),
        )
        # A step waiting to try again after a fault (a store or the database out of
        # reach): which step, why, and when the next try is due.
        self.retries = sa.Table(
            "veil_retries",
            self.table.metadata,
            sa.Column("job_id", sa.String(64), primary_key=True),
            sa.Column("step", sa.String(32)),
            sa.Column("cause", sa.Text),
            sa.Column("retry_at", sa.Float),
        )
        create_tables(self.table.metadata, self.engine)
        self._last: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def set(
        self,
        job_id: str,
        step: str,
        done: int,
        total: int | None,
        *,
        force: bool = False,
        duration: float | None = None,
    ) -> None:
        now = time.time()
        with self._lock:
            last_step, last_time = self._last.get(job_id, ("", 0.0))
            if not force and step == last_step and now - last_time < 1.0:
                return
            self._last[job_id] = (step, now)
        row: dict[str, Any] = {
            "step": step,
            "frames_done": done,
            "frames_total": total,
            "updated_at": now,
        }
        if duration is not None:
            row["duration"] = duration
        with database_errors(), self.engine.begin() as conn:
            updated = conn.execute(
                self.table.update().where(self.table.c.job_id == job_id).values(**row)
            ).rowcount
            if not updated:
                conn.execute(self.table.insert().values(job_id=job_id, **row))

    def retrying(self, job_id: str, step: str, cause: str, retry_at: float) -> None:
        """Say that ``step`` of job ``job_id`` failed for ``cause`` and tries again at
        ``retry_at`` (Unix seconds), until ``retried``."""
        row = {"step": step, "cause": cause[:2000], "retry_at": retry_at}
        with database_errors(), self.engine.begin() as conn:
            updated = conn.execute(
                self.retries.update().where(self.retries.c.job_id == job_id).values(**row)
            ).rowcount
            if not updated:
                conn.execute(self.retries.insert().values(job_id=job_id, **row))

    def retried(self, job_id: str) -> None:
        """The step that was ``retrying`` got through (or the job ended)."""
        with database_errors(), self.engine.begin() as conn:
            conn.execute(self.retries.delete().where(self.retries.c.job_id == job_id))

    def forget(self, job_id: str) -> None:
        """Remove the progress of job ``job_id`` and of its segments and re-renders."""
        with database_errors(), self.engine.begin() as conn:
            for table in (self.table, self.retries):
                conn.execute(table.delete().where(owned_by(table.c.job_id, job_id)))

    def get(self, job_ids: list[str]) -> dict[str, dict[str, Any]]:
        """Each job's progress row, with ``retrying`` (``step``, ``cause``, ``retry_at``)
        where one of its steps waits to try again."""
        if not job_ids:
            return {}
        with database_errors(), self.engine.connect() as conn:
            rows = conn.execute(self.table.select().where(self.table.c.job_id.in_(job_ids)))
            found = {row.job_id: dict(row._mapping) for row in rows}
            r = self.retries.c
            waiting = conn.execute(self.retries.select().where(r.job_id.in_(job_ids)))
            for row in waiting:
                retry = {"step": row.step, "cause": row.cause, "retry_at": row.retry_at}
                found.setdefault(row.job_id, {"job_id": row.job_id})["retrying"] = retry
        return found
