"""faces.json: detections in the cloud face-detection result format, streamed to disk.

The file is a ``GetFaceDetection`` response: ``VideoMetadata`` plus ``Faces``, a list of
``{"Timestamp": ms, "Face": FaceDetail}`` sorted by time, boxes as ratios of the displayed
frame. Writing streams entry by entry, one a line, so an hour of video needs no more
memory than a minute.

Numbers carry the precision a pixel needs and no more: ratios to ``ratio_digits`` decimal
places (each within 0.05 px of the tracked box, so a box's far edge, ``Left + Width``, is
within 0.1 px), ``Confidence`` (0-100) to two. The tracker gives landmarks on detected
and interpolated frames alike (NaN on held frames, which get none), so the file keeps
every landmark it is given, rounded like the boxes.

This is the one module that reads and writes faces files: the pipeline, the review, the
join of segments and the face-detection API all go through it, and every write lands
under a temporary name first (``FacesFileWriter``).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from veil.detections import Detections
from veil.errors import FacesFileError, OutputError
from veil.video import VideoInfo

CONFIDENCE_DIGITS = 2
"""Decimal places of ``Confidence`` (a percentage)."""
_COMPACT = (",", ":")


def ratio_digits(width: int, height: int) -> int:
    """Decimal places that keep a ratio of a ``width`` x ``height`` frame within 0.05 px.

    Rounding to ``d`` places moves a ratio by at most ``0.5 * 10**-d``, which is under
    ``0.5 * 10**(n - d)`` pixels on a side of ``n`` digits; ``d = n + 1`` gives 0.05 px.
    """
    return len(str(max(width, height, 1))) + 1


def rounded(face: dict[str, Any], digits: int) -> dict[str, Any]:
    """A ``FaceDetail`` with its ratios rounded to ``digits`` places and its confidence to
    ``CONFIDENCE_DIGITS``."""
    face["BoundingBox"] = {name: round(v, digits) for name, v in face["BoundingBox"].items()}
    face["Confidence"] = round(face["Confidence"], CONFIDENCE_DIGITS)
    for mark in face.get("Landmarks", ()):
        mark["X"], mark["Y"] = round(mark["X"], digits), round(mark["Y"], digits)
    return face


def video_metadata(info: VideoInfo) -> dict[str, Any]:
    """``VideoMetadata`` as the cloud API reports it."""
    return {
        "Codec": info.codec,
        "DurationMillis": info.duration_ms,
        # The cloud names the format by the file's kind: MP4, MOV, AVI (and veil's others).
        "Format": Path(info.path).suffix.lstrip(".").upper() or info.container,
        "FrameRate": info.fps,
        "FrameHeight": info.height,
        "FrameWidth": info.width,
        "ColorRange": "FULL" if info.color_range == 2 else "LIMITED",
    }


def photo_metadata(path: str | Path, kind: str, width: int, height: int) -> dict[str, Any]:
    """``VideoMetadata`` of a photo: one frame of ``width`` x ``height``, no duration,
    ``Codec`` the picture format written (``jpeg``, ``png``...)."""
    return {
        "Codec": kind.lower(),
        "DurationMillis": 0,
        "Format": Path(path).suffix.lstrip(".").upper() or kind,
        "FrameRate": 0.0,
        "FrameHeight": height,
        "FrameWidth": width,
        "ColorRange": "FULL",
    }


class FacesFileWriter:
    """Writes a faces file entry by entry, one a line, to a temporary name beside
    ``path``; ``commit()`` moves it into place, so no half-written file is ever read.
    ``head``: every field but ``Faces`` (``JobStatus``, ``VideoMetadata``, ...)."""

    def __init__(self, path: str | Path, head: Mapping[str, Any]) -> None:
        self.path = Path(path)
        self._tmp = self.path.with_name(f".{self.path.name}.veil-{os.getpid()}.part")
        try:
            self._file: IO[str] = self._tmp.open("w", encoding="utf-8")
        except OSError as exc:
            raise OutputError(self.path, f"cannot write here ({exc.strerror or exc})") from exc
        self._first = True
        self._write(json.dumps(dict(head), separators=_COMPACT)[:-1] + ',"Faces":[')

    def _write(self, text: str) -> None:
        try:
            self._file.write(text)
        except OSError as exc:
            self.close()
            raise OutputError(self.path, f"cannot write ({exc.strerror or exc})") from exc

    def add_entry(self, entry: Mapping[str, Any]) -> None:
        """One ``{"Timestamp": ms, "Face": FaceDetail}``, after those before it in time."""
        self._write(("\n" if self._first else ",\n") + json.dumps(entry, separators=_COMPACT))
        self._first = False

    def commit(self) -> None:
        self._write("\n]}\n")
        try:
            self._file.close()
            os.replace(self._tmp, self.path)
        except OSError as exc:
            raise OutputError(self.path, f"cannot write ({exc.strerror or exc})") from exc

    def close(self) -> None:
        """Abandon an uncommitted file."""
        with contextlib.suppress(OSError):
            self._file.close()
        with contextlib.suppress(FileNotFoundError):
            self._tmp.unlink()

    def __enter__(self) -> FacesFileWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class FacesWriter(FacesFileWriter):
    """Writes a video's detections as they are made, in the cloud's result format."""

    def __init__(
        self,
        path: str | Path,
        info: VideoInfo,
        *,
        metadata_removed: dict[str, list[str]] | None = None,
    ) -> None:
        head: dict[str, Any] = {"JobStatus": "SUCCEEDED", "VideoMetadata": video_metadata(info)}
        if metadata_removed is not None:
            # veil's own field (``veil.streams.RemovedMetadata``); cloud clients ignore it.
            head["MetadataRemoved"] = metadata_removed
        super().__init__(path, head)
        self._info = info
        self._digits = ratio_digits(info.width, info.height)

    def add(self, time_ms: int, detections: Detections) -> None:
        for face in detections.to_rekognition(self._info.width, self._info.height):
            self.add_entry({"Timestamp": time_ms, "Face": rounded(face, self._digits)})


def load(path: str | Path) -> dict[str, Any]:
    """A faces file parsed whole (for editing, joining and serving), its layout checked."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise FacesFileError(path, "no such file") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FacesFileError(path, f"not a JSON faces file ({exc})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("Faces"), list):
        raise FacesFileError(path, 'no "Faces" list; expected the output of veil detect')
    return data


def save(data: Mapping[str, Any], path: str | Path) -> None:
    """Write a parsed faces file (``load``) in the layout ``FacesWriter`` writes."""
    with FacesFileWriter(path, {k: v for k, v in data.items() if k != "Faces"}) as out:
        for entry in data.get("Faces", []):
            out.add_entry(entry)
        out.commit()


def track_ids(data: Mapping[str, Any]) -> set[int]:
    """The tracks of a parsed faces file (each face's ``TrackId``; hand-drawn boxes of
    other tools may have none)."""
    return {int(e["Face"]["TrackId"]) for e in data.get("Faces", []) if "TrackId" in e["Face"]}


def check_made_for(data: Mapping[str, Any], info: VideoInfo, path: str | Path) -> None:
    """Refuse (``FacesFileError``) the faces file ``data`` (read from ``path``) for the
    video of ``info`` when its ``VideoMetadata`` says it was made for another: another
    frame size, or a duration more than half a second and 1% apart (a re-encoded copy of
    the same video keeps its size and nearly its duration). A file without the fields
    (written by hand) passes."""
    meta = data.get("VideoMetadata")
    if not isinstance(meta, Mapping):
        return
    size = (meta.get("FrameWidth"), meta.get("FrameHeight"))
    if None not in size and size != (info.width, info.height):
        raise FacesFileError(
            Path(path),
            f"made for a {size[0]}x{size[1]} video, not this {info.width}x{info.height} one",
        )
    made = meta.get("DurationMillis")
    here = info.duration_ms
    if isinstance(made, int | float) and here and abs(made - here) > max(500, 0.01 * here):
        raise FacesFileError(
            Path(path),
            f"made for a video of {made / 1000:.2f} s, not this one of {here / 1000:.2f} s",
        )


def read_faces(
    path: str | Path, width: int, height: int, *, made_for: VideoInfo | None = None
) -> list[tuple[int, Detections]]:
    """Detections per timestamp (ms), sorted by time, in pixels of a ``width`` x ``height``
    frame. ``made_for``: the video they are for (``check_made_for``)."""
    path = Path(path)
    data = load(path)
    if made_for is not None:
        check_made_for(data, made_for, path)
    faces = data["Faces"]
    by_time: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for n, entry in enumerate(faces):
        try:
            by_time[int(entry["Timestamp"])].append(entry["Face"])
        except (KeyError, TypeError, ValueError) as exc:
            raise FacesFileError(path, f"entry {n} needs a Timestamp and a Face") from exc
    out = []
    for time_ms in sorted(by_time):
        try:
            out.append((time_ms, Detections.from_rekognition(by_time[time_ms], width, height)))
        except ValueError as exc:
            raise FacesFileError(path, f"at Timestamp {time_ms}: {exc}") from exc
    return out
