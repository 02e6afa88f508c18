"""What the ``veil`` commands share: the command group (``main``), the blur and encoding
options, and the one way every command reports a failure (``report_failure``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from veil.anonymizers import MODES
from veil.detector import DEVICES, PRECISIONS
from veil.errors import OptionError, VeilError
from veil.pipeline import BlurOptions
from veil.video import CODECS

PRESETS = (
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
)


_DEFAULTS = BlurOptions()
Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def option_group(*options: Decorator) -> Decorator:
    """Several click options applied as one decorator, listed in --help in this order."""

    def apply(f: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(options):
            f = option(f)
        return f

    return apply


def blur_option(flag: str, kind: Any, help: str) -> Decorator:
    """An option whose default is the ``BlurOptions`` field of the same name."""
    default = getattr(_DEFAULTS, flag.lstrip("-").replace("-", "_"))
    return click.option(flag, type=kind, default=default, show_default=True, help=help)


detection_options = option_group(
    blur_option(
        "--threshold",
        click.FloatRange(0, 1, min_open=True, max_open=True),
        "Lowest detector score counted as a face; lower finds more faces and more false alarms.",
    ),
    blur_option(
        "--scale",
        click.FloatRange(0, 4, min_open=True),
        "Finest detector scale, in input pixels per frame pixel: 2 finds faces down to 16 px, 1 from about 32 px at a quarter of the cost. Coarser scales are added by themselves, so close-ups that fill the frame are found whole.",
    ),
    blur_option(
        "--detect-every",
        click.IntRange(min=1),
        "Analyse the frame once in N frames, where it changed since the last analysis (the whole frame every sixth time, at once after a cut, twice as often while the picture is busy); between, faces that are new or move fast are looked for near where they are heading, and tracking covers the rest.",
    ),
    click.option(
        "--yunet/--no-yunet",
        default=_DEFAULTS.yunet,
        show_default=True,
        help="On each analysis, also look where the picture moved with a second detector (YuNet, another model family): it finds faces smeared by fast motion that the main detector misses. --no-yunet is faster and leaves those faces visible.",
    ),
    blur_option("--device", click.Choice(DEVICES), "Where the detector runs."),
    blur_option(
        "--precision",
        click.Choice(PRECISIONS),
        "Detector model: int8 (1.8x faster) or fp32; auto picks int8 on CPUs where its arithmetic is exact (VNNI, Arm), fp32 on x86 CPUs without VNNI (their int8 sums saturate and lose weak faces) and on CUDA.",
    ),
    blur_option(
        "--hold",
        click.FloatRange(min=0),
        "Seconds a box is kept before a face's first and after its last detection (at least two detection intervals).",
    ),
)

redaction_options = option_group(
    blur_option("--mode", click.Choice(MODES), "How faces are hidden."),
    blur_option(
        "--box-scale",
        click.FloatRange(1, 4),
        "Grow each face box by this factor before hiding it.",
    ),
    blur_option(
        "--codec",
        click.Choice(CODECS),
        "Output video codec. auto keeps the input's (H.264, HEVC, VP9, AV1) where the output container holds it, so a phone's 10-bit HDR HEVC stays HDR HEVC; otherwise the container's usual one (H.264; VP9 for .webm; MPEG-4 for .avi).",
    ),
    blur_option(
        "--crf", click.IntRange(0, 51), "Quality (x264's scale): lower is better and bigger."
    ),
    blur_option("--preset", click.Choice(PRESETS), "Encoder speed preset (x264, x265)."),
    click.option(
        "--keep-audio/--no-audio",
        default=True,
        show_default=True,
        help="Copy the audio streams.",
    ),
    click.option(
        "--keep-metadata",
        is_flag=True,
        default=_DEFAULTS.keep_metadata,
        help="Copy every tag of the input as it was, and its cover art. By default only the tags players need are kept (language, timecode, creation time) and the rest is removed: location, device make, model and serial numbers, owner, software, titles, cover art and data tracks (telemetry). The faces file (--faces-out, a job's faces.json) lists what was removed.",
    ),
    click.option(
        "--strip-time",
        is_flag=True,
        default=_DEFAULTS.strip_time,
        help="Remove the creation time too (also with --keep-metadata).",
    ),
)
quiet_option = click.option("-q", "--quiet", is_flag=True, help="No progress bar.")

_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def as_duration(seconds: float) -> str:
    """``seconds`` as ``duration`` reads it, in the largest unit it is a whole number of."""
    for unit, size in sorted(_DURATION_UNITS.items(), key=lambda u: -u[1]):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}"


def duration(_ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    """A length of time in seconds, from seconds or a number with ``s``, ``m``, ``h`` or
    ``d`` (``30d``)."""
    if value is None:
        return None
    text = value.strip().lower()
    unit = _DURATION_UNITS.get(text[-1:])
    try:
        seconds = float(text[:-1] if unit else text) * (unit or 1)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not a duration (30d, 12h, 45m or seconds)", param=param
        ) from None
    if not 0 <= seconds < float("inf"):
        raise click.BadParameter(f"{value!r} is not a duration of 0 or more", param=param)
    return seconds


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="veil")
def main() -> None:
    """veil: find every face in a video and anonymize it, offline."""


def report_failure(exc: BaseException, src: Path | None = None) -> int:
    """The one policy for failures of every command: print one line and return the exit
    code: 2 for a bad option or usage, 1 for anything else (and a bug says so)."""
    where = f"{src}: " if src is not None else ""
    if isinstance(exc, OptionError | click.UsageError):
        message, code = str(exc) if isinstance(exc, OptionError) else exc.format_message(), 2
    elif isinstance(exc, VeilError):
        message, code = str(exc), 1
    elif isinstance(exc, OSError):  # anything the pipeline did not translate
        message, code = f"{where}{exc.strerror or exc}", 1
    else:
        message, code = f"{where}unexpected {type(exc).__name__}: {exc} (please report this)", 1
    click.echo(f"veil: error: {message}", err=True)
    return code


def blur_options_from(opts: dict[str, Any]) -> BlurOptions:
    try:
        return BlurOptions(**opts)
    except OptionError as exc:
        raise click.UsageError(str(exc)) from exc
