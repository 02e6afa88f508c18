"""A second opinion on an anonymized video: faces that are still recognisable.

``audit_video`` decodes every frame and checks a sample of them with a detector set up
differently from the one that made the boxes (``AuditDetector``): the fp32 model
instead of int8, a lower threshold, and two tests a blurred face fails. A detection
counts as a recognisable face only when all three hold:

- **found**: CenterFace (fp32, the tiled pyramid at scale 2) scores it at least
  ``FIND_THRESHOLD`` (0.1; veil blur starts tracks at 0.2);
- **found again**: a second look at a different tiling, the detector's own small tile
  around the box (``CenterFace.detect_near``, the face at about 64 input pixels),
  scores a box overlapping it at least ``CONFIRM_THRESHOLD`` (0.2). Blurred heads that the
  pyramid's finest level takes for faces are rarely found again this way;
- **detailed**: ``face_detail``, the median strength of detail at the scale of eyes and
  mouth inside the box, is at least ``MIN_DETAIL`` (2) grey levels. veil's anonymizers
  leave next to none: a blur is smooth, a solid box flat. (A mosaic's cell borders are
  sharp, so its detail can pass; mosaics are turned down by the first two tests.) A dim
  face holds less: one the second look finds at ``SURE_THRESHOLD`` (0.5) or more counts
  without this test.

Sightings on sampled frames are linked into ``Finding``s by overlap and time, never
across a cut (``veil.motion.PictureChange``). The
measured hit rates (faces found on unblurred clips, false findings on veil's outputs in
every mode) are in ``docs/benchmarks.md``; what the audit does not check is in
``docs/audit.md``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict, TypeVar

import cv2
import numpy as np
import numpy.typing as npt

from veil.detections import Detections, FloatArray, box_iou
from veil.detector import CenterFace, Frame
from veil.errors import OptionError
from veil.faces_file import ratio_digits, read_faces
from veil.motion import CUT_CHANGE, PictureChange
from veil.video import DecodedFrame, VideoReader

FIND_THRESHOLD = 0.1
"""Lowest score of the audit's whole-frame pass (veil blur starts tracks at 0.2)."""
CONFIRM_THRESHOLD = 0.2
"""Lowest score of the second look near the box for a detection to count. Measured:
veil's anonymized faces found again reach 0.15 to 0.28; unblurred faces 0.19 or more in
99 cases of 100."""
MIN_DETAIL = 2.0
"""Lowest ``face_detail`` (grey levels, 0-255) for a detection to count as a visible
face. Measured: up to 1.55 on those of veil's anonymized faces that the second look
finds again (x264's noise in a blurred box); 2.2 or more on 99 in 100 unblurred faces,
also at a third of full contrast."""
SURE_THRESHOLD = 0.5
"""A detection whose second look scores this much counts whatever its detail: a dark or
backlit face holds less fine detail than ``MIN_DETAIL`` (1.7 to 1.8 on the privacy
corpus's scenes 073 and 204, found again at 0.81 to 0.88), while veil's anonymized faces
found again reach 0.28 at most."""
AUDIT_SCALE = 2.0
"""The audit pass's finest detector scale: faces from 16 px."""

FOCUS_MS = 1000
"""How far either side of a focus time (a track's start or end) frames are checked densely."""
FOCUS_DENSITY = 4
"""Around a focus time, frames are checked this many times as often as elsewhere."""
LINK_MS = 1000
"""Sightings this far apart in time (or two sampling intervals, if longer) can be one finding."""
_LINK_IOU = 0.2
_LINK_SIZE = 2.0
"""Sightings whose heights differ more than this factor are different faces."""
_LINK_SPEED = 15.0
"""Face heights a second a face may move between sightings and still be the same face
(the benchmark's fastest crosses the frame at half its height a frame)."""
_SAME_FACE_IOU = 0.3

SWEEP_SECONDS = 1.0
"""A service audit checks one frame in every this many seconds at ``SWEEP_SCALE``
(``service_sampling``'s ``sweep``), so a face of 32 px or more left visible for this
long is on a checked frame however the rest of the budget falls (how often it is then
found: ``bench/audit_corpus.py``, docs/audit.md)."""
SWEEP_SCALE = 1.0
"""The sweep's finest detector scale: faces from ``veil.tiling.MIN_FACE`` (28) px, at a
quarter of the fine pass's pixels."""

AUDIT_SHARE = 0.25
"""The share of a service job's time the audit may take (``service_sampling``)."""
_CHECK_COST = 16.0
"""One fine check (scale 2) costs about this many frames of ``veil blur`` at its
defaults: the fp32 whole-frame pass and the second looks against the whole blur job
(decode, detect, track, encode). Measured with ``bench/audit_rates.py --timing`` on the
720p demo clip (2 shared cores): 14.6 and 12.6 (2026-12-07, 321-329 ms a check against
22-26 ms a blurred frame); the larger measurements of before (18.5 to 22.3) came
with a slower fp32 pass. The ratio holds across frame sizes because both are dominated
by detector pixels."""
_SWEEP_COST = 4.5
"""One sweep check (scale 1) costs about this many blurred frames (measured with
``bench/audit_rates.py --timing``: 3.3 to 4.2)."""
_DECODE_SHARE = 0.09
"""Decoding every frame for the audit costs about 9% of the blur job (1.9 of 21 ms at
720p, 2026-12-07; 6% before the blur got faster)."""
_MIN_CHECKS = 5
"""A short video gets at least one check every ``_MIN_CHECK_SECONDS``, up to this many."""
_MIN_CHECK_SECONDS = 2.0

Progress = Callable[[int, int | None], None]
"""Called with (frames decoded, frames expected or None)."""


def face_detail(grey: npt.NDArray[np.uint8], box: Sequence[float]) -> float:
    """How much fine detail a face box holds: the median absolute difference of Gaussians
    (sigma ``height / 60`` and three times that: the scale of eyes, nostrils and lips)
    over the middle 80% of ``box`` (``x1, y1, x2, y2`` pixels of ``grey``, an
    ``(h, w)`` luma image), in grey levels (0-255).

    The median ignores thin lines (the edge of a blurred box), so blurred, ellipse and
    solid faces measure about 0.2 to 1.6 and visible faces 2 to 25; a mosaic's cell
    borders can measure as much as a face."""
    x1, y1, x2, y2 = (float(v) for v in box)
    width, height = x2 - x1, y2 - y1
    frame_h, frame_w = grey.shape[:2]
    a = max(0, int(x1 + 0.1 * width))
    b = max(0, int(y1 + 0.1 * height))
    c = min(frame_w, math.ceil(x2 - 0.1 * width))
    d = min(frame_h, math.ceil(y2 - 0.1 * height))
    if c <= a or d <= b:
        return 0.0
    sigma = max(0.5, height / 60)
    pad = math.ceil(9 * sigma)  # the wider Gaussian's reach: the core's detail is exact
    left, top = max(0, a - pad), max(0, b - pad)
    region = grey[top : min(frame_h, d + pad), left : min(frame_w, c + pad)].astype(np.float32)
    dog = cv2.GaussianBlur(region, (0, 0), sigma) - cv2.GaussianBlur(region, (0, 0), 3 * sigma)
    return float(np.median(np.abs(dog[b - top : d - top, a - left : c - left])))


class AuditDetector:
    """A ``FaceDetector`` that reports only faces that are still recognisable: found by
    CenterFace (fp32) at ``threshold``, found again by a second look near the box at
    ``confirm_threshold``, and holding at least ``min_detail`` of ``face_detail``.

    Boxes are pixels of the frame given; ``confidence`` is the whole-frame pass's score.
    """

    def __init__(
        self,
        *,
        threshold: float = FIND_THRESHOLD,
        confirm_threshold: float = CONFIRM_THRESHOLD,
        min_detail: float = MIN_DETAIL,
        scale: float = AUDIT_SCALE,
        device: str = "cpu",
        threads: int | None = None,
    ) -> None:
        if not 0.0 < confirm_threshold < 1.0:
            raise OptionError(f"confirm threshold must be between 0 and 1, got {confirm_threshold}")
        if min_detail < 0:
            raise OptionError(f"min detail must be 0 or more, got {min_detail}")
        self.centerface = CenterFace(
            threshold=threshold, scale=scale, device=device, precision="fp32", threads=threads
        )
        self.confirm_threshold = confirm_threshold
        self.min_detail = min_detail

    @property
    def settings(self) -> dict[str, Any]:
        """What shaped the audit, for the privacy report."""
        return {
            "detector": "CenterFace",
            "precision": self.centerface.precision,
            "scale": self.centerface.scale,
            "threshold": self.centerface.threshold,
            "confirm_threshold": self.confirm_threshold,
            "min_detail": self.min_detail,
            "sure_threshold": SURE_THRESHOLD,
        }

    def detect_frame(self, frame: Frame) -> Detections:
        """The recognisable faces on ``frame`` (RGB, ``(h, w, 3)``)."""
        return self._recognisable(frame, self.centerface.detect_frame(frame))

    def detect_near(
        self, frame: Frame, boxes: FloatArray, reach: Sequence[float] | None = None
    ) -> Detections:
        """The recognisable faces near ``boxes`` ``(k, 4)``."""
        return self._recognisable(frame, self.centerface.detect_near(frame, boxes, reach))

    def _recognisable(self, frame: Frame, found: Detections) -> Detections:
        if not len(found):
            return found
        grey = np.asarray(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), np.uint8)
        keep = np.zeros(len(found), bool)
        for i, box in enumerate(found.xyxy):
            # The cheap test first: most blurred faces stop here, unless the first look
            # was sure enough that a dim face's second look is worth its cost.
            detailed = face_detail(grey, box) >= self.min_detail
            if not detailed and float(found.confidence[i]) < self.confirm_threshold:
                continue
            again = self.centerface.detect_near(frame, box[None])
            if len(again):
                same = box_iou(again.xyxy, box[None])[:, 0] > _SAME_FACE_IOU
                score = float(again.confidence[same].max()) if same.any() else 0.0
                keep[i] = score >= (self.confirm_threshold if detailed else SURE_THRESHOLD)
        return found[keep]


@dataclass(frozen=True)
class Finding:
    """One face still recognisable in the video.

    ``start_ms``/``end_ms``: the first and last sampled frame it was seen on (ms);
    ``frames``: how many sampled frames it was seen on; ``box``: ``left, top, width,
    height`` as ratios of the displayed frame, at its most confident sighting;
    ``score``: that sighting's detector score, 0-1; ``sightings``: where it was on each
    checked frame, ``(time_ms, box)`` (at most ``MAX_SIGHTINGS``, evenly chosen), so that a
    reviewer's box can follow it.
    """

    start_ms: int
    end_ms: int
    frames: int
    box: tuple[float, float, float, float]
    score: float
    sightings: tuple[tuple[int, tuple[float, float, float, float]], ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "start_ms": self.start_ms,
            "end_ms": self.end_ms,
            "frames": self.frames,
            "box": _box_json(self.box),
            "score": self.score,
            "sightings": [{"at_ms": at, "box": _box_json(box)} for at, box in self.sightings],
        }

    def pixels(self, width: int, height: int) -> tuple[int, int, int, int]:
        """``box`` in pixels of a ``width`` x ``height`` frame: ``left, top, width, height``."""
        left, top, w, h = self.box
        return round(left * width), round(top * height), round(w * width), round(h * height)


T = TypeVar("T")

MAX_SIGHTINGS = 100
"""A finding's sightings kept for the reviewer: enough keyframes to follow a face across
a long clip, a bounded size in every audit's JSON."""


def _box_json(box: Sequence[float]) -> dict[str, float]:
    left, top, width, height = box
    return {"left": left, "top": top, "width": width, "height": height}


def thinned(items: Sequence[T], most: int) -> list[T]:
    """At most ``most`` of ``items``, evenly spread, the first and the last always kept."""
    if len(items) <= most:
        return list(items)
    if most < 2:
        return list(items[:most])
    step = (len(items) - 1) / (most - 1)
    return [items[round(n * step)] for n in range(most)]


@dataclass(frozen=True)
class AuditResult:
    """What an audit found: ``findings`` sorted by time, ``frames_checked`` (frames the
    detector looked at), ``frames_total`` (frames decoded), and the ``settings`` used."""

    findings: list[Finding]
    frames_checked: int
    frames_total: int
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """No face was found."""
        return not self.findings

    def to_json(self) -> dict[str, Any]:
        data = {
            "passed": self.passed,
            "frames_checked": self.frames_checked,
            "frames_total": self.frames_total,
            "settings": self.settings,
            "findings": [finding.to_json() for finding in self.findings],
        }
        return {**data, "coverage": coverage(data), "verdict": verdict(data)}


def coverage(audit: Mapping[str, Any]) -> str:
    """How much of a video an audit (``AuditResult.to_json``, or ``join_audits``) looked
    at and how those frames were chosen, in plain words: what the page, the privacy
    report, ``veil audit`` and ``veil blur --report`` all say."""
    settings = audit.get("settings") or {}
    every = settings.get("every")
    pieces = settings.get("pieces")
    if isinstance(every, list):  # joined pieces: each its own spacing
        every = max((e for e in every if e), default=None)
    ways = []
    if every:
        fine = "every frame" if every == 1 else f"one frame in {every:,}"
        if settings.get("max_frames"):
            fine += f" (at most {settings['max_frames']:,})"
        ways.append(f"{fine} at scale {settings.get('scale') or 2:g}")
    if settings.get("focus_points"):
        window = settings.get("focus_window_ms", FOCUS_MS) / 1000
        ways.append(
            f"more often within {window:g} s of {settings['focus_points']:,} track starts and ends"
        )
    if settings.get("sweep"):
        scale = settings.get("sweep_scale") or SWEEP_SCALE
        ways.append(f"and one frame in {settings['sweep']:,} at scale {scale:g}")
    how = f": {'; '.join(ways)}" if ways else ""
    where = f", in {pieces} pieces" if pieces else ""
    checked, total = audit.get("frames_checked", 0), audit.get("frames_total", 0)
    return f"{checked:,} of {total:,} frames checked{where}{how}"


def verdict(audit: Mapping[str, Any]) -> str:
    """Whether an audit passed, in plain words."""
    found = len(audit.get("findings") or [])
    if not found:
        return "passed: no face left visible was found"
    return f"{found} face{'s' if found != 1 else ''} may still be visible"


def planned_frames(
    total: int,
    fps: float,
    *,
    every: int,
    focus_ms: Iterable[int] = (),
    max_frames: int | None = None,
) -> list[int]:
    """The indices of the frames to check among ``total``: one in ``every``, and one in
    ``every / FOCUS_DENSITY`` within ``FOCUS_MS`` of each of ``focus_ms``. Over
    ``max_frames`` they are thinned evenly along the list, so focus stretches stay
    denser than the rest."""
    rate = fps if math.isfinite(fps) and fps > 0 else 30.0
    chosen = set(range(0, total, every))
    step = max(1, every // FOCUS_DENSITY)
    reach = round(FOCUS_MS / 1000 * rate)
    for time_ms in focus_ms:
        centre = round(time_ms / 1000 * rate)
        chosen.update(range(max(0, centre - reach), min(total, centre + reach + 1), step))
    frames = sorted(chosen)
    if max_frames is not None and len(frames) > max_frames:
        picks = np.unique(np.linspace(0, len(frames) - 1, max_frames).round().astype(np.int64))
        frames = [frames[i] for i in picks]
    return frames


@dataclass
class _Sighting:
    """Consecutive sightings of one face, linked across sampled frames."""

    first_ms: int
    last_ms: int
    last_box: FloatArray
    best_box: FloatArray
    best_score: float
    frames: int = 1
    path: list[tuple[int, FloatArray]] = field(default_factory=list)

    def matches(self, box: FloatArray, time_ms: int, link_ms: float) -> float:
        """How well ``box`` at ``time_ms`` continues this face: 0 (not at all) to 2."""
        if time_ms - self.last_ms > link_ms:
            return 0.0
        last_h = float(self.last_box[3] - self.last_box[1])
        new_h = float(box[3] - box[1])
        if max(last_h, new_h) > _LINK_SIZE * max(1.0, min(last_h, new_h)):
            return 0.0
        iou = float(box_iou(self.last_box[None], box[None])[0, 0])
        shift = (box[:2] + box[2:]) / 2 - (self.last_box[:2] + self.last_box[2:]) / 2
        reach = max(last_h, new_h, 1.0) * (1.0 + _LINK_SPEED * (time_ms - self.last_ms) / 1000)
        near = max(0.0, 1.0 - float(np.hypot(*shift)) / reach)
        return iou + near if iou >= _LINK_IOU or near > 0 else 0.0

    def add(self, box: FloatArray, score: float, time_ms: int) -> None:
        self.last_ms, self.last_box = time_ms, box
        self.frames += 1
        self.path.append((time_ms, box))
        if score > self.best_score:
            self.best_score, self.best_box = score, box


def _link(
    sightings: list[_Sighting], found: Detections, time_ms: int, link_ms: float, since_ms: int
) -> None:
    """Add the detections of one checked frame to ``sightings``: each continues the face
    it matches best (one detection per face and frame) or starts a new one. Sightings
    last seen before ``since_ms`` (a cut) are over."""
    taken = {n for n, sighting in enumerate(sightings) if sighting.last_ms < since_ms}
    for i in np.argsort(-found.confidence, kind="stable"):
        box, score = found.xyxy[i], float(found.confidence[i])
        best, best_match = None, 0.0
        for n, sighting in enumerate(sightings):
            if n in taken:
                continue
            match = sighting.matches(box, time_ms, link_ms)
            if match > best_match:
                best, best_match = n, match
        if best is None:
            sightings.append(_Sighting(time_ms, time_ms, box, box, score, path=[(time_ms, box)]))
            taken.add(len(sightings) - 1)
        else:
            sightings[best].add(box, score, time_ms)
            taken.add(best)


def audit_video(
    path: str | Path,
    *,
    every: int = 5,
    focus_ms: Sequence[int] = (),
    max_frames: int | None = None,
    sweep: int | None = None,
    progress: Progress | None = None,
    device: str = "cpu",
    detector: AuditDetector | None = None,
    start_ms: int | None = None,
) -> AuditResult:
    """Look for faces still recognisable in the video at ``path``.

    Every frame is decoded; the detector checks one in ``every`` (1 = all), and one in
    ``every / FOCUS_DENSITY`` within ``FOCUS_MS`` of each of ``focus_ms`` (ms: where
    tracks start and end, ``track_edges``). ``max_frames`` caps the frames checked:
    sampling thins out evenly to fit (for a video whose frame count cannot be known
    before decoding, checking stops at the cap). ``sweep``: besides those, one frame in
    ``sweep`` (every frame whose index is a multiple of it) is checked at
    ``SWEEP_SCALE``, uncapped, so no face of 32 px or more stays visible for ``sweep``
    frames unchecked. ``progress`` gets (frames decoded, frames expected).
    ``detector`` replaces the default ``AuditDetector(device=device)``, for the sweep
    too (by default ``AuditDetector(scale=SWEEP_SCALE)``). ``start_ms``: the time the first frame has in
    a longer video this one is a piece of (a segment's, written from time 0):
    ``focus_ms`` and the findings are in that video's time. Raises ``InputError`` for a
    video that cannot be read, ``OptionError`` for bad options.
    """
    if every < 1:
        raise OptionError(f"every must be 1 or more, got {every}")
    if max_frames is not None and max_frames < 1:
        raise OptionError(f"max frames must be 1 or more, got {max_frames}")
    if sweep is not None and sweep < 1:
        raise OptionError(f"sweep must be 1 or more, got {sweep}")
    checker = detector or AuditDetector(device=device)
    sweeper = None if sweep is None else detector or AuditDetector(scale=SWEEP_SCALE, device=device)
    with VideoReader(path) as reader:
        info = reader.info
        fps = info.fps if math.isfinite(info.fps) and info.fps > 0 else 30.0
        expected = info.frame_count or (round(info.duration * fps) or None)
        # Frame times in the whole video's clock: this file's own, or moved to start_ms.
        origin = 0 if start_ms is None else start_ms
        plan = (
            set(
                planned_frames(
                    expected,
                    fps,
                    every=every,
                    focus_ms=[t - origin for t in focus_ms],
                    max_frames=max_frames,
                )
            )
            if expected
            else None
        )
        checks = len(plan) if plan is not None else max(1, (expected or 0) // every)
        if sweep is not None:
            checks += (expected or 0) // sweep
        # Checked frames this far apart (or closer) may show the same face.
        link_ms = max(LINK_MS, 2.0 * (expected or every) / max(1, checks) * 1000 / fps)
        focus = sorted(focus_ms)
        sightings: list[_Sighting] = []
        shift: int | None = None if start_ms is not None else 0
        checked = fine = decoded = 0
        # A cut ends every sighting: a face in the next shot where one was is another face.
        change, last_cut_ms = PictureChange(), 0
        for item in reader:
            if not isinstance(item, DecodedFrame):
                continue  # audio and other streams
            decoded += 1
            if shift is None:
                shift = origin - item.time_ms
            time_ms = item.time_ms + shift
            if change(item.grey()) > CUT_CHANGE:
                last_cut_ms = time_ms
            if _wanted(item.index, time_ms, plan, expected, every, focus) and (
                max_frames is None or fine < max_frames
            ):
                checked, fine = checked + 1, fine + 1
                found = checker.detect_frame(item.rgb())
                _link(sightings, found, time_ms, link_ms, last_cut_ms)
            elif sweeper is not None and item.index % (sweep or 1) == 0:
                checked += 1
                found = sweeper.detect_frame(item.rgb())
                _link(sightings, found, time_ms, link_ms, last_cut_ms)
            if progress is not None:
                progress(decoded, expected)
    digits = ratio_digits(info.width, info.height)
    findings = [
        Finding(
            start_ms=s.first_ms,
            end_ms=s.last_ms,
            frames=s.frames,
            box=_ratios(s.best_box, info.width, info.height, digits),
            score=round(s.best_score, 3),
            sightings=tuple(
                (at, _ratios(box, info.width, info.height, digits))
                for at, box in thinned(s.path, MAX_SIGHTINGS)
            ),
        )
        for s in sorted(sightings, key=lambda s: (s.first_ms, float(s.best_box[0])))
    ]
    settings = {
        **checker.settings,
        "every": every,
        "focus_points": len(focus),
        "focus_window_ms": FOCUS_MS,
        "max_frames": max_frames,
        "sweep": sweep,
        "sweep_scale": sweeper.centerface.scale if sweeper is not None else None,
    }
    return AuditResult(findings, checked, decoded, settings)


def findings_on_one_frame(found: Detections, width: int, height: int) -> list[Finding]:
    """The findings of a picture's one check (a photo's), at time 0."""
    digits = ratio_digits(width, height)
    findings = []
    for box, score in zip(found.xyxy, found.confidence, strict=True):
        ratios = _ratios(box, width, height, digits)
        findings.append(Finding(0, 0, 1, ratios, round(float(score), 3), ((0, ratios),)))
    return sorted(findings, key=lambda f: f.box[0])


def _wanted(
    index: int,
    time_ms: int,
    plan: set[int] | None,
    expected: int | None,
    every: int,
    focus: Sequence[int],
) -> bool:
    """Whether frame ``index`` (at ``time_ms``) is one to check: in the plan, or, past
    the frames the plan covers (a frame count that was only an estimate), by the same
    rule on the fly."""
    if plan is not None and expected is not None and index < expected:
        return index in plan
    step = max(1, every // FOCUS_DENSITY)
    near_focus = any(abs(time_ms - t) <= FOCUS_MS for t in focus)
    return index % (step if near_focus else every) == 0


def _ratios(
    box: FloatArray, width: int, height: int, digits: int
) -> tuple[float, float, float, float]:
    x1, y1, x2, y2 = (float(v) for v in box)
    return (
        round(x1 / width, digits),
        round(y1 / height, digits),
        round((x2 - x1) / width, digits),
        round((y2 - y1) / height, digits),
    )


def track_edges(faces_path: str | Path) -> list[int]:
    """The times (ms) where the tracks of a faces.json start and end, sorted: where a
    face is most likely to show before its box does, or after it is gone. Entries
    without a ``TrackId`` (boxes added by hand) are not tracks and add nothing. Raises
    ``FacesFileError`` for a file that is not a faces.json."""
    spans: dict[int, tuple[int, int]] = {}
    for time_ms, detections in read_faces(faces_path, 1, 1):
        for track in detections.track_id.tolist():
            if track < 0:
                continue
            first, last = spans.get(track, (time_ms, time_ms))
            spans[track] = (min(first, time_ms), max(last, time_ms))
    return sorted({edge for span in spans.values() for edge in span})


class Sampling(TypedDict):
    """``audit_video``'s sampling keywords: pass as ``audit_video(path, **sampling)``."""

    every: int
    max_frames: int
    sweep: int


def service_sampling(frame_count: int, fps: float) -> Sampling:
    """The ``audit_video`` keyword arguments (``sweep``, ``every``, ``max_frames``) that
    keep an audit within ``AUDIT_SHARE`` (about 25%) of a service job's time.

    Decoding every frame costs about ``_DECODE_SHARE`` (9%) of the blur job. The sweep
    checks one frame a second (``SWEEP_SECONDS``) at scale 1, about ``_SWEEP_COST``
    (4.5) blurred frames each: 15% at 30 fps, 7.5% at 60. What is left pays for fine
    checks (scale 2, faces from 16 px) at ``_CHECK_COST`` (16) blurred frames each:
    ``max_frames``, about one frame in 1,600 at 30 fps (one in 190 at 60), spread by
    ``every`` and gathered near track edges (``planned_frames`` thins evenly). A video
    under a few minutes would get fewer than ``_MIN_CHECKS`` (5) fine checks: it gets
    one every 2 s up to that many instead (about 45% of a 10 s video's blur time, a few
    seconds at most). Measured with ``bench/audit_rates.py --timing``."""
    if frame_count < 1:
        return {"every": 1, "max_frames": 1, "sweep": 1}
    rate = fps if math.isfinite(fps) and fps > 0 else 30.0
    sweep = max(1, math.floor(rate * SWEEP_SECONDS))
    sweep_share = _SWEEP_COST / sweep
    budget = math.floor(frame_count * (AUDIT_SHARE - _DECODE_SHARE - sweep_share) / _CHECK_COST)
    floor = min(_MIN_CHECKS, math.ceil(frame_count / rate / _MIN_CHECK_SECONDS))
    checks = min(frame_count, max(1, budget, floor))
    return {"every": max(1, frame_count // checks), "max_frames": checks, "sweep": sweep}


def join_audits(audits: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The audits (``AuditResult.to_json``) of a video's consecutive pieces, each made
    with ``audit_video(..., start_ms=)`` so that its times are the whole video's, as the
    audit of the whole video. A finding that goes on across a seam (the next piece's
    finding begins within ``LINK_MS`` of the end of one of the piece before, where that
    face could have moved: ``_continues``) is one finding."""
    findings: list[dict[str, Any]] = []
    for audit in audits:
        ending = list(findings)
        for finding in audit["findings"]:
            before = next((f for f in ending if _continues(f, finding)), None)
            if before is None:
                findings.append(dict(finding))
                continue
            ending.remove(before)
            better = finding if finding["score"] > before["score"] else before
            before.update(
                end_ms=finding["end_ms"],
                frames=before["frames"] + finding["frames"],
                box=better["box"],
                score=better["score"],
                sightings=thinned(
                    [*before.get("sightings", []), *finding.get("sightings", [])], MAX_SIGHTINGS
                ),
            )
    findings.sort(key=lambda f: (f["start_ms"], f["box"]["left"]))
    first = audits[0]["settings"] if audits else {}
    joined = {
        "passed": not findings,
        "frames_checked": sum(a["frames_checked"] for a in audits),
        "frames_total": sum(a["frames_total"] for a in audits),
        "settings": {
            **first,
            "every": [a["settings"].get("every") for a in audits],
            "focus_points": sum(a["settings"].get("focus_points", 0) for a in audits),
            "pieces": len(audits),
        },
        "findings": findings,
    }
    return {**joined, "coverage": coverage(joined), "verdict": verdict(joined)}


def _continues(before: dict[str, Any], after: dict[str, Any]) -> bool:
    """Whether finding ``after`` (of a piece) goes on from ``before`` (of the one before):
    it begins within ``LINK_MS`` of ``before``'s end, its box about as tall, as near
    ``before``'s best box as a face moves (``_LINK_SPEED``) since ``before`` began. In
    box sizes, as frame sizes are not known here."""
    if not 0 <= after["start_ms"] - before["end_ms"] <= LINK_MS:
        return False
    one, two = before["box"], after["box"]
    if max(one["height"], two["height"]) > _LINK_SIZE * min(one["height"], two["height"]):
        return False
    width = max(one["width"], two["width"], 1e-6)
    height = max(one["height"], two["height"], 1e-6)
    dx = (two["left"] + two["width"] / 2 - one["left"] - one["width"] / 2) / width
    dy = (two["top"] + two["height"] / 2 - one["top"] - one["height"] / 2) / height
    seconds = (after["start_ms"] - before["start_ms"]) / 1000
    return bool(math.hypot(dx, dy) <= 1.0 + _LINK_SPEED * seconds)
