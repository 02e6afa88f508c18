"""What every job's steps share, whichever workflow runs them (``veil.workflow``,
``veil.segment_jobs``, ``veil.face_detection``): the retrying step decorator, the job's
work folder and input copy, progress and cancel checks, turning a bad video into a
plain-words failure, cleaning up and telling a webhook how the job ended.

Steps run in DBOS's threads and take only plain arguments, so what they need of the
process (stores, settings, the progress table) comes from ``veil.runtime.runtime()``,
set by ``veil.runtime.launch``: DBOS offers no other way to hand it to them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import shutil
import threading
import time
import typing
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, ParamSpec, TypeVar, cast

from dbos import DBOS
from dbos import error as dbos_errors

from veil import runtime
from veil.db import database_errors
from veil.errors import (
    DatabaseError,
    InputError,
    JobCancelled,
    JobFailed,
    ObjectChangedError,
    OutputError,
    StorageError,
    VeilError,
)
from veil.jobs import FaceDetectionRequest, JobRequest, JobStatus, ProgressStore, segments_of
from veil.keys import piece_keys
from veil.pipeline import BlurOptions
from veil.review import ReviewStore
from veil.runtime import ServiceConfig, events
from veil.storage import Storage, bucket_store
from veil.storage.ranged import StoredVideo
from veil.webhooks import WebhookError, post_json
from veil.words import counted

log = logging.getLogger("veil.workflow")

P = ParamSpec("P")
R = TypeVar("R")


def config() -> ServiceConfig:
    """The running service's settings (``veil.runtime``)."""
    return runtime.runtime().config


def progress_store() -> ProgressStore:
    """The job database's progress table."""
    return runtime.runtime().progress


def blur_options(request: JobRequest) -> BlurOptions:
    """The options job ``request`` runs with: those recorded with it, else (a job queued
    before they were) the running process's."""
    if not request.options:
        return config().blur
    # A job recorded before YuNet was added ran (and its segments run) without it: it
    # finishes with the options it started with.
    return BlurOptions(**{"yunet": False, **request.options})


def review_store() -> ReviewStore:
    """The job database's review tables (detections, edits, thumbnails)."""
    return runtime.runtime().reviews


def _transient(exc: BaseException) -> bool:
    return isinstance(exc, StorageError) and exc.transient


T = TypeVar("T")


def restored(kind: type[T], value: Any) -> T:
    """A step's result as the dataclass ``kind`` its step returns today: DBOS hands back
    what the step returned when it ran, and a step an older veil ran returned a dict of
    the same fields."""
    if isinstance(value, dict) and dataclasses.is_dataclass(kind):
        names = {f.name for f in dataclasses.fields(kind)}
        return kind(**{k: v for k, v in value.items() if k in names})
    return cast(T, value)


def retrying_step(name: str, *, attempts: int) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """A DBOS step that retries storage faults with exponential backoff (1 s, 2 s, 4 s...)
    and fails at once on anything else. Its result comes back as the type it is
    annotated with (``restored``), however old the record it is replayed from."""
    step = DBOS.step(
        name=name,
        retries_allowed=True,
        max_attempts=attempts,
        interval_seconds=1.0,
        backoff_rate=2.0,
        should_retry=_transient,
    )

    def announced(func: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(func)
        def run(*args: P.args, **kwargs: P.kwargs) -> R:
            # Only a step that really runs (not one DBOS replays from its records) is
            # announced; a retry is announced again.
            job_id = str(args[0])
            events.info("%s  %s", job_id, name)
            _tries.count += 1
            try:
                result = func(*args, **kwargs)
            except Exception as exc:
                if _transient(exc) and _tries.count < attempts:
                    # DBOS waits interval * backoff ** (tries - 1) before the next try.
                    wait = 2.0 ** (_tries.count - 1)
                    events.info("%s  %s failed (%s); retrying in %g s", job_id, name, exc, wait)
                    _say(progress_store().retrying, job_id, name, str(exc), time.time() + wait)
                raise
            if _tries.count > 1:
                _say(progress_store().retried, job_id)
            return result

        stepped = step(run)

        @functools.wraps(func)
        def giving_up_plainly(*args: P.args, **kwargs: P.kwargs) -> R:
            _tries.count = 0
            try:
                result = stepped(*args, **kwargs)
                kind = typing.get_type_hints(func).get("return")
                return restored(kind, result) if isinstance(kind, type) else result
            except dbos_errors.DBOSMaxStepRetriesExceeded as exc:
                _say(progress_store().retried, str(args[0]))
                raise JobFailed(_gave_up(name, attempts, exc.errors)) from None

        return giving_up_plainly

    return announced


class _Tries(threading.local):
    """Tries of the step this thread runs: DBOS retries a step in the thread that
    called it, and says only whether to retry, not which try this is."""

    count = 0


_tries = _Tries()


def _say(record: Callable[..., None], *args: Any) -> None:
    """Record a step's retry for the API: the job database may be the fault itself, so
    failing to say so is no failure of the step."""
    with contextlib.suppress(VeilError, OSError):
        record(*args)


def _gave_up(step: str, attempts: int, errors: Sequence[BaseException]) -> str:
    """What a job says when a step's retries ran out: the step, and the fault of its
    last try in plain words (DBOS says only that the retries ran out)."""
    cause = f": {errors[-1]}" if errors else ""
    return f"{step} gave up after {attempts} tries{cause}; retry the job once that is fixed"


def work_dir(job_id: str) -> Path:
    """The job's folder for its intermediate files, made when first asked for."""
    path = config().work_dir / job_id
    path.mkdir(parents=True, exist_ok=True)
    return path


def suffix_of(key: str) -> str:
    """The key's file extension, lower case: its work copies keep it."""
    return Path(key).suffix.lower()


def source_store(request: JobRequest) -> Storage:
    """Where a job's video is: the input store, unless the request names a bucket."""
    bucket = getattr(request, "bucket", None)
    settings = config()
    return bucket_store(bucket, settings.input, settings.output) if bucket else settings.input


_FETCH_LOCKS = tuple(threading.Lock() for _ in range(64))
"""One download of an input at a time in this process (by the copy's path, hashed)."""


def fetch_input(job_id: str, request: JobRequest) -> Path:
    """The input's local copy in ``job_id``'s work folder, downloaded once on each machine
    (again only if the work folder was lost): a job's segments on one machine share their
    job's copy, however many of them start at once."""
    local = _input_copy(job_id, request)
    local.parent.mkdir(parents=True, exist_ok=True)
    with _FETCH_LOCKS[hash(local) % len(_FETCH_LOCKS)]:
        if not local.exists():
            partial = local.with_name(f"{local.name}.{uuid.uuid4().hex[:8]}.partial")
            try:
                source_store(request).download(request.key, partial, etag=request.etag)
            except ObjectChangedError:
                raise _replaced(request.key) from None
            partial.replace(local)
    return local


def segment_input(job_id: str, request: JobRequest) -> Path | StoredVideo:
    """Where a segment of ``job_id`` reads the input: the job's copy where this machine
    has it (the job's own machine: Validate fetched it), else the stored object read in
    place (a worker elsewhere reads the index and its own part, not the whole; it
    fetches the job's copy after all if that reading goes over its budget)."""
    copy = _input_copy(job_id, request)
    if copy.exists():  # only ever renamed into place whole (``fetch_input``)
        return copy
    return StoredVideo(
        source_store(request),
        request.key,
        request.etag,
        request.size,
        whole=lambda: fetch_input(job_id, request),
    )


def _input_copy(job_id: str, request: JobRequest) -> Path:
    """Where the job's copy of its input is kept on a machine that has one (not made
    here: a machine that reads the input in place keeps no folder of the job)."""
    return config().work_dir / job_id / f"input{suffix_of(request.key)}"


def _replaced(key: str) -> JobFailed:
    return JobFailed(
        f"{key} was replaced by a newer upload after this job started; "
        "the new version is a job of its own"
    )


@contextlib.contextmanager
def failing_job(key: str) -> Iterator[None]:
    """Turn a problem with the video itself into a job failure that names the key, not
    the work folder's copy, and is never retried. A fault of a store or of the job
    database that is worth retrying (a restart, a timeout: ``StorageError.transient``)
    is not the video's: it goes on to the step, which retries it."""
    try:
        yield
    except ObjectChangedError:  # read in place (``segment_input``), a block at a time
        raise _replaced(key) from None
    except StorageError as exc:
        if exc.transient:
            raise
        raise JobFailed(str(exc)) from None
    except InputError as exc:
        raise JobFailed(f"{key}: {exc.reason}") from None
    except OutputError as exc:  # its path is the work folder's, which clients must not see
        raise JobFailed(
            f"{key}: the service cannot write its working copy ({exc.reason}); "
            "retry the job once its work folder has room"
        ) from None
    except OSError as exc:  # the same, from a copy of the input (a path in its message)
        raise JobFailed(
            f"{key}: the service cannot make its working copy "
            f"({exc.strerror or type(exc).__name__}); retry the job once that is fixed"
        ) from None
    except VeilError as exc:
        raise JobFailed(str(exc)) from None


CANCEL_CHECK_SECONDS = 1.0
"""How often a running step looks whether its job was cancelled."""


def progress_reporter(job_id: str, step: str) -> Callable[[int, int | None], None]:
    """A step's progress callback (called for each frame): records the frames done and,
    about once a second, looks whether the workflow running the step was cancelled
    meanwhile, so a cancelled job or segment stops within a second or two
    (``JobCancelled``) instead of running its step to the end."""
    store = progress_store()
    workflow = DBOS.workflow_id  # here: the callback runs in the pipeline's threads too
    next_check = time.monotonic() + CANCEL_CHECK_SECONDS

    def report(done: int, total: int | None) -> None:
        nonlocal next_check
        store.set(job_id, step, done, total)
        if time.monotonic() < next_check:
            return
        next_check = time.monotonic() + CANCEL_CHECK_SECONDS
        stop_if_cancelled(workflow, job_id, step)

    return report


def stop_if_cancelled(workflow: str | None, job_id: str, step: str) -> None:
    """``JobCancelled`` if ``workflow`` (running ``step`` of ``job_id``; ``None``: none,
    outside a workflow) was cancelled meanwhile."""
    if workflow is not None and is_cancelled(workflow):
        raise JobCancelled(f"{job_id}: cancelled during {step}")


def is_cancelled(workflow: str) -> bool:
    """Whether DBOS records ``workflow`` as cancelled."""
    with database_errors():
        status = DBOS.get_workflow_status(workflow)
    return status is not None and status.status == "CANCELLED"


def results_paths(work_id: str, key: str) -> tuple[Path, Path]:
    """Where a blur job (or a re-render: ``work_id``) leaves its output and faces file."""
    work = work_dir(work_id)
    return work / f"output{suffix_of(key)}", work / "faces.json"


@DBOS.step(name="Cleanup")
def cleanup(job_id: str, key: str | None = None) -> None:
    """Remove the job's work folder and, for a job of video ``key`` that ran in segments,
    the pieces they left in the output store (best effort: they are hidden under
    ``.veil/`` and never published)."""
    remove_leftovers(job_id, key)
    _say(progress_store().retried, job_id)


def _outside_workflow(func: Callable[[], R]) -> R:
    """``func()`` run in a thread of its own, outside this workflow: inside it, DBOS
    records each of its calls as a step, which a run DBOS has stopped may not do."""
    done: list[R] = []
    failed: list[BaseException] = []

    def run() -> None:
        try:
            done.append(func())
        except BaseException as exc:  # handed to the caller
            failed.append(exc)

    thread = threading.Thread(target=run, name="veil-outside-workflow")
    thread.start()
    thread.join()
    if failed:
        raise failed[0]
    return done[0]


def _was_cancelled(job_id: str) -> bool:
    """``is_cancelled``, asked outside the workflow; ``False`` when the job database
    cannot say (the job's own fault is then what it reports)."""
    try:
        return _outside_workflow(lambda: is_cancelled(job_id))
    except DatabaseError:
        return False


def _cancelled(job_id: str, request: JobRequest) -> None:
    """A cancelled job ends here: DBOS runs no more of its steps, so no Cleanup step
    either; what it and its finished segments left goes now (a segment stopping
    meanwhile looks again before it writes its piece)."""
    events.info("%s  CANCELLED  %s", job_id, request.key)
    _outside_workflow(lambda: remove_leftovers(job_id, request.key))


def remove_leftovers(job_id: str, key: str | None = None) -> None:
    """``cleanup`` outside a step: for a cancelled job, whose workflow runs no more steps."""
    shutil.rmtree(config().work_dir / job_id, ignore_errors=True)
    if key is None:
        return
    store = config().output
    for segment in segments_of(job_id):
        index = int(segment.workflow_id.rsplit("-s", 1)[1])
        for piece in piece_keys(job_id, index, suffix_of(key)):
            with contextlib.suppress(VeilError, OSError):
                store.delete(piece)


@DBOS.step(name="Notify")
def notify(url: str, payload: dict[str, Any], *, operator: bool = False) -> None:
    """Tell a webhook the job ended. Best effort: a dead webhook does not fail the job.

    A caller's URL is checked again now, against the addresses its host has now. The
    operator's own URL (``operator``: ``--notification-webhook``) is configuration, as
    trusted as the stores, which veil reaches on loopback or private addresses too: its
    address is not checked, so it works in every process, ``veil worker`` included,
    without also listing its host in ``--allow-webhook-host``.
    """
    allowed = None if operator else config().webhook_hosts
    try:
        post_json(url, payload, allowed_hosts=allowed)
    except WebhookError as exc:
        log.warning("%s", exc)  # names the URL by safe_url: tokens stay out of logs


def run_job(
    job_id: str,
    request: JobRequest,
    steps: Callable[[], dict[str, Any]],
    message: Callable[[str, dict[str, Any], str | None], dict[str, Any]],
) -> dict[str, Any]:
    """Run a workflow's steps, then remove its work folder and tell its webhook how it
    ended, whether it succeeded or failed."""
    # A face-detection job's webhook is always the operator's --notification-webhook: its
    # caller can only ask for it (NotificationChannel), never say where it goes.
    operator = isinstance(request, FaceDetectionRequest)
    try:
        with runtime.running_job(job_id):
            result = steps()
    except (dbos_errors.DBOSWorkflowCancelledError, dbos_errors.DBOSWorkflowConflictIDError):
        # DBOS stops this run: the job was cancelled, or another process owns it now
        # (which goes on with its work folder and pieces: nothing of it is touched).
        if _was_cancelled(job_id):
            _cancelled(job_id, request)
        raise
    except Exception as exc:
        if runtime.stopping():
            # Interrupted by this process's stop, not failed: its record stays unfinished
            # and a live process resumes it at this step (``runtime.shutdown`` says so).
            # Nothing is cleaned up or told.
            raise
        if _was_cancelled(job_id):
            _cancelled(job_id, request)  # a segment's cancel, come up as a failure
            raise
        events.info("%s  FAILED  %s", job_id, exc)
        cleanup(job_id, request.key)
        if request.webhook_url:
            notify(request.webhook_url, message("FAILED", {}, str(exc)), operator=operator)
        raise
    faces = result.get("faces")
    status = str(result.get("status", "SUCCEEDED"))
    if status == JobStatus.NEEDS_REVIEW:
        findings = len(result["audit"]["findings"])
        left = counted(findings, "face")
        events.info("%s  NEEDS_REVIEW  %s (audit: %s left visible)", job_id, request.key, left)
    else:
        tracked = counted(faces, "face")
        events.info("%s  SUCCEEDED  %s (%s tracked)", job_id, request.key, tracked)
    cleanup(job_id, request.key)
    if request.webhook_url:
        # The webhook hears the job's outcome, not the report: that is the API's.
        public = {k: v for k, v in result.items() if k != "report"}
        notify(request.webhook_url, message(status, public, None), operator=operator)
    return result
