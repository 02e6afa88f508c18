"""Forgetting a job: everything veil keeps of it, removed on request or after a set time.

A blur job leaves, besides its input (the user's own object):

- in the output store, its output, faces file and privacy report (``--write-report``);
  each is removed only while it is still the version this job published, so a later
  job's output under the same key stays;
- in the job database, its detections, edits and a thumbnail of each tracked face (the
  review tables: faces from the original), its progress rows, and its history, with its
  segments and re-renders (DBOS's workflow tables);
- in the work folder, nothing once it ended (``veil.workflow.cleanup`` and the
  heartbeats' sweep remove it).

A face-detection job (the cloud API's ``StartFaceDetection``) leaves its faces file
under ``.veil/face-detection/`` in the output store and its history; ``purge_face_detection``
removes both.

``purge`` removes all of that, and the input too when asked (again only the version the
job read). ``DELETE /api/jobs/{id}?purge=true`` calls it, and ``Retention`` calls it for
jobs that ended longer ago than ``--retain-jobs`` (``--retain-inputs`` removes inputs
alone; a face-detection job's input, the caller's own object, is removed only when
asked). A running job is refused: cancel it first, so that no step writes after the
purge. Each purge is logged by job ID and what it removed, never by content.
"""

from __future__ import annotations

import contextlib
import datetime
import glob
import logging
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from dbos import DBOS

from veil import jobs
from veil.db import create_tables, database_errors
from veil.errors import JobNotFoundError, JobStateError, ObjectNotFoundError, StorageError
from veil.jobs import (
    FACE_DETECTION_WORKFLOW,
    FaceDetectionRequest,
    Job,
    JobStatus,
    ProgressStore,
)
from veil.keys import face_detection_key
from veil.review import ReviewStore
from veil.settings import RetentionPolicy
from veil.storage import Storage

log = logging.getLogger("veil.erasure")

_ENDED = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.NEEDS_REVIEW)


class PurgedJobs:
    """The IDs of purged jobs, in the job database: a job's ID is a digest of its object's
    store, key and version, so an input left in place (or announced again) would start
    the very job that was purged, and bring its thumbnails back. A purged version starts
    no job again; a new upload (a new version) does. Holds no content: IDs and times."""

    def __init__(self, url: str) -> None:
        self.engine = sa.create_engine(url, pool_pre_ping=True)
        self.table = sa.Table(
            "veil_purged",
            sa.MetaData(),
            sa.Column("job_id", sa.String(64), primary_key=True),
            sa.Column("purged_at", sa.Float),
        )
        create_tables(self.table.metadata, self.engine)

    def add(self, job_id: str) -> None:
        with database_errors(), self.engine.begin() as conn:
            if not conn.execute(
                sa.select(self.table.c.job_id).where(self.table.c.job_id == job_id)
            ).first():
                conn.execute(self.table.insert().values(job_id=job_id, purged_at=time.time()))

    def __contains__(self, job_id: object) -> bool:
        with database_errors(), self.engine.connect() as conn:
            found = conn.execute(
                sa.select(self.table.c.job_id).where(self.table.c.job_id == job_id)
            )
            return found.first() is not None


@dataclass
class Purged:
    """What one purge removed: the keys of stored objects and how many thumbnails."""

    job_id: str
    objects: list[str] = field(default_factory=list)
    thumbnails: int = 0

    def to_dict(self) -> dict[str, object]:
        return {
            "id": self.job_id,
            "objects": self.objects,
            "thumbnails": self.thumbnails,
        }


def _delete_version(store: Storage, key: str | None, etag: str | None) -> str | None:
    """Delete ``key`` if it still holds version ``etag``; the key if it did."""
    if not key or not etag:
        return None
    try:
        if store.stat(key).etag != etag:
            return None  # a later job's object under the same key: not this job's to remove
    except ObjectNotFoundError:
        return None
    store.delete(key)
    return key


@dataclass(frozen=True)
class Kept:
    """Where a service keeps what its jobs leave: what a purge removes things from."""

    input_store: Storage
    output_store: Storage
    progress: ProgressStore
    reviews: ReviewStore
    purged: PurgedJobs
    work_dir: Path


def purge(job: Job, kept: Kept, *, with_input: bool = False) -> Purged:
    """Remove everything veil keeps of ``job`` (module docstring), and its input when
    ``with_input``; ``JobStateError`` while it or a retry of it is queued or running."""
    if job.status not in _ENDED:
        raise JobStateError(job.id, f"is {job.status.value.lower()}; cancel it before purging")
    if retry := jobs.active_retry(job.id):
        raise JobStateError(job.id, f"is being retried, as {retry}; cancel that first")
    kept.purged.add(job.id)  # first: nothing may start this job again while it goes
    done = Purged(job.id)
    for key, etag in (
        (job.output_key, job.output_etag),
        (job.faces_key, job.faces_etag),
        (job.report_key, job.report_etag),
        (job.held_key, job.held_etag),
    ):
        if removed := _delete_version(kept.output_store, key, etag):
            done.objects.append(f"output:{removed}")
    if with_input and (removed := _delete_version(kept.input_store, job.key, job.etag)):
        done.objects.append(f"input:{removed}")
    done.thumbnails = kept.reviews.forget(job.id)
    _forget_work(job.id, kept)
    log.warning(
        "purged job %s: %d stored objects (%s), %d thumbnails, its detections and history",
        job.id,
        len(done.objects),
        ", ".join(o.split(":", 1)[0] for o in done.objects) or "none",
        done.thumbnails,
    )
    return done


def purge_face_detection(job_id: str, kept: Kept, *, with_input: bool = False) -> Purged:
    """Remove a face-detection job's faces file, work folders and history, and its input
    version when ``with_input``; ``JobNotFoundError`` for no such job, ``JobStateError``
    while it is queued or running. The faces file sits under veil's reserved folder,
    which no one else can write, so it is removed whatever its version."""
    status = jobs.find(job_id, FACE_DETECTION_WORKFLOW)
    if status is None:
        raise JobNotFoundError(job_id)
    if jobs.state_of(status) not in _ENDED:
        raise JobStateError(job_id, "is running; cancel it before purging")
    request = FaceDetectionRequest.from_dict(jobs.workflow_request(status))
    done = Purged(job_id)
    key = face_detection_key(job_id)
    with contextlib.suppress(ObjectNotFoundError):
        kept.output_store.stat(key)  # only what is there is reported removed
        kept.output_store.delete(key)
        done.objects.append(f"output:{key}")
    if with_input and (removed := _delete_version(kept.input_store, request.key, request.etag)):
        done.objects.append(f"input:{removed}")
    _forget_work(job_id, kept)
    log.warning("purged face-detection job %s: its faces file and history", job_id)
    return done


def _face_detections_ended_before(when: float) -> list[str]:
    """The IDs of face-detection jobs that ended before ``when`` (Unix seconds)."""
    before = datetime.datetime.fromtimestamp(when, datetime.UTC).isoformat()
    with database_errors():
        ended = DBOS.list_workflows(
            name=FACE_DETECTION_WORKFLOW,
            status=["SUCCESS", "ERROR", "CANCELLED"],
            completed_before=before,
            load_input=False,
            load_output=False,
        )
    return [status.workflow_id for status in ended]


def _forget_work(job_id: str, kept: Kept) -> None:
    """Remove a job's progress rows, the work folders a cancelled step left (a segment's
    or re-render's input copy; other machines' sweeps remove theirs, ``veil.heartbeats``)
    and its history with its segments and re-renders."""
    kept.progress.forget(job_id)
    for folder in kept.work_dir.glob(f"{glob.escape(job_id)}*"):
        if folder.name == job_id or folder.name.startswith((f"{job_id}-s", f"{job_id}-r")):
            shutil.rmtree(folder, ignore_errors=True)
    with database_errors():
        for render in DBOS.list_workflows(
            workflow_id_prefix=f"{job_id}-r", load_input=False, load_output=False
        ):
            DBOS.delete_workflow(render.workflow_id, delete_children=True)
        DBOS.delete_workflow(job_id, delete_children=True)


class Retention:
    """Applies a ``RetentionPolicy`` every ``interval`` seconds in a thread: jobs that
    ended longer ago than the policy's times lose their inputs, or everything."""

    def __init__(self, policy: RetentionPolicy, kept: Kept, *, interval: float = 60.0) -> None:
        self.policy = policy
        self.kept = kept
        self.interval = interval
        self._inputs_removed: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="veil-retention")

    def apply_once(self, now: float | None = None) -> list[str]:
        """Apply the policy to every ended job; returns the IDs of those purged."""
        if self.policy.inputs is None and self.policy.jobs is None:
            return []
        now = time.time() if now is None else now
        kept = self.kept
        purged = []
        shortest = min(t for t in (self.policy.inputs, self.policy.jobs) if t is not None)
        # A job ends after it was submitted: only those submitted long enough ago may be due.
        due = jobs.list_jobs(kept.progress, kept.reviews, None, created_before=now - shortest)
        for job in due:
            if job.status not in _ENDED or job.updated_at is None:
                continue
            age = now - job.updated_at
            if self.policy.jobs is not None and age >= self.policy.jobs:
                try:
                    purge(job, kept, with_input=self.policy.inputs is not None)
                except JobStateError as exc:  # a retry of it runs: next time
                    log.info("retention: %s", exc)
                    continue
                purged.append(job.id)
            elif (
                self.policy.inputs is not None
                and job.status is not JobStatus.NEEDS_REVIEW  # a reviewer still needs it
                and age >= self.policy.inputs
                and job.id not in self._inputs_removed
            ):
                if _delete_version(kept.input_store, job.key, job.etag):
                    log.warning("removed the input of job %s (--retain-inputs)", job.id)
                self._inputs_removed.add(job.id)
        if self.policy.jobs is not None:
            # Face-detection jobs keep faces files; their inputs are the callers' own.
            for job_id in _face_detections_ended_before(now - self.policy.jobs):
                try:
                    purge_face_detection(job_id, kept)
                except JobStateError as exc:  # restarted meanwhile: next time
                    log.info("retention: %s", exc)
                    continue
                purged.append(job_id)
        return purged

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.apply_once()
            except StorageError as exc:
                log.warning("retention: %s", exc)
            except Exception:  # the thread must outlive one bad pass
                log.exception("retention error")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with contextlib.suppress(RuntimeError):
            self._thread.join(timeout=10)
