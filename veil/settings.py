"""The service's settings, from the command line to every job: ``ServeOptions`` (what
``veil serve`` and ``veil worker`` are told), each default written here once, and
``RetentionPolicy``. The command line takes its defaults from here, so this module stays
light (no DBOS, no web framework): ``veil --help`` must stay quick.

``veil.service`` turns ``ServeOptions`` into the ``veil.runtime.ServiceConfig`` the
steps read; a job records the blur options it was submitted with (``JobRequest.options``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from veil.pipeline import BlurOptions
from veil.video import MAX_DURATION, MAX_FPS, MAX_INPUT_BYTES, MAX_PIXEL_RATE

SEGMENT_SECONDS = 60.0
"""The default ``--segment-seconds``: see docs/benchmarks.md (segments) for the
measurements behind it."""
STOP_GRACE = 30.0
"""Seconds a stopping process lets its running jobs go on (``--stop-grace``)."""
HEARTBEAT_INTERVAL = 5.0
"""Seconds between a process's heartbeats (``--heartbeat-interval``)."""
HEARTBEAT_TIMEOUT = 30.0
"""Seconds without a heartbeat after which a process is taken for dead. Several
intervals, so a process busy for a moment (or a slow database) is not."""
AUDIT_FINDING_POLICIES = ("hold", "publish")
"""What a job does when its audit finds a face (``--on-audit-finding``); the first is
the default."""
MAX_FACE_JOBS = 20
"""Face-detection jobs in progress at once before ``LimitExceededException``."""
REGION = "us-east-1"
"""The region the face-detection API answers for (``--region``)."""


@dataclass(frozen=True, kw_only=True)
class RetentionPolicy:
    """How long veil keeps what a job leaves, in seconds after the job ended; ``None``
    keeps it until purged by hand."""

    inputs: float | None = None
    """Remove a finished job's input (the version it read) this long after it ended."""
    jobs: float | None = None
    """Purge a job (``veil.erasure.purge``: outputs, thumbnails, detections, history)
    this long after it ended."""


@dataclass(frozen=True, kw_only=True)
class ServeOptions:
    """What ``veil serve`` and ``veil worker`` are told, flag by flag (their parameter
    names are these fields' names); ``blur`` the options every job runs with."""

    data: Path = Path("veil-data")
    input: str | None = None
    output: str | None = None
    s3_endpoint: str | None = None
    database: str | None = None
    workers: int = 1
    worker_id: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    api_keys: frozenset[str] = frozenset()
    aws_keys: dict[str, str] | None = None
    """Access key ID → secret for the face-detection API; None turns its auth off."""
    region: str = REGION
    """The region face-detection API signatures must be scoped to."""
    notification_webhook: str | None = None
    max_face_jobs: int = MAX_FACE_JOBS
    rate_limit: float | None = None
    buckets: frozenset[str] = frozenset()
    """Buckets the face-detection API may read besides the input bucket."""
    public_hosts: frozenset[str] = frozenset()
    """Names clients reach the API by (``Host``), besides addresses and ``localhost``."""
    insecure: bool = False
    no_auth: bool = False
    """Serve the REST API and the page without a key (loopback only); otherwise, with no
    ``api_keys`` given, the service's own key (``stored_api_key``) is required."""
    poll_interval: float | None = None
    max_bytes: int = MAX_INPUT_BYTES
    max_duration: float = MAX_DURATION
    max_fps: float = MAX_FPS
    max_pixel_rate: float = MAX_PIXEL_RATE
    webhook_hosts: frozenset[str] = frozenset()
    heartbeat_interval: float = HEARTBEAT_INTERVAL
    heartbeat_timeout: float = HEARTBEAT_TIMEOUT
    stop_grace: float = STOP_GRACE
    """Seconds a stopping process lets its running jobs go on (``runtime.shutdown``)."""
    on_audit_finding: str = AUDIT_FINDING_POLICIES[0]
    write_report: bool = False
    segment_seconds: float = SEGMENT_SECONDS
    retention: RetentionPolicy = field(default_factory=RetentionPolicy)
    """How long inputs and job data are kept after a job ends (``veil.erasure``)."""
    blur: BlurOptions = field(default_factory=BlurOptions)
