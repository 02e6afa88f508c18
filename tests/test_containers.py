"""Containers veil reads and writes as they are: MPEG transport streams (.ts, and the
camcorder/Blu-ray .mts/.m2ts with their 192-byte packets), timestamps that wrap."""

from __future__ import annotations

import subprocess
import sys
from fractions import Fraction
from pathlib import Path
from typing import cast

import av
import numpy as np
import pytest
from av.video.stream import VideoStream
from click.testing import CliRunner

from veil.cli import main
from veil.synthetic import MovingFace, Scene, visible_faces, write_video

SCENE = Scene(width=160, height=120, frames=30, faces=(MovingFace(height=48),))


def frame_times(path: Path) -> list[int]:
    with av.open(str(path)) as container:
        return [cast(int, frame.pts) for frame in container.decode(video=0)]


def blur(src: Path, dst: Path) -> None:
    result = CliRunner().invoke(main, ["blur", str(src), "-o", str(dst), "-q"])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("suffix", [".ts", ".mts", ".m2ts"])
def test_transport_streams_in_and_out(tmp_path, suffix):
    video = write_video(tmp_path / f"cam{suffix}", SCENE)
    out = tmp_path / f"out{suffix}"
    blur(video.path, out)
    assert frame_times(out) == frame_times(video.path)
    with av.open(str(out)) as container:
        assert container.format.name == "mpegts"
        assert [s.codec_context.name for s in container.streams.audio] == ["aac"]
    assert visible_faces(out, SCENE) == []
    data = out.read_bytes()
    if suffix == ".ts":
        assert data[0] == 0x47 and len(data) % 188 == 0
    else:  # BDAV: a 4-byte arrival timestamp before each 188-byte packet
        assert data[4] == 0x47 and len(data) % 192 == 0


def test_transport_stream_whose_clock_wraps(tmp_path):
    """The 33-bit, 90 kHz clock wraps every 26.5 hours: a recording across the wrap keeps
    every frame and its time."""
    src = tmp_path / "wrap.ts"
    tick = Fraction(1, 90000)
    with av.open(str(src), "w") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        stream.time_base = stream.codec_context.time_base = tick
        for i in range(60):
            frame = av.VideoFrame.from_ndarray(np.full((120, 160, 3), i * 4, np.uint8), "rgb24")
            frame.pts, frame.time_base = 2**33 - 45000 + i * 3000, tick
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    times = frame_times(src)
    assert len(times) == 60 and times[0] < 0 < times[-1]  # read across the wrap
    blur(src, tmp_path / "out.ts")
    assert frame_times(tmp_path / "out.ts") == times


@pytest.mark.parametrize("suffix", [".mp4", ".mov", ".mkv"])
def test_non_square_pixels_keep_their_display_shape(tmp_path, suffix):
    """427x240 coded, shown 4:3 (320x240) by players: the output must show the same."""
    src = tmp_path / f"anamorphic{suffix}"
    with av.open(str(src), "w") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 427, 240, "yuv444p"
        stream.codec_context.sample_aspect_ratio = Fraction(320, 427)
        for i in range(10):
            frame = av.VideoFrame.from_ndarray(np.full((240, 427, 3), i * 20, np.uint8), "rgb24")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    out_path = tmp_path / f"out{suffix}"
    blur(src, out_path)
    with av.open(str(out_path)) as container:
        video = container.streams.video[0]
        assert (video.codec_context.width, video.codec_context.height) == (427, 240)
        assert video.display_aspect_ratio == Fraction(4, 3)


HLG = {"color_primaries": 9, "color_trc": 18, "colorspace": 9}  # BT.2020, ARIB STD-B67
PQ = {"color_primaries": 9, "color_trc": 16, "colorspace": 9}  # BT.2020, SMPTE ST 2084


def phone_clip(path: Path, encoder: str, pix_fmt: str, colour: dict[str, int]) -> Path:
    """What phones record by default: 10-bit video with an HDR colour description."""
    with av.open(str(path), "w") as out:
        stream = cast(VideoStream, out.add_stream(encoder, rate=30))
        stream.width, stream.height, stream.pix_fmt = 128, 96, pix_fmt
        for name, value in colour.items():
            setattr(stream.codec_context, name, value)
        if encoder == "libx265":
            stream.options = {"preset": "ultrafast", "x265-params": "log-level=error"}
        for i in range(8):
            rgb = np.full((96, 128, 3), i * 30, np.uint8)
            frame = av.VideoFrame.from_ndarray(rgb, "rgb24").reformat(format=pix_fmt)
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def video_description(path: Path) -> tuple[object, ...]:
    with av.open(str(path)) as container:
        context = container.streams.video[0].codec_context
        return (
            context.name,
            context.pix_fmt,
            context.color_primaries,
            context.color_trc,
            context.colorspace,
        )


@pytest.mark.parametrize(
    ("encoder", "pix_fmt", "colour", "codec", "expected"),
    [
        ("libx265", "yuv420p10le", HLG, "auto", "hevc"),
        ("libx265", "yuv420p10le", PQ, "auto", "hevc"),
        ("libx264", "yuv420p10le", HLG, "auto", "h264"),
        ("libx265", "yuv420p10le", PQ, "h264", "h264"),  # H.264 High 10, still HDR
        ("libx265", "yuv420p10le", HLG, "av1", "libdav1d"),  # SVT-AV1, read by dav1d
    ],
    ids=["hevc-hlg", "hevc-pq", "h264-10bit-hlg", "hevc-pq-as-h264", "hevc-hlg-as-av1"],
)
def test_hdr_stays_hdr(tmp_path, encoder, pix_fmt, colour, codec, expected):
    src = phone_clip(tmp_path / "phone.mp4", encoder, pix_fmt, colour)
    out = tmp_path / "out.mp4"
    result = CliRunner().invoke(main, ["blur", str(src), "-o", str(out), "-q", "--codec", codec])
    assert result.exit_code == 0, result.output
    assert video_description(out) == (expected, pix_fmt, *colour.values())
    assert len(frame_times(out)) == 8


def test_a_codec_the_container_cannot_hold_is_refused(tmp_path):
    src = phone_clip(tmp_path / "phone.mp4", "libx265", "yuv420p10le", HLG)
    result = CliRunner().invoke(
        main, ["blur", str(src), "-o", str(tmp_path / "out.avi"), "--codec", "hevc"]
    )
    assert result.exit_code != 0
    assert "--codec hevc: the avi container cannot hold it (it holds mpeg4)" in result.output
    assert not list(tmp_path.glob("*.avi")) and not list(tmp_path.glob(".*part*"))


def test_edit_list_starting_mid_gop(tmp_path):
    """An MP4 trimmed without re-encoding: the frames before the cut stay in the file
    for the decoder, and an edit list starts playback after them. Players show only
    what follows the cut; so must veil, not call the file truncated."""
    source = write_video(
        tmp_path / "long.mp4", Scene(width=160, height=120, frames=90), audio=False
    )
    trimmed = tmp_path / "trimmed.mp4"
    with av.open(str(source.path)) as src, av.open(str(trimmed), "w") as out:
        video = src.streams.video[0]
        stream = out.add_stream_from_template(video)
        assert video.average_rate is not None and video.time_base is not None
        cut = 45 * round(1 / (video.average_rate * video.time_base))  # mid-GOP: 250 frames
        for packet in src.demux(video):
            if packet.dts is not None and packet.pts is not None:
                packet.pts, packet.dts, packet.stream = packet.pts - cut, packet.dts - cut, stream
                out.mux(packet)
    shown = frame_times(trimmed)
    assert len(shown) == 45 and shown[0] == 0
    blur(trimmed, tmp_path / "out.mp4")
    assert frame_times(tmp_path / "out.mp4") == shown


def test_av1_output_is_quiet(tmp_path):
    """SVT-AV1 prints its whole configuration on stderr when an encoder opens; veil's
    console shows veil's lines only (a separate process: the chatter is native)."""
    src = phone_clip(tmp_path / "phone.mp4", "libx265", "yuv420p10le", HLG)
    command = [sys.executable, "-m", "veil.cli", "blur", str(src), "-o", str(tmp_path / "o.mkv")]
    done = subprocess.run([*command, "-q", "--codec", "av1"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
