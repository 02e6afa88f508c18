"""How often ``veil audit`` finds a face that is there, and how often it finds one in veil's
own outputs, where every face is hidden.

Usage::

    python bench/audit_rates.py            # hit rates by face size, false findings by mode
    python bench/audit_rates.py --timing   # what one checked frame costs against veil blur

For each face height, a 640x360 clip of ``--frames`` frames shows three faces of that
height (the three package photos), drifting. On the clip as written (unblurred), the
audit's detector (``AuditDetector``) checks every third frame: a face-frame is *hit*
when a reported box has its centre inside the face and is at least half its height; a
face is *found* when ``audit_video`` (defaults: one frame in 5) lists a finding on it.
Then the clip goes through ``veil blur`` in every mode and ``audit_video`` runs on each
output: any finding there is a false one. The benchmark scenes (``demo_scene``,
``action_scene``, ``closeup_scene`` at 640x360: faces from 8 to 190 px, motion blur,
cuts, close-ups) get the same treatment. The same, with ``--contrast 0.35``, on
pictures squeezed to a third of their contrast before encoding (a dim room).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from veil.anonymizers import MODES
from veil.audit import AuditDetector, audit_video, service_sampling
from veil.detector import CenterFace
from veil.pipeline import BlurOptions, blur_video
from veil.synthetic import (
    Boxes,
    Frame,
    MovingFace,
    Scene,
    action_scene,
    closeup_scene,
    demo_scene,
    write_video,
)
from veil.video import DecodedFrame, VideoReader

SIZES = (16, 24, 32, 48, 64, 96, 128, 192)


@dataclass(frozen=True, kw_only=True)
class Dimmed(Scene):
    """A scene whose pictures keep ``contrast`` of their range, around mid-grey."""

    contrast: float = 1.0

    def render(self, index: int) -> tuple[Frame, Boxes, list[int]]:
        frame, boxes, ids = super().render(index)
        if self.contrast != 1.0:
            frame = np.clip((frame.astype(np.float32) - 128) * self.contrast + 128, 0, 255)
            frame = frame.astype(np.uint8)
        return frame, boxes, ids


def size_scene(face: float, frames: int, contrast: float) -> Scene:
    return Dimmed(
        width=640,
        height=360,
        frames=frames,
        contrast=contrast,
        faces=(
            MovingFace(photo="astronaut", height=face, start=(0.2, 0.35), end=(0.25, 0.4)),
            MovingFace(photo="grace_hopper", height=face, start=(0.5, 0.6), end=(0.52, 0.55)),
            MovingFace(photo="cameraman", height=face, start=(0.8, 0.4), end=(0.75, 0.45)),
        ),
    )


def dimmed(scene: Scene, contrast: float) -> Scene:
    return Dimmed(
        width=scene.width,
        height=scene.height,
        frames=scene.frames,
        fps=scene.fps,
        faces=scene.faces,
        cuts=scene.cuts,
        contrast=contrast,
    )


def face_frames_hit(
    path: Path, scene: Scene, detector: AuditDetector, step: int
) -> tuple[int, int, Counter[int]]:
    """(face-frames hit, face-frames checked, heights of the faces missed, rounded) on
    every ``step``-th frame of ``path``."""
    hits = total = 0
    missed: Counter[int] = Counter()
    with VideoReader(path) as reader:
        for frame in reader:
            if not isinstance(frame, DecodedFrame) or frame.index % step:
                continue
            found = detector.detect_frame(frame.rgb())
            _, truth, _ = scene.render(frame.index)
            cx = (found.xyxy[:, 0] + found.xyxy[:, 2]) / 2
            cy = (found.xyxy[:, 1] + found.xyxy[:, 3]) / 2
            for x1, y1, x2, y2 in truth:
                inside = (cx > x1) & (cx < x2) & (cy > y1) & (cy < y2)
                hit = bool((inside & (found.height >= 0.5 * (y2 - y1))).any())
                hits += hit
                total += 1
                if not hit:
                    missed[int(round(float(y2 - y1), -1) if y2 - y1 >= 20 else y2 - y1)] += 1
    return hits, total, missed


def faces_found(path: Path, scene: Scene, detector: AuditDetector) -> tuple[int, int]:
    """(faces with a finding on them, faces in the scene), ``audit_video`` at its defaults."""
    result = audit_video(path, detector=detector)
    found = set()
    for finding in result.findings:
        left, top, width, height = finding.box
        cx, cy = (left + width / 2) * scene.width, (top + height / 2) * scene.height
        for ms in range(finding.start_ms, finding.end_ms + 1, max(1, 1000 // scene.fps)):
            _, truth, ids = scene.render(min(scene.frames - 1, round(ms * scene.fps / 1000)))
            for (x1, y1, x2, y2), face in zip(truth, ids, strict=True):
                margin = 0.5 * (y2 - y1)
                if x1 - margin <= cx <= x2 + margin and y1 - margin <= cy <= y2 + margin:
                    found.add(face)
    return len(found), len(scene.faces)


def false_findings(
    src: Path, folder: Path, detector: AuditDetector, blur_detector: CenterFace
) -> dict[str, int]:
    """Findings of ``audit_video`` (defaults) on veil blur's output in each mode."""
    counts = {}
    for mode in MODES:
        out = folder / f"{src.stem}.{mode}.mp4"
        blur_video(src, out, BlurOptions(mode=mode), detector=blur_detector)
        counts[mode] = len(audit_video(out, detector=detector).findings)
    return counts


def rates(frames: int, contrast: float) -> None:
    detector = AuditDetector()
    blur_detector = BlurOptions().detector()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        print(
            f"640x360, {frames} frames, contrast {contrast:g}; face-frames checked every 3rd frame"
        )
        print(
            "| face height px | face-frames hit | faces found | findings on outputs ("
            + ", ".join(MODES)
            + ") |"
        )
        print("| ---: | ---: | ---: | --- |")
        for size in SIZES:
            scene = size_scene(size, frames, contrast)
            src = write_video(folder / f"face{size}.mp4", scene, audio=False).path
            hit, checked, _ = face_frames_hit(src, scene, detector, 3)
            found, faces = faces_found(src, scene, detector)
            false = false_findings(src, folder, detector, blur_detector)
            print(
                f"| {size} | {hit}/{checked} | {found}/{faces} | "
                + ", ".join(str(false[m]) for m in MODES)
                + " |"
            )
        print()
        print(
            "| scene | face-frames hit | faces found | findings on outputs ("
            + ", ".join(MODES)
            + ") |"
        )
        print("| --- | ---: | ---: | --- |")
        for name, make in (
            ("demo", demo_scene),
            ("action", action_scene),
            ("closeup", closeup_scene),
        ):
            scene = dimmed(make(640, 360, 60), contrast)
            src = write_video(folder / f"{name}.mp4", scene, audio=False).path
            hit, checked, missed = face_frames_hit(src, scene, detector, 3)
            found, faces = faces_found(src, scene, detector)
            false = false_findings(src, folder, detector, blur_detector)
            misses = ", ".join(f"{n} at {h} px" for h, n in sorted(missed.items()))
            print(
                f"| {name} | {hit}/{checked} | {misses or '-'} | {found}/{faces} | "
                + ", ".join(str(false[m]) for m in MODES)
                + " |"
            )


def timing(frames: int) -> None:
    """Seconds per frame of veil blur, of decoding alone, and of one audit check, at 720p."""
    detector = AuditDetector()
    with tempfile.TemporaryDirectory() as tmp:
        src = write_video(Path(tmp) / "demo.mp4", demo_scene(1280, 720, frames)).path
        start = time.perf_counter()
        blur_video(src, Path(tmp) / "out.mp4")
        blur = (time.perf_counter() - start) / frames
        start = time.perf_counter()
        with VideoReader(src) as reader:
            pictures = [
                f.rgb() for f in reader if isinstance(f, DecodedFrame) and f.index % 10 == 0
            ]
        decode = (time.perf_counter() - start) / frames  # an upper bound: some frames made RGB
        start = time.perf_counter()
        for picture in pictures:
            detector.detect_frame(picture)
        check = (time.perf_counter() - start) / len(pictures)
        sampling = service_sampling(frames * 20, 30.0)
        start = time.perf_counter()
        audit_video(src, **service_sampling(frames, 30.0), detector=detector)
        audit = (time.perf_counter() - start) / frames
    print(f"1280x720 demo, {frames} frames")
    print(f"veil blur (defaults): {blur * 1000:.1f} ms a frame")
    print(f"decode only: {decode * 1000:.1f} ms a frame ({decode / blur:.0%} of blur)")
    print(f"one audit check: {check * 1000:.0f} ms ({check / blur:.1f} blurred frames)")
    print(
        f"audit_video at service_sampling({frames}): {audit * 1000:.1f} ms a frame "
        f"({audit / blur:.0%} of blur; short clips are held to a check a second)"
    )
    print(f"service_sampling({frames * 20} frames, 30 fps) = {sampling}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--contrast", type=float, default=1.0)
    parser.add_argument("--timing", action="store_true")
    args = parser.parse_args()
    if args.timing:
        timing(max(args.frames, 60))
    else:
        rates(args.frames, args.contrast)


if __name__ == "__main__":
    main()
