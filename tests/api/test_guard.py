"""Hostile requests against a real ``veil serve`` on loopback: bodies refused before they
are read, uploads stopped at the size limit, foreign hosts and cross-site pages refused,
malformed input answered with a 4xx, never a 500."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import socket
import time

import httpx
import pytest
from servers import VeilServer, wait_for

from veil.api.guard import CALLER, Guard, Policy, key_label

API_KEY = "k" * 32
MAX_SIZE = 200_000


def raw_request(server: VeilServer, head: bytes, body: bytes = b"", wait: float = 10) -> bytes:
    """Send bytes as they are (a lying Content-Length, a non-ASCII header) and return what
    the server answers within ``wait`` seconds, without closing our side first."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=wait) as sock:
        sock.sendall(head + body)
        answer = b""
        deadline = time.monotonic() + wait
        while b"\r\n\r\n" not in answer and time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
        return answer


def announced_only(
    server: VeilServer, target: str, length: int, content_type: str = "application/json"
) -> int:
    """The status of a POST that announces ``length`` bytes of body and sends none: only
    an answer given from the headers alone can arrive."""
    head = (
        f"POST {target} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
        f"Content-Type: {content_type}\r\nContent-Length: {length}\r\n\r\n"
    ).encode()
    return status_of(raw_request(server, head))


def status_of(answer: bytes) -> int:
    assert answer.startswith(b"HTTP/1.1 "), answer[:200]
    return int(answer.split(b" ", 2)[1])


def files_in(folder) -> list[str]:
    # The server removes folders while we look: a folder gone between listing and
    # reading counts as empty, and the caller's wait_for looks again.
    names = []
    for _root, _dirs, files in os.walk(folder):
        names += files
    return sorted(names)


@pytest.fixture(scope="module")
def keyed(tmp_path_factory):
    server = VeilServer(
        tmp_path_factory.mktemp("keyed") / "data",
        "--api-key",
        API_KEY,
        "--max-size",
        str(MAX_SIZE),
        "--poll-interval",
        "0",
        api_key=API_KEY,
    ).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def open_server(tmp_path_factory):
    server = VeilServer(
        tmp_path_factory.mktemp("open") / "data",
        "--public-host",
        "Veil.Example.test",
        "--max-size",
        str(MAX_SIZE),
        "--poll-interval",
        "0",
    ).start()
    yield server
    server.stop()


@pytest.mark.parametrize("path", ["/api/uploads", "/events/s3", "/api/jobs"])
def test_no_key_is_refused_before_the_body_is_read(keyed, path):
    assert announced_only(keyed, path, 5_000_000_000) == 401


@pytest.mark.parametrize(
    "path",
    [
        "/api/jobs",
        "/api/objects",
        "/api/jobs/job-1",
        "/api/jobs/job-1/input",
        "/api/jobs/job-1/input?upright=1",
        "/api/jobs/job-1/held",
        "/api/jobs/job-1/review/boxes?from_ms=0&to_ms=1000",
        "/api/jobs/job-1/result",
        "/api/jobs/job-1/faces",
        "/api/jobs/job-1/report",
        "/api/jobs/job-1/review",
        "/api/jobs/job-1/tracks/0/thumbnail",
    ],
)
def test_reading_needs_a_key_too(keyed, path):
    assert httpx.get(f"{keyed.url}{path}").status_code == 401
    assert (
        httpx.get(f"{keyed.url}{path}", headers={"Authorization": "Bearer wrong"}).status_code
        == 401
    )
    r = httpx.delete(f"{keyed.url}/api/jobs/job-1")
    assert r.status_code == 401
    r = httpx.delete(f"{keyed.url}/api/jobs/job-1", params={"purge": "true", "input": "true"})
    assert r.status_code == 401
    review = {"edits": [], "renders": 0}
    assert httpx.post(f"{keyed.url}/api/jobs/job-1/review", json=review).status_code == 401


def test_non_ascii_bearer_token_is_a_401(keyed):
    head = (
        f"GET /api/jobs HTTP/1.1\r\nHost: 127.0.0.1:{keyed.port}\r\n".encode()
        + b"Authorization: Bearer \xc3\xa9t\xe9\r\nConnection: close\r\n\r\n"
    )
    assert status_of(raw_request(keyed, head)) == 401


def test_access_token_in_the_url_only_reads(keyed):
    assert httpx.get(f"{keyed.url}/api/jobs", params={"access_token": API_KEY}).status_code == 200
    r = httpx.post(f"{keyed.url}/api/jobs", params={"access_token": API_KEY}, json={"key": "a.mp4"})
    assert r.status_code == 401


@pytest.mark.parametrize(
    ("path", "size"),
    [
        ("/api/uploads", MAX_SIZE + 100_000),
        ("/api/jobs", 300_000),
        ("/api/jobs/job-1/review", 300_000),
        ("/events/s3", 300_000),
        ("/", 8_000_000),  # the face API takes a picture of up to 5 MB, in base64
    ],
)
def test_announced_oversized_bodies_are_refused_unread(open_server, path, size):
    assert announced_only(open_server, path, size) == 413


def test_an_oversized_upload_is_told_the_limit_it_was_given(open_server):
    # In the limit the operator set (--max-size), not the form's room around the file.
    answer = httpx.post(
        f"{open_server.url}/api/uploads",
        content=b"\0" * (MAX_SIZE + 100_000),
        headers={"Content-Type": "multipart/form-data; boundary=b"},
    )
    assert answer.status_code == 413
    assert answer.json()["detail"] == f"the video is larger than the limit of {MAX_SIZE:,} bytes"


def test_chunked_upload_is_stopped_at_the_limit(open_server):
    """No Content-Length: the upload is counted as it arrives and refused once past
    --max-size, while the client is still sending (we send 300 KB of a body that never
    ends), leaving nothing behind in the input folder or the service's work folder."""
    before = files_in(open_server.data / "input")
    part = b'--b\r\nContent-Disposition: form-data; name="file"; filename="big.mp4"\r\n\r\n'
    chunks = [part] + [b"\0" * 60_000] * 5
    body = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks)
    head = (
        f"POST /api/uploads HTTP/1.1\r\nHost: 127.0.0.1:{open_server.port}\r\n"
        "Content-Type: multipart/form-data; boundary=b\r\nTransfer-Encoding: chunked\r\n\r\n"
    ).encode()
    answer = raw_request(open_server, head, body)
    assert status_of(answer) == 413
    assert files_in(open_server.data / "input") == before
    assert [f for f in files_in(open_server.data / "work") if f.startswith("upload-")] == []


def test_upload_is_written_once_into_the_input_bucket(open_server, clip):
    r = httpx.post(
        f"{open_server.url}/api/uploads",
        files={"file": ("kept.mp4", clip.path.read_bytes())},
        timeout=30,
    )
    assert r.status_code == 202, r.text
    assert (open_server.data / "input" / "kept.mp4").read_bytes() == clip.path.read_bytes()
    assert [p for p in files_in(open_server.data / "work") if p.startswith("upload-")] == []


@pytest.mark.parametrize(
    "form",
    [
        b"not a form at all",
        b'--b\r\nContent-Disposition: form-data; name="other"\r\n\r\nx\r\n--b--\r\n',
        b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.mp4"\r\n\r\nx\r\n'
        b'--b\r\nContent-Disposition: form-data; name="file"; filename="b.mp4"\r\n\r\ny\r\n--b--\r\n',
    ],
    ids=["garbage", "no-file-part", "two-files"],
)
def test_malformed_uploads_are_400(open_server, form):
    before = files_in(open_server.data / "input")
    r = httpx.post(
        f"{open_server.url}/api/uploads",
        content=form,
        headers={"Content-Type": "multipart/form-data; boundary=b"},
    )
    assert r.status_code == 400, r.text
    assert files_in(open_server.data / "input") == before


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8000", "rebind.attacker.test"])
def test_foreign_host_names_are_refused(open_server, host):
    """DNS rebinding: a page on another domain whose name now points at 127.0.0.1."""
    before = files_in(open_server.data / "input")
    r = httpx.get(f"{open_server.url}/api/jobs", headers={"Host": host})
    assert r.status_code == 421
    r = httpx.post(
        f"{open_server.url}/api/uploads",
        headers={"Host": host},
        files={"file": ("a.mp4", b"x")},
    )
    assert r.status_code == 421
    assert files_in(open_server.data / "input") == before


@pytest.mark.parametrize(
    "host", ["localhost", "127.0.0.1", "[::1]", "veil.example.test", "VEIL.example.TEST"]
)
def test_own_host_names_are_served(open_server, host):
    r = httpx.get(f"{open_server.url}/api/jobs", headers={"Host": f"{host}:{open_server.port}"})
    assert r.status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Origin": "http://127.0.0.1:1"},  # another service on this machine
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
    ],
)
def test_cross_site_writes_are_refused(open_server, clip, headers):
    """What a page on another site can send without asking (a simple form POST)."""
    before = files_in(open_server.data / "input")
    r = httpx.post(
        f"{open_server.url}/api/uploads", headers=headers, files={"file": ("x.mp4", b"x")}
    )
    assert r.status_code == 403
    r = httpx.post(f"{open_server.url}/api/jobs/job-1/retry", headers=headers)
    assert r.status_code == 403
    review = {"edits": [{"action": "show", "track": 0}], "renders": 0, "approve": True}
    r = httpx.post(f"{open_server.url}/api/jobs/job-1/review", headers=headers, json=review)
    assert r.status_code == 403
    purge = {"purge": "true", "input": "true"}
    r = httpx.delete(f"{open_server.url}/api/jobs/job-1", headers=headers, params=purge)
    assert r.status_code == 403
    assert files_in(open_server.data / "input") == before
    # Reading stays open to such headers: a GET changes nothing.
    assert httpx.get(f"{open_server.url}/api/jobs", headers=headers).status_code == 200


def test_same_origin_page_may_write(open_server):
    headers = {"Origin": open_server.url, "Sec-Fetch-Site": "same-origin"}
    r = httpx.post(f"{open_server.url}/api/jobs", headers=headers, json={"key": "missing.mp4"})
    assert r.status_code == 404  # passed the guard; the object is not there


@pytest.mark.parametrize(
    "event",
    [{"Records": 5}, ["x"], [{"s3": "x"}], {"Records": [{"s3": "x"}]}, {"Records": ["x"]}, "x"],
)
def test_malformed_bucket_events_are_4xx(open_server, event):
    r = httpx.post(f"{open_server.url}/events/s3", json=event)
    assert 400 <= r.status_code < 500, r.text
    # A filer event is one object; other objects are events veil does not act on.
    r = httpx.post(f"{open_server.url}/events/seaweedfs", json=event)
    expected = (200, 200) if isinstance(event, dict) else (400, 499)
    assert expected[0] <= r.status_code <= expected[1], r.text


def test_deeply_nested_json_is_a_4xx(open_server):
    deep = "[" * 100_000 + "]" * 100_000
    for path in ("/api/jobs", "/events/s3"):
        r = httpx.post(
            f"{open_server.url}{path}",
            content=deep,
            headers={"Content-Type": "application/json"},
        )
        assert 400 <= r.status_code < 500, (path, r.status_code, r.text)


@pytest.mark.parametrize("key", ["a" * 1000 + ".mp4", "é" * 600 + ".mp4", "x/" * 520 + "a.mp4"])
def test_long_keys_are_4xx(open_server, key):
    r = httpx.post(f"{open_server.url}/api/jobs", json={"key": key})
    assert 400 <= r.status_code < 500, r.text
    r = httpx.post(
        f"{open_server.url}/api/uploads", params={"key": key}, files={"file": ("a.mp4", b"x")}
    )
    assert 400 <= r.status_code < 500, r.text
    assert json.loads(r.text)["detail"]


def test_errors_name_the_bucket_not_the_server_path(open_server, tmp_path):
    outside = tmp_path / "outside.mp4"
    outside.write_bytes(b"private")
    (open_server.data / "input" / "link.mp4").symlink_to(outside)
    try:
        for key in ("link.mp4", "missing.mp4", "a" * 300 + ".mp4"):
            r = httpx.post(f"{open_server.url}/api/jobs", json={"key": key})
            assert 400 <= r.status_code < 500, r.text
            detail = r.json()["detail"]
            assert str(open_server.data) not in detail and "file://" not in detail, detail
        assert r.json()["detail"].startswith("invalid key")
    finally:
        (open_server.data / "input" / "link.mp4").unlink()


# --- Found by an attacker's review -------------------------------------------------------


def test_a_refused_upload_leaves_nothing_behind(open_server):
    before = files_in(open_server.data / "input")
    r = httpx.post(
        f"{open_server.url}/api/uploads", files={"file": ("a" * 300 + ".mp4", b"x" * 50_000)}
    )
    assert r.status_code == 400, r.text
    (open_server.data / "input" / "big5.mp4").write_bytes(b"a file, not a folder")
    r = httpx.post(
        f"{open_server.url}/api/uploads",
        params={"key": "big5.mp4/sub.mp4"},
        files={"file": ("sub.mp4", b"x" * 1000)},
    )
    assert r.status_code == 400, r.text
    (open_server.data / "input" / "big5.mp4").unlink()
    assert files_in(open_server.data / "input") == before
    assert files_in(open_server.data / "work" / "uploads") == []


def test_a_key_that_is_no_video_is_refused_before_the_body(open_server):
    form = "multipart/form-data; boundary=b"
    assert announced_only(open_server, "/api/uploads?key=notes.txt", 100_000, form) == 400


def test_a_cut_short_upload_is_not_stored(open_server):
    before = files_in(open_server.data / "input")
    form = b'--b\r\nContent-Disposition: form-data; name="file"; filename="cut.mp4"\r\n\r\n'
    r = httpx.post(
        f"{open_server.url}/api/uploads",
        content=form + b"x" * 1000,  # no closing boundary
        headers={"Content-Type": "multipart/form-data; boundary=b"},
    )
    assert r.status_code == 400 and "cut short" in r.json()["detail"]
    assert files_in(open_server.data / "input") == before


@pytest.mark.parametrize(
    "body",
    [
        {"key": "a\ud800.mp4"},
        {"key": "z\n13:09:00 job-0000  SUCCEEDED \x1b[31mRED\x1b[0m.mp4"},
        {"key": "x.mp4", "webhook_url": "http://a\ud800.com/"},
    ],
    ids=["lone-surrogate", "control-characters", "surrogate-webhook"],
)
def test_keys_and_urls_that_are_not_text_are_400(open_server, body):
    raw = json.dumps(body).encode()  # json escapes the surrogate as \ud800
    r = httpx.post(
        f"{open_server.url}/api/jobs", content=raw, headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 400, r.text
    event = {"Records": [{"s3": {"bucket": {"name": ""}, "object": {"key": body["key"]}}}]}
    r = httpx.post(
        f"{open_server.url}/events/s3",
        content=json.dumps(event).encode(),
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code < 500, r.text


def test_an_overlong_multipart_boundary_is_400(open_server):
    r = httpx.post(
        f"{open_server.url}/api/uploads",
        content=b"x",
        headers={"Content-Type": "multipart/form-data; boundary=" + "b" * 300},
    )
    assert r.status_code == 400, r.text


def test_a_non_text_access_token_is_401(keyed):
    r = httpx.get(f"{keyed.url}/api/jobs?access_token=%FF%FE")
    assert r.status_code == 401


def test_a_chunked_json_body_past_the_limit_is_413(open_server):
    def body():
        yield b'{"key": "'
        for _ in range(10):
            yield b"a" * 65536
        yield b'"}'

    r = httpx.post(
        f"{open_server.url}/api/jobs", content=body(), headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 413, r.text


@pytest.mark.parametrize(
    "extra",
    [
        [("Origin", "https://evil.example"), ("Origin", "http://127.0.0.1")],
        [("Sec-Fetch-Site", "cross-site"), ("Sec-Fetch-Site", "same-origin")],
    ],
    ids=["origin-twice", "fetch-site-twice"],
)
def test_repeated_deciding_headers_are_refused(open_server, extra):
    lines = ["POST /api/jobs/job-1/retry HTTP/1.1", f"Host: 127.0.0.1:{open_server.port}"]
    lines += [f"{name}: {value}" for name, value in extra]
    head = ("\r\n".join([*lines, "Content-Length: 0", "Connection: close"]) + "\r\n\r\n").encode()
    assert status_of(raw_request(open_server, head)) == 400


@pytest.mark.parametrize("host", ["evil.example@localhost", "localhost/x", "localhost#x"])
def test_hosts_with_more_than_a_name_are_refused(open_server, host):
    r = httpx.get(f"{open_server.url}/api/jobs", headers={"Host": host})
    assert r.status_code == 421


def test_no_third_party_script_pages_and_no_framing(open_server):
    for path in ("/docs", "/redoc"):
        assert httpx.get(f"{open_server.url}{path}").status_code == 404
    r = httpx.get(f"{open_server.url}/")
    assert r.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    assert r.headers["x-content-type-options"] == "nosniff"


def test_downloads_leave_nothing_in_tmpdir(tmp_path, clip):
    # Issue 24: each download copied the original into $TMPDIR (veil-dl-*), and a kill
    # mid-download left it there. Copies being sent live in the work folder, which a
    # restart clears.
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    data = tmp_path / "data"
    stale = data / "work" / "downloads" / "dl-killed" / "original.mp4"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"an original a killed server was sending")
    server = VeilServer(data, "--poll-interval", "0", env={"TMPDIR": str(tmpdir)}).start()
    try:
        assert not stale.exists()
        r = server.post("/api/uploads", files={"file": ("dl.mp4", clip.path.read_bytes())})
        job = server.wait_job(r.json()["id"])
        for what in ("input", "result", "faces"):
            answer = server.get(f"/api/jobs/{job['id']}/{what}")
            assert answer.status_code == 200, answer.text
        assert server.get(f"/api/jobs/{job['id']}/input").content == clip.path.read_bytes()
        assert [p.name for p in tmpdir.iterdir() if p.name.startswith("veil-dl")] == []
        wait_for(lambda: files_in(data / "work" / "downloads") == [], 10, "copies sent removed")
    finally:
        server.stop()


def test_the_key_a_request_came_with_is_named_to_the_app_never_shown():
    # Who re-rendered a job is recorded by the key they used: a digest, not the key.
    first, second = "a" * 32, "b" * 32
    seen: list[str | None] = []

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        seen.append(scope.get("state", {}).get(CALLER))
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    guard = Guard(app, Policy(api_keys=frozenset({first, second})))

    async def ask(key: str) -> int:
        transport = httpx.ASGITransport(app=guard)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as c:
            answer = await c.get("/api/jobs", headers={"Authorization": f"Bearer {key}"})
            return answer.status_code

    assert asyncio.run(ask(second)) == 204
    assert asyncio.run(ask("c" * 32)) == 401
    assert seen == [key_label(second)]
    assert seen[0] == "key " + hashlib.sha256(second.encode()).hexdigest()[:8]
    assert second not in seen[0] and key_label(first) != key_label(second)
