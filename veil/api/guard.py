"""The service's front door: what every request must pass before any handler reads its
body.

An ASGI middleware, so it runs on the headers alone: a request from the wrong place,
without a key, or announcing too large a body is answered before a byte of its body is
read; a body that grows past its limit while arriving is cut off. In order:

1. ``Host`` must be a name this service is reached by (an IP address, ``localhost``,
   the machine's name, or one the operator listed): a web page on another domain that
   re-points its DNS name at this machine (DNS rebinding) is refused.
2. A state-changing request (anything but GET, HEAD, OPTIONS) from a browser must come
   from the service's own page: ``Sec-Fetch-Site`` same-origin (or none: typed by the
   user), and an ``Origin``, when sent, equal to the ``Host``. Without this, any site the
   user visits could POST uploads and retries to a keyless service on loopback.
3. With API keys set, every path but the page, its static files, the health check, the
   API schema and the face-detection API (``POST /``, which checks its own signatures)
   needs ``Authorization: Bearer KEY``; GET also takes ``?access_token=KEY`` (a
   ``<video src>`` and a download link cannot send headers).
4. Bodies are capped: uploads at the input size limit plus room for the form around the
   file, the face-detection API at ``FACE_API_LIMIT`` (a picture in base64), everything
   else at ``JSON_LIMIT``.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import re
import socket
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

JSON_LIMIT = 256 * 1024
"""Bytes of body any request but an upload may send: job submissions, bucket events and
face-detection calls are a few hundred bytes to a few KB."""
FACE_API_LIMIT = 7 * 1024 * 1024
"""Bytes of body the face-detection API (``POST /``) may send: DetectFaces carries a
picture of up to 5 MB in base64 (6.7 MB). Its signature is checked from the headers
before any of it is read."""
FORM_ALLOWANCE = 64 * 1024
"""Bytes an upload's multipart form may add around the file itself."""
UPLOAD_PATH = "/api/uploads"
CALLER = "veil_caller"
"""The request state's entry naming the API key a request came with (``key_label``)."""
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_PUBLIC_PATHS = frozenset({"/", "/healthz", "/openapi.json"})
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.", "ip6-localhost"})
_DECIDING = frozenset(
    {"host", "origin", "sec-fetch-site", "authorization", "content-length", "transfer-encoding"}
)
"""Headers the checks below decide on: each may be sent once."""


def _public(method: str, path: str) -> bool:
    """Paths anyone may reach: the page and what it loads, the health check, the API
    schema, and the face-detection API (``POST /``), which authenticates by signature."""
    return path in _PUBLIC_PATHS or path.startswith("/static/") or (method, path) == ("POST", "/")


def machine_names() -> frozenset[str]:
    """The name this machine calls itself, for a service listening on every address. Not
    ``getfqdn``: that asks DNS, and veil makes no network request it was not told to."""
    return frozenset({socket.gethostname().lower()})


@dataclass(frozen=True)
class Policy:
    """Who may call and how much they may send."""

    api_keys: frozenset[str] = frozenset()
    """Bearer keys; none: no key is asked for (the listen-address check keeps such a
    service on loopback unless the operator insisted)."""
    max_upload: int = 10 * 1024**3
    """Bytes of video an upload may carry (``--max-size``)."""
    host_names: frozenset[str] = frozenset()
    """Names besides ``localhost`` (not addresses: any address is accepted) the service
    may be reached by."""

    def body_limit(self, path: str) -> int:
        if path == UPLOAD_PATH:
            return self.max_upload + FORM_ALLOWANCE
        return FACE_API_LIMIT if path == "/" else JSON_LIMIT

    def too_large(self, path: str) -> str:
        """Why a body past ``body_limit`` is refused, in the limit the caller set or knows:
        an upload's is the video's (``--max-size``), not the form's room around it."""
        if path == UPLOAD_PATH:
            return f"the video is larger than the limit of {self.max_upload:,} bytes"
        return f"the request body is larger than {self.body_limit(path):,} bytes"

    def host_allowed(self, host: str) -> bool:
        name = _host_name(host)
        if name is None:
            return False
        try:
            ipaddress.ip_address(name)
            return True  # a browser sends an address only when the user typed it
        except ValueError:
            return name in self.host_names or name in _LOOPBACK_NAMES

    def key_of(self, token: bytes) -> str | None:
        """The API key ``token`` is, or None."""
        # Bytes, not str: a token that is not ASCII is just a wrong token, not an error.
        # Every key is compared, so the time taken does not say which one matched.
        matched = [key for key in self.api_keys if hmac.compare_digest(token, key.encode())]
        return matched[0] if matched else None


def key_label(key: str) -> str:
    """Which API key a caller used, as a privacy report may record it: a short digest,
    never the key (``key 1a2b3c4d``: ``sha256sum`` of the key gives the same start)."""
    return "key " + hashlib.sha256(key.encode()).hexdigest()[:8]


_HOST = re.compile(r"(\[[0-9A-Fa-f:.]+(%[\w.]+)?\]|[\w.-]+)(:\d{1,5})?")
"""What a ``Host`` header may be: a name or an address, and a port. Nothing else (no
userinfo, path or query), so no parser can read another host out of it."""


def _host_name(host: str) -> str | None:
    """The name or address in a ``Host`` header, without the port; None if malformed."""
    if not _HOST.fullmatch(host):
        return None
    try:
        return urlsplit(f"//{host}").hostname  # lower-cased; an IPv6 address unbracketed
    except ValueError:
        return None


_HARDENING = [
    # The page may not be framed by another site (its clicks would pass as same-origin),
    # and nothing is sniffed into a type it was not sent as.
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", b"frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
]


class BodyTooLarge(Exception):
    """A body grew past its limit while it arrived."""


class Guard:
    """ASGI middleware enforcing a ``Policy`` before the app sees the request."""

    def __init__(self, app: ASGIApp, policy: Policy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self._refusal(scope)
        if refusal is not None:
            await _answer(send, scope, *refusal)
            return
        limit = self.policy.body_limit(scope["path"])
        received = 0
        too_large = False
        answered = False  # the caller has its 413
        started = False  # the app began its own answer

        async def counted_receive() -> Message:
            nonlocal received, too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    too_large = True
                    raise BodyTooLarge()
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal answered, started
            if too_large and not started:
                # However the app reported the cut-off body (FastAPI: "error parsing the
                # body", a 400), the caller learns what happened: 413.
                if not answered:
                    answered = True
                    await _answer(send, scope, 413, self.policy.too_large(scope["path"]))
                return
            if message["type"] == "http.response.start":
                started = True
                message = {**message, "headers": [*message.get("headers", []), *_HARDENING]}
            await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except BodyTooLarge:
            if started:
                raise  # too late for another answer: the server closes the connection
            if not answered:
                answered = True
                await _answer(send, scope, 413, self.policy.too_large(scope["path"]))

    def _refusal(self, scope: Scope) -> tuple[int, str, dict[str, str]] | None:
        """Why the request is refused, from its headers alone; None if it may go on."""
        names = [k.decode("latin-1").lower() for k, _ in scope["headers"]]
        repeated = sorted({n for n in _DECIDING if names.count(n) > 1})
        if repeated:
            # Which copy would count differs between proxies and servers: none does.
            return 400, f"the {', '.join(repeated)} header is repeated", {}
        headers = _headers(scope)
        method, path = scope["method"], scope["path"]
        if not self.policy.host_allowed(headers.get("host", "")):
            return (
                421,
                "this service is not reached by that host name; its operator can add the "
                "name with --public-host",
                {},
            )
        if method not in _SAFE_METHODS and _cross_site(headers):
            return (
                403,
                "cross-site requests are refused: use veil's own page or an API client",
                {},
            )
        if self.policy.api_keys and not _public(method, path):
            token = _bearer(headers, scope, method)
            key = self.policy.key_of(token) if token is not None else None
            if key is None:
                return 401, "missing or wrong API key", {"www-authenticate": "Bearer"}
            # Who asked, for what records a person's decision (a review's re-render).
            scope.setdefault("state", {})[CALLER] = key_label(key)
        length = headers.get("content-length", "0") or "0"
        limit = self.policy.body_limit(path)
        if not length.isdigit():
            return 400, "malformed Content-Length", {}
        if int(length) > limit:
            return 413, self.policy.too_large(path), {}
        return None


def _headers(scope: Scope) -> dict[str, str]:
    # Latin-1 maps every byte to a character, so no header value can fail to decode.
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


def _cross_site(headers: dict[str, str]) -> bool:
    """True for a browser request from another site (or another port of this one)."""
    if headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        return True
    origin = headers.get("origin")
    if origin is None:
        return False  # not from a browser, or a same-origin GET-like request
    return origin == "null" or urlsplit(origin).netloc.lower() != headers.get("host", "").lower()


def _bearer(headers: dict[str, str], scope: Scope, method: str) -> bytes | None:
    authorization = headers.get("authorization")
    if authorization is not None:
        scheme, _, token = authorization.partition(" ")
        return token.encode("latin-1") if scheme.lower() == "bearer" else None
    if method in ("GET", "HEAD"):
        query = bytes(scope.get("query_string", b"")).decode("latin-1")
        # Decoded byte for byte (Latin-1), so any token, even one that is not text,
        # is just a wrong token.
        for name, value in parse_qsl(query, encoding="latin-1"):
            if name == "access_token":
                return value.encode("latin-1")
    return None


_AWS_CODES = {
    400: "SerializationException",
    403: "AccessDeniedException",
    413: "RequestEntityTooLargeException",
    421: "AccessDeniedException",
}


async def _answer(
    send: Send, scope: Scope, status: int, detail: str, headers: dict[str, str] | None = None
) -> None:
    """A refusal in the shape the caller's API uses: the face-detection API's (what
    SDK clients parse) on ``POST /``, FastAPI's ``{"detail": ...}`` everywhere else."""
    extra = dict(headers or {})
    if (scope["method"], scope["path"]) == ("POST", "/"):
        code = _AWS_CODES.get(status, "AccessDeniedException")
        body = json.dumps({"__type": code, "Message": detail}).encode()
        content_type = b"application/x-amz-json-1.1"
        extra["x-amzn-errortype"] = code
    else:
        body = json.dumps({"detail": detail}).encode()
        content_type = b"application/json"
    raw = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    raw += _HARDENING
    raw += [(k.encode(), v.encode()) for k, v in extra.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
