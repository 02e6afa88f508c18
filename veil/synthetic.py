"""Synthetic videos with real faces at known positions, for tests, benchmarks and demos.

Faces come from public-domain photos that Python packages ship: scikit-image's
``astronaut`` (Eileen Collins) and ``camera`` (a cameraman, turned three-quarters), and
matplotlib's ``grace_hopper``. Each is cut out with a soft elliptical edge and pasted
onto a textured background, moved, scaled, rotated, blurred or partly covered, so the
face box of every frame is known exactly. Needs the ``samples`` extra
(``pip install veil[samples]``).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import IO, cast

import av
import cv2
import numpy as np
import numpy.typing as npt
from av.video.reformatter import VideoReformatter

from veil.video import from_display, probe, to_display

Frame = npt.NDArray[np.uint8]
Boxes = npt.NDArray[np.float32]


@dataclass(frozen=True, eq=False)
class FaceSprite:
    """A face photo cut out with a soft edge: ``rgb`` ``(h, w, 3)``, ``alpha`` ``(h, w)`` in
    0-1, and ``face`` the face's box in the sprite's pixels (forehead to chin)."""

    name: str
    rgb: Frame
    alpha: npt.NDArray[np.float32]
    face: tuple[float, float, float, float]


# Face boxes in the source photos, in pixels, measured once with CenterFace at full size.
_PHOTO_FACES = {
    "astronaut": (182, 58, 270, 178),
    "grace_hopper": (175, 132, 357, 336),
    "cameraman": (202, 119, 258, 197),
}


def _photo(name: str) -> Frame:
    if name == "grace_hopper":
        import matplotlib.cbook

        with cast(IO[bytes], matplotlib.cbook.get_sample_data("grace_hopper.jpg")) as f:
            encoded = np.frombuffer(f.read(), np.uint8)
        bgr = cv2.imdecode(encoded, cv2.IMREAD_COLOR)
        return np.asarray(cv2.cvtColor(np.asarray(bgr), cv2.COLOR_BGR2RGB), np.uint8)
    from skimage import data as skimage_data

    if name == "astronaut":
        return np.asarray(skimage_data.astronaut(), np.uint8)  # type: ignore[no-untyped-call]
    if name == "cameraman":
        grey = skimage_data.camera()  # type: ignore[no-untyped-call]
        return np.asarray(cv2.cvtColor(grey, cv2.COLOR_GRAY2RGB), np.uint8)
    raise KeyError(f"unknown face photo {name!r}; known: {', '.join(_PHOTO_FACES)}")


@functools.cache
def sprite(name: str) -> FaceSprite:
    """The face of photo ``name`` with some head and hair around it, edges feathered."""
    return cut_sprite(name, _photo(name), _PHOTO_FACES[name])


def cut_sprite(name: str, photo: Frame, face: tuple[float, float, float, float]) -> FaceSprite:
    """The face at box ``face`` (pixels of ``photo``, forehead to chin) with some head and
    hair around it, its edge feathered into an ellipse."""
    x1, y1, x2, y2 = face
    cx, cy, w, h = (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1
    margin = 0.35
    a = max(0, int(cx - w * (0.5 + margin)))
    b = max(0, int(cy - h * (0.5 + margin)))
    c = min(photo.shape[1], int(cx + w * (0.5 + margin)))
    d = min(photo.shape[0], int(cy + h * (0.5 + margin)))
    rgb = np.ascontiguousarray(photo[b:d, a:c])
    ph, pw = rgb.shape[:2]
    mask = np.zeros((ph, pw), np.float32)
    cv2.ellipse(mask, (pw // 2, ph // 2), (int(pw * 0.47), int(ph * 0.47)), 0, 0, 360, 1.0, -1)
    alpha = np.asarray(cv2.GaussianBlur(mask, (0, 0), sigmaX=max(1.0, pw * 0.04)), np.float32)
    return FaceSprite(name, rgb, alpha, (x1 - a, y1 - b, x2 - a, y2 - b))


@dataclass(frozen=True, kw_only=True)
class MovingFace:
    """One face's path through a scene.

    Positions are the face centre as fractions of the frame; ``height`` is the face box
    height in pixels, interpolated from ``height`` to ``end_height`` over its life.
    """

    photo: str | FaceSprite = "astronaut"
    """One of ``veil.synthetic``'s photos by name, or any face (``veil.faces``)."""
    height: float = 64
    end_height: float | None = None
    start: tuple[float, float] = (0.5, 0.5)
    end: tuple[float, float] | None = None
    first_frame: int = 0
    last_frame: int | None = None
    angle: float = 0.0
    """In-plane rotation in degrees, counter-clockwise."""
    motion_blur: float = 0.0
    """Length of a horizontal motion blur as a fraction of the face width."""
    covered: float = 0.0
    """Fraction of the face height hidden from below by a grey bar (a hand, a scarf)."""
    gain: float = 1.0
    lift: float = 0.0
    """The face's own light: ``pixel * gain + lift`` (a face in shadow against a bright
    window, a face lit harder than its surroundings)."""

    def at(self, index: int, n_frames: int) -> tuple[float, float, float] | None:
        """``(cx, cy, height)`` at frame ``index`` in fractions/pixels, or None when absent."""
        last = n_frames - 1 if self.last_frame is None else self.last_frame
        if not self.first_frame <= index <= last:
            return None
        t = (
            0.0
            if last == self.first_frame
            else (index - self.first_frame) / (last - self.first_frame)
        )
        end = self.end or self.start
        end_h = self.height if self.end_height is None else self.end_height
        return (
            self.start[0] + (end[0] - self.start[0]) * t,
            self.start[1] + (end[1] - self.start[1]) * t,
            self.height + (end_h - self.height) * t,
        )


@dataclass(frozen=True, kw_only=True)
class Scene:
    """A clip: size of the displayed picture, frame count and rate, and its faces."""

    width: int = 320
    height: int = 240
    frames: int = 30
    fps: int = 30
    faces: Sequence[MovingFace] = field(default_factory=tuple)
    cuts: Sequence[int] = ()
    """Frames where the shot changes: from each, another backdrop (an editor's cut)."""
    backdrop: int = 0
    """Which backdrop (a seed): scenes of a corpus differ in theirs."""
    pan: tuple[float, float] = (0.0, 0.0)
    """Camera pan: the backdrop moves this many pixels a frame (x, y)."""
    zoom: float = 0.0
    """Camera zoom: the backdrop grows by this fraction a frame."""
    shake: float = 0.0
    """Camera shake: the backdrop jumps up to this many pixels a frame, at random."""
    gain: float = 1.0
    lift: float = 0.0
    """Exposure of the whole picture: ``pixel * gain + lift`` (dark, washed out, low
    contrast)."""
    noise: float = 0.0
    """Sensor noise: its standard deviation in 8-bit levels, new on every frame."""

    def render(self, index: int) -> tuple[Frame, Boxes, list[int]]:
        """Frame ``index`` (RGB, displayed orientation), its visible face boxes ``(n, 4)``
        and which of ``faces`` each box belongs to."""
        shot = sum(1 for cut in self.cuts if cut <= index)
        frame = self._backdrop(index, shot)
        boxes, ids = [], []
        for n, face in enumerate(self.faces):
            where = face.at(index, self.frames)
            if where is None:
                continue
            box = _paste(frame, face, where[0] * self.width, where[1] * self.height, where[2])
            if box is not None:
                boxes.append(box)
                ids.append(n)
        if self.gain != 1.0 or self.lift or self.noise:
            light = frame.astype(np.float32) * self.gain + self.lift
            if self.noise:
                rng = np.random.default_rng((self.backdrop, index))
                light += rng.normal(0, self.noise, size=(self.height, self.width, 1))
            frame = np.clip(light, 0, 255).astype(np.uint8)
        return frame, np.asarray(boxes, np.float32).reshape(-1, 4), ids

    def _backdrop(self, index: int, shot: int) -> Frame:
        still = _background(self.width, self.height, shot + 1000 * self.backdrop)
        if self.pan == (0.0, 0.0) and not self.zoom and not self.shake:
            return still.copy()
        jump = np.random.default_rng((self.backdrop, index, 7)).uniform(-1, 1, 2) * self.shake
        scale = 1.0 + self.zoom * index
        # Scale about the centre, then move: what the camera's motion does to a far wall.
        m = np.array([[scale, 0.0, 0.0], [0.0, scale, 0.0]])
        m[:, 2] = (1 - scale) * np.array([self.width, self.height]) / 2
        m[:, 2] -= np.array(self.pan) * index + jump
        moved = cv2.warpAffine(
            still, m, (self.width, self.height), borderMode=cv2.BORDER_REFLECT101
        )
        return np.asarray(moved, np.uint8)


@functools.lru_cache(maxsize=4)
def _background(width: int, height: int, shot: int = 0) -> Frame:
    """A deterministic textured backdrop: smooth colour noise with some edges, no faces;
    each ``shot`` of a scene has its own."""
    rng = np.random.default_rng(1234 + shot)
    grey = rng.integers(60, 200, size=(max(2, height // 24), max(2, width // 24), 1))
    tint = rng.integers(-25, 25, size=(max(2, height // 24), max(2, width // 24), 3))
    small = np.clip(grey + tint, 0, 255).astype(np.uint8)
    smooth = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
    fine = rng.normal(0, 6, size=(height, width, 1))
    frame: Frame = np.clip(smooth.astype(np.float32) + fine, 0, 255).astype(np.uint8)
    for x in range(0, width, max(8, width // 12)):
        cv2.line(frame, (x, 0), (x + height // 3, height), (230, 230, 210), 1)
    frame.setflags(write=False)
    return frame


def _paste(frame: Frame, face: MovingFace, cx: float, cy: float, face_h: float) -> Boxes | None:
    spr = face.photo if isinstance(face.photo, FaceSprite) else sprite(face.photo)
    fx1, fy1, fx2, fy2 = spr.face
    s = face_h / (fy2 - fy1)
    # Place the sprite by an affine map: scale, rotate about the face centre, translate.
    fcx, fcy = (fx1 + fx2) / 2, (fy1 + fy2) / 2
    m = cv2.getRotationMatrix2D((fcx, fcy), face.angle, s)
    m[:, 2] += np.array([cx - fcx, cy - fcy])
    h, w = frame.shape[:2]
    rgb = cv2.warpAffine(spr.rgb, m, (w, h), flags=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    alpha = cv2.warpAffine(spr.alpha, m, (w, h), flags=cv2.INTER_LINEAR)
    corners = (
        np.array([[fx1, fy1, 1], [fx2, fy1, 1], [fx2, fy2, 1], [fx1, fy2, 1]], np.float64) @ m.T
    )
    x1, y1 = corners.min(axis=0)
    x2, y2 = corners.max(axis=0)
    if face.covered > 0:
        bar_top = int(y2 - (y2 - y1) * face.covered)
        rgb[max(0, bar_top) : max(0, int(y2) + 2), :] = (128, 128, 120)
    if face.gain != 1.0 or face.lift:
        rgb = np.clip(rgb.astype(np.float32) * face.gain + face.lift, 0, 255).astype(np.uint8)
    if face.motion_blur > 0:
        k = max(1, int((x2 - x1) * face.motion_blur))
        kernel = np.full((1, k), 1.0 / k, np.float32)
        rgb = cv2.filter2D(rgb, -1, kernel)
        alpha = cv2.filter2D(alpha, -1, kernel)
    # Blended only where the sprite lands (its whole picture's corners, plus a source
    # pixel's interpolation and the blur's spread): elsewhere its alpha is 0, and
    # blending the whole frame cost most of a 4K frame's render.
    sh, sw = spr.rgb.shape[:2]
    outline = np.array([[0, 0, 1], [sw, 0, 1], [sw, sh, 1], [0, sh, 1]], np.float64) @ m.T
    pad = 2 + math.ceil(s) + (k if face.motion_blur > 0 else 0)
    left, top = np.maximum(np.floor(outline.min(axis=0)).astype(int) - pad, 0)
    right, bottom = np.minimum(np.ceil(outline.max(axis=0)).astype(int) + pad, (w, h))
    if right > left and bottom > top:
        area = np.s_[top:bottom, left:right]
        a = alpha[area][:, :, None]
        frame[area] = (rgb[area] * a + frame[area] * (1 - a)).astype(np.uint8)
    box = np.array([max(0, x1), max(0, y1), min(w, x2), min(h, y2)], np.float32)
    if box[2] - box[0] < 4 or box[3] - box[1] < 4:
        return None
    return box


@dataclass(frozen=True)
class SyntheticVideo:
    path: Path
    scene: Scene
    pts: list[int]
    time_base: Fraction


def write_video(
    path: str | Path,
    scene: Scene,
    *,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    crf: int = 16,
    rotation: int = 0,
    mirror: bool = False,
    variable_rate: bool = False,
    audio: bool = True,
    full_range: bool = False,
) -> SyntheticVideo:
    """Encode ``scene`` to ``path`` (container from the extension) with a 440 Hz tone.

    ``rotation`` stores the picture turned and a display matrix that turns it back, as
    phones do; ``mirror`` adds a horizontal flip to the matrix (front cameras). ``variable_rate`` alternates frame durations of one and two ticks.
    """
    path = Path(path)
    time_base = Fraction(1, scene.fps * 2 if variable_rate else scene.fps)
    pts = []
    t = 0
    for i in range(scene.frames):
        pts.append(t)
        t += (1 + i % 2) if variable_rate else 1
    with av.open(str(path), "w") as out:
        video = cast(av.video.stream.VideoStream, out.add_stream(codec, rate=scene.fps))
        coded_w, coded_h = (
            (scene.height, scene.width) if rotation % 180 else (scene.width, scene.height)
        )
        video.width, video.height = coded_w, coded_h
        video.pix_fmt = pix_fmt
        video.time_base = time_base
        video.codec_context.time_base = time_base
        if full_range:
            video.codec_context.color_range = 2
        if codec == "libx264":
            video.options = {"crf": str(crf), "preset": "veryfast"}
        if rotation or mirror:
            # The picture is stored turned back (and mirrored); the matrix undoes both.
            video.set_display_rotation(rotation, hflip=mirror)
        sound = _add_audio(out, path.suffix.lower()) if audio else None
        samples_done = 0
        # One converter for every frame: a frame's own builds its tables anew each time
        # (about 2 ms a frame, more than the rest of its conversion at these sizes).
        converter = VideoReformatter()
        for i in range(scene.frames):
            image, _, _ = scene.render(i)
            coded = from_display(image, rotation, mirror)
            frame = av.VideoFrame.from_ndarray(coded, format="rgb24")
            frame = converter.reformat(
                frame, format=pix_fmt, dst_color_range=2 if full_range else 1
            )
            frame.pts = pts[i]
            frame.time_base = time_base
            out.mux(video.encode(frame))
            if sound is not None:
                until = (pts[i] + 1) * time_base
                samples_done = _write_tone(out, sound, samples_done, until)
        out.mux(video.encode(None))
        if sound is not None:
            out.mux(sound.encode(None))
    return SyntheticVideo(path, scene, pts, time_base)


_AUDIO_FOR = {".webm": "libopus", ".avi": "pcm_s16le"}


def _add_audio(out: av.container.OutputContainer, suffix: str) -> av.audio.stream.AudioStream:
    stream = cast(
        av.audio.stream.AudioStream, out.add_stream(_AUDIO_FOR.get(suffix, "aac"), rate=48000)
    )
    stream.layout = "mono"
    return stream


def _write_tone(
    out: av.container.OutputContainer,
    stream: av.audio.stream.AudioStream,
    done: int,
    until: Fraction,
) -> int:
    rate = 48000
    target = int(until * rate)
    while done < target:
        n = min(1024, target - done)
        t = (np.arange(done, done + n) / rate).astype(np.float32)
        samples = (0.2 * np.sin(2 * np.pi * 440 * t) * 32767).astype(np.int16).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = rate
        frame.pts = done
        frame.time_base = Fraction(1, rate)
        out.mux(stream.encode(frame))
        done += n
    return done


FACE_PARTS = {"eyes": (0.05, 0.45), "nose": (0.3, 0.7), "mouth and chin": (0.55, 0.95)}
"""Bands of an upright face box, as fractions of its height from the top; each spans
the middle ``_PART_COLUMNS`` of the box's width, where the features are, so the edge of
a blurred box just outside the face does not read as detail."""
_PART_COLUMNS = (0.15, 0.85)
DETAIL_LEFT = 0.1
"""A part of a face whose fine detail keeps less than this share of its strength (its
standard deviation) in the output counts as hidden, whatever its pattern. Correlation
is blind to scale: under a blur a 16 px face's eye band kept 0.2 grey levels of detail
against 23 in the original, and over its few pixels that faint remainder correlated
0.78 with the face by chance (the 720p demo clip, frame 35, under two overlapping
boxes). Untouched faces only re-encoded keep 0.28 or more (the privacy corpus's dark and
backlit scenes at a low bitrate), most of them 0.9 or more."""


def face_visibility(original: Frame, output: Frame, box: Boxes) -> float:
    """How much of a face's detail survives in ``output``, from about 1 (untouched, only
    re-encoded) to about 0 (anonymized): the correlation of the two images' fine detail
    (difference of Gaussians) inside ``box`` (``x1, y1, x2, y2`` pixels), taken over
    each of ``FACE_PARTS`` and the whole box, and the highest of those; a part keeping
    less than ``DETAIL_LEFT`` of its detail's strength counts 0. A face whose eyes are
    hidden but whose mouth and chin are not counts as visible."""
    return max(part_visibility(original, output, box).values())


def part_visibility(original: Frame, output: Frame, box: Boxes) -> dict[str, float]:
    """``face_visibility`` for the whole box and for each of ``FACE_PARTS``."""
    x1, y1, x2, y2 = (round(v) for v in box)
    a = _detail(original[y1:y2, x1:x2], y2 - y1)
    b = _detail(output[y1:y2, x1:x2], y2 - y1)
    found = {"whole": _surviving(a, b)}
    height, width = a.shape
    left, right = (round(f * width) for f in _PART_COLUMNS)
    columns = slice(left, max(left + 1, right))
    for name, (top, bottom) in FACE_PARTS.items():
        rows = slice(round(top * height), max(round(top * height) + 1, round(bottom * height)))
        found[name] = _surviving(a[rows, columns], b[rows, columns])
    return found


def _surviving(a: npt.NDArray[np.float32], b: npt.NDArray[np.float32]) -> float:
    """How much of detail ``a`` survives as ``b``: their correlation, or 0 where ``b``
    keeps less than ``DETAIL_LEFT`` of ``a``'s strength."""
    a, b = a - a.mean(), b - b.mean()
    strength_a, strength_b = float(np.sqrt((a * a).sum())), float(np.sqrt((b * b).sum()))
    if strength_a * strength_b <= 1e-6 or strength_b < DETAIL_LEFT * strength_a:
        return 0.0
    return float((a * b).sum() / (strength_a * strength_b))


def _detail(region: Frame, face_height: int) -> npt.NDArray[np.float32]:
    gray = cv2.cvtColor(region, cv2.COLOR_RGB2GRAY).astype(np.float32)
    # Detail at the scale of facial features (eyes, mouth): finer than an eye.
    sigma = max(0.5, face_height / 60)
    return cv2.GaussianBlur(gray, (0, 0), sigma) - cv2.GaussianBlur(gray, (0, 0), sigma * 3)


def demo_scene(width: int = 1280, height: int = 720, frames: int = 150, fps: int = 30) -> Scene:
    """Faces 16 to 160 px tall (scaled with the frame height from 720p), moving, one
    turned three-quarters, one rotated 25°, one motion-blurred, one half covered, one
    entering late and leaving early."""
    k = height / 720
    faces = (
        MovingFace(photo="astronaut", height=16 * k, start=(0.08, 0.15), end=(0.30, 0.20)),
        MovingFace(photo="grace_hopper", height=20 * k, start=(0.90, 0.85), end=(0.70, 0.75)),
        MovingFace(photo="cameraman", height=24 * k, start=(0.20, 0.80), end=(0.35, 0.70)),
        MovingFace(
            photo="grace_hopper", height=32 * k, start=(0.45, 0.12), end=(0.60, 0.18), angle=-20
        ),
        MovingFace(
            photo="astronaut", height=48 * k, start=(0.55, 0.55), end=(0.45, 0.50), motion_blur=0.15
        ),
        MovingFace(photo="cameraman", height=64 * k, start=(0.12, 0.45), end=(0.18, 0.50)),
        MovingFace(
            photo="astronaut",
            height=96 * k,
            end_height=130 * k,
            start=(0.80, 0.35),
            end=(0.78, 0.40),
            angle=25,
        ),
        MovingFace(
            photo="grace_hopper",
            height=160 * k,
            start=(0.35, 0.40),
            end=(0.30, 0.45),
            covered=0.35,
            first_frame=frames // 5,
            last_frame=frames * 4 // 5,
        ),
    )
    return Scene(width=width, height=height, frames=frames, fps=fps, faces=faces)


def closeup_scene(width: int = 1280, height: int = 720, frames: int = 60, fps: int = 30) -> Scene:
    """A talking head: one face zooming from half the frame's height to nearly all of it
    (0.5 to 0.95), drifting sideways; and a second, smaller face beside it."""
    faces = (
        MovingFace(
            photo="grace_hopper",
            height=0.5 * height,
            end_height=0.95 * height,
            start=(0.55, 0.5),
            end=(0.5, 0.5),
        ),
        MovingFace(photo="astronaut", height=0.12 * height, start=(0.12, 0.3), end=(0.15, 0.35)),
    )
    return Scene(width=width, height=height, frames=frames, fps=fps, faces=faces)


def action_scene(width: int = 1280, height: int = 720, frames: int = 90, fps: int = 30) -> Scene:
    """Fast motion and cuts: a motion-blurred 48 px face crossing the frame at 20 px a
    frame, an 80 px one at 30 px a frame the other way, a 32 px face entering from the
    edge, and a cut at mid-clip after which two faces are there from the first frame of
    the new shot (sizes and speeds scale with the frame height from 720p)."""
    k = height / 720
    cut = frames // 2

    def crossing(speed: float, size: float) -> int:
        """Frames a face needs to cross the frame at ``speed`` px a frame."""
        return max(2, round((width + 2 * size) / (speed * k)))

    faces = (
        MovingFace(
            photo="astronaut",
            height=48 * k,
            start=(-0.02, 0.3),
            end=(1.02, 0.35),
            motion_blur=0.3,
            last_frame=min(cut - 1, crossing(20, 48 * k)),
        ),
        MovingFace(
            photo="cameraman",
            height=80 * k,
            start=(1.03, 0.7),
            end=(-0.03, 0.65),
            motion_blur=0.3,
            last_frame=min(cut - 1, crossing(30, 80 * k)),
        ),
        MovingFace(photo="grace_hopper", height=32 * k, start=(-0.01, 0.55), end=(0.3, 0.5)),
        MovingFace(
            photo="cameraman", height=24 * k, start=(0.7, 0.2), end=(0.72, 0.22), first_frame=cut
        ),
        MovingFace(
            photo="astronaut", height=120 * k, start=(0.45, 0.6), end=(0.5, 0.6), first_frame=cut
        ),
    )
    return Scene(width=width, height=height, frames=frames, fps=fps, faces=faces, cuts=(cut,))


def visible_faces(
    video: str | Path, scene: Scene, *, threshold: float = 0.6
) -> list[tuple[int, int, float]]:
    """Every ``(frame, face, visibility)`` of ``video`` (a processed copy of ``scene``)
    where a known face keeps more than ``threshold`` of its detail."""
    found = []
    info = probe(video)
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        for i, frame in enumerate(container.decode(stream)):
            coded = np.asarray(frame.to_ndarray(format="rgb24"), np.uint8)
            image = to_display(coded, info.rotation, info.mirrored)
            truth, boxes, ids = scene.render(i)
            if image.shape != truth.shape:
                raise ValueError(
                    f"{video} shows {image.shape[1::-1]}, the scene is {truth.shape[1::-1]}"
                )
            for face, box in zip(ids, boxes, strict=True):
                v = face_visibility(truth, image, box)
                if v > threshold:
                    found.append((i, face, v))
    return found
