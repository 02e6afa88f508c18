"""The service's commands: ``veil serve``, ``veil worker`` and ``veil jobs``. The
service itself (DBOS, the web app) is imported only when one runs, so ``veil --help``
stays quick; its defaults come from ``veil.settings``."""

from __future__ import annotations

import contextlib
import dataclasses
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click

from veil.cli.common import (
    as_duration,
    blur_options_from,
    detection_options,
    duration,
    main,
    option_group,
    redaction_options,
    report_failure,
)
from veil.errors import OptionError, VeilError
from veil.pipeline import BlurOptions
from veil.settings import AUDIT_FINDING_POLICIES, RetentionPolicy, ServeOptions

_SERVICE = ServeOptions()
"""The service flags' defaults: ``veil.settings`` writes each once."""


# Their parameter names are ServeOptions' field names, so they pass through as they are.
_service_options = option_group(
    click.option(
        "--data",
        type=click.Path(path_type=Path),
        default=_SERVICE.data,
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
        default=_SERVICE.workers,
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
        default=_SERVICE.max_bytes,
        show_default=True,
        help="Largest input accepted, in bytes.",
    ),
    click.option(
        "--max-duration",
        metavar="DURATION",
        default=as_duration(_SERVICE.max_duration),
        show_default=True,
        callback=duration,
        help="Longest video accepted (30d, 12h, 45m or seconds).",
    ),
    click.option(
        "--max-fps",
        type=click.FloatRange(min=1),
        default=_SERVICE.max_fps,
        show_default=True,
        help="Highest frame rate accepted.",
    ),
    click.option(
        "--max-pixel-rate",
        metavar="MP/S",
        type=click.FloatRange(min=0.01),
        default=_SERVICE.max_pixel_rate,
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
        default=_SERVICE.heartbeat_interval,
        show_default=True,
        help="Seconds between this process's heartbeats in the job database.",
    ),
    click.option(
        "--heartbeat-timeout",
        type=click.FloatRange(min=0, min_open=True),
        default=_SERVICE.heartbeat_timeout,
        show_default=True,
        help="Seconds of silence after which a live process takes another for dead and hands its unfinished jobs back to the queue (the same on every process).",
    ),
    click.option(
        "--stop-grace",
        type=click.FloatRange(min=0),
        default=_SERVICE.stop_grace,
        show_default=True,
        help="Seconds a stopping process (Ctrl-C, SIGTERM) lets its running jobs go on, beating meanwhile; jobs still running then are resumed at their step by another process once its heartbeat times out.",
    ),
    click.option(
        "--on-audit-finding",
        type=click.Choice(AUDIT_FINDING_POLICIES),
        default=_SERVICE.on_audit_finding,
        show_default=True,
        help="When a job's audit finds a face left in its output: hold the job for review in the page (nothing is published until a reviewer re-renders or approves it), or publish it anyway.",
    ),
    click.option(
        "--segment-seconds",
        type=click.FloatRange(min=0),
        default=_SERVICE.segment_seconds,
        show_default=True,
        help="Process videos longer than this in segments of about this length, cut at keyframes, so every worker sharing the job database works on one video at once; 0 processes each video in one piece. The output is the same either way.",
    ),
    click.option(
        "--write-report/--no-write-report",
        default=_SERVICE.write_report,
        show_default=True,
        help="Also publish each job's privacy report beside its output, as KEY.veil.json.",
    ),
    detection_options,
    redaction_options,
)


@main.command()
@_service_options
@click.option(
    "--host", default=_SERVICE.host, show_default=True, help="Address the API listens on."
)
@click.option("--port", type=int, default=_SERVICE.port, show_default=True)
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
    default=_SERVICE.region,
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
    default=_SERVICE.max_face_jobs,
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
    callback=duration,
    help="Remove each job's input (the version it read) this long after the job ended: 30d, 12h, 45m or seconds. Default: kept.",
)
@click.option(
    "--retain-jobs",
    metavar="DURATION",
    callback=duration,
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
    blur_fields = {f.name for f in dataclasses.fields(BlurOptions)}
    blur = blur_options_from({k: v for k, v in flags.items() if k in blur_fields})
    rest = {k: v for k, v in flags.items() if k not in blur_fields}
    return ServeOptions(**rest, **more, blur=blur)


def _run_service(run: Callable[[], None]) -> None:
    try:
        run()
    except VeilError as exc:
        sys.exit(report_failure(exc))


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
    default=_SERVICE.data,
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
        sys.exit(report_failure(exc))
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
