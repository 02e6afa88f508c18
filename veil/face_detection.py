"""The face-detection job's durable workflow (the cloud API's ``StartFaceDetection``):
Validate → DetectFaces → StoreFaces (a long video: Validate → its segments → JoinFaces
→ StoreFaces, ``veil.segment_jobs``), then the faces file waits in the output store for
``GetFaceDetection`` (``veil.api.rekognition``) to page through.

It lives outside ``veil.api`` because every worker registers it with DBOS, and a worker
runs no HTTP app.
"""

from __future__ import annotations

import time
from typing import Any

from dbos import DBOS

from veil import segment_jobs
from veil.jobs import FACE_DETECTION_WORKFLOW, FaceDetectionRequest
from veil.keys import face_detection_key
from veil.steps import config, retrying_step, run_job, work_dir
from veil.workflow import detect_faces, validate


@retrying_step("StoreFaces", attempts=8)
def store_faces(job_id: str) -> str:
    key = face_detection_key(job_id)
    config().output.upload(work_dir(job_id) / "faces.json", key)
    return key


@DBOS.workflow(name=FACE_DETECTION_WORKFLOW)
def face_detection(data: dict[str, Any]) -> dict[str, Any]:
    """Validate and DetectFaces, then keep the faces file for GetFaceDetection to page
    through; ``data`` is a ``FaceDetectionRequest.to_dict()``."""
    job_id = DBOS.workflow_id
    assert job_id is not None
    request = FaceDetectionRequest.from_dict(data)

    def steps() -> dict[str, Any]:
        segments = validate(job_id, request).segments
        if segments is None:
            faces = detect_faces(job_id, request)
        else:
            runs = segment_jobs.run_segments(job_id, request, segments, detect_only=True)
            faces = segment_jobs.join_faces_only(job_id, request, segments, runs)
        return {"faces_key": str(store_faces(job_id)), "faces": faces}

    def message(status: str, _: dict[str, Any], error: str | None) -> dict[str, Any]:
        return _completion(job_id, request, status, error)

    return run_job(job_id, request, steps, message)


def _completion(
    job_id: str, request: FaceDetectionRequest, status: str, error: str | None
) -> dict[str, Any]:
    """The completion message, shaped like the cloud's SNS notification."""
    message: dict[str, Any] = {
        "JobId": job_id,
        "Status": status,
        "API": "StartFaceDetection",
        "Timestamp": int(time.time() * 1000),
        "Video": {"S3ObjectName": request.key, "S3Bucket": request.bucket},
    }
    if request.job_tag:
        message["JobTag"] = request.job_tag
    if error:
        message["StatusMessage"] = error
    return message
