"""The job queue: how a blur job, a reviewer's re-render and a face-detection job are
started (``submit``, ``submit_rerender``, ``submit_face_detection``). The API, the
triggers and the CLI call these; importing this module registers every workflow with
DBOS.
"""

from __future__ import annotations

import dataclasses
from typing import TypeVar

from dbos import SetWorkflowID

from veil import jobs
from veil.db import database_errors
from veil.errors import JobStateError
from veil.face_detection import face_detection
from veil.jobs import FaceDetectionRequest, JobRequest, job_id_for
from veil.review import Edit, Reviewer
from veil.runtime import events, runtime
from veil.workflow import anonymize, rerender_job

R = TypeVar("R", bound=JobRequest)


def submit(request: JobRequest) -> str:
    """Queue a blur job for one object version; the same version always gives the same job."""
    job_id = job_id_for(runtime().config.input.url, request.key, request.etag)
    if job_id in runtime().purged:
        raise JobStateError(
            job_id,
            f"this version of {request.key} was purged; upload it again for a new job",
        )
    known = jobs.find(job_id) is not None  # an upload and the folder's poller both submit
    with database_errors(), SetWorkflowID(job_id):
        runtime().queue.enqueue(anonymize, _with_options(request).to_dict())
    if not known:
        events.info("%s  queued  %s", job_id, request.key)
    return job_id


def _with_options(request: R) -> R:
    """``request`` with the options it runs with recorded in it: this process's, unless
    it names its own (``JobRequest.options``)."""
    if request.options is not None:
        return request
    return dataclasses.replace(request, options=dataclasses.asdict(runtime().config.blur))


def submit_rerender(
    job_id: str,
    request: JobRequest,
    edits: list[Edit],
    *,
    approve: bool,
    renders: int,
    by: Reviewer | None = None,
) -> str:
    """Queue a reviewer's re-render of blur job ``job_id`` with ``edits`` (the whole
    list, applied to the job's own detections); ``renders`` is how many the reviewer saw,
    so two reviewers' concurrent re-renders cannot both start; ``by``: who asked, for the
    report. Returns its ID."""
    render_id = runtime().reviews.start_render(job_id, edits, renders)
    data = {
        "job_id": job_id,
        "request": request.to_dict(),
        "edits": [edit.to_json() for edit in edits],
        "approve": approve,
        "reviewer": (by or Reviewer()).to_json(),
    }
    with database_errors(), SetWorkflowID(render_id):
        runtime().queue.enqueue(rerender_job, data)
    events.info("%s  queued  re-render of %s (%d edits)", render_id, request.key, len(edits))
    return render_id


def submit_face_detection(job_id: str, request: FaceDetectionRequest) -> None:
    """Queue a face-detection job (the cloud API's StartFaceDetection) under ``job_id``."""
    with database_errors(), SetWorkflowID(job_id):
        runtime().queue.enqueue(face_detection, _with_options(request).to_dict())
    events.info("%s  queued  %s (face detection)", job_id, request.key)
