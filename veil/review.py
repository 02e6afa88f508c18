"""Review: a person's edits to a job's detections, and the held jobs that wait for them.

An edit says what to do with one track of faces.json (each face carries a ``TrackId``)
or adds a box over a time range:

- ``show``: leave a track visible (a person who agreed to be shown);
- ``remove``: a false box: the track is not a face;
- ``add``: a box the detector missed (a face, a name badge, a screen), held from
  ``start_ms`` to ``end_ms``.

``apply_edits`` turns a faces file and a list of edits into the faces file that
``veil redact --faces`` (and the service's re-render) anonymizes: the same edits work
from the page and from the command line.

A blur job whose audit finds a face waits for review instead of publishing
(``--on-audit-finding hold``). What a reviewer needs, and what a re-render reads, is kept
in the job database (``ReviewStore``), so any machine can show it and any worker can
render it: the faces file the job made (compressed), a thumbnail per track, the edits
and the latest re-render.
"""

from __future__ import annotations

import bisect
import gzip
import json
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from veil.db import create_tables, database_errors, owned_by
from veil.errors import JobStateError
from veil.faces_file import track_ids

ACTIONS = ("show", "remove", "add")
"""What an edit does: leave a track visible, drop a false track, add a box."""

MAX_EDITS = 1000
"""Edits one review may hold: plenty for a person, a bound for a request."""

MAX_ADDED_BOXES = 1_000_000
"""Frames' worth of added boxes one review may hold (an added box is one entry a frame):
a bound on the faces file a request can make the service write, about 9 hours of one
box at 30 fps."""

_NOTE_CHARS = 200


@dataclass(frozen=True, kw_only=True)
class Edit:
    """One reviewer's change. ``track`` names a faces.json ``TrackId`` (``show``,
    ``remove``); ``add`` gives ``box`` (left, top, width, height as ratios of the
    displayed frame) from ``start_ms`` to ``end_ms``, or ``keyframes``: boxes the reviewer
    placed at several times, the box moving from one to the next (``box_at``), so an
    added box follows a moving face; ``box`` is then the first keyframe's."""

    action: str
    track: int | None = None
    start_ms: int | None = None
    end_ms: int | None = None
    box: Box | None = None
    note: str = ""
    keyframes: tuple[tuple[int, Box], ...] = ()
    """``(at_ms, box)`` pairs in time order, within ``start_ms`` to ``end_ms``."""

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"unknown action {self.action!r}; choose one of {', '.join(ACTIONS)}")
        if self.action == "add":
            if self.box is None or self.start_ms is None or self.end_ms is None:
                raise ValueError("an added box needs box, start_ms and end_ms")
            _check_box(self.box)
            if not 0 <= self.start_ms <= self.end_ms:
                raise ValueError("start_ms must be 0 or more and at most end_ms")
            self._check_keyframes()
        elif self.keyframes:
            raise ValueError(f"a {self.action} edit has no keyframes")
        elif self.track is None or self.track < 0:
            raise ValueError(f"a {self.action} edit needs the track's number (TrackId)")
        if len(self.note) > _NOTE_CHARS:
            raise ValueError(f"note must be at most {_NOTE_CHARS} characters")

    def _check_keyframes(self) -> None:
        if len(self.keyframes) > MAX_KEYFRAMES:
            raise ValueError(f"at most {MAX_KEYFRAMES} keyframes")
        times = [at for at, _ in self.keyframes]
        if times != sorted(set(times)):
            raise ValueError("keyframes must be in time order, one a time")
        assert self.start_ms is not None and self.end_ms is not None
        if times and not self.start_ms <= times[0] <= times[-1] <= self.end_ms:
            raise ValueError("keyframes must lie from start_ms to end_ms")
        for _, box in self.keyframes:
            _check_box(box)
        if self.keyframes and self.box != self.keyframes[0][1]:
            raise ValueError("box must be the first keyframe's")

    def box_at(self, time_ms: float) -> Box:
        """The added box at ``time_ms``: ``box``, or between two keyframes the box moved
        that far from one to the next (before the first and after the last, held)."""
        assert self.box is not None
        if not self.keyframes:
            return self.box
        times = [at for at, _ in self.keyframes]
        after = bisect.bisect_right(times, time_ms)
        if after == 0:
            return self.keyframes[0][1]
        if after == len(times):
            return self.keyframes[-1][1]
        (t0, a), (t1, b) = self.keyframes[after - 1], self.keyframes[after]
        share = (time_ms - t0) / (t1 - t0)
        return (
            a[0] + (b[0] - a[0]) * share,
            a[1] + (b[1] - a[1]) * share,
            a[2] + (b[2] - a[2]) * share,
            a[3] + (b[3] - a[3]) * share,
        )

    @classmethod
    def from_json(cls, data: Any) -> Edit:
        """Parse one edit; ``ValueError`` with a plain message on anything malformed."""
        if not isinstance(data, Mapping):
            raise ValueError("an edit is an object with an action")
        unknown = set(data) - {"action", "track", "start_ms", "end_ms", "box", "note", "keyframes"}
        if unknown:
            raise ValueError(f"unknown edit field(s): {', '.join(sorted(map(str, unknown)))}")
        box = data.get("box")
        if box is not None:
            box = _box_of(box)
        keyframes = data.get("keyframes") or []
        if not isinstance(keyframes, list) or len(keyframes) > MAX_KEYFRAMES:
            raise ValueError(f"keyframes is a list of at most {MAX_KEYFRAMES}")
        placed = []
        for key in keyframes:
            if not isinstance(key, Mapping) or set(key) != {"at_ms", "box"}:
                raise ValueError("a keyframe is an object with at_ms and box")
            at = _int_or_none(key["at_ms"], "at_ms")
            if at is None:
                raise ValueError("a keyframe needs its time, at_ms")
            placed.append((at, _box_of(key["box"])))
        return cls(
            action=str(data.get("action")),
            track=_int_or_none(data.get("track"), "track"),
            start_ms=_int_or_none(data.get("start_ms"), "start_ms"),
            end_ms=_int_or_none(data.get("end_ms"), "end_ms"),
            box=box,
            note=str(data.get("note") or ""),
            keyframes=tuple(placed),
        )

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"action": self.action}
        if self.track is not None:
            data["track"] = self.track
        if self.action == "add" and self.box is not None:
            data.update(start_ms=self.start_ms, end_ms=self.end_ms, box=_box_json(self.box))
        if self.keyframes:
            data["keyframes"] = [{"at_ms": at, "box": _box_json(box)} for at, box in self.keyframes]
        if self.note:
            data["note"] = self.note
        return data


Box = tuple[float, float, float, float]
"""Left, top, width, height as ratios of the displayed frame."""
MAX_KEYFRAMES = 500
"""Keyframes one added box may have."""


def _check_box(box: Box) -> None:
    left, top, width, height = box
    if not all(math.isfinite(v) for v in box):
        raise ValueError("box values must be numbers")
    if width <= 0 or height <= 0 or left < 0 or top < 0:
        raise ValueError("box needs a positive size inside the frame")
    if left + width > 1.0001 or top + height > 1.0001:
        raise ValueError("box must lie inside the frame (ratios 0-1)")


def _box_of(data: Any) -> Box:
    """A box from JSON ``{"left", "top", "width", "height"}``."""
    if not isinstance(data, Mapping):
        raise ValueError("box is an object with left, top, width and height")
    try:
        left, top, width, height = (float(data[k]) for k in ("left", "top", "width", "height"))
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise ValueError("box needs numbers left, top, width and height") from exc
    return left, top, width, height


def _box_json(box: Box) -> dict[str, float]:
    left, top, width, height = box
    return {"left": left, "top": top, "width": width, "height": height}


MAX_WHOLE = 2**53
"""The largest whole number an edit may hold (exact as a JSON double; tracks and times
are far smaller): larger ones, and infinities, would overflow on the way to the database."""


def _int_or_none(value: Any, name: str) -> int | None:
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not -MAX_WHOLE <= value <= MAX_WHOLE  # False for NaN too
        or value != int(value)
    ):
        raise ValueError(f"{name} must be a whole number from {-MAX_WHOLE} to {MAX_WHOLE}")
    return int(value)


def parse_edits(data: Any) -> list[Edit]:
    """A list of edits from JSON; ``ValueError`` naming the first bad one."""
    if not isinstance(data, list):
        raise ValueError("edits is a list")
    if len(data) > MAX_EDITS:
        raise ValueError(f"at most {MAX_EDITS} edits")
    edits = []
    for n, item in enumerate(data):
        try:
            edits.append(Edit.from_json(item))
        except ValueError as exc:
            raise ValueError(f"edit {n}: {exc}") from None
    return edits


def _frame_ms(faces: Mapping[str, Any]) -> float:
    fps = float(faces.get("VideoMetadata", {}).get("FrameRate") or 30.0)
    return 1000.0 / (fps if math.isfinite(fps) and fps > 0 else 30.0)


def _added_range(faces: Mapping[str, Any], edit: Edit) -> tuple[int, int]:
    """The frames (first time in ms, count) an added box covers, within the video."""
    assert edit.start_ms is not None and edit.end_ms is not None
    if faces.get("VideoMetadata", {}).get("FrameRate") == 0:
        return 0, 1  # a photo (veil.faces_file.photo_metadata): its one picture
    step = _frame_ms(faces)
    duration = faces.get("VideoMetadata", {}).get("DurationMillis")
    end = edit.end_ms if not duration else min(edit.end_ms, int(duration))
    if end < edit.start_ms:
        return edit.start_ms, 0
    return edit.start_ms, int((end - edit.start_ms) / step) + 1


def check_edits(faces: Mapping[str, Any], edits: Sequence[Edit]) -> None:
    """Refuse (``ValueError``) edits that name tracks the faces file lacks, or add more
    boxes than ``MAX_ADDED_BOXES``."""
    known = track_ids(faces)
    for n, edit in enumerate(edits):
        if edit.track is not None and edit.track not in known:
            raise ValueError(f"edit {n}: no track {edit.track} in this job's detections")
    added = sum(_added_range(faces, e)[1] for e in edits if e.action == "add")
    if added > MAX_ADDED_BOXES:
        raise ValueError(
            f"the added boxes cover {added:,} frames; at most {MAX_ADDED_BOXES:,} in all"
        )


def apply_edits(faces: Mapping[str, Any], edits: Sequence[Edit]) -> dict[str, Any]:
    """The faces file ``faces`` (a parsed faces.json) with ``edits`` applied.

    Shown and removed tracks lose their entries; an added box gets an entry on every
    frame of its range within the video (at the video's frame rate), under a new
    ``TrackId``, so redaction covers it frame by frame and a later review can name it.
    """
    hidden = {e.track for e in edits if e.action in ("show", "remove")}
    entries = [
        entry
        for entry in faces.get("Faces", [])
        if entry.get("Face", {}).get("TrackId") not in hidden
    ]
    next_track = max(track_ids(faces), default=-1) + 1
    step = _frame_ms(faces)
    for edit in edits:
        if edit.action != "add":
            continue
        start, count = _added_range(faces, edit)
        for k in range(count):
            left, top, width, height = edit.box_at(start + k * step)
            face = {
                "BoundingBox": {"Width": width, "Height": height, "Left": left, "Top": top},
                "Confidence": 100.0,
                "TrackId": next_track,
            }
            entries.append({"Timestamp": round(start + k * step), "Face": face})
        next_track += 1
    entries.sort(key=lambda entry: int(entry["Timestamp"]))
    return {**faces, "Faces": entries}


MAX_BOXES = 20_000
"""Tracked boxes one ``boxes_between`` answer holds at most (about 10 s of a busy video)."""


def boxes_between(faces: Mapping[str, Any], from_ms: int, to_ms: int) -> dict[str, Any]:
    """The tracked boxes of a faces file from ``from_ms`` to ``to_ms``, for drawing on the
    picture: ``boxes`` (``at_ms``, ``track``, ``box``, ``score`` 0-1), and ``to_ms``, as far
    as they go (less than asked when ``MAX_BOXES`` ran out first; entries are in time order)."""
    entries = faces.get("Faces", [])
    times = [int(e["Timestamp"]) for e in entries]
    start = bisect.bisect_left(times, from_ms)
    found: list[dict[str, Any]] = []
    reached = to_ms
    for entry in entries[start:]:
        at = int(entry["Timestamp"])
        if at > to_ms:
            break
        if len(found) >= MAX_BOXES:
            reached = found[-1]["at_ms"] - 1 if found[-1]["at_ms"] > from_ms else from_ms
            found = [b for b in found if b["at_ms"] <= reached]
            break
        face = entry["Face"]
        if "TrackId" not in face:
            continue
        b = face["BoundingBox"]
        found.append(
            {
                "at_ms": at,
                "track": int(face["TrackId"]),
                "box": {
                    "left": b["Left"],
                    "top": b["Top"],
                    "width": b["Width"],
                    "height": b["Height"],
                },
                "score": round(float(face.get("Confidence", 0.0)) / 100, 3),
            }
        )
    return {"from_ms": from_ms, "to_ms": reached, "boxes": found}


def tracks(faces: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each track of a faces file: its id, first and last timestamp, frames, and the box
    of its most confident frame (where a thumbnail shows the face best)."""
    found: dict[int, dict[str, Any]] = {}
    for entry in faces.get("Faces", []):
        face = entry.get("Face", {})
        if "TrackId" not in face:
            continue
        track = int(face["TrackId"])
        time_ms = int(entry["Timestamp"])
        score = float(face.get("Confidence", 0.0))
        row = found.get(track)
        if row is None:
            found[track] = row = {"id": track, "start_ms": time_ms, "frames": 0, "score": -1.0}
        row["end_ms"] = time_ms
        row["frames"] += 1
        if score > row["score"]:
            box = face["BoundingBox"]
            row.update(
                score=score,
                best_ms=time_ms,
                box={k.lower(): box[k] for k in ("Left", "Top", "Width", "Height")},
            )
    return sorted(found.values(), key=lambda row: (row["start_ms"], row["id"]))


@dataclass(frozen=True)
class Reviewer:
    """Who asked for a re-render, as its privacy report records it: ``name`` as they
    gave it (not checked), ``key`` the API key their request came with (checked by the
    service; ``veil.api.guard.key_label``), None where the service asks for none."""

    name: str | None = None
    key: str | None = None

    def to_json(self) -> dict[str, Any]:
        asked_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        return {"name": self.name, "api_key": self.key, "asked_at": asked_at}


@dataclass(frozen=True)
class Review:
    """A job's review state: the edits made, and the re-render that is the job's latest
    (``render_id``, a workflow; None before the first)."""

    job_id: str
    edits: list[Edit]
    render_id: str | None
    renders: int
    updated_at: float


@dataclass(frozen=True)
class Draft:
    """Edits saved as a reviewer makes them, before a re-render: ``version`` counts the
    saves (each refers to the one before it), ``saved_at`` in Unix seconds."""

    edits: list[Edit]
    version: int
    saved_at: float

    def to_json(self) -> dict[str, Any]:
        return {
            "edits": [e.to_json() for e in self.edits],
            "version": self.version,
            "saved_at": self.saved_at,
        }


class ReviewStore:
    """What review needs of each blur job, in the job database beside DBOS's tables:
    its detections (compressed), a thumbnail per track, the edits and the latest
    re-render."""

    def __init__(self, url: str) -> None:
        self.engine = sa.create_engine(url, pool_pre_ping=True)
        metadata = sa.MetaData()
        self.table = sa.Table(
            "veil_reviews",
            metadata,
            sa.Column("job_id", sa.String(64), primary_key=True),
            sa.Column("faces", sa.LargeBinary),
            sa.Column("edits", sa.Text),
            sa.Column("render_id", sa.String(80), nullable=True),
            sa.Column("renders", sa.Integer),
            sa.Column("updated_at", sa.Float),
        )
        self.thumbnails = sa.Table(
            "veil_thumbnails",
            metadata,
            sa.Column("job_id", sa.String(64), primary_key=True),
            sa.Column("track", sa.Integer, primary_key=True),
            sa.Column("picture", sa.LargeBinary),
        )
        # A reviewer's edits not yet re-rendered, saved as they are made: a reload, a
        # second tab or another reviewer sees them (``save_draft``).
        self.drafts = sa.Table(
            "veil_review_drafts",
            metadata,
            sa.Column("job_id", sa.String(64), primary_key=True),
            sa.Column("edits", sa.Text),
            sa.Column("version", sa.Integer),
            sa.Column("saved_at", sa.Float),
        )
        create_tables(metadata, self.engine)

    def keep(self, job_id: str, faces_path: Path, thumbnails: Mapping[int, bytes]) -> None:
        """Keep a job's faces file and thumbnails, so a reviewer can see and edit them
        (held or published). Done again (a re-run step) it replaces them."""
        faces = gzip.compress(faces_path.read_bytes(), compresslevel=6)
        now = time.time()
        with database_errors(), self.engine.begin() as conn:
            updated = conn.execute(
                self.table.update()
                .where(self.table.c.job_id == job_id)
                .values(faces=faces, updated_at=now)
            ).rowcount
            if not updated:
                conn.execute(
                    self.table.insert().values(
                        job_id=job_id,
                        faces=faces,
                        edits="[]",
                        render_id=None,
                        renders=0,
                        updated_at=now,
                    )
                )
        self.keep_thumbnails(job_id, thumbnails)

    def keep_thumbnails(self, owner: str, thumbnails: Mapping[int, bytes]) -> None:
        """Keep thumbnails under ``owner`` alone (a segment's, by its own track ids, until
        its job's Join numbers them: ``take_thumbnails``)."""
        t = self.thumbnails.c
        with database_errors(), self.engine.begin() as conn:
            conn.execute(self.thumbnails.delete().where(t.job_id == owner))
            if thumbnails:
                conn.execute(
                    self.thumbnails.insert(),
                    [{"job_id": owner, "track": k, "picture": v} for k, v in thumbnails.items()],
                )

    def thumbnails_of(self, owner: str) -> dict[int, bytes]:
        """The thumbnails kept under ``owner``, by track."""
        t = self.thumbnails.c
        with database_errors(), self.engine.connect() as conn:
            rows = conn.execute(sa.select(t.track, t.picture).where(t.job_id == owner)).all()
        return {int(row.track): bytes(row.picture) for row in rows}

    def get(self, job_id: str) -> Review | None:
        return self.get_many([job_id]).get(job_id)

    def get_many(self, job_ids: Iterable[str]) -> dict[str, Review]:
        ids = list(job_ids)
        if not ids:
            return {}
        c = self.table.c
        columns = [c.job_id, c.edits, c.render_id, c.renders, c.updated_at]
        with database_errors(), self.engine.connect() as conn:
            rows = conn.execute(sa.select(*columns).where(c.job_id.in_(ids))).all()
        return {
            row.job_id: Review(
                job_id=row.job_id,
                edits=parse_edits(json.loads(row.edits or "[]")),
                render_id=row.render_id,
                renders=int(row.renders or 0),
                updated_at=float(row.updated_at or 0.0),
            )
            for row in rows
        }

    def faces(self, job_id: str) -> dict[str, Any]:
        """The job's own faces file (before any edit), parsed."""
        with database_errors(), self.engine.connect() as conn:
            blob = conn.execute(
                sa.select(self.table.c.faces).where(self.table.c.job_id == job_id)
            ).scalar()
        if blob is None:
            raise JobStateError(job_id, "has no detections kept for review")
        data: dict[str, Any] = json.loads(gzip.decompress(blob))
        return data

    def forget(self, job_id: str) -> int:
        """Remove job ``job_id``'s detections, edits and thumbnails, and its segments' and
        re-renders'; returns how many thumbnails went."""
        with database_errors(), self.engine.begin() as conn:
            pictures = conn.execute(
                self.thumbnails.delete().where(owned_by(self.thumbnails.c.job_id, job_id))
            ).rowcount
            conn.execute(self.table.delete().where(owned_by(self.table.c.job_id, job_id)))
            conn.execute(self.drafts.delete().where(owned_by(self.drafts.c.job_id, job_id)))
        return int(pictures or 0)

    def draft(self, job_id: str) -> Draft | None:
        """The edits a reviewer is making on job ``job_id``, if any are saved."""
        d = self.drafts.c
        with database_errors(), self.engine.connect() as conn:
            row = conn.execute(self.drafts.select().where(d.job_id == job_id)).first()
        if row is None:
            return None
        return Draft(parse_edits(json.loads(row.edits)), int(row.version), float(row.saved_at))

    def save_draft(self, job_id: str, edits: Sequence[Edit], version: int) -> Draft:
        """Save ``edits`` as job ``job_id``'s draft, the one after ``version`` (0: there
        was none); refused (``JobStateError``) when someone saved another since the
        caller read ``version``, so no reviewer's work silently replaces another's."""
        d = self.drafts.c
        saved = Draft(list(edits), version + 1, time.time())
        row = {
            "edits": json.dumps([e.to_json() for e in edits]),
            "version": saved.version,
            "saved_at": saved.saved_at,
        }
        with database_errors():
            if version == 0:
                try:
                    with self.engine.begin() as conn:
                        conn.execute(self.drafts.insert().values(job_id=job_id, **row))
                    taken = False
                except sa.exc.IntegrityError:  # a draft is there already
                    taken = True
            else:
                with self.engine.begin() as conn:
                    taken = not conn.execute(
                        self.drafts.update()
                        .where(d.job_id == job_id, d.version == version)
                        .values(**row)
                    ).rowcount
        if taken:
            raise JobStateError(
                job_id, "has edits saved by someone else meanwhile (another tab?); reload it"
            )
        return saved

    def thumbnail(self, job_id: str, track: int) -> bytes | None:
        t = self.thumbnails.c
        with database_errors(), self.engine.connect() as conn:
            picture = conn.execute(
                sa.select(t.picture).where(t.job_id == job_id, t.track == track)
            ).scalar()
        return bytes(picture) if picture is not None else None

    def start_render(self, job_id: str, edits: Sequence[Edit], renders: int) -> str:
        """Record ``edits`` and claim the next re-render's ID; refused (``JobStateError``)
        when another re-render was claimed since the caller read ``renders``."""
        render_id = f"{job_id}-r{renders + 1}"
        c = self.table.c
        with database_errors(), self.engine.begin() as conn:
            claimed = conn.execute(
                self.table.update()
                .where(c.job_id == job_id, c.renders == renders)
                .values(
                    edits=json.dumps([e.to_json() for e in edits]),
                    render_id=render_id,
                    renders=renders + 1,
                    updated_at=time.time(),
                )
            ).rowcount
            if claimed:  # the draft's edits are the re-render's now
                conn.execute(self.drafts.delete().where(self.drafts.c.job_id == job_id))
        if not claimed:
            raise JobStateError(job_id, "was re-rendered by someone else meanwhile; reload it")
        return render_id
