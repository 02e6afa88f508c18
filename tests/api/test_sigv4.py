"""SigV4 verification against requests signed by botocore's own signer."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from veil.api.sigv4 import SignatureError, verify

SECRETS = {"AKIDVEIL": "secret-one"}


def signed(
    body: bytes = b'{"JobId": "x"}',
    key: str = "AKIDVEIL",
    secret: str = "secret-one",
    region: str = "eu-west-1",
    content_sha256: str | None = None,
) -> AWSRequest:
    headers = {
        "X-Amz-Target": "RekognitionService.GetFaceDetection",
        "Content-Type": "application/x-amz-json-1.1",
    }
    if content_sha256 is not None:  # botocore signs the header's value, as S3 clients do
        headers["X-Amz-Content-SHA256"] = content_sha256
    request = AWSRequest(method="POST", url="http://127.0.0.1:8000/", data=body, headers=headers)
    SigV4Auth(Credentials(key, secret), "rekognition", region).add_auth(request)
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
        region="eu-west-1",
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
            region="eu-west-1",
            secrets=SECRETS,
        )
    assert info.value.code == "MissingAuthenticationTokenException"
    with pytest.raises(SignatureError, match="expired"):
        check(signed(), now=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))


def test_accepts_a_content_hash_that_matches_the_body():
    body = b'{"JobId": "x"}'
    assert check(signed(body, content_sha256=hashlib.sha256(body).hexdigest())) == "AKIDVEIL"


def test_refuses_a_replayed_signature_with_another_body():
    """A captured request whose signed x-amz-content-sha256 header vouches for the
    original body, sent again with a body of the attacker's choosing."""
    original = b'{"JobId": "x"}'
    captured = signed(original, content_sha256=hashlib.sha256(original).hexdigest())
    with pytest.raises(SignatureError, match="does not match the body") as info:
        check(captured, body=b'{"JobId": "mine"}')
    assert info.value.code == "InvalidSignatureException"


def test_refuses_an_unsigned_payload():
    with pytest.raises(SignatureError, match="UNSIGNED-PAYLOAD") as info:
        check(signed(b'{"JobId": "any"}', content_sha256="UNSIGNED-PAYLOAD"))
    assert info.value.code == "InvalidSignatureException"


def test_refuses_a_signature_for_another_region():
    with pytest.raises(SignatureError) as info:
        check(signed(region="us-east-1"))
    assert info.value.code == "InvalidSignatureException"
    assert str(info.value) == "Credential should be scoped to a valid region, not 'us-east-1'."


def test_a_non_ascii_signature_is_refused_not_a_crash():
    request = signed()
    auth = request.headers["Authorization"]
    # Starlette hands header bytes over decoded as Latin-1: any byte becomes a character.
    request.headers.replace_header("Authorization", auth[:-2] + "\xe9\xff")
    with pytest.raises(SignatureError) as info:
        check(request)
    assert info.value.code == "InvalidSignatureException"
