"""Reading videos: limits refused before any frame is decoded."""

from __future__ import annotations

import resource

import av
import numpy as np
import pytest

from veil.errors import FrameSizeError, InputAccessError
from veil.video import MAX_PIXELS, MAX_SIDE, VideoReader, probe


def one_frame_video(path, width: int, height: int):
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=1)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast"}
        frame = av.VideoFrame(width, height, "yuv420p")
        for plane in frame.planes:
            np.frombuffer(memoryview(plane), np.uint8)[:] = 128
        out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


@pytest.mark.parametrize(
    ("width", "height"),
    [(MAX_SIDE + 64, 64), (64, MAX_SIDE + 64), (5824, 5824)],
)
def test_pictures_beyond_the_limits_are_refused_up_front(tmp_path, width, height):
    assert max(width, height) > MAX_SIDE or width * height > MAX_PIXELS
    video = one_frame_video(tmp_path / "huge.mkv", width, height)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(FrameSizeError, match=rf"picture too large \({width}x{height}\)"):
        probe(video)
    with pytest.raises(FrameSizeError):
        VideoReader(video)
    # Refused from the header: no frame of that size was decoded on the way.
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mib < width * height * 3 / 2**20


def test_an_8k_picture_is_accepted(tmp_path):
    video = one_frame_video(tmp_path / "8k.mkv", 7680, 4320)
    info = probe(video)
    assert (info.width, info.height) == (7680, 4320)


def test_an_unreadable_file_is_not_called_missing(tmp_path, monkeypatch):
    # As root every file is readable, so the refusal is staged where PyAV opens the file.
    video = one_frame_video(tmp_path / "locked.mp4", 64, 64)

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(av, "open", refuse)
    with pytest.raises(InputAccessError, match="permission denied"):
        probe(video)


def ts_part(path, width: int, height: int, frames: int):
    """An MPEG-TS of ``frames`` grey H.264 frames; parts of a transport stream can be
    concatenated byte for byte, so two of different sizes make a size switch."""
    with av.open(str(path), "w", format="mpegts") as out:
        stream = out.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast"}
        for i in range(frames):
            frame = av.VideoFrame(width, height, "yuv420p")
            for plane in frame.planes:
                np.frombuffer(memoryview(plane), np.uint8)[:] = 60 + i
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path.read_bytes()


def test_a_size_switch_mid_stream_is_refused(tmp_path):
    # Issue 24: a stream that switched from 320x240 to 12288x12288 after 10 frames was
    # accepted (only the header's size was checked), cost 105 s and 5.7 GB, and its boxes
    # were scaled by the first size. A smaller switch stands for it here.
    video = tmp_path / "switch.ts"
    video.write_bytes(
        ts_part(tmp_path / "a.ts", 320, 240, 10) + ts_part(tmp_path / "b.ts", 640, 480, 10)
    )
    assert (probe(video).width, probe(video).height) == (320, 240)
    message = r"picture size changes at frame 10 \(from 320x240 to 640x480\)"
    with VideoReader(video) as reader, pytest.raises(FrameSizeError, match=message):
        for _ in reader:
            pass
    with VideoReader(video) as reader, pytest.raises(FrameSizeError, match=message):
        for _ in reader.frames():
            pass
