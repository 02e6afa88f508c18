"""Verifying AWS Signature Version 4 on incoming requests, as the cloud services do.

Only what SDK clients send is supported: the ``Authorization`` header form (not
presigned query strings) over the body's own SHA-256. The body is always hashed here:
an ``x-amz-content-sha256`` header only has to agree with it, so a captured request
cannot carry another body, and ``UNSIGNED-PAYLOAD`` (which signs no body at all) is
refused. botocore sends neither for JSON services such as the face-detection API.

The headers are checked here (``check_headers``: key, scope, date), before any body is
read; the signature itself is computed by botocore's own signer (``SigV4Auth``) over the
request as received and exactly the headers the caller signed, so the canonical form is
the one the SDKs use.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from veil.errors import SignatureError

ALGORITHM = "AWS4-HMAC-SHA256"
MAX_SKEW = dt.timedelta(minutes=15)


@dataclass(frozen=True)
class Authorization:
    """What a request's ``Authorization`` and ``X-Amz-Date`` headers claim."""

    access_key: str
    date: str
    amz_date: str
    signed_headers: list[str]
    signature: str


def check_headers(
    *,
    headers: Mapping[str, str],
    service: str,
    region: str,
    secrets: Mapping[str, str],
    now: dt.datetime | None = None,
) -> Authorization:
    """Everything the headers alone can prove wrong: no or malformed ``Authorization``,
    an unknown access key, another service or region, a stale date. Checked before the
    body is read, so a caller without a valid key costs the server no more than this;
    ``SignatureError`` otherwise."""
    auth = headers.get("authorization")
    if not auth:
        raise SignatureError("MissingAuthenticationTokenException", "Missing Authentication Token")
    algorithm, _, rest = auth.partition(" ")
    if algorithm != ALGORITHM:
        raise SignatureError("IncompleteSignatureException", f"unsupported algorithm {algorithm!r}")
    fields = {}
    for item in rest.split(","):
        name, _, value = item.strip().partition("=")
        fields[name] = value
    try:
        access_key, date, scope_region, scope_service, terminal = fields["Credential"].split("/")
        signed_headers = fields["SignedHeaders"].split(";")
        signature = fields["Signature"]
    except (KeyError, ValueError) as exc:
        raise SignatureError(
            "IncompleteSignatureException", "malformed Authorization header"
        ) from exc
    if access_key not in secrets:
        raise SignatureError(
            "UnrecognizedClientException", "The security token included in the request is invalid."
        )
    if scope_service != service or terminal != "aws4_request":
        raise SignatureError("InvalidSignatureException", f"credential scope is not for {service}")
    if scope_region != region:  # the cloud's words, so a misconfigured client is recognised
        raise SignatureError(
            "InvalidSignatureException",
            f"Credential should be scoped to a valid region, not '{scope_region}'.",
        )
    amz_date = headers.get("x-amz-date", "")
    try:
        when = dt.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
    except ValueError as exc:
        raise SignatureError(
            "IncompleteSignatureException", "missing or malformed X-Amz-Date"
        ) from exc
    now = now or dt.datetime.now(dt.UTC)
    if abs(now - when) > MAX_SKEW or not amz_date.startswith(date):
        raise SignatureError("InvalidSignatureException", "Signature expired or dated wrongly")
    if "host" not in signed_headers:
        raise SignatureError("InvalidSignatureException", "the Host header must be signed")
    return Authorization(access_key, date, amz_date, signed_headers, signature)


def _signature(
    signer: SigV4Auth,
    method: str,
    path: str,
    query: str,
    headers: Mapping[str, str],
    body: bytes,
    auth: Authorization,
) -> str:
    """The signature ``signer`` (botocore's own SigV4, holding the caller's secret and the
    expected scope) computes for the request as received, over exactly the headers the
    caller says it signed."""
    url = f"https://{headers.get('host', '')}{path}" + (f"?{query}" if query else "")
    signed = {name: headers.get(name, "") for name in auth.signed_headers}
    request = AWSRequest(method=method, url=url, data=body, headers=signed)
    request.context["timestamp"] = auth.amz_date
    canonical = signer.canonical_request(request)
    return str(signer.signature(signer.string_to_sign(request, canonical), request))


def verify(
    *,
    method: str,
    path: str,
    query: str,
    headers: Mapping[str, str],
    body: bytes,
    service: str,
    region: str,
    secrets: Mapping[str, str],
    now: dt.datetime | None = None,
) -> str:
    """The access key that signed the request; ``SignatureError`` if none did.

    ``headers`` must be case-insensitive (as Starlette's are); ``secrets`` maps access
    key IDs to secret keys; a signature scoped to another ``region`` is refused.
    """
    auth = check_headers(headers=headers, service=service, region=region, secrets=secrets, now=now)
    access_key = auth.access_key
    payload_hash = hashlib.sha256(body).hexdigest()
    claimed = headers.get("x-amz-content-sha256")
    if claimed is not None and claimed != payload_hash:
        raise SignatureError(
            "InvalidSignatureException",
            "UNSIGNED-PAYLOAD is not accepted: sign the body"
            if claimed == "UNSIGNED-PAYLOAD"
            else "The provided x-amz-content-sha256 header does not match the body received.",
        )
    signer = SigV4Auth(Credentials(access_key, secrets[access_key]), service, region)
    expected = _signature(signer, method, path, query, headers, body, auth)
    # As bytes: compare_digest refuses str with non-ASCII characters (a TypeError, a 500).
    if not hmac.compare_digest(expected.encode(), auth.signature.encode()):
        raise SignatureError(
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided.",
        )
    return access_key
