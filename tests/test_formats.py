"""The format corpus (tests/corpus.py) through ``veil blur`` and one real ``veil serve``.

A valid file comes out as a player showed it going in: the same frames at the same
times, the same display size, the same colour description and bit depth, the same
audio, subtitle tracks, timecode and chapters, and nothing identifying (location, device
tags, cover art). A broken one is refused in one line that names it and says why, with
exit code 1 (or a FAILED job), nothing written and the input untouched.
"""

from __future__ import annotations

import hashlib
import math
import shutil
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from corpus import BROKEN, LOCATION, LONG_NAME, VALID, Sample, build_all
from servers import VeilServer, wait_for

from veil.cli import main
from veil.synthetic import face_visibility

# Valid files (builders of corpus.VALID) that veil blurs as players show them. The rest of
# Files whose output container cannot describe their colour (see the test).
UNDESCRIBED_COLOUR = {"mjpeg.avi"}
PASSING = [
    "h264.mp4",
    "h264.mov",
    "h264.m4v",
    "h264.mkv",
    "vp9.webm",
    "mpeg4.avi",
    "mjpeg.avi",
    "h264.ts",
    "h264.mts",
    "h264.m2ts",
    "ts_wrap.ts",
    "h264_bt709.mp4",
    "h264_10bit.mp4",
    "hevc.mp4",
    "hevc_hlg.mov",
    "hevc_pq.mp4",
    "av1.mp4",
    "prores.mov",
    "edit_list_mid_gop.mp4",
    "open_gop.mp4",
    "negative_cts.mp4",
    "vfr.mp4",
    "vfr.mkv",
    "sar.mp4",
    "sar_odd.mkv",
    "rotate90.mp4",
    "rotate270_mirror.mov",
    "mirror.mp4",
    "no_audio.mp4",
    "audio_2.mkv",
    "audio_8.mp4",
    "subtitles.mp4",
    "subtitles.mkv",
    "subtitles.webm",
    "timecode.mov",
    "chapters.mp4",
    "chapters.mkv",
    "cover.mp4",
    "cover.mkv",
    "metadata.mov",
    "metadata.mp4",
    LONG_NAME,
]

# Broken files and the reason veil gives after the file's name.
REFUSED = {
    "truncated_10.mp4": "corrupt or truncated MP4/MOV file",
    "truncated_50.mp4": "corrupt or truncated MP4/MOV file",
    # Cut files whose index comes first: the index promises data the file lacks.
    "truncated_50_faststart.mp4": "corrupt or truncated MP4/MOV file (its 'mdat' box runs past",
    "truncated_90_faststart.mp4": "corrupt or truncated MP4/MOV file (its 'mdat' box runs past",
    "truncated_50.mkv": "truncated video: frames stop at",
    # FFmpeg lists no track for an MP4 track without samples, or a garbled index.
    "zero_frames.mp4": "not a video (no video stream)",
    "zero_frames.mkv": "corrupt or truncated Matroska/WebM file",
    "garbled_start.mp4": "not a video (unrecognised file format)",
    "garbled_index.mp4": "not a video (no video stream)",
    "garbled.mkv": "corrupt or truncated Matroska/WebM file",
    "mdat_past_end.mp4": "corrupt or truncated MP4/MOV file",
    "truncated_index.mp4": "corrupt or truncated MP4/MOV file (its 'moov' box runs past the end)",
    "huge.mkv": "picture too large (16000x16000)",
    "photo.mp4": "a still JPEG picture, not a video",
    "drawing.mp4": "a still PNG picture, not a video",
    "notes.mp4": "not a video (unrecognised file format)",
    "empty.mp4": "empty file (0 bytes)",
}


def short(name: str) -> str:
    return name if len(name) < 40 else f"{name[:12]}...{name[-8:]} ({len(name)} bytes)"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Every valid file of the corpus and the broken ones of the table, built once."""
    return build_all(tmp_path_factory.mktemp("corpus"), [*VALID, *REFUSED])


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "folder"


# --- What a player shows ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Shown:
    """What a player takes from a file, read with PyAV (FFmpeg), not with veil."""

    times: list[Fraction]
    """Each decoded frame's presentation time, seconds."""
    time_base: Fraction
    display: tuple[int, int]
    colour: tuple[int, int, int, int, int]
    """(primaries, transfer, matrix, range, bits per sample), FFmpeg's numbers; an
    unspecified range counts as limited, as players take it."""
    audio: list[tuple[str, int, int, str | None]]
    """(codec, sample rate, channels, language) of each audio track."""
    subtitles: list[tuple[str, str | None]]
    timecode: str | None
    chapters: list[tuple[Fraction, str | None]]
    cover_art: int


def shown(path: Path) -> Shown:
    with av.open(str(path)) as container:
        streams = container.streams
        video = next(s for s in streams.video if not is_cover(s))
        frames = list(container.decode(video))
        first = frames[0]
        width, height = display_size(first, video)
        timecode = next(
            (s.metadata["timecode"] for s in streams if "timecode" in s.metadata),
            container.metadata.get("timecode"),
        )
        return Shown(
            times=[seconds(f.pts, f.time_base) for f in frames],
            time_base=seconds(1, video.time_base),
            display=(width, height),
            colour=(
                int(first.color_primaries),
                int(first.color_trc),
                int(first.colorspace),
                int(first.color_range) or 1,
                first.format.components[0].bits,
            ),
            audio=[
                (
                    a.codec_context.name,
                    a.codec_context.sample_rate,
                    a.codec_context.channels,
                    a.metadata.get("language"),
                )
                for a in streams.audio
            ],
            subtitles=[
                (s.codec_context.name, s.metadata.get("language")) for s in streams.subtitles
            ],
            timecode=timecode,
            chapters=[
                (seconds(c["start"], c["time_base"]), c["metadata"].get("title"))
                for c in container.chapters()
            ],
            cover_art=sum(1 for s in streams.video if is_cover(s)),
        )


def seconds(ticks: int | None, time_base: Fraction | None) -> Fraction:
    assert ticks is not None and time_base is not None
    return Fraction(ticks) * time_base


def is_cover(stream: Any) -> bool:
    return bool(stream.disposition & av.stream.Disposition.attached_pic)


def display_size(frame: Any, stream: Any) -> tuple[int, int]:
    sar = stream.sample_aspect_ratio or stream.codec_context.sample_aspect_ratio or Fraction(1)
    width, height = round(frame.width * sar), frame.height
    return (height, width) if _turns(frame)[0] % 180 else (width, height)


def _turns(frame: Any) -> tuple[int, tuple[int, ...]]:
    """The turn FFmpeg's player gives the picture (fftools' get_rotation, in degrees,
    a flip alone being no turn) and the display matrix it comes from."""
    for data in frame.side_data:
        if "DISPLAYMATRIX" in str(data.type):
            m = struct.unpack("<9i", bytes(data)[:36])
            return round(math.degrees(math.atan2(m[1], m[0]))) % 360, m
    return 0, (65536, 0, 0, 0, 65536, 0, 0, 0, 1 << 30)


def picture(frame: Any, stream: Any) -> np.ndarray:
    """The RGB picture a player shows: turned and flipped as ffmpeg's autorotate does
    (fftools/ffmpeg_filter.c), then stretched to the display size."""
    image = frame.to_ndarray(format="rgb24")
    theta, m = _turns(frame)
    if theta == 90:
        image = image.transpose(1, 0, 2) if m[3] > 0 else np.rot90(image, -1)
    elif theta == 180:
        image = image[:, ::-1] if m[0] < 0 else image
        image = image[::-1] if m[4] < 0 else image
    elif theta == 270:
        image = np.rot90(image, -1)[::-1] if m[3] < 0 else np.rot90(image, 1)
    elif m[4] < 0:
        image = image[::-1]
    width, height = display_size(frame, stream)
    if image.shape[1::-1] != (width, height):
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(image)


def face_visibilities(path: Path, sample: Sample, every: int = 5) -> list[float]:
    """How much of the face stays visible (veil.synthetic.face_visibility: about 1 as
    filmed, about 0 hidden) in every ``every``-th frame that shows one."""
    found: list[float] = []
    with av.open(str(path)) as container:
        video = next(s for s in container.streams.video if not is_cover(s))
        for n, frame in enumerate(container.decode(video)):
            if n % every:
                continue
            truth, boxes, _ = sample.scene.render(sample.first_picture + n)
            image = picture(frame, video)
            found.extend(face_visibility(truth, image, box) for box in boxes)
    return found


def same_times(got: list[Fraction], expected: Sequence[Fraction], tick: Fraction) -> bool:
    return len(got) == len(expected) and all(
        abs(a - b) <= tick for a, b in zip(got, expected, strict=True)
    )


# Values the metadata files carry that identify where and with what they were shot.
IDENTIFYING = (LOCATION[:9], "iPhone 15 Pro", "17.4.1")


# --- The corpus itself ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(VALID), ids=short)
def test_each_valid_file_shows_what_its_builder_says(corpus, name):
    sample: Sample = corpus[name]
    got = shown(sample.path)
    assert len(got.times) == sample.frames
    assert same_times(got.times, sample.times, got.time_base), (got.times[:4], sample.times[:4])
    assert got.display == sample.display
    # The scene's face is in the picture a player shows, where the scene put it.
    assert min(face_visibilities(sample.path, sample)) > 0.8


# --- veil blur --------------------------------------------------------------------------------------


def blur(src: Path, dst: Path) -> Any:
    args = ["blur", str(src), "-o", str(dst), "-q"]
    return CliRunner().invoke(main, args, catch_exceptions=False)


@pytest.mark.parametrize("name", PASSING, ids=short)
def test_valid_file_comes_out_as_it_went_in(corpus, tmp_path, name):
    sample = corpus[name]
    before = digest(sample.path)
    out = tmp_path / name
    result = blur(sample.path, out)
    assert result.exit_code == 0, result.output
    assert [p.name for p in tmp_path.iterdir()] == [name]
    assert digest(sample.path) == before
    src, dst = shown(sample.path), shown(out)
    tick = max(src.time_base, dst.time_base)
    assert same_times(dst.times, src.times, tick), (dst.times[:4], src.times[:4])
    assert dst.display == src.display
    if name in UNDESCRIBED_COLOUR:
        # AVI's MPEG-4 cannot describe its colour; players take it as limited-range
        # BT.601, so veil converts the picture to that and it looks as it did.
        assert dst.colour[3:] == (1, src.colour[4])
        assert picture_difference(sample.path, out) < 3
    else:
        assert dst.colour == src.colour
    assert dst.audio == src.audio
    assert dst.subtitles == src.subtitles
    assert dst.timecode == src.timecode
    assert dst.chapters == src.chapters
    # Nothing identifying is left: no cover art, no location or device tags anywhere.
    assert dst.cover_art == 0
    data = out.read_bytes()
    assert not [v for v in IDENTIFYING if v.encode() in data]
    # And the face is hidden in the picture a player shows.
    assert max(face_visibilities(out, sample)) < 0.6


@pytest.mark.parametrize(("name", "reason"), list(REFUSED.items()), ids=list(REFUSED))
def test_broken_file_is_refused_in_one_line(corpus, tmp_path, name, reason):
    path = corpus[name]
    before, beside = digest(path), sorted(path.parent.iterdir())
    out = tmp_path / "out" / name
    out.parent.mkdir()
    result = blur(path, out)
    assert result.exit_code == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"veil: error: {path}: {reason}"), lines[0]
    assert list(out.parent.iterdir()) == []
    assert sorted(path.parent.iterdir()) == beside
    assert digest(path) == before


def test_folder_named_like_a_video_is_refused_in_one_line(tmp_path):
    path = BROKEN["folder.mp4"](tmp_path)
    result = blur(path, tmp_path / "out.mp4")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"veil: error: {path}: a folder with no videos or photos "
        "(.mp4, .m4v, .mov, .mkv, .webm, .avi, .ts, .mts, .m2ts, .jpg, .jpeg, .png, .webp, "
        ".tif, .tiff, .bmp, .gif, .heic, .heif, .avif) in it"
    ]
    assert not (tmp_path / "out.mp4").exists()


def picture_difference(a: Path, b: Path) -> float:
    """Mean absolute RGB difference (0-255) of two videos' top-left corners, where the
    corpus's pictures hold no face (the blur changes the face, not the rest)."""

    def corners(path: Path) -> list[Any]:
        with av.open(str(path)) as container:
            return [
                f.to_ndarray(format="rgb24")[:16, :16].astype(float)
                for f in container.decode(video=0)
            ]

    pairs = list(zip(corners(a), corners(b), strict=True))
    return float(sum(abs(x - y).mean() for x, y in pairs) / len(pairs))


# --- veil serve ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def served(corpus, tmp_path_factory):
    """One ``veil serve`` given the whole corpus at once in its input folder (and a
    folder named like a video); yields the server and its finished jobs by key."""
    server = VeilServer(
        tmp_path_factory.mktemp("serve") / "data", "--poll-interval", "0.2", "--workers", "2"
    ).start()
    try:
        inbox = server.data / "input"
        for name in [*PASSING, *REFUSED]:
            item = corpus[name]
            source = item.path if isinstance(item, Sample) else item
            shutil.copy(source, inbox / name)
        BROKEN["folder.mp4"](inbox)

        def finished() -> dict[str, dict[str, Any]] | None:
            jobs = {j["key"]: j for j in server.jobs()}
            done = all(j["status"] in ("SUCCEEDED", "FAILED") for j in jobs.values())
            return jobs if done and len(jobs) >= len(PASSING) + len(REFUSED) else None

        jobs = wait_for(finished, 300, "every job of the corpus to finish")
        yield server, jobs
    finally:
        server.stop()


@pytest.mark.parametrize("name", PASSING, ids=short)
def test_service_gives_valid_file_back_as_it_went_in(served, corpus, name):
    server, jobs = served
    job = jobs[name]
    assert job["status"] == "SUCCEEDED", job
    out = server.data / "output" / name
    src, dst = shown(corpus[name].path), shown(out)
    assert same_times(dst.times, src.times, max(src.time_base, dst.time_base))
    assert dst.display == src.display
    if name in UNDESCRIBED_COLOUR:  # as in test_valid_file_comes_out_as_it_went_in
        assert dst.colour[3:] == (1, src.colour[4])
        assert picture_difference(corpus[name].path, out) < 3
    else:
        assert dst.colour == src.colour
    assert dst.audio == src.audio


@pytest.mark.parametrize(("name", "reason"), list(REFUSED.items()), ids=list(REFUSED))
def test_service_fails_broken_file_for_the_same_reason(served, corpus, name, reason):
    server, jobs = served
    job = jobs[name]
    assert job["status"] == "FAILED", job
    assert job["error"].startswith(f"{name}: {reason}"), job["error"]
    assert not (server.data / "output" / name).exists()
    assert digest(server.data / "input" / name) == digest(corpus[name])


def test_service_stays_up_and_ignores_a_folder_named_like_a_video(served):
    server, jobs = served
    assert server.proc is not None and server.proc.poll() is None
    assert server.get("/healthz").status_code == 200
    assert sorted(jobs) == sorted([*PASSING, *REFUSED])
