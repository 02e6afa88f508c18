"""Speed, memory and recall of veil against a plain x264 re-encode and the peer tool deface,
at the resolutions issue 8 sets targets for, and the cost of a job through ``veil serve``.

Usage::

    python bench/run.py                       # everything: 720p, 1080p, 4K, portrait, service
    python bench/run.py --sizes 720,1080 --frames 150
    python bench/run.py --quick               # smoke run, about 2-3 minutes: 720p and
                                              # portrait, 30 frames a clip

What it measures, every number in this one run on this machine (so the ratios hold even
where the machine is noisy):

* Clips, made with ``veil.synthetic`` for each resolution: ``demo`` (eight faces from
  16 px up, moving, turned, rotated, motion-blurred, half covered, entering late),
  ``closeup`` (a talking head growing from 50 to 95% of the frame height, and a small
  face beside it) and ``action`` (motion-blurred faces crossing the frame at 20 and 30 px
  a frame, an edge entry, a scene cut; at least ``ACTION_FRAMES`` frames long, since a
  shorter one crosses faster). Face sizes and speeds scale with the frame height from
  720p. The portrait clips (1080x1920) are stored as phones store them, a landscape
  picture with a 90° display matrix; their faces keep their 720p sizes and speeds (16 px
  up), and the close-up is a selfie, the face 25 to 45% of the frame height (as wide as
  the frame at the end).
* Runs, each in its own process, timed from start to exit, its peak RSS from
  ``os.wait4``: a plain x264 ``-preset fast`` re-encode (crf 20, audio copied: the
  baseline every "x plain re-encode" ratio is against), the same at ``-preset veryfast``
  (veil's own encoder preset, the floor for veil), ``veil blur`` at its defaults, the
  fastest documented setting (``FASTEST``; at ``--fastest`` sizes only), the defaults
  without YuNet (``--no-yunet``, at ``--without-yunet`` sizes only: the second detector's
  cost in the same run) and deface at its defaults when found.
* Visible face-frames: (frame, face) pairs of a clip where a known face keeps more than
  60% of its fine detail over its eyes, nose or mouth and chin in a run's output
  (``veil.synthetic.face_visibility``, the measure ``visible_faces`` uses), out of all
  face-frames of the clip. The plain re-encodes show all of them.
* One table per resolution, one row per run, summed over the clips: frames/s, x plain
  re-encode (the re-encode's seconds over the run's: >= 0.6 at 720p and 1080p and >= 0.5 at
  4K is the target), x deface ('-' without deface), peak RSS MiB (the highest of the
  clips), visible face-frames. ``--per-clip`` adds a row per clip and run.
* Service cost (``--service`` sizes, 720p by default): ``veil blur --faces-out`` on a
  demo clip of ``--service-frames`` (600), the same with ``--report`` (which audits the
  output as a service job does), then the same file uploaded to a ``veil serve`` started
  for it (folder buckets and SQLite in a temporary folder, loopback port, listing poller
  off) through ``POST /api/uploads``; each three times in turn, medians compared. A
  job's wall time runs from the upload's start to the end of its last step (the steps'
  own times); CPU time is that of the server process and its children over the job,
  from ``/proc``. Target: the service job at most 1.1x ``veil blur``; printed also
  without its Audit step (issue 11's audit, which may take about 20% of a job) and
  against ``veil blur --report``, which does the same work.

deface is measured when its command is found: install it in a separate virtual
environment (it pulls a GUI OpenCV, which veil must not depend on)::

    python -m venv /opt/deface-venv
    /opt/deface-venv/bin/pip install deface==1.5.0 onnx onnxruntime

and pass ``--deface /opt/deface-venv/bin/deface`` (that path is also tried by default).
Run nothing else on the machine meanwhile, and never two benchmarks at once. On 2 cores
a full run takes roughly 35 minutes without deface and 50 with it; drawing the synthetic
clips twice (once to encode them, once to judge each output) is about a third of that.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np

from veil.detector import cpu_instruction_sets
from veil.errors import VeilError
from veil.synthetic import (
    MovingFace,
    Scene,
    action_scene,
    closeup_scene,
    demo_scene,
    face_visibility,
    write_video,
)
from veil.video import probe, to_display

FASTEST = ["--scale", "1", "--detect-every", "15", "--preset", "ultrafast"]
"""The fastest setting docs/benchmarks.md documents."""

VISIBLE = 0.6
"""A face keeping more than this share of its detail counts as visible (as in
``veil.synthetic.visible_faces``)."""

# The baseline: decode and re-encode with x264 at crf 20 and the given preset, audio
# copied, the display matrix (a phone's rotation) kept. Only PyAV, so start-up is cheap.
PLAIN_TRANSCODE = """
import sys, av
src, dst, preset, rotation, mirrored = sys.argv[1:6]
with av.open(src) as inp, av.open(dst, "w") as out:
    v = inp.streams.video[0]
    v.thread_type = "AUTO"
    o = out.add_stream("libx264", rate=v.average_rate)
    o.width, o.height, o.pix_fmt = v.codec_context.width, v.codec_context.height, "yuv420p"
    o.time_base = o.codec_context.time_base = v.time_base
    o.options = {"crf": "20", "preset": preset}
    if int(rotation) or mirrored == "1":
        o.set_display_rotation(int(rotation), hflip=mirrored == "1")
    streams = [v]
    a = None
    if inp.streams.audio:
        a = out.add_stream_from_template(inp.streams.audio[0])
        streams.append(inp.streams.audio[0])
    for packet in inp.demux(*streams):
        if packet.stream.type == "audio":
            if packet.dts is not None:
                packet.stream = a
                out.mux(packet)
            continue
        for frame in packet.decode():
            out.mux(o.encode(frame))
    out.mux(o.encode(None))
"""

SIZES: dict[str, tuple[str, int, int]] = {
    "720": ("720p", 1280, 720),
    "1080": ("1080p", 1920, 1080),
    "2160": ("4K", 3840, 2160),
    "portrait": ("portrait", 1080, 1920),
}
"""``--sizes`` names: label, displayed width and height."""

CLIPS = ("demo", "closeup", "action")

PLAIN = "plain re-encode (x264 fast)"
PLAIN_VERYFAST = "plain re-encode (x264 veryfast)"
VEIL = "veil blur (defaults)"
VEIL_FASTEST = "veil blur (fastest: " + " ".join(FASTEST) + ")"
VEIL_NO_YUNET = "veil blur --no-yunet"
"""The defaults without the second detector (veil/yunet.py): YuNet's cost, in the same run."""
DEFACE = "deface (defaults)"


# -- clips -------------------------------------------------------------------------------


ACTION_FRAMES = 140
"""Shortest ``action`` clip that moves at its stated speeds: ``action_scene`` ends the
crossing faces at its mid-clip cut, so a shorter clip makes them cross faster (at 60
frames, about 3x faster than 20 px a frame at 720p)."""


def portrait_scene(kind: str, width: int, height: int, frames: int) -> Scene:
    """A portrait clip (``width < height``) whose faces keep their 720p sizes.

    The landscape builders scale faces and speeds with the frame height from 720p, which
    would make a 1920 px tall clip's smallest face 43 px. Here ``demo`` and ``action`` are
    built for a ``width`` x 720 frame (faces 16 px and up, crossing at 20 and 30 px a
    frame) and stretched to ``height``: positions are fractions of the frame, so only the
    vertical spacing changes. ``closeup`` is a selfie: a face growing from 25 to 45% of
    the frame height (about as wide as the frame at the end) and a small face behind it."""
    if kind == "closeup":
        faces = (
            MovingFace(
                photo="grace_hopper",
                height=0.25 * height,
                end_height=0.45 * height,
                start=(0.5, 0.42),
                end=(0.48, 0.5),
            ),
            MovingFace(
                photo="astronaut", height=0.05 * height, start=(0.2, 0.12), end=(0.24, 0.14)
            ),
        )
        return Scene(width=width, height=height, frames=frames, faces=faces)
    landscape = demo_scene if kind == "demo" else action_scene
    return dataclasses.replace(landscape(width, 720, frames), height=height)


def make_scene(kind: str, width: int, height: int, frames: int) -> Scene:
    if width < height:
        return portrait_scene(kind, width, height, frames)
    builders: dict[str, Callable[[int, int, int], Scene]] = {
        "demo": demo_scene,
        "closeup": closeup_scene,
        "action": action_scene,
    }
    return builders[kind](width, height, frames)


# -- measuring a run -------------------------------------------------------------------------


@dataclass
class Run:
    """One process run on one clip: wall and CPU seconds, peak RSS, visible face-frames."""

    name: str
    clip: str
    frames: int
    seconds: float
    cpu: float
    peak_mib: float
    output: Path
    error: str | None = None
    visible: int | None = None
    """Visible face-frames in ``output``; None when it could not be judged."""
    note: str | None = None


_PEAK = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as f:
    f.write(f"{usage.ru_maxrss} {usage.ru_utime + usage.ru_stime}")
sys.exit(os.waitstatus_to_exitcode(status))
"""
"""Runs a command and writes its peak RSS (KiB) and CPU seconds to a file. A child's
peak RSS starts at its parent's (Linux carries the memory it had before exec over, and
posix_spawn shares the parent's memory until then); this process holds decoded 4K
frames while it judges, so runs start from this small one instead."""


def measure(name: str, clip: str, frames: int, argv: list[str], output: Path) -> Run:
    """Run ``argv`` to its end: wall time, and its CPU time and peak RSS (``_PEAK``)."""
    output.unlink(missing_ok=True)
    with tempfile.TemporaryFile() as err, tempfile.NamedTemporaryFile("r") as usage:
        start = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-c", _PEAK, usage.name, *argv],
            stdout=subprocess.DEVNULL,
            stderr=err,
            check=False,
        )
        seconds = time.perf_counter() - start
        err.seek(0)
        stderr = err.read().decode(errors="replace")
        peak_kib, cpu = (float(v) for v in (usage.read().split() or ["0", "0"]))
    error = None
    if proc.returncode != 0 or not output.exists():
        error = f"exit {proc.returncode}: {stderr.strip()[-1500:]}"
    return Run(name, clip, frames, seconds, cpu, peak_kib / 1024, output, error)


def count_visible(scene: Scene, runs: list[Run]) -> int:
    """Set each run's ``visible``; the scene's face-frames. One pass over the scene,
    rendering each frame once and decoding every output beside it: rendering costs more
    than the decoding (over a second a frame at 4K)."""
    judged = [r for r in runs if r.error is None]
    decoders: list[Iterator[av.VideoFrame]] = []
    infos = []
    with_frames: list[Run] = []
    containers = []
    total = 0
    try:
        for r in judged:
            try:
                info = probe(r.output)
            except VeilError as exc:
                r.note = f"unreadable output: {exc}"
                continue
            if (info.width, info.height) != (scene.width, scene.height):
                r.note = f"output shows {info.width}x{info.height}"
                continue
            container = av.open(str(r.output))
            containers.append(container)
            decoders.append(container.decode(container.streams.video[0]))
            infos.append(info)
            with_frames.append(r)
            r.visible = 0
        for i in range(scene.frames):
            truth, boxes, _ = scene.render(i)
            total += len(boxes)
            for r, decoder, info in zip(with_frames, decoders, infos, strict=True):
                frame = next(decoder, None)
                if frame is None:
                    r.note = r.note or f"output ends at frame {i}"
                    continue
                if not len(boxes):
                    continue
                coded = np.asarray(frame.to_ndarray(format="rgb24"), np.uint8)
                image = to_display(coded, info.rotation, info.mirrored)
                assert r.visible is not None
                r.visible += sum(face_visibility(truth, image, box) > VISIBLE for box in boxes)
    finally:
        for container in containers:
            container.close()
    return total


# -- the service --------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> tuple[int, float] | None:
    """``(parent pid, CPU seconds of the process and its reaped children)`` from
    /proc/PID/stat, or None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    # After the name: state, ppid, ... utime (14th field of the line), stime, cutime, cstime.
    ticks = sum(int(v) for v in fields[11:15])
    return int(fields[1]), ticks / _TICK


def tree_cpu(root: int) -> float:
    """CPU seconds of ``root`` and every live descendant, each with its reaped children."""
    stats = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (found := _stat(int(entry.name))) is not None:
            stats[int(entry.name)] = found
    tree, total, grew = {root}, 0.0, True
    while grew:
        grew = False
        for pid, (ppid, _) in stats.items():
            if ppid in tree and pid not in tree:
                tree.add(pid)
                grew = True
    for pid in tree:
        if pid in stats:
            total += stats[pid][1]
    return total


def _http(url: str, data: bytes | None = None, headers: dict[str, str] | None = None) -> Any:
    req = urllib.request.Request(url, data=data, headers=headers or {})
    with urllib.request.urlopen(req, timeout=60) as response:
        return json.loads(response.read())


def _upload(url: str, path: Path) -> str:
    """POST ``path`` to ``/api/uploads`` as multipart ``file``; the job id."""
    boundary = uuid.uuid4().hex
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{path.name}"'
        "\r\nContent-Type: video/mp4\r\n\r\n"
    ).encode()
    body = head + path.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    found = _http(
        f"{url}/api/uploads",
        body,
        {"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    return str(found["id"])


@dataclass
class ServiceRun:
    wall: float
    cpu: float
    startup_cpu: float
    total_cpu: float
    peak_mib: float
    status: str
    steps: list[tuple[str, float]] = field(default_factory=list)
    upload: float = 0.0
    """Seconds the upload took (the request's answer: the job is queued by then)."""
    queued: float = 0.0
    """Seconds from the upload's answer to the first step's start (the queue's pickup)."""
    output: Path | None = None
    faces: Path | None = None
    error: str | None = None

    def step(self, name: str) -> float:
        return sum(seconds for step, seconds in self.steps if step == name)


SETTLE_SECONDS = 3.0


def serve_job(veil: str, clip: Path, work: Path, timeout: float) -> ServiceRun:
    """One job through a fresh ``veil serve``: wall and CPU from the upload's start to the
    end of the job's last step.

    Times come from the steps' own start and end (veil's progress rows, in ms), not from
    the job's state history: DBOS stamps that in whole seconds on SQLite under Python
    3.12, which moved the end by up to a second."""
    data = work / "serve"
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [veil, "serve", "--data", str(data), "--port", str(port), "--poll-interval", "0"]
    argv.append("--no-auth")  # on loopback, for the benchmark's own calls
    log_path = work / "serve.log"
    with log_path.open("wb") as log:  # the child keeps its own copy
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    result = ServiceRun(0.0, 0.0, 0.0, 0.0, 0.0, "NOT STARTED")
    usage = None
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"veil serve exited with {proc.returncode}")
            try:
                _http(f"{url}/healthz")
                break
            except (urllib.error.URLError, OSError):
                if time.monotonic() > deadline:
                    raise RuntimeError("veil serve did not answer within 120 s") from None
                time.sleep(0.2)
        # /healthz answers before the job queue's threads settle into their polling: a
        # job uploaded at once waited 1.1 to 1.4 s for a worker, one uploaded 10 s later
        # 0.4 s. A job's cost is measured on a server that has settled.
        time.sleep(SETTLE_SECONDS)
        cpu_before = tree_cpu(proc.pid)
        submitted = time.time()
        job_id = _upload(url, clip)
        uploaded = time.time()
        deadline = time.monotonic() + timeout
        while True:
            job = _http(f"{url}/api/jobs/{job_id}")
            if job["status"] in ("SUCCEEDED", "FAILED", "CANCELLED"):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"job {job_id} still {job['status']} after {timeout:.0f} s")
            # As often as the page polls the job it shows: each answer runs Python in the
            # server, holding the GIL against the job's threads (four polls a second
            # added about 1.5 s to a 600-frame Redact); the times come from the steps.
            time.sleep(1.0)
        cpu_after = tree_cpu(proc.pid)
        spans = [
            (s["name"], float(s["started_at"]), float(s["ended_at"]))
            for s in job.get("steps", [])
            if s.get("started_at") and s.get("ended_at")
        ]
        if not spans:
            raise RuntimeError(f"job {job_id} {job['status']} without timed steps")
        result.wall = max(end for _, _, end in spans) - submitted
        result.upload = uploaded - submitted
        result.queued = min(start for _, start, _ in spans) - uploaded
        result.cpu = cpu_after - cpu_before
        result.startup_cpu = cpu_before
        result.status = job["status"]
        result.error = job.get("error")
        result.steps = [(name, end - start) for name, start, end in spans]
        key = job.get("output_key") or clip.name
        result.output = data / "output" / key
        result.faces = data / "output" / f"{key}.faces.json"
    except (RuntimeError, OSError, KeyError, ValueError) as exc:
        result.error = f"{exc}\n{log_path.read_text(errors='replace')[-2000:]}"
    finally:
        usage = _stop(proc)
    if usage is not None:
        result.total_cpu = usage.ru_utime + usage.ru_stime
        result.peak_mib = usage.ru_maxrss / 1024
    return result


def _stop(proc: subprocess.Popen[bytes]) -> Any:
    """SIGINT, then SIGKILL after 10 s; the server's resource usage from ``os.wait4``."""
    if proc.returncode is not None:
        return None
    proc.send_signal(signal.SIGINT)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return usage
        time.sleep(0.1)
    proc.kill()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    print("  (veil serve ignored SIGINT for 10 s; killed)")
    return usage


def _faces(path: Path) -> Any:
    return json.loads(path.read_text())["Faces"]


SERVICE_ROUNDS = 3
"""Each of the service comparison's runs is made this many times, in turn, and its
median taken: one run of a 5 s clip moves by 10-20% on this machine."""


def service_cost(veil: str, clip: Path, scene: Scene, work: Path) -> None:
    """``veil blur --faces-out`` on ``clip``, the same with ``--report`` (which audits the
    output as a service job does), then the same file through ``veil serve``; each
    ``SERVICE_ROUNDS`` times in turn, medians compared."""

    def blur(name: str, *extra: str) -> Run:
        output = work / f"svc-{name}.mp4"
        faces = ["--faces-out", str(work / f"svc-{name}.faces.json")]
        argv = [veil, "blur", str(clip), "-o", str(output), "-q", *faces, *extra]
        return measure(f"veil blur {' '.join(extra)}".strip(), "demo", scene.frames, argv, output)

    plain: list[Run] = []
    reported: list[Run] = []
    jobs: list[ServiceRun] = []
    for _ in range(SERVICE_ROUNDS):
        plain.append(blur("blur"))
        reported.append(blur("report", "--report", str(work / "svc-report.json")))
        jobs.append(serve_job(veil, clip, work, timeout=max(600.0, plain[-1].seconds * 10)))
        failed = [r for r in (plain[-1], reported[-1]) if r.error]
        if failed:
            print(f"\nservice: {failed[0].name} failed: {failed[0].error}")
            return
        if jobs[-1].status != "SUCCEEDED":
            print(f"\nservice job {jobs[-1].status}: {jobs[-1].error}")
            return
    job = jobs[-1]
    if job.output is None or job.faces is None:
        print("\nservice job: no output recorded")
        return
    served = Run("veil serve", "demo", scene.frames, job.wall, job.cpu, job.peak_mib, job.output)
    total = count_visible(scene, [plain[-1], served])
    try:
        same = "yes" if _faces(job.faces) == _faces(work / "svc-blur.faces.json") else "NO"
    except (OSError, ValueError, KeyError, TypeError) as exc:
        same = f"could not compare ({exc})"
    wall = statistics.median(j.wall for j in jobs)
    unaudited = statistics.median(j.wall - j.step("Audit") for j in jobs)
    blur_wall = statistics.median(r.seconds for r in plain)
    report_wall = statistics.median(r.seconds for r in reported)

    def runs(values: list[float]) -> str:
        return ", ".join(f"{v:.1f}" for v in values)

    print(
        f"\nservice job ({SERVICE_ROUNDS} runs of each, medians): {wall:.1f} s wall "
        f"({runs([j.wall for j in jobs])}); veil blur {blur_wall:.1f} s "
        f"({runs([r.seconds for r in plain])}); veil blur --report {report_wall:.1f} s "
        f"({runs([r.seconds for r in reported])})"
    )
    print(
        f"  service job / veil blur: {wall / blur_wall:.2f}x (target <= 1.1x); "
        f"without its Audit step: {unaudited / blur_wall:.2f}x; "
        f"service job / veil blur --report (both audit the output): "
        f"{wall / report_wall:.2f}x"
    )
    steps = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in job.steps)
    print(
        f"  last job: clip {clip.name}, {scene.frames} frames; upload {job.upload:.2f} s, "
        f"queued {job.queued:.2f} s; steps: {steps or '?'}; "
        f"{job.cpu:.1f} s CPU against veil blur's {plain[-1].cpu:.1f} s; "
        f"same faces file as veil blur --faces-out: {same}; visible face-frames: "
        f"service {served.visible}/{total}, veil blur {plain[-1].visible}/{total}"
    )
    print(
        f"  serve process: {job.startup_cpu:.1f} s CPU to start and idle before the upload, "
        f"{job.total_cpu:.1f} s CPU in all, peak RSS {job.peak_mib:.0f} MiB; "
        f"veil blur peak RSS {plain[-1].peak_mib:.0f} MiB (its CPU includes its start-up)"
    )


# -- tables -----------------------------------------------------------------------------


def _row(
    name: str, runs: list[Run], plain: float | None, deface: float | None, totals: list[int]
) -> str:
    failed = [r for r in runs if r.error]
    if failed:
        return f"| {name} | failed | - | - | - | {failed[0].clip}: {failed[0].error!s:.80} |"
    seconds = sum(r.seconds for r in runs)
    frames = sum(r.frames for r in runs)
    vs_plain = f"{plain / seconds:.2f}" if plain else "-"
    vs_deface = f"{deface / seconds:.2f}" if deface else "-"
    peak = max(r.peak_mib for r in runs)
    notes = "; ".join(f"{r.clip}: {r.note}" for r in runs if r.note)
    if any(r.visible is None for r in runs):
        visible = f"n/a ({notes})"
    else:
        visible = f"{sum(r.visible or 0 for r in runs)}/{sum(totals)}"
        if len(runs) > 1:
            visible += " (" + ", ".join(f"{r.clip} {r.visible}" for r in runs) + ")"
        if notes:
            visible += f" ({notes})"
    return (
        f"| {name} | {frames / seconds:.1f} | {vs_plain} | {vs_deface} | {peak:.0f} | {visible} |"
    )


def print_table(
    title: str, clips: list[str], totals: dict[str, int], runs: list[Run], per_clip: bool
) -> None:
    print(f"\n{title}")
    print("| run | frames/s | x plain re-encode | x deface | peak RSS MiB | visible face-frames |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    names = list(dict.fromkeys(r.name for r in runs))

    def seconds(name: str, clip_names: list[str]) -> float | None:
        chosen = [r for r in runs if r.name == name and r.clip in clip_names]
        if len(chosen) != len(clip_names) or any(r.error for r in chosen):
            return None
        return sum(r.seconds for r in chosen)

    for name in names:
        own = [r for r in runs if r.name == name]
        covered = [r.clip for r in own]
        print(
            _row(
                name,
                own,
                seconds(PLAIN, covered),
                seconds(DEFACE, covered),
                [totals[c] for c in covered],
            )
        )
    if per_clip:
        for clip in clips:
            for name in names:
                for r in runs:
                    if r.name == name and r.clip == clip:
                        print(
                            _row(
                                f"{clip}: {name}",
                                [r],
                                seconds(PLAIN, [clip]),
                                seconds(DEFACE, [clip]),
                                [totals[clip]],
                            )
                        )


# -- main --------------------------------------------------------------------------------


def _header(args: argparse.Namespace, deface: str | None) -> None:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "?",
    )
    usable = len(os.sched_getaffinity(0))
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    repo = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--", "veil"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        commit += " (veil/ has uncommitted changes)" if dirty else ""
    except (OSError, subprocess.CalledProcessError):
        commit = "?"
    now = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    print(f"date: {now}")
    print(f"cpu cores: {os.cpu_count()} ({usable} usable), {model}, {memory:.0f} GiB memory")
    print(f"cpu int8 instruction sets: {', '.join(cpu_instruction_sets()) or 'none found'}")
    print(f"veil commit: {commit}; python {platform.python_version()}, PyAV {av.__version__}")
    print(
        f"frames per clip: {args.frames} (4K: {args.frames_4k}; action at least "
        f"{args.frames if args.quick else ACTION_FRAMES}); clips: {','.join(args.clips)}; "
        f"deface: {deface or 'not found'}"
    )


def _sizes(text: str) -> list[str]:
    names = [s.strip() for s in text.split(",") if s.strip() and s.strip() != "none"]
    for name in names:
        if name not in SIZES:
            raise argparse.ArgumentTypeError(f"unknown size {name!r}; known: {', '.join(SIZES)}")
    return names


def _clips(text: str) -> list[str]:
    names = [s.strip() for s in text.split(",") if s.strip()]
    for name in names:
        if name not in CLIPS:
            raise argparse.ArgumentTypeError(f"unknown clip {name!r}; known: {', '.join(CLIPS)}")
    return names


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sizes",
        type=_sizes,
        default=None,
        help="resolutions, comma-separated, of 720, 1080, 2160, portrait (default: all)",
    )
    parser.add_argument("--frames", type=int, default=None, help="frames per clip (default 300)")
    parser.add_argument(
        "--frames-4k", type=int, default=None, help="frames per clip at 4K (default 60)"
    )
    parser.add_argument(
        "--clips",
        type=_clips,
        default=list(CLIPS),
        help=f"clips per resolution, comma-separated (default: {','.join(CLIPS)})",
    )
    parser.add_argument(
        "--fastest",
        type=_sizes,
        default=["720"],
        help="sizes that also run the fastest documented setting (default: 720; 'none')",
    )
    parser.add_argument(
        "--without-yunet",
        type=_sizes,
        default=["720"],
        help="sizes that also run the defaults with --no-yunet, for YuNet's cost (default: "
        "720; 'none')",
    )
    parser.add_argument(
        "--service",
        type=_sizes,
        default=None,
        help="sizes whose demo clip also runs through veil serve (default: 720; 'none')",
    )
    parser.add_argument(
        "--service-frames",
        type=int,
        default=None,
        help="frames of the service comparison's demo clip (default 600, 20 s: a job's "
        "fixed costs, the queue's pickup and the steps' start, weigh about as they do on "
        "real videos, which are longer still)",
    )
    parser.add_argument(
        "--deface",
        default=os.environ.get("VEIL_DEFACE", "/opt/deface-venv/bin/deface"),
        help="deface command (default: $VEIL_DEFACE or /opt/deface-venv/bin/deface, "
        "else deface on PATH)",
    )
    parser.add_argument("--no-deface", action="store_true", help="skip deface even if found")
    parser.add_argument("--per-clip", action="store_true", help="also a row per clip and run")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 720p and portrait, 30 frames a clip (action too), unless given otherwise",
    )
    args = parser.parse_args()
    args.sizes = args.sizes or (["720", "portrait"] if args.quick else list(SIZES))
    args.frames = args.frames or (30 if args.quick else 300)
    args.frames_4k = args.frames_4k or (10 if args.quick else 60)
    args.service_frames = args.service_frames or (args.frames if args.quick else 600)
    args.service = ["720"] if args.service is None else args.service

    veil = shutil.which("veil") or sys.exit("veil is not installed: pip install -e '.[samples]'")
    deface = None
    if not args.no_deface:
        deface = args.deface if Path(args.deface).exists() else shutil.which("deface")
    _header(args, deface)
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="veil-bench-") as tmp:
        for size in args.sizes:
            bench_size(size, args, veil, deface, Path(tmp))
            sys.stdout.flush()
    print(f"\nbenchmark took {time.perf_counter() - began:.0f} s")


def clip_jobs(
    clip: Path, work: Path, veil: str, deface: str | None, fastest: bool, no_yunet: bool
) -> list[tuple[str, list[str], Path]]:
    """``(run name, argv, output)`` of every run on ``clip``."""
    info = probe(clip)
    orientation = [str(info.rotation), "1" if info.mirrored else "0"]

    def plain(preset: str, output: Path) -> list[str]:
        return [sys.executable, "-c", PLAIN_TRANSCODE, str(clip), str(output), preset, *orientation]

    def blur(output: Path, *options: str) -> list[str]:
        return [veil, "blur", str(clip), "-o", str(output), "-q", *options]

    jobs = [
        (PLAIN, plain("fast", work / "plain.mp4"), work / "plain.mp4"),
        (PLAIN_VERYFAST, plain("veryfast", work / "plainvf.mp4"), work / "plainvf.mp4"),
        (VEIL, blur(work / "veil.mp4"), work / "veil.mp4"),
    ]
    if fastest:
        jobs.append((VEIL_FASTEST, blur(work / "fast.mp4", *FASTEST), work / "fast.mp4"))
    if no_yunet:
        jobs.append((VEIL_NO_YUNET, blur(work / "noyunet.mp4", "--no-yunet"), work / "noyunet.mp4"))
    if deface:
        argv = [deface, str(clip), "-o", str(work / "deface.mp4")]
        jobs.append((DEFACE, argv, work / "deface.mp4"))
    return jobs


def bench_size(
    size: str, args: argparse.Namespace, veil: str, deface: str | None, work: Path
) -> None:
    """Every clip and run at one resolution, its table, and the service cost."""
    label, width, height = SIZES[size]
    frames = args.frames_4k if size == "2160" else args.frames
    rotation = 90 if width < height else 0
    totals: dict[str, int] = {}
    runs: list[Run] = []
    lengths = {kind: frames for kind in args.clips}
    if "action" in lengths and not args.quick:
        lengths["action"] = max(frames, ACTION_FRAMES)
    for kind in args.clips:
        scene = make_scene(kind, width, height, lengths[kind])
        clip = work / f"{kind}-{size}.mp4"
        write_video(clip, scene, rotation=rotation)
        jobs = clip_jobs(clip, work, veil, deface, size in args.fastest, size in args.without_yunet)
        done = [measure(name, kind, lengths[kind], argv, output) for name, argv, output in jobs]
        totals[kind] = count_visible(scene, done)
        runs += done
        for r in done:
            r.output.unlink(missing_ok=True)
        clip.unlink()
    stored = f" (stored {height}x{width}, rotated {rotation}°)" if rotation else ""
    counts = ", ".join(f"{k} {lengths[k]} frames, {v} face-frames" for k, v in totals.items())
    print_table(
        f"{label} {width}x{height}{stored}, {sum(lengths.values())} frames and "
        f"{sum(totals.values())} face-frames in all: {counts}",
        args.clips,
        totals,
        runs,
        args.per_clip,
    )
    for r in runs:
        if r.error:
            print(f"  {r.name} on {r.clip} failed: {r.error}")
    if size in args.service:
        scene = make_scene("demo", width, height, args.service_frames)
        demo = work / f"demo-{size}.mp4"
        write_video(demo, scene, rotation=rotation)
        service_cost(veil, demo, scene, work)
        demo.unlink()


if __name__ == "__main__":
    main()
