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
