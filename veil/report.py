"""The privacy report: what veil did to one video, in a small JSON file a person or a
program can check.

It names the input and output by SHA-256 (so the report proves which files it speaks
of), the veil version, detector and settings, what the detector saw (frames analysed,
tracks), the audit's result, every reviewer's edit and the metadata removed. ``veil blur
--report FILE`` writes one; each service job has one (``GET /api/jobs/{id}/report``, and
``KEY.veil.json`` beside the output with ``--write-report``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import veil
from veil.audit import audit_video, service_sampling, track_edges
from veil.detector import cpu_instruction_sets
from veil.photos import PhotoResult
from veil.pipeline import BlurOptions, RunResult

FORMAT = "veil-privacy-report/1"

_CHUNK = 1024 * 1024


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@dataclasses.dataclass(frozen=True)
class RunSummary:
    """What a run saw, as plain data: a service step's result, and the report's source.
    A segmented job's Join adds ``segments`` and the audit joined from its segments'
    pieces (``audit``; ``None`` where a seam was repaired and the output is audited whole)."""

    frames: int
    frames_analysed: int
    frames_followed: int
    tracks: int
    metadata_removed: dict[str, list[str]] | None
    video: dict[str, Any]
    """``width``, ``height``, ``fps``, ``duration_s`` and ``codec`` of the input."""
    segments: int | None = None
    audit: dict[str, Any] | None = None
    photo: bool = False
    """A photo: one look, with no motion for YuNet (``veil.yunet``) to look at."""


def run_summary(result: RunResult, **joined: Any) -> RunSummary:
    """What ``result``'s run saw; ``joined``: ``segments`` and ``audit`` of a Join."""
    info = result.info
    return RunSummary(
        frames=result.frames,
        frames_analysed=result.analysed,
        frames_followed=result.followed,
        tracks=result.tracks,
        metadata_removed=result.metadata_removed,
        video={
            "width": info.width,
            "height": info.height,
            "fps": info.fps,
            "duration_s": info.duration,
            "codec": info.codec,
        },
        **joined,
    )


def photo_summary(result: PhotoResult) -> RunSummary:
    """A photo as reports see a run: a video of one frame, each face a track."""
    return RunSummary(
        frames=1,
        frames_analysed=1,
        frames_followed=0,
        tracks=len(result.faces),
        metadata_removed=result.metadata_removed,
        photo=True,
        video={
            "width": result.width,
            "height": result.height,
            "fps": 0.0,
            "duration_s": 0.0,
            "codec": result.format.lower(),
        },
    )


def settings(options: BlurOptions) -> dict[str, Any]:
    """The options that shaped the output (not how many threads ran it)."""
    data = dataclasses.asdict(options)
    data.pop("threads", None)
    return data


def privacy_report(
    *,
    input_name: str,
    input_sha256: str,
    output_name: str,
    output_sha256: str,
    options: BlurOptions,
    run: RunSummary,
    audit: Mapping[str, Any] | None,
    edits: Sequence[Mapping[str, Any]] = (),
    redacted_from: str = "detections",
) -> dict[str, Any]:
    """The report as a JSON-ready dict. ``run`` is ``run_summary`` of the pass that
    made the output; ``redacted_from`` says whether that pass detected faces
    (``"detections"``) or applied a reviewed faces file (``"reviewed detections"``)."""
    if run.photo:  # the report names what ran: YuNet looks only where a video moved
        options = dataclasses.replace(options, yunet=False)
    detector = options.detector_name()
    return {
        "format": FORMAT,
        "veil_version": veil.__version__,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "input": {"name": input_name, "sha256": input_sha256},
        "output": {"name": output_name, "sha256": output_sha256},
        "detector": {
            "model": detector,
            "threshold": options.threshold,
            "scale": options.scale,
            "detect_every": options.detect_every,
            "device": options.device,
            "cpu_instruction_sets": cpu_instruction_sets(),
        },
        "settings": settings(options),
        "redacted_from": redacted_from,
        "video": run.video,
        "frames": run.frames,
        "frames_analysed": run.frames_analysed,
        "frames_followed": run.frames_followed,
        "tracks": run.tracks,
        "audit": dict(audit) if audit is not None else None,
        "edits": [dict(e) for e in edits],
        "metadata_removed": run.metadata_removed,
    }


def service_audit(
    output_path: Path,
    faces_path: Path,
    *,
    frames: int,
    fps: float,
    device: str,
    progress: Callable[[int, int | None], None] | None = None,
    start_ms: int | None = None,
) -> dict[str, Any]:
    """Audit an output of ``frames`` frames at ``fps`` within the service's budget
    (``veil.audit.service_sampling``), looking hardest where the faces file's tracks
    start and end; as JSON. ``start_ms``: the output is a segment's piece starting there."""
    sampling = service_sampling(frames, fps)
    return audit_video(
        output_path,
        focus_ms=track_edges(faces_path),
        progress=progress,
        device=device,
        start_ms=start_ms,
        **sampling,
    ).to_json()


def audit_and_report(
    *,
    input_path: Path,
    output_path: Path,
    faces_path: Path,
    input_name: str,
    output_name: str,
    options: BlurOptions,
    run: RunSummary,
    edits: Sequence[Mapping[str, Any]] = (),
    redacted_from: str = "detections",
    progress: Callable[[int, int | None], None] | None = None,
    audit: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Audit an output (``service_audit``) and report on it: the one way ``veil blur
    --report`` and a service job make their report. ``audit``: the output's audit,
    already made (a segmented job's, from its segments' pieces)."""
    if audit is None:
        audit = service_audit(
            output_path,
            faces_path,
            frames=run.frames,
            fps=float(run.video.get("fps") or 30.0),
            device=options.device,
            progress=progress,
        )
    return privacy_report(
        input_name=input_name,
        input_sha256=sha256_file(input_path),
        output_name=output_name,
        output_sha256=sha256_file(output_path),
        options=options,
        run=run,
        audit=audit,
        edits=edits,
        redacted_from=redacted_from,
    )


def write_report(report: Mapping[str, Any], path: str | Path) -> None:
    Path(path).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
