"""Write constraints.txt: the exact version of every package veil[dev] needs, as installed.

    python3 scripts/lock.py            # write constraints.txt from this environment
    python3 scripts/lock.py --check    # exit 1 if this environment differs from it

``scripts/test`` (and so CI) installs with ``-c constraints.txt``, so a green run says
which versions it used. ``scripts/upgrade`` moves the file forward on purpose: it
upgrades everything, rewrites the file with this script, and runs the suite and the bench.
"""

from __future__ import annotations

import argparse
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "constraints.txt"
HEADER = (
    "# Every package `pip install -e '.[dev]'` installs, at the version the suite last\n"
    "# passed with. Written by scripts/lock.py; moved forward by scripts/upgrade.\n"
)


def pinned(root: str = "veil", extras: tuple[str, ...] = ("dev",)) -> dict[str, str]:
    """Name -> installed version of every distribution ``root[extras]`` needs, transitively
    (markers evaluated for this interpreter and platform); ``root`` itself left out."""
    found: dict[str, str] = {}
    todo: list[tuple[str, frozenset[str]]] = [(root, frozenset(extras))]
    seen: set[tuple[str, frozenset[str]]] = set()
    while todo:
        name, wanted = todo.pop()
        if (canonicalize_name(name), wanted) in seen:
            continue
        seen.add((canonicalize_name(name), wanted))
        dist = metadata.distribution(name)
        if canonicalize_name(name) != canonicalize_name(root):
            found[canonicalize_name(name)] = dist.version
        for line in dist.requires or []:
            requirement = Requirement(line)
            marker = requirement.marker
            if marker is not None and not any(
                marker.evaluate({"extra": extra}) for extra in (wanted or {""})
            ):
                continue
            todo.append((requirement.name, frozenset(requirement.extras)))
    return found


def text() -> str:
    return HEADER + "".join(f"{name}=={version}\n" for name, version in sorted(pinned().items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    if args.check:
        if LOCK.read_text() != text():
            sys.exit("this environment differs from constraints.txt: run scripts/lock.py")
        return
    LOCK.write_text(text())
    print(f"wrote {LOCK.relative_to(ROOT)}: {len(pinned())} packages")


if __name__ == "__main__":
    main()
