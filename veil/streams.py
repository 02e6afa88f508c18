"""What travels with the picture and the sound: tags, subtitles, cover art, chapters.

Metadata is personal data: a phone's file names where it was shot (``location``,
``com.apple.quicktime.location.ISO6709``), the device (make, model, serial numbers),
its owner and the software it ran, and embedded cover art can identify a person as
surely as a face. So veil keeps, by default, only the tags a player needs
(``KEPT_TAGS``: language, timecode, creation time) and drops every other tag, cover art
and data track; ``keep_metadata`` copies the tags as they were instead. What was
dropped is listed by name, never by value (``RemovedMetadata``).

Subtitles and chapters are part of the video and are kept: subtitles copied where the
output container holds their codec (``SUBTITLE_CODECS``), text subtitles re-encoded to
the container's text codec where it does not, picture subtitles dropped where it
cannot hold them. The rotation matrix and colour description are the video encoder's
business (``veil.video``), not tags.

``ExtraStreams.add`` does all of it to a new output container before its header is
written; ``write`` routes the packets of the streams it added (``packet_streams``
names the input streams whose packets it needs).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import av
from av.codec import Codec

KEPT_TAGS = frozenset({"language", "timecode", "creation_time"})
"""Tags kept by default, at the container and stream level (any case): a player shows
audio and subtitle languages, an editor lines clips up by timecode, and the creation
time sorts a library (``strip_time`` drops it)."""

TIME_TAGS = frozenset({"creation_time", "date", "com.apple.quicktime.creationdate"})
"""Tags ``strip_time`` removes, also when ``keep_metadata`` keeps the rest."""

CHAPTER_TAGS = frozenset({"title"})
"""Chapter tags kept by default: a chapter's title is what a player's menu shows."""

# Describe the input's file format, not the recording; the muxer writes the output's
# own. Never copied, never listed.
_FORMAT_TAGS = frozenset({"major_brand", "minor_version", "compatible_brands", "duration"})

SUBTITLE_CODECS: dict[str, tuple[str, ...]] = {
    "mp4": ("mov_text", "dvd_subtitle"),
    "mov": ("mov_text",),
    "matroska": (
        "subrip",
        "ass",
        "webvtt",
        "text",
        "dvd_subtitle",
        "dvb_subtitle",
        "hdmv_pgs_subtitle",
    ),
    "webm": ("webvtt",),
}
"""Subtitle codecs each output container holds; text subtitles in other codecs are
re-encoded to the first. AVI and MPEG-TS outputs hold none that FFmpeg writes from text,
so subtitles are dropped there."""

# Matroska stores fonts (which styled ASS subtitles name) and cover art as attachments;
# MP4 stores cover art in its iTunes tags, which mdta tags (below) replace.
_ATTACHMENT_CONTAINERS = frozenset({"matroska"})
_COVER_CONTAINERS = frozenset({"mp4", "matroska"})
_FONT_TYPES = ("font/", "application/x-truetype-font", "application/vnd.ms-opentype")
_PICTURE_TYPES = {"mjpeg": ("image/jpeg", "jpg"), "png": ("image/png", "png")}
_TEXT_SUBTITLE = 1 << 17  # AV_CODEC_PROP_TEXT_SUB

# What the text subtitle encoders need to open when a decoder gives no header.
_ASS_HEADER = b"""[Script Info]
ScriptType: v4.00+
PlayResX: 384
PlayResY: 288

[V4+ Styles]
Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, Bold, Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, Shadow, Alignment, MarginL, MarginR, MarginV, Encoding
Style: Default,Arial,16,&Hffffff,&Hffffff,&H0,&H0,0,0,0,0,100,100,0,0,1,1,0,2,10,10,10,0

[Events]
Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text
"""


@dataclass(frozen=True)
class RemovedMetadata:
    """What the output lacks of the input's metadata: tag names, never their values.

    ``tags`` are the container's, ``stream_tags`` those of the streams kept (all streams
    together), ``chapter_tags`` those of the chapters; ``streams`` describes the streams
    dropped as metadata, e.g. ``"cover art (mjpeg)"``, ``"data"``.
    """

    tags: tuple[str, ...] = ()
    stream_tags: tuple[str, ...] = ()
    chapter_tags: tuple[str, ...] = ()
    streams: tuple[str, ...] = ()

    def to_json(self) -> dict[str, list[str]]:
        """The faces file's ``MetadataRemoved`` field."""
        return {
            "Tags": list(self.tags),
            "StreamTags": list(self.stream_tags),
            "ChapterTags": list(self.chapter_tags),
            "Streams": list(self.streams),
        }


@dataclass
class _Removed:
    """``RemovedMetadata`` while it is gathered."""

    tags: set[str] = field(default_factory=set)
    stream_tags: set[str] = field(default_factory=set)
    chapter_tags: set[str] = field(default_factory=set)
    streams: list[str] = field(default_factory=list)

    def frozen(self) -> RemovedMetadata:
        return RemovedMetadata(
            tuple(sorted(self.tags)),
            tuple(sorted(self.stream_tags)),
            tuple(sorted(self.chapter_tags)),
            tuple(self.streams),
        )


@dataclass(frozen=True)
class _Policy:
    keep_metadata: bool
    strip_time: bool

    def filter(
        self, tags: Mapping[str, str], removed: set[str], kept_tags: frozenset[str] = KEPT_TAGS
    ) -> dict[str, str]:
        """The tags to write; the names of the others are added to ``removed``."""
        kept = {}
        for name, value in tags.items():
            lower = name.lower()
            if lower in _FORMAT_TAGS:
                continue
            if (self.keep_metadata or lower in kept_tags) and not (
                self.strip_time and lower in TIME_TAGS
            ):
                kept[name] = value
            else:
                removed.add(name)
        return kept


def is_cover_art(stream: Any) -> bool:
    """Whether a video stream is a still picture attached to the file (cover art,
    a thumbnail), not a video."""
    return bool(stream.disposition & av.stream.Disposition.attached_pic)


def packet_streams(container: Any, video: Any) -> list[Any]:
    """The input streams besides ``video`` and the audio whose packets ``ExtraStreams``
    may copy: subtitles and cover art. Data tracks are never copied (see ``add``)."""
    covers = [s for s in container.streams.video if s is not video and is_cover_art(s)]
    return [*container.streams.subtitles, *covers]


Route = Callable[[Any], list[Any]]
"""Turns one input packet into the packets to mux."""


class ExtraStreams:
    """The input's metadata, subtitles, cover art, attachments and chapters, added to an
    output under the metadata policy. ``removed`` lists what the policy or the output
    container left out; ``write`` gives the packets to mux for an input packet."""

    def __init__(self, routes: dict[int, Route], removed: RemovedMetadata) -> None:
        self._routes = routes
        self.removed = removed

    @classmethod
    def add(
        cls,
        source: Any,
        output: Any,
        mapped: Mapping[int, Any],
        *,
        keep_metadata: bool = False,
        strip_time: bool = False,
    ) -> ExtraStreams:
        """Set up ``output`` (an ``av`` output container, header not yet written) from
        ``source`` (the input container). ``mapped`` gives, per input stream index, the
        output stream the caller made of it (video, audio): their tags are set here."""
        policy = _Policy(keep_metadata, strip_time)
        removed = _Removed()
        kind = output.format.name
        tags = policy.filter(source.metadata, removed.tags)
        # mdta tags hold any key (com.apple.quicktime.make); without them the MP4 muxer
        # writes the iTunes list, which has no place for reverse-DNS keys.
        mdta = kind in ("mp4", "mov") and any("." in name for name in tags)
        if mdta:
            flags = output.options.get("movflags", "")
            output.options["movflags"] = f"{flags}+use_metadata_tags"
        output.metadata.update(tags)
        for index, stream in mapped.items():
            stream.metadata.update(
                policy.filter(source.streams[index].metadata, removed.stream_tags)
            )
        routes: dict[int, Route] = {}
        for src in source.streams.subtitles:
            route = _subtitles(src, output, kind, policy, removed)
            if route is not None:
                routes[src.index] = route
        for src in source.streams.video:
            if src.index not in mapped and is_cover_art(src):
                route = _cover(src, source, output, kind, policy, removed, mdta=mdta)
                if route is not None:
                    routes[src.index] = route
        for src in source.streams.attachments:
            _attachment(src, output, kind, policy, removed)
        for src in source.streams.data:
            # The muxers write a timecode track from the timecode tag (kept above) and a
            # chapter track from the chapters; other data tracks (GoPro telemetry, Apple
            # timed metadata) carry GPS fixes, and FFmpeg's muxers cannot copy most.
            timecode = any(name.lower() == "timecode" for name in src.metadata)
            chapter_track = src.discard == av.stream.Discard.all
            if not (timecode or chapter_track):
                removed.streams.append(_describe("data", src))
        chapters = source.chapters()
        if chapters:
            output.set_chapters(
                [
                    {
                        **chapter,
                        "metadata": policy.filter(
                            chapter["metadata"], removed.chapter_tags, CHAPTER_TAGS
                        ),
                    }
                    for chapter in chapters
                ]
            )
        return cls(routes, removed.frozen())

    def write(self, packet: Any) -> list[Any]:
        """The packets to mux for ``packet`` of an input stream (none for a dropped one)."""
        route = self._routes.get(packet.stream.index)
        return route(packet) if route is not None else []


def _describe(kind: str, stream: Any) -> str:
    context = stream.codec_context
    return f"{kind} ({context.name})" if context is not None else kind


def _copy_to(stream: Any) -> Route:
    def copy(packet: Any) -> list[Any]:
        packet.stream = stream
        return [packet]

    return copy


def _codec_id(name: str) -> int:
    return int(Codec(name, "r").id)


def _subtitles(
    src: Any, output: Any, kind: str, policy: _Policy, removed: _Removed
) -> Route | None:
    """Copy a subtitle stream, or re-encode its text to the output's text codec; ``None``
    where the output holds neither (picture subtitles in MP4, any in AVI)."""
    allowed = SUBTITLE_CODECS.get(kind, ())
    context = src.codec_context
    if context is None or not allowed:
        return None
    if context.codec.id in {_codec_id(name) for name in allowed}:
        stream = output.add_stream_from_template(src)
        route = _copy_to(stream)
    elif context.codec.properties & _TEXT_SUBTITLE:
        retext = _Retext(src, output, allowed[0])
        stream, route = retext.stream, retext
    else:
        return None
    stream.disposition = src.disposition
    stream.metadata.update(policy.filter(src.metadata, removed.stream_tags))
    return route


class _Retext:
    """Decodes text subtitles and encodes them with another text codec (SubRip to
    mov_text for MP4, anything to WebVTT for WebM), each cue at its time."""

    def __init__(self, src: Any, output: Any, codec: str) -> None:
        self._decoder = src.codec_context
        # Text decoders state their styles as an ASS header once open; encoders need it.
        self._decoder.open(strict=False)
        self.stream = output.add_stream(codec)
        self.stream.time_base = src.time_base
        encoder = self.stream.codec_context
        encoder.time_base = src.time_base
        encoder.subtitle_header = self._decoder.subtitle_header or _ASS_HEADER

    def __call__(self, packet: Any) -> list[Any]:
        try:
            cues = self._decoder.decode2(packet)
            if cues is None or len(cues) == 0:
                return []
            out = self.stream.codec_context.encode_subtitle(cues)
        except av.error.FFmpegError:
            return []  # a damaged cue: players skip it too, and so does the copy
        out.stream = self.stream
        out.time_base = packet.time_base
        out.pts, out.dts, out.duration = packet.pts, packet.dts, packet.duration
        return [out]


def _cover(
    src: Any,
    source: Any,
    output: Any,
    kind: str,
    policy: _Policy,
    removed: _Removed,
    *,
    mdta: bool,
) -> Route | None:
    """Cover art: dropped by default; with ``keep_metadata`` an attached picture in MP4
    (not beside mdta tags) or an attachment in Matroska."""
    if not policy.keep_metadata or kind not in _COVER_CONTAINERS or (kind == "mp4" and mdta):
        removed.streams.append(_describe("cover art", src))
        return None
    if kind == "mp4":
        stream = output.add_stream_from_template(src)
        stream.disposition = av.stream.Disposition.attached_pic
        return _copy_to(stream)
    mimetype, ext = _PICTURE_TYPES.get(src.codec_context.name, ("image/jpeg", "jpg"))
    output.add_attachment(
        src.metadata.get("filename", f"cover.{ext}"),
        src.metadata.get("mimetype", mimetype),
        _attached_picture(source, src.index),
    )
    return None


def _attached_picture(source: Any, index: int) -> bytes:
    """The picture of an attached-picture stream. Its one packet comes first when the
    file is demuxed, too late for a Matroska header; a second look at the file is cheap."""
    with contextlib.closing(av.open(source.name, metadata_errors="ignore")) as again:
        for packet in again.demux(again.streams[index]):
            if packet.size:
                return bytes(packet)
    return b""


def _attachment(src: Any, output: Any, kind: str, policy: _Policy, removed: _Removed) -> None:
    """Fonts go where the output holds attachments; other files (any file may be
    attached) only with ``keep_metadata``."""
    mimetype = src.metadata.get("mimetype", "")
    font = mimetype.startswith(_FONT_TYPES)
    if kind in _ATTACHMENT_CONTAINERS and (font or policy.keep_metadata):
        output.add_attachment(src.name or "attachment", mimetype, src.data)
    elif not font:
        removed.streams.append(f"attachment ({mimetype or 'unknown type'})")
