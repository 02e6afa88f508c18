"""The cloud face-detection API, driven only through a real boto3 client over HTTP to a
real ``veil serve`` on loopback, with SeaweedFS holding the videos."""

from __future__ import annotations

import http.server
import json
import shutil
import threading
from typing import ClassVar

import boto3
import cv2
import numpy as np
import pytest
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError
from servers import SeaweedFS, VeilServer, wait_for

from veil.synthetic import face_visibility
from veil.video import probe

KEY_ID, SECRET = "AKIDVEILTEST", "veil-test-secret-key"
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
def s3_store(tmp_path_factory, clip):
    fs = SeaweedFS(tmp_path_factory.mktemp("rk-seaweedfs"))
    fs.start()
    s3 = fs.client()
    for bucket in ("rk-videos", "rk-results"):
        s3.create_bucket(Bucket=bucket)
    s3.upload_file(str(clip.path), "rk-videos", "talks/keynote.mp4")
    s3.put_object(Bucket="rk-videos", Key="huge.mp4", Body=b"\0" * 2_100_000)
    yield fs
    fs.stop()


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
    srv = start_server(
        tmp_path_factory.mktemp("rk-serve"),
        s3_store,
        "--access-key",
        KEY_ID,
        "--secret-key",
        SECRET,
        "--notification-webhook",
        hook,
    )
    yield srv
    srv.stop()


def client(server: VeilServer, key: str = KEY_ID, secret: str = SECRET, **kw):
    return boto3.client(
        "rekognition",
        endpoint_url=server.url,
        region_name="eu-west-1",
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
    ],
)
def test_modelled_errors(server, call, error):
    rk = client(server)
    with pytest.raises(getattr(rk.exceptions, error)):
        call(rk)


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
def test_wrong_keys_are_refused_and_start_nothing(server, kw, code):
    rk = client(server, **kw)
    with pytest.raises(ClientError) as info:
        rk.start_face_detection(Video=VIDEO, JobTag="should-not-run")
    assert info.value.response["Error"]["Code"] == code
    assert not any(
        j.get("key") == "talks/keynote.mp4" and j["id"].startswith("rk-") for j in server.jobs()
    )


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
        with pytest.raises(rk.exceptions.InvalidS3ObjectException):
            rk.start_face_detection(
                Video={"S3Object": {"Bucket": "elsewhere", "Name": "local.mp4"}}
            )
    finally:
        srv.stop()
