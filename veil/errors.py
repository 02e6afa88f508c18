"""Every error veil raises on purpose.

The tree::

    VeilError                    anything veil reports in plain words
    ├── OptionError              a bad option value (unknown mode, threshold out of range)
    ├── DetectorError            the face detector cannot run (missing model, no CUDA)
    ├── InputError               the input video cannot be used; carries ``path``
    │   ├── InputNotFoundError   no such file
    │   ├── NotAVideoError       empty file, not a media file, or no video stream
    │   ├── CorruptVideoError    truncated or damaged beyond decoding
    │   ├── UnsupportedCodecError  a video codec this build cannot decode
    │   └── FrameSizeError       a picture larger than veil processes (8K)
    ├── OutputError              the output cannot be written; carries ``path``
    ├── FacesFileError           a faces.json that cannot be read or does not fit the video
    ├── InvalidKeyError          an object key that could leave its bucket (400)
    └── StorageError             a store cannot be reached or refused; ``transient`` says
        │                        whether trying again may help (503 or 502)
        └── ObjectNotFoundError  no such object or bucket (404)

Foreign errors (PyAV, ONNX Runtime, OSError) are translated where they are raised,
with ``raise ... from exc`` so the cause stays visible in logs.
"""

from __future__ import annotations

from pathlib import Path


class VeilError(Exception):
    """Root of veil's errors; ``str(error)`` is a message fit for a user."""


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


class NotAVideoError(InputError):
    """The input is empty, not a media file, or has no video stream."""


class FrameSizeError(InputError):
    """The picture is larger than veil processes; refused before any frame is decoded."""


class CorruptVideoError(InputError):
    """The input is truncated or damaged so that it cannot be decoded."""


class UnsupportedCodecError(InputError):
    """The input's video codec cannot be decoded by this build."""


class OutputError(_PathError):
    """The output cannot be written."""


class FacesFileError(_PathError):
    """A faces file cannot be read or does not describe this video."""


class InvalidKeyError(VeilError):
    """An object key that is not allowed (it could address something outside its store)."""

    status_code = 400

    def __init__(self, key: str, reason: str) -> None:
        self.key = key
        super().__init__(f"invalid key {key!r}: {reason}")


class StorageError(VeilError):
    """A storage operation failed; ``transient`` errors are worth retrying."""

    status_code = 502

    def __init__(self, store: str, key: str | None, reason: str, *, transient: bool) -> None:
        self.store = store
        self.key = key
        self.transient = transient
        where = f"{store}/{key}" if key else store
        super().__init__(f"{where}: {reason}")


class ObjectNotFoundError(StorageError):
    """The object (or its bucket) does not exist."""

    status_code = 404

    def __init__(self, store: str, key: str | None, reason: str = "no such object") -> None:
        super().__init__(store, key, reason, transient=False)
