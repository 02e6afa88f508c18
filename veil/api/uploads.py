"""Receiving an uploaded video: the ``file`` part of a multipart form, streamed to one
local file as it arrives and counted, so an upload over the size limit is stopped at the
limit instead of after it has all arrived, and the video is written once (no framework
spool to copy from)."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from python_multipart.exceptions import FormParserError, MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from veil.errors import VeilError

FIELD = "file"


class UploadError(VeilError):
    """An upload that cannot be taken: malformed, without a file, or too large."""

    status_code = 400

    def __init__(self, message: str, status_code: int = 400) -> None:
        super().__init__(message)
        self.status_code = status_code


@dataclass(frozen=True)
class Received:
    path: Path
    filename: str
    size: int


class _FormReader:
    """Feeds the multipart parser and keeps the bytes of the ``file`` part, a chunk at a
    time; the parser calls back synchronously while it reads each chunk."""

    def __init__(self, boundary: bytes) -> None:
        self.parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._part_begin,
                "on_header_field": self._header_field,
                "on_header_value": self._header_value,
                "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished,
                "on_part_data": self._part_data,
                "on_end": self._end,
            },
        )
        self.ended = False
        self._field = b""
        self._value = b""
        self._disposition = b""
        self._in_file = False
        self.files = 0
        self.filename = ""
        self.pending = bytearray()

    def _part_begin(self) -> None:
        self._disposition = b""
        self._in_file = False

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_end(self) -> None:
        if self._field.lower() == b"content-disposition":
            self._disposition = self._value
        self._field = self._value = b""

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        if options.get(b"name") == FIELD.encode():
            self.files += 1
            self._in_file = self.files == 1
            self.filename = options.get(b"filename", b"").decode("utf-8", "replace")

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._in_file:
            self.pending += data[start:end]

    def _end(self) -> None:
        self.ended = True

    def take(self) -> bytes:
        data, self.pending = bytes(self.pending), bytearray()
        return data


async def receive_upload(request: Request, folder: Path, max_bytes: int) -> Received:
    """Write the form's ``file`` part to a new file in ``folder``; the caller owns (and
    must remove) it. ``UploadError`` (413) as soon as more than ``max_bytes`` arrived."""
    kind, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise UploadError(f"send the video as multipart/form-data in a part named {FIELD!r}")
    try:
        reader = _FormReader(boundary)
    except FormParserError as exc:  # a boundary longer than the standard allows
        raise UploadError(f"malformed multipart form: {exc}") from None
    folder.mkdir(parents=True, exist_ok=True)
    out: IO[bytes] = tempfile.NamedTemporaryFile(dir=folder, prefix="upload-", delete=False)  # noqa: SIM115
    path, size = Path(out.name), 0
    try:
        async for chunk in request.stream():
            _parse(reader.parser.write, chunk)
            data = reader.take()
            size += len(data)
            if size > max_bytes:
                raise UploadError(f"larger than the limit of {max_bytes:,} bytes", 413)
            if data:
                await _write(out, data)
        _parse(lambda _: reader.parser.finalize(), b"")
        await _write(out, None)
        if not reader.ended:  # the body stopped before the form's closing boundary
            raise UploadError("the upload was cut short: the form does not end")
        if reader.files != 1:
            raise UploadError(f"the form must have exactly one part named {FIELD!r}")
    except BaseException:
        out.close()
        path.unlink(missing_ok=True)
        raise
    return Received(path, reader.filename, size)


def _parse(feed: Callable[[bytes], object], chunk: bytes) -> None:
    try:
        feed(chunk)
    except MultipartParseError as exc:
        raise UploadError(f"malformed multipart form: {exc}") from None


async def _write(out: IO[bytes], data: bytes | None) -> None:
    """Write ``data`` (None: flush and close) off the event loop; a full or failing disk
    is the service's problem, said so (507), not the caller's."""
    try:
        if data is None:
            await run_in_threadpool(out.close)
        else:
            await run_in_threadpool(out.write, data)
    except OSError as exc:
        raise UploadError(
            f"the service cannot store the upload now ({exc.strerror or exc}); try again later",
            507,
        ) from None
