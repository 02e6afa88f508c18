"""Which keys of a store are users' videos, and which are veil's own.

A blur job publishes its output under its input's key, with ``KEY.faces.json`` and
``KEY.veil.json`` beside it, and keeps its working objects (segment pieces, face-detection
results) under ``.veil/`` in the output store. So a key an uploader picks is also a key
veil will write: an input named ``.veil/segments/JOB/1.mp4`` would publish over another
job's piece, and one named ``a.mp4.faces.json/b.mp4`` would stand in the way of
``a.mp4``'s faces file. Every way a job starts (upload, API, bucket event, poller, the
face-detection API) and the workflow's first step refuse such keys:

- no path segment may start with ``.`` (hidden names, and everything under ``.veil/``);
- no name may carry ``.veil-partial`` (a folder store's files being written);
- no folder may be named like something veil publishes (a video, ``*.faces.json``,
  ``*.veil.json``): in a folder store it would block that object, and it reads as one;
- and, for jobs, the name must end in a video extension.
"""

from __future__ import annotations

import hashlib

from veil.errors import InvalidKeyError
from veil.photos import PHOTO_EXTENSIONS
from veil.storage import check_key
from veil.storage.local import NAME_MAX, PARTIAL_SUFFIX, fitting_name
from veil.video import VIDEO_EXTENSIONS

FACES_SUFFIX = ".faces.json"
"""A blur job's faces file is published as ``KEY.faces.json``."""
REPORT_SUFFIX = ".veil.json"
"""A job's privacy report is published as ``KEY.veil.json``."""
RESERVED_FOLDER = ".veil"
"""Where veil keeps its own objects in the output store (pieces, face-detection results)."""
MEDIA_EXTENSIONS = (*VIDEO_EXTENSIONS, *PHOTO_EXTENSIONS)
"""What a blur job takes: videos and photos."""
_PUBLISHED_ENDINGS = (*MEDIA_EXTENSIONS, FACES_SUFFIX, REPORT_SUFFIX)


def face_detection_key(job_id: str) -> str:
    """Where a face-detection job (the cloud API's) keeps its result in the output store."""
    return f"{RESERVED_FOLDER}/face-detection/{job_id}.json"


def check_not_reserved(key: str) -> str:
    """``key`` if it is a valid key that names none of veil's own objects and lies under
    none of the names veil publishes to; ``InvalidKeyError`` saying why otherwise."""
    *folders, name = check_key(key).split("/")
    if any(part.startswith(".") for part in (*folders, name)):
        raise InvalidKeyError(key, "names starting with '.' are hidden or veil's own (.veil/)")
    if any(PARTIAL_SUFFIX in part for part in (*folders, name)):
        raise InvalidKeyError(key, f"names containing {PARTIAL_SUFFIX!r} are files being written")
    for folder in folders:
        if folder.lower().endswith(_PUBLISHED_ENDINGS):
            raise InvalidKeyError(
                key,
                f"the folder {folder!r} is named like a video, a photo or a file veil publishes",
            )
    return key


def check_media_key(key: str) -> str:
    """``key`` if a job may read it and publish under it: not reserved
    (``check_not_reserved``) and with a video or photo extension; ``InvalidKeyError``
    otherwise."""
    check_not_reserved(key)
    if not key.lower().endswith(MEDIA_EXTENSIONS):
        raise InvalidKeyError(
            key, f"not a video or photo file type ({', '.join(MEDIA_EXTENSIONS)})"
        )
    return key


def is_media_key(key: str) -> bool:
    """Whether ``key`` should start a job (``check_media_key`` passes): listings and events
    also name folders, parts, other files and veil's own objects, which are skipped."""
    try:
        check_media_key(key)
    except InvalidKeyError:
        return False
    return True


def faces_file_key(key: str) -> str:
    """Where a blur job's faces file goes: ``KEY.faces.json``, beside the output."""
    return _beside(key, FACES_SUFFIX)


def report_key(key: str) -> str:
    """Where ``--write-report`` puts a job's privacy report: ``KEY.veil.json``."""
    return _beside(key, REPORT_SUFFIX)


def _beside(key: str, suffix: str) -> str:
    """``KEY`` + ``suffix``. A name with no room left for the suffix (a folder store's
    names end at 255 bytes) is shortened and keeps a digest of the whole name, so it
    stays the output's own."""
    folder, _, name = key.rpartition("/")
    beside = f"{name}{suffix}"
    if len(beside.encode()) > NAME_MAX:
        digest = hashlib.sha256(name.encode()).hexdigest()[:12]
        beside = fitting_name(name, f"-{digest}{suffix}")
    return f"{folder}/{beside}" if folder else beside


PIECES_PREFIX = f"{RESERVED_FOLDER}/segments"
"""Where a long job's segments leave their pieces in the output store, out of the way of
published keys (``veil.segment_jobs``)."""


HELD_PREFIX = f"{RESERVED_FOLDER}/held"
"""Where a held job keeps the output its audit held, for a reviewer to watch: never a
published key."""


def held_key(job_id: str, suffix: str) -> str:
    """Where job ``job_id`` keeps its latest held output (the job's own, or a re-render's)."""
    return f"{HELD_PREFIX}/{job_id}{suffix}"


def piece_keys(job_id: str, index: int, suffix: str) -> tuple[str, str]:
    """Where segment ``index`` of job ``job_id`` leaves its video and faces file."""
    folder = f"{PIECES_PREFIX}/{job_id}"
    return f"{folder}/{index}{suffix}", f"{folder}/{index}.faces.json"
