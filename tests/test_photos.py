"""Photos (issue 27): every kind of picture a phone or camera writes comes out with its
faces hidden (the whole-face measure of the video corpus), in its own format, upright,
without its hidden copies (EXIF thumbnail, MPF previews) or identifying metadata, as an
independent reader (ExifTool, from Debian) sees it; bad pictures get one clear error; the
input is never modified."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import ExifTags, Image, ImageOps

from veil.cli import AUDIT_FINDINGS_EXIT, main
from veil.errors import FrameSizeError, NotAPhotoError
from veil.faces import missing
from veil.photo_corpus import GroupPhoto, group_photo, hidden_badly
from veil.photos import (
    MAX_PHOTO_PIXELS,
    audit_photo,
    blur_photo,
    detect_photo,
    heif_thumbnails,
    open_photo,
)
from veil.pipeline import BlurOptions
from veil.synthetic import Scene, write_video

SMALL = (24.0, 40.0, 64.0)


@pytest.fixture(scope="module")
def small() -> GroupPhoto:
    assert not missing(), "face pictures missing: run python -m veil.faces fetch"
    return group_photo(1, 480, 360, SMALL)


def exiftool(path: Path) -> dict[str, object]:
    """Every tag ExifTool finds in ``path``, by group and name."""
    answer = subprocess.run(
        ["exiftool", "-j", "-a", "-G1", "-u", str(path)], capture_output=True, check=True
    )
    found: dict[str, object] = json.loads(answer.stdout)[0]
    return found


def heif_info(path: Path) -> str:
    """What libheif's ``heif-info`` lists of a HEIC's pictures (thumbnails among them)."""
    return subprocess.run(
        ["heif-info", str(path)], capture_output=True, check=True, text=True
    ).stdout


def metadata_groups(path: Path) -> set[str]:
    """The groups of ``path``'s tags besides the file's own facts."""
    ignored = {"SourceFile", "ExifTool", "System", "File", "Composite", "JFIF"}
    return {key.split(":")[0] for key in exiftool(path) if key.split(":")[0] not in ignored}


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def upright_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(ImageOps.exif_transpose(image).convert("RGB"))


def assert_hidden(photo: GroupPhoto, output: Path) -> None:
    assert hidden_badly(photo, upright_rgb(output)) == []


# -- formats --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("suffix", "save", "mode"),
    [
        (".jpg", {"quality": 92}, "RGB"),
        (".jpg", {"quality": 90, "progressive": True}, "RGB"),
        (".png", {}, "RGB"),
        (".webp", {"quality": 95}, "RGB"),
        (".tif", {"compression": "tiff_lzw"}, "RGB"),
        (".bmp", {}, "RGB"),
        (".heic", {"quality": 95}, "RGB"),
        (".avif", {"quality": 95}, "RGB"),
        (".gif", {}, "P"),
    ],
    ids=["jpeg", "progressive", "png", "webp", "tiff", "bmp", "heic", "avif", "gif"],
)
def test_each_format_comes_out_in_its_format_with_every_face_hidden(
    small, tmp_path, suffix, save, mode
):
    source = tmp_path / f"in{suffix}"
    picture = Image.fromarray(small.picture)
    (picture.quantize() if mode == "P" else picture).save(source, **save)
    before = digest(source)
    output = tmp_path / f"out{suffix}"
    result = blur_photo(source, output, faces_out=tmp_path / "faces.json")
    assert digest(source) == before  # the input untouched
    with Image.open(source) as original, Image.open(output) as written:
        assert written.format == original.format
        assert written.size == original.size
        if save.get("progressive"):
            assert written.info.get("progressive") or written.info.get("progression")
    assert len(result.faces) == len(SMALL)
    assert_hidden(small, output)
    faces = json.loads((tmp_path / "faces.json").read_text())
    assert faces["VideoMetadata"]["FrameWidth"] == 480
    assert [f["Timestamp"] for f in faces["Faces"]] == [0] * len(SMALL)
    assert sorted(f["Face"]["TrackId"] for f in faces["Faces"]) == [0, 1, 2]


def test_cmyk_jpeg_stays_cmyk(small, tmp_path):
    source, output = tmp_path / "cmyk.jpg", tmp_path / "out.jpg"
    Image.fromarray(small.picture).convert("CMYK").save(source, quality=95)
    blur_photo(source, output)
    with Image.open(output) as written:
        assert written.mode == "CMYK"
    assert_hidden(small, output)


def test_sixteen_bit_grey_png_stays_sixteen_bit(small, tmp_path):
    source, output = tmp_path / "deep.png", tmp_path / "out.png"
    grey = np.asarray(Image.fromarray(small.picture).convert("L"), np.uint16) * 257
    Image.fromarray(grey).save(source)
    with Image.open(source) as check:
        assert check.mode.startswith("I")
    blur_photo(source, output)
    with Image.open(output) as written:
        assert written.mode.startswith("I")
        shown = (np.asarray(written, np.uint32) >> 8).astype(np.uint8)
    truth = np.asarray(Image.fromarray(small.picture).convert("L"))
    grey_photo = GroupPhoto(small.scene, np.repeat(truth[..., None], 3, 2), small.boxes, SMALL)
    assert hidden_badly(grey_photo, np.repeat(shown[..., None], 3, 2)) == []


def test_palette_png_with_transparency_keeps_its_alpha(small, tmp_path):
    source, output = tmp_path / "palette.png", tmp_path / "out.png"
    rgba = Image.fromarray(small.picture).convert("RGBA")
    alpha = np.full(small.picture.shape[:2], 255, np.uint8)
    alpha[:20, :20] = 0  # a transparent corner, away from the faces
    rgba.putalpha(Image.fromarray(alpha))
    rgba.quantize(method=Image.Quantize.FASTOCTREE).save(source)
    with Image.open(source) as check:
        assert check.mode == "P" and "transparency" in check.info
    blur_photo(source, output)
    with Image.open(output) as written:
        assert written.mode == "RGBA"
        assert np.asarray(written)[:20, :20, 3].max() == 0
        assert np.asarray(written)[100:, 100:, 3].min() == 255
    assert_hidden(small, output)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_comes_out_upright(small, tmp_path, orientation):
    # Stored turned, with the tag that tells viewers how to turn it back, as cameras do.
    stored = {
        1: lambda i: i,
        2: lambda i: i.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
        3: lambda i: i.transpose(Image.Transpose.ROTATE_180),
        4: lambda i: i.transpose(Image.Transpose.FLIP_TOP_BOTTOM),
        5: lambda i: i.transpose(Image.Transpose.TRANSPOSE),
        6: lambda i: i.transpose(Image.Transpose.ROTATE_90),
        7: lambda i: i.transpose(Image.Transpose.TRANSVERSE),
        8: lambda i: i.transpose(Image.Transpose.ROTATE_270),
    }[orientation](Image.fromarray(small.picture))
    exif = Image.Exif()
    exif[0x0112] = orientation
    source, output = tmp_path / "turned.jpg", tmp_path / "out.jpg"
    stored.save(source, quality=95, exif=exif)
    assert upright_rgb(source).shape == small.picture.shape
    blur_photo(source, output)
    with Image.open(output) as written:
        assert written.size == (480, 360)
        assert written.getexif().get(0x0112) in (None, 1)
    assert_hidden(small, output)


# -- hidden copies and metadata ---------------------------------------------------------


def phone_jpeg(photo: GroupPhoto, path: Path, tmp_path: Path) -> None:
    """A JPEG as phones write it: a larger MPF preview after the picture, an EXIF
    thumbnail, GPS, a serial number, owner and artist, maker notes, XMP face regions that
    name the people, IPTC, and a comment."""
    picture = Image.fromarray(photo.picture)
    preview = picture.resize((240, 180))
    picture.save(path, format="MPO", save_all=True, append_images=[preview], quality=92)
    thumbnail = tmp_path / "thumbnail.jpg"
    picture.resize((160, 120)).save(thumbnail)
    xmp = tmp_path / "regions.xmp"
    xmp.write_text(XMP_REGIONS)
    subprocess.run(
        [
            "exiftool",
            "-q",
            "-overwrite_original",
            f"-ThumbnailImage<={thumbnail}",
            "-GPSLatitude=52.5163",
            "-GPSLatitudeRef=N",
            "-GPSLongitude=13.3777",
            "-GPSLongitudeRef=E",
            "-SerialNumber=SN-0042",
            "-OwnerName=Ada Lovelace",
            "-Artist=Ada Lovelace",
            "-Make=Phone",
            "-Model=Phone 9",
            "-MakerNotes=",
            "-IPTC:By-line=Ada Lovelace",
            "-IPTC:Keywords=party",
            "-Comment=taken at the party",
            f"-XMP<={xmp}",
            str(path),
        ],
        check=True,
    )


XMP_REGIONS = """<?xpacket begin='' id='W5M0MpCehiHzreSzNTczkc9d'?>
<x:xmpmeta xmlns:x='adobe:ns:meta/'>
 <rdf:RDF xmlns:rdf='http://www.w3.org/1999/02/22-rdf-syntax-ns#'>
  <rdf:Description rdf:about='' xmlns:mwg-rs='http://www.metadataworkinggroup.com/schemas/regions/'
    xmlns:stArea='http://ns.adobe.com/xmp/sType/Area#'>
   <mwg-rs:Regions rdf:parseType='Resource'>
    <mwg-rs:RegionList><rdf:Bag><rdf:li rdf:parseType='Resource'>
     <mwg-rs:Name>Grace Hopper</mwg-rs:Name><mwg-rs:Type>Face</mwg-rs:Type>
     <mwg-rs:Area stArea:x='0.5' stArea:y='0.5' stArea:w='0.1' stArea:h='0.1' stArea:unit='normalized'/>
    </rdf:li></rdf:Bag></mwg-rs:RegionList>
   </mwg-rs:Regions>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
<?xpacket end='w'?>"""


def test_a_phone_jpeg_loses_its_hidden_pictures_and_who_and_where(small, tmp_path):
    source, output = tmp_path / "phone.jpg", tmp_path / "out.jpg"
    phone_jpeg(small, source, tmp_path)
    tags = exiftool(source)
    assert "IFD1:ThumbnailImage" in tags and "MPF0:NumberOfImages" in tags
    assert "GPS:GPSLatitude" in tags and "XMP-mwg-rs:RegionName" in tags
    before = digest(source)

    result = blur_photo(source, output, faces_out=tmp_path / "faces.json")
    assert digest(source) == before
    assert_hidden(small, output)
    # Nothing but the picture itself: no EXIF (so no thumbnail, GPS, serial, owner), no
    # MPF previews, no XMP regions naming people, no IPTC, no comment.
    assert metadata_groups(output) == set(), exiftool(output)
    with Image.open(output) as written:
        assert written.format == "JPEG"  # no longer MPO: one picture
    removed = result.metadata_removed
    assert removed is not None
    assert {"EXIF thumbnail", "MPF preview pictures (1)"} <= set(removed["Streams"])
    for name in (
        "GPS:GPSLatitude",
        "EXIF:BodySerialNumber",
        "EXIF:Artist",
        "IPTC",
        "XMP:mwg-rs:Regions (face regions)",
        "comment",
    ):
        assert name in removed["Tags"], (name, removed["Tags"])
    # Listed by name, never by value.
    listed = json.dumps(json.loads((tmp_path / "faces.json").read_text())["MetadataRemoved"])
    assert "Ada" not in listed and "52.5" not in listed and "SN-0042" not in listed


def test_keep_metadata_keeps_exif_but_never_a_hidden_picture(small, tmp_path):
    source, output = tmp_path / "phone.jpg", tmp_path / "out.jpg"
    phone_jpeg(small, source, tmp_path)
    result = blur_photo(source, output, BlurOptions(keep_metadata=True))
    tags = exiftool(output)
    assert "GPS:GPSLatitude" in tags and tags.get("IFD0:Artist") == "Ada Lovelace"
    assert not any(key.startswith(("IFD1:", "MPF", "MPImage")) for key in tags), tags
    assert result.metadata_removed is not None
    assert "EXIF thumbnail" in result.metadata_removed["Streams"]
    assert "GPS:GPSLatitude" not in result.metadata_removed["Tags"]
    assert_hidden(small, output)


def with_private_tag(profile: bytes, signature: bytes, data: bytes) -> bytes:
    """``profile`` with one more tag, its data appended at the end."""
    count = int.from_bytes(profile[128:132], "big")
    table_end = 132 + 12 * count
    shift = 12  # every existing tag's data moves down by the new table entry
    table = b""
    for n in range(count):
        entry = profile[132 + 12 * n : 144 + 12 * n]
        offset = int.from_bytes(entry[4:8], "big") + shift
        table += entry[:4] + offset.to_bytes(4, "big") + entry[8:12]
    body = profile[table_end:]
    at = table_end + shift + len(body)
    table += signature + at.to_bytes(4, "big") + len(data).to_bytes(4, "big")
    out = bytearray(profile[:128] + (count + 1).to_bytes(4, "big") + table + body + data)
    out[0:4] = len(out).to_bytes(4, "big")
    return bytes(out)


def test_the_colour_profile_is_kept_without_what_it_could_hide(small, tmp_path):
    from PIL import ImageCms

    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    face = io.BytesIO()
    Image.fromarray(small.picture).save(face, format="JPEG", quality=85)
    hiding = with_private_tag(srgb, b"priv", b"Alice Smith's " + face.getvalue())
    assert ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(hiding)))
    source, output = tmp_path / "profiled.png", tmp_path / "out.png"
    Image.fromarray(small.picture).save(source, icc_profile=hiding)
    blur_photo(source, output)
    with Image.open(output) as written:
        kept = written.info.get("icc_profile")
        shown = np.asarray(written.convert("RGB")).astype(int)
    # Its colours applied to the pixels, LittleCMS's own sRGB profile written instead.
    assert kept is not None and len(kept) < len(hiding)
    srgb_name = ImageCms.getProfileDescription(ImageCms.createProfile("sRGB"))
    assert ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(kept))) == srgb_name
    assert b"Alice" not in output.read_bytes() and face.getvalue()[:1000] not in kept
    # An sRGB picture keeps its colours (the corner holds no face).
    assert np.abs(shown[:40, :40] - small.picture[:40, :40].astype(int)).max() <= 3


@pytest.mark.parametrize("keep_metadata", [False, True])
def test_a_heic_loses_its_thumbnail(small, tmp_path, keep_metadata):
    """A HEIC as libheif's own encoder writes it with ``--thumb``: a second, small picture
    of the same faces, which file browsers show. Written again without it, with
    ``--keep-metadata`` too."""
    import pillow_heif

    assert shutil.which("heif-enc"), "this test needs Debian's libheif-examples"
    plain, source, output = tmp_path / "in.png", tmp_path / "in.heic", tmp_path / "out.heic"
    Image.fromarray(small.picture).save(plain)
    subprocess.run(
        ["heif-enc", "-q", "95", "--thumb", "160", "-o", str(source), str(plain)],
        check=True,
        capture_output=True,
    )
    before = pillow_heif.options.THUMBNAILS
    pillow_heif.options.THUMBNAILS = True  # look for them, as a file browser would
    try:
        # One thumbnail, 160 px on its longer side: the faces, small, unblurred.
        assert pillow_heif.open_heif(source).info["thumbnails"] == [160]
        faces = tmp_path / "faces.json"
        blur_photo(source, output, BlurOptions(keep_metadata=keep_metadata), faces_out=faces)
        assert pillow_heif.open_heif(output).info.get("thumbnails") in ([], None)
    finally:
        pillow_heif.options.THUMBNAILS = before
    # libheif's own reader (ExifTool lists no HEIC thumbnails) agrees.
    assert "thumbnail: 160x" in heif_info(source)
    assert "thumbnail" not in heif_info(output)
    assert json.loads(faces.read_text())["MetadataRemoved"]["Streams"] == ["HEIF thumbnails (1)"]
    assert_hidden(small, output)


def box(kind: bytes, payload: bytes, size: int | None = None) -> bytes:
    return (len(payload) + 8 if size is None else size).to_bytes(4, "big") + kind + payload


@pytest.mark.parametrize(
    ("data", "count"),
    [
        (box(b"ftyp", b"heic") + box(b"meta", b"\0" * 4 + box(b"iref", b"\0" * 4)), 0),
        (box(b"meta", b"\0" * 4 + box(b"iref", b"\0" * 4 + box(b"thmb", b"\0" * 6) * 2)), 2),
        (box(b"mdat", b"x" * 100) + box(b"meta", b"\0" * 4 + box(b"iref", b"\0" * 4)), 0),
        (box(b"meta", b"", size=0xFFFFFFF0), 0),  # claims 4 GB: never read
        (box(b"meta", b"\0" * 4 + box(b"iref", b"", size=3)), 0),  # smaller than a header
        (box(b"meta", b"", size=1) + (2**63).to_bytes(8, "big"), 0),  # 64-bit, huge
        (b"\0\0\0", 0),
    ],
    ids=["none", "two", "after-mdat", "huge-meta", "tiny-iref", "huge-64-bit", "truncated"],
)
def test_heif_thumbnails_are_counted_from_the_boxes_alone(tmp_path, data, count):
    path = tmp_path / "boxes.heic"
    path.write_bytes(data)
    assert heif_thumbnails(path) == count


# -- refusals -------------------------------------------------------------------------


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header says ``width`` x ``height`` (1-bit grey), with a few bytes of
    compressed zeros after it: what a decompression bomb looks like from its header."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    rows = zlib.compress(bytes(1 + (width + 7) // 8) * 4)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")
    )


def test_bad_pictures_get_one_clear_error_and_stay_as_they_were(small, tmp_path):
    jpeg = io.BytesIO()
    Image.fromarray(small.picture).save(jpeg, format="JPEG", quality=92)
    video = tmp_path / "clip.mp4"
    write_video(video, Scene(width=64, height=48, frames=3))
    bomb = tmp_path / "bomb.png"
    # A small file that says it holds 40,000 x 40,000 pixels: refused from its header.
    bomb.write_bytes(png_claiming(40_000, 40_000))
    animated = tmp_path / "anim.gif"
    frames = [Image.fromarray(np.roll(small.picture, 8 * n, axis=1)).quantize() for n in range(3)]
    frames[0].save(animated, save_all=True, append_images=frames[1:])
    cases = {
        "truncated.jpg": (jpeg.getvalue()[: len(jpeg.getvalue()) // 2], "damaged or truncated"),
        "notes.jpg": (b"not a picture at all\n", "not a picture (unrecognised format)"),
        "empty.png": (b"", "empty file (0 bytes)"),
        "clip.jpg": (video.read_bytes(), "not a picture (unrecognised format)"),
        "bomb.png": (bomb.read_bytes(), f"pictures up to {MAX_PHOTO_PIXELS:,} pixels"),
        "anim.gif": (animated.read_bytes(), "an animated or multi-page picture (3 frames)"),
    }
    assert bomb.stat().st_size < 1_000_000
    for name, (content, message) in cases.items():
        source = tmp_path / name
        source.write_bytes(content)
        output = tmp_path / f"out-{name}"
        with pytest.raises((NotAPhotoError, FrameSizeError)) as raised:
            blur_photo(source, output)
        assert message in str(raised.value), (name, str(raised.value))
        assert str(raised.value).startswith(f"{source}: ")
        assert source.read_bytes() == content
        assert not output.exists()
        assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out-")] == []
    with pytest.raises(FrameSizeError):
        open_photo(tmp_path / "bomb.png")


# -- recall ---------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_group_photos_faces_from_12_px_are_hidden(tmp_path, seed):
    heights = (12.0, 13.0, 14.0, 16.0, 18.0, 20.0, 24.0, 32.0, 48.0, 80.0)
    photo = group_photo(seed, 800, 600, heights, first_person=seed * len(heights))
    source, output = tmp_path / "group.jpg", tmp_path / "out.jpg"
    Image.fromarray(photo.picture).save(source, quality=92)
    result = blur_photo(source, output)
    assert len(result.faces) >= len(heights) - 1
    assert_hidden(photo, output)


def test_detect_and_audit_a_photo(small, tmp_path):
    source, output = tmp_path / "in.jpg", tmp_path / "out.jpg"
    Image.fromarray(small.picture).save(source, quality=92)
    found = detect_photo(source, tmp_path / "faces.json")
    assert len(found.faces) == len(SMALL)
    # The audit finds every face on the original, none on veil's output.
    audited = audit_photo(source)
    assert len(audited.findings) == len(SMALL) and audited.frames_checked == 1
    blur_photo(source, output)
    assert audit_photo(output).passed


# -- the command line ---------------------------------------------------------------------


def test_veil_blur_a_folder_of_photos_and_videos(small, tmp_path):
    folder = tmp_path / "event"
    folder.mkdir()
    Image.fromarray(small.picture).save(folder / "a.jpg", quality=92)
    Image.fromarray(small.picture).save(folder / "b.png")
    write_video(folder / "c.mp4", Scene(width=160, height=120, frames=6))
    (folder / "notes.txt").write_text("not a picture")
    out = tmp_path / "out"
    answer = CliRunner().invoke(
        main, ["blur", str(folder), "-o", str(out), "--faces-out", str(tmp_path / "faces")]
    )
    assert answer.exit_code == 0, answer.output
    assert sorted(p.name for p in out.iterdir()) == ["a.jpg", "b.png", "c.mp4"]
    assert "a.jpg: blurred 3 faces found" in answer.output
    assert_hidden(small, out / "a.jpg")
    assert_hidden(small, out / "b.png")
    assert (tmp_path / "faces" / "a.jpg.faces.json").exists()


def test_veil_blur_report_and_veil_audit_on_a_photo(small, tmp_path):
    source = tmp_path / "in.jpg"
    Image.fromarray(small.picture).save(source, quality=92)
    report = tmp_path / "report.json"
    answer = CliRunner().invoke(main, ["blur", str(source), "--report", str(report)])
    assert answer.exit_code == 0, answer.output
    made = json.loads(report.read_text())
    assert made["audit"]["passed"] and made["tracks"] == len(SMALL)
    assert made["video"]["width"] == 480 and made["frames"] == 1
    output = tmp_path / "in.blurred.jpg"
    assert made["output"]["sha256"] == digest(output)
    assert CliRunner().invoke(main, ["audit", str(output)]).exit_code == 0
    found = CliRunner().invoke(main, ["audit", str(source)])
    assert found.exit_code == AUDIT_FINDINGS_EXIT, found.output
    assert found.output.count("box ") == len(SMALL)
    detected = CliRunner().invoke(main, ["detect", str(source), "-o", str(tmp_path / "f.json")])
    assert detected.exit_code == 0, detected.output
    assert len(json.loads((tmp_path / "f.json").read_text())["Faces"]) == len(SMALL)


def test_exiftool_is_there():
    assert shutil.which("exiftool"), "the photo tests need Debian's libimage-exiftool-perl"


# -- what an attacker's review found (issue 27) -------------------------------------------


def test_a_photo_without_faces_loses_its_metadata_too(tmp_path):
    # Found no face, the picture is still written anew: no EXIF, XMP or comment comes along.
    plain = np.full((120, 160, 3), 128, np.uint8)
    exif = Image.Exif()
    exif[0x013B] = "Ada Lovelace"
    cases: dict[str, dict[str, Any]] = {
        "a.jpg": {"exif": exif, "comment": b"at the party"},
        "a.heic": {"exif": exif, "xmp": XMP_REGIONS.encode()},
        "a.gif": {"comment": b"at the party"},
        "a.webp": {"exif": exif},
        "a.png": {"exif": exif},
    }
    for name, extra in cases.items():
        source, output = tmp_path / name, tmp_path / f"out-{name}"
        picture = Image.fromarray(plain)
        (picture.quantize() if name.endswith(".gif") else picture).save(source, **extra)
        assert metadata_groups(source) - {"GIFFile"}, name  # the input carries some
        result = blur_photo(source, output)
        assert len(result.faces) == 0
        # Nothing beyond what the format itself writes for a bare picture (a HEIC's
        # container boxes, for one).
        bare = tmp_path / f"bare-{name}"
        (picture.quantize() if name.endswith(".gif") else picture).save(bare)
        assert metadata_groups(output) <= metadata_groups(bare), (name, exiftool(output))
        assert "IFD0:Artist" not in exiftool(output)
        assert b"Ada" not in output.read_bytes() and b"party" not in output.read_bytes()


def test_twelve_bit_grey_in_a_sixteen_bit_png_is_seen(small, tmp_path):
    # Scientific, medical and thermal cameras store 12 bits in 16: nearly black, shifted.
    source, output = tmp_path / "deep12.png", tmp_path / "out.png"
    grey = np.asarray(Image.fromarray(small.picture).convert("L"), np.uint16) * 16
    Image.fromarray(grey).save(source)
    result = blur_photo(source, output)
    assert len(result.faces) == len(SMALL)
    with Image.open(output) as written:
        shown = (np.asarray(written, np.uint32) // 16).clip(0, 255).astype(np.uint8)
    truth = np.asarray(Image.fromarray(small.picture).convert("L"))
    grey_photo = GroupPhoto(small.scene, np.repeat(truth[..., None], 3, 2), small.boxes, SMALL)
    assert hidden_badly(grey_photo, np.repeat(shown[..., None], 3, 2)) == []


@pytest.mark.parametrize(
    ("name", "mode", "save"),
    [
        ("grey-alpha.png", "LA", {}),
        ("dithered.png", "1", {}),
        ("fax.tif", "1", {"compression": "group4"}),
    ],
)
def test_grey_with_alpha_and_one_bit_pictures(small, tmp_path, name, mode, save):
    source, output = tmp_path / name, tmp_path / f"out-{name}"
    Image.fromarray(small.picture).convert(mode).save(source, **save)
    result = blur_photo(source, output, faces_out=tmp_path / "faces.json")
    assert len(result.faces) == len(SMALL)
    truth = np.asarray(Image.fromarray(small.picture).convert("L"))
    grey_photo = GroupPhoto(small.scene, np.repeat(truth[..., None], 3, 2), small.boxes, SMALL)
    with Image.open(output) as written:
        shown = np.asarray(written.convert("L"))
    assert hidden_badly(grey_photo, np.repeat(shown[..., None], 3, 2)) == []
    assert oct(output.stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def _umask() -> int:
    import os

    current = os.umask(0)
    os.umask(current)
    return current


def test_keep_metadata_never_keeps_a_picture_hidden_in_exif_or_xmp(small, tmp_path):
    import base64

    face = io.BytesIO()
    Image.fromarray(small.picture).save(face, format="JPEG", quality=85)
    hidden = face.getvalue()
    preview = (
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
        'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description rdf:about="" '
        'xmlns:X="http://ns.adobe.com/xap/1.0/" xmlns:G="http://ns.adobe.com/xap/1.0/g/img/">'
        '<X:Thumbnails><rdf:Alt><rdf:li rdf:parseType="Resource"><G:image>'
        + base64.b64encode(hidden).decode()
        + "</G:image></rdf:li></rdf:Alt></X:Thumbnails></rdf:Description></rdf:RDF></x:xmpmeta>"
    )
    maker = Image.Exif()
    maker[0x013B] = "Ada Lovelace"
    maker.get_ifd(ExifTags.IFD.Exif)[0x927C] = b"ACME\0" + hidden[:60_000]
    plain = Image.Exif()
    plain[0x013B] = "Ada Lovelace"
    in_exif = Image.Exif()
    in_exif[0x013B] = "Ada Lovelace"
    in_exif[0x02BC] = preview.encode()
    cases: dict[str, dict[str, Any]] = {
        "maker.jpg": {"exif": maker, "quality": 92},
        "prefix.webp": {"xmp": preview.encode(), "exif": plain, "quality": 92},
        "xmp-in-exif.webp": {"exif": in_exif, "quality": 92},
    }
    for name, extra in cases.items():
        source, output = tmp_path / name, tmp_path / f"out-{name}"
        Image.fromarray(small.picture).save(source, **extra)
        blur_photo(source, output, BlurOptions(keep_metadata=True))
        written = output.read_bytes()
        assert hidden[:2000] not in written and base64.b64encode(hidden)[:2000] not in written
        assert tuple(exiftool(output).get(k) for k in ("IFD0:Artist",)) == ("Ada Lovelace",)
        assert_hidden(small, output)


def test_a_webp_turned_by_exif_comes_out_upright(small, tmp_path):
    # Browsers show such a WebP as stored; veil turns it (and the page is sent it turned).
    exif = Image.Exif()
    exif[0x0112] = 6
    source, output = tmp_path / "turned.webp", tmp_path / "out.webp"
    Image.fromarray(small.picture).transpose(Image.Transpose.ROTATE_90).save(
        source, exif=exif, quality=95
    )
    assert open_photo(source).width == 480
    blur_photo(source, output)
    with Image.open(output) as written:
        assert written.size == (480, 360)
    assert_hidden(small, output)


def test_png_text_keywords_are_named_only_when_registered(tmp_path):
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Author", "Ada Lovelace")
    info.add_text("Alice Smith 12 Main St", "x")
    source = tmp_path / "text.png"
    Image.new("RGB", (64, 48), (90, 90, 90)).save(source, pnginfo=info)
    result = blur_photo(source, tmp_path / "out.png")
    assert result.metadata_removed is not None
    tags = result.metadata_removed["Tags"]
    assert "PNG:Author" in tags and "PNG: 1 other text chunk" in tags
    assert not any("Alice" in tag for tag in tags)
