"""Photos: a picture in, the same picture with every face hidden out, and nothing else of
the input carried over that could show or name a person.

A picture hides more than its pixels show. A JPEG from a phone or camera carries a second,
smaller copy of itself in its EXIF (the thumbnail file browsers show) and often a larger
preview after it (an MPF picture: Pillow reads such files as ``MPO``); HEIC files carry a
thumbnail item; XMP can embed a preview. Each holds the faces unblurred. Its metadata
names where and by whom it was taken (GPS, serial numbers, owner and artist, maker notes)
and who is in it (XMP and IPTC people tags and face regions).

So veil never edits a picture: it decodes the pixels, hides the faces on them, and writes
a new file from the pixels alone (``save_photo``). Nothing of the input is copied but its
colour profile (ICC: without it colours shift) and resolution; with ``keep_metadata`` also
its EXIF and XMP, still without a thumbnail, preview or orientation (the pixels are turned
upright instead). What the output lacks is listed by name, never by value
(``RemovedMetadata``: tags, and the hidden pictures as "streams").

Reading (``open_photo``) checks the header before any pixel is decoded: a format veil
writes back (``PHOTO_FORMATS``), at most ``MAX_PHOTO_PIXELS`` (a decompression bomb is a
small file claiming a huge size), one picture (animated GIF, WebP and PNG, and TIFFs of
several pages, are refused; an MPO's later pictures are previews and are dropped).

A photo gets one look where a video frame has tracking before and after it, so the look
costs more (``find_faces``): the detector's pyramid at twice the video's scale (4, its
finest, by default), on the picture and on its mirror image; a face is kept
when either look scores it at the threshold, or both at half of it.
"""

from __future__ import annotations

import contextlib
import io
import os
import secrets
import warnings
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import cv2
import numpy as np
import numpy.typing as npt
from PIL import ExifTags, Image, ImageCms, ImageOps, JpegImagePlugin, UnidentifiedImageError

from veil.anonymizers import Anonymizer, get_anonymizer
from veil.audit import AUDIT_SCALE, AuditDetector, AuditResult, findings_on_one_frame
from veil.detections import Detections, box_iou
from veil.detector import CenterFace
from veil.errors import (
    FrameSizeError,
    InputAccessError,
    InputNotFoundError,
    NotAPhotoError,
    OutputError,
)
from veil.faces_file import FacesFileWriter, photo_metadata, ratio_digits, read_faces, rounded
from veil.pipeline import BlurOptions
from veil.streams import RemovedMetadata
from veil.thumbnails import Thumbnails

with contextlib.suppress(ImportError):  # HEIC and HEIF, where pillow-heif is installed
    from pillow_heif import register_heif_opener

    register_heif_opener(thumbnails=False)

PHOTO_FORMATS = {
    "JPEG": "JPEG",
    "MPO": "JPEG",  # a JPEG with preview pictures after it (MPF): written as a plain JPEG
    "PNG": "PNG",
    "WEBP": "WEBP",
    "TIFF": "TIFF",
    "BMP": "BMP",
    "GIF": "GIF",
    "HEIF": "HEIF",
    "AVIF": "AVIF",
}
"""Formats veil reads (Pillow's names) → the format it writes them back in."""

PHOTO_EXTENSIONS = (
    ".jpg",
    ".jpeg",
    ".png",
    ".webp",
    ".tif",
    ".tiff",
    ".bmp",
    ".gif",
    ".heic",
    ".heif",
    ".avif",
)

MAX_PHOTO_PIXELS = 150_000_000
"""Largest picture veil processes (150 MP: a 16,000 x 9,000 panorama); checked from the
header before any pixel is decoded. Pillow itself refuses anything past 179 MP as a
decompression bomb."""

PHOTO_SCALE_FACTOR = 2.0
"""A photo is analysed at this many times the video's ``scale`` (capped at 4): one look,
so it looks closer (2 → 4). Measured on group and crowd photos (bench/photos.py): 1.5
(scale 3) left 6 of 159 faces under 24 px visible, 2 left 5, for 1.7 times the time."""

CONFIRM_SHARE = 0.5
"""A face scored at least this share of the threshold by both looks (the picture and its
mirror image) is kept: a weak face seen twice is a face."""

_SAME_FACE_IOU = 0.3

# Channels an anonymizer may average: every one but alpha, which keeps its shape.
_COLOUR_MODES = {"L": 1, "LA": 1, "RGB": 3, "RGBA": 3, "CMYK": 4, "I;16": 1}

Frame = npt.NDArray[Any]


def is_photo_path(path: str | Path) -> bool:
    return Path(path).suffix.lower() in PHOTO_EXTENSIONS


@dataclass
class Photo:
    """A decoded picture, turned upright: ``image`` in one of ``_COLOUR_MODES``;
    ``format`` the one it is written back in; ``source``: what ``save_photo`` keeps of
    the input (ICC profile, resolution, JPEG tables, EXIF and XMP for ``keep_metadata``);
    ``removed``: what the output will lack, by name."""

    path: Path
    image: Image.Image
    format: str
    source: dict[str, Any] = field(default_factory=dict)
    removed: RemovedMetadata = field(default_factory=RemovedMetadata)

    def removed_metadata(self, keep_metadata: bool) -> RemovedMetadata:
        """What an output lacks: everything (``removed``), or with ``keep_metadata`` all
        but the EXIF and XMP it keeps (never a hidden picture, nor the orientation)."""
        if not keep_metadata:
            return self.removed
        xmp = self.source.get("xmp")
        xmp_kept = xmp is not None and _xmp_keepable(_as_bytes(xmp))
        never = {f"EXIF:{ExifTags.TAGS.get(tag, hex(tag))}" for tag in _NEVER_KEPT}

        def kept(tag: str) -> bool:
            if tag.startswith("EXIF:Orientation") or tag in never:
                return False
            return tag.startswith(("EXIF:", "GPS:")) or (xmp_kept and tag.startswith("XMP"))

        dropped = tuple(t for t in self.removed.tags if not kept(t))
        return RemovedMetadata(tags=dropped, streams=self.removed.streams)

    @property
    def width(self) -> int:
        return self.image.width

    @property
    def height(self) -> int:
        return self.image.height

    def rgb(self) -> npt.NDArray[np.uint8]:
        """The picture as 8-bit RGB, what the detector looks at: 16-bit grey stretched
        from its darkest to its brightest value (12-bit data in a 16-bit file would be
        nearly black shifted down), a dithered 1-bit picture smoothed."""
        image = self.image
        if image.mode == "I;16":
            wide = np.asarray(image).astype(np.float32)
            low, high = np.percentile(wide, (0.1, 99.9))
            grey = np.clip((wide - low) * (255 / max(float(high - low), 1.0)), 0, 255)
            return np.repeat(grey.astype(np.uint8)[..., None], 3, axis=2)
        picture = np.asarray(image if image.mode == "RGB" else image.convert("RGB"))
        if self.source.get("bilevel"):
            picture = np.asarray(cv2.GaussianBlur(picture, (0, 0), 1.0), np.uint8)
        return picture


def open_photo(
    path: str | Path,
    *,
    formats: Collection[str] = tuple(PHOTO_FORMATS),
    max_pixels: int = MAX_PHOTO_PIXELS,
) -> Photo:
    """Read a picture: its header checked first (one of ``formats``, Pillow's names; at
    most ``max_pixels``; one picture), then its pixels, turned upright by its EXIF
    orientation. ``NotAPhotoError`` or ``FrameSizeError`` say why not, whatever Pillow
    or a plugin raised."""
    path = Path(path)
    try:
        with warnings.catch_warnings():
            # veil's own limit (checked below) is the one that counts, not Pillow's warning.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            opened = Image.open(path)
    except FileNotFoundError:
        raise InputNotFoundError(path, "no such file") from None
    except PermissionError:
        raise InputAccessError(path, "permission denied: cannot read it") from None
    except IsADirectoryError:
        raise NotAPhotoError(path, "a folder, not a picture") from None
    except Image.DecompressionBombError:
        raise FrameSizeError(path, f"larger than veil processes ({_pixels(max_pixels)})") from None
    except UnidentifiedImageError:
        empty = path.stat().st_size == 0
        raise NotAPhotoError(
            path, "empty file (0 bytes)" if empty else "not a picture (unrecognised format)"
        ) from None
    except Exception as exc:  # a plugin that chokes on a damaged header: see below
        raise NotAPhotoError(path, f"a damaged picture ({_one_line(exc)})") from None
    with opened:
        _check_header(path, opened, formats, max_pixels)
        try:
            return _decoded(path, opened)
        except Exception as exc:
            # Pillow and its plugins say a damaged or truncated file in many ways
            # (OSError, SyntaxError, ValueError, EOFError, libheif's RuntimeError...),
            # from reading metadata as well as pixels: one message for them all.
            raise NotAPhotoError(
                path, f"a damaged or truncated picture ({_one_line(exc)})"
            ) from None


def _pixels(max_pixels: int) -> str:
    return f"pictures up to {max_pixels:,} pixels"


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())[:200] or type(exc).__name__


def _check_header(
    path: Path, opened: Image.Image, formats: Collection[str], max_pixels: int
) -> None:
    """Refuse from the header alone, before a pixel is decoded: a format not taken, too
    many pixels (a small file can claim any size), several pictures."""
    kind = opened.format or ""
    if kind not in PHOTO_FORMATS:
        raise NotAPhotoError(path, f"a {kind or 'picture'} file, which veil does not write")
    if kind not in formats:
        raise NotAPhotoError(path, f"a {kind} picture; this takes {', '.join(formats)}")
    width, height = opened.size
    if width * height > max_pixels:
        raise FrameSizeError(
            path,
            f"{width}x{height} is {width * height:,} pixels, larger than veil processes "
            f"({_pixels(max_pixels)})",
        )
    pictures = getattr(opened, "n_frames", 1)
    if pictures > 1 and kind != "MPO":
        what = "pages" if kind == "TIFF" else "frames"
        raise NotAPhotoError(
            path,
            f"an animated or multi-page picture ({pictures} {what}): veil takes single "
            "pictures; make a video of it first (ffmpeg -i IN OUT.mp4) and blur that",
        )


def _decoded(path: Path, opened: Image.Image) -> Photo:
    kind = opened.format or ""
    removed = inventory(opened, path)
    source = _kept_of(opened)
    if opened.mode == "1":
        source["bilevel"] = True  # dithered: the detector looks at it smoothed
    opened.load()
    ImageOps.exif_transpose(opened, in_place=True)  # one copy of the pixels, not two
    image, source["icc_profile"] = in_srgb(_workable(opened), opened.info.get("icc_profile"))
    return Photo(path, image, PHOTO_FORMATS[kind], source, removed)


def in_srgb(image: Image.Image, profile: object) -> tuple[Image.Image, bytes | None]:
    """``image`` in sRGB, and the sRGB profile to embed, when it came with a colour
    profile (ICC) of its own; as it is, with none, otherwise.

    A profile is not copied: its tags can hold anything (a description naming someone, a
    curve whose values are a small picture), so its colours are applied to the pixels
    instead and LittleCMS's own sRGB profile is written. Wide-gamut pictures (Display
    P3, Adobe RGB) lose their widest colours; CMYK pictures become RGB. A grey picture's
    profile, or one LittleCMS cannot read, is dropped and the pixels are kept as they
    are."""
    if not isinstance(profile, bytes) or not profile or image.mode not in ("RGB", "RGBA", "CMYK"):
        return image, None
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(profile))
        mode = "RGBA" if image.mode == "RGBA" else "RGB"
        converted = ImageCms.profileToProfile(image, source, _SRGB, outputMode=mode)
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return image, None
    assert converted is not None
    return converted, _SRGB_BYTES


_SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
_SRGB_BYTES = _SRGB.tobytes()


def _workable(image: Image.Image) -> Image.Image:
    """``image`` in a mode whose channels can be averaged: palettes become RGB(A), 1-bit
    pictures grey; other 16-bit layouts, 32-bit integer and float pictures 16-bit grey
    (their range stretched to it when it does not fit)."""
    if image.mode in _COLOUR_MODES:
        return image
    if image.mode in ("P", "PA"):
        transparent = image.mode == "PA" or "transparency" in image.info
        return image.convert("RGBA" if transparent else "RGB")
    if image.mode == "1":
        return image.convert("L")
    if image.mode in ("I", "F") or image.mode.startswith("I;16"):
        values = np.asarray(image).astype(np.float64)
        low, high = float(values.min(initial=0)), float(values.max(initial=0))
        if low < 0 or high > 65535 or image.mode == "F":
            values = (values - low) * (65535 / max(high - low, 1e-9))
        wide = np.ascontiguousarray(np.clip(values, 0, 65535).astype(np.uint16))
        return Image.frombytes("I;16", image.size, wide.tobytes())
    return image.convert("RGBA" if "A" in image.getbands() else "RGB")


def _kept_of(image: Image.Image) -> dict[str, Any]:
    """What the output keeps of the input, and how a JPEG was encoded."""
    kept: dict[str, Any] = {}
    if image.info.get("dpi"):
        kept["dpi"] = image.info["dpi"]

    if image.format in ("JPEG", "MPO"):
        with contextlib.suppress(AttributeError, TypeError):
            kept["qtables"] = image.quantization  # type: ignore[attr-defined]
        sampling = JpegImagePlugin.get_sampling(image)
        if sampling != -1:
            kept["subsampling"] = sampling
        kept["progressive"] = bool(image.info.get("progressive") or image.info.get("progression"))
    if image.format == "TIFF":
        kept["compression"] = image.info.get("compression", "raw")
    exif = image.getexif()
    if exif:
        kept["exif"] = exif
    if image.info.get("xmp"):
        kept["xmp"] = image.info["xmp"]
    return kept


# EXIF tags whose values point at other data, not metadata of their own.
_POINTERS = {0x8769, 0x8825, 0xA005, 0x0201, 0x0202, 0x0112}
_PEOPLE_IN_XMP = {
    b"mwg-rs:Regions": "XMP:mwg-rs:Regions (face regions)",
    b"MP:RegionInfo": "XMP:MP:RegionInfo (Microsoft People tags)",
    b"MPRI:Regions": "XMP:MPRI:Regions (Microsoft People tags)",
    b"Iptc4xmpExt:PersonInImage": "XMP:Iptc4xmpExt:PersonInImage",
    b"apple-fi:Regions": "XMP:apple-fi:Regions (Apple face regions)",
}
_PNG_KEYWORDS = frozenset(
    {
        "Title",
        "Author",
        "Description",
        "Copyright",
        "Creation Time",
        "Software",
        "Disclaimer",
        "Warning",
        "Source",
        "Comment",
        "XML:com.adobe.xmp",
    }
)
"""PNG's registered text keywords (its specification's list)."""
_PREVIEWS_IN_XMP = (b"xmpGImg:image", b"xap:Thumbnails", b"xmp:Thumbnails")


def inventory(image: Image.Image, path: Path | None = None) -> RemovedMetadata:
    """Every piece of metadata ``image`` (opened, not yet decoded, from ``path``) carries,
    by name, and the hidden pictures in it: what a picture written from pixels alone
    lacks."""
    tags: set[str] = set()
    pictures: list[str] = []
    exif = image.getexif()
    for tag in exif:
        if tag not in _POINTERS:
            tags.add(f"EXIF:{ExifTags.TAGS.get(tag, hex(tag))}")
    for ifd, prefix, names in (
        (ExifTags.IFD.Exif, "EXIF", ExifTags.TAGS),
        (ExifTags.IFD.GPSInfo, "GPS", ExifTags.GPSTAGS),
        (ExifTags.IFD.Interop, "EXIF", ExifTags.TAGS),
    ):
        with contextlib.suppress(KeyError, ValueError, TypeError, OSError):
            for tag in exif.get_ifd(ifd):
                tags.add(f"{prefix}:{names.get(tag, hex(tag))}")
    if exif.get(0x0112) in range(2, 9):
        tags.add("EXIF:Orientation (applied to the pixels)")
    with contextlib.suppress(KeyError, ValueError, TypeError, OSError):
        if exif.get_ifd(ExifTags.IFD.IFD1):
            pictures.append("EXIF thumbnail")
    if image.format == "MPO":
        count = getattr(image, "n_frames", 1) - 1
        pictures.append(f"MPF preview pictures ({count})")
    if image.format == "HEIF" and path is not None and (count := heif_thumbnails(path)):
        pictures.append(f"HEIF thumbnails ({count})")
    xmp = image.info.get("xmp") or image.info.get("XML:com.adobe.xmp")
    if xmp:
        raw = xmp if isinstance(xmp, bytes) else str(xmp).encode()
        tags.add("XMP")
        tags.update(name for marker, name in _PEOPLE_IN_XMP.items() if marker in raw)
        if any(marker in raw for marker in _PREVIEWS_IN_XMP):
            pictures.append("XMP preview")
    for marker, body in getattr(image, "applist", []):
        if marker == "APP13" and body.startswith(b"Photoshop 3.0"):
            tags.add("IPTC")
    if image.info.get("comment"):
        tags.add("comment")
    if image.format == "PNG":
        # A chunk's keyword is free text too: only the registered ones are named.
        keywords = list(getattr(image, "text", {}))
        tags.update(f"PNG:{key}" for key in keywords if key in _PNG_KEYWORDS)
        others = sum(key not in _PNG_KEYWORDS for key in keywords)
        if others:
            tags.add(f"PNG: {others} other text chunk{'s' if others > 1 else ''}")
    if image.format == "TIFF":
        iptc = getattr(image, "tag_v2", {}).get(33723)
        if iptc:
            tags.add("IPTC")
    return RemovedMetadata(tags=tuple(sorted(tags)), streams=tuple(pictures))


HEIF_META_LIMIT = 16 << 20
"""Most bytes of a HEIF's ``meta`` box read to count its thumbnails (a real one: a few
kilobytes)."""


def heif_thumbnails(path: Path) -> int:
    """How many thumbnail items the HEIF file at ``path`` holds: its ``meta`` box's item
    references of type ``thmb`` (ISO/IEC 23008-12). Pillow-heif, opened without
    thumbnails as veil opens it, lists none."""
    with path.open("rb") as f:
        meta = _box_payload(f, b"meta")
    # Both are full boxes: their version and flags (4 bytes) come before their children.
    iref = _box_payload(io.BytesIO(meta[4:]), b"iref") if meta else None
    if not iref:
        return 0
    count, references = 0, io.BytesIO(iref[4:])
    while (found := _next_box(references)) is not None:
        count += found[0] == b"thmb"
        references.seek(found[1], io.SEEK_CUR)
    return count


def _box_payload(f: BinaryIO, kind: bytes) -> bytes | None:
    """The payload of the first box of type ``kind`` from ``f``'s position on, the boxes
    before it passed over; ``None`` if there is none or it is over ``HEIF_META_LIMIT``."""
    while (found := _next_box(f)) is not None:
        name, size = found
        if name == kind:
            return f.read(size) if size <= HEIF_META_LIMIT else None
        f.seek(size, io.SEEK_CUR)
    return None


def _next_box(f: BinaryIO) -> tuple[bytes, int] | None:
    """The type and payload size of the ISO base media box at ``f``'s position, its
    header read; ``None`` at the end (or a box that runs to it: none worth reading)."""
    header = f.read(8)
    if len(header) < 8:
        return None
    size, kind = int.from_bytes(header[:4], "big"), header[4:]
    if size == 1:  # a 64-bit size follows
        size = int.from_bytes(f.read(8), "big") - 8
    if size < 8:
        return None
    return kind, size - 8


def photo_detector(
    scale: float, threshold: float, device: str, precision: str, threads: int | None
) -> CenterFace:
    """The detector of ``find_faces`` for a video's ``scale`` and ``threshold``: closer
    (``PHOTO_SCALE_FACTOR``), and reporting down to ``CONFIRM_SHARE`` of the threshold."""
    return CenterFace(
        threshold=threshold * CONFIRM_SHARE,
        scale=min(4.0, scale * PHOTO_SCALE_FACTOR),
        device=device,
        precision=precision,
        threads=threads,
    )


def find_faces(
    detector: CenterFace, picture: npt.NDArray[np.uint8], threshold: float
) -> Detections:
    """The faces on ``picture`` (RGB ``(h, w, 3)``): looked for on it and on its mirror
    image; kept when either look scores them ``threshold`` or more, or both looks
    ``CONFIRM_SHARE`` of it. ``detector`` reports faces down to that share
    (``photo_detector``). Boxes in pixels, strongest look's box and landmarks."""
    width = picture.shape[1]
    seen = detector.detect_frame(picture)
    # A mirrored view, not a copy: the detector reads it tile by tile.
    mirrored = _unmirrored(detector.detect_frame(picture[:, ::-1]), width)
    if len(seen) and len(mirrored):
        overlap = box_iou(seen.xyxy, mirrored.xyxy)
        twin_of_seen = overlap.argmax(axis=1)
        seen_twinned = overlap.max(axis=1) >= _SAME_FACE_IOU
        mirrored_twinned = overlap.max(axis=0) >= _SAME_FACE_IOU
    else:
        twin_of_seen = np.zeros(len(seen), np.int64)
        seen_twinned = np.zeros(len(seen), bool)
        mirrored_twinned = np.zeros(len(mirrored), bool)
    weak = threshold * CONFIRM_SHARE
    parts = []
    for i in range(len(seen)):
        score = float(seen.confidence[i])
        if seen_twinned[i]:
            twin = int(twin_of_seen[i])
            other = float(mirrored.confidence[twin])
            if max(score, other) >= threshold or min(score, other) >= weak:
                parts.append(seen[np.array([i])] if score >= other else mirrored[np.array([twin])])
        elif score >= threshold:
            parts.append(seen[np.array([i])])
    alone = ~mirrored_twinned & (mirrored.confidence >= threshold)
    parts.append(mirrored[alone])
    if not parts:
        return Detections.empty()
    return Detections.concatenate(parts).deduplicated()


def _unmirrored(found: Detections, width: int) -> Detections:
    """Detections made on a mirror image, in the picture's own pixels."""
    x1, y1, x2, y2 = found.xyxy.T
    xyxy = np.stack([width - x2, y1, width - x1, y2], axis=1).astype(np.float32)
    marks = found.landmarks.copy()
    marks[..., 0] = width - marks[..., 0]
    # The mirror's left eye and mouth corner are the picture's right ones.
    marks = marks[:, [1, 0, 2, 4, 3], :]
    return Detections(xyxy, found.confidence, marks, found.track_id)


def hide_faces(photo: Photo, boxes: Detections, anonymizer: Anonymizer) -> None:
    """Hide ``boxes`` (pixels, already grown) on ``photo``'s picture, in place: every
    colour channel alike, alpha as it was."""
    image = photo.image
    if not len(boxes):
        return
    pixels = np.array(image)  # a copy Pillow does not share
    colours = _COLOUR_MODES[image.mode]
    if pixels.ndim == 2:
        pixels = anonymizer.apply(pixels, boxes)
    elif colours == 1:  # grey with alpha: the grey plane alone
        pixels[..., 0] = anonymizer.apply(np.ascontiguousarray(pixels[..., 0]), boxes)
    else:
        colour = np.ascontiguousarray(pixels[..., :colours])
        pixels[..., :colours] = anonymizer.apply(colour, boxes)
    photo.image = _from_pixels(pixels, image.mode)


def _from_pixels(pixels: Frame, mode: str) -> Image.Image:
    """A new picture of ``pixels`` in ``mode``, with none of another's info."""
    if mode == "CMYK":  # a 4-channel array alone would read as RGBA
        return Image.frombytes(mode, (pixels.shape[1], pixels.shape[0]), pixels.tobytes())
    return Image.fromarray(np.ascontiguousarray(pixels))


def save_photo(photo: Photo, path: str | Path, *, keep_metadata: bool = False) -> None:
    """Write ``photo`` to ``path`` in its format, from its pixels alone (see the module's
    docstring for what is kept), under a temporary name first so no half-written picture
    is ever found there."""
    path = Path(path)
    options = _save_options(photo, keep_metadata)
    # A new picture from the pixels alone: nothing the decoder kept of the input (its
    # info: EXIF, XMP, comments, which some writers copy) comes along, faces found or not.
    image = photo.image
    if image.info or image.getexif():
        image = Image.frombytes(image.mode, image.size, image.tobytes())
    if photo.format == "JPEG" and image.mode not in ("L", "RGB", "CMYK"):
        image = image.convert("RGB")  # JPEG has no alpha: flattened as viewers show it
    if photo.format == "GIF":
        image = image.convert("RGBA" if image.mode in ("RGBA", "LA") else "RGB").quantize()
    if photo.format == "BMP" and image.mode not in ("L", "RGB", "RGBA"):
        image = image.convert("RGB")
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.part")
    try:
        # Created anew (O_EXCL: not a link planted in advance), with the usual permissions.
        handle = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o666)
    except OSError as exc:
        raise OutputError(path, f"cannot write here ({exc.strerror or exc})") from exc
    try:
        with os.fdopen(handle, "wb") as file:
            image.save(file, format=photo.format, **options)
        os.replace(tmp, path)
    except (OSError, ValueError) as exc:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise OutputError(path, f"cannot write ({_one_line(exc)})") from exc


def _save_options(photo: Photo, keep_metadata: bool) -> dict[str, Any]:
    source, kind = photo.source, photo.format
    options: dict[str, Any] = {}
    if source.get("icc_profile") and kind != "GIF":
        options["icc_profile"] = source["icc_profile"]
    if source.get("dpi") and kind in ("JPEG", "PNG", "TIFF", "BMP"):
        options["dpi"] = source["dpi"]
    if kind == "JPEG":
        if "qtables" in source:
            options["qtables"] = source["qtables"]
        else:
            options["quality"] = 95
        if "subsampling" in source:
            options["subsampling"] = source["subsampling"]
        options["progressive"] = source.get("progressive", False)
    elif kind in ("WEBP", "AVIF", "HEIF"):
        options["quality"] = 95
    elif kind == "TIFF":
        compression = source.get("compression", "raw")
        # TIFF's JPEG compression needs tables Pillow does not keep, and fax compression
        # (group3, group4) 1-bit pictures: lossless LZW for those.
        lossless = ("jpeg", "tiff_jpeg", "group3", "group4", "tiff_ccitt")
        options["compression"] = "tiff_lzw" if compression in lossless else compression
    if keep_metadata:
        exif = source.get("exif")
        if exif is not None and kind in ("JPEG", "PNG", "WEBP", "TIFF", "HEIF", "AVIF"):
            options["exif"] = _kept_exif(exif).tobytes()
        xmp = source.get("xmp")
        if xmp and _xmp_keepable(_as_bytes(xmp)):
            options["xmp"] = _as_bytes(xmp)
    return options


# EXIF tags --keep-metadata never copies: places where a picture or another block of
# metadata hides (XMP 700, IPTC 0x83BB, Photoshop's resources with their thumbnail
# 0x8649, maker notes 0x927C, the thumbnail's offsets 0x0201/0x0202), sub-IFD pointers
# (rebuilt), and the orientation (the pixels are upright).
_NEVER_KEPT = {0x02BC, 0x83BB, 0x8649, 0x927C, 0x0201, 0x0202, 0x0112, 0x014A, 0x8769, 0x8825}


def _kept_exif(exif: Image.Exif) -> Image.Exif:
    """What ``--keep-metadata`` keeps of ``exif``: plain tags of IFD0, the Exif IFD and
    GPS, by value; nothing that can hold a picture."""
    kept = Image.Exif()
    kept.update({tag: value for tag, value in exif.items() if _plain_tag(tag, value)})
    for ifd in (ExifTags.IFD.Exif, ExifTags.IFD.GPSInfo):
        with contextlib.suppress(KeyError, ValueError, TypeError, OSError):
            entries = {t: v for t, v in exif.get_ifd(ifd).items() if _plain_tag(t, v)}
            if entries:
                kept.get_ifd(ifd).update(entries)
    return kept


def _plain_tag(tag: int, value: object) -> bool:
    """A tag ``--keep-metadata`` copies: not one of ``_NEVER_KEPT``, and a plain value (no
    more than 256 bytes of binary: room for a version or a lens name, not a picture)."""
    if tag in _NEVER_KEPT or not isinstance(value, str | int | float | tuple | bytes):
        return False
    return not (isinstance(value, bytes) and len(value) > 256)


def _xmp_keepable(xmp: bytes) -> bool:
    """Whether ``--keep-metadata`` may copy an XMP packet: not one that embeds a picture
    (any prefix bound to the XMP image namespace, or a Thumbnails property) nor one that
    names the people in it (face regions, person tags): those are dropped whole."""
    if any(marker in xmp for marker in (b"ns.adobe.com/xap/1.0/g/img/", b"Thumbnails")):
        return False
    if any(marker in xmp for marker in _PEOPLE_IN_XMP) or b"Regions" in xmp:
        return False
    return not any(marker in xmp for marker in _PREVIEWS_IN_XMP)


def _as_bytes(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode()


@dataclass(frozen=True)
class PhotoResult:
    """What anonymizing or analysing a photo did: its size (upright), the format written,
    the faces found, and what the output lacks of the input's metadata
    (``RemovedMetadata.to_json``; None when no picture was written)."""

    width: int
    height: int
    format: str
    faces: Detections
    metadata_removed: dict[str, list[str]] | None = None


def blur_photo(
    input_path: str | Path,
    output_path: str | Path,
    options: BlurOptions | None = None,
    *,
    faces_out: str | Path | None = None,
    detector: CenterFace | None = None,
    thumbnails: Thumbnails | None = None,
) -> PhotoResult:
    """Write a copy of the picture at ``input_path`` with every face hidden, in its format,
    to ``output_path``; the faces found to ``faces_out`` (a faces file with one entry per
    face, at time 0). The input is never modified. ``detector``: a ``photo_detector`` to
    reuse across pictures."""
    options = options or BlurOptions()
    photo = open_photo(input_path)
    faces = _faces_on(photo, detector or detector_for(options), options.threshold, thumbnails)
    boxes = faces.grown(options.box_scale).clipped(photo.width, photo.height)
    hide_faces(photo, boxes, get_anonymizer(options.mode))
    removed = photo.removed_metadata(options.keep_metadata).to_json()
    save_photo(photo, output_path, keep_metadata=options.keep_metadata)
    if faces_out is not None:  # once the picture is written: never a faces file alone
        write_faces(photo, faces, faces_out, removed)
    return PhotoResult(photo.width, photo.height, photo.format, faces, removed)


def _faces_on(
    photo: Photo, detector: CenterFace, threshold: float, thumbnails: Thumbnails | None
) -> Detections:
    """``find_faces`` on ``photo``, offering each face's thumbnail from the original
    (numbered as the faces file numbers them); the RGB copy is gone once this returns."""
    picture = photo.rgb()
    faces = find_faces(detector, picture, threshold)
    if thumbnails is not None:
        thumbnails.offer(lambda: picture, numbered(faces))
    return faces


def redact_photo(
    input_path: str | Path,
    faces_path: str | Path,
    output_path: str | Path,
    options: BlurOptions | None = None,
) -> PhotoResult:
    """Hide the boxes of a faces file (a reviewer's edit of ``blur_photo``'s, all of its
    entries whatever their time) on the picture at ``input_path``, without detecting."""
    options = options or BlurOptions()
    photo = open_photo(input_path)
    listed = read_faces(faces_path, photo.width, photo.height)
    faces = Detections.concatenate([found for _, found in listed]) if listed else Detections.empty()
    boxes = faces.grown(options.box_scale).clipped(photo.width, photo.height)
    hide_faces(photo, boxes, get_anonymizer(options.mode))
    removed = photo.removed_metadata(options.keep_metadata).to_json()
    save_photo(photo, output_path, keep_metadata=options.keep_metadata)
    return PhotoResult(photo.width, photo.height, photo.format, faces, removed)


def detect_photo(
    input_path: str | Path,
    faces_out: str | Path,
    options: BlurOptions | None = None,
    *,
    detector: CenterFace | None = None,
) -> PhotoResult:
    """Write the faces on the picture at ``input_path`` to the faces file ``faces_out``."""
    options = options or BlurOptions()
    photo = open_photo(input_path)
    faces = find_faces(detector or detector_for(options), photo.rgb(), options.threshold)
    write_faces(photo, faces, faces_out, None)
    return PhotoResult(photo.width, photo.height, photo.format, faces)


def detector_for(options: BlurOptions) -> CenterFace:
    """``photo_detector`` with ``options``' scale, threshold, device and precision."""
    return photo_detector(
        options.scale, options.threshold, options.device, options.precision, options.threads
    )


def write_faces(
    photo: Photo,
    faces: Detections,
    path: str | Path,
    metadata_removed: dict[str, list[str]] | None,
) -> None:
    """The faces file of a photo: a video of one frame at time 0 (``photo_metadata``),
    each face its own track, so review can keep or remove one."""
    head: dict[str, Any] = {
        "JobStatus": "SUCCEEDED",
        "VideoMetadata": photo_metadata(photo.path, photo.format, photo.width, photo.height),
    }
    if metadata_removed is not None:
        head["MetadataRemoved"] = metadata_removed
    digits = ratio_digits(photo.width, photo.height)
    with FacesFileWriter(path, head) as writer:
        for face in numbered(faces).to_rekognition(photo.width, photo.height):
            writer.add_entry({"Timestamp": 0, "Face": rounded(face, digits)})
        writer.commit()


def numbered(faces: Detections) -> Detections:
    """A photo's faces, each its own track (0, 1, ...), so review can name one."""
    numbers = np.arange(len(faces), dtype=np.int64)
    return Detections(faces.xyxy, faces.confidence, faces.landmarks, numbers)


def audit_photo(
    picture: str | Path | Photo, *, device: str = "cpu", detector: AuditDetector | None = None
) -> AuditResult:
    """Look for faces still recognisable on a picture (a path, or a ``Photo`` opened
    already) as ``veil.audit`` does on a video's frames: its one frame checked, at
    ``PHOTO_SCALE_FACTOR`` times the audit's scale."""
    photo = picture if isinstance(picture, Photo) else open_photo(picture)
    scale = min(4.0, AUDIT_SCALE * PHOTO_SCALE_FACTOR)
    checker = detector or AuditDetector(scale=scale, device=device)
    found = checker.detect_frame(photo.rgb())
    return AuditResult(
        findings=findings_on_one_frame(found, photo.width, photo.height),
        frames_checked=1,
        frames_total=1,
        settings={**checker.settings, "every": 1, "photo": True},
    )
