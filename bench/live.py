"""Live: the delay veil adds, frames covered whole, CPU and memory, and faces left
visible, with a real stream on loopback.

Usage::

    python bench/live.py                       # 720p30 and 1080p30, 15 s each
    python bench/live.py --sizes 1280x720 --seconds 60
    python bench/live.py --soak 60             # an hour of a looping file: memory over time

This process plays a synthetic scene (``veil.synthetic.demo_scene``: eight faces of 16
to 160 px at 720p, moving, turned, motion-blurred, covered, entering and leaving) as
MPEG-TS over TCP at its own pace, as a camera would; ``veil live`` (a process, at its
defaults) reads it and pushes its output as MPEG-TS over TCP back to this process,
which notes when each frame arrives. The added delay of frame i is its arrival here
less the moment the camera's clock showed it (the start of sending plus its
timestamp): veil's analysis and hold, its encoder, and both trips through loopback.
Faces are judged afterwards on the received stream by the whole-face measure
(``veil.synthetic.face_visibility``), faces of 16 px and up. CPU is the ``veil live``
process's user and system time over the run's length (2.0 = both cores busy), memory
its peak resident size. The CPU's int8 instruction sets are recorded.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import av
import numpy as np

from veil.detector import cpu_instruction_sets
from veil.synthetic import Scene, demo_scene, face_visibility, write_video

GATED = 16


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _send(port: int, video: Path, started: list[float], loops: int = 1) -> None:
    """Play ``video`` ``loops`` times to veil's listener at ``port``, at its own pace,
    through FFmpeg's own TCP output (a Python file would hold 32 KB before sending)."""
    url = f"tcp://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    with av.open(str(video)) as first:
        template = first.streams.video[0]
        while True:  # veil listens once it has started
            dst = av.open(url, "w", format="mpegts", options={"flush_packets": "1"})
            stream = dst.add_stream_from_template(template)
            try:
                dst.start_encoding()
                break
            except (OSError, av.error.FFmpegError):
                dst.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
    with dst:
        start = time.monotonic()
        started.append(start)
        offset = 0.0
        for _ in range(loops):
            with av.open(str(video)) as src:
                source = src.streams.video[0]
                earliest: float | None = None
                last = 0.0
                for packet in src.demux(source):
                    if packet.dts is None or packet.pts is None:
                        continue
                    at = float(packet.dts * packet.time_base)
                    earliest = at if earliest is None else earliest
                    time.sleep(max(0.0, start + offset + at - time.monotonic()))
                    shift = round(offset / packet.time_base)
                    packet.dts += shift
                    packet.pts += shift
                    packet.stream = stream
                    dst.mux(packet)
                    last = at
                # The next round after this one's last packet (its first may be negative).
                offset += last - (earliest or 0.0) + 1 / float(source.average_rate or 30)


class _Receiver(threading.Thread):
    """Takes veil's output on FFmpeg's own TCP listener: each frame's arrival, and the
    stream kept in a file to judge afterwards."""

    def __init__(self, port: int, keep: Path) -> None:
        super().__init__(daemon=True)
        self.url = f"tcp://127.0.0.1:{port}?listen=1"
        self.keep = keep
        self.arrivals: list[float] = []
        self.listening = threading.Event()

    def run(self) -> None:
        self.listening.set()
        with (
            av.open(self.url, "r", format="mpegts", timeout=(120, 30)) as src,
            av.open(str(self.keep), "w", format="mpegts") as dst,
        ):
            source = src.streams.video[0]
            source.thread_type = "SLICE"  # a player's frame threads would add their delay
            kept = dst.add_stream_from_template(source)
            try:
                for packet in src.demux(source):
                    for _ in packet.decode():
                        self.arrivals.append(time.monotonic())
                    if packet.dts is not None:
                        packet.stream = kept
                        dst.mux(packet)
            except av.error.FFmpegError:
                pass  # veil closed the stream


def _visible(kept: Path, scene: Scene, frames: int) -> int:
    count = 0
    with av.open(str(kept)) as container:
        for i, picture in enumerate(container.decode(container.streams.video[0])):
            if i >= frames:
                break
            image = np.asarray(picture.to_ndarray(format="rgb24"), np.uint8)
            truth, boxes, _ = scene.render(i % scene.frames)
            for box in boxes:
                if box[3] - box[1] >= GATED and face_visibility(truth, image, box) > 0.6:
                    count += 1
    return count


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def run(
    width: int,
    height: int,
    seconds: float,
    work: Path,
    delay: float,
    soak_minutes: float = 0,
    extra: tuple[str, ...] = (),
) -> dict[str, object]:
    fps = 30
    frames = round(seconds * fps)
    scene = demo_scene(width, height, frames, fps)
    video = work / f"scene-{width}x{height}-{frames}.mp4"
    if not video.exists():
        write_video(video, scene, audio=False)
    loops = max(1, round(soak_minutes * 60 / seconds)) if soak_minutes else 1
    source, sink = _free_port(), _free_port()
    kept = work / f"out-{width}x{height}.ts"
    receiver = _Receiver(sink, kept)
    receiver.start()
    receiver.listening.wait()
    time.sleep(0.5)  # FFmpeg's listener is up
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.monotonic()
    veil = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "veil.cli",
            "live",
            f"tcp://127.0.0.1:{source}?listen=1",
            "-o",
            f"tcp://127.0.0.1:{sink}",
            "--json",
            "-q",
            "--delay",
            f"{delay:g}",
            *extra,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    started: list[float] = []
    memory: list[tuple[float, float]] = []
    sender = threading.Thread(target=_send, args=(source, video, started, loops), daemon=True)
    sender.start()
    while sender.is_alive():
        sender.join(timeout=10 if soak_minutes else 1)
        if soak_minutes and veil.poll() is None:
            memory.append((time.monotonic() - began, _rss_mib(veil.pid)))
    time.sleep(2.0)  # the last frames' boxes
    veil.send_signal(2)
    out, _ = veil.communicate(timeout=60)
    elapsed = time.monotonic() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    receiver.join(timeout=10)
    stats = json.loads(out)
    arrivals = receiver.arrivals[: stats["frames_out"]]  # not the slate after the source ends
    delays = sorted(a - (started[0] + i / fps) for i, a in enumerate(arrivals))
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    result = {
        "size": f"{width}x{height}",
        "delay": delay,
        "options": " ".join(extra),
        "frames": stats["frames_in"],
        "received": len(receiver.arrivals),
        "covered_whole": stats["covered_whole"],
        "delay_p50": round(delays[len(delays) // 2], 2),
        "delay_p95": round(delays[int(len(delays) * 0.95) - 1], 2),
        "inside_veil_p50": stats["delay_p50"],
        "inside_veil_p95": stats["delay_p95"],
        "cpu_cores": round(cpu / elapsed, 2),
        "peak_rss_mib": round(after.ru_maxrss / 1024),
        "visible": None if soak_minutes else _visible(kept, scene, frames),
    }
    if memory:
        result["rss_mib_over_time"] = [(round(t), round(m)) for t, m in memory]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes",
        default="1280x720,1920x1080,1920x1080@1.5",
        help="WIDTHxHEIGHT[@DELAY], comma-separated (DELAY: veil live --delay, default 1)",
    )
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--soak", type=float, default=0.0, metavar="MINUTES")
    parser.add_argument(
        "--veil", default="", metavar="ARGS", help="more options for veil live, e.g. '--scale 1.5'"
    )
    args = parser.parse_args()
    print(
        f"# bench/live.py on {datetime.date.today()}, {platform.machine()}, "
        f"CPU int8 instruction sets: {', '.join(cpu_instruction_sets()) or 'none'}"
    )
    with tempfile.TemporaryDirectory(prefix="veil-bench-live-") as tmp:
        for item in args.sizes.split(","):
            size, _, delay = item.partition("@")
            width, height = (int(v) for v in size.split("x"))
            extra = tuple(args.veil.split())
            result = run(
                width, height, args.seconds, Path(tmp), float(delay or 1), args.soak, extra
            )
            print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
