from __future__ import annotations

import io
import itertools
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from servers import S3_ENV

from veil.errors import (
    InvalidKeyError,
    ObjectChangedError,
    ObjectNotFoundError,
    OptionError,
    StorageError,
)
from veil.service import ServeOptions, service_config
from veil.storage import (
    LocalStorage,
    MemoryStorage,
    S3Storage,
    Storage,
    check_key,
    storage_from_url,
)
from veil.storage.ranged import StoredVideo
from veil.video import VideoReader, probe


@pytest.mark.parametrize(
    "key",
    [
        "../x.mp4",
        "a/../../b.mp4",
        "/etc/passwd",
        "a//b.mp4",
        "a/./b.mp4",
        "a\\b.mp4",
        "a\x00.mp4",
        "",
        "x" * 1025,
        "a/..",
    ],
)
def test_bad_keys_are_refused(key):
    with pytest.raises(InvalidKeyError):
        check_key(key)


@pytest.mark.parametrize(
    "key", ["a.mp4", "cam 1/2026-11-26/clip.MOV", "ünïcode/vidéo.mkv", "a..b.mp4", ".hidden/x.mp4"]
)
def test_good_keys_pass(key):
    assert check_key(key) == key


@pytest.fixture(params=["local", "memory"])
def store(request, tmp_path):
    return LocalStorage(tmp_path / "bucket") if request.param == "local" else MemoryStorage()


def test_round_trip(store, tmp_path):
    if isinstance(store, LocalStorage):
        store.root.mkdir()
    src = tmp_path / "src.bin"
    src.write_bytes(b"video bytes")
    info = store.upload(src, "a/b/c.mp4")
    assert (info.key, info.size) == ("a/b/c.mp4", 11)
    assert [i.key for i in store.list()] == ["a/b/c.mp4"]
    assert [i.key for i in store.list("a/b")] == ["a/b/c.mp4"] and not list(store.list("z"))
    dst = tmp_path / "dst.bin"
    assert store.download("a/b/c.mp4", dst).etag == info.etag
    assert dst.read_bytes() == b"video bytes"
    src.write_bytes(b"new video bytes")
    assert store.upload(src, "a/b/c.mp4").etag != info.etag
    store.delete("a/b/c.mp4")
    assert not store.exists("a/b/c.mp4")
    with pytest.raises(ObjectNotFoundError):
        store.stat("a/b/c.mp4")
    with pytest.raises(InvalidKeyError):
        store.upload(src, "../escape.mp4")
    assert not (tmp_path / "escape.mp4").exists()


def test_local_hides_partial_and_hidden_files_and_refuses_symlinks_out(tmp_path):
    root = tmp_path / "bucket"
    root.mkdir()
    (root / "ok.mp4").write_bytes(b"1")
    (root / ".x.mp4.1234.veil-partial").write_bytes(b"2")
    (root / ".DS_Store").write_bytes(b"3")
    (tmp_path / "secret.mp4").write_bytes(b"4")
    os.symlink(tmp_path / "secret.mp4", root / "link.mp4")
    store = LocalStorage(root)
    assert [i.key for i in store.list()] == ["link.mp4", "ok.mp4"]
    with pytest.raises(ObjectNotFoundError, match="outside"):
        store.download("link.mp4", tmp_path / "copy.mp4")
    # A symlink loop is a missing object too, not an unexpected error.
    os.symlink(root / "loop.mp4", root / "loop.mp4")
    with pytest.raises(ObjectNotFoundError, match="symlink loop"):
        store.stat("loop.mp4")
    assert [i.key for i in store.list()] == ["link.mp4", "ok.mp4"]  # and listed past


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("s3://bucket/prefix", S3Storage),
        ("file:///tmp/x", LocalStorage),
        ("relative/dir", LocalStorage),
        ("memory://t", MemoryStorage),
    ],
)
def test_storage_from_url(url, kind):
    assert isinstance(storage_from_url(url, s3_endpoint="http://127.0.0.1:1"), kind)


def test_s3_url_prefix():
    store = storage_from_url("s3://bucket/some/prefix/", s3_endpoint="http://127.0.0.1:1")
    assert isinstance(store, S3Storage)
    assert (store.bucket, store.prefix, store.url) == (
        "bucket",
        "some/prefix/",
        "s3://bucket/some/prefix",
    )


@pytest.fixture(scope="module")
def seaweed(seaweed):
    """The run's SeaweedFS (tests/conftest.py) with this module's bucket."""
    seaweed.buckets("versions")
    return seaweed


def store_of(
    kind: str,
    prefix: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> Storage:
    """A store of ``kind``: a folder, memory, or S3 on the run's real SeaweedFS (bucket
    ``versions``, under ``prefix``)."""
    if kind == "s3":
        fs = request.getfixturevalue("seaweed")
        for name, value in S3_ENV.items():
            monkeypatch.setenv(name, value)
        return S3Storage("versions", prefix, endpoint_url=fs.endpoint)
    return LocalStorage(tmp_path / "bucket") if kind == "local" else MemoryStorage()


@pytest.mark.parametrize("kind", ["local", "memory", "s3"])
def test_download_of_a_version_refuses_newer_bytes(kind, tmp_path, request, monkeypatch):
    """A job reads the version it was started for, or nothing: never bytes stored later
    under the same key (its downloads, its retry)."""
    store = store_of(kind, "v", tmp_path, request, monkeypatch)
    src = tmp_path / "src.bin"
    src.write_bytes(b"first version")
    first = store.upload(src, "cam/a.mp4")
    dst = tmp_path / "dst.bin"
    assert store.download("cam/a.mp4", dst, etag=first.etag) == first
    assert dst.read_bytes() == b"first version"
    src.write_bytes(b"second version, longer")
    second = store.upload(src, "cam/a.mp4")
    with pytest.raises(ObjectChangedError) as caught:
        store.download("cam/a.mp4", dst, etag=first.etag)
    assert caught.value.status_code == 410 and "newer version" in str(caught.value)
    assert store.download("cam/a.mp4", dst, etag=second.etag) == second
    assert dst.read_bytes() == b"second version, longer"
    # Read in place, a range at a time (a segment on another machine): the same.
    assert store.read_range("cam/a.mp4", 7, 14, second.etag) == b"version"
    assert store.read_range("cam/a.mp4", 16, 99, second.etag) == b"longer"
    with pytest.raises(ObjectChangedError):
        store.read_range("cam/a.mp4", 0, 5, first.etag)


def test_folder_store_errors_do_not_show_the_server_path(tmp_path):
    store = LocalStorage(tmp_path / "private" / "input")
    store.root.mkdir(parents=True)
    with pytest.raises(ObjectNotFoundError) as caught:
        store.download("gone.mp4", tmp_path / "x")
    assert str(caught.value) == "input/gone.mp4: no such object"
    with pytest.raises(InvalidKeyError) as long_name:
        store.stat("a" * 300 + ".mp4")
    assert "255 bytes" in str(long_name.value) and str(tmp_path) not in str(long_name.value)


def test_s3_store_never_asks_the_cloud_metadata_service(tmp_path):
    """A store at an endpoint the user gave, without credentials: botocore's lookup must
    not go on to 169.254.169.254 or a container credentials URL. Run in a fresh process
    with an audit hook that records every connect, and no AWS settings at all."""
    script = tmp_path / "probe.py"
    script.write_text(
        "import sys\n"
        "seen = []\n"
        "sys.addaudithook(lambda e, a: seen.append(str(a[1])) if e == 'socket.connect' else None)\n"
        "from veil.errors import StorageError\n"
        "from veil.storage import S3Storage\n"
        "try:\n"
        "    S3Storage('b', endpoint_url='http://127.0.0.1:9').stat('a.mp4')\n"
        "except StorageError as exc:\n"
        "    print('error:', exc)\n"
        "print('connects:', seen)\n"
    )
    home = tmp_path / "home"
    home.mkdir()
    env = {"PATH": os.environ["PATH"], "HOME": str(home)}
    out = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120
    )
    assert "Unable to locate credentials" in out.stdout, out.stdout + out.stderr
    assert "connects: []" in out.stdout, out.stdout


@pytest.mark.parametrize(
    ("a", "b", "overlap"),
    [
        ("in", "in", True),
        ("in", "in/out", True),
        ("data/out", "data", True),
        ("in", "out", False),
        ("in", "in-out", False),
    ],
)
def test_folder_stores_overlap_when_one_holds_the_other(tmp_path, a, b, overlap):
    first, second = LocalStorage(tmp_path / a), LocalStorage(tmp_path / b)
    assert first.overlaps(second) is overlap
    assert second.overlaps(first) is overlap


@pytest.mark.parametrize(
    ("a", "b", "overlap"),
    [
        ("s3://b/", "s3://b/out", True),
        ("s3://b/in", "s3://b/in/x", True),
        ("s3://b/in", "s3://b/out", False),
        ("s3://b/in", "s3://b/inbox", False),
        ("s3://b/in", "s3://c/in", False),
    ],
)
def test_s3_stores_overlap_when_one_prefix_holds_the_other(a, b, overlap):
    first, second = storage_from_url(a), storage_from_url(b)
    assert first.overlaps(second) is overlap
    assert LocalStorage("/tmp").overlaps(first) is False


@pytest.mark.parametrize(("input_", "output"), [("shared", "shared"), ("data/in", "data/in/out")])
def test_serve_refuses_overlapping_input_and_output(tmp_path, input_, output):
    # An attacker's review of issue 24's fixes: with the output inside the input, an upload
    # named out/v.mp4 replaced a published output; with one folder, a job re-blurred its
    # own output endlessly (32 jobs in 50 s).
    opts = ServeOptions(data=tmp_path, input=str(tmp_path / input_), output=str(tmp_path / output))
    with pytest.raises(OptionError, match="overlap"):
        service_config(opts)


def test_local_removes_the_services_own_folders_once_empty(tmp_path):
    # Segment pieces left .veil/segments/<job>/ folders behind, empty, for ever.
    store = LocalStorage(tmp_path / "bucket")
    source = tmp_path / "piece.mp4"
    source.write_bytes(b"piece")
    for key in (".veil/segments/job-1/0.mp4", ".veil/segments/job-1/1.mp4", "mine/a.mp4"):
        store.upload(source, key)
    store.delete(".veil/segments/job-1/0.mp4")
    assert (tmp_path / "bucket/.veil/segments/job-1").is_dir()  # one piece is left
    store.delete(".veil/segments/job-1/1.mp4")
    assert not (tmp_path / "bucket/.veil").exists()
    store.delete("mine/a.mp4")
    assert (tmp_path / "bucket/mine").is_dir()  # a user's folder stays
    assert (tmp_path / "bucket").is_dir()


def test_reading_in_place_that_jumps_around_reads_a_whole_copy_instead(tmp_path):
    """A crafted index can send a segment's reader back and forth between far-apart
    places, each read a new block: past the object's size in requests, the reader asks
    for the whole copy (the job's one copy on the machine) and reads from it."""
    data = os.urandom(64 * 1024)
    store = MemoryStorage()
    store.objects["v.mp4"] = data
    info = store.stat("v.mp4")
    copies: list[Path] = []

    def whole() -> Path:
        copies.append(tmp_path / "input.mp4")
        store.download("v.mp4", copies[-1], etag=info.etag)
        return copies[-1]

    video = StoredVideo(store, "v.mp4", info.etag, info.size, whole=whole, block=1024)
    opened = video.open()
    for i in range(2000):
        at = (i * 37 % 64) * 1024 + i % 7
        opened.seek(at)
        assert opened.read(100) == data[at : at + 100]
    assert len(copies) == 1 and video.fetched <= info.size
    opened.seek(-10, io.SEEK_END)
    assert opened.read(100) == data[-10:] and opened.read(1) == b""


def test_a_range_answered_short_is_refused(tmp_path):
    store = MemoryStorage()
    store.objects["v.mp4"] = os.urandom(8192)
    info = store.stat("v.mp4")
    store.read_range = lambda key, start, stop, etag: b"short"  # type: ignore[method-assign]
    video = StoredVideo(store, "v.mp4", info.etag, info.size, whole=lambda: tmp_path, block=1024)
    with pytest.raises(StorageError, match="asked for 1024 bytes, got 5") as caught:
        video.open().read(10)
    assert caught.value.transient


@pytest.mark.parametrize("kind", ["local", "memory", "s3"])
def test_a_video_read_in_place_reads_as_its_file(kind, clip, tmp_path, request, monkeypatch):
    """A segment on another machine opens the stored video itself, through each store's
    ranged reads (S3's Range GETs on a real server): what PyAV reads of it is the file."""
    store = store_of(kind, "in-place", tmp_path, request, monkeypatch)
    info = store.upload(clip.path, "cam/clip.mp4")
    stored = StoredVideo(
        store, "cam/clip.mp4", info.etag, info.size, whole=lambda: clip.path, block=16 * 1024
    )
    assert replace(probe(stored), path="") == replace(probe(clip.path), path="")
    with VideoReader(stored) as in_place, VideoReader(clip.path) as local:
        first = [(f.pts, f.rgb().tobytes()) for f in itertools.islice(in_place.frames(), 10)]
        assert first == [(f.pts, f.rgb().tobytes()) for f in itertools.islice(local.frames(), 10)]
    assert stored.copy is None and 0 < stored.fetched < info.size  # ranges, not a copy
