"""The ``veil`` command: blur, detect, redact, sample."""

from __future__ import annotations

import contextlib
import dataclasses
import re
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from veil.anonymizers import MODES
from veil.detector import DEVICES, PRECISIONS
from veil.errors import NotAVideoError, OptionError, VeilError
from veil.pipeline import (
    BlurOptions,
    ProgressCallback,
    RunResult,
    blur_video,
    detect_video,
    redact_video,
)
from veil.report import audit_and_report, run_summary, write_report
from veil.storage.local import fitting_name
from veil.video import (
    CODECS,
    MAX_FPS,
    MAX_INPUT_BYTES,
    MAX_PIXEL_RATE,
    VIDEO_EXTENSIONS,
    is_video_path,
)

if TYPE_CHECKING:  # the service pulls DBOS and FastAPI: imported only when it runs
    from veil.service import ServeOptions

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


def _option_group(*options: Decorator) -> Decorator:
    """Several click options applied as one decorator, listed in --help in this order."""

    def apply(f: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(options):
            f = option(f)
        return f

    return apply


def _blur_option(flag: str, kind: Any, help: str) -> Decorator:
    """An option whose default is the ``BlurOptions`` field of the same name."""
    default = getattr(_DEFAULTS, flag.lstrip("-").replace("-", "_"))
    return click.option(flag, type=kind, default=default, show_default=True, help=help)


_detection_options = _option_group(
    _blur_option(
        "--threshold",
        click.FloatRange(0, 1, min_open=True, max_open=True),
        "Lowest detector score counted as a face; lower finds more faces and more false alarms.",
    ),
    _blur_option(
        "--scale",
        click.FloatRange(0, 4, min_open=True),
        "Finest detector scale, in input pixels per frame pixel: 2 finds faces down to 16 px, 1 from about 32 px at a quarter of the cost. Coarser scales are added by themselves, so close-ups that fill the frame are found whole.",
    ),
    _blur_option(
        "--detect-every",
        click.IntRange(min=1),
        "Analyse the frame once in N frames, where it changed since the last analysis (the whole frame every sixth time, at once after a cut, twice as often while the picture is busy); between, faces that are new or move fast are looked for near where they are heading, and tracking covers the rest.",
    ),
    _blur_option("--device", click.Choice(DEVICES), "Where the detector runs."),
    _blur_option(
        "--precision",
        click.Choice(PRECISIONS),
        "Detector model: int8 (1.8x faster) or fp32; auto picks int8 on CPUs where its arithmetic is exact (VNNI, Arm), fp32 on x86 CPUs without VNNI (their int8 sums saturate and lose weak faces) and on CUDA.",
    ),
    _blur_option(
        "--hold",
        click.FloatRange(min=0),
        "Seconds a box is kept before a face's first and after its last detection (at least two detection intervals).",
    ),
)

_redaction_options = _option_group(
    _blur_option("--mode", click.Choice(MODES), "How faces are hidden."),
    _blur_option(
        "--box-scale",
        click.FloatRange(1, 4),
        "Grow each face box by this factor before hiding it.",
    ),
    _blur_option(
        "--codec",
        click.Choice(CODECS),
        "Output video codec. auto keeps the input's (H.264, HEVC, VP9, AV1) where the output container holds it, so a phone's 10-bit HDR HEVC stays HDR HEVC; otherwise the container's usual one (H.264; VP9 for .webm; MPEG-4 for .avi).",
    ),
    _blur_option(
        "--crf", click.IntRange(0, 51), "Quality (x264's scale): lower is better and bigger."
    ),
    _blur_option("--preset", click.Choice(PRESETS), "Encoder speed preset (x264, x265)."),
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
_quiet_option = click.option("-q", "--quiet", is_flag=True, help="No progress bar.")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="veil")
def main() -> None:
    """veil: find every face in a video and anonymize it, offline."""


@main.command()
@click.argument("input_path", metavar="INPUT", type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    help="Output file, or folder when INPUT is a folder. Default: INPUT.blurred.EXT beside it.",
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
@_detection_options
@_redaction_options
@_quiet_option
def blur(
    input_path: Path,
    output: Path | None,
    faces_out: Path | None,
    report_out: Path | None,
    quiet: bool,
    **opts: Any,
) -> None:
    """Write a copy of INPUT (a video, or a folder of videos) with every face anonymized."""
    options = _options(opts)
    jobs = _planned(input_path, output, ".blurred")
    detector = options.detector() if jobs else None
    many = input_path.is_dir()

    def run(src: Path, dst: Path, progress: ProgressCallback) -> RunResult:
        faces = _beside(faces_out, src, many, ".faces.json")
        report = _beside(report_out, src, many, ".veil.json")
        if report is None:
            return blur_video(
                src, dst, options, faces_out=faces, detector=detector, progress=progress
            )
        with tempfile.TemporaryDirectory(prefix="veil-") as tmp:
            faces = faces or Path(tmp) / "faces.json"  # the audit looks where tracks end
            result = blur_video(
                src, dst, options, faces_out=faces, detector=detector, progress=progress
            )
            made = audit_and_report(
                input_path=src,
                output_path=dst,
                faces_path=faces,
                input_name=src.name,
                output_name=dst.name,
                options=options,
                run=run_summary(result),
            )
        write_report(made, report)
        if not made["audit"]["passed"]:
            found = len(made["audit"]["findings"])
            click.echo(
                f"veil: warning: {dst}: the audit found {found} face(s) that may still be "
                f"visible; see {report} and check them (veil audit {dst})",
                err=True,
            )
        return result

    _run_all(jobs, run, quiet, verb="blurred")


@main.command()
@click.argument("input_path", metavar="INPUT", type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    help="faces.json to write. Default: INPUT.faces.json beside it.",
)
@_detection_options
@_quiet_option
def detect(input_path: Path, output: Path | None, quiet: bool, **opts: Any) -> None:
    """Write the faces found in INPUT as a faces.json (the cloud face-detection result format)."""
    options = _options(opts)
    if input_path.is_dir():
        raise click.UsageError("veil detect takes one video file")
    dst = output or input_path.with_name(input_path.name + ".faces.json")
    _run_all(
        [(input_path, dst)],
        lambda s, d, p: detect_video(s, d, options, progress=p),
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
@_blur_option(
    "--hold",
    click.FloatRange(min=0),
    "Seconds a box is kept around the timestamps it is listed at.",
)
@_redaction_options
@_quiet_option
def redact(
    input_path: Path, faces_path: Path, output: Path | None, quiet: bool, **opts: Any
) -> None:
    """Anonymize the faces listed in a faces.json file, without running the detector."""
    options = _options({**opts, "detect_every": 1})
    if input_path.is_dir():
        raise click.UsageError("veil redact takes one video file")
    jobs = _planned(input_path, output, ".blurred")
    _run_all(
        jobs,
        lambda s, d, p: redact_video(s, faces_path, d, options, progress=p),
        quiet,
        verb="redacted",
    )


AUDIT_FINDINGS_EXIT = 3
"""``veil audit``'s exit status when it finds a face (0: none, 1: an error)."""


@main.command()
@click.argument("input_path", metavar="VIDEO", type=click.Path(path_type=Path))
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
@_blur_option("--device", click.Choice(DEVICES), "Where the detector runs.")
@_quiet_option
def audit(input_path: Path, as_json: bool, every: int, device: str, quiet: bool) -> None:
    """List the faces in VIDEO that are still recognisable (a second opinion on an output).

    A more sensitive detector than veil blur's looks at sampled frames; a face counts only
    if a second look finds it again and it still shows fine detail, so the faces veil
    blurred, pixelated or covered do not. Exit status: 0 when none is found, 3 when any
    is, 1 on error.
    """
    import json

    from veil.audit import audit_video
    from veil.video import probe

    try:
        info = probe(input_path)
        with _progress(input_path, not quiet and sys.stderr.isatty()) as progress:
            result = audit_video(input_path, every=every, device=device, progress=progress)
    except Exception as exc:  # one line, exit 1 (2 for a bad option)
        sys.exit(_report(exc, input_path))
    if as_json:
        click.echo(json.dumps({"video": str(input_path), **result.to_json()}, indent=2))
    else:
        for finding in result.findings:
            left, top, width, height = finding.pixels(info.width, info.height)
            click.echo(
                f"{_clock(finding.start_ms)}-{_clock(finding.end_ms)}  "
                f"box {width}x{height} at {left},{top}  score {finding.score:.2f}  "
                f"seen on {finding.frames} checked frame{'s' if finding.frames != 1 else ''}"
            )
        if not quiet:
            verdict = (
                "no recognisable face found"
                if result.passed
                else f"{len(result.findings)} face(s) still recognisable"
            )
            click.echo(
                f"{input_path}: {verdict} ({result.frames_checked} of "
                f"{result.frames_total} frames checked)",
                err=True,
            )
    sys.exit(0 if result.passed else AUDIT_FINDINGS_EXIT)


def _clock(ms: int) -> str:
    """``ms`` as ``M:SS.mmm``."""
    minutes, rest = divmod(ms, 60_000)
    return f"{minutes}:{rest / 1000:06.3f}"


# Their parameter names are ServeOptions' field names, so they pass through as they are.
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _duration(_ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
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


_service_options = _option_group(
    click.option(
        "--data",
        type=click.Path(path_type=Path),
        default=Path("veil-data"),
        show_default=True,
        help="Folder for the embedded defaults: input/, output/, veil.sqlite, work/.",
    ),
    click.option(
        "--input",
        "input",
        help="Input bucket: a folder or s3://bucket/prefix. Default: DATA/input.",
    ),
    click.option(
        "--output",
        "output",
        help="Output bucket: a folder or s3://bucket/prefix. Default: DATA/output.",
    ),
    click.option(
        "--s3-endpoint",
        envvar="VEIL_S3_ENDPOINT",
        help="S3-compatible endpoint URL (MinIO, SeaweedFS, ...); AWS when not given. Credentials: the usual AWS_* variables or ~/.aws.",
    ),
    click.option(
        "--database",
        envvar="VEIL_DATABASE",
        help="Job database: sqlite:///FILE (default DATA/veil.sqlite) or postgresql://...",
    ),
    click.option(
        "--workers",
        type=click.IntRange(min=1),
        default=1,
        show_default=True,
        help="Jobs run at once by this process.",
    ),
    click.option(
        "--worker-id",
        help="This process's name in the job database (default: HOST:DATA). A restarted process with the same name resumes its unfinished jobs; no two running processes may share one.",
    ),
    click.option(
        "--max-size",
        "max_bytes",
        type=click.IntRange(min=1),
        default=MAX_INPUT_BYTES,
        show_default=True,
        help="Largest input accepted, in bytes.",
    ),
    click.option(
        "--max-duration",
        metavar="DURATION",
        default="12h",
        show_default=True,
        callback=_duration,
        help="Longest video accepted (30d, 12h, 45m or seconds).",
    ),
    click.option(
        "--max-fps",
        type=click.FloatRange(min=1),
        default=MAX_FPS,
        show_default=True,
        help="Highest frame rate accepted.",
    ),
    click.option(
        "--max-pixel-rate",
        metavar="MP/S",
        type=click.FloatRange(min=0.01),
        default=MAX_PIXEL_RATE,
        show_default=True,
        help="Most megapixels a second of video may hold (width x height x fps / 1e6; 8K at 30 fps is 995): with --max-duration, it bounds the detector work of one job.",
    ),
    click.option(
        "--allow-webhook-host",
        "webhook_hosts",
        multiple=True,
        callback=lambda _ctx, _param, value: frozenset(value),
        help="A host that job webhooks may reach even on a loopback, private or link-local address; repeatable.",
    ),
    click.option(
        "--heartbeat-interval",
        type=click.FloatRange(min=0, min_open=True),
        default=5.0,
        show_default=True,
        help="Seconds between this process's heartbeats in the job database.",
    ),
    click.option(
        "--heartbeat-timeout",
        type=click.FloatRange(min=0, min_open=True),
        default=30.0,
        show_default=True,
        help="Seconds of silence after which a live process takes another for dead and hands its unfinished jobs back to the queue (the same on every process).",
    ),
    click.option(
        "--stop-grace",
        type=click.FloatRange(min=0),
        default=30.0,  # veil.runtime.STOP_GRACE (not imported: veil --help stays quick)
        show_default=True,
        help="Seconds a stopping process (Ctrl-C, SIGTERM) lets its running jobs go on, beating meanwhile; jobs still running then are resumed at their step by another process once its heartbeat times out.",
    ),
    click.option(
        "--on-audit-finding",
        type=click.Choice(("hold", "publish")),  # veil.service.AUDIT_FINDING_POLICIES
        default="hold",
        show_default=True,
        help="When a job's audit finds a face left in its output: hold the job for review in the page (nothing is published until a reviewer re-renders or approves it), or publish it anyway.",
    ),
    click.option(
        "--segment-seconds",
        type=click.FloatRange(min=0),
        default=60.0,
        show_default=True,
        help="Process videos longer than this in segments of about this length, cut at keyframes, so every worker sharing the job database works on one video at once; 0 processes each video in one piece. The output is the same either way.",
    ),
    click.option(
        "--write-report/--no-write-report",
        default=False,
        show_default=True,
        help="Also publish each job's privacy report beside its output, as KEY.veil.json.",
    ),
    _detection_options,
    _redaction_options,
)


@main.command()
@_service_options
@click.option("--host", default="127.0.0.1", show_default=True, help="Address the API listens on.")
@click.option("--port", type=int, default=8000, show_default=True)
@click.option(
    "--api-key",
    "api_keys",
    multiple=True,
    envvar="VEIL_API_KEYS",
    help="Accept this API key (Bearer); repeatable. With keys set, every API call needs one. A key is at least 16 printable ASCII characters, no spaces.",
)
@click.option(
    "--api-keys-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A file of API keys, one a line (each as for --api-key).",
)
@click.option(
    "--access-key",
    envvar="VEIL_ACCESS_KEY",
    help="Access key ID that signs calls to the face-detection API (SigV4), with --secret-key.",
)
@click.option(
    "--secret-key",
    envvar="VEIL_SECRET_KEY",
    help="The secret of --access-key: at least 16 printable ASCII characters, no spaces.",
)
@click.option(
    "--access-keys-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A file of access keys for the face-detection API, 'KEY_ID SECRET' or 'KEY_ID:SECRET' a line (the secret is the rest of the line; as for --secret-key).",
)
@click.option(
    "--region",
    envvar="VEIL_REGION",
    default="us-east-1",
    show_default=True,
    help="The region the face-detection API answers for: clients sign for it (boto3's region_name); others get InvalidSignatureException.",
)
@click.option(
    "--no-aws-auth",
    is_flag=True,
    help="Accept unsigned face-detection API calls (local use only: refused beyond loopback unless --insecure).",
)
@click.option(
    "--notification-webhook",
    help="URL that gets a JSON POST when a face-detection job started with a NotificationChannel ends (stands in for SNS).",
)
@click.option(
    "--max-face-jobs",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="Face-detection jobs in progress at once before LimitExceededException.",
)
@click.option(
    "--rate-limit",
    type=click.FloatRange(min=0, min_open=True),
    help="Face-detection API calls a second per access key before ThrottlingException (default: no limit).",
)
@click.option(
    "--allow-bucket",
    "buckets",
    multiple=True,
    callback=lambda _ctx, _param, value: frozenset(value),
    help="A bucket StartFaceDetection may read besides the input bucket; repeatable. Any other bucket answers InvalidS3ObjectException, as the cloud does for an object it may not read.",
)
@click.option(
    "--public-host",
    "public_hosts",
    multiple=True,
    callback=lambda _ctx, _param, value: frozenset(h.lower() for h in value),
    help="A name clients reach the service by (the Host header), besides addresses, localhost and this machine's name; repeatable. Other names are refused (DNS rebinding).",
)
@click.option(
    "--retain-inputs",
    metavar="DURATION",
    callback=_duration,
    help="Remove each job's input (the version it read) this long after the job ended: 30d, 12h, 45m or seconds. Default: kept.",
)
@click.option(
    "--retain-jobs",
    metavar="DURATION",
    callback=_duration,
    help="Purge each job this long after it ended: its published output, faces file and report, thumbnails, detections and history (and its input, with --retain-inputs). Default: kept.",
)
@click.option(
    "--no-auth",
    is_flag=True,
    help="Serve the API and the page without a key, to anyone who can reach the port (this machine only: refused beyond loopback). Without it and without --api-key, veil serve makes its own key, keeps it in DATA/api-key and prints the page's URL with it.",
)
@click.option(
    "--insecure",
    is_flag=True,
    help="Allow the face-detection API unsigned (--no-aws-auth) beyond loopback.",
)
@click.option(
    "--poll-interval",
    type=click.FloatRange(min=0),
    help="Seconds between listings of the input bucket; 0 turns the poller off. Default: 1 for a folder, 5 for S3.",
)
def serve(
    host: str,
    port: int,
    api_keys: tuple[str, ...],
    api_keys_file: Path | None,
    access_key: str | None,
    secret_key: str | None,
    access_keys_file: Path | None,
    region: str,
    no_aws_auth: bool,
    notification_webhook: str | None,
    max_face_jobs: int,
    rate_limit: float | None,
    buckets: frozenset[str],
    public_hosts: frozenset[str],
    retain_inputs: float | None,
    retain_jobs: float | None,
    no_auth: bool,
    insecure: bool,
    poll_interval: float | None,
    **service: Any,
) -> None:
    """Run the service: drop a video in the input bucket, get it back anonymized in the output bucket."""
    from veil.service import serve as run_service

    if (access_key is None) != (secret_key is None):
        raise click.UsageError("--access-key and --secret-key go together")

    def run() -> None:
        from veil.erasure import RetentionPolicy

        for flag, value in (("--access-key", access_key), ("--secret-key", secret_key)):
            if value is not None and not value.strip():  # an unset shell variable, most likely
                raise OptionError(f"{flag} is empty")
        keys = set(api_keys)
        if api_keys_file is not None:
            keys |= _api_keys_file(api_keys_file)
        signing_keys = {access_key: secret_key} if access_key and secret_key else {}
        if access_keys_file is not None:
            signing_keys |= _access_keys_file(access_keys_file)
        opts = _serve_options(
            service,
            host=host,
            port=port,
            api_keys=frozenset(keys),
            aws_keys=None if no_aws_auth else signing_keys,
            region=region,
            notification_webhook=notification_webhook,
            max_face_jobs=max_face_jobs,
            rate_limit=rate_limit,
            buckets=buckets,
            public_hosts=public_hosts,
            retention=RetentionPolicy(inputs=retain_inputs, jobs=retain_jobs),
            no_auth=no_auth,
            insecure=insecure,
            poll_interval=poll_interval,
        )
        run_service(opts)  # which refuses weak keys (veil.service.check_keys)

    _run_service(run)


def _key_lines(path: Path) -> Iterator[tuple[int, str]]:
    """A key file's lines that are not blank, stripped, with their line numbers."""
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            yield number, line.strip()


def _api_keys_file(path: Path) -> set[str]:
    from veil.service import key_problem

    keys = set()
    for number, key in _key_lines(path):
        if problem := key_problem(key):
            raise OptionError(f"{path} line {number}: the API key {problem}")
        keys.add(key)
    return keys


# An access key ID, one separator (spaces, or a ':' with or without spaces around it),
# then the secret: the rest of the line, ':' and all.
_ACCESS_KEY_LINE = re.compile(r"([^\s:]+)\s*[\s:]\s*(.*)")


def _access_keys_file(path: Path) -> dict[str, str]:
    """Access key ID → secret from a file of 'KEY_ID SECRET' or 'KEY_ID:SECRET' lines.
    Errors name the line, never the secret."""
    from veil.service import key_problem

    keys = {}
    for number, line in _key_lines(path):
        match = _ACCESS_KEY_LINE.fullmatch(line)
        if match is None or not match[2]:
            raise OptionError(f"{path} line {number}: no secret after the access key ID")
        key_id, secret = match[1], match[2]
        if problem := key_problem(secret):
            raise OptionError(f"{path} line {number}: the secret of {key_id} {problem}")
        keys[key_id] = secret
    return keys


@main.command()
@_service_options
def worker(**service: Any) -> None:
    """Run extra workers that share the jobs of a veil serve through PostgreSQL."""
    from veil.service import work

    opts = _serve_options(service)
    _run_service(lambda: work(opts))


def _serve_options(flags: dict[str, Any], **more: Any) -> ServeOptions:
    """``ServeOptions`` from the service flags: the blur flags become its ``blur``."""
    from veil.service import ServeOptions

    blur_fields = {f.name for f in dataclasses.fields(BlurOptions)}
    blur = _options({k: v for k, v in flags.items() if k in blur_fields})
    rest = {k: v for k, v in flags.items() if k not in blur_fields}
    return ServeOptions(**rest, **more, blur=blur)


def _run_service(run: Callable[[], None]) -> None:
    try:
        run()
    except VeilError as exc:
        sys.exit(_report(exc))


def _report(exc: BaseException, src: Path | None = None) -> int:
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


@main.group()
def jobs() -> None:
    """Act on a running service's jobs, through its API."""


@jobs.command()
@click.argument("job_id")
@click.option(
    "--input", "with_input", is_flag=True, help="Also remove the job's input (the version it read)."
)
@click.option(
    "--url",
    help="The service's address. Default: where the veil serve of --data listens (DATA/serve.json), checked to be that process, so the key goes to no other program on the port.",
)
@click.option(
    "--data",
    type=click.Path(path_type=Path),
    default=Path("veil-data"),
    show_default=True,
    help="The service's data folder, where it keeps the API key it made (unless --api-key).",
)
@click.option("--api-key", envvar="VEIL_API_KEY", help="The service's API key.")
def purge(job_id: str, with_input: bool, url: str | None, data: Path, api_key: str | None) -> None:
    """Forget an ended job: its published output, faces file and report, the thumbnails
    of its faces, its detections and history (and its input, with --input)."""
    import json
    import urllib.error
    import urllib.parse
    import urllib.request

    from veil.service import running_address

    try:
        url = url or running_address(data)
    except OptionError as exc:
        sys.exit(_report(exc))
    key = api_key
    if key is None and (data / "api-key").is_file():
        key = (data / "api-key").read_text(encoding="ascii").strip()
    query = urllib.parse.urlencode({"purge": "true", "input": str(with_input).lower()})
    request = urllib.request.Request(
        f"{url.rstrip('/')}/api/jobs/{urllib.parse.quote(job_id, safe='')}?{query}",
        method="DELETE",
        headers={"Authorization": f"Bearer {key}"} if key else {},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            purged = json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode("utf-8", "replace")
        with contextlib.suppress(ValueError, KeyError, TypeError):
            detail = str(json.loads(detail)["detail"])
        click.echo(f"veil: error: {job_id}: {detail}", err=True)
        sys.exit(1)
    except OSError as exc:
        click.echo(f"veil: error: cannot reach {url}: {exc}", err=True)
        sys.exit(1)
    click.echo(
        f"purged {job_id}: {len(purged['objects'])} stored objects, "
        f"{purged['thumbnails']} thumbnails, its detections and history"
    )


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


def _options(opts: dict[str, Any]) -> BlurOptions:
    try:
        return BlurOptions(**opts)
    except OptionError as exc:
        raise click.UsageError(str(exc)) from exc


def _planned(input_path: Path, output: Path | None, tag: str) -> list[tuple[Path, Path]]:
    """``_plan``'s pairs, or exit with its refusal in the one-line form of every error."""
    try:
        return list(_plan(input_path, output, tag))
    except (VeilError, click.UsageError) as exc:
        sys.exit(_report(exc))


def _plan(input_path: Path, output: Path | None, tag: str) -> Iterator[tuple[Path, Path]]:
    """(input, output) pairs: one file, or every video in a folder."""
    if not input_path.is_dir():
        yield input_path, output or _tagged(input_path, tag)
        return
    if output is not None and output.exists() and not output.is_dir():
        raise click.UsageError(f"{output}: INPUT is a folder, so -o must be a folder")
    videos = sorted(
        p for p in input_path.iterdir() if p.is_file() and is_video_path(p) and tag not in p.stem
    )
    if not videos:
        raise NotAVideoError(
            input_path, f"a folder with no videos ({', '.join(VIDEO_EXTENSIONS)}) in it"
        )
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


Runner = Callable[[Path, Path, ProgressCallback], RunResult]


def _run_all(jobs: list[tuple[Path, Path]], run: Runner, quiet: bool, *, verb: str) -> None:
    """Run each job, report each failure in one line and go on; exit 1 if any failed."""
    for src, dst in jobs:
        if src.resolve() == dst.resolve():
            sys.exit(_report(click.UsageError(f"{src}: the output would overwrite the input")))
    failed = 0
    show = not quiet and sys.stderr.isatty()
    for src, dst in jobs:
        try:
            with _progress(src, show) as progress:
                result = run(src, dst, progress)
        except Exception as exc:  # each file's failure is one line; the others go on
            _report(exc, src)
            failed += 1
            continue
        if not quiet:
            click.echo(
                f"{src} -> {dst}: {verb} {result.frames} frames, {result.tracks} faces tracked",
                err=True,
            )
    if failed:
        if len(jobs) > 1:
            click.echo(f"veil: {failed} of {len(jobs)} videos failed", err=True)
        sys.exit(1)


@contextmanager
def _progress(src: Path, show: bool) -> Iterator[ProgressCallback]:
    if not show:
        yield lambda done, total: None
        return
    from tqdm import tqdm

    with tqdm(desc=src.name, unit="frame", dynamic_ncols=True, leave=False) as bar:

        def update(done: int, total: int | None) -> None:
            if total and bar.total != total:
                bar.total = total
            bar.update(done - bar.n)

        yield update


if __name__ == "__main__":
    main()
