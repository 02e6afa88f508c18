"""Speed and recall of veil against a plain re-encode and the peer tool deface.

Usage::

    python bench/run.py                      # 720p and 1080p, 300 frames each
    python bench/run.py --sizes 720 --frames 300

Every number comes from this one run on this machine, so the ratios hold even where the
machine is noisy. deface is measured when its command is found: install it in a
separate virtual environment (it pulls a GUI OpenCV, which veil must not depend on)::

    python -m venv /opt/deface-venv
    /opt/deface-venv/bin/pip install deface==1.5.0 onnx onnxruntime

and pass ``--deface /opt/deface-venv/bin/deface`` (that path is also tried by default).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from veil.synthetic import demo_scene, visible_faces, write_video

FASTEST = ["--scale", "1", "--detect-every", "15", "--preset", "ultrafast"]

# The floor: decode and re-encode with x264 at veil's default preset and crf, audio copied.
PLAIN_TRANSCODE = """
import sys, av
src, dst = sys.argv[1], sys.argv[2]
with av.open(src) as inp, av.open(dst, "w") as out:
    v = inp.streams.video[0]
    v.thread_type = "AUTO"
    o = out.add_stream("libx264", rate=v.average_rate)
    o.width, o.height, o.pix_fmt = v.codec_context.width, v.codec_context.height, "yuv420p"
    o.time_base = o.codec_context.time_base = v.time_base
    o.options = {"crf": "20", "preset": "veryfast"}
    a = out.add_stream_from_template(inp.streams.audio[0])
    for packet in inp.demux(v, inp.streams.audio[0]):
        if packet.stream.type == "audio":
            if packet.dts is not None:
                packet.stream = a
                out.mux(packet)
            continue
        for frame in packet.decode():
            out.mux(o.encode(frame))
    out.mux(o.encode(None))
"""


@dataclass
class Result:
    name: str
    seconds: float
    peak_mib: float
    visible: int | None


def run(name: str, argv: list[str], output: Path, clip_scene: object | None) -> Result:
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if status != 0:
        sys.exit(f"{name} failed:\n{stderr[-2000:]}")
    visible = len(visible_faces(output, clip_scene)) if clip_scene is not None else None
    return Result(name, seconds, usage.ru_maxrss / 1024, visible)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="720,1080", help="frame heights, comma-separated")
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument(
        "--deface", default=os.environ.get("VEIL_DEFACE", "/opt/deface-venv/bin/deface")
    )
    args = parser.parse_args()
    veil = shutil.which("veil") or sys.exit("veil is not installed: pip install -e '.[samples]'")
    deface = args.deface if Path(args.deface).exists() else shutil.which("deface")
    print(
        f"cpu cores: {os.cpu_count()}, frames per clip: {args.frames}, deface: {deface or 'not found'}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for height in (int(h) for h in args.sizes.split(",")):
            width = height * 16 // 9
            scene = demo_scene(width, height, args.frames)
            clip = write_video(work / f"clip{height}.mp4", scene).path
            total = sum(len(scene.render(i)[1]) for i in range(scene.frames))
            results = [
                run(
                    "plain re-encode (x264 veryfast)",
                    [sys.executable, "-c", PLAIN_TRANSCODE, str(clip), str(work / "plain.mp4")],
                    work / "plain.mp4",
                    scene,
                ),
                run(
                    "veil blur (defaults)",
                    [veil, "blur", str(clip), "-o", str(work / "veil.mp4"), "-q"],
                    work / "veil.mp4",
                    scene,
                ),
                run(
                    "veil blur (fastest: " + " ".join(FASTEST) + ")",
                    [veil, "blur", str(clip), "-o", str(work / "fast.mp4"), "-q", *FASTEST],
                    work / "fast.mp4",
                    scene,
                ),
            ]
            if deface:
                results.append(
                    run(
                        "deface (defaults)",
                        [deface, str(clip), "-o", str(work / "deface.mp4")],
                        work / "deface.mp4",
                        scene,
                    )
                )
            plain = results[0].seconds
            theirs = results[3].seconds if deface else None
            print(f"\n{width}x{height}, {args.frames} frames, {total} face-frames in the clip")
            print(
                "| run | frames/s | x plain re-encode | x deface | peak MiB | visible face-frames |"
            )
            print("| --- | ---: | ---: | ---: | ---: | ---: |")
            for r in results:
                fps = args.frames / r.seconds
                vs_deface = f"{theirs / r.seconds:.2f}" if theirs else "-"
                print(
                    f"| {r.name} | {fps:.1f} | {plain / r.seconds:.2f} | {vs_deface} | {r.peak_mib:.0f} | {r.visible}/{total} |"
                )


if __name__ == "__main__":
    main()
