"""The cloud face-detection API, driven through a real boto3 client over HTTP to a real
``veil serve`` on loopback, with SeaweedFS holding the videos; hostile requests are
signed by botocore's own signer and then tampered with. Concurrent starts go to the app
in this process, where threads can race."""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import io
import json
import shutil
import socket
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

import boto3
import cv2
import httpx
import numpy as np
import pytest
from botocore import UNSIGNED
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from servers import SeaweedFS, VeilServer, wait_for

from veil.api.guard import FACE_API_LIMIT
from veil.synthetic import face_visibility
from veil.video import probe

KEY_ID, SECRET = "AKIDVEILTEST", "veil-test-secret-key"
# A second key, from --access-keys-file, whose secret holds the file's separator.
OTHER_ID, OTHER_SECRET = "AKIDVEILOTHER", "other:secret:with:colons"
REGION = "eu-west-1"
CONTENT_TYPE = "application/x-amz-json-1.1"
NO_RETRIES = Config(retries={"total_max_attempts": 1, "mode": "standard"})


class Hook(http.server.BaseHTTPRequestHandler):
    received: ClassVar[list[dict]] = []

    def do_POST(self) -> None:
        Hook.received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def hook():
    server = http.server.HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/sns"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def s3_store(seaweed, clip):
    """The run's SeaweedFS (tests/conftest.py) with this module's buckets and objects."""
    fs = seaweed
    fs.buckets("rk-videos", "rk-results", "rk-extra", "rk-private")
    s3 = fs.client()
    s3.upload_file(str(clip.path), "rk-videos", "talks/keynote.mp4")
    s3.put_object(Bucket="rk-videos", Key="huge.mp4", Body=b"\0" * 2_100_000)
    # Buckets veil's own S3 credentials can read: one the operator allows, one not.
    s3.put_object(Bucket="rk-extra", Key="huge.mp4", Body=b"\0" * 2_100_000)
    s3.put_object(Bucket="rk-private", Key="payroll.mp4", Body=b"not for the caller")
    return fs


def start_server(tmp_path, fs: SeaweedFS, *extra: str) -> VeilServer:
    return VeilServer(
        tmp_path,
        "--input",
        "s3://rk-videos",
        "--output",
        "s3://rk-results",
        "--s3-endpoint",
        fs.endpoint,
        "--poll-interval",
        "0",
        "--max-size",
        "2000000",
        *extra,
    ).start()


@pytest.fixture(scope="module")
def server(tmp_path_factory, s3_store, hook):
    data = tmp_path_factory.mktemp("rk-serve")
    keys = data / "access-keys.txt"
    keys.write_text(f"{OTHER_ID}:{OTHER_SECRET}\n")
    srv = start_server(
        data,
        s3_store,
        "--access-key",
        KEY_ID,
        "--secret-key",
        SECRET,
        "--access-keys-file",
        str(keys),
        "--region",
        REGION,
        "--allow-bucket",
        "rk-extra",
        "--notification-webhook",
        hook,
    )
    yield srv
    srv.stop()


def client(server: VeilServer, key: str = KEY_ID, secret: str = SECRET, region: str = REGION, **kw):
    return boto3.client(
        "rekognition",
        endpoint_url=server.url,
        region_name=region,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        config=kw.pop("config", NO_RETRIES),
        **kw,
    )


VIDEO = {"S3Object": {"Bucket": "rk-videos", "Name": "talks/keynote.mp4"}}


def wait_done(rk, job_id: str) -> dict:
    return wait_for(
        lambda: (r := rk.get_face_detection(JobId=job_id))["JobStatus"] != "IN_PROGRESS" and r,
        120,
        f"job {job_id}",
    )


# Every request field of StartFaceDetection; started once, then repeated to test the token.
FIRST_START = {
    "Video": VIDEO,
    "JobTag": "keynote-2026",
    "FaceAttributes": "ALL",
    "ClientRequestToken": "tok-1",
    "NotificationChannel": {
        "SNSTopicArn": "arn:aws:sns:eu-west-1:123456789012:done",
        "RoleArn": "arn:aws:iam::123456789012:role/rk",
    },
}


@pytest.fixture(scope="module")
def finished_job(server):
    rk = client(server)
    job_id = rk.start_face_detection(**FIRST_START)["JobId"]
    assert wait_done(rk, job_id)["JobStatus"] == "SUCCEEDED"
    return job_id


def all_pages(rk, job_id: str, max_results: int) -> list[dict]:
    pages, token = [], None
    while True:
        kw: dict[str, str] = {"NextToken": token} if token else {}
        page = rk.get_face_detection(JobId=job_id, MaxResults=max_results, **kw)
        pages.append(page)
        token = page.get("NextToken")
        if not token:
            return pages


def test_start_poll_and_page_through(server, finished_job, clip):
    rk = client(server)
    pages = all_pages(rk, finished_job, 100)
    faces = [f for p in pages for f in p["Faces"]]
    whole = rk.get_face_detection(JobId=finished_job)  # default MaxResults 1000
    assert faces == whole["Faces"] and "NextToken" not in whole
    assert len(faces) > 100 and [len(p["Faces"]) for p in pages[:-1]] == [100] * (len(pages) - 1)
    assert 0 < len(pages[-1]["Faces"]) <= 100
    stamps = [f["Timestamp"] for f in faces]
    assert stamps == sorted(stamps)
    for page in pages:
        assert page["JobStatus"] == "SUCCEEDED" and page["JobId"] == finished_job
        assert page["JobTag"] == "keynote-2026" and page["Video"] == VIDEO
        assert page["VideoMetadata"] == pages[0]["VideoMetadata"]
    info = probe(clip.path)
    meta = pages[0]["VideoMetadata"]
    assert (meta["FrameWidth"], meta["FrameHeight"], meta["Codec"], meta["Format"]) == (
        info.width,
        info.height,
        "h264",
        "MP4",
    )
    assert (
        meta["FrameRate"] == pytest.approx(info.fps) and meta["DurationMillis"] == info.duration_ms
    )
    assert meta["ColorRange"] in ("FULL", "LIMITED")
    for face in faces:
        box = face["Face"]["BoundingBox"]
        assert 0 <= box["Left"] <= 1 and 0 <= box["Top"] <= 1 and 0 < box["Width"] <= 1
        assert 0 <= face["Face"]["Confidence"] <= 100
        assert set(face["Face"]) <= {"BoundingBox", "Confidence", "Landmarks"}  # nothing invented
    # Every known face, on every frame, lies inside a reported box.
    by_time: dict[int, list[dict]] = {}
    for face in faces:
        by_time.setdefault(face["Timestamp"], []).append(face["Face"]["BoundingBox"])
    for i in range(clip.scene.frames):
        _, truth, _ = clip.scene.render(i)
        boxes = by_time.get(round(i * 1000 / clip.scene.fps), [])
        for x1, y1, x2, y2 in truth:
            cx, cy = (x1 + x2) / 2 / clip.scene.width, (y1 + y2) / 2 / clip.scene.height
            assert any(
                b["Left"] <= cx <= b["Left"] + b["Width"]
                and b["Top"] <= cy <= b["Top"] + b["Height"]
                for b in boxes
            ), i


def test_the_recipe_leaves_no_face_visible(server, finished_job, clip):
    """The cloud recipe's client: group faces by Timestamp, blur each box from its
    timestamp for half a second; then check every frame."""
    faces = [f for p in all_pages(client(server), finished_job, 1000) for f in p["Faces"]]
    import av

    with av.open(str(clip.path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            image = frame.to_ndarray(format="rgb24")
            t = frame.time * 1000
            h, w = image.shape[:2]
            for face in faces:
                if face["Timestamp"] <= t < face["Timestamp"] + 500:
                    b = face["Face"]["BoundingBox"]
                    x1, y1 = max(0, int(b["Left"] * w)), max(0, int(b["Top"] * h))
                    x2, y2 = (
                        min(w, int((b["Left"] + b["Width"]) * w) + 1),
                        min(h, int((b["Top"] + b["Height"]) * h) + 1),
                    )
                    if x2 > x1 and y2 > y1:
                        region = image[y1:y2, x1:x2]
                        # A kernel as wide as the box: a half-box kernel leaves a 16 px
                        # face's eyes readable, whatever the box.
                        k = max(3, max(x2 - x1, y2 - y1) | 1)
                        image[y1:y2, x1:x2] = cv2.GaussianBlur(region, (k, k), 0)
            truth, boxes, _ = clip.scene.render(i)
            for box in boxes:
                assert face_visibility(truth, np.ascontiguousarray(image), box) < 0.6, f"frame {i}"


def test_client_request_token_idempotency(server, finished_job):
    rk = client(server)
    same = rk.start_face_detection(**FIRST_START)
    assert same["JobId"] == finished_job
    with pytest.raises(rk.exceptions.IdempotentParameterMismatchException):
        rk.start_face_detection(Video=VIDEO, JobTag="other-tag", ClientRequestToken="tok-1")


def test_notification_webhook(finished_job):
    wait_for(
        lambda: any(m.get("JobId") == finished_job for m in Hook.received),
        30,
        "the completion message",
    )
    message = next(m for m in Hook.received if m["JobId"] == finished_job)
    assert message["Status"] == "SUCCEEDED" and message["API"] == "StartFaceDetection"
    assert message["JobTag"] == "keynote-2026"
    assert message["Video"] == {"S3ObjectName": "talks/keynote.mp4", "S3Bucket": "rk-videos"}


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (
            lambda rk: rk.start_face_detection(Video=VIDEO, ClientRequestToken="not a token!"),
            "InvalidParameterException",
        ),
        (
            lambda rk: rk.start_face_detection(Video=VIDEO, JobTag="bad tag with spaces"),
            "InvalidParameterException",
        ),
        (
            lambda rk: rk.start_face_detection(Video={"S3Object": {"Bucket": "rk-videos"}}),
            "InvalidParameterException",
        ),
        (
            lambda rk: rk.start_face_detection(
                Video=VIDEO, NotificationChannel={"SNSTopicArn": "nope", "RoleArn": "nope"}
            ),
            "InvalidParameterException",
        ),
        (
            lambda rk: rk.start_face_detection(
                Video={"S3Object": {"Bucket": "rk-videos", "Name": "missing.mp4"}}
            ),
            "InvalidS3ObjectException",
        ),
        (
            lambda rk: rk.start_face_detection(
                Video={"S3Object": {"Bucket": "no-such-bucket", "Name": "a.mp4"}}
            ),
            "InvalidS3ObjectException",
        ),
        (
            lambda rk: rk.start_face_detection(
                Video={"S3Object": {"Bucket": "rk-videos", "Name": "huge.mp4"}}
            ),
            "VideoTooLargeException",
        ),
        (lambda rk: rk.get_face_detection(JobId="rk-0000"), "ResourceNotFoundException"),
        (lambda rk: rk.get_face_detection(JobId="bad id!"), "InvalidParameterException"),
        # The service model's patterns end in $, which also matches before a final newline.
        (
            lambda rk: rk.start_face_detection(Video=VIDEO, JobTag="tag\n"),
            "InvalidParameterException",
        ),
        (
            lambda rk: rk.start_face_detection(Video=VIDEO, ClientRequestToken="tok\n"),
            "InvalidParameterException",
        ),
        (lambda rk: rk.get_face_detection(JobId="rk-0000\n"), "InvalidParameterException"),
        # veil's S3 credentials could read this bucket, but the operator did not allow it.
        (
            lambda rk: rk.start_face_detection(
                Video={"S3Object": {"Bucket": "rk-private", "Name": "payroll.mp4"}}
            ),
            "InvalidS3ObjectException",
        ),
        (
            lambda rk: rk.start_face_detection(
                Video={"S3Object": {"Bucket": "rk-results", "Name": "talks/keynote.mp4"}}
            ),
            "InvalidS3ObjectException",
        ),
        # --allow-bucket rk-extra: read (and found too large) like the input bucket.
        (
            lambda rk: rk.start_face_detection(
                Video={"S3Object": {"Bucket": "rk-extra", "Name": "huge.mp4"}}
            ),
            "VideoTooLargeException",
        ),
        (
            lambda rk: rk.start_face_detection(
                Video={"S3Object": {"Bucket": "rk-videos", "Name": "n" * 1020 + ".mp4"}}
            ),
            "InvalidS3ObjectException",
        ),
    ],
    ids=[
        "token-format",
        "job-tag",
        "no-name",
        "channel-arn",
        "no-object",
        "no-bucket",
        "too-large",
        "unknown-job",
        "job-id-format",
        "job-tag-newline",
        "token-newline",
        "job-id-newline",
        "bucket-not-allowed",
        "output-bucket",
        "allowed-bucket",
        "long-name",
    ],
)
def test_modelled_errors(server, call, error):
    rk = client(server)
    with pytest.raises(getattr(rk.exceptions, error)):
        call(rk)


def test_jobs_are_private_to_the_key_that_started_them(server, finished_job):
    other = client(server, key=OTHER_ID, secret=OTHER_SECRET)
    with pytest.raises(other.exceptions.ResourceNotFoundException) as theirs:
        other.get_face_detection(JobId=finished_job)
    with pytest.raises(other.exceptions.ResourceNotFoundException) as nobodys:
        other.get_face_detection(JobId="rk-0000")
    # Word for word what a job that does not exist gets: job IDs cannot be probed.
    message = theirs.value.response["Error"]["Message"]
    assert message.replace(finished_job, "ID") == nobodys.value.response["Error"][
        "Message"
    ].replace("rk-0000", "ID")
    assert client(server).get_face_detection(JobId=finished_job)["JobStatus"] == "SUCCEEDED"


def test_a_signature_for_another_region_is_refused(server):
    rk = client(server, region="us-east-1")
    with pytest.raises(ClientError) as info:
        rk.get_face_detection(JobId="rk-0000")
    error = info.value.response["Error"]
    assert error["Code"] == "InvalidSignatureException"
    assert error["Message"] == "Credential should be scoped to a valid region, not 'us-east-1'."


START = json.dumps({"Video": VIDEO, "JobTag": "hostile"}).encode()
GET = b'{"JobId": "rk-0000"}'


def signed_post(
    server: VeilServer,
    body: bytes,
    *,
    signed_body: bytes | None = None,
    content_sha256: str | None = None,
    signature: bytes | None = None,
    target: str = "StartFaceDetection",
) -> httpx.Response:
    """``POST /`` signed by botocore for ``signed_body`` (default: ``body``) and sent
    with ``body``; ``content_sha256`` goes in a signed header, ``signature`` replaces
    the signature's last bytes."""
    headers = {"X-Amz-Target": f"RekognitionService.{target}", "Content-Type": CONTENT_TYPE}
    if content_sha256 is not None:
        headers["X-Amz-Content-SHA256"] = content_sha256
    request = AWSRequest(
        method="POST",
        url=server.url + "/",
        data=body if signed_body is None else signed_body,
        headers=headers,
    )
    SigV4Auth(Credentials(KEY_ID, SECRET), "rekognition", REGION).add_auth(request)
    sent = {k.encode(): v.encode() for k, v in request.headers.items()}
    if signature is not None:
        sent[b"Authorization"] = sent[b"Authorization"][:-2] + signature
    return httpx.post(server.url + "/", content=body, headers=sent, timeout=30)


@pytest.mark.parametrize(
    ("send", "code"),
    [
        # A captured request, its signed body hash kept, replayed with another body.
        (
            lambda srv: signed_post(
                srv, START, signed_body=GET, content_sha256=hashlib.sha256(GET).hexdigest()
            ),
            "InvalidSignatureException",
        ),
        (
            lambda srv: signed_post(srv, START, content_sha256="UNSIGNED-PAYLOAD"),
            "InvalidSignatureException",
        ),
        (lambda srv: signed_post(srv, GET, signature=b"\xe9\xff"), "InvalidSignatureException"),
        (lambda srv: signed_post(srv, b"[" * 100_000), "SerializationException"),
        (
            lambda srv: signed_post(
                srv,
                b'{"Video": {"S3Object": {"Bucket": "rk-videos", "Name": "a\\ud800.mp4"}}}',
            ),
            "InvalidS3ObjectException",
        ),
        # Python's parser takes NaN and 1e400 (infinity); echoed back in the job's Video,
        # they made every GetFaceDetection of the job a 500.
        (
            lambda srv: signed_post(
                srv,
                b'{"Video": {"S3Object": {"Bucket": "rk-videos", "Name": "a.mp4", "Junk": NaN}}}',
            ),
            "SerializationException",
        ),
        (
            lambda srv: signed_post(
                srv,
                b'{"Video": {"S3Object": {"Bucket": "rk-videos", "Name": "a.mp4"}}, "X": 1e400}',
            ),
            "SerializationException",
        ),
    ],
    ids=[
        "replayed-body",
        "unsigned-payload",
        "non-ascii-signature",
        "deep-json",
        "surrogate",
        "nan",
        "infinite",
    ],
)
def test_hostile_requests_get_a_modelled_4xx(server, send, code):
    answer = send(server)
    assert 400 <= answer.status_code < 500, answer.text
    assert answer.json() == {"__type": code, "Message": answer.json()["Message"]}
    assert answer.headers["x-amzn-ErrorType"] == code


def _answer_to_headers_only(server: VeilServer, headers: dict[str, str]) -> bytes:
    """Send a ``POST /`` that announces a 200 KB body and sends none of it: only an
    answer given from the headers alone can arrive."""
    lines = ["POST / HTTP/1.1", f"Host: 127.0.0.1:{server.port}", "Content-Length: 200000"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        return sock.recv(65536)


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "MissingAuthenticationTokenException"),
        (
            {
                "Authorization": "AWS4-HMAC-SHA256 Credential=AKIDUNKNOWN/20261126/eu-west-1/"
                "rekognition/aws4_request, SignedHeaders=host;x-amz-date, Signature=00"
            },
            "UnrecognizedClientException",
        ),
    ],
    ids=["unsigned", "unknown-key"],
)
def test_unknown_callers_are_refused_before_the_body_is_read(server, headers, code):
    answer = _answer_to_headers_only(server, {"X-Amz-Target": "x", **headers})
    assert answer.startswith(b"HTTP/1.1 4"), answer[:100]
    assert code.encode() in answer


def test_oversized_bodies_are_refused_in_the_api_shape(server):
    # Past FACE_API_LIMIT (room for a 5 MB picture in base64).
    padding = b"x" * (FACE_API_LIMIT + 1000)
    answer = signed_post(server, b'{"JobId": "' + padding + b'"}', target="GetFaceDetection")
    assert answer.status_code == 413
    assert answer.headers["x-amzn-ErrorType"] == answer.json()["__type"]


def test_bad_pagination_token(server, finished_job):
    rk = client(server)
    for token in ("garbage", "eyJqIjoib3RoZXIiLCJvIjoxfQ=="):  # the second: another job's token
        with pytest.raises(rk.exceptions.InvalidPaginationTokenException):
            rk.get_face_detection(JobId=finished_job, NextToken=token)


@pytest.mark.parametrize(
    ("kw", "code"),
    [
        ({"key": "AKIDUNKNOWN"}, "UnrecognizedClientException"),
        ({"secret": "wrong-secret"}, "InvalidSignatureException"),
        (
            {"config": Config(signature_version=UNSIGNED, retries={"max_attempts": 1})},
            "MissingAuthenticationTokenException",
        ),
    ],
    ids=["unknown-key", "wrong-secret", "unsigned"],
)
def test_wrong_keys_are_refused_and_start_nothing(server, finished_job, kw, code):
    rk = client(server, **kw)
    before = face_detection_jobs(server)
    assert before >= 1  # the count sees jobs: finished_job is one
    with pytest.raises(ClientError) as info:
        rk.start_face_detection(Video=VIDEO, JobTag="should-not-run")
    assert info.value.response["Error"]["Code"] == code
    assert face_detection_jobs(server) == before


def face_detection_jobs(server: VeilServer) -> int:
    """Face-detection jobs in the server's job database (DBOS's workflow table): the
    REST API lists only blur jobs."""
    with contextlib.closing(sqlite3.connect(server.data / "veil.sqlite")) as db:
        query = "SELECT count(*) FROM workflow_status WHERE name = 'veil.face_detection'"
        return int(db.execute(query).fetchone()[0])


def test_limits_throttling_and_missing_keys(tmp_path, s3_store):
    srv = start_server(
        tmp_path / "a", s3_store, "--no-aws-auth", "--max-face-jobs", "1", "--rate-limit", "2"
    )
    try:
        rk = client(srv, key="anything", secret="anything")
        job_id = rk.start_face_detection(Video=VIDEO)[
            "JobId"
        ]  # signature checks off: any key works
        with pytest.raises(rk.exceptions.LimitExceededException):
            rk.start_face_detection(Video=VIDEO)
        with pytest.raises(rk.exceptions.ThrottlingException):
            for _ in range(10):
                rk.get_face_detection(JobId=job_id)
    finally:
        srv.stop()
    srv = start_server(tmp_path / "b", s3_store)  # no access keys configured
    try:
        with pytest.raises(client(srv).exceptions.AccessDeniedException):
            client(srv).start_face_detection(Video=VIDEO)
    finally:
        srv.stop()


def test_local_folders_by_bucket_name_and_failed_jobs(tmp_path, clip):
    """With folder stores, the bucket is the input (or output) folder's name; a video that
    cannot be read ends FAILED with a StatusMessage in plain words."""
    srv = VeilServer(tmp_path / "data", "--poll-interval", "0", "--no-aws-auth").start()
    try:
        shutil.copy(clip.path, srv.data / "input" / "local.mp4")
        (srv.data / "input" / "broken.mp4").write_bytes(b"not a video at all")
        rk = client(srv, key="any", secret="any")
        ok = rk.start_face_detection(Video={"S3Object": {"Bucket": "input", "Name": "local.mp4"}})[
            "JobId"
        ]
        bad = rk.start_face_detection(
            Video={"S3Object": {"Bucket": "input", "Name": "broken.mp4"}}
        )["JobId"]
        assert wait_done(rk, ok)["JobStatus"] == "SUCCEEDED"
        failed = wait_done(rk, bad)
        assert failed["JobStatus"] == "FAILED"
        assert failed["StatusMessage"] == "broken.mp4: not a video (unrecognised file format)"
        assert "Faces" not in failed
        shutil.copy(clip.path, srv.data / "output" / "local.mp4")
        for s3_object in (
            {"Bucket": "elsewhere", "Name": "local.mp4"},
            {"Bucket": "output", "Name": "local.mp4"},  # only the input, unless allowed
            {"Bucket": "input", "Name": "n" * 1020 + ".mp4"},  # longer than a file name
        ):
            with pytest.raises(rk.exceptions.InvalidS3ObjectException):
                rk.start_face_detection(Video={"S3Object": s3_object})
    finally:
        srv.stop()


@pytest.fixture
def in_process(tmp_path):
    """The app in this process on folder stores, its face-detection API unsigned
    (``--no-aws-auth``) with ``--max-face-jobs 2``; the jobs it started are left to end."""
    from harness import InProcess

    from veil import jobs, runtime
    from veil.api.rekognition import RekognitionConfig
    from veil.storage import LocalStorage

    folders = {name: tmp_path / name for name in ("input", "output")}
    for folder in folders.values():
        folder.mkdir()
    try:
        yield InProcess(
            tmp_path,
            stores=(LocalStorage(folders["input"]), LocalStorage(folders["output"])),
            rekognition=RekognitionConfig(secrets=None, max_face_jobs=2),
        )
        wait_for(lambda: jobs.count_active("veil.face_detection") == 0, 120, "the jobs to end")
    finally:
        runtime.shutdown()


def call_in_process(veil: Any, target: str, params: dict[str, Any], app: Any = None) -> Any:
    """The face-detection API's ``target`` called in process, on ``app`` if given."""
    return veil.call(
        "POST",
        "/",
        app=app,
        content=json.dumps(params),
        headers={"X-Amz-Target": f"RekognitionService.{target}", "Content-Type": CONTENT_TYPE},
    )


def test_max_face_jobs_holds_under_concurrent_starts(in_process, clip):
    in_process.input.upload(clip.path, "talk.mp4")
    params = {"Video": {"S3Object": {"Bucket": "input", "Name": "talk.mp4"}}}
    ready = threading.Barrier(8)

    def start(_: int) -> httpx.Response:
        ready.wait()  # all eight at once
        return call_in_process(in_process, "StartFaceDetection", params)

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(start, range(8)))
    outcomes = sorted(a.json().get("__type", "started") for a in answers)
    assert outcomes == ["LimitExceededException"] * 6 + ["started"] * 2


def test_boxes_are_grown_by_the_jobs_own_box_scale(in_process, clip):
    # Issue 25: GetFaceDetection grew a job's boxes by the --box-scale of whichever
    # process answered, not the one the job ran (and blurred) with.
    in_process.input.upload(clip.path, "talk.mp4")
    params = {"Video": {"S3Object": {"Bucket": "input", "Name": "talk.mp4"}}}
    job_id = call_in_process(in_process, "StartFaceDetection", params).json()["JobId"]

    def boxes(served_by: Any) -> list[dict[str, float]]:
        def ended() -> dict[str, Any] | None:
            answer = call_in_process(
                in_process, "GetFaceDetection", {"JobId": job_id}, app=served_by
            ).json()
            return None if answer.get("JobStatus") == "IN_PROGRESS" else answer

        answer = wait_for(ended, 120, "the job to end")
        assert answer["JobStatus"] == "SUCCEEDED", answer
        return [f["Face"]["BoundingBox"] for f in answer["Faces"]]

    own = boxes(in_process.app)
    assert own
    assert boxes(in_process.app_with(box_scale=2.0)) == own


def test_a_long_video_in_segments_pages_as_one(s3_store, tmp_path):
    """A face-detection job on a video longer than --segment-seconds runs in segments;
    GetFaceDetection pages their merged faces in timestamp order, the faces a run over
    the whole video finds."""
    from segment_clips import SCENE, keyed_clip

    from veil.pipeline import detect_video

    video = keyed_clip(tmp_path / "long.mp4", SCENE)
    s3_store.client().upload_file(str(video), "rk-videos", "talks/long.mp4")
    server = start_server(
        tmp_path / "serve",
        s3_store,
        "--access-key",
        KEY_ID,
        "--secret-key",
        SECRET,
        "--region",
        REGION,
        "--segment-seconds",
        "2",
    )
    try:
        rk = client(server)
        job_id = rk.start_face_detection(
            Video={"S3Object": {"Bucket": "rk-videos", "Name": "talks/long.mp4"}}
        )["JobId"]
        assert wait_done(rk, job_id)["JobStatus"] == "SUCCEEDED"
        faces = [f for page in all_pages(rk, job_id, 50) for f in page["Faces"]]
        steps = [line.split("  ")[-1] for line in server.log().splitlines() if job_id in line]
    finally:
        server.stop()
    assert steps.count("Segment") == 3 and "JoinFaces" in steps, steps  # 6 s in 2 s pieces
    whole = tmp_path / "whole.json"
    detect_video(video, whole)
    # The API answers with each box grown about its centre (as the service hides it):
    # the same faces have the same times, centres, scores and landmarks.
    expected = json.loads(whole.read_text())["Faces"]
    assert len(faces) == len(expected)
    for got, want in zip(faces, expected, strict=True):
        (t, x, y, score, marks), (t2, x2, y2, score2, marks2) = _face(got), _face(want)
        assert (t, score, marks) == (t2, score2, marks2)
        assert abs(x - x2) < 0.002 and abs(y - y2) < 0.002, (got, want)
    stamps = [f["Timestamp"] for f in faces]
    assert stamps == sorted(stamps) and len(faces) > 150


def _face(entry: dict) -> tuple[int, float, float, float, list[tuple[str, float, float]]]:
    """A face's time, box centre, score and landmarks."""
    face = entry["Face"]
    box = face["BoundingBox"]
    marks = [(m["Type"], m["X"], m["Y"]) for m in face.get("Landmarks", [])]
    x, y = box["Left"] + box["Width"] / 2, box["Top"] + box["Height"] / 2
    return entry["Timestamp"], x, y, face["Confidence"], marks


# -- DetectFaces (issue 27): a picture, at once ----------------------------------------


@pytest.fixture(scope="module")
def group():
    from veil.photo_corpus import group_photo

    return group_photo(3, 640, 480, (32.0, 48.0, 80.0, 120.0))


def jpeg_bytes(picture: np.ndarray, **save: Any) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(picture).save(out, **{"format": "JPEG", "quality": 92, **save})
    return out.getvalue()


def test_detect_faces_on_a_group_photo_as_bytes_and_from_the_bucket(server, s3_store, group):
    rk = client(server)
    picture = jpeg_bytes(group.picture)
    found = rk.detect_faces(Image={"Bytes": picture}, Attributes=["DEFAULT"])
    details = found["FaceDetails"]
    # (A picture cut around a face may hold part of a neighbour's: a face too.)
    assert len(details) >= len(group.heights)
    height, width = group.picture.shape[:2]
    # Each true face lies inside one box: the boxes veil would blur.
    for x1, y1, x2, y2 in group.boxes:
        inside = [
            d
            for d in details
            if (b := d["BoundingBox"])["Left"] * width <= x1 + 1
            and b["Top"] * height <= y1 + 1
            and (b["Left"] + b["Width"]) * width >= x2 - 1
            and (b["Top"] + b["Height"]) * height >= y2 - 1
        ]
        assert len(inside) == 1, (x1, y1, x2, y2)
    for detail in details:
        assert 10 <= detail["Confidence"] <= 100  # kept at half the threshold when seen twice
        assert [m["Type"] for m in detail["Landmarks"]] == [
            "eyeLeft",
            "eyeRight",
            "nose",
            "mouthLeft",
            "mouthRight",
        ]
        assert set(detail["Pose"]) == {"Roll", "Yaw", "Pitch"}
        assert 0 < detail["Quality"]["Brightness"] <= 100
        assert 0 < detail["Quality"]["Sharpness"] <= 100
        assert "TrackId" not in detail
    # The same picture from the input bucket gives the same faces.
    s3_store.client().put_object(Bucket="rk-videos", Key="photos/group.jpg", Body=picture)
    again = rk.detect_faces(Image={"S3Object": {"Bucket": "rk-videos", "Name": "photos/group.jpg"}})
    assert again["FaceDetails"] == details
    # A bucket the operator did not allow answers as the cloud does for any unreadable object.
    with pytest.raises(ClientError) as refused:
        rk.detect_faces(Image={"S3Object": {"Bucket": "rk-private", "Name": "payroll.mp4"}})
    assert refused.value.response["Error"]["Code"] == "InvalidS3ObjectException"


def test_detect_faces_refuses_what_the_cloud_refuses(server, group):
    from PIL import Image

    rk = client(server)
    webp = io.BytesIO()
    Image.fromarray(group.picture).save(webp, format="WEBP")
    huge = io.BytesIO()  # 40 MP claimed in a few KB: refused from its header
    Image.new("1", (8000, 5000)).save(huge, format="PNG", optimize=True)
    png = io.BytesIO()
    Image.fromarray(group.picture).save(png, format="PNG")
    cases = [
        ({"Bytes": huge.getvalue()}, "ImageTooLargeException"),
        ({"Bytes": png.getvalue()[: len(png.getvalue()) // 2]}, "InvalidImageFormatException"),
        ({"Bytes": b"this is no picture"}, "InvalidImageFormatException"),
        ({"Bytes": webp.getvalue()}, "InvalidImageFormatException"),  # JPEG and PNG only
        ({"Bytes": jpeg_bytes(group.picture)[:2000]}, "InvalidImageFormatException"),
        ({"Bytes": b"\xff" * (5 * 1024 * 1024 + 1)}, "ImageTooLargeException"),
        ({"S3Object": {"Bucket": "rk-videos", "Name": "missing.jpg"}}, "InvalidS3ObjectException"),
    ]
    for image, code in cases:
        with pytest.raises(ClientError) as refused:
            rk.detect_faces(Image=image)
        assert refused.value.response["Error"]["Code"] == code, (code, refused.value)
    # Signed with a wrong secret, or not at all: refused before the picture is looked at.
    unsigned = client(
        server, config=Config(signature_version=UNSIGNED, retries={"max_attempts": 1})
    )
    for caller, code in (
        (client(server, secret="wrong-secret"), "InvalidSignatureException"),
        (unsigned, "MissingAuthenticationTokenException"),
    ):
        with pytest.raises(ClientError) as refused:
            caller.detect_faces(Image={"Bytes": jpeg_bytes(group.picture)})
        assert refused.value.response["Error"]["Code"] == code


def test_detect_faces_calls_beyond_a_few_waiting_are_told_to_slow_down(tmp_path):
    # Each waiting call holds one of the API's shared worker threads and its body.
    from veil.api.rekognition import MAX_WAITING_PICTURES, _PhotoFaces
    from veil.errors import ApiError

    photos = _PhotoFaces(service=None)  # type: ignore[arg-type]
    photos._waiting = MAX_WAITING_PICTURES
    with pytest.raises(ApiError) as refused:
        photos.details(tmp_path / "any.jpg")
    assert refused.value.code == "ThrottlingException"
    assert photos._waiting == MAX_WAITING_PICTURES  # a refused call holds no place
