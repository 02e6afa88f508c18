"""The service as one process runs it: its settings for the jobs (``ServiceConfig``),
its lifecycle (``launch``, ``shutdown``) and what the jobs' steps find through
``runtime()``: DBOS runs a step in its own thread with only the job's plain-data
arguments, so stores, settings and tables come from here.

The workflows register themselves with DBOS when their modules are imported, which
must happen before ``launch``: ``veil.queue`` imports them, and everything that starts
a service (``veil.service``, the tests) imports that.
"""

from __future__ import annotations

import contextlib
import faulthandler
import logging
import math
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from veil import heartbeats
from veil.erasure import Kept, PurgedJobs
from veil.errors import VeilError
from veil.jobs import SEGMENT_QUEUE, ProgressStore
from veil.pipeline import BlurOptions
from veil.review import ReviewStore
from veil.settings import (
    AUDIT_FINDING_POLICIES,
    HEARTBEAT_INTERVAL,
    HEARTBEAT_TIMEOUT,
    SEGMENT_SECONDS,
)
from veil.storage import Storage
from veil.video import MAX_DURATION, MAX_FPS, MAX_INPUT_BYTES, MAX_PIXEL_RATE

log = logging.getLogger("veil.runtime")

STOP_BOUND = 10
"""Seconds DBOS may take to stop once a stopping process's grace is over (joining its
threads, closing its database): past that the process stops without it, so a stopped
worker always ends within a bound."""

events = logging.getLogger("veil.jobs")
"""One line per job event (queued, each step, how it ended): the console of veil serve
and veil worker shows them."""


def show_job_events() -> None:
    """Print one line per job event (``veil.jobs``: queued, each step, how it ended) on
    the console of ``veil serve`` and ``veil worker``, so an operator sees work happen."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    events.addHandler(handler)
    events.setLevel(logging.INFO)
    events.propagate = False


class _PlainFailures(logging.Filter):
    """Drop DBOS's traceback of a job that failed in plain words (a ``VeilError``): its
    FAILED line says all an operator needs. Any other exception (a bug) keeps its own."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not isinstance(error, VeilError)


QUEUE_NAME = "veil-jobs"


@dataclass(frozen=True, kw_only=True)
class ServiceConfig:
    """Everything the jobs' steps need, set once per process by ``launch``."""

    input: Storage
    output: Storage
    database_url: str
    work_dir: Path
    workers: int = 1
    worker_id: str = "local"
    """Who this process is to the job database. A restarted process with the same ID
    resumes the jobs it was running; two live processes must never share one."""
    max_bytes: int = MAX_INPUT_BYTES
    max_duration: float = MAX_DURATION
    """Longest video a job accepts, in seconds."""
    max_fps: float = MAX_FPS
    """Highest frame rate a job accepts."""
    max_pixel_rate: float = MAX_PIXEL_RATE
    """Most megapixels a second of video may hold (width x height x fps / 1e6): with
    ``max_duration``, a bound on a job's detector work (a tiny file can hold hours of 8K
    frames)."""
    webhook_hosts: frozenset[str] = frozenset()
    """Hosts a webhook may reach even on a loopback, private or link-local address."""
    blur: BlurOptions = field(default_factory=BlurOptions)
    on_audit_finding: str = AUDIT_FINDING_POLICIES[0]
    """What a job does when its audit finds a face in the output: ``hold`` it for review
    (``NEEDS_REVIEW``, nothing published) or ``publish`` it anyway."""
    write_report: bool = False
    """Also publish each job's privacy report beside its output, as ``KEY.veil.json``."""
    segment_seconds: float = SEGMENT_SECONDS
    """Videos longer than this are processed in segments of about this length, spread
    over every worker (``veil.segment_jobs``); 0: never."""
    heartbeat_interval: float = HEARTBEAT_INTERVAL
    """Seconds between this process's heartbeats in the job database."""
    heartbeat_timeout: float = HEARTBEAT_TIMEOUT
    """Seconds of silence after which a live process takes another for dead and hands
    its running jobs back to the queue (``veil.heartbeats``)."""


@dataclass(frozen=True)
class Runtime:
    """A launched service in this process: its settings, progress table and job queue."""

    config: ServiceConfig
    progress: ProgressStore
    reviews: ReviewStore
    purged: PurgedJobs
    queue: Any
    segment_queue: Any = None


_running: list[Runtime] = []


def runtime() -> Runtime:
    """The service ``launch`` started in this process. DBOS runs a job's steps in its own
    threads with only the job's plain-data arguments, so this is how they find it."""
    if not _running:
        raise RuntimeError("veil.runtime.launch() has not been called in this process")
    return _running[-1]


def launch(config: ServiceConfig) -> Runtime:
    """Start DBOS on the service's database, recover unfinished jobs, start workers and
    the heartbeats through which live processes recover dead ones' jobs."""
    from dbos import DBOS

    config.work_dir.mkdir(parents=True, exist_ok=True)
    progress = ProgressStore(config.database_url)
    reviews = ReviewStore(config.database_url)
    # Alive before DBOS may hand this process a job: nobody takes it for dead meanwhile.
    beats = heartbeats.Heartbeats(
        config.database_url,
        config.worker_id,
        interval=config.heartbeat_interval,
        timeout=config.heartbeat_timeout,
        work_dir=config.work_dir,
    )
    beats.beat()
    DBOS(
        config={
            "name": "veil",
            "system_database_url": config.database_url,
            "executor_id": config.worker_id,
            "log_level": "WARNING",
        }
    )
    dbos_log = logging.getLogger("dbos")
    if not any(isinstance(f, _PlainFailures) for f in dbos_log.filters):
        dbos_log.addFilter(_PlainFailures())
    # Steps of recovered jobs may run as soon as DBOS launches: the runtime comes first.
    purged = PurgedJobs(config.database_url)
    _running.append(Runtime(config, progress, reviews, purged, None))
    DBOS.launch()
    queue = DBOS.register_queue(
        QUEUE_NAME, worker_concurrency=config.workers, polling_interval_sec=0.5
    )
    segment_queue = DBOS.register_queue(
        SEGMENT_QUEUE, worker_concurrency=config.workers, polling_interval_sec=0.5
    )
    _running[-1] = Runtime(config, progress, reviews, purged, queue, segment_queue)
    beats.start()
    return _running[-1]


_stopping = threading.Event()
_jobs_here: set[str] = set()
_jobs_lock = threading.Lock()


@contextlib.contextmanager
def running_job(job_id: str) -> Iterator[None]:
    """Mark job ``job_id`` as running in this process while inside (``shutdown`` says
    which jobs it leaves to others)."""
    with _jobs_lock:
        _jobs_here.add(job_id)
    try:
        yield
    finally:
        with _jobs_lock:
            _jobs_here.discard(job_id)


def stopping() -> bool:
    """Whether this process is shutting down: a step that fails now was interrupted by
    the stop, not by its video, and another process resumes its job."""
    return _stopping.is_set()


def shutdown(grace: float = 0.0) -> None:
    """Stop the service in this process: it takes no new job, lets the running ones go on
    for up to ``grace`` seconds while it keeps beating (so no other process takes them
    meanwhile), then stops. A job still running then is resumed at its step by a live
    process once this one's heartbeat is over (``veil.heartbeats``)."""
    from dbos import DBOS

    _stopping.set()
    heartbeats.drain()  # beating on, but its watch no longer asks DBOS, which is going
    wait = math.ceil(grace)
    stopper = threading.Thread(
        target=DBOS.destroy,
        kwargs={"workflow_completion_timeout_sec": wait},
        name="veil-stop",
        daemon=True,
    )
    stopper.start()
    stopper.join(wait + STOP_BOUND)
    if stopper.is_alive():
        # Which thread held it up goes to stderr, for the operator's bug report; the
        # process stops all the same (the jobs it had are resumed elsewhere).
        log.warning("DBOS took over %g s to stop after the grace; stopping without it", STOP_BOUND)
        faulthandler.dump_traceback(file=2, all_threads=True)  # the stderr descriptor
    with _jobs_lock:
        left = sorted(_jobs_here)
    for job_id in left:
        events.info("%s  stopped with this process; another will resume it", job_id)
    heartbeats.stop()
    _running.clear()
    _stopping.clear()


def kept() -> Kept:
    """Where this service keeps what its jobs leave (``veil.erasure``)."""
    run = runtime()
    config = run.config
    return Kept(config.input, config.output, run.progress, run.reviews, run.purged, config.work_dir)
