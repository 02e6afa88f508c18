"""The format corpus: small files of the kinds phones, cameras and editors write, and
broken ones, each made here with PyAV and the FFmpeg it bundles.

``VALID`` maps a file name to a builder that writes that file into a folder and returns
a ``Sample``: what a player shows of it (frame count, each frame's time, display size).
``BROKEN`` maps a file name to a builder that writes a file (or folder) no player can
show as a video. What each file shows (frames, times, sizes) is the same on every run;
``tests/test_formats.py`` checks it against the builder's word.

Pictures are ``veil.synthetic`` scenes (a real face moving across a textured
background), 160x120 shown, 30 frames at 30 fps (1 s), unless a builder says otherwise.
"""

from __future__ import annotations

import functools
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Any, cast

import av
import cv2
import numpy as np
from av.video.stream import VideoStream

from veil.synthetic import MovingFace, Scene
from veil.video import from_display

FPS = 30
FRAMES = 30
SIZE = (160, 120)

# (colour primaries, transfer, matrix) as FFmpeg numbers them (AVColorPrimaries, ...).
BT2020, HLG, PQ, BT2020_NCL = 9, 18, 16, 9


@dataclass(frozen=True)
class Sample:
    """A valid file and what a player shows of it."""

    path: Path
    frames: int
    """Video frames shown."""
    times: tuple[Fraction, ...]
    """Each shown frame's presentation time in seconds, in display order."""
    display: tuple[int, int]
    """Displayed width and height in pixels, after the sample aspect ratio, rotation and
    mirroring."""
    scene: Scene
    """The pictures shown, at the display size, with their face boxes."""
    first_picture: int = 0
    """The scene's frame that shows first (frames before it are cut or hidden)."""


Builder = Callable[[Path], Sample]
BrokenBuilder = Callable[[Path], Path]

VALID: dict[str, Builder] = {}
"""File name -> builder that writes it into the folder it is given."""
BROKEN: dict[str, BrokenBuilder] = {}
"""File name -> builder that writes a broken file (or folder) of that name."""


def _valid(name: str) -> Callable[[Builder], Builder]:
    def register(build: Builder) -> Builder:
        VALID[name] = lambda folder: build(folder / name)
        VALID[name].__doc__ = build.__doc__
        return build

    return register


def _broken(name: str) -> Callable[[BrokenBuilder], BrokenBuilder]:
    def register(build: BrokenBuilder) -> BrokenBuilder:
        BROKEN[name] = lambda folder: build(folder / name)
        BROKEN[name].__doc__ = build.__doc__
        return build

    return register


def build_all(folder: Path, names: Iterable[str] | None = None) -> dict[str, Sample | Path]:
    """Write every file of the corpus (or those named) into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    made: dict[str, Sample | Path] = {}
    for name in names if names is not None else [*VALID, *BROKEN]:
        made[name] = VALID[name](folder) if name in VALID else BROKEN[name](folder)
    return made


# --- Pictures and sound ------------------------------------------------------------------


def scene(width: int, height: int, frames: int) -> Scene:
    """A face a third of the picture high crossing a textured background."""
    face = MovingFace(photo="astronaut", height=height / 3, start=(0.35, 0.5), end=(0.65, 0.45))
    return Scene(width=width, height=height, frames=frames, fps=FPS, faces=(face,))


@functools.cache
def _pictures(width: int, height: int, frames: int) -> tuple[np.ndarray, ...]:
    """The RGB pictures of ``scene``, as a player shows them."""
    shot = scene(width, height, frames)
    return tuple(shot.render(i)[0] for i in range(frames))


@dataclass(frozen=True, kw_only=True)
class Audio:
    """One audio track: a tone of ``hz`` for as long as the video."""

    codec: str = "aac"
    rate: int = 48000
    layout: str = "mono"
    hz: float = 440.0
    language: str | None = None


@dataclass(frozen=True, kw_only=True)
class Clip:
    """What ``write`` puts in a file; the defaults make a phone's H.264 + AAC MP4."""

    codec: str = "libx264"
    pix_fmt: str = "yuv420p"
    options: dict[str, str] = field(default_factory=lambda: {"preset": "veryfast", "crf": "23"})
    display: tuple[int, int] = SIZE
    coded: tuple[int, int] | None = None
    """Coded size where it differs from the display (a non-square sample aspect ratio)."""
    sar: Fraction | None = None
    frames: int = FRAMES
    time_base: Fraction = Fraction(1, FPS)
    pts: tuple[int, ...] | None = None
    """Each frame's time in ``time_base`` ticks; one tick apart by default."""
    first_pts: int = 0
    rotation: int = 0
    """Counter-clockwise degrees a player turns the coded picture by."""
    mirror: bool = False
    color: tuple[int, int, int] | None = None
    """(primaries, transfer, matrix) signalled in the stream."""
    audio: tuple[Audio, ...] = (Audio(),)
    format: str | None = None
    container_options: dict[str, str] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)
    video_metadata: dict[str, str] = field(default_factory=dict)
    subtitles: tuple[str, ...] = ()
    """Subtitle codecs, one track each, two cues per track."""
    chapters: int = 0
    cover: str | None = None
    """Cover art: ``"before"`` or ``"after"`` the video stream (MP4), or ``"attachment"``
    (Matroska)."""

    def times(self) -> tuple[Fraction, ...]:
        return tuple(p * self.time_base for p in self.frame_pts())

    def frame_pts(self) -> tuple[int, ...]:
        return self.pts or tuple(self.first_pts + i for i in range(self.frames))

    def sample(self, path: Path) -> Sample:
        return Sample(
            path, self.frames, self.times(), self.display, scene(*self.display, self.frames)
        )


_ASS_HEADER = b"""[Script Info]
ScriptType: v4.00+
PlayResX: 384
PlayResY: 288

[V4+ Styles]
Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, \
BackColour, Bold, Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, \
BorderStyle, Outline, Shadow, Alignment, MarginL, MarginR, MarginV, Encoding
Style: Default,Arial,16,&Hffffff,&Hffffff,&H0,&H0,0,0,0,0,100,100,0,0,1,1,0,2,10,10,10,0

[Events]
Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text
"""


def write(path: Path, clip: Clip) -> Path:
    """Encode ``clip`` into ``path`` (container from the extension unless ``clip.format``)."""
    w, h = clip.display
    pictures = _pictures(w, h, clip.frames)
    coded_w, coded_h = clip.coded or ((h, w) if clip.rotation % 180 else (w, h))
    with av.open(str(path), "w", format=clip.format, options=dict(clip.container_options)) as out:
        out.metadata.update(clip.metadata)
        cover = None
        if clip.cover == "before":
            cover = _add_cover(out)
        video = cast(VideoStream, out.add_stream(clip.codec, rate=FPS))
        video.width, video.height = coded_w, coded_h
        video.pix_fmt = clip.pix_fmt
        video.time_base = video.codec_context.time_base = clip.time_base
        video.options = dict(clip.options)
        video.metadata.update(clip.video_metadata)
        if clip.sar is not None:
            video.codec_context.sample_aspect_ratio = clip.sar
        if clip.color is not None:
            cc = video.codec_context
            cc.color_primaries, cc.color_trc, cc.colorspace = clip.color
        if clip.rotation or clip.mirror:
            video.set_display_rotation(clip.rotation, hflip=clip.mirror)
        if clip.cover == "after":
            cover = _add_cover(out)
        if clip.cover == "attachment":
            out.add_attachment("cover.jpg", "image/jpeg", _jpeg())
        sounds = [_add_audio(out, a) for a in clip.audio]
        texts = [_add_subtitles(out, codec) for codec in clip.subtitles]
        if clip.chapters:
            half = Fraction(clip.frames, 2 * FPS)
            out.set_chapters(
                [
                    {
                        "id": n + 1,
                        "start": int(n * half * 1000),
                        "end": int((n + 1) * half * 1000),
                        "time_base": Fraction(1, 1000),
                        "metadata": {"title": f"Part {n + 1}"},
                    }
                    for n in range(clip.chapters)
                ]
            )
        done = [0] * len(sounds)
        pts = clip.frame_pts()
        for i, picture in enumerate(pictures):
            if clip.coded:
                picture = cv2.resize(picture, (coded_w, coded_h), interpolation=cv2.INTER_AREA)
            coded = from_display(picture, clip.rotation, clip.mirror)
            frame = av.VideoFrame.from_ndarray(coded, format="rgb24").reformat(
                format=clip.pix_fmt,
                dst_color_range=2 if clip.pix_fmt.startswith("yuvj") else 1,
            )
            if clip.color is not None:
                frame.color_primaries, frame.color_trc, frame.colorspace = clip.color
            frame.pts = pts[i]
            frame.time_base = clip.time_base
            out.mux(video.encode(frame))
            until = (pts[i] + 1 - pts[0]) * clip.time_base
            for n, (stream, spec) in enumerate(zip(sounds, clip.audio, strict=True)):
                done[n] = _tone(out, stream, spec, done[n], until, pts[0] * clip.time_base)
            if i in (0, clip.frames // 2):
                for text in texts:
                    _cue(out, text, Fraction(i, FPS), f"Line {i}")
        out.mux(video.encode(None))
        for stream in sounds:
            out.mux(stream.encode(None))
        if cover is not None:
            packet = av.Packet(_jpeg())
            packet.stream = cover
            packet.pts = packet.dts = 0
            out.mux(packet)
    return path


@functools.cache
def _jpeg() -> bytes:
    """A 64x64 JPEG: the cover art."""
    picture = cv2.cvtColor(_pictures(64, 64, 1)[0], cv2.COLOR_RGB2BGR)
    ok, data = cv2.imencode(".jpg", picture)
    assert ok
    return bytes(data.tobytes())


def _add_cover(out: Any) -> Any:
    stream = out.add_mux_stream("mjpeg", width=64, height=64)
    stream.disposition = av.stream.Disposition.attached_pic
    return stream


def _add_audio(out: Any, spec: Audio) -> Any:
    stream = out.add_stream(spec.codec, rate=spec.rate)
    stream.layout = spec.layout
    if spec.language:
        stream.metadata["language"] = spec.language
    return stream


def _tone(out: Any, stream: Any, spec: Audio, done: int, until: Fraction, start: Fraction) -> int:
    """Samples ``done`` up to ``until`` seconds of the tone, timed from ``start`` seconds."""
    channels = stream.layout.nb_channels
    target = int(until * spec.rate)
    while done < target:
        n = min(1024, target - done)
        t = np.arange(done, done + n) / spec.rate
        wave = (0.2 * np.sin(2 * np.pi * spec.hz * t)).astype(np.float32)
        frame = av.AudioFrame.from_ndarray(
            np.tile(wave, (channels, 1)), format="fltp", layout=spec.layout
        )
        frame.sample_rate = spec.rate
        frame.pts = int(start * spec.rate) + done
        frame.time_base = Fraction(1, spec.rate)
        out.mux(stream.encode(frame))
        done += n
    return done


def _add_subtitles(out: Any, codec: str) -> Any:
    stream = out.add_stream(codec)
    stream.codec_context.time_base = stream.time_base = Fraction(1, 1000)
    stream.codec_context.subtitle_header = _ASS_HEADER
    stream.metadata["language"] = "eng"
    return stream


def _cue(out: Any, stream: Any, start: Fraction, text: str) -> None:
    from av.subtitles.subtitle import SubtitleSet

    ms = int(start * 1000)
    # Text encoders take a cue as an ASS dialogue line.
    cue = SubtitleSet.create(f"{ms},0,Default,,0,0,0,,{text}".encode(), 0, 400, pts=ms * 1000)
    packet = stream.codec_context.encode_subtitle(cue)
    packet.pts = packet.dts = ms
    packet.duration = 400
    packet.time_base = Fraction(1, 1000)
    packet.stream = stream
    out.mux(packet)


def _clip_bytes(clip: Clip, suffix: str) -> bytes:
    """``clip`` encoded into a file of ``suffix``, as bytes (the source of a broken file)."""
    with tempfile.TemporaryDirectory() as tmp:
        return write(Path(tmp) / f"source{suffix}", clip).read_bytes()


_X265 = {"preset": "ultrafast", "x265-params": "log-level=error"}


def _ticks(seconds: Fraction, time_base: Fraction) -> int:
    return int(seconds / time_base)


# --- Valid files: containers ---------------------------------------------------------------


@_valid("h264.mp4")
def h264_mp4(path: Path) -> Sample:
    """H.264 High 8-bit 4:2:0 with AAC mono, moov at the end, as a phone or ffmpeg
    writes it. Shows 30 frames at n/30 s, 160x120."""
    return Clip().sample(write(path, Clip()))


@_valid("h264.mov")
def h264_mov(path: Path) -> Sample:
    """QuickTime: H.264 with AAC. Shows 30 frames at n/30 s, 160x120."""
    return Clip().sample(write(path, Clip()))


@_valid("h264.m4v")
def h264_m4v(path: Path) -> Sample:
    """iTunes-style M4V (FFmpeg's ipod muxer, brand M4V): H.264 with AAC. Shows 30 frames
    at n/30 s, 160x120."""
    return Clip().sample(write(path, Clip()))


@_valid("h264.mkv")
def h264_mkv(path: Path) -> Sample:
    """Matroska: H.264 with Opus, timestamps in milliseconds. Shows 30 frames at
    n/30 s (rounded to the millisecond), 160x120."""
    clip = Clip(audio=(Audio(codec="libopus"),))
    return clip.sample(write(path, clip))


@_valid("vp9.webm")
def vp9_webm(path: Path) -> Sample:
    """WebM: VP9 with Opus. Shows 30 frames at n/30 s (to the millisecond), 160x120."""
    clip = Clip(
        codec="libvpx-vp9",
        options={"deadline": "realtime", "cpu-used": "8", "crf": "40", "b": "0"},
        audio=(Audio(codec="libopus"),),
    )
    return clip.sample(write(path, clip))


@_valid("mpeg4.avi")
def mpeg4_avi(path: Path) -> Sample:
    """AVI: MPEG-4 Part 2 (no B-frames) with AC-3, as DivX-era cameras and rips. Shows 30
    frames at n/30 s, 160x120."""
    clip = Clip(codec="mpeg4", options={}, audio=(Audio(codec="ac3"),))
    return clip.sample(write(path, clip))


@_valid("mjpeg.avi")
def mjpeg_avi(path: Path) -> Sample:
    """AVI: Motion JPEG, full-range 4:2:2 (yuvj422p), with 16-bit PCM, as webcams and
    older compact cameras write. Shows 30 frames at n/30 s, 160x120."""
    clip = Clip(codec="mjpeg", pix_fmt="yuvj422p", options={}, audio=(Audio(codec="pcm_s16le"),))
    return clip.sample(write(path, clip))


def _transport(path: Path, audio: str, m2ts: bool) -> Sample:
    clip = Clip(
        format="mpegts",
        time_base=Fraction(1, 90000),
        pts=tuple(i * 3000 for i in range(FRAMES)),
        audio=(Audio(codec=audio),),
        container_options={"mpegts_m2ts_mode": "1"} if m2ts else {},
    )
    write(path, clip)
    # A transport stream holds no negative time: the muxer moves every timestamp later by
    # x264's B-frame delay (two frames), so the first decoding time is 0.
    return replace(clip.sample(path), times=tuple(t + Fraction(2, FPS) for t in clip.times()))


@_valid("h264.ts")
def h264_ts(path: Path) -> Sample:
    """MPEG transport stream (broadcast, 188-byte packets): H.264 with MP2 audio, 90 kHz
    clock. Shows 30 frames at (n+2)/30 s, 160x120."""
    return _transport(path, "mp2", m2ts=False)


@_valid("h264.mts")
def h264_mts(path: Path) -> Sample:
    """AVCHD camcorder file (.mts: transport stream with 192-byte packets): H.264 with
    AC-3. Shows 30 frames at (n+2)/30 s, 160x120."""
    return _transport(path, "ac3", m2ts=True)


@_valid("h264.m2ts")
def h264_m2ts(path: Path) -> Sample:
    """Blu-ray/AVCHD .m2ts (192-byte packets): H.264 with AAC. Shows 30 frames at
    (n+2)/30 s, 160x120."""
    return _transport(path, "aac", m2ts=True)


@_valid("ts_wrap.ts")
def ts_wrap(path: Path) -> Sample:
    """A transport stream whose 33-bit 90 kHz clock wraps around after its 15th frame (a
    camcorder or broadcast recording that ran 26.5 hours). FFmpeg unwraps the clock by
    counting the frames before the wrap as negative: shows 30 frames at (n-15)/30 s,
    160x120."""
    first = 2**33 - 15 * 3000
    clip = Clip(
        format="mpegts",
        time_base=Fraction(1, 90000),
        pts=tuple(first + i * 3000 for i in range(FRAMES)),
        audio=(Audio(codec="mp2"),),
    )
    write(path, clip)
    return replace(clip.sample(path), times=tuple(Fraction(n - 15, FPS) for n in range(FRAMES)))


# --- Valid files: codecs and colour ----------------------------------------------------------


@_valid("h264_bt709.mp4")
def h264_bt709(path: Path) -> Sample:
    """H.264 whose stream says BT.709 primaries, transfer and matrix, limited range, as
    every phone tags SDR video. Shows 30 frames at n/30 s, 160x120."""
    clip = Clip(color=(1, 1, 1))
    return clip.sample(write(path, clip))


@_valid("h264_10bit.mp4")
def h264_10bit(path: Path) -> Sample:
    """H.264 High 10 (yuv420p10le), untagged colour. Shows 30 frames at n/30 s,
    160x120."""
    clip = replace(Clip(), pix_fmt="yuv420p10le")
    return clip.sample(write(path, clip))


@_valid("hevc.mp4")
def hevc_mp4(path: Path) -> Sample:
    """HEVC Main 8-bit (hev1) with AAC. Shows 30 frames at n/30 s, 160x120."""
    clip = Clip(codec="libx265", options=_X265)
    return clip.sample(write(path, clip))


@_valid("hevc_hlg.mov")
def hevc_hlg(path: Path) -> Sample:
    """An iPhone's HDR video: HEVC Main 10 in QuickTime, BT.2020 primaries, HLG transfer
    (arib-std-b67), BT.2020 non-constant-luminance matrix, limited range, with AAC. Shows
    30 frames at n/30 s, 160x120."""
    clip = Clip(
        codec="libx265", pix_fmt="yuv420p10le", options=_X265, color=(BT2020, HLG, BT2020_NCL)
    )
    return clip.sample(write(path, clip))


@_valid("hevc_pq.mp4")
def hevc_pq(path: Path) -> Sample:
    """An Android phone's HDR10 video: HEVC Main 10, BT.2020 primaries, PQ transfer
    (smpte2084), BT.2020 non-constant-luminance matrix. Shows 30 frames at n/30 s,
    160x120."""
    clip = Clip(
        codec="libx265", pix_fmt="yuv420p10le", options=_X265, color=(BT2020, PQ, BT2020_NCL)
    )
    return clip.sample(write(path, clip))


@_valid("av1.mp4")
def av1_mp4(path: Path) -> Sample:
    """AV1 (SVT-AV1) in MP4 with AAC, as newer phones and screen recorders write. Shows 30
    frames at n/30 s, 160x120."""
    clip = Clip(codec="libsvtav1", options={"preset": "12", "crf": "50"})
    return clip.sample(write(path, clip))


@_valid("prores.mov")
def prores_mov(path: Path) -> Sample:
    """ProRes 422 (10-bit 4:2:2, prores_ks) in QuickTime with 16-bit PCM, as editors
    export. Shows 30 frames at n/30 s, 160x120."""
    clip = Clip(
        codec="prores_ks",
        pix_fmt="yuv422p10le",
        options={"profile": "2"},
        audio=(Audio(codec="pcm_s16le"),),
    )
    return clip.sample(write(path, clip))


# --- Valid files: timing -----------------------------------------------------------------------


def _remux(src: Path, path: Path, packets: Callable[[Any], Iterable[Any]]) -> None:
    """Copy the streams of ``src`` into ``path``, packets as ``packets(container)`` gives
    them."""
    with av.open(str(src)) as inp, av.open(str(path), "w") as out:
        streams = {s.index: out.add_stream_from_template(s) for s in inp.streams}
        for packet in packets(inp):
            packet.stream = streams[packet.stream.index]
            out.mux(packet)


@_valid("edit_list_mid_gop.mp4")
def edit_list_mid_gop(path: Path) -> Sample:
    """A clip trimmed without re-encoding (as phones' and editors' quick trims do): 60
    frames coded in two 30-frame GOPs, with an edit list that starts the presentation at
    frame 10, in the middle of the first GOP; AAC cut at the same instant. The first 10
    frames are decoded only as references. Shows 50 frames (the scene's pictures 10 to
    59) at n/30 s, 160x120."""
    gops = "keyint=30:min-keyint=30:scenecut=0"
    clip = Clip(frames=60, options={"preset": "veryfast", "x264-params": gops})
    with tempfile.TemporaryDirectory() as tmp:
        src = write(Path(tmp) / "source.mp4", clip)

        def trimmed(inp: Any) -> Iterable[Any]:
            for packet in inp.demux():
                if packet.dts is None:
                    continue
                # Timestamps before 0 are outside the presentation: the muxer writes an
                # edit list that skips them.
                shift = _ticks(Fraction(10, FPS), packet.time_base)
                packet.pts -= shift
                packet.dts -= shift
                yield packet

        _remux(src, path, trimmed)
    times = tuple(Fraction(n, FPS) for n in range(50))
    return Sample(path, 50, times, SIZE, scene(*SIZE, 60), first_picture=10)


@_valid("open_gop.mp4")
def open_gop(path: Path) -> Sample:
    """A stream cut at an open-GOP recovery point (x264 ``open-gop``), as a camera that
    splits recordings or a stream copy from a broadcast leaves it: the first picture is a
    non-IDR I frame, and the three B frames decoded after it show before it and refer to
    the GOP that was cut away, so no player shows them. 33 frames stored, video only.
    Shows 30 frames (the scene's pictures 30 to 59) at n/30 s for n = 3 to 32,
    160x120."""
    gops = "keyint=30:min-keyint=30:scenecut=0:open-gop=1:bframes=3"
    clip = Clip(frames=60, options={"preset": "veryfast", "x264-params": gops}, audio=())
    with tempfile.TemporaryDirectory() as tmp:
        src = write(Path(tmp) / "source.mp4", clip)

        def from_second_gop(inp: Any) -> Iterable[Any]:
            packets = [p for p in inp.demux() if p.dts is not None]
            start = [n for n, p in enumerate(packets) if p.is_keyframe][1]
            kept = packets[start:]
            shift = min(p.pts for p in kept)
            for packet in kept:
                packet.pts -= shift
                packet.dts -= shift
                yield packet

        _remux(src, path, from_second_gop)
    times = tuple(Fraction(n, FPS) for n in range(3, 33))
    return Sample(path, 30, times, SIZE, scene(*SIZE, 60), first_picture=30)


@_valid("negative_cts.mp4")
def negative_cts(path: Path) -> Sample:
    """B-frame reordering stored with negative composition offsets (ctts version 1,
    ``movflags=negative_cts_offsets``), so that decoding times equal presentation times
    where they can and no edit list is needed. Shows 30 frames at n/30 s, 160x120."""
    clip = Clip(container_options={"movflags": "negative_cts_offsets"})
    return clip.sample(write(path, clip))


# Irregular frame durations in milliseconds, as a phone writes when light or load changes.
_VFR_MS = (33, 34, 33, 50, 17, 100, 33, 33, 67, 16, 34, 33, 33, 200, 33)


def _vfr_clip() -> Clip:
    pts = [0]
    for n in range(FRAMES - 1):
        pts.append(pts[-1] + _VFR_MS[n % len(_VFR_MS)])
    return Clip(time_base=Fraction(1, 1000), pts=tuple(pts))


@_valid("vfr.mp4")
def vfr_mp4(path: Path) -> Sample:
    """Variable frame rate: frames 16 ms to 200 ms apart (``_VFR_MS``), millisecond clock,
    with AAC. Shows 30 frames at those irregular times (0 to 1.465 s), 160x120."""
    return _vfr_clip().sample(write(path, _vfr_clip()))


@_valid("vfr.mkv")
def vfr_mkv(path: Path) -> Sample:
    """Variable frame rate in Matroska, as screen recorders write: the times of
    ``vfr.mp4``. Shows 30 frames at those times, 160x120."""
    return _vfr_clip().sample(write(path, _vfr_clip()))


# --- Valid files: geometry ---------------------------------------------------------------------


@_valid("sar.mp4")
def sar_mp4(path: Path) -> Sample:
    """Anamorphic: 360x240 coded with an 8:9 sample aspect ratio (like NTSC DV), shown
    320x240 (4:3). 30 frames at n/30 s."""
    clip = Clip(display=(320, 240), coded=(360, 240), sar=Fraction(8, 9))
    return clip.sample(write(path, clip))


@_valid("sar_odd.mkv")
def sar_odd(path: Path) -> Sample:
    """Anamorphic with an odd coded width: 427x240 coded (4:4:4, since 4:2:0 needs even
    sizes), sample aspect ratio 320:427, shown 320x240 (4:3). 30 frames at n/30 s."""
    clip = Clip(display=(320, 240), coded=(427, 240), sar=Fraction(320, 427), pix_fmt="yuv444p")
    return clip.sample(write(path, clip))


@_valid("rotate90.mp4")
def rotate90(path: Path) -> Sample:
    """A phone held upright: 160x120 coded, display matrix turning it 90 degrees, shown
    120x160 (portrait). 30 frames at n/30 s."""
    clip = Clip(display=(120, 160), rotation=90)
    return clip.sample(write(path, clip))


@_valid("rotate270_mirror.mov")
def rotate270_mirror(path: Path) -> Sample:
    """A front camera held upright: 160x120 coded, display matrix turning 270 degrees and
    flipping left-right, shown 120x160. 30 frames at n/30 s."""
    clip = Clip(display=(120, 160), rotation=270, mirror=True)
    return clip.sample(write(path, clip))


@_valid("mirror.mp4")
def mirror(path: Path) -> Sample:
    """A mirrored (selfie) landscape clip: display matrix that only flips left-right,
    shown 160x120. 30 frames at n/30 s."""
    clip = Clip(mirror=True)
    return clip.sample(write(path, clip))


# --- Valid files: streams and metadata -------------------------------------------------------


@_valid("no_audio.mp4")
def no_audio(path: Path) -> Sample:
    """Video alone, no audio track (a screen capture). Shows 30 frames at n/30 s,
    160x120."""
    clip = Clip(audio=())
    return clip.sample(write(path, clip))


@_valid("audio_2.mkv")
def audio_2(path: Path) -> Sample:
    """Two audio tracks of different codecs and languages: AAC stereo (eng) and Opus mono
    (fra), as a film with a dub. Shows 30 frames at n/30 s, 160x120."""
    clip = Clip(
        audio=(
            Audio(codec="aac", layout="stereo", language="eng"),
            Audio(codec="libopus", hz=660, language="fra"),
        )
    )
    return clip.sample(write(path, clip))


@_valid("audio_8.mp4")
def audio_8(path: Path) -> Sample:
    """Eight AAC tracks (a multitrack field recorder or a conference recording), each a
    different tone and language. Shows 30 frames at n/30 s, 160x120."""
    languages = ("eng", "fra", "deu", "spa", "ita", "jpn", "por", "nld")
    clip = Clip(
        audio=tuple(Audio(hz=220 * (n + 1), language=lang) for n, lang in enumerate(languages))
    )
    return clip.sample(write(path, clip))


@_valid("subtitles.mp4")
def subtitles_mp4(path: Path) -> Sample:
    """A subtitle track (mov_text, eng) with two cues, beside H.264 and AAC. Shows 30
    frames at n/30 s, 160x120."""
    clip = Clip(subtitles=("mov_text",))
    return clip.sample(write(path, clip))


@_valid("subtitles.mkv")
def subtitles_mkv(path: Path) -> Sample:
    """Two subtitle tracks, SubRip and ASS, two cues each. Shows 30 frames at n/30 s,
    160x120."""
    clip = Clip(subtitles=("srt", "ass"))
    return clip.sample(write(path, clip))


@_valid("subtitles.webm")
def subtitles_webm(path: Path) -> Sample:
    """WebVTT subtitles in WebM beside VP9 and Opus. Shows 30 frames at n/30 s,
    160x120."""
    clip = Clip(
        codec="libvpx-vp9",
        options={"deadline": "realtime", "cpu-used": "8", "crf": "40", "b": "0"},
        audio=(Audio(codec="libopus"),),
        subtitles=("webvtt",),
    )
    return clip.sample(write(path, clip))


@_valid("timecode.mov")
def timecode_mov(path: Path) -> Sample:
    """A camera's QuickTime file with a timecode track (tmcd, starting 01:02:03:04), as
    professional cameras and editors write. Shows 30 frames at n/30 s, 160x120."""
    clip = Clip(video_metadata={"timecode": "01:02:03:04"})
    return clip.sample(write(path, clip))


@_valid("chapters.mp4")
def chapters_mp4(path: Path) -> Sample:
    """Two chapters ("Part 1" at 0 s, "Part 2" at 0.5 s; Nero chpl and a QuickTime chapter
    text track). Shows 30 frames at n/30 s, 160x120."""
    clip = Clip(chapters=2)
    return clip.sample(write(path, clip))


@_valid("chapters.mkv")
def chapters_mkv(path: Path) -> Sample:
    """Two Matroska chapters ("Part 1" at 0 s, "Part 2" at 0.5 s). Shows 30 frames at
    n/30 s, 160x120."""
    clip = Clip(chapters=2)
    return clip.sample(write(path, clip))


@_valid("cover.mp4")
def cover_mp4(path: Path) -> Sample:
    """Cover art (a 64x64 JPEG of a face, an attached picture) as the second video
    stream, after the clip, as iTunes and tag editors add it. Shows the clip: 30 frames
    at n/30 s, 160x120."""
    clip = Clip(cover="after")
    return clip.sample(write(path, clip))


@_valid("cover.mkv")
def cover_mkv(path: Path) -> Sample:
    """Cover art as a Matroska attachment (cover.jpg). Shows 30 frames at n/30 s,
    160x120."""
    clip = Clip(cover="attachment")
    return clip.sample(write(path, clip))


LOCATION = "+48.8584+002.2945+035.000/"
"""The place the metadata files say they were shot at (ISO 6709)."""


@_valid("metadata.mov")
def metadata_mov(path: Path) -> Sample:
    """An iPhone's QuickTime metadata (mdta keys): com.apple.quicktime.location.ISO6709,
    .make, .model, .software, and the classic ©xyz, ©mak, ©mod atoms, plus a creation
    time. Shows 30 frames at n/30 s, 160x120."""
    clip = Clip(
        container_options={"movflags": "use_metadata_tags"},
        metadata={
            "com.apple.quicktime.location.ISO6709": LOCATION,
            "com.apple.quicktime.make": "Apple",
            "com.apple.quicktime.model": "iPhone 15 Pro",
            "com.apple.quicktime.software": "17.4.1",
            "location": LOCATION,
            "make": "Apple",
            "model": "iPhone 15 Pro",
            "creation_time": "2024-05-01T10:00:00.000000Z",
        },
    )
    return clip.sample(write(path, clip))


@_valid("metadata.mp4")
def metadata_mp4(path: Path) -> Sample:
    """An Android phone's MP4 tags: location (©xyz), title, creation time. Shows 30 frames
    at n/30 s, 160x120."""
    clip = Clip(
        metadata={
            "location": LOCATION,
            "title": "Holiday",
            "creation_time": "2024-05-01T10:00:00.000000Z",
        }
    )
    return clip.sample(write(path, clip))


LONG_NAME = "long_" + "n" * (255 - len("long_.mp4")) + ".mp4"
"""A file name of 255 bytes: the longest most Linux file systems allow."""


@_valid(LONG_NAME)
def long_name(path: Path) -> Sample:
    """``h264.mp4`` under a 255-byte name, the file system's limit. Shows 30 frames at
    n/30 s, 160x120."""
    return Clip().sample(write(path, Clip()))


# --- Broken files --------------------------------------------------------------------------------


@functools.cache
def _source(suffix: str, faststart: bool = False) -> bytes:
    """The bytes of a valid clip: the source of the broken files."""
    clip = Clip(container_options={"movflags": "faststart"} if faststart else {})
    return _clip_bytes(clip, suffix)


def _boxes(data: bytes) -> dict[bytes, tuple[int, int]]:
    """Top-level MP4 boxes: type -> (offset, size)."""
    found, at = {}, 0
    while at + 8 <= len(data):
        size = int.from_bytes(data[at : at + 4], "big")
        found[data[at + 4 : at + 8]] = (at, size)
        if size < 8:
            break
        at += size
    return found


def _cut(path: Path, data: bytes, fraction: float) -> Path:
    path.write_bytes(data[: int(len(data) * fraction)])
    return path


@_broken("truncated_10.mp4")
def truncated_10(path: Path) -> Path:
    """The first 10% of ``h264.mp4`` (index at the end): part of the media data, no
    index (an upload or copy that stopped)."""
    return _cut(path, _source(".mp4"), 0.1)


@_broken("truncated_50.mp4")
def truncated_50(path: Path) -> Path:
    """The first half of ``h264.mp4``: no index."""
    return _cut(path, _source(".mp4"), 0.5)


@_broken("truncated_index.mp4")
def truncated_index(path: Path) -> Path:
    """``h264.mp4`` cut in the middle of its index (moov, at the end of the file)."""
    data = _source(".mp4")
    at, size = _boxes(data)[b"moov"]
    path.write_bytes(data[: at + size // 2])
    return path


@_broken("truncated_50_faststart.mp4")
def truncated_50_faststart(path: Path) -> Path:
    """The first half of a fast-start MP4 (index first): the index promises 30 frames,
    the media data holds about half of them."""
    return _cut(path, _source(".mp4", faststart=True), 0.5)


@_broken("truncated_90_faststart.mp4")
def truncated_90_faststart(path: Path) -> Path:
    """The first 90% of a fast-start MP4: the last few frames' data is missing."""
    return _cut(path, _source(".mp4", faststart=True), 0.9)


@_broken("truncated_50.mkv")
def truncated_50_mkv(path: Path) -> Path:
    """The first half of ``h264.mkv``: the header states 1 s, the frames stop halfway."""
    return _cut(path, _source(".mkv"), 0.5)


@_broken("zero_frames.mp4")
def zero_frames_mp4(path: Path) -> Path:
    """An MP4 with an H.264 track that holds no frame (a recording stopped at once)."""
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=FPS)
        video.width, video.height, video.pix_fmt = *SIZE, "yuv420p"
        out.start_encoding()
    return path


@_broken("zero_frames.mkv")
def zero_frames_mkv(path: Path) -> Path:
    """A Matroska file with a video track and no frame."""
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=FPS)
        video.width, video.height, video.pix_fmt = *SIZE, "yuv420p"
        out.start_encoding()
    return path


def _garble(data: bytes, start: int, length: int) -> bytes:
    noise = np.random.default_rng(10).integers(0, 256, length, dtype=np.uint8).tobytes()
    return data[:start] + noise + data[start + length :]


@_broken("garbled_start.mp4")
def garbled_start(path: Path) -> Path:
    """``h264.mp4`` with its first 64 bytes (the ftyp box and the media data's header)
    overwritten by noise."""
    path.write_bytes(_garble(_source(".mp4"), 0, 64))
    return path


@_broken("garbled_index.mp4")
def garbled_index(path: Path) -> Path:
    """``h264.mp4`` with its index (moov) overwritten by noise after its 8-byte header."""
    data = _source(".mp4")
    at, size = _boxes(data)[b"moov"]
    path.write_bytes(_garble(data, at + 8, size - 8))
    return path


@_broken("garbled.mkv")
def garbled_mkv(path: Path) -> Path:
    """``h264.mkv`` with bytes 4 to 260 (the EBML header and segment start) overwritten
    by noise."""
    path.write_bytes(_garble(_source(".mkv"), 4, 256))
    return path


@_broken("mdat_past_end.mp4")
def mdat_past_end(path: Path) -> Path:
    """``h264.mp4`` (index at the end) whose media data box (mdat) says it is 1 GB long:
    its size points past the end of the file, over the index that follows it."""
    data = bytearray(_source(".mp4"))
    at, _ = _boxes(bytes(data))[b"mdat"]
    data[at : at + 4] = (1 << 30).to_bytes(4, "big")
    path.write_bytes(bytes(data))
    return path


@_broken("huge.mkv")
def huge_mkv(path: Path) -> Path:
    """A Matroska file whose MPEG-2 video says 16000x16000 pixels (its sequence header
    rewritten; the pictures themselves are 64x48): a decoder would need 384 MB a frame."""
    with tempfile.TemporaryDirectory() as tmp:
        small = Path(tmp) / "small.m2v"
        with av.open(str(small), "w", format="mpeg2video") as out:
            video = out.add_stream("mpeg2video", rate=25)
            video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
            for i in range(3):
                frame = av.VideoFrame.from_ndarray(
                    np.full((48, 64, 3), 128, np.uint8), format="rgb24"
                )
                frame = frame.reformat(format="yuv420p")
                frame.pts = i
                out.mux(video.encode(frame))
            out.mux(video.encode(None))
        huge = Path(tmp) / "huge.m2v"
        huge.write_bytes(_mpeg2_size(small.read_bytes(), 16000, 16000))
        _remux(huge, path, lambda inp: (p for p in inp.demux() if p.size))
    return path


def _mpeg2_size(data: bytes, width: int, height: int) -> bytes:
    """MPEG-2 video with the size in its sequence header and extension rewritten: 12 bits
    each in the header, two more bits each in the extension."""
    out = bytearray(data)
    h = out.find(b"\x00\x00\x01\xb3") + 4
    lw, lh = width & 0xFFF, height & 0xFFF
    out[h], out[h + 1], out[h + 2] = lw >> 4, ((lw & 0xF) << 4) | (lh >> 8), lh & 0xFF
    e = out.find(b"\x00\x00\x01\xb5") + 4
    hx, vx = width >> 12, height >> 12
    out[e + 1] = (out[e + 1] & 0xFE) | (hx >> 1)
    out[e + 2] = (out[e + 2] & 0x1F) | ((hx & 1) << 7) | (vx << 5)
    return bytes(out)


@_broken("photo.mp4")
def photo_jpeg(path: Path) -> Path:
    """A 160x120 JPEG photo renamed .mp4."""
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(_pictures(*SIZE, 1)[0], cv2.COLOR_RGB2BGR))
    assert ok
    path.write_bytes(data.tobytes())
    return path


@_broken("drawing.mp4")
def drawing_png(path: Path) -> Path:
    """A 160x120 PNG image renamed .mp4."""
    ok, data = cv2.imencode(".png", cv2.cvtColor(_pictures(*SIZE, 1)[0], cv2.COLOR_RGB2BGR))
    assert ok
    path.write_bytes(data.tobytes())
    return path


@_broken("notes.mp4")
def text(path: Path) -> Path:
    """A text file renamed .mp4."""
    path.write_text("Shopping list\n- milk\n- eggs\n")
    return path


@_broken("empty.mp4")
def empty(path: Path) -> Path:
    """A file of 0 bytes."""
    path.write_bytes(b"")
    return path


@_broken("folder.mp4")
def folder(path: Path) -> Path:
    """A folder named like a video, holding nothing."""
    path.mkdir()
    return path
