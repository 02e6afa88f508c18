"""Webhooks cannot be turned against the server (issue 9, item 3): real HTTP servers on
loopback stand for the internal services a caller's URL could aim at."""

from __future__ import annotations

import contextlib
import http.server
import json
import logging
import re
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from veil import webhooks
from veil.steps import notify
from veil.webhooks import WebhookError, WebhookURLError, check_webhook_url, post_json, safe_url

NOBODY: frozenset[str] = frozenset()


class Hook:
    """An HTTP server on 127.0.0.1 that records each request and answers ``status``,
    with ``Location`` when given."""

    def __init__(self, status: int = 204, location: str | None = None) -> None:
        self.received: list[dict[str, Any]] = []
        hook = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hook.received.append({"path": self.path, "headers": self.headers, "body": body})
                self.send_response(status)
                if location:
                    self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join()


@pytest.fixture
def hook() -> Iterator[Hook]:
    server = Hook()
    yield server
    server.close()


def test_loopback_is_refused_by_default(hook):
    with pytest.raises(WebhookURLError, match=r"127\.0\.0\.1 is a loopback address") as caught:
        post_json(f"{hook.url}/done", {"status": "SUCCEEDED"}, allowed_hosts=NOBODY)
    assert caught.value.status_code == 400
    assert "--allow-webhook-host" in str(caught.value)
    assert hook.received == []


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("127.0.0.1", {"127.0.0.1"}),
        ("localhost", {"localhost"}),
        ("localhost", {"127.0.0.1"}),  # an allowed address, whatever name reaches it
        ("LOCALHOST", {"localhost"}),
    ],
)
def test_the_operator_can_allow_a_loopback_host(hook, host, allowed):
    post_json(
        f"http://{host}:{hook.port}/done?job=1", {"status": "SUCCEEDED"}, allowed_hosts=allowed
    )
    [request] = hook.received
    assert request["path"] == "/done?job=1"
    assert request["headers"]["Content-Type"] == "application/json"
    assert json.loads(request["body"]) == {"status": "SUCCEEDED"}


def test_userinfo_becomes_basic_credentials(hook):
    post_json(f"http://user:p%40ss@127.0.0.1:{hook.port}/", {}, allowed_hosts={"127.0.0.1"})
    assert hook.received[0]["headers"]["Authorization"] == "Basic dXNlcjpwQHNz"  # user:p@ss


def test_a_redirect_is_not_followed(hook):
    inside = hook  # the internal service the redirect aims at
    outside = Hook(status=302, location=f"{inside.url}/admin")
    try:
        with pytest.raises(WebhookError, match="302 Found \\(redirects are not followed\\)"):
            post_json(outside.url, {"status": "FAILED"}, allowed_hosts={"127.0.0.1"})
        assert len(outside.received) == 1
        assert inside.received == []
    finally:
        outside.close()


def test_a_receiver_that_drips_is_cut_off_at_the_deadline(monkeypatch):
    """The socket timeout bounds each read only: a receiver sending a byte a second
    would hold the job's worker for as long as it liked."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    stop = threading.Event()

    def drip() -> None:
        conn, _ = server.accept()
        with conn:
            conn.recv(65536)
            for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n":
                if stop.wait(0.5):
                    return
                with contextlib.suppress(OSError):
                    conn.sendall(bytes([byte]))

    thread = threading.Thread(target=drip, daemon=True)
    thread.start()
    monkeypatch.setattr(webhooks, "DEADLINE", 2.0)
    started = time.monotonic()
    try:
        with pytest.raises(WebhookError, match="not delivered in time"):
            post_json(
                f"http://127.0.0.1:{server.getsockname()[1]}/", {}, allowed_hosts={"127.0.0.1"}
            )
        assert time.monotonic() - started < 5
    finally:
        stop.set()
        thread.join()
        server.close()


def test_an_error_answer_is_a_failed_delivery():
    failing = Hook(status=500)
    try:
        with pytest.raises(WebhookError, match="answered 500"):
            post_json(failing.url, {}, allowed_hosts={"127.0.0.1"})
    finally:
        failing.close()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("file:///etc/passwd", "only http and https webhooks are allowed, not file"),
        ("ftp://example.com/x", "not ftp"),
        ("gopher://127.0.0.1:6379/_INFO", "not gopher"),
        ("javascript:alert(1)", "not javascript"),
        ("/relative/path", "names no scheme"),
        ("http:///no-host", "names no host"),
        ("http://example.com:99999/", "not a valid URL"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a link-local address"),
        ("http://[fe80::1]/", "fe80::1 is a link-local address"),
        ("http://10.1.2.3/", "10.1.2.3 is a private address"),
        ("http://192.168.0.1:8080/", "is a private address"),
        ("http://[fd00::1]/", "is a private address"),
        ("http://[::1]:8000/", "::1 is a loopback address"),
        ("http://[::ffff:127.0.0.1]/", "::ffff:127.0.0.1 is a loopback address"),
        ("http://[::ffff:169.254.169.254]/", "is a link-local address"),
        ("http://localhost:8000/", "localhost resolves to a loopback address"),
        ("http://2130706433/", "resolves to a loopback address"),  # 127.0.0.1 as a number
        ("http://0.0.0.0:8000/", "is an unspecified address"),
        ("http://224.0.0.1/", "is a multicast address"),
        ("http://100.64.0.1/", "is a non-public address"),  # carrier-grade NAT
        ("http://[2002:7f00:1::]/", "is a loopback address"),  # 6to4 around 127.0.0.1
        ("http://[2002:a9fe:a9fe::]/", "is a link-local address"),  # ...around 169.254.169.254
        ("http://a\ud800.example/", "not a valid URL"),
    ],
)
def test_refused_urls_say_why(url, message):
    with pytest.raises(WebhookURLError, match=re.escape(message)):
        check_webhook_url(url, NOBODY)


def test_an_allowed_host_does_not_allow_another(hook):
    with pytest.raises(WebhookURLError, match="loopback"):
        check_webhook_url(f"http://localhost:{hook.port}/", {"10.0.0.5", "hooks.internal"})


def test_the_checked_address_is_the_one_connected_to(hook):
    """One lookup, then a connection to the address it gave: a DNS server that answers
    a public address to the check and 127.0.0.1 to a second lookup gets no second one."""
    events: list[tuple[str, tuple[Any, ...]]] = []
    recording = threading.Event()

    def audit(event: str, args: tuple[Any, ...]) -> None:
        if recording.is_set() and event in ("socket.getaddrinfo", "socket.connect"):
            events.append((event, args))

    sys.addaudithook(audit)  # cannot be removed: it records only while the test runs
    recording.set()
    try:
        post_json(f"http://localhost:{hook.port}/", {}, allowed_hosts={"localhost"})
    finally:
        recording.clear()
    looked_up = [args[0] for event, args in events if event == "socket.getaddrinfo"]
    connected = [args[1][:2] for event, args in events if event == "socket.connect"]
    assert connected
    assert all(address in (("127.0.0.1", hook.port), ("::1", hook.port)) for address in connected)
    # The name once; after that only addresses (which ask no DNS server).
    assert looked_up[0] == "localhost"
    assert set(looked_up[1:]) <= {host for host, _ in connected}
    assert len(hook.received) == 1


SECRET_URL = "http://hook-user:pa55word@127.0.0.1:{port}/hooks/t0ken?signature=s3cret#frag"


def test_secrets_stay_out_of_logs_and_messages(hook, caplog):
    url = SECRET_URL.format(port=hook.port)
    assert safe_url(url) == f"http://127.0.0.1:{hook.port}/..."
    with pytest.raises(WebhookURLError) as caught:
        check_webhook_url(url, NOBODY)
    closed = SECRET_URL.format(port=1)  # nothing listens there: the delivery fails
    with caplog.at_level(logging.WARNING, logger="veil.workflow"):
        notify(closed, {"status": "SUCCEEDED"}, operator=True)
    assert "not delivered" in caplog.text
    for text in (str(caught.value), caplog.text):
        assert "127.0.0.1" in text
        for secret in ("hook-user", "pa55word", "t0ken", "s3cret", "frag"):
            assert secret not in text


def test_the_operators_own_webhook_may_be_on_loopback(hook):
    """``--notification-webhook`` is configuration, not a caller's choice."""
    notify(f"{hook.url}/sns", {"Status": "SUCCEEDED"}, operator=True)
    assert hook.received[0]["path"] == "/sns"


def test_the_operators_webhook_is_still_http_only(caplog):
    with caplog.at_level(logging.WARNING, logger="veil.workflow"):
        notify("file:///etc/passwd", {}, operator=True)
    assert "only http and https" in caplog.text


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from harness import InProcess

    from veil import runtime

    running = InProcess(tmp_path_factory.mktemp("webhook-api"))
    yield running
    runtime.shutdown()


@pytest.mark.parametrize(
    ("url", "reason"),
    [("http://127.0.0.1:1/x", "loopback"), ("file:///etc/passwd", "only http and https")],
)
def test_the_api_refuses_a_forbidden_webhook_when_the_job_is_submitted(api, clip, url, reason):
    api.input.objects["party.mp4"] = Path(clip.path).read_bytes()
    answer = api.call("POST", "/api/jobs", json={"key": "party.mp4", "webhook_url": url})
    assert answer.status_code == 400, answer.text
    assert reason in answer.json()["detail"]
    assert api.call("GET", "/api/jobs").json() == []
