from __future__ import annotations

import pytest

from veil.jobs import JobRequest
from veil.storage import MemoryStorage
from veil.triggers import Poller, is_video_key, s3_event_keys, seaweedfs_event_keys, submit_keys


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("a.mp4", True),
        ("dir/B.MOV", True),
        ("x.webm", True),
        ("x.mkv", True),
        ("x.avi", True),
        ("x.txt", False),
        ("folder/", False),
        ("folder.mp4/", False),
        (".hidden.mp4", False),
        ("d/.x.mp4.ab12.veil-partial", False),
        ("noext", False),
        ("", False),
    ],
)
def test_is_video_key(key, expected):
    assert is_video_key(key) is expected


def record(bucket: str, key: str, event: str = "ObjectCreated:Put") -> dict:
    return {
        "eventName": event,
        "s3": {"bucket": {"name": bucket}, "object": {"key": key, "size": 10, "eTag": "abc"}},
    }


@pytest.mark.parametrize(
    ("records", "expected"),
    [
        ([record("in", "up/my+video.mp4")], ["my video.mp4"]),
        ([record("in", "up/caf%C3%A9.mov")], ["café.mov"]),
        ([record("other", "up/a.mp4")], []),
        ([record("in", "elsewhere/a.mp4")], []),
        ([record("in", "up/a.mp4", "ObjectRemoved:Delete")], []),
        ([record("in", "up/a.mp4"), record("in", "up/b.mp4")], ["a.mp4", "b.mp4"]),
    ],
)
def test_s3_event_keys(records, expected):
    assert s3_event_keys({"Records": records}, ("in", "up/")) == expected


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        ({"event_type": "create", "key": "/buckets/in/up/a b.mp4"}, ["a b.mp4"]),
        (
            {"event_type": "create", "key": "/buckets/in/up/dir"},
            ["dir"],
        ),  # filtered later: no extension
        ({"event_type": "delete", "key": "/buckets/in/up/a.mp4"}, []),
        ({"event_type": "create", "key": "/buckets/.system/owners/x"}, []),
        ({"event_type": "create", "key": "/buckets/other/up/a.mp4"}, []),
    ],
)
def test_seaweedfs_event_keys(event, expected):
    assert seaweedfs_event_keys(event, ("in", "up/")) == expected


def test_submit_keys_checks_the_store(tmp_path):
    store = MemoryStorage()
    store.objects["a.mp4"] = b"video"
    submitted: list[JobRequest] = []

    def submit(request: JobRequest) -> str:
        submitted.append(request)
        return f"job-{request.key}"

    ids = submit_keys(store, ["a.mp4", "missing.mp4", "../x.mp4", "notes.txt"], submit)
    assert ids == ["job-a.mp4"]
    assert submitted[0].size == 5 and submitted[0].etag


def test_poller_submits_each_version_once_and_waits_for_files_to_settle():
    store = MemoryStorage()
    seen: list[tuple[str, str]] = []

    def submit(request: JobRequest) -> str:
        seen.append((request.key, request.etag))
        return request.key

    poller = Poller(store, submit, settle=True)
    store.objects["a.mp4"] = b"part"
    assert poller.poll_once() == []  # first sight: may still be growing
    store.objects["a.mp4"] = b"partial video"
    assert poller.poll_once() == []  # changed since: still growing
    assert poller.poll_once() == ["a.mp4"]  # unchanged across two listings
    assert poller.poll_once() == []
    store.objects["a.mp4"] = b"a new upload"
    poller.poll_once()
    assert poller.poll_once() == ["a.mp4"]
    assert len(seen) == 2 and seen[0][1] != seen[1][1]
