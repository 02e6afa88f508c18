from __future__ import annotations

import re

import pytest

from veil.errors import InvalidKeyError
from veil.jobs import JobRequest
from veil.keys import check_media_key, is_media_key
from veil.storage import MemoryStorage
from veil.triggers import Poller, s3_event_keys, seaweedfs_event_keys, submit_keys


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
        # veil's own objects, and names that lie under what veil publishes (issue 24)
        (".veil/segments/job-1/1.mp4", False),
        ("a/.veil/x.mp4", False),
        ("t1.mp4.faces.json/a.mp4", False),
        ("t1.mp4.veil.json/a.mp4", False),
        ("a.MP4/b.mp4", False),
        ("a.mp4.veil-partial/b.mp4", False),
        ("x.faces.json", False),
        ("videos/2024/a.mp4", True),
        ("a.faces.json.mp4", True),
    ],
)
def test_is_media_key(key, expected):
    assert is_media_key(key) is expected


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


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        (".veil/segments/job-1/1.mp4", "veil's own"),
        ("t1.mp4.faces.json/a.mp4", "named like a video, a photo or a file veil publishes"),
        ("notes.txt", "not a video or photo file type"),
        ("../x.mp4", "'..'"),
    ],
)
def test_check_media_key_says_why(key, reason):
    with pytest.raises(InvalidKeyError, match=re.escape(reason)):
        check_media_key(key)


def test_events_and_the_poller_skip_reserved_keys():
    store = MemoryStorage("in")
    for key in (".veil/segments/job-1/1.mp4", "t1.mp4.faces.json/a.mp4", "ok.mp4"):
        store.objects[key] = b"video"
    submitted: list[str] = []

    def submit(request: JobRequest) -> str:
        submitted.append(request.key)
        return request.key

    assert Poller(store, submit).poll_once() == ["ok.mp4"]
    assert submit_keys(store, list(store.objects), submit) == ["ok.mp4"]
    assert submitted == ["ok.mp4", "ok.mp4"]
