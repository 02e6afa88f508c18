"""The veil command through click's runner: exit codes, messages and files."""

from __future__ import annotations

import hashlib
import shutil
import socket
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import SMALL_SCENE

import veil
from veil.cli import main
from veil.synthetic import visible_faces, write_video


def invoke(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_bad_inputs(folder: Path, clip: Path) -> dict[str, Path]:
    folder.mkdir(exist_ok=True)
    files = {
        "empty": folder / "empty.mp4",
        "text": folder / "notes.mp4",
        "truncated": folder / "truncated.mp4",
        "audio_only": folder / "tone.mp4",
    }
    files["empty"].write_bytes(b"")
    files["text"].write_text("this is not a video\n")
    data = clip.read_bytes()
    files["truncated"].write_bytes(data[: len(data) // 2])
    # An AVI whose video track claims a codec FFmpeg has no decoder for.
    avi = folder.parent / "source.avi"
    write_video(avi, SMALL_SCENE, codec="mpeg4", audio=False)
    files["unknown_codec"] = folder / "strange.avi"
    files["unknown_codec"].write_bytes(avi.read_bytes().replace(b"FMP4", b"QQQQ"))
    avi.unlink()
    # A Matroska file cut in half opens fine and fails only when its frames run out.
    mkv = folder.parent / "source.mkv"
    write_video(mkv, SMALL_SCENE)
    files["truncated_mkv"] = folder / "cut.mkv"
    files["truncated_mkv"].write_bytes(mkv.read_bytes()[: mkv.stat().st_size // 2])
    mkv.unlink()
    import av
    import numpy as np
    from PIL import Image

    # Still pictures renamed as videos: FFmpeg would read each as a one-frame video.
    picture = Image.fromarray(np.full((48, 64, 3), 128, np.uint8))
    files["jpeg"], files["png"] = folder / "photo.mp4", folder / "scan.mov"
    picture.save(files["jpeg"], format="JPEG")
    picture.save(files["png"], format="PNG")

    with av.open(str(files["audio_only"]), "w") as out:
        s = out.add_stream("aac", rate=48000)
        s.layout = "mono"
        frame = av.AudioFrame.from_ndarray(
            np.zeros((1, 1024), np.int16), format="s16", layout="mono"
        )
        frame.sample_rate = 48000
        out.mux(s.encode(frame))
        out.mux(s.encode(None))
    return files


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing", "no such file"),
        ("empty", "empty file (0 bytes)"),
        ("text", "not a video (unrecognised file format)"),
        ("truncated", "corrupt or truncated MP4/MOV file"),
        ("audio_only", "not a video (no video stream)"),
        ("unknown_codec", "unsupported video codec (unknown to FFmpeg)"),
        ("truncated_mkv", "truncated video: frames stop at"),
        ("jpeg", "a still JPEG picture, not a video"),
        ("png", "a still PNG picture, not a video"),
    ],
)
def test_bad_input_one_clear_line(clip, tmp_path, case, message):
    files = make_bad_inputs(tmp_path / "in", clip.path)
    path = files.get(case, tmp_path / "in" / "missing.mp4")
    before = {p.name: digest(p) for p in (tmp_path / "in").iterdir()}
    result = invoke("blur", path, "-o", tmp_path / "out.mp4")
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"veil: error: {path}: {message}")
    assert "Traceback" not in result.output
    assert not (tmp_path / "out.mp4").exists()
    assert {p.name: digest(p) for p in (tmp_path / "in").iterdir()} == before
    assert not [p for p in tmp_path.iterdir() if ".part" in p.name]


def test_unwritable_output(clip, tmp_path):
    result = invoke("blur", clip.path, "-o", tmp_path / "no" / "such" / "dir" / "x.mp4")
    assert result.exit_code == 1
    assert "cannot write" in result.output and "x.mp4" in result.output


def test_blur_file_default_name_and_faces(clip, tmp_path):
    src = tmp_path / "party.mp4"
    shutil.copy(clip.path, src)
    result = invoke("blur", src, "--faces-out", tmp_path / "faces.json", "--preset", "ultrafast")
    assert result.exit_code == 0, result.output
    out = tmp_path / "party.blurred.mp4"
    assert visible_faces(out, clip.scene) == []
    assert (tmp_path / "faces.json").stat().st_size > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "faces.json",
        "party.blurred.mp4",
        "party.mp4",
    ]


def test_one_file_into_a_folder_keeps_its_name(clip, tmp_path):
    # -o naming a folder that is there: the file goes in it (it was refused as a file
    # name without an extension).
    src, out = tmp_path / "party.mp4", tmp_path / "out"
    shutil.copy(clip.path, src)
    out.mkdir()
    result = invoke("blur", src, "-o", out, "--quiet", "--preset", "ultrafast")
    assert result.exit_code == 0, result.output
    assert [p.name for p in out.iterdir()] == ["party.mp4"]
    assert visible_faces(out / "party.mp4", clip.scene) == []
    # A folder not there yet, named with its slash, is made (not taken as a file name).
    result = invoke("blur", src, "-o", f"{tmp_path / 'new'}/", "--quiet", "--preset", "ultrafast")
    assert result.exit_code == 0, result.output
    assert [p.name for p in (tmp_path / "new").iterdir()] == ["party.mp4"]


def test_folder_reports_failures_and_goes_on(clip, tmp_path):
    folder = tmp_path / "videos"
    make_bad_inputs(folder, clip.path)
    shutil.copy(clip.path, folder / "good.mp4")
    (folder / "readme.txt").write_text("not a video, not even by name")
    result = invoke("blur", folder, "-o", tmp_path / "out", "--quiet")
    assert result.exit_code == 1
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["good.mp4"]
    assert visible_faces(tmp_path / "out" / "good.mp4", clip.scene) == []
    errors = [line for line in result.output.splitlines() if line.startswith("veil: error:")]
    assert len(errors) == 8
    assert "8 of 9 files failed" in result.output


def test_detect_and_redact_commands(clip, tmp_path):
    faces = tmp_path / "faces.json"
    assert invoke("detect", clip.path, "-o", faces, "-q").exit_code == 0
    out = tmp_path / "r.mp4"
    result = invoke("redact", clip.path, "--faces", faces, "-o", out, "-q")
    assert result.exit_code == 0, result.output
    assert visible_faces(out, clip.scene) == []
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    result = invoke("redact", clip.path, "--faces", bad, "-o", tmp_path / "r2.mp4")
    assert result.exit_code == 1
    assert 'no "Faces" list' in result.output
    assert not (tmp_path / "r2.mp4").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--mode", "smudge"], "Invalid value for '--mode'"),
        (["--threshold", "2"], "Invalid value for '--threshold'"),
        (["--detect-every", "0"], "Invalid value for '--detect-every'"),
    ],
)
def test_bad_options(clip, tmp_path, args, message):
    result = invoke("blur", clip.path, "-o", tmp_path / "x.mp4", *args)
    assert result.exit_code == 2
    assert message in result.output


def test_refuses_to_overwrite_input(clip, tmp_path):
    src = tmp_path / "a.mp4"
    shutil.copy(clip.path, src)
    result = invoke("blur", src, "-o", src)
    assert result.exit_code == 2
    assert "output would overwrite the input" in result.output
    assert "please report" not in result.output
    assert digest(src) == digest(clip.path)


def test_help_lists_commands():
    result = invoke("--help")
    for command in ("blur", "detect", "redact", "sample"):
        assert command in result.output


def test_public_api_is_complete():
    import types

    public = {
        name
        for name in dir(veil)
        if not name.startswith("_") and not isinstance(getattr(veil, name), types.ModuleType)
    }
    assert public == set(veil.__all__) - {"__version__"}


def test_cli_reference_is_up_to_date():
    import importlib.util
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    spec = importlib.util.spec_from_file_location(
        "cli_reference", root / "scripts" / "cli_reference.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert (root / "docs" / "cli-reference.md").read_text() == module.render(), (
        "run: python scripts/cli_reference.py"
    )


LONG_KEY = "k" * 16


def key_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "keys.txt"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("args", "env", "file", "message"),
    [
        # An unset shell variable: `--api-key "$VEIL_KEY"`.
        (
            ["--api-key", ""],
            {},
            None,
            "an API key (--api-key, --api-keys-file or VEIL_API_KEYS) is empty",
        ),
        (
            ["--api-key", "short-key"],
            {},
            None,
            "an API key (--api-key, --api-keys-file or VEIL_API_KEYS) is too short: use at least 16",
        ),
        ([], {"VEIL_API_KEYS": f"{LONG_KEY} short-key"}, None, "is too short: use at least 16"),
        (
            ["--api-key", "sixteen chars ok"],
            {},
            None,
            "has spaces, control or non-ASCII characters",
        ),
        (
            ["--api-keys-file"],
            {},
            f"{LONG_KEY}\n\nshort-key\n",
            "keys.txt line 3: the API key is too short",
        ),
        (
            ["--access-keys-file"],
            {},
            "AKIDONE\n",
            "keys.txt line 1: no secret after the access key ID",
        ),
        (
            ["--access-keys-file"],
            {},
            f"AKIDONE {LONG_KEY}\nAKIDTWO:\n",
            "keys.txt line 2: no secret after the access key ID",
        ),
        (
            ["--access-keys-file"],
            {},
            "AKIDONE  short:secret\n",
            "keys.txt line 1: the secret of AKIDONE is too short",
        ),
        (["--access-key", "AKIDONE", "--secret-key", ""], {}, None, "--secret-key is empty"),
        (["--access-key", "", "--secret-key", LONG_KEY], {}, None, "--access-key is empty"),
        (
            ["--access-key", "AKIDONE", "--secret-key", "short:secret"],
            {},
            None,
            "the secret key of access key AKIDONE is too short",
        ),
    ],
    ids=[
        "empty-api-key",
        "short-api-key",
        "short-env-key",
        "spaced-api-key",
        "short-file-key",
        "no-secret",
        "blank-secret",
        "short-file-secret",
        "empty-secret-key",
        "empty-access-key",
        "short-secret-key",
    ],
)
def test_serve_refuses_keys_that_keep_no_one_out(tmp_path, args, env, file, message):
    if file is not None:
        args = [*args, key_file(tmp_path, file)]
    # On a port that is taken: a serve that got past its checks stops instead of serving.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        result = CliRunner().invoke(
            main,
            ["serve", "--data", str(tmp_path / "data"), "--port", port, *map(str, args)],
            env=env,
        )
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    for secret in ("short:secret", "short-key", LONG_KEY):  # keys never reach the logs
        assert secret not in result.stderr
    assert not (tmp_path / "data").exists()  # refused before anything started


def test_names_at_the_file_system_limit(clip, tmp_path):
    """255-byte names: the temporary output and the default output name must fit too."""
    src = tmp_path / ("é" * 124 + "abc.mp4")  # 124 two-byte characters + 7 bytes
    assert len(src.name.encode()) == 255
    src.write_bytes(clip.path.read_bytes())
    out = tmp_path / "out" / ("o" * 251 + ".mp4")
    out.parent.mkdir()
    assert invoke("blur", src, "-o", out, "-q").exit_code == 0
    assert out.stat().st_size > 0
    assert invoke("blur", src, "-q").exit_code == 0
    (default,) = [p for p in tmp_path.iterdir() if ".blurred" in p.name]
    assert len(default.name.encode()) <= 255 and default.name.endswith(".blurred.mp4")
    assert not [p for p in tmp_path.rglob("*") if ".part" in p.name]


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_service_flags_default_to_what_the_service_defaults_to(command):
    # Each default is written once (veil.settings); a flag given its own would drift.
    from veil.settings import ServeOptions

    defaults = ServeOptions()
    params = {p.name: p for p in main.commands[command].params}
    blur = {f for f in dir(defaults.blur) if not f.startswith("_")}
    checked = 0
    for name, param in params.items():
        if (
            param.multiple
            or param.default in (None, ())
            or type(param.default).__name__ == "Sentinel"
        ):
            continue  # no default of its own (click's UNSET): the field's is used
        if hasattr(defaults, name) and name != "max_duration":
            assert param.default == getattr(defaults, name), name
            checked += 1
        elif name in blur:
            assert param.default == getattr(defaults.blur, name), name
    assert checked >= 10
    assert params["max_duration"].default == "12h"
