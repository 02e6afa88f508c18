"""The cloud face-detection API, wire-compatible: ``StartFaceDetection`` and
``GetFaceDetection`` for videos, ``DetectFaces`` for a picture, over JSON 1.1 on
``POST /``, SigV4-signed, so an unchanged ``boto3.client("rekognition",
endpoint_url=...)`` works against veil.

botocore's service model (``botocore/data/rekognition/*/service-2.json``) is the
authority for names, types and constraints. Jobs are veil's own face-detection
workflow (Validate → DetectFaces → StoreFaces), and the faces returned are the same tracked
detections the blurring uses, at every frame's timestamp.
"""

from __future__ import annotations

import base64
import binascii
import errno
import json
import math
import re
import tempfile
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import botocore.session
import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from veil import faces_file, jobs
from veil.api.sigv4 import check_headers, verify
from veil.detections import Detections
from veil.detector import CenterFace
from veil.errors import (
    ApiError,
    FacesFileError,
    FrameSizeError,
    InvalidKeyError,
    NotAPhotoError,
    SignatureError,
    StorageError,
)
from veil.face_details import face_details
from veil.jobs import FACE_DETECTION_WORKFLOW, FaceDetectionRequest, JobStatus, workflow_request
from veil.keys import check_not_reserved, face_detection_key
from veil.photos import detector_for, find_faces, open_photo
from veil.queue import submit_face_detection
from veil.runtime import ServiceConfig
from veil.settings import MAX_FACE_JOBS, REGION
from veil.storage import ObjectInfo, bucket_store
from veil.storage.buckets import may_read

TARGET_PREFIX = "RekognitionService."
CONTENT_TYPE = "application/x-amz-json-1.1"
MAX_RESULTS = 1000
MAX_IMAGE_BYTES = 5 * 1024 * 1024
"""DetectFaces' ``Image.Bytes``, at most, as the cloud takes (decoded)."""
MAX_S3_IMAGE_BYTES = 15 * 1024 * 1024
"""DetectFaces' ``Image.S3Object``, at most, as the cloud takes."""
IMAGE_FORMATS = ("JPEG", "MPO", "PNG")
"""What the cloud's DetectFaces reads (a phone's JPEG with previews, MPO, is a JPEG);
veil's own photo jobs take more."""
MAX_IMAGE_PIXELS = 36_000_000
"""Pixels a DetectFaces picture may have (a 5 MB JPEG can claim far more; the cloud
takes phone and camera pictures, up to about 36 MP): about 45 s of the detector on 2
cores, and a bounded decode."""

_MODEL = botocore.session.get_session().get_service_model("rekognition")
"""The cloud API's service model, as botocore ships it: the authority for names and
constraints (read from the package's data files, nothing fetched)."""


def _constraint(shape: str) -> tuple[re.Pattern[str], int, int]:
    """A string shape's pattern and length bounds from the model. Matched with
    ``fullmatch``: the model's ``^...$`` anchors would also let a trailing newline
    through ``$``. Lengths the model leaves open are bounded at 2048."""
    meta = _MODEL.shape_for(shape).metadata
    pattern = str(meta["pattern"])
    if pattern.startswith("(") and pattern.endswith(")"):
        pattern = pattern[1:-1]
    pattern = pattern.removeprefix("^").removesuffix("$")
    return re.compile(pattern), int(meta.get("min", 1)), int(meta.get("max", 2048))


_PATTERNS = {
    name: _constraint(shape)
    for name, shape in (
        ("ClientRequestToken", "ClientRequestToken"),
        ("JobTag", "JobTag"),
        ("JobId", "JobId"),
        ("Bucket", "S3Bucket"),
        ("SNSTopicArn", "SNSTopicArn"),
        ("RoleArn", "RoleArn"),
    )
}
# What the cloud answers for any object it cannot read: missing, in a bucket it may not
# read, or refused by the store. One answer for all, so callers cannot probe buckets.
_UNREADABLE = (
    "Unable to get object metadata from S3. Check object key, region and/or access permissions."
)


@dataclass
class RekognitionConfig:
    """Access keys (access key ID → secret; ``None`` turns signature checks off), the
    region signatures must be scoped to, where completions are announced for jobs with a
    ``NotificationChannel``, and limits."""

    secrets: dict[str, str] | None = None
    region: str = REGION
    notification_webhook: str | None = None
    max_face_jobs: int = MAX_FACE_JOBS
    rate_limit: float | None = None
    buckets: frozenset[str] = frozenset()
    """Buckets StartFaceDetection may read besides the service's input bucket."""
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    start_lock: threading.Lock = field(default_factory=threading.Lock)
    """Held from counting the jobs in progress to enqueueing one, so that concurrent
    starts cannot all see room under ``max_face_jobs``. Only ``veil serve`` serves the
    API, in one process, so a lock in memory is enough."""

    def take_token(self, who: str) -> None:
        """A token bucket per access key: ``rate_limit`` requests a second, bursts of twice that."""
        if self.rate_limit is None:
            return
        now = time.monotonic()
        burst = 2 * self.rate_limit
        with self._lock:
            tokens, last = self._buckets.get(who, (burst, now))
            tokens = min(burst, tokens + (now - last) * self.rate_limit)
            if tokens < 1:
                self._buckets[who] = (tokens, now)
                raise ApiError("ThrottlingException", "Rate exceeded")
            self._buckets[who] = (tokens - 1, now)


def install(app: FastAPI, service: ServiceConfig, config: RekognitionConfig) -> None:
    """Serve the API on ``POST /`` of ``app``."""
    faces_cache = _FacesCache(service)
    photos = _PhotoFaces(service)

    @app.post("/", include_in_schema=False)
    async def rekognition(request: Request) -> Response:
        headers = {k.lower(): v for k, v in request.headers.items()}
        request_id = str(uuid.uuid4())
        try:
            # The headers first: a caller without a valid key is refused before its body
            # (capped by veil.api.guard) is read.
            _authenticate(config, request.url.path, request.url.query, headers, None)
        except ApiError as exc:
            return _error(exc, request_id)
        body = await request.body()
        # Submitting and reading jobs talk to the database synchronously: off the event loop.
        return await run_in_threadpool(
            _handle,
            service,
            config,
            faces_cache,
            photos,
            request.url.path,
            request.url.query,
            headers,
            body,
            request_id,
        )


def _handle(
    service: ServiceConfig,
    config: RekognitionConfig,
    faces_cache: _FacesCache,
    photos: _PhotoFaces,
    path: str,
    query: str,
    headers: dict[str, str],
    body: bytes,
    request_id: str,
) -> Response:
    try:
        caller = _authenticate(config, path, query, headers, body)
        config.take_token(caller)
        target = headers.get("x-amz-target", "")
        operation = target[len(TARGET_PREFIX) :] if target.startswith(TARGET_PREFIX) else ""
        try:
            params = json.loads(body or b"{}", parse_constant=_not_json, parse_float=_finite)
        except (ValueError, RecursionError) as exc:  # RecursionError: nested too deep
            raise ApiError("SerializationException", "the body is not JSON") from exc
        if not isinstance(params, dict):
            raise ApiError("SerializationException", "the body must be a JSON object")
        if operation == "StartFaceDetection":
            result = _start(service, config, params, caller)
        elif operation == "GetFaceDetection":
            result = _get(faces_cache, params, caller)
        elif operation == "DetectFaces":
            result = _detect(service, config, photos, params)
        else:
            raise ApiError("UnknownOperationException", f"unknown operation {target!r}")
        return JSONResponse(
            result, media_type=CONTENT_TYPE, headers={"x-amzn-RequestId": request_id}
        )
    except (ApiError, StorageError) as exc:
        if isinstance(exc, StorageError):  # the job database or a store failed
            exc = ApiError("InternalServerError", str(exc), 500)
        return _error(exc, request_id)


def _error(exc: ApiError, request_id: str) -> Response:
    """An error as SDK clients parse it: ``__type`` in the body and the header."""
    # A message may quote the caller's own text, lone surrogates included: encodable.
    message = str(exc).encode("utf-8", "replace").decode("utf-8")
    return JSONResponse(
        {"__type": exc.code, "Message": message},
        status_code=exc.status,
        media_type=CONTENT_TYPE,
        headers={"x-amzn-RequestId": request_id, "x-amzn-ErrorType": exc.code},
    )


def _authenticate(
    config: RekognitionConfig, path: str, query: str, headers: dict[str, str], body: bytes | None
) -> str:
    """The calling access key; ``ApiError`` if the request is not signed by one. Without
    ``body``, only what the headers prove (``sigv4.check_headers``)."""
    if config.secrets is None:
        return "anonymous"
    if not config.secrets:
        raise ApiError(
            "AccessDeniedException",
            "no access keys are configured: start veil serve with --access-key and --secret-key",
        )
    try:
        if body is None:
            return check_headers(
                headers=headers, service="rekognition", region=config.region, secrets=config.secrets
            ).access_key
        return verify(
            method="POST",
            path=path,
            query=query,
            headers=headers,
            body=body,
            service="rekognition",
            region=config.region,
            secrets=config.secrets,
        )
    except SignatureError as exc:
        status = 400 if exc.code == "UnrecognizedClientException" else 403
        raise ApiError(exc.code, str(exc), status) from exc


def _string(
    params: dict[str, Any], name: str, *, required: bool = False, shape: str | None = None
) -> str | None:
    value = params.get(name)
    if value is None:
        if required:
            raise ApiError("InvalidParameterException", f"{name} is required")
        return None
    if not isinstance(value, str):
        raise ApiError("InvalidParameterException", f"{name} must be a string")
    if shape in _PATTERNS:
        pattern, low, high = _PATTERNS[shape]
        if not low <= len(value) <= high or not pattern.fullmatch(value):
            raise ApiError("InvalidParameterException", f"{name} {value!r} is not a valid {shape}")
    return value


def _not_json(name: str) -> float:
    """Python's parser takes NaN and Infinity, which JSON has not: a parameter holding
    one, echoed back in a job's ``Video``, could not be written out again."""
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e400
        raise ValueError(f"{text[:20]} is beyond a double")
    return value


def _start(
    service: ServiceConfig, config: RekognitionConfig, params: dict[str, Any], caller: str
) -> dict[str, Any]:
    video = params.get("Video")
    s3 = video.get("S3Object") if isinstance(video, dict) else None
    if not isinstance(s3, dict):
        raise ApiError("InvalidParameterException", "Video.S3Object is required")
    bucket, name = _s3_object(s3)
    token = _string(params, "ClientRequestToken", shape="ClientRequestToken")
    job_tag = _string(params, "JobTag", shape="JobTag")
    attributes = _string(params, "FaceAttributes") or "DEFAULT"
    if attributes not in ("DEFAULT", "ALL"):
        raise ApiError("InvalidParameterException", "FaceAttributes must be DEFAULT or ALL")
    channel = params.get("NotificationChannel")
    if channel is not None:
        if not isinstance(channel, dict):
            raise ApiError("InvalidParameterException", "NotificationChannel must be an object")
        _string(channel, "SNSTopicArn", required=True, shape="SNSTopicArn")
        _string(channel, "RoleArn", required=True, shape="RoleArn")
    identity = {
        "Video": {"S3Object": s3},
        "FaceAttributes": attributes,
        "JobTag": job_tag,
        "NotificationChannel": channel,
    }

    job_id = jobs.face_detection_job_id(caller, token)
    if token and _started(job_id, identity):
        return {"JobId": job_id}
    info = _readable(service, config, bucket, name)
    if info.size > service.max_bytes:
        raise ApiError(
            "VideoTooLargeException",
            f"{name} is {info.size:,} bytes; the limit is {service.max_bytes:,}",
        )
    request = FaceDetectionRequest(
        key=name,
        etag=info.etag,
        size=info.size,
        webhook_url=config.notification_webhook if channel else None,
        bucket=bucket,
        job_tag=job_tag,
        identity=identity,
        caller=caller,
    )
    with config.start_lock:
        if token and _started(job_id, identity):  # the same token, sent twice at once
            return {"JobId": job_id}
        if jobs.count_active(FACE_DETECTION_WORKFLOW) >= config.max_face_jobs:
            raise ApiError(
                "LimitExceededException",
                f"{config.max_face_jobs} face detection jobs are already in progress",
            )
        submit_face_detection(job_id, request)
    return {"JobId": job_id}


def _s3_object(s3: dict[str, Any]) -> tuple[str, str]:
    """The bucket and name of an ``S3Object`` parameter, checked as the service model
    says. (Its ``Version`` is checked too; veil reads the current one.)"""
    bucket = _string(s3, "Bucket", required=True, shape="Bucket")
    name = _string(s3, "Name", required=True)
    version = _string(s3, "Version")
    assert bucket is not None and name is not None
    if not 1 <= len(name) <= 1024 or (version is not None and not 1 <= len(version) <= 1024):
        raise ApiError(
            "InvalidParameterException", "S3Object Name and Version must be 1 to 1024 characters"
        )
    return bucket, name


def _readable(
    service: ServiceConfig, config: RekognitionConfig, bucket: str, name: str
) -> ObjectInfo:
    """The object a caller named, if the API may read it (the service's input bucket or
    one the operator allowed); the cloud's one answer for every object it cannot read."""
    if not may_read(bucket, name, service.input, config.buckets):
        # Answered as the cloud answers for an object it may not read (not
        # AccessDeniedException, which there means the caller's own rights): boto3 users
        # already handle it, and it tells nothing about which buckets exist.
        raise ApiError("InvalidS3ObjectException", _UNREADABLE)
    try:
        return bucket_store(bucket, service.input, service.output).stat(check_not_reserved(name))
    except InvalidKeyError as exc:
        raise ApiError("InvalidS3ObjectException", _UNREADABLE) from exc
    except StorageError as exc:
        if _named_wrong(exc):
            raise ApiError("InvalidS3ObjectException", _UNREADABLE) from exc
        raise ApiError("InternalServerError", str(exc), 500) from exc


def _detect(
    service: ServiceConfig, config: RekognitionConfig, photos: _PhotoFaces, params: dict[str, Any]
) -> dict[str, Any]:
    """DetectFaces: the faces on one picture, at once (no job). ``Image.Bytes`` (JPEG or
    PNG, up to 5 MB) or ``Image.S3Object`` (up to 15 MB, from the buckets the API may
    read); the boxes as GetFaceDetection gives them (grown as veil blurs them)."""
    image = params.get("Image")
    if not isinstance(image, dict) or ("Bytes" in image) == ("S3Object" in image):
        raise ApiError("InvalidParameterException", "Image needs one of Bytes and S3Object")
    attributes = params.get("Attributes", ["DEFAULT"])
    if not isinstance(attributes, list) or not all(a in _ATTRIBUTES for a in attributes):
        raise ApiError(
            "InvalidParameterException", f"Attributes are a list of {', '.join(_ATTRIBUTES)}"
        )
    with tempfile.TemporaryDirectory(prefix="detect-", dir=service.work_dir) as tmp:
        local = Path(tmp) / "image"
        if "Bytes" in image:
            local.write_bytes(_image_bytes(image["Bytes"]))
        else:
            s3 = image["S3Object"]
            if not isinstance(s3, dict):
                raise ApiError("InvalidParameterException", "Image.S3Object must be an object")
            bucket, name = _s3_object(s3)
            info = _readable(service, config, bucket, name)
            if info.size > MAX_S3_IMAGE_BYTES:
                raise ApiError(
                    "ImageTooLargeException",
                    f"{name} is {info.size:,} bytes; the limit is {MAX_S3_IMAGE_BYTES:,}",
                )
            try:
                store = bucket_store(bucket, service.input, service.output)
                store.download(info.key, local, etag=info.etag)
            except StorageError as exc:
                raise ApiError("InvalidS3ObjectException", _UNREADABLE) from exc
        return {"FaceDetails": photos.details(local)}


_UNSUPPORTED = "Request has unsupported image format"
MAX_WAITING_PICTURES = 4
"""DetectFaces calls one process holds at once (one looked at, the rest waiting their
turn); more are told to slow down (``ThrottlingException``, which SDKs retry with
backoff), so they cannot take every worker thread of the API nor pile up bodies."""
_ATTRIBUTES = tuple(
    _MODEL.operation_model("DetectFaces").input_shape.members["Attributes"].member.enum
)
"""DetectFaces' ``Attributes`` values, from the service model. Any is accepted; veil
answers what it measures (``veil.face_details``) whichever are asked for."""


def _image_bytes(value: Any) -> bytes:
    """``Image.Bytes`` as sent (base64 in JSON), decoded and within the cloud's limit."""
    if not isinstance(value, str):
        raise ApiError("InvalidParameterException", "Image.Bytes must be base64 text")
    too_large = ApiError(
        "ImageTooLargeException", f"Image.Bytes is over the limit of {MAX_IMAGE_BYTES:,} bytes"
    )
    if len(value) > (MAX_IMAGE_BYTES + 2) // 3 * 4:
        raise too_large  # before decoding it
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ApiError("InvalidParameterException", "Image.Bytes is not base64") from exc
    if len(data) > MAX_IMAGE_BYTES:
        raise too_large
    if not data:
        raise ApiError("InvalidParameterException", "Image.Bytes is empty")
    return data


class _PhotoFaces:
    """DetectFaces' detector (``veil.photos``, with the service's options), made at the
    first call. One picture at a time is decoded and looked at: a caller's calls wait
    their turn holding no more than their request's bytes, never a decoded picture
    each."""

    def __init__(self, service: ServiceConfig) -> None:
        self.service = service
        self._detector: CenterFace | None = None
        self._lock = threading.Lock()
        self._waiting = 0
        self._count = threading.Lock()

    def details(self, path: Path) -> list[dict[str, Any]]:
        with self._count:
            if self._waiting >= MAX_WAITING_PICTURES:
                # Each waiting call holds a worker thread the whole API shares, and its body.
                raise ApiError(
                    "ThrottlingException",
                    f"{MAX_WAITING_PICTURES} DetectFaces calls are already waiting; try again",
                )
            self._waiting += 1
        try:
            return self._details(path)
        finally:
            with self._count:
                self._waiting -= 1

    def _details(self, path: Path) -> list[dict[str, Any]]:
        options = self.service.blur
        with self._lock:
            try:
                # Format and size from the header, before a pixel is decoded.
                photo = open_photo(path, formats=IMAGE_FORMATS, max_pixels=MAX_IMAGE_PIXELS)
            except FrameSizeError as exc:
                raise ApiError("ImageTooLargeException", "the image is too large") from exc
            except NotAPhotoError as exc:
                raise ApiError("InvalidImageFormatException", _UNSUPPORTED) from exc
            picture = photo.rgb()
            if self._detector is None:
                self._detector = detector_for(options)
            found = find_faces(self._detector, picture, options.threshold)
            return face_details(picture, found, options.box_scale)


def _started(job_id: str, identity: dict[str, Any]) -> bool:
    """Whether job ``job_id`` exists; an ``ApiError`` if it was started with other
    parameters than ``identity``."""
    existing = jobs.find(job_id, FACE_DETECTION_WORKFLOW)
    if existing is None:
        return False
    if workflow_request(existing).get("identity") != identity:
        raise ApiError(
            "IdempotentParameterMismatchException",
            "ClientRequestToken was already used with different parameters",
        )
    return True


def _named_wrong(exc: StorageError) -> bool:
    """Whether reading failed because of the object the caller named rather than the
    store: missing, refused for good (S3's AccessDenied), or a name the store cannot
    hold (a folder store's file names stop at 255 bytes)."""
    cause = exc.__cause__
    return not exc.transient or (isinstance(cause, OSError) and cause.errno == errno.ENAMETOOLONG)


def _page_token(job_id: str, offset: int) -> str:
    raw = json.dumps({"j": job_id, "o": offset}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode()


def _page_offset(job_id: str, token: str) -> int:
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        if data["j"] != job_id or not isinstance(data["o"], int) or data["o"] < 0:
            raise ValueError("token of another job")
        return int(data["o"])
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise ApiError("InvalidPaginationTokenException", "Invalid Token") from exc


def _get(faces_cache: _FacesCache, params: dict[str, Any], caller: str) -> dict[str, Any]:
    job_id = _string(params, "JobId", required=True, shape="JobId")
    assert job_id is not None
    max_results = params.get("MaxResults", MAX_RESULTS)
    if not isinstance(max_results, int) or isinstance(max_results, bool) or max_results < 1:
        raise ApiError("InvalidParameterException", "MaxResults must be an integer of 1 or more")
    max_results = min(max_results, MAX_RESULTS)
    token = _string(params, "NextToken")
    if token is not None and len(token) > 255:
        raise ApiError("InvalidParameterException", "NextToken is too long")

    status = jobs.find(job_id, FACE_DETECTION_WORKFLOW)
    request = workflow_request(status) if status is not None else {}
    # A job belongs to the access key that started it: to any other it does not exist,
    # in the same words, so job IDs cannot be probed either.
    if status is None or request.get("caller") != caller:
        raise ApiError("ResourceNotFoundException", f"no face detection job {job_id}")
    identity = request.get("identity") or {}
    response: dict[str, Any] = {"JobId": job_id, "Video": identity.get("Video", {})}
    if request.get("job_tag"):
        response["JobTag"] = request["job_tag"]
    state = jobs.state_of(status)
    if state in (JobStatus.QUEUED, JobStatus.RUNNING):
        return {**response, "JobStatus": "IN_PROGRESS"}
    if state is not JobStatus.SUCCEEDED:
        message = str(status.error) if status.error is not None else f"job {state.lower()}"
        return {**response, "JobStatus": "FAILED", "StatusMessage": message}
    # The boxes the job blurs by: its own recorded options, not this process's flags.
    options = request.get("options") or {}
    metadata, faces = faces_cache.get(job_id, options.get("box_scale", faces_cache.box_scale))
    offset = _page_offset(job_id, token) if token else 0
    if offset > len(faces):
        raise ApiError("InvalidPaginationTokenException", "Invalid Token")
    page = faces[offset : offset + max_results]
    response.update({"JobStatus": "SUCCEEDED", "VideoMetadata": metadata, "Faces": page})
    if offset + max_results < len(faces):
        response["NextToken"] = _page_token(job_id, offset + max_results)
    return response


class _FacesCache:
    """Parsed result files of the last few jobs read, so paging does not re-read them."""

    def __init__(self, service: ServiceConfig, size: int = 8) -> None:
        self.service = service
        self.size = size
        self._items: OrderedDict[str, tuple[dict[str, Any], list[dict[str, Any]]]] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def box_scale(self) -> float:
        """The serving process's ``--box-scale``: for jobs queued without options."""
        return self.service.blur.box_scale

    def get(self, job_id: str, box_scale: float) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        with self._lock:
            if job_id in self._items:
                self._items.move_to_end(job_id)
                return self._items[job_id]
        with tempfile.TemporaryDirectory(prefix="veil-faces-") as tmp:
            local = Path(tmp) / "faces.json"
            try:
                self.service.output.download(face_detection_key(job_id), local)
                data = faces_file.load(local)
            except (StorageError, FacesFileError) as exc:
                raise ApiError(
                    "InternalServerError", f"the job's results cannot be read: {exc}", 500
                ) from exc
        # Report the boxes veil blurs: grown by --box-scale and kept inside the frame, so a
        # client that blurs exactly these boxes hides what veil hides.
        details = [entry["Face"] for entry in data["Faces"]]
        grown = Detections.from_rekognition(details, 1, 1).grown(float(box_scale))
        boxes = np.clip(grown.xyxy, 0.0, 1.0)
        faces = []
        for entry, (x1, y1, x2, y2) in zip(data["Faces"], boxes.tolist(), strict=True):
            face = {k: v for k, v in entry["Face"].items() if k != "TrackId"}  # not a cloud field
            face["BoundingBox"] = {"Width": x2 - x1, "Height": y2 - y1, "Left": x1, "Top": y1}
            faces.append({"Timestamp": entry["Timestamp"], "Face": face})
        faces.sort(key=lambda f: f["Timestamp"])  # stable: equal timestamps keep file order
        item = (data["VideoMetadata"], faces)
        with self._lock:
            self._items[job_id] = item
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return item
