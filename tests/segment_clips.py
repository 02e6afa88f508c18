"""The clips the segment tests share: a 6 s scene whose faces cross the seams of 2 s
segments, encoded the way cameras and editors do (keyframes every second, B-frames, a
tone), and the short schedule whose margins fit those segments."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import cast

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from veil.pipeline import BlurOptions
from veil.synthetic import MovingFace, Scene
from veil.video import from_display

# 6 s at 30 fps: segments of 2 s cut it at frames 60 and 120. One face crosses the whole
# picture (both seams), one appears ten frames before the first seam, one leaves five
# frames after the second.
SCENE = Scene(
    width=320,
    height=240,
    frames=180,
    faces=(
        MovingFace(photo="grace_hopper", height=40, start=(0.1, 0.45), end=(0.9, 0.55)),
        MovingFace(
            photo="astronaut", height=24, start=(0.75, 0.25), end=(0.55, 0.3), first_frame=50
        ),
        MovingFace(
            photo="cameraman",
            height=32,
            start=(0.3, 0.75),
            end=(0.35, 0.7),
            first_frame=100,
            last_frame=125,
        ),
    ),
)
SECONDS = 2.0
# Frames wait less and margins are shorter than the defaults': no segment's margin then
# reaches back to the first frame.
SHORT = BlurOptions(detect_every=5, hold=0.3, max_gap=0.5)


def keyed_clip(
    path: Path,
    scene: Scene,
    *,
    every: int = 30,
    audio: bool = True,
    hard: bool = False,
) -> Path:
    """``scene`` encoded by x264 with its B-frames and a keyframe every ``every`` frames
    (``veil.synthetic.write_video`` leaves x264's 250), and a 440 Hz tone. ``hard``: open
    GOPs (keyframes that are not IDR pictures, B-frames before them in time referring
    to the GOP before), stored turned 90° with a display matrix, at a variable rate
    (frames of one and two ticks alternating)."""
    tick = Fraction(1, scene.fps * 2 if hard else scene.fps)
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=scene.fps)
        video.width, video.height = (
            (scene.height, scene.width) if hard else (scene.width, scene.height)
        )
        video.pix_fmt = "yuv420p"
        video.time_base = video.codec_context.time_base = tick
        video.options = {"crf": "16", "preset": "veryfast", "g": str(every)}
        if hard:
            video.options = {**video.options, "x264-params": "open-gop=1"}
            video.set_display_rotation(90)
        sound = out.add_stream("aac", rate=48000) if audio else None
        if sound is not None:
            sound.layout = "mono"
        samples = pts = 0
        converter = VideoReformatter()  # one for all frames, as veil.synthetic.write_video
        for i in range(scene.frames):
            image, _, _ = scene.render(i)
            coded = from_display(image, 90) if hard else image
            frame = converter.reformat(
                av.VideoFrame.from_ndarray(coded, format="rgb24"), format="yuv420p"
            )
            frame.pts, frame.time_base = pts, tick
            pts += 1 + i % 2 if hard else 1
            out.mux(video.encode(frame))
            while sound is not None and samples < pts * tick * 48000:
                t = np.arange(samples, samples + 1024) / 48000
                tone = (0.2 * np.sin(2 * np.pi * 440 * t) * 32767).astype(np.int16)
                chunk = av.AudioFrame.from_ndarray(tone.reshape(1, -1), format="s16", layout="mono")
                chunk.sample_rate, chunk.pts = 48000, samples
                chunk.time_base = Fraction(1, 48000)
                out.mux(sound.encode(chunk))
                samples += 1024
        out.mux(video.encode(None))
        if sound is not None:
            out.mux(sound.encode(None))
    return path


def frame_times(path: Path) -> list[int]:
    with av.open(str(path)) as container:
        return [cast(int, f.pts) for f in container.decode(video=0)]
