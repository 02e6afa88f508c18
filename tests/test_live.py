"""``veil live``: real streams on loopback, judged by the whole-face measure.

A synthetic scene is played by a real ``veil live`` process, from a file at its own
pace and over TCP MPEG-TS sent by PyAV (FFmpeg), into an HLS folder that is then read
back by FFmpeg; every face of 16 px and up must be hidden on every frame."""

from __future__ import annotations

import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from servers import free_port, server_process, wait_for

from veil.detections import Detections
from veil.errors import OptionError
from veil.live import (
    LOOK_SHARE,
    LiveOptions,
    cover_whole,
    live_tracking,
    run_live,
    shown,
)
from veil.pipeline import BlurOptions
from veil.synthetic import MovingFace, Scene, demo_scene, face_visibility, write_video

GATED = 16
"""Faces this tall and taller must be hidden on every frame."""


def exposed(playlist: Path, scene: Scene, frames: range) -> list[tuple[int, int, float]]:
    """``(output frame, face, visibility)`` of faces of ``GATED`` px and up left visible
    on the output frames ``frames``, which show the scene's frames from 0 on."""
    found = []
    with av.open(str(playlist)) as container:
        for i, picture in enumerate(container.decode(container.streams.video[0])):
            if i not in frames:
                continue
            image = np.asarray(picture.to_ndarray(format="rgb24"), np.uint8)
            truth, boxes, ids = scene.render(i - frames.start)
            for face, box in zip(ids, boxes, strict=True):
                if box[3] - box[1] >= GATED and face_visibility(truth, image, box) > 0.6:
                    found.append((i, face, float(box[3] - box[1])))
    return found


def first_scene_frame(playlist: Path, scene: Scene) -> int:
    """Which of the scene's first frames the output starts with (a stream joined late,
    or an RTMP publisher's first frames held back, starts a frame or two in)."""
    with av.open(str(playlist)) as container:
        first = next(container.decode(container.streams.video[0]))
        image = first.to_ndarray(format="rgb24").astype(np.int16)
    differences = [np.abs(scene.render(i)[0] - image).mean() for i in range(6)]
    return int(np.argmin(differences))


def output_times(playlist: Path) -> list[float]:
    with av.open(str(playlist)) as container:
        return [float(p.time) for p in container.decode(container.streams.video[0])]


@pytest.fixture(scope="module")
def scene() -> Scene:
    return demo_scene(640, 360, 90, 30)


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory, scene: Scene) -> Path:
    path = tmp_path_factory.mktemp("live") / "scene.mp4"
    write_video(path, scene, audio=False)
    return path


def veil_live(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "veil.cli", "live", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


# -- plain parts ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("rtsp://admin:s3cret@10.0.0.5:554/stream1?token=abc", "rtsp://10.0.0.5:554/stream1"),
        ("rtmp://user@cam.example/live/s3cretkey", "rtmp://cam.example/live/…"),
        ("rtmp://cam.example/live", "rtmp://cam.example/live"),
        ("udp://[::1", "(an address that cannot be read)"),
        ("srt://[::1]:9000?passphrase=hunter2", "srt://[::1]:9000"),
        ("/dev/video0", "/dev/video0"),
        ("clips/a b.mp4", "clips/a b.mp4"),
    ],
)
def test_a_source_is_shown_without_its_credentials(source: str, expected: str) -> None:
    assert shown(source) == expected


@pytest.mark.parametrize("fps", [24.0, 30.0, 60.0])
@pytest.mark.parametrize("delay", [0.5, 1.0, 3.0])
def test_the_hold_fits_in_the_delay_and_spans_two_analyses(fps: float, delay: float) -> None:
    tracking, every = live_tracking(BlurOptions(), fps, delay)
    assert tracking.latency <= LOOK_SHARE * delay * fps
    assert tracking.pre_roll >= 2 * every  # a face between analyses is covered from its start
    assert every <= BlurOptions().detect_every


@pytest.mark.parametrize(("fps", "delay", "needed"), [(3, 1.0, 1.2), (1, 2.0, 3.4)])
def test_a_slow_camera_is_told_the_delay_it_needs(fps: float, delay: float, needed: float) -> None:
    """A camera at a few frames a second: a delay that holds too few of its frames is
    refused with the delay it takes (it used to cover every frame, silently)."""
    with pytest.raises(OptionError, match=f"give --delay {needed:g} or more"):
        live_tracking(BlurOptions(), fps, delay)
    tracking, every = live_tracking(BlurOptions(), fps, needed)
    assert tracking.pre_roll >= 2 * every or every == 1
    assert tracking.latency <= LOOK_SHARE * needed * fps


@pytest.mark.parametrize(("width", "height"), [(1280, 720), (720, 1280), (480, 854)])
def test_a_close_up_covered_whole_is_no_face(width: int, height: int) -> None:
    """A face filling most of the picture, landscape or upright: covered whole, it is
    below the measure's threshold (16 cells across an upright picture left 0.8)."""
    face = MovingFace(photo="grace_hopper", height=0.8 * height, start=(0.5, 0.5))
    scene = Scene(width=width, height=height, frames=1, faces=(face,))
    truth, boxes, _ = scene.render(0)
    picture = av.VideoFrame.from_ndarray(truth, format="rgb24").reformat(format="yuv420p")
    covered = np.asarray(cover_whole(picture).to_ndarray(format="rgb24"), np.uint8)
    assert face_visibility(truth, covered, boxes[0]) < 0.6


# -- a file played at its own pace -------------------------------------------------------


def test_a_file_played_live_leaves_no_face_visible(
    source: Path, scene: Scene, tmp_path: Path
) -> None:
    server_process("veil live")
    playlist = tmp_path / "hls" / "index.m3u8"
    run = veil_live(str(source), "--realtime", "-o", str(playlist), "--json", "--window", "3")
    out, err = run.communicate(timeout=120)
    assert run.returncode == 0, err
    stats = json.loads(out)
    assert stats["frames_in"] == stats["frames_out"] == scene.frames
    assert exposed(playlist, scene, range(scene.frames)) == []
    text = playlist.read_text()
    assert text.rstrip().endswith("#EXT-X-ENDLIST")
    # A sliding window: three segments listed, older ones deleted from the folder.
    assert text.count("#EXTINF") == 3
    assert len(list(playlist.parent.glob("segment-*.ts"))) <= 4
    # Frames waited for their boxes, not for the end of the file (3 s).
    assert 0 < stats["delay_p50"] <= 1.5
    times = output_times(playlist)
    assert all(b > a for a, b in itertools.pairwise(times))


def test_analysis_that_falls_behind_covers_frames_whole(
    source: Path, scene: Scene, tmp_path: Path
) -> None:
    """A detector far slower than the stream: frames that cannot get their boxes within
    the delay leave covered whole, never raw, and are counted."""
    server_process("a stream played in real time")
    from veil.detector import CenterFace

    class Slow:
        def __init__(self) -> None:
            self.inner = CenterFace(precision="fp32")

        def detect_frame(self, frame: np.ndarray, changed: object = None) -> Detections:
            time.sleep(0.4)
            return self.inner.detect_frame(frame)

        def detect_near(
            self, frame: np.ndarray, boxes: np.ndarray, reach: Any = None
        ) -> Detections:
            time.sleep(0.4)
            return self.inner.detect_near(frame, boxes)

    playlist = tmp_path / "index.m3u8"
    stats = run_live(
        str(source), str(playlist), LiveOptions(delay=0.5, realtime=True), detector=Slow()
    )
    assert stats.covered_whole > 0
    assert stats.frames_out == scene.frames
    assert exposed(playlist, scene, range(scene.frames)) == []


@pytest.mark.parametrize("keep_audio", [True, False])
def test_audio_goes_on_in_step_with_the_video(tmp_path: Path, keep_audio: bool) -> None:
    server_process("a stream played in real time")
    scene = demo_scene(320, 180, 45, 30)
    source = tmp_path / "with-audio.mp4"
    write_video(source, scene)  # a tone in AAC
    playlist = tmp_path / "hls" / "index.m3u8"
    options = LiveOptions(realtime=True, keep_audio=keep_audio)
    run_live(str(source), str(playlist), options, BlurOptions(scale=1))
    with av.open(str(playlist)) as container:
        kinds = [stream.type for stream in container.streams]
        video = [float(p.time) for p in container.decode(video=0)]
    assert kinds == (["video", "audio"] if keep_audio else ["video"])
    if keep_audio:
        with av.open(str(playlist)) as container:
            assert container.streams.audio[0].codec_context.name == "aac"
            audio = [(f.time or 0.0, f.samples / f.sample_rate) for f in container.decode(audio=0)]
        assert abs(audio[0][0] - video[0]) < 0.1  # they start together...
        assert abs(audio[-1][0] + audio[-1][1] - video[-1]) < 0.15  # ...and end together
        assert all(b[0] > a[0] for a, b in itertools.pairwise(audio))


def test_a_recording_kept_beside_the_stream(tmp_path: Path) -> None:
    """--record: files that play on their own, faces hidden, audio kept; veil's own old
    files past --record-keep deleted, anything else in the folder left alone."""
    server_process("a stream played in real time")
    scene = demo_scene(640, 360, 45, 30)
    source = tmp_path / "with-audio.mp4"
    write_video(source, scene)
    folder = tmp_path / "recorded"
    folder.mkdir()
    old, other = folder / "live-20261101-000000-00000.ts", folder / "notes.ts"
    for path in (old, other):
        path.write_bytes(b"x")
        os.utime(path, (time.time() - 3 * 86400,) * 2)
    options = LiveOptions(realtime=True, record=folder, record_keep=2 * 86400)
    run_live(str(source), str(tmp_path / "hls" / "index.m3u8"), options)
    assert not old.exists() and other.exists()
    (recording,) = sorted(folder.glob("live-*.ts"))
    with av.open(str(recording)) as container:
        assert [s.type for s in container.streams] == ["video", "audio"]
    assert exposed(recording, scene, range(scene.frames)) == []
    with av.open(str(recording)) as container:
        assert sum(1 for _ in container.decode(video=0)) == scene.frames


def test_a_phone_video_goes_out_upright(tmp_path: Path) -> None:
    """A file stored turned (a phone held upright) is sent as it is shown: it came out
    squeezed into the stored size, and covered frames lay on their side."""
    server_process("a stream played in real time")
    scene = demo_scene(360, 640, 30, 30)
    source = tmp_path / "phone.mp4"
    write_video(source, scene, rotation=90, audio=False)
    playlist = tmp_path / "index.m3u8"
    run_live(str(source), str(playlist), LiveOptions(realtime=True))
    with av.open(str(playlist)) as container:
        stream = container.streams.video[0]
        assert (stream.width, stream.height) == (360, 640)
    assert exposed(playlist, scene, range(scene.frames)) == []


def test_a_file_needs_realtime_and_an_output_must_be_live(source: Path, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from veil.cli import main

    result = CliRunner().invoke(main, ["live", str(source), "-o", str(tmp_path / "i.m3u8")])
    assert result.exit_code == 1
    assert "--realtime" in result.output
    result = CliRunner().invoke(
        main, ["live", str(source), "--realtime", "-o", str(tmp_path / "out.mp4")]
    )
    assert result.exit_code == 1
    assert "not a live output" in result.output
    assert not (tmp_path / "out.mp4").exists()


# -- network sources -----------------------------------------------------------------


def test_a_refused_source_is_one_line_without_its_password(tmp_path: Path) -> None:
    server_process("veil live")
    port = free_port()  # nothing listens there
    run = veil_live(
        f"tcp://viewer:s3cret@127.0.0.1:{port}?token=t0ken", "-o", str(tmp_path / "i.m3u8")
    )
    out, err = run.communicate(timeout=60)
    assert run.returncode == 1
    lines = err.strip().splitlines()
    assert lines[-1] == f"veil: error: tcp://127.0.0.1:{port}: connection refused"
    assert "s3cret" not in out + err and "t0ken" not in out + err
    assert "Traceback" not in err


def send(url: str, video: Path, stop: threading.Event) -> None:
    """Play ``video``'s packets to ``url`` as MPEG-TS at their own pace (a camera)."""
    connection = wait_for(lambda: _connected(url), 60, f"a listener at {url}")
    with (
        connection,
        connection.makefile("wb") as sink,
        av.open(str(video)) as src,
        av.open(sink, "w", format="mpegts") as dst,
    ):
        play(src, dst, dst.add_stream_from_template(src.streams.video[0]), stop)


def play(src: Any, dst: Any, stream: Any, stop: threading.Event | None = None) -> None:
    """``src``'s video packets muxed into ``dst`` as ``stream``, each at its time."""
    start = time.monotonic()
    for packet in src.demux(src.streams.video[0]):
        if packet.dts is None:
            continue
        if stop is not None and stop.is_set():
            break
        time.sleep(max(0.0, start + float(packet.dts * packet.time_base) - time.monotonic()))
        packet.stream = stream
        dst.mux(packet)


def _connected(url: str) -> socket.socket | None:
    host, port = url.removeprefix("tcp://").split(":")
    try:
        return socket.create_connection((host, int(port)), timeout=5)
    except OSError:
        return None  # not listening yet


def test_a_tcp_stream_that_drops_and_comes_back(source: Path, scene: Scene, tmp_path: Path) -> None:
    """A camera sending MPEG-TS over TCP goes away for two seconds and comes back: the
    output shows a slate meanwhile, its timestamps keep rising, both runs of the scene
    are anonymized, and SIGTERM ends the playlist properly."""
    server_process("veil live")
    port = free_port()
    playlist = tmp_path / "hls" / "index.m3u8"
    run = veil_live(
        f"tcp://127.0.0.1:{port}?listen=1", "-o", str(playlist), "--json", "--window", "50"
    )
    stop = threading.Event()
    try:
        send(f"tcp://127.0.0.1:{port}", source, stop)
        time.sleep(2.0)
        send(f"tcp://127.0.0.1:{port}", source, stop)
        time.sleep(1.5)  # the last frames' boxes
    finally:
        stop.set()
        run.send_signal(signal.SIGTERM)
        out, err = run.communicate(timeout=60)
    assert run.returncode == 0, err
    stats = json.loads(out)
    assert stats["reconnects"] == 1
    assert stats["slate_frames"] > 0
    assert stats["frames_in"] == 2 * scene.frames
    assert playlist.read_text().rstrip().endswith("#EXT-X-ENDLIST")
    times = output_times(playlist)
    assert len(times) == stats["frames_out"] + stats["slate_frames"]
    assert all(b > a for a, b in itertools.pairwise(times))
    # Order: the first run, the slate, the second run.
    first = range(0, scene.frames)
    second = range(len(times) - scene.frames, len(times))
    assert exposed(playlist, scene, first) == []
    assert exposed(playlist, scene, second) == []
    assert f"127.0.0.1:{port}" in err and "listen" not in err


@pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX signals")
def test_nothing_is_left_running_after_sigint(source: Path, tmp_path: Path) -> None:
    server_process("veil live")
    playlist = tmp_path / "index.m3u8"
    run = veil_live(str(source), "--realtime", "--loop", "-o", str(playlist), "-q")
    wait_for(lambda: playlist.exists(), 60, "the first segment")
    run.send_signal(signal.SIGINT)
    _, err = run.communicate(timeout=30)
    assert run.returncode == 0, err
    assert playlist.read_text().rstrip().endswith("#EXT-X-ENDLIST")


def test_a_listener_outlasts_a_sender_of_junk(source: Path, scene: Scene, tmp_path: Path) -> None:
    """Whoever reaches a listening source first cannot stop it: a connection of junk is
    passed over and the real camera's stream that follows is taken."""
    server_process("veil live")
    port = free_port()
    playlist = tmp_path / "index.m3u8"
    run = veil_live(f"tcp://127.0.0.1:{port}?listen=1", "-o", str(playlist), "--json", "-q")
    try:
        junk = wait_for(lambda: _connected(f"tcp://127.0.0.1:{port}"), 60, "veil listening")
        with junk:
            junk.sendall(os.urandom(64 * 1024))
        time.sleep(1.0)
        send(f"tcp://127.0.0.1:{port}", source, threading.Event())
        time.sleep(1.5)
    finally:
        run.send_signal(signal.SIGTERM)
        out, err = run.communicate(timeout=60)
    assert run.returncode == 0, err
    assert json.loads(out)["frames_in"] == scene.frames
    assert exposed(playlist, scene, range(scene.frames)) == []


def _udp_bound(port: int) -> bool:
    """Something on this machine receives UDP on ``port``."""
    rows = Path("/proc/net/udp").read_text().splitlines()[1:]
    return any(row.split()[1].endswith(f":{port:04X}") for row in rows)


def test_a_udp_mpeg_ts_stream(source: Path, scene: Scene, tmp_path: Path) -> None:
    """MPEG-TS sent over UDP, as encoders and many cameras send it."""
    server_process("veil live")
    port = free_port()
    playlist = tmp_path / "index.m3u8"
    run = veil_live(f"udp://127.0.0.1:{port}", "-o", str(playlist), "--json", "-q")
    try:
        wait_for(lambda: _udp_bound(port), 60, "veil live receiving UDP")
        url = f"udp://127.0.0.1:{port}?pkt_size=1316"
        with av.open(str(source)) as src, av.open(url, "w", format="mpegts") as dst:
            play(src, dst, dst.add_stream_from_template(src.streams.video[0]))
        time.sleep(2.0)  # the last frames' boxes: the source is lost after 10 s of silence
    finally:
        run.send_signal(signal.SIGINT)
        out, err = run.communicate(timeout=60)
    assert run.returncode == 0, err
    stats = json.loads(out)
    assert stats["frames_in"] >= scene.frames - 5  # loopback UDP may lose a packet or two
    start = first_scene_frame(playlist, scene)
    assert exposed(playlist, scene, range(-start, stats["frames_in"] - start)) == []
    assert playlist.read_text().rstrip().endswith("#EXT-X-ENDLIST")


def test_an_rtmp_publisher(source: Path, scene: Scene, tmp_path: Path) -> None:
    """An encoder (OBS, a drone's app) publishing over RTMP to veil, which listens."""
    server_process("veil live")
    port = free_port()
    playlist = tmp_path / "index.m3u8"
    run = veil_live(
        f"rtmp://127.0.0.1:{port}/live/cam?listen=1", "-o", str(playlist), "--json", "-q"
    )
    try:
        url = f"rtmp://127.0.0.1:{port}/live/cam"
        with av.open(str(source)) as src:
            template = src.streams.video[0]

            def published() -> Any:
                dst = av.open(url, "w", format="flv")
                stream = dst.add_stream_from_template(template)
                try:
                    dst.start_encoding()
                except (OSError, av.error.FFmpegError):
                    dst.close()
                    return None  # veil is not listening yet
                return dst, stream

            dst, stream = wait_for(published, 60, "veil live listening for RTMP")
            with dst:
                play(src, dst, stream)
        time.sleep(2.0)
    finally:
        run.send_signal(signal.SIGTERM)
        out, err = run.communicate(timeout=60)
    assert run.returncode == 0, err
    stats = json.loads(out)
    assert stats["frames_in"] >= scene.frames - 3
    start = first_scene_frame(playlist, scene)
    assert exposed(playlist, scene, range(-start, stats["frames_in"] - start)) == []
