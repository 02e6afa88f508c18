"""Encoding: ``VideoWriter`` encodes hidden frames (turned back to the input's coded
orientation) into the input's container with its audio and other streams copied, the
codec chosen by ``--codec`` (``output_encoder``), and re-encodes audio the container
cannot hold."""

from __future__ import annotations

import contextlib
import functools
import os
import uuid
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, cast

import av

from veil.errors import OptionError, OutputError
from veil.streams import ExtraStreams, RemovedMetadata
from veil.video.info import VIDEO_EXTENSIONS, Frame, from_display
from veil.video.reader import DecodedFrame, VideoReader

# SVT-AV1 prints its whole configuration to stderr each time an encoder opens; 1 keeps
# its errors only. Set before the first AV1 encoder starts; a user's own setting wins.
os.environ.setdefault("SVT_LOG", "1")

CODECS = ("auto", "h264", "hevc", "vp9", "av1")
"""Output video codecs (``--codec``). ``auto`` keeps the input's family where the output
container holds it (a phone's 10-bit HEVC stays HEVC, so HDR stays HDR as recorded),
and otherwise takes the container's usual codec."""
_ENCODERS = {"h264": "libx264", "hevc": "libx265", "vp9": "libvpx-vp9", "av1": "libsvtav1"}
# Codecs each container holds, its usual one first. AVI stores no presentation times
# and H.264 in AVI comes back shifted by a frame, so AVI gets MPEG-4 Part 2, its classic
# codec, without B-frames.
_CONTAINER_CODECS = {
    "mp4": ("h264", "hevc", "vp9", "av1"),
    "mov": ("h264", "hevc"),
    "matroska": ("h264", "hevc", "vp9", "av1"),
    "webm": ("vp9", "av1"),
    "mpegts": ("h264", "hevc"),
    "avi": ("mpeg4",),
}
# Pictures larger than 1440p get a shorter x264 look-ahead (_LOOKAHEAD_PIXELS in all)
# and one B-frame.
_LARGE_PICTURE = 2560 * 1440
_LOOKAHEAD_PIXELS = 24_000_000
_FULL_RANGE_ALIASES = {"yuvj420p": "yuv420p", "yuvj422p": "yuv422p", "yuvj444p": "yuv444p"}
# Audio codecs each container can hold; anything else is re-encoded to the first entry.
_AUDIO_CODECS = {
    "mp4": ("aac", "mp3", "alac", "ac3", "eac3", "opus", "flac"),
    "mov": ("aac", "mp3", "alac", "ac3", "eac3", "pcm_s16le", "pcm_s24le", "pcm_s16be"),
    "webm": ("opus", "vorbis"),
    "avi": ("mp3", "ac3", "pcm_s16le", "aac"),
    "mpegts": ("aac", "mp3", "mp2", "ac3", "eac3", "opus"),
}
_CONTAINER_BY_EXT = {
    ".mp4": "mp4",
    ".m4v": "mp4",
    ".mov": "mov",
    ".mkv": "matroska",
    ".webm": "webm",
    ".avi": "avi",
    # Camcorder and broadcast files: MPEG transport streams; .mts and .m2ts are the
    # Blu-ray/AVCHD flavour, with a 4-byte timestamp before each 188-byte packet.
    ".ts": "mpegts",
    ".mts": "mpegts",
    ".m2ts": "mpegts",
}
_M2TS_EXTENSIONS = (".mts", ".m2ts")


@dataclass(frozen=True, kw_only=True)
class EncodeOptions:
    crf: int = 20
    preset: str = "veryfast"
    keep_audio: bool = True
    threads: int = 0
    codec: str = "auto"
    """One of ``CODECS``."""
    keep_metadata: bool = False
    """Copy every tag and the cover art; by default only ``veil.streams.KEPT_TAGS``."""
    strip_time: bool = False
    """Drop the creation time too (``veil.streams.TIME_TAGS``)."""


@functools.cache
def _encoder_formats(encoder: str) -> frozenset[str]:
    """The pixel formats ``encoder`` takes as they are, as this FFmpeg build has it (its
    libvpx, for one, has no 10-bit VP9)."""
    return frozenset(f.name for f in av.codec.Codec(encoder, "w").video_formats or ())


def output_encoder(codec: str, container_name: str, input_codec: str) -> str:
    """The FFmpeg encoder for ``codec`` (``CODECS``) in ``container_name``, given the
    input's codec; ``OptionError`` for a codec the container cannot hold."""
    allowed = _CONTAINER_CODECS.get(container_name, ("h264",))
    if codec == "auto":
        family = {"h264": "h264", "hevc": "hevc", "vp9": "vp9", "av1": "av1"}.get(input_codec)
        chosen = family if family in allowed else allowed[0]
    elif codec in allowed:
        chosen = codec
    else:
        raise OptionError(
            f"--codec {codec}: the {container_name} container cannot hold it "
            f"(it holds {', '.join(allowed)})"
        )
    return _ENCODERS.get(chosen, chosen)


class VideoWriter:
    """Encodes display-oriented RGB frames into ``path`` like the reader's input.

    Writes to a temporary name next to ``path`` and renames it on ``commit()``; closing
    without committing removes the temporary file, so no half-written video is left.

    ``video_only``: the picture alone, no audio, subtitles or tags (a segment of a longer
    video, ``veil.segments``), its frames' timestamps less ``time_offset`` (a segment
    starts at 0: MP4 states a later start in milliseconds, AVI cannot state one; the
    join puts it back). ``copy_video``: a video stream (of another file) whose
    packets ``write_packet`` copies instead of encoding frames; audio and the rest come
    from ``reader`` as usual (the join of a segmented video).
    """

    def __init__(
        self,
        path: str | Path,
        reader: VideoReader,
        options: EncodeOptions,
        *,
        video_only: bool = False,
        copy_video: Any | None = None,
        time_offset: int = 0,
    ) -> None:
        self.path = Path(path)
        self._info = reader.info
        # Not named after the output: a name at the file system's limit has no room for more.
        self._tmp = self.path.with_name(
            f".veil-{os.getpid()}-{uuid.uuid4().hex[:8]}.part{self.path.suffix}"
        )
        container_name = _CONTAINER_BY_EXT.get(self.path.suffix.lower())
        if container_name is None:
            raise OutputError(
                self.path, f"unsupported output extension; use one of {', '.join(VIDEO_EXTENSIONS)}"
            )
        container_options = {}
        if container_name == "mpegts":
            # Timestamps as they were, even before zero: a transport stream's clock wraps
            # (every 26.5 hours), and a stream cut just before a wrap reads back with
            # negative times, which the muxer would otherwise shift.
            container_options["avoid_negative_ts"] = "disabled"
            if self.path.suffix.lower() in _M2TS_EXTENSIONS:
                container_options["mpegts_m2ts_mode"] = "1"
        try:
            self._container = av.open(
                str(self._tmp), "w", format=container_name, options=container_options
            )
        except (OSError, av.error.FFmpegError) as exc:
            raise OutputError(self.path, f"cannot write here ({_reason(exc)})") from exc
        self._committed = False
        self._copying = copy_video is not None
        self._offset = time_offset
        try:
            if copy_video is not None:
                self._video = self._copy_video_stream(reader, copy_video)
            else:
                self._video = self._add_video_stream(reader, container_name, options)
            keep_audio = options.keep_audio and not video_only
            self._audio_map = self._add_audio_streams(reader, container_name) if keep_audio else {}
            mapped = {reader.video_stream.index: self._video} | {
                index: target.stream if isinstance(target, _Reencoder) else target
                for index, target in self._audio_map.items()
            }
            self._extras = (
                ExtraStreams({}, RemovedMetadata())
                if video_only
                else ExtraStreams.add(
                    reader._container,
                    self._container,
                    mapped,
                    keep_metadata=options.keep_metadata,
                    strip_time=options.strip_time,
                )
            )
        except BaseException:
            self.close()
            raise

    def _add_video_stream(
        self, reader: VideoReader, container_name: str, options: EncodeOptions
    ) -> Any:
        src = reader.video_stream
        info = self._info
        codec = output_encoder(options.codec, container_name, src.codec_context.name)
        rate = src.average_rate or src.guessed_rate or Fraction(30)
        stream = cast(av.video.stream.VideoStream, self._container.add_stream(codec, rate=rate))
        coded_w, coded_h = src.codec_context.width, src.codec_context.height
        stream.width, stream.height = coded_w, coded_h
        # Non-square pixels (anamorphic DV, some phones' and broadcast files) display at
        # another shape than coded: keep the ratio, or players show the output distorted.
        aspect = src.sample_aspect_ratio or src.codec_context.sample_aspect_ratio
        if aspect and aspect != 1:
            stream.codec_context.sample_aspect_ratio = aspect
            stream.sample_aspect_ratio = aspect  # the container's copy (Matroska's display size)
        pix_fmt = _FULL_RANGE_ALIASES.get(info.pix_fmt, info.pix_fmt)
        formats = _encoder_formats(codec)
        if pix_fmt not in formats:
            # Keep 10 bits where the encoder has them (HDR needs them), else 8.
            deep = "p10" in pix_fmt or "p12" in pix_fmt
            pix_fmt = "yuv420p10le" if deep and "yuv420p10le" in formats else "yuv420p"
        if (coded_w % 2 or coded_h % 2) and pix_fmt.startswith(("yuv420", "yuv422")):
            # 4:2:0 cannot code an odd size exactly; 4:4:4 keeps the picture's size.
            odd = pix_fmt.replace("420", "444").replace("422", "444")
            pix_fmt = odd if odd in formats else pix_fmt
        stream.pix_fmt = pix_fmt
        full_range = info.color_range == 2 or info.pix_fmt in _FULL_RANGE_ALIASES
        # MPEG-4 Part 2 in AVI cannot say its range, and players take it as limited: a
        # full-range picture (an MJPEG camera's) is converted, not mislabelled.
        self._color_range = 2 if full_range and codec != "mpeg4" else 1
        stream.codec_context.color_range = self._color_range
        # The colour description (primaries, transfer, matrix): without it an HDR (HLG,
        # PQ) or BT.2020 picture plays washed out. The encoders write it in their headers.
        source = src.codec_context
        for name in ("color_primaries", "color_trc", "colorspace"):
            value = getattr(source, name, None)
            if value and value != 2:  # 2: unspecified
                setattr(stream.codec_context, name, value)
        # Keep the input's clock so every frame keeps its exact timestamp (variable rate too).
        stream.time_base = src.time_base
        stream.codec_context.time_base = src.time_base
        stream.thread_count = options.threads
        if codec == "libx264":
            # A keyframe asked for (``write_frame``) is an IDR picture, not an I picture
            # later frames may look past.
            stream.options = {
                "crf": str(options.crf),
                "preset": options.preset,
                "forced-idr": "1",
            }
            if coded_w * coded_h > _LARGE_PICTURE:
                # x264 keeps its look-ahead and B-frames in memory: half a gigabyte at 4K
                # with veryfast's 10 and 3. Fewer for large pictures keeps veil near 1 GiB
                # (measured at 4K: 530 MiB -> about 270 MiB, a few % larger files).
                frames = max(3, _LOOKAHEAD_PIXELS // (coded_w * coded_h))
                stream.options = {
                    **stream.options,
                    "rc-lookahead": str(frames),
                    "x264-params": "bframes=1",
                }
        elif codec == "libx265":
            stream.options = {
                "crf": str(options.crf + 2),  # x265's scale: crf 22 looks like x264's 20
                "preset": options.preset,
                "x265-params": "log-level=error",
                "forced-idr": "1",
            }
        elif codec == "libsvtav1":
            stream.options = {"crf": str(options.crf + 10), "preset": "10"}
        elif codec == "mpeg4":
            # A fixed quantiser (crf 20 maps to 3, visually clean), pinned through qmin and
            # qmax because PyAV cannot set the per-frame quality the qscale flag reads.
            quantiser = max(2, min(31, options.crf // 6))
            stream.codec_context.qmin = stream.codec_context.qmax = quantiser
            stream.codec_context.max_b_frames = 0
        else:
            stream.options = {
                "crf": str(options.crf + 11),
                "b": "0",
                "deadline": "realtime",
                "cpu-used": "8",
                "row-mt": "1",
            }
        if info.display_matrix is not None:
            stream.set_display_matrix(list(info.display_matrix))
        return stream

    def _copy_video_stream(self, reader: VideoReader, template: Any) -> Any:
        """A video stream with ``template``'s codec parameters (extradata, size, colour,
        display matrix), on the input's clock, for packets copied from it."""
        try:
            stream = self._container.add_stream_from_template(template)
        except (ValueError, av.error.FFmpegError) as exc:
            raise OutputError(self.path, f"cannot copy the encoded video ({exc})") from exc
        src = reader.video_stream
        stream.time_base = src.time_base
        # The rate the encoder was given: the MOV muxer's timecode track counts in it.
        stream.codec_context.framerate = src.average_rate or src.guessed_rate or Fraction(30)
        aspect = template.sample_aspect_ratio
        if aspect and aspect != 1:
            stream.sample_aspect_ratio = aspect
        return stream

    def write_packet(self, packet: Any) -> None:
        """Copy an encoded video packet of the ``copy_video`` stream."""
        packet.stream = self._video
        self._mux([packet])

    def _add_audio_streams(self, reader: VideoReader, container_name: str) -> dict[int, Any]:
        allowed = _AUDIO_CODECS.get(container_name)
        mapping: dict[int, Any] = {}
        for src in reader.audio_streams:
            name = src.codec_context.name
            if allowed is None or name in allowed:
                mapping[src.index] = self._container.add_stream_from_template(src)
            else:
                mapping[src.index] = _Reencoder(self._container, src, allowed[0])
        return mapping

    def write_frame(self, image: Frame, pts: int | None, *, keyframe: bool = False) -> None:
        """Encode a display-oriented RGB picture; ``keyframe``: as one that refers to
        nothing before it (an IDR picture), where another encoding may take over."""
        coded = from_display(image, self._info.rotation, self._info.mirrored)
        frame = av.VideoFrame.from_ndarray(coded, format="rgb24")
        frame = frame.reformat(format=self._video.pix_fmt, dst_color_range=self._color_range)
        frame.pts = None if pts is None else pts - self._offset
        frame.time_base = self._video.codec_context.time_base
        if keyframe:
            frame.pict_type = av.video.frame.PictureType.I
        self._mux(self._encode(frame))

    def write_decoded(self, frame: DecodedFrame, *, keyframe: bool = False) -> None:
        """Encode a decoded frame unchanged (no face on it): no trip through RGB."""
        picture = frame.picture
        if (
            picture.format.name != self._video.pix_fmt
            or (picture.color_range or 1) != self._color_range
        ):
            picture = picture.reformat(
                format=self._video.pix_fmt,
                src_color_range=picture.color_range or None,
                dst_color_range=self._color_range,
            )
        picture.pts = None if frame.pts is None else frame.pts - self._offset
        picture.time_base = self._video.codec_context.time_base
        # The decoder's picture type (I, P, B) must not force the encoder's choice.
        picture.pict_type = (
            av.video.frame.PictureType.I if keyframe else av.video.frame.PictureType.NONE
        )
        self._mux(self._encode(picture))

    @property
    def metadata_removed(self) -> RemovedMetadata:
        """The input's tags and streams this output lacks by the metadata policy."""
        return self._extras.removed

    def write_audio(self, packet: Any) -> None:
        """Copy (or re-encode) an audio packet; other packets go to ``ExtraStreams``."""
        target = self._audio_map.get(packet.stream.index)
        if target is None:
            self._mux(self._extras.write(packet))
            return
        if isinstance(target, _Reencoder):
            self._mux(target.encode(packet))
            return
        packet.stream = target
        self._mux([packet])

    def _encode(self, picture: Any) -> Any:
        """The encoder's packets for ``picture`` (``None`` flushes), its errors translated."""
        try:
            return self._video.encode(picture)
        except av.error.FFmpegError as exc:
            raise OutputError(self.path, f"encoding failed ({_reason(exc)})") from exc

    def _mux(self, packets: Any) -> None:
        try:
            self._container.mux(packets)
        except OSError as exc:
            raise OutputError(self.path, f"cannot write ({_reason(exc)})") from exc
        except av.error.FFmpegError as exc:
            raise OutputError(self.path, f"encoding failed ({_reason(exc)})") from exc

    def commit(self) -> None:
        """Flush the encoders, close the file and move it into place."""
        if not self._copying:
            self._mux(self._encode(None))
        for target in self._audio_map.values():
            if isinstance(target, _Reencoder):
                self._mux(target.flush())
        try:
            self._container.close()
            os.replace(self._tmp, self.path)
        except OSError as exc:
            raise OutputError(self.path, f"cannot write ({_reason(exc)})") from exc
        self._committed = True

    def close(self) -> None:
        """Abandon an uncommitted output: close and delete the temporary file."""
        if self._committed:
            return
        with contextlib.suppress(Exception):
            self._container.close()
        with contextlib.suppress(FileNotFoundError):
            self._tmp.unlink()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Reencoder:
    """Decodes one audio stream and encodes it with a codec the output container accepts."""

    def __init__(self, container: Any, src: Any, codec: str) -> None:
        self.stream = container.add_stream(codec, rate=src.codec_context.sample_rate or 48000)
        self.stream.layout = src.codec_context.layout

    def encode(self, packet: Any) -> list[Any]:
        out = []
        for frame in packet.decode():
            frame.pts = None
            out.extend(self.stream.encode(frame))
        return out

    def flush(self) -> list[Any]:
        return list(self.stream.encode(None))


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc)
