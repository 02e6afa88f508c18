"""Streams and metadata of the output: identifying tags removed (or kept on request),
subtitles, chapters, timecode, cover art and attachments as docs/formats.md says.

Each input is written here with PyAV, tags and streams as phones, cameras and editors
write them, and copied through ``VideoReader``/``VideoWriter`` as ``veil blur`` does
(no detector: metadata does not depend on faces); one test runs the command itself.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import pytest
from av.subtitles.subtitle import SubtitleSet
from click.testing import CliRunner

from veil.cli import main
from veil.streams import RemovedMetadata
from veil.video import DecodedFrame, EncodeOptions, VideoReader, VideoWriter

FPS = 10
FRAMES = 10
CUES = ((Fraction(1, 10), "Hello"), (Fraction(6, 10), "World"))
"""Subtitle cues: start (seconds) and text, each shown 0.3 s."""
CUE_LENGTH = Fraction(3, 10)
CREATED = "2024-05-01T10:00:00.000000Z"
ASS_HEADER = b"""[Script Info]
ScriptType: v4.00+

[V4+ Styles]
Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, Bold, Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, Shadow, Alignment, MarginL, MarginR, MarginV, Encoding
Style: Default,Arial,16,&Hffffff,&Hffffff,&H0,&H0,0,0,0,0,100,100,0,0,1,1,0,2,10,10,10,0

[Events]
Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text
"""


@dataclass(frozen=True)
class Source:
    """What an input file carries besides a 1 s, 64x48 picture."""

    tags: dict[str, str] = field(default_factory=dict)
    video_tags: dict[str, str] = field(default_factory=dict)
    audio_tags: dict[str, str] | None = None
    """Tags of an AAC track; ``None``: no audio."""
    subtitles: tuple[str, ...] = ()
    """Subtitle codecs, one English track each, with ``CUES``."""
    cover: bool = False
    """An attached JPEG: a picture stream in MP4, an attachment in Matroska."""
    attachments: tuple[tuple[str, str], ...] = ()
    """(file name, MIME type) of Matroska attachments."""
    chapters: tuple[str, ...] = ()
    """Chapter titles, the second starting half-way."""
    data: bool = False
    """A data track (the muxer's ``bin_data``): telemetry stands in for it."""
    rotation: int = 0
    mdta: bool = False
    """Write MP4/MOV tags as mdta keys (reverse-DNS names, as iPhones do)."""


def jpeg() -> bytes:
    ok, data = cv2.imencode(".jpg", np.full((16, 16, 3), 200, np.uint8))
    assert ok
    return bytes(data.tobytes())


def make_video(path: Path, source: Source) -> Path:
    options = {"movflags": "use_metadata_tags"} if source.mdta else {}
    out: Any  # PyAV's stubs type streams by codec name; these are picked at run time
    with av.open(str(path), "w", options=options) as out:
        out.metadata.update(source.tags)
        codec = "libvpx-vp9" if path.suffix == ".webm" else "libx264"
        video: Any = out.add_stream(codec, rate=FPS)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        video.metadata.update(source.video_tags)
        if source.rotation:
            video.set_display_rotation(source.rotation)
        audio: Any = None
        if source.audio_tags is not None:
            audio = out.add_stream("libopus" if path.suffix == ".webm" else "aac", rate=48000)
            audio.layout = "mono"
            audio.metadata.update(source.audio_tags)
        texts = []
        for name in source.subtitles:
            text: Any = out.add_stream(name)
            text.codec_context.time_base = text.time_base = Fraction(1, 1000)
            text.codec_context.subtitle_header = ASS_HEADER
            text.metadata["language"] = "eng"
            texts.append(text)
        cover = None
        if source.cover and path.suffix == ".mkv":
            out.add_attachment("cover.jpg", "image/jpeg", jpeg())
        elif source.cover:
            cover = out.add_mux_stream("mjpeg", width=16, height=16)
            cover.disposition = av.stream.Disposition.attached_pic
        for name, mimetype in source.attachments:
            out.add_attachment(name, mimetype, b"attached bytes of " + name.encode())
        data = out.add_data_stream("bin_data") if source.data else None
        if data is not None:
            data.time_base = Fraction(1, 1000)
        if source.chapters:
            half = 1000 * FRAMES // FPS // 2
            out.set_chapters(
                [
                    {
                        "id": n + 1,
                        "start": n * half,
                        "end": (n + 1) * half,
                        "time_base": Fraction(1, 1000),
                        "metadata": {"title": title},
                    }
                    for n, title in enumerate(source.chapters)
                ]
            )
        for i in range(FRAMES):
            picture = np.full((48, 64, 3), 20 * i, np.uint8)
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24").reformat(format="yuv420p")
            frame.pts = i
            out.mux(video.encode(frame))
            if audio is not None:
                tone = np.sin(np.arange(4800) / 10).astype(np.float32)[None] * 0.1
                sound = av.AudioFrame.from_ndarray(tone, format="flt", layout="mono")
                sound.sample_rate, sound.pts = 48000, i * 4800
                out.mux(audio.encode(sound))
            for start, words in CUES:
                if start == Fraction(i, FPS):
                    for text in texts:
                        mux_cue(out, text, start, words)
            if data is not None:
                packet = av.Packet(b"GPS +48.8577+002.2950")
                packet.stream, packet.time_base = data, Fraction(1, 1000)
                packet.pts = packet.dts = i * 100
                packet.duration = 100
                out.mux(packet)
        out.mux(video.encode(None))
        if audio is not None:
            out.mux(audio.encode(None))
        if cover is not None:
            packet = av.Packet(jpeg())
            packet.stream = cover
            packet.pts = packet.dts = 0
            out.mux(packet)
    return path


def mux_cue(out: Any, stream: Any, start: Fraction, words: str) -> None:
    ms = int(start * 1000)
    # Text encoders take a cue as an ASS dialogue line.
    cue = SubtitleSet.create(f"0,0,Default,,0,0,0,,{words}".encode(), 0, 300, pts=ms * 1000)
    packet = stream.codec_context.encode_subtitle(cue)
    packet.pts = packet.dts = ms
    packet.duration = int(CUE_LENGTH * 1000)
    packet.time_base = Fraction(1, 1000)
    packet.stream = stream
    out.mux(packet)


def copy(src: Path, dst: Path, **options: Any) -> RemovedMetadata:
    """``src`` through veil's reader and writer, frames unchanged, as ``veil blur`` does
    where no face is found."""
    with VideoReader(src) as reader:
        writer = VideoWriter(dst, reader, EncodeOptions(preset="ultrafast", **options))
        with writer:
            for item in reader:
                if isinstance(item, DecodedFrame):
                    writer.write_decoded(item)
                else:
                    writer.write_audio(item)
            writer.commit()
        return writer.metadata_removed


@dataclass
class Probe:
    """What a file holds, read back with PyAV."""

    tags: dict[str, str]
    streams: list[tuple[str, str | None, Any, dict[str, str]]]
    """Type, codec, disposition and tags of each stream."""
    chapters: list[tuple[float, float, dict[str, str]]]
    cues: list[tuple[str, list[tuple[float, float, str]]]]
    """Per subtitle stream: its codec and (start s, end s, text) of each cue."""
    covers: list[bytes]
    attachments: dict[str, bytes]
    rotation: float

    def values(self) -> set[str]:
        """Every tag value, of the file and of each stream."""
        return {*self.tags.values(), *(v for s in self.streams for v in s[3].values())}

    def video_tags(self) -> dict[str, str]:
        return {k.lower(): v for k, v in self.streams[0][3].items()}

    def of_type(self, kind: str) -> list[dict[str, str]]:
        return [s[3] for s in self.streams if s[0] == kind]


def probe(path: Path) -> Probe:
    container: Any
    with av.open(str(path)) as container:
        streams = [
            (s.type, s.codec_context.name if s.codec_context else None, s.disposition, s.metadata)
            for s in container.streams
        ]
        chapters = [
            (
                float(c["start"] * c["time_base"]),
                float(c["end"] * c["time_base"]),
                c["metadata"],
            )
            for c in container.chapters()
        ]
        attachments = {s.name: s.data for s in container.streams.attachments}
        subtitles = list(container.streams.subtitles)
        covers_in = [s for s in container.streams.video if s.disposition & 1024]
        cues: dict[int, list[tuple[float, float, str]]] = {s.index: [] for s in subtitles}
        covers = []
        rotation = next(iter(container.decode(container.streams.video[0]))).rotation
        container.seek(0)
        # demux() of no stream would be of every stream.
        for packet in container.demux(*subtitles, *covers_in) if subtitles or covers_in else ():
            if not packet.size:
                continue
            if packet.stream.type == "video":
                covers.append(bytes(packet))
                continue
            got = packet.stream.codec_context.decode2(packet)
            for rect in got or ():
                start = float(packet.pts * packet.time_base)
                end = start + float(packet.duration * packet.time_base)
                cues[packet.stream.index].append((start, end, rect.dialogue.decode()))
        return Probe(
            tags=dict(container.metadata),
            streams=streams,
            chapters=chapters,
            cues=[(s.codec_context.name, cues[s.index]) for s in subtitles],
            covers=covers,
            attachments=attachments,
            rotation=rotation,
        )


# --- Identifying tags ------------------------------------------------------------------

IPHONE = {
    "com.apple.quicktime.location.ISO6709": "+48.8577+002.2950+035.000/",
    "com.apple.quicktime.make": "Apple",
    "com.apple.quicktime.model": "iPhone 15 Pro",
    "com.apple.quicktime.software": "17.4.1",
    "com.apple.quicktime.creationdate": "2024-05-01T12:00:00+0200",
}
IDENTIFYING = {
    # An iPhone's MOV: location, device and OS as mdta keys; the sound track names Apple.
    "iphone.mov": Source(
        tags={**IPHONE, "creation_time": CREATED},
        audio_tags={"handler_name": "Core Media Audio", "language": "eng"},
        mdta=True,
    ),
    # Android writes its location as the ©xyz atom (FFmpeg's "location") and its
    # make, model and OS version as mdta keys.
    "android.mp4": Source(
        tags={"location": "+37.4220-122.0841/", "creation_time": CREATED},
        audio_tags={"language": "eng"},
    ),
    "android-mdta.mp4": Source(
        tags={
            "com.android.version": "14",
            "com.android.manufacturer": "Google",
            "com.android.model": "Pixel 8",
        },
        mdta=True,
    ),
    # An editor's export: owner, title and comments in the iTunes tags.
    "export.mp4": Source(
        tags={"title": "Jane's birthday", "artist": "Jane Doe", "copyright": "Jane Doe"},
        video_tags={"language": "eng"},
    ),
    # A camera's Matroska: any tag, serial numbers and track names included.
    "camera.mkv": Source(
        tags={"SERIAL_NUMBER": "CAM-0042-XYZ", "ARTIST": "Jane Doe", "title": "Holiday"},
        video_tags={"title": "Front camera of Jane"},
        audio_tags={"language": "ger", "HANDLER_NAME": "Jane's recorder"},
    ),
}


@pytest.mark.parametrize("name", IDENTIFYING)
def test_identifying_tags_are_removed_and_listed(tmp_path, name):
    source = IDENTIFYING[name]
    src = make_video(tmp_path / name, source)
    before = probe(src)
    out = tmp_path / f"out{src.suffix}"

    removed = copy(src, out)

    after = probe(out)
    identifying = {**source.tags, **source.video_tags, **(source.audio_tags or {})}
    for tag in ("creation_time", "language"):
        identifying.pop(tag, None)
    assert set(identifying.values()).isdisjoint(after.values())
    listed = {*removed.tags, *removed.stream_tags}
    assert {t.lower() for t in identifying} <= {t.lower() for t in listed}
    # What players need stays.
    assert after.tags.get("creation_time") == before.tags.get("creation_time")
    languages = [s.get("language") for s in before.of_type("audio")]
    assert [s.get("language") for s in after.of_type("audio")] == languages


@pytest.mark.parametrize("name", IDENTIFYING)
def test_keep_metadata_copies_the_tags_as_they_were(tmp_path, name):
    source = IDENTIFYING[name]
    src = make_video(tmp_path / name, source)
    before = probe(src)
    out = tmp_path / f"out{src.suffix}"

    removed = copy(src, out, keep_metadata=True)

    after = probe(out)
    assert removed == RemovedMetadata()
    for was, now in [
        (before.tags, after.tags),
        *zip(before.of_type("video"), after.of_type("video"), strict=True),
        *zip(before.of_type("audio"), after.of_type("audio"), strict=True),
    ]:
        assert lowered(was).items() <= lowered(now).items()


def lowered(tags: dict[str, str]) -> dict[str, str]:
    """Tags by lower-case name, without those the muxer writes of its own: the program
    that wrote the file and (Matroska) the track's duration."""
    return {k.lower(): v for k, v in tags.items() if k.lower() not in ("encoder", "duration")}


@pytest.mark.parametrize("suffix", [".mp4", ".mov", ".mkv"])
def test_language_creation_time_rotation_and_timecode_are_kept(tmp_path, suffix):
    source = Source(
        tags={"creation_time": CREATED},
        video_tags={"language": "eng", "timecode": "10:00:00:00"},
        audio_tags={"language": "fra"},
        subtitles=("mov_text",) if suffix != ".mkv" else ("subrip",),
        rotation=90,
    )
    src = make_video(tmp_path / f"phone{suffix}", source)
    timecode = probe(src).video_tags()["timecode"]  # as FFmpeg spells it at 10 fps
    assert timecode.startswith("10:00:00:0")
    out = tmp_path / f"out{suffix}"

    copy(src, out)

    after = probe(out)
    assert after.tags["creation_time"] == CREATED
    assert after.rotation == 90
    assert after.video_tags()["timecode"] == timecode
    assert [s["language"] for s in after.of_type("audio")] == ["fra"]
    assert [s["language"] for s in after.of_type("subtitle")] == ["eng"]
    if suffix != ".mkv":  # QuickTime's own track (tmcd) that editors read
        timecodes = [s for s in after.of_type("data") if s.get("timecode")]
        assert [s["timecode"] for s in timecodes] == [timecode]


@pytest.mark.parametrize("keep_metadata", [False, True])
def test_strip_time_removes_the_creation_time(tmp_path, keep_metadata):
    src = make_video(
        tmp_path / "phone.mov",
        Source(tags={**IPHONE, "creation_time": CREATED}, audio_tags={}, mdta=True),
    )
    out = tmp_path / "out.mov"

    removed = copy(src, out, keep_metadata=keep_metadata, strip_time=True)

    after = probe(out)
    assert "creation_time" not in after.tags
    assert "com.apple.quicktime.creationdate" not in after.tags
    assert {"creation_time", "com.apple.quicktime.creationdate"} <= set(removed.tags)
    assert CREATED not in after.values()


# --- Cover art, attachments, data tracks --------------------------------------------


@pytest.mark.parametrize(
    ("suffix", "out_suffix"),
    [(".mp4", ".mp4"), (".mkv", ".mkv"), (".mp4", ".mkv"), (".mkv", ".mp4")],
)
def test_cover_art_is_removed_unless_kept(tmp_path, suffix, out_suffix):
    src = make_video(tmp_path / f"song{suffix}", Source(cover=True))
    assert probe(src).covers == [jpeg()]

    removed = copy(src, tmp_path / f"plain{out_suffix}")
    assert probe(tmp_path / f"plain{out_suffix}").covers == []
    assert removed.streams == ("cover art (mjpeg)",)

    removed = copy(src, tmp_path / f"kept{out_suffix}", keep_metadata=True)
    assert probe(tmp_path / f"kept{out_suffix}").covers == [jpeg()]
    assert removed.streams == ()


def test_cover_art_has_no_place_beside_apple_tags_in_mp4(tmp_path):
    # Reverse-DNS keys need MP4's mdta tags, which leave no place for iTunes' cover art:
    # the tags are kept and the cover is listed as removed.
    src = make_video(tmp_path / "song.mkv", Source(cover=True, tags=IPHONE))
    out = tmp_path / "out.mp4"

    removed = copy(src, out, keep_metadata=True)

    after = probe(out)
    assert lowered(IPHONE).items() <= lowered(after.tags).items()  # Matroska's capitals
    assert after.covers == []
    assert removed.streams == ("cover art (mjpeg)",)


def test_fonts_are_kept_other_attachments_only_on_request(tmp_path):
    files = (("Comic.ttf", "font/ttf"), ("passport.pdf", "application/pdf"))
    src = make_video(tmp_path / "anime.mkv", Source(attachments=files, subtitles=("ass",)))

    removed = copy(src, tmp_path / "plain.mkv")
    assert set(probe(tmp_path / "plain.mkv").attachments) == {"Comic.ttf"}
    assert removed.streams == ("attachment (application/pdf)",)

    removed = copy(src, tmp_path / "kept.mkv", keep_metadata=True)
    kept = probe(tmp_path / "kept.mkv").attachments
    assert kept == {name: b"attached bytes of " + name.encode() for name, _ in files}
    assert removed.streams == ()


@pytest.mark.parametrize("keep_metadata", [False, True])
def test_data_tracks_are_dropped(tmp_path, keep_metadata):
    src = make_video(tmp_path / "gopro.mp4", Source(data=True))
    assert probe(src).of_type("data")

    removed = copy(src, tmp_path / "out.mp4", keep_metadata=keep_metadata)

    assert probe(tmp_path / "out.mp4").of_type("data") == []
    assert removed.streams == ("data",)


# --- Subtitles and chapters ----------------------------------------------------------

EXPECTED_CUES = [(float(start), float(start + CUE_LENGTH), words) for start, words in CUES]


@pytest.mark.parametrize(
    ("suffix", "codec", "out_suffix", "written"),
    [
        (".mp4", "mov_text", ".mp4", "mov_text"),  # copied
        (".mov", "mov_text", ".mov", "mov_text"),
        (".mkv", "subrip", ".mkv", "subrip"),
        (".mkv", "ass", ".mkv", "ass"),
        (".mkv", "webvtt", ".mkv", "webvtt"),
        (".webm", "webvtt", ".webm", "webvtt"),
        (".mkv", "subrip", ".mp4", "mov_text"),  # re-encoded to the container's text codec
        (".mkv", "ass", ".mov", "mov_text"),
        (".mp4", "mov_text", ".mkv", "subrip"),
        (".mkv", "subrip", ".webm", "webvtt"),
        (".mkv", "subrip", ".avi", None),  # AVI holds none: dropped
    ],
)
def test_subtitles_per_container(tmp_path, suffix, codec, out_suffix, written):
    src = make_video(tmp_path / f"film{suffix}", Source(subtitles=(codec,)))
    out = tmp_path / f"out{out_suffix}"

    removed = copy(src, out)

    after = probe(out)
    if written is None:
        assert after.cues == []
    else:
        ((got_codec, cues),) = after.cues
        assert codec_id(got_codec) == codec_id(written)
        assert [(round(a, 3), round(b, 3), t) for a, b, t in cues] == EXPECTED_CUES
        assert [s["language"] for s in after.of_type("subtitle")] == ["eng"]
    assert removed.streams == ()  # subtitles are not metadata


def codec_id(name: str) -> int:
    return int(av.codec.Codec(name, "r").id)


@pytest.mark.parametrize(
    ("suffix", "out_suffix"),
    [(".mp4", ".mp4"), (".mkv", ".mkv"), (".mkv", ".mp4"), (".mp4", ".webm")],
)
def test_chapters_are_kept(tmp_path, suffix, out_suffix):
    src = make_video(tmp_path / f"talk{suffix}", Source(chapters=("Welcome", "Questions")))
    out = tmp_path / f"out{out_suffix}"

    removed = copy(src, out)

    assert probe(out).chapters == [
        (0.0, 0.5, {"title": "Welcome"}),
        (0.5, 1.0, {"title": "Questions"}),
    ]
    # MP4's chapter text track is written again from the chapters, not kept as data.
    assert removed.streams == ()


# --- The command -------------------------------------------------------------------


def test_blur_lists_what_it_removed_in_the_faces_file(tmp_path):
    src = make_video(
        tmp_path / "phone.mov",
        Source(
            tags={**IPHONE, "creation_time": CREATED}, audio_tags={"language": "eng"}, mdta=True
        ),
    )

    def blur(*flags: str) -> tuple[Probe, dict[str, Any]]:
        out, faces = tmp_path / "out.mov", tmp_path / "faces.json"
        args = [str(src), "-o", str(out), "--faces-out", str(faces), "-q", *flags]
        result = CliRunner().invoke(main, ["blur", *args], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return probe(out), json.loads(faces.read_text())

    after, faces = blur()
    assert set(IPHONE) - {"com.apple.quicktime.creationdate"} <= set(
        faces["MetadataRemoved"]["Tags"]
    )
    assert set(IPHONE.values()).isdisjoint(after.values())
    assert after.tags["creation_time"] == CREATED
    assert faces["Faces"] == []

    after, faces = blur("--keep-metadata")
    assert IPHONE.items() <= after.tags.items()
    assert faces["MetadataRemoved"] == {
        "Tags": [],
        "StreamTags": [],
        "ChapterTags": [],
        "Streams": [],
    }

    after, faces = blur("--strip-time")
    assert "creation_time" not in after.tags
    assert "creation_time" in faces["MetadataRemoved"]["Tags"]
