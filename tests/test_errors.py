"""veil's errors: one tree, plain messages, and each pickles back to itself (DBOS keeps a
failed job's error pickled)."""

from __future__ import annotations

import pickle

import pytest

from veil import errors
from veil.errors import (
    ApiError,
    DatabaseError,
    EventError,
    FrameSizeError,
    InputAccessError,
    InvalidKeyError,
    JobCancelled,
    JobError,
    JobFailed,
    JobNotFoundError,
    JobStateError,
    ObjectChangedError,
    ObjectNotFoundError,
    OutputError,
    SignatureError,
    StorageError,
    VeilError,
)

EXAMPLES = [
    FrameSizeError("/in/a.mp4", "picture too large"),
    errors.NotAPhotoError("/in/a.jpg", "not a picture (unrecognised format)"),
    InputAccessError("/in/a.mp4", "permission denied"),
    OutputError("/out/a.mp4", "cannot write"),
    errors.LiveSourceError("rtsp://cam.local/stream1", "connection refused"),
    InvalidKeyError("../x", "leaves its bucket"),
    StorageError("s3://b", "k.mp4", "SlowDown: slow down", transient=True),
    ObjectNotFoundError("s3://b", "k.mp4"),
    ObjectChangedError("s3://b", "k.mp4"),
    EventError("an S3 event's 'Records' must be a list"),
    DatabaseError("job database", None, "unable to open database file", transient=True),
    JobFailed("k.mp4: not a video"),
    JobCancelled("job-1: cancelled during Redact"),
    JobError("job-1", "cannot be done"),
    JobNotFoundError("job-1"),
    JobStateError("job-1", "is running; only failed or cancelled jobs are retried"),
    SignatureError("InvalidSignatureException", "the signature does not match"),
    ApiError("InvalidParameterException", "MaxResults must be 1-1000", 400),
]


def test_every_error_is_a_veil_error():
    classes = [
        obj
        for obj in vars(errors).values()
        if isinstance(obj, type) and issubclass(obj, Exception) and obj.__module__ == "veil.errors"
    ]
    assert all(issubclass(cls, VeilError) for cls in classes)
    # ...and every public one is exercised below.
    public = {cls for cls in classes if not cls.__name__.startswith("_")}
    assert {type(e) for e in EXAMPLES} | {
        VeilError,
        errors.OptionError,
        errors.DetectorError,
        errors.InputError,
        errors.InputNotFoundError,
        errors.NotAVideoError,
        errors.CorruptVideoError,
        errors.UnsupportedCodecError,
        errors.FacesFileError,
    } == public


@pytest.mark.parametrize("error", EXAMPLES, ids=lambda e: type(e).__name__)
def test_errors_pickle_back_to_themselves(error):
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert str(copy) == str(error)
    assert vars(copy) == vars(error)


def test_job_errors_carry_their_http_status():
    assert JobNotFoundError("job-1").status_code == 404
    assert JobStateError("job-1", "is running").status_code == 409


def test_the_api_errors_keep_their_codes():
    assert (
        SignatureError("IncompleteSignatureException", "x").code == "IncompleteSignatureException"
    )
    error = ApiError("ResourceNotFoundException", "no such job", 400)
    assert (error.code, error.status) == ("ResourceNotFoundException", 400)
