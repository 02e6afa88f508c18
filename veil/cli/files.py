"""The commands on files, no service needed: ``veil blur``, ``detect``, ``redact``,
``audit`` and ``sample``."""

from __future__ import annotations

import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from veil import faces_file
from veil.cli.common import (
    blur_option,
    blur_options_from,
    detection_options,
    main,
    quiet_option,
    redaction_options,
    report_failure,
)
from veil.detector import DEVICES
from veil.errors import NotAVideoError, VeilError
from veil.photos import (
    PHOTO_EXTENSIONS,
    PhotoResult,
    audit_photo,
    blur_photo,
    detect_photo,
    detector_for,
    is_photo_path,
    open_photo,
)
from veil.pipeline import (
    BlurOptions,
    ProgressCallback,
    RunResult,
    blur_video,
    detect_video,
    redact_video,
)
from veil.report import (
    audit_and_report,
    photo_summary,
    privacy_report,
    run_summary,
    sha256_file,
    write_report,
)
from veil.review import Edit, apply_edits, check_edits
from veil.storage.local import fitting_name
from veil.video import VIDEO_EXTENSIONS, is_video_path, probe
from veil.words import counted


def _output_folder_if_slashed(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> Path | None:
    """``-o``'s path; one written with a trailing slash names a folder, made if need be, so
    one file goes into it (``Path`` forgets the slash, and the folder's name would be
    taken as the file's)."""
    if value is None:
        return None
    path = Path(value)
    if value.endswith(("/", os.sep)):
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise click.BadParameter(f"cannot make the folder {path}: {exc.strerror}") from None
    return path


@main.command()
@click.argument("input_path", metavar="INPUT", type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(),
    callback=_output_folder_if_slashed,
    help="Output file, or a folder to write into under the same name (one that exists, "
    "or ends with /, or any when INPUT is a folder). Default: INPUT.blurred.EXT beside it.",
)
@click.option(
    "--faces-out",
    type=click.Path(path_type=Path),
    help="Also write the detections to this faces.json (for a folder: a folder).",
)
@click.option(
    "--report",
    "report_out",
    type=click.Path(path_type=Path),
    help="Also audit the output for faces left visible and write a privacy report (JSON: versions, settings, what was found, the audit, SHA-256 of input and output) to this file (for a folder: a folder).",
)
@detection_options
@redaction_options
@quiet_option
def blur(
    input_path: Path,
    output: Path | None,
    faces_out: Path | None,
    report_out: Path | None,
    quiet: bool,
    **opts: Any,
) -> None:
    """Write a copy of INPUT (a video or a photo, or a folder of both) with every face
    anonymized. Photos keep their format and lose their hidden thumbnails and previews
    and their identifying metadata (unless --keep-metadata); see docs/photos.md."""
    options = blur_options_from(opts)
    jobs = _planned(input_path, output, ".blurred")
    detector = options.detector() if any(not is_photo_path(s) for s, _ in jobs) else None
    photo_detector = detector_for(options) if any(is_photo_path(s) for s, _ in jobs) else None
    many = input_path.is_dir()
    show = not quiet and sys.stderr.isatty()

    def run(src: Path, dst: Path, progress: ProgressCallback) -> RunResult | PhotoResult:
        faces = _beside(faces_out, src, many, ".faces.json")
        report = _beside(report_out, src, many, ".veil.json")
        if is_photo_path(src):
            hidden = blur_photo(src, dst, options, faces_out=faces, detector=photo_detector)
            if report is not None:
                _report_photo(src, dst, options, hidden, report, quiet)
            return hidden
        if report is None:
            return blur_video(
                src, dst, options, faces_out=faces, detector=detector, progress=progress
            )
        with tempfile.TemporaryDirectory(prefix="veil-") as tmp:
            faces = faces or Path(tmp) / "faces.json"  # the audit looks where tracks end
            result = blur_video(
                src, dst, options, faces_out=faces, detector=detector, progress=progress
            )
            with _progress(src, show, "audit") as audit_progress:
                made = audit_and_report(
                    input_path=src,
                    output_path=dst,
                    faces_path=faces,
                    input_name=src.name,
                    output_name=dst.name,
                    options=options,
                    run=run_summary(result),
                    progress=audit_progress,
                )
        write_report(made, report)
        _say_audit(dst, made["audit"], report, quiet)
        return result

    _run_all(jobs, run, quiet, verb="blurred")


def _say_audit(dst: Path, audit: dict[str, Any], report: Path, quiet: bool) -> None:
    if not audit["passed"]:
        click.echo(
            f"veil: warning: {dst}: the audit found {len(audit['findings'])} face(s) that "
            f"may still be visible ({audit['coverage']}); see {report} and check them "
            f"(veil audit {dst})",
            err=True,
        )
    elif not quiet:
        click.echo(f"{dst}: audit {audit['verdict']} ({audit['coverage']})", err=True)


def _report_photo(
    src: Path, dst: Path, options: BlurOptions, made: PhotoResult, report: Path, quiet: bool
) -> None:
    """``--report`` for a photo: its output audited (``audit_photo``) and reported on as a
    video of one frame."""
    made_report = privacy_report(
        input_name=src.name,
        input_sha256=sha256_file(src),
        output_name=dst.name,
        output_sha256=sha256_file(dst),
        options=options,
        run=photo_summary(made),
        audit=audit_photo(dst).to_json(),
    )
    write_report(made_report, report)
    _say_audit(dst, made_report["audit"], report, quiet)


@main.command()
@click.argument("input_path", metavar="INPUT", type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    help="faces.json to write. Default: INPUT.faces.json beside it.",
)
@detection_options
@quiet_option
def detect(input_path: Path, output: Path | None, quiet: bool, **opts: Any) -> None:
    """Write the faces found in INPUT (a video or a photo) as a faces.json (the cloud
    face-detection result format)."""
    options = blur_options_from(opts)
    if input_path.is_dir():
        raise click.UsageError("veil detect takes one video or photo")
    dst = output or input_path.with_name(input_path.name + ".faces.json")
    _run_all(
        [(input_path, dst)],
        lambda s, d, p: (
            detect_photo(s, d, options)
            if is_photo_path(s)
            else detect_video(s, d, options, progress=p)
        ),
        quiet,
        verb="analysed",
    )


@main.command()
@click.argument("input_path", metavar="INPUT", type=click.Path(path_type=Path))
@click.option(
    "--faces",
    "faces_path",
    required=True,
    type=click.Path(path_type=Path),
    help="faces.json from veil detect, possibly edited.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    help="Output file. Default: INPUT.blurred.EXT beside it.",
)
@click.option(
    "--keep-track",
    "keep_tracks",
    type=click.IntRange(min=0),
    multiple=True,
    metavar="N",
    help="Leave the face of track N (its TrackId in the faces file) visible: someone who agreed to be shown. Repeatable.",
)
@click.option(
    "--hide",
    "hide",
    multiple=True,
    metavar="START-END:X,Y,W,H",
    callback=lambda _ctx, param, values: [_hidden_box(param, v) for v in values],
    help="Also hide a box from START to END (seconds, or M:SS) at X,Y (its top left corner) W wide and H high, in pixels of the picture as a player shows it: a face the detector missed, a name badge, a screen. Repeatable.",
)
@click.option(
    "--force",
    is_flag=True,
    help="Use a faces file made for another video (another frame size or duration) all the same.",
)
@blur_option(
    "--hold",
    click.FloatRange(min=0),
    "Seconds a box is kept around the timestamps it is listed at.",
)
@redaction_options
@quiet_option
def redact(
    input_path: Path,
    faces_path: Path,
    output: Path | None,
    keep_tracks: tuple[int, ...],
    hide: list[_HiddenBox],
    force: bool,
    quiet: bool,
    **opts: Any,
) -> None:
    """Anonymize the faces listed in a faces.json file, without running the detector;
    with --keep-track and --hide, as a reviewer would edit it (the file itself is not
    changed)."""
    options = blur_options_from({**opts, "detect_every": 1})
    if input_path.is_dir():
        raise click.UsageError("veil redact takes one video file")
    jobs = _planned(input_path, output, ".blurred")
    if not (keep_tracks or hide):
        _run_all(
            jobs,
            lambda s, d, p: redact_video(s, faces_path, d, options, progress=p, force=force),
            quiet,
            verb="redacted",
        )
        return
    try:
        edited = _edited(input_path, faces_path, keep_tracks, hide, force=force)
    except (VeilError, click.UsageError) as exc:
        sys.exit(report_failure(exc))
    with tempfile.TemporaryDirectory(prefix="veil-") as tmp:
        edited_path = Path(tmp) / "faces.json"
        faces_file.save(edited, edited_path)
        _run_all(
            jobs,
            lambda s, d, p: redact_video(s, edited_path, d, options, progress=p, force=True),
            quiet,
            verb="redacted",
        )


def _edited(
    video: Path,
    faces_path: Path,
    keep_tracks: Sequence[int],
    hide: Sequence[_HiddenBox],
    *,
    force: bool,
) -> dict[str, Any]:
    """The faces file with ``--keep-track`` and ``--hide`` applied as a reviewer's edits
    (``veil.review``); refused in plain words when they do not fit it or the video."""
    info = probe(video)
    data = faces_file.load(faces_path)
    if not force:
        faces_file.check_made_for(data, info, faces_path)
    known = faces_file.track_ids(data)
    for track in keep_tracks:
        if track not in known:
            raise click.UsageError(f"--keep-track {track}: {faces_path} has no track {track}")
    edits = [Edit(action="show", track=n) for n in keep_tracks]
    edits += [box.edit(info.width, info.height) for box in hide]
    try:
        check_edits(data, edits)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    return apply_edits(data, edits)


@dataclass(frozen=True)
class _HiddenBox:
    """A ``--hide`` box: seconds, and pixels of the displayed picture."""

    start: float
    end: float
    x: float
    y: float
    width: float
    height: float

    def edit(self, frame_width: int, frame_height: int) -> Edit:
        """The reviewer's ``add`` edit this box is, in a ``frame_width`` x ``frame_height``
        picture; ``click.UsageError`` for a box outside it."""
        if self.x + self.width > frame_width or self.y + self.height > frame_height:
            raise click.UsageError(
                f"--hide: the box {self.x:g},{self.y:g},{self.width:g},{self.height:g} goes "
                f"beyond the {frame_width}x{frame_height} picture"
            )
        box = (
            self.x / frame_width,
            self.y / frame_height,
            self.width / frame_width,
            self.height / frame_height,
        )
        start_ms, end_ms = round(self.start * 1000), round(self.end * 1000)
        return Edit(action="add", box=box, start_ms=start_ms, end_ms=end_ms, note="--hide")


_NUMBER = r"\s*(\d+(?:\.\d*)?)\s*"
_HIDE = re.compile(rf"^\s*(\S+?)\s*-\s*(\S+?)\s*:{_NUMBER},{_NUMBER},{_NUMBER},{_NUMBER}$")


def _seconds(text: str) -> float:
    """Seconds from ``12.5`` or ``M:SS(.s)``."""
    minutes, _, rest = text.rpartition(":")
    value = float(rest) + 60 * (int(minutes) if minutes else 0)
    if not 0 <= value < float("inf"):
        raise ValueError(text)
    return value


def _hidden_box(param: click.Parameter, value: str) -> _HiddenBox:
    """Parse ``START-END:X,Y,W,H``."""
    problem = f"{value!r}: expected START-END:X,Y,W,H (for example 1.5-4:100,80,60,60)"
    found = _HIDE.match(value)
    if not found:
        raise click.BadParameter(problem, param=param)
    try:
        start, end = _seconds(found[1]), _seconds(found[2])
        x, y, w, h = (float(found[n]) for n in range(3, 7))
    except ValueError:
        raise click.BadParameter(problem, param=param) from None
    if not (end >= start and w > 0 and h > 0 and x >= 0 and y >= 0):
        raise click.BadParameter(
            f"{value!r}: END must not come before START, and the box needs a positive size "
            "at X, Y of 0 or more",
            param=param,
        )
    return _HiddenBox(start, end, x, y, w, h)


AUDIT_FINDINGS_EXIT = 3
"""``veil audit``'s exit status when it finds a face (0: none, 1: an error)."""


@main.command()
@click.argument("input_path", metavar="INPUT", type=click.Path(path_type=Path))
@click.option(
    "--json", "as_json", is_flag=True, help="Print the result as JSON (see docs/audit.md)."
)
@click.option(
    "--every",
    type=click.IntRange(min=1),
    default=5,
    show_default=True,
    help="Check one frame in N (1: every frame). Every frame is decoded either way.",
)
@blur_option("--device", click.Choice(DEVICES), "Where the detector runs.")
@quiet_option
def audit(input_path: Path, as_json: bool, every: int, device: str, quiet: bool) -> None:
    """List the faces in INPUT (a video or a photo) that are still recognisable (a second
    opinion on an output).

    A more sensitive detector than veil blur's looks at sampled frames; a face counts only
    if a second look finds it again and it still shows fine detail, so the faces veil
    blurred, pixelated or covered do not. Exit status: 0 when none is found, 3 when any
    is, 1 on error.
    """
    import json

    from veil.audit import audit_video
    from veil.video import probe

    try:
        if is_photo_path(input_path):
            photo = open_photo(input_path)
            result = audit_photo(photo, device=device)
            width, height = photo.width, photo.height
        else:
            info = probe(input_path)
            width, height = info.width, info.height
            with _progress(input_path, not quiet and sys.stderr.isatty()) as progress:
                result = audit_video(input_path, every=every, device=device, progress=progress)
    except Exception as exc:  # one line, exit 1 (2 for a bad option)
        sys.exit(report_failure(exc, input_path))
    if as_json:
        click.echo(json.dumps({"video": str(input_path), **result.to_json()}, indent=2))
    else:
        for finding in result.findings:
            left, top, w, h = finding.pixels(width, height)
            click.echo(
                f"{_clock(finding.start_ms)}-{_clock(finding.end_ms)}  "
                f"box {w}x{h} at {left},{top}  score {finding.score:.2f}  "
                f"seen on {finding.frames} checked frame{'s' if finding.frames != 1 else ''}"
            )
        if not quiet:
            found = result.to_json()
            click.echo(f"{input_path}: {found['verdict']} ({found['coverage']})", err=True)
    sys.exit(0 if result.passed else AUDIT_FINDINGS_EXIT)


def _clock(ms: int) -> str:
    """``ms`` as ``M:SS.mmm``."""
    minutes, rest = divmod(ms, 60_000)
    return f"{minutes}:{rest / 1000:06.3f}"


@main.command()
@click.argument("output", type=click.Path(path_type=Path), default="sample.mp4")
@click.option("--width", default=1280, show_default=True)
@click.option("--height", default=720, show_default=True)
@click.option("--frames", default=150, show_default=True)
def sample(output: Path, width: int, height: int, frames: int) -> None:
    """Make a demo video with faces of several sizes (needs the samples extra)."""
    try:
        from veil.synthetic import demo_scene, write_video
    except ImportError as exc:
        raise click.ClickException(f"{exc}; install with: pip install 'veil[samples]'") from exc
    write_video(output, demo_scene(width, height, frames))
    click.echo(f"wrote {output} ({width}x{height}, {frames} frames)")


def _planned(input_path: Path, output: Path | None, tag: str) -> list[tuple[Path, Path]]:
    """``_plan``'s pairs, or exit with its refusal in the one-line form of every error."""
    try:
        return list(_plan(input_path, output, tag))
    except (VeilError, click.UsageError) as exc:
        sys.exit(report_failure(exc))


def _plan(input_path: Path, output: Path | None, tag: str) -> Iterator[tuple[Path, Path]]:
    """(input, output) pairs: one file, or every video in a folder."""
    if not input_path.is_dir():
        if output is not None and output.is_dir():  # -o a folder: the file goes in it
            output = output / input_path.name
        yield input_path, output or _tagged(input_path, tag)
        return
    if output is not None and output.exists() and not output.is_dir():
        raise click.UsageError(f"{output}: INPUT is a folder, so -o must be a folder")
    videos = sorted(
        p
        for p in input_path.iterdir()
        if p.is_file() and (is_video_path(p) or is_photo_path(p)) and tag not in p.stem
    )
    if not videos:
        kinds = ", ".join((*VIDEO_EXTENSIONS, *PHOTO_EXTENSIONS))
        raise NotAVideoError(input_path, f"a folder with no videos or photos ({kinds}) in it")
    if output is not None:
        output.mkdir(parents=True, exist_ok=True)
    for src in videos:
        yield src, (output / src.name) if output else _tagged(src, tag)


def _tagged(src: Path, tag: str) -> Path:
    """``src`` with ``tag`` before its suffix, within the file system's name limit."""
    return src.with_name(fitting_name(src.stem, f"{tag}{src.suffix}"))


def _beside(out: Path | None, src: Path, many: bool, suffix: str) -> Path | None:
    """Where a side file (faces.json, report) of ``src`` goes: ``out`` itself, or for a
    folder of videos ``out/NAME`` + ``suffix``."""
    if out is None:
        return None
    if many:
        out.mkdir(parents=True, exist_ok=True)
        return out / f"{src.name}{suffix}"
    return out


Runner = Callable[[Path, Path, ProgressCallback], RunResult | PhotoResult]


def _run_all(jobs: list[tuple[Path, Path]], run: Runner, quiet: bool, *, verb: str) -> None:
    """Run each job, report each failure in one line and go on; exit 1 if any failed."""
    for src, dst in jobs:
        if src.resolve() == dst.resolve():
            sys.exit(
                report_failure(click.UsageError(f"{src}: the output would overwrite the input"))
            )
    failed = 0
    show = not quiet and sys.stderr.isatty()
    for src, dst in jobs:
        try:
            with _progress(src, show) as progress:
                result = run(src, dst, progress)
        except Exception as exc:  # each file's failure is one line; the others go on
            report_failure(exc, src)
            failed += 1
            continue
        if not quiet:
            done = (
                f"{counted(len(result.faces), 'face')} found"
                if isinstance(result, PhotoResult)
                else f"{counted(result.frames, 'frame')}, {counted(result.tracks, 'face')} tracked"
            )
            click.echo(f"{src} -> {dst}: {verb} {done}", err=True)
    if failed:
        if len(jobs) > 1:
            click.echo(f"veil: {failed} of {len(jobs)} files failed", err=True)
        sys.exit(1)


@contextmanager
def _progress(src: Path, show: bool, what: str = "") -> Iterator[ProgressCallback]:
    """A progress bar on standard error for work on ``src`` (``what``: which work)."""
    if not show:
        yield lambda done, total: None
        return
    from tqdm import tqdm

    desc = f"{src.name} {what}".strip()
    with tqdm(desc=desc, unit="frame", dynamic_ncols=True, leave=False) as bar:

        def update(done: int, total: int | None) -> None:
            if total and bar.total != total:
                bar.total = total
            bar.update(done - bar.n)

        yield update
