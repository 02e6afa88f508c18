"""veil: find every face in a video and anonymize it, offline."""

import os as _os

# ONNX Runtime's PyPI build on Linux starts telemetry when it is imported: a session file
# in $TMPDIR, a device ID and an event database under ~/.cache/Microsoft/, and uploads
# to Microsoft. Only this variable, set before its first import, prevents all three (its
# runtime switch, ``disable_telemetry_events``, comes after the files are written). Every
# entry point (CLI, service, workers, library use) imports this package first. It is
# forced, not defaulted: veil promises no byte leaves the machine, whatever it inherits.
_os.environ["ORT_DISABLE_TELEMETRY"] = "1"

from importlib import metadata as _metadata

from veil.anonymizers import ANONYMIZERS, MODES, Anonymizer, get_anonymizer
from veil.audit import AuditResult, Finding, audit_video
from veil.detections import Detections
from veil.detector import CenterFace, FaceDetector
from veil.errors import (
    CorruptVideoError,
    DetectorError,
    FacesFileError,
    FrameSizeError,
    InputError,
    InputNotFoundError,
    InvalidKeyError,
    NotAPhotoError,
    NotAVideoError,
    ObjectNotFoundError,
    OptionError,
    OutputError,
    StorageError,
    UnsupportedCodecError,
    VeilError,
)
from veil.photos import PhotoResult, audit_photo, blur_photo, detect_photo
from veil.pipeline import BlurOptions, RunResult, blur_video, detect_video, redact_video
from veil.storage import LocalStorage, MemoryStorage, S3Storage, Storage, storage_from_url
from veil.tracker import Tracker, TrackerOptions
from veil.video import VideoInfo, probe

try:
    __version__ = _metadata.version("veil")
except _metadata.PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "ANONYMIZERS",
    "MODES",
    "Anonymizer",
    "AuditResult",
    "BlurOptions",
    "CenterFace",
    "CorruptVideoError",
    "Detections",
    "DetectorError",
    "FaceDetector",
    "FacesFileError",
    "Finding",
    "FrameSizeError",
    "InputError",
    "InputNotFoundError",
    "InvalidKeyError",
    "LocalStorage",
    "MemoryStorage",
    "NotAPhotoError",
    "NotAVideoError",
    "ObjectNotFoundError",
    "OptionError",
    "OutputError",
    "PhotoResult",
    "RunResult",
    "S3Storage",
    "Storage",
    "StorageError",
    "Tracker",
    "TrackerOptions",
    "UnsupportedCodecError",
    "VeilError",
    "VideoInfo",
    "__version__",
    "audit_photo",
    "audit_video",
    "blur_photo",
    "blur_video",
    "detect_photo",
    "detect_video",
    "get_anonymizer",
    "probe",
    "redact_video",
    "storage_from_url",
]
