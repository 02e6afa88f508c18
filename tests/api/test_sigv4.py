"""SigV4 verification against requests signed by botocore's own signer."""

from __future__ import annotations

import datetime as dt

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from veil.api.sigv4 import SignatureError, verify

SECRETS = {"AKIDVEIL": "secret-one"}


def signed(
    body: bytes = b'{"JobId": "x"}', key: str = "AKIDVEIL", secret: str = "secret-one"
) -> AWSRequest:
    request = AWSRequest(
        method="POST",
        url="http://127.0.0.1:8000/",
        data=body,
        headers={
            "X-Amz-Target": "RekognitionService.GetFaceDetection",
            "Content-Type": "application/x-amz-json-1.1",
        },
    )
    SigV4Auth(Credentials(key, secret), "rekognition", "eu-west-1").add_auth(request)
    return request


def check(request: AWSRequest, body: bytes | None = None, **kw) -> str:
    headers = {k.lower(): v for k, v in request.headers.items()}
    headers.setdefault("host", "127.0.0.1:8000")
    return verify(
        method="POST",
        path="/",
        query="",
        headers=headers,
        body=request.body if body is None else body,
        service="rekognition",
        secrets=SECRETS,
        **kw,
    )


def test_accepts_a_botocore_signature():
    assert check(signed()) == "AKIDVEIL"


@pytest.mark.parametrize(
    ("make", "code"),
    [
        (lambda: signed(key="AKIDOTHER"), "UnrecognizedClientException"),
        (lambda: signed(secret="wrong"), "InvalidSignatureException"),
    ],
)
def test_refuses_bad_credentials(make, code):
    with pytest.raises(SignatureError) as info:
        check(make())
    assert info.value.code == code


def test_refuses_a_changed_body():
    with pytest.raises(SignatureError) as info:
        check(signed(), body=b'{"JobId": "y"}')
    assert info.value.code == "InvalidSignatureException"


def test_refuses_unsigned_and_stale():
    with pytest.raises(SignatureError) as info:
        verify(
            method="POST",
            path="/",
            query="",
            headers={},
            body=b"",
            service="rekognition",
            secrets=SECRETS,
        )
    assert info.value.code == "MissingAuthenticationTokenException"
    with pytest.raises(SignatureError, match="expired"):
        check(signed(), now=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))
