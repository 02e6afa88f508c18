"""Every error veil raises on purpose.

The tree::

    VeilError                    anything veil reports in plain words
    ├── OptionError              a bad option value (unknown mode, threshold out of range)
    ├── DetectorError            the face detector cannot run (missing model, no CUDA)
    ├── InputError               the input video cannot be used; carries ``path``
    │   ├── InputNotFoundError   no such file
    │   ├── InputAccessError     the file is there but may not be read
    │   ├── NotAVideoError       empty file, not a media file, or no video stream
    │   ├── NotAPhotoError       a picture that is empty, damaged, animated or unknown
    │   ├── CorruptVideoError    truncated or damaged beyond decoding
    │   ├── UnsupportedCodecError  a video codec this build cannot decode
    │   └── FrameSizeError       a picture larger than veil processes (8K video,
    │                            150 MP photos)
    ├── OutputError              the output cannot be written; carries ``path``
    ├── LiveSourceError          a live source that cannot be opened or read
    │                            (``veil.live``); ``path`` shown without a password
    ├── FacesFileError           a faces.json that cannot be read or does not fit the video
    ├── InvalidKeyError          an object key that could leave its bucket (400)
    ├── EventError               a bucket event of the wrong shape (400)
    ├── StorageError             a store cannot be reached or refused; ``transient`` says
    │   │                        whether trying again may help (503 or 502)
    │   ├── ObjectNotFoundError  no such object or bucket (404)
    │   ├── ObjectChangedError   the key now holds newer bytes than those asked for (410)
    │   └── DatabaseError        the job database failed or cannot be reached (503)
    ├── JobError                 a request about a job that cannot be done; ``job_id``
    │   ├── JobNotFoundError     no such job (404)
    │   └── JobStateError        not in this state, e.g. retrying a running job (409)
    ├── JobFailed                a job's permanent failure, in the words the job shows;
    │                            never retried (``veil.workflow``)
    ├── JobCancelled             a running step stopped because its job was cancelled
    ├── UploadError              an upload that is malformed, too large (413) or finds
    │                            the disk full (507) (``veil.api.uploads``)
    ├── WebhookError             a webhook that cannot be reached or answered badly;
    │   └── WebhookURLError      a URL veil may not send to (400) (``veil.webhooks``)
    ├── SignatureError           a request whose SigV4 signature does not verify;
    │                            ``code`` names it as SDKs expect (``veil.api.sigv4``)
    └── ApiError                 an error of the face-detection API: ``code`` (its
                                 ``__type``) and HTTP ``status`` (``veil.api.rekognition``)

Foreign errors (PyAV, ONNX Runtime, botocore, OSError) are translated where they are
raised, with ``raise ... from exc`` so the cause stays visible in logs. Every error
pickles back to itself (DBOS stores a failed job's error that way).
"""

from __future__ import annotations

from pathlib import Path


class VeilError(Exception):
    """Root of veil's errors; ``str(error)`` is a message fit for a user."""

    def __reduce__(self) -> tuple[object, ...]:
        # Exception pickles as ``type(*args)``, and args here is the message alone, which
        # most subclasses' __init__ does not take: rebuild from the message and the
        # attributes instead, for every subclass at once.
        return _rebuilt, (type(self), str(self), self.__dict__)


def _rebuilt(cls: type[VeilError], message: str, attributes: dict[str, object]) -> VeilError:
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    error.__dict__.update(attributes)
    return error


class OptionError(VeilError):
    """An option has a value veil cannot use."""


class DetectorError(VeilError):
    """The face detector cannot be loaded or run."""


class _PathError(VeilError):
    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class InputError(_PathError):
    """The input video cannot be used."""


class InputNotFoundError(InputError):
    """The input path does not exist."""


class InputAccessError(InputError):
    """The input exists but this process may not read it."""


class NotAVideoError(InputError):
    """The input is empty, not a media file, or has no video stream."""


class NotAPhotoError(InputError):
    """A picture veil cannot take: empty, not a picture, damaged or truncated, animated or
    of several pages, or in a format it does not write back (``veil.photos``)."""


class FrameSizeError(InputError):
    """The picture is larger than veil processes (refused before any frame is decoded), or
    its size changes mid-stream (refused at the first frame of another size)."""


class CorruptVideoError(InputError):
    """The input is truncated or damaged so that it cannot be decoded."""


class UnsupportedCodecError(InputError):
    """The input's video codec cannot be decoded by this build."""


class OutputError(_PathError):
    """The output cannot be written."""


class LiveSourceError(_PathError):
    """A live source that cannot be opened or read: a bad address, a refused connection,
    no video, a codec this build cannot decode (``veil.live``). ``path`` is the source as
    shown, without a password."""


class FacesFileError(_PathError):
    """A faces file cannot be read or does not describe this video."""


class InvalidKeyError(VeilError):
    """An object key that is not allowed (it could address something outside its store)."""

    status_code = 400

    def __init__(self, key: str, reason: str) -> None:
        self.key = key
        self.reason = reason
        shown = key if len(key) <= 100 else key[:100] + "..."  # the message is echoed back
        super().__init__(f"invalid key {shown!r}: {reason}")


class EventError(VeilError):
    """A bucket event notification that does not have the shape its sender documents."""

    status_code = 400


class StorageError(VeilError):
    """A storage operation failed; ``transient`` errors are worth retrying."""

    status_code = 502

    def __init__(self, store: str, key: str | None, reason: str, *, transient: bool) -> None:
        self.store = store
        self.key = key
        self.reason = reason
        self.transient = transient
        where = f"{store}/{key}" if key else store
        super().__init__(f"{where}: {reason}")


class ObjectNotFoundError(StorageError):
    """The object (or its bucket) does not exist."""

    status_code = 404

    def __init__(self, store: str, key: str | None, reason: str = "no such object") -> None:
        super().__init__(store, key, reason, transient=False)


class ObjectChangedError(StorageError):
    """The object is no longer the version asked for: new bytes were stored under its key."""

    status_code = 410

    def __init__(
        self, store: str, key: str | None, reason: str = "replaced by a newer version"
    ) -> None:
        super().__init__(store, key, reason, transient=False)


class DatabaseError(StorageError):
    """The job database (SQLite or PostgreSQL) failed or cannot be reached."""

    status_code = 503


class JobError(VeilError):
    """A request about a job that cannot be done; carries ``job_id``."""

    status_code = 400

    def __init__(self, job_id: str, reason: str) -> None:
        self.job_id = job_id
        self.reason = reason
        super().__init__(f"job {job_id}: {reason}")


class JobNotFoundError(JobError):
    """No such job."""

    status_code = 404

    def __init__(self, job_id: str, reason: str = "no such job") -> None:
        super().__init__(job_id, reason)


class JobStateError(JobError):
    """The job's state does not allow what was asked (retrying a running job)."""

    status_code = 409


class JobFailed(VeilError):
    """A permanent failure, with the message the job shows. Never retried."""


class JobCancelled(VeilError):
    """A running step stopped because its job (or segment) was cancelled meanwhile.
    Never retried: the job is over."""


class SignatureError(VeilError):
    """A request that fails authentication; ``code`` is the error name SDKs expect."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(message)


class ApiError(VeilError):
    """An error in the face-detection API's shape: its ``__type`` name and HTTP status."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        self.code = code
        self.status = status
        super().__init__(message)
