"""Containers veil reads and writes as they are: MPEG transport streams (.ts, and the
camcorder/Blu-ray .mts/.m2ts with their 192-byte packets), timestamps that wrap."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from click.testing import CliRunner

from veil.cli import main
from veil.synthetic import MovingFace, Scene, visible_faces, write_video

SCENE = Scene(width=160, height=120, frames=30, faces=(MovingFace(height=48),))


def frame_times(path: Path) -> list[int]:
    with av.open(str(path)) as container:
        return [frame.pts for frame in container.decode(video=0)]


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
