"""How often the detector finds a face on a single frame, by face size and model precision.

Usage::

    python bench/hit_rates.py                 # 720p frames, sizes 16 px to 95% of the height
    python bench/hit_rates.py --height 2160   # the same on 4K frames
    python bench/hit_rates.py --scale 2,1.5   # what a finer level's scale buys

For each face height, each of the three package photos is pasted at ``--positions``
places on a ``--height`` frame (16:9) and the default detector (the tiled pyramid at
``--scale 2``, or at each ``--scale``) looks once. A hit is a box scored at the default
threshold (0.2) whose centre lies inside the face and which is at least half the face's
height (a close-up's eye region alone does not count). The tracker carries a face
across single misses, so what matters is that a size is found on most frames with both
models.
"""

from __future__ import annotations

import argparse

import numpy as np

from veil.detector import CenterFace, cpu_instruction_sets
from veil.synthetic import MovingFace, Scene


def hit_rate(detector: CenterFace, width: int, height: int, face: float, positions: int) -> float:
    rng = np.random.default_rng(7)
    hits = trials = 0
    margin = min(0.45, face / height / 2 + 0.02)
    for photo in ("astronaut", "grace_hopper", "cameraman"):
        for _ in range(positions):
            x, y = (
                rng.uniform(margin * height / width, 1 - margin * height / width),
                rng.uniform(margin, 1 - margin),
            )
            scene = Scene(
                width=width,
                height=height,
                frames=1,
                faces=(MovingFace(photo=photo, height=face, start=(x, y)),),
            )
            frame, truth, _ = scene.render(0)
            found = detector.detect_frame(frame)
            found = found[found.confidence >= 0.2]
            x1, y1, x2, y2 = truth[0]
            cx = (found.xyxy[:, 0] + found.xyxy[:, 2]) / 2
            cy = (found.xyxy[:, 1] + found.xyxy[:, 3]) / 2
            whole = found.height >= 0.5 * (y2 - y1)
            hits += bool(((cx > x1) & (cx < x2) & (cy > y1) & (cy < y2) & whole).any())
            trials += 1
    return hits / trials


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--positions", type=int, default=6)
    parser.add_argument(
        "--scale",
        type=lambda text: [float(v) for v in text.split(",")],
        default=[2.0],
        help="the finest level's scale, or several, comma-separated (default 2)",
    )
    args = parser.parse_args()
    height = args.height
    width = height * 16 // 9
    sizes = [16, 20, 24, 32, 48, 64, 96, 128, 192, 256]
    sizes += [round(f * height) for f in (0.5, 0.7, 0.95)]
    detectors = {
        f"{p} at {scale:g}": CenterFace(threshold=0.05, scale=scale, precision=p)
        for scale in args.scale
        for p in ("int8", "fp32")
    }
    print(f"{width}x{height}, {3 * args.positions} faces per size, threshold 0.2")
    print(f"cpu int8 instruction sets: {', '.join(cpu_instruction_sets()) or 'none found'}")
    print("| face height px | " + " | ".join(detectors) + " |")
    print("| ---: | " + " | ".join("---:" for _ in detectors) + " |")
    for face in sorted(set(sizes)):
        if face > 0.95 * height:
            continue
        rates = [hit_rate(d, width, height, face, args.positions) for d in detectors.values()]
        print(f"| {face} | " + " | ".join(f"{r:.2f}" for r in rates) + " |")


if __name__ == "__main__":
    main()
