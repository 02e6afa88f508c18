"""How often ``veil audit`` finds a face that is there, and how often it finds one in veil's
own outputs, where every face is hidden.

Usage::

    python bench/audit_rates.py            # hit rates by face size, false findings by mode
    python bench/audit_rates.py --timing   # what one checked frame costs against veil blur
    python bench/audit_corpus.py           # the service audit's error rates on the corpus

For each face height, a 640x360 clip of ``--frames`` frames shows three faces of that
height (the three package photos), drifting. On the clip as written (unblurred), the
audit's detector (``AuditDetector``) checks every third frame: a face-frame is *hit*
when a reported box has its centre inside the face and is at least half its height; a
face is *found* when it is hit on one of the frames ``audit_video`` checks by default
(one in 5). ``audit_video`` itself links the hits into findings (a face that leaves
and a new one where it was can make one finding).
Then the clip goes through ``veil blur`` in every mode and ``audit_video`` runs on each
output: any finding there is a false one. The benchmark scenes (``demo_scene``,
``action_scene``, ``closeup_scene`` at 640x360: faces from 8 to 340 px, motion blur,
cuts, close-ups) get the same treatment. The same, with ``--contrast 0.35``, on
pictures squeezed to a third of their contrast before encoding (a dim room).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from veil.anonymizers import MODES
from veil.audit import SWEEP_SCALE, AuditDetector, audit_video, service_sampling
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


@dataclass
class Hits:
    """What the audit's detector found on an unblurred clip."""

    face_frames: int = 0
    """Face-frames hit, of ``checked`` (every third frame)."""
    checked: int = 0
    missed: Counter[int] = field(default_factory=Counter)
    """Heights of the face-frames missed (rounded to 10 px from 20 px)."""
    faces: set[int] = field(default_factory=set)
    """Faces hit on at least one of the frames ``audit_video`` checks by default (one in 5)."""


def hits_on(path: Path, scene: Scene, detector: AuditDetector) -> Hits:
    """A hit: a reported box whose centre lies in the face and which is at least half
    its height."""
    hits = Hits()
    with VideoReader(path) as reader:
        for frame in reader:
            if not isinstance(frame, DecodedFrame) or (frame.index % 3 and frame.index % 5):
                continue
            found = detector.detect_frame(frame.rgb())
            _, truth, ids = scene.render(frame.index)
            cx = (found.xyxy[:, 0] + found.xyxy[:, 2]) / 2
            cy = (found.xyxy[:, 1] + found.xyxy[:, 3]) / 2
            for (x1, y1, x2, y2), face in zip(truth, ids, strict=True):
                inside = (cx > x1) & (cx < x2) & (cy > y1) & (cy < y2)
                hit = bool((inside & (found.height >= 0.5 * (y2 - y1))).any())
                if frame.index % 5 == 0 and hit:
                    hits.faces.add(face)
                if frame.index % 3 == 0:
                    hits.face_frames += hit
                    hits.checked += 1
                    if not hit:
                        height = float(y2 - y1)
                        hits.missed[int(round(height, -1) if height >= 20 else height)] += 1
    return hits


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
    modes = ", ".join(MODES)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        print(f"640x360, {frames} frames, contrast {contrast:g}")
        print(
            "| face height px | face-frames hit | faces found | findings on the input "
            f"| findings on veil's outputs ({modes}) |"
        )
        print("| ---: | ---: | ---: | ---: | --- |")
        for size in SIZES:
            scene = size_scene(size, frames, contrast)
            src = write_video(folder / f"face{size}.mp4", scene, audio=False).path
            print(row(str(size), src, scene, detector, blur_detector, misses=False))
        print()
        print(
            "| scene | face-frames hit | face-frames missed (face height) | faces found "
            f"| findings on the input | findings on veil's outputs ({modes}) |"
        )
        print("| --- | ---: | --- | ---: | ---: | --- |")
        for name, make in (
            ("demo", demo_scene),
            ("action", action_scene),
            ("closeup", closeup_scene),
        ):
            scene = dimmed(make(640, 360, 60), contrast)
            src = write_video(folder / f"{name}.mp4", scene, audio=False).path
            print(row(name, src, scene, detector, blur_detector, misses=True))


def row(
    name: str,
    src: Path,
    scene: Scene,
    detector: AuditDetector,
    blur_detector: CenterFace,
    *,
    misses: bool,
) -> str:
    hits = hits_on(src, scene, detector)
    findings = len(audit_video(src, detector=detector).findings)
    false = false_findings(src, src.parent, detector, blur_detector)
    cells = [name, f"{hits.face_frames}/{hits.checked}"]
    if misses:
        cells.append(", ".join(f"{n} at {h} px" for h, n in sorted(hits.missed.items())) or "-")
    cells += [f"{len(hits.faces)}/{len(scene.faces)}", str(findings)]
    cells.append(", ".join(str(false[m]) for m in MODES))
    return "| " + " | ".join(cells) + " |"


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
        sweeper = AuditDetector(scale=SWEEP_SCALE)
        start = time.perf_counter()
        for picture in pictures:
            sweeper.detect_frame(picture)
        sweep = (time.perf_counter() - start) / len(pictures)
        sampling = service_sampling(frames * 20, 30.0)
        start = time.perf_counter()
        audit_video(src, **service_sampling(frames, 30.0), detector=detector)
        audit = (time.perf_counter() - start) / frames
    print(f"1280x720 demo, {frames} frames")
    print(f"veil blur (defaults): {blur * 1000:.1f} ms a frame")
    print(f"decode only: {decode * 1000:.1f} ms a frame ({decode / blur:.0%} of blur)")
    print(f"one fine check: {check * 1000:.0f} ms ({check / blur:.1f} blurred frames)")
    print(f"one sweep check: {sweep * 1000:.0f} ms ({sweep / blur:.1f} blurred frames)")
    print(
        f"audit_video at service_sampling({frames}): {audit * 1000:.1f} ms a frame "
        f"({audit / blur:.0%} of blur; a short clip gets a fine check every 2 s, up to 5)"
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
