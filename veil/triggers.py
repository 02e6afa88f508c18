"""Turning bucket events into jobs.

Three ways to hear about uploads: S3 event notifications (the AWS and MinIO JSON),
SeaweedFS filer webhooks, and a poller that lists the input store, for stores that can
push nothing. All three only name objects; the job itself is keyed by the object's
ETag as read from the store, so however often an upload is announced, it runs once.
Only video files start jobs: folders, multipart parts, other files and keys veil keeps for
itself (``veil.keys``) are ignored.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any
from urllib.parse import unquote_plus

from veil.errors import (
    EventError,
    InvalidKeyError,
    JobStateError,
    ObjectNotFoundError,
    StorageError,
)
from veil.jobs import JobRequest
from veil.keys import check_media_key, is_media_key
from veil.runtime import runtime
from veil.storage import Storage
from veil.webhooks import check_webhook_url

log = logging.getLogger("veil.triggers")

Submit = Callable[[JobRequest], str]


def s3_event_keys(event: Mapping[str, Any], bucket_prefix: tuple[str, str]) -> list[str]:
    """Keys (relative to the input prefix) of objects created, from an S3 event notification.

    ``bucket_prefix`` is the input store's (bucket, prefix); records for other buckets or
    outside the prefix are ignored. Keys arrive URL-encoded (``+`` for spaces).
    """
    bucket, prefix = bucket_prefix
    records = _field(event, "Records", list, "an S3 event")
    keys = []
    for record in records:
        if not isinstance(record, Mapping):
            raise EventError("each of an S3 event's Records must be an object")
        name = str(record.get("eventName", "ObjectCreated"))
        if "ObjectCreated" not in name:
            continue
        s3 = _field(record, "s3", Mapping, "an S3 event record")
        if _field(s3, "bucket", Mapping, "an S3 event record's s3").get("name") != bucket:
            continue
        key = unquote_plus(
            str(_field(s3, "object", Mapping, "an S3 event record's s3").get("key", ""))
        )
        if key.startswith(prefix):
            keys.append(key[len(prefix) :])
    return keys


def _field(data: Any, name: str, kind: type, where: str) -> Any:
    """``data[name]``, which must be a ``kind``; ``EventError`` (a 400) otherwise. A
    missing field is empty, as senders leave out what does not apply."""
    if not isinstance(data, Mapping):
        raise EventError(f"{where} must be a JSON object")
    value = data.get(name) or ([] if kind is list else {})
    if not isinstance(value, kind):
        raise EventError(
            f"{where}'s {name!r} must be a {'list' if kind is list else 'JSON object'}"
        )
    return value


def seaweedfs_event_keys(event: Mapping[str, Any], bucket_prefix: tuple[str, str]) -> list[str]:
    """Keys from a SeaweedFS filer webhook: ``{"event_type": "create", "key": "/buckets/<b>/<key>"}``."""
    if not isinstance(event, Mapping):
        raise EventError("a SeaweedFS event must be a JSON object")
    if event.get("event_type") not in ("create", "update", "rename"):
        return []
    bucket, prefix = bucket_prefix
    path = str(event.get("key") or event.get("new_key") or "")
    head = f"/buckets/{bucket}/{prefix}"
    if not path.startswith(head):
        return []
    return [path[len(head) :]]


def submit_key(
    store: Storage,
    key: str,
    submit: Submit,
    *,
    webhook_url: str | None = None,
    webhook_hosts: Collection[str] | None = None,
) -> str:
    """Start a job for the video ``key`` of ``store``; returns its ID. Raises
    ``InvalidKeyError`` for a key that is not allowed or not a video file type,
    ``WebhookURLError`` for a ``webhook_url`` veil may not send to (``webhook_hosts``:
    the hosts the operator allowed; by default those of the running service), and
    ``ObjectNotFoundError`` when there is no such object."""
    check_media_key(key)
    if webhook_url:  # as in the workflow, an empty URL is none
        if webhook_hosts is None:
            webhook_hosts = runtime().config.webhook_hosts
        # Refused now, while the caller can be told; the worker checks again when sending.
        check_webhook_url(webhook_url, webhook_hosts)
    info = store.stat(key)
    return submit(JobRequest(info.key, info.etag, info.size, webhook_url))


def submit_keys(
    store: Storage, keys: Iterable[str], submit: Submit, *, webhook_url: str | None = None
) -> list[str]:
    """Start a job for each video key that exists; returns the job IDs. Events also name
    folders, parts and other files: those are skipped, not errors."""
    jobs = []
    for key in keys:
        try:
            jobs.append(submit_key(store, key, submit, webhook_url=webhook_url))
        except (InvalidKeyError, ObjectNotFoundError, JobStateError) as exc:
            log.warning("ignored event for %r: %s", key, exc)
    return jobs


class Poller:
    """Lists the input store every ``interval`` seconds and submits what it has not seen.

    With ``settle`` (folders, where a file grows while it is copied in), an object is
    submitted only once two listings in a row show the same version of it; S3 objects
    appear whole, so they are submitted at once.
    """

    def __init__(
        self, store: Storage, submit: Submit, interval: float = 5.0, *, settle: bool = False
    ) -> None:
        self.store = store
        self.submit = submit
        self.interval = interval
        self.settle = settle
        self._seen: set[tuple[str, str]] = set()
        self._previous: set[tuple[str, str]] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="veil-poller")

    def poll_once(self) -> list[str]:
        jobs = []
        listed = set()
        for info in self.store.list():
            version = (info.key, info.etag)
            listed.add(version)
            if version in self._seen or not is_media_key(info.key):
                continue
            if self.settle and version not in self._previous:
                continue  # may still be growing; look again next time
            try:
                jobs.append(self.submit(JobRequest(info.key, info.etag, info.size)))
            except JobStateError as exc:  # a purged version: it starts no job again
                log.info("ignored %r: %s", info.key, exc)
            self._seen.add(version)
        self._previous = listed
        return jobs

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except StorageError as exc:
                log.warning("listing %s failed: %s", self.store.url, exc)
            except Exception:  # the poller must outlive any one bad listing
                log.exception("poller error")
            self._stop.wait(self.interval)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
