"""Segment-parallel jobs: one long video through ``veil worker`` processes on PostgreSQL,
in one piece on one worker against in segments on two, each worker pinned to one core.

Usage::

    python bench/segments.py                     # a 10-minute 720p clip, 60 s segments
    python bench/segments.py --minutes 2 --segment-seconds 20

What it does, every number from this one run on this machine:

* Makes a 720p clip with ``veil.synthetic`` (the demo scene's faces, moving, looped for
  ``--minutes``), with a keyframe every 2 s as cameras write them, and a tone.
* Starts a PostgreSQL cluster (Debian's server, as the tests do) and, for each run, a
  fresh database: the job is enqueued from outside any worker (DBOS's client), so only
  the workers started for the run take it.
* One piece: one ``veil worker --segment-seconds 0`` pinned to core 0 (``taskset``).
* Segments: two ``veil worker --segment-seconds S`` pinned to cores 0 and 1.
* Wall time from enqueue to the job's end, as the job database records it; CPU time of
  the worker processes over the run (``/proc``, threads included).
* From the segmented job's records: per segment, frames of its own and frames decoded
  and analysed in all (the margin's cost), its seconds (its blur, then its piece's
  audit); the Join step's seconds. And the model of N machines: ``wall(N) = validate +
  (segments' work)/N + join + report + publish``, with the N at which the join costs as
  much as the segments.

Targets (issue 11): segments on two workers at most 0.55x the one-piece wall time;
CPU time with segments at most 1.1x without. Run nothing else meanwhile. On this kind of
2-core machine the second core is worth about a third of the first: see
docs/benchmarks.md for what that means for the wall-time ratio.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from servers import enqueue, postgres_cluster, wait_for

from veil.jobs import SEGMENT_WORKFLOW
from veil.synthetic import demo_scene

HEARTBEAT = ["--heartbeat-interval", "1", "--heartbeat-timeout", "30"]


def make_clip(path: Path, minutes: float, fps: int = 30) -> int:
    """A 720p clip of ``minutes``: the demo scene's 10 s, looped, keyframes every 2 s."""
    scene = demo_scene(1280, 720, frames=300, fps=fps)
    frames = round(minutes * 60 * fps)
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = 1280, 720, "yuv420p"
        video.options = {"crf": "20", "preset": "veryfast", "g": str(2 * fps)}
        sound = out.add_stream("aac", rate=48000)
        sound.layout = "mono"
        pictures = [scene.render(i)[0] for i in range(scene.frames)]
        samples = 0
        for i in range(frames):
            picture = av.VideoFrame.from_ndarray(pictures[i % scene.frames], format="rgb24")
            picture.pts = i
            out.mux(video.encode(picture))
            while samples < (i + 1) * 48000 // fps:
                tone = np.sin(np.arange(samples, samples + 1024) * 2 * np.pi * 440 / 48000) * 8000
                chunk = av.AudioFrame.from_ndarray(
                    tone.astype(np.int16).reshape(1, -1), format="s16", layout="mono"
                )
                chunk.sample_rate, chunk.pts, chunk.time_base = 48000, samples, Fraction(1, 48000)
                out.mux(sound.encode(chunk))
                samples += 1024
        out.mux(video.encode(None))
        out.mux(sound.encode(None))
    return frames


def cpu_seconds(pid: int) -> float:
    """User and system CPU seconds of a process so far, all its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(
    pg: Any, name: str, clip: Path, cores: list[int], segment_seconds: float, work: Path
) -> dict[str, Any]:
    """One job through workers pinned to ``cores``; its wall and CPU time and records."""
    database = pg.url.rsplit("/", 1)[0] + f"/{name}"
    admin = sa.create_engine(pg.url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    admin.dispose()
    inbox, outbox = work / name / "in", work / name / "out"
    inbox.mkdir(parents=True)
    outbox.mkdir()
    shutil.copy(clip, inbox / clip.name)
    shared = ["--input", str(inbox), "--output", str(outbox), "--database", database]
    workers = []
    for core in cores:
        args = [
            "taskset", "-c", str(core), sys.executable, "-m", "veil.cli", "worker",
            "--data", str(work / name / f"w{core}"), *shared, *HEARTBEAT,
            "--segment-seconds", str(segment_seconds), "--worker-id", f"{name}-{core}",
        ]  # fmt: skip
        log = (work / name / f"w{core}.log").open("wb")
        workers.append(subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT))
    engine = sa.create_engine(database)
    try:
        wait_for(lambda: _launched(engine, len(cores)), 120, "the workers to launch")
        cpu_before = sum(cpu_seconds(w.pid) for w in workers)
        started = time.time()
        job_id = enqueue(database, inbox, clip.name)
        status = wait_for(lambda: _ended(engine, job_id), 6 * 3600, "the job", interval=1)
        wall = time.time() - started
        cpu = sum(cpu_seconds(w.pid) for w in workers) - cpu_before
        records = _records(database, job_id)
    finally:
        for w in workers:
            w.terminate()
            w.wait(30)
        engine.dispose()
    if status != "SUCCESS":
        raise SystemExit(f"{name}: the job ended {status}; see {work / name}")
    return {"wall": wall, "cpu": cpu, **records}


def _launched(engine: sa.Engine, count: int) -> bool:
    try:
        with engine.connect() as conn:
            beats = conn.execute(sa.text("SELECT count(*) FROM veil_heartbeats WHERE beats > 0"))
            return bool(beats.scalar() == count)
    except sa.exc.ProgrammingError:
        return False


def _ended(engine: sa.Engine, job_id: str) -> str | None:
    with engine.connect() as conn:
        status = conn.execute(
            sa.text("SELECT status FROM dbos.workflow_status WHERE workflow_uuid = :id"),
            {"id": job_id},
        ).scalar()
    return None if status in (None, "ENQUEUED", "PENDING") else str(status)


def _step_seconds(steps: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Seconds by step name of a workflow's finished steps (DBOS's step records)."""
    seconds: dict[str, float] = {}
    for step in steps:
        began, ended = step.get("started_at_epoch_ms"), step.get("completed_at_epoch_ms")
        if began is not None and ended is not None:
            name = str(step["function_name"]).rsplit(".", 1)[-1]
            seconds[name] = seconds.get(name, 0.0) + (ended - began) / 1000
    return seconds


def _records(database: str, job_id: str) -> dict[str, Any]:
    """Each step's seconds (the job's and its segments'), and the segments' runs."""
    from dbos import DBOSClient

    client = DBOSClient(system_database_url=database, application_name="veil")
    try:
        segments = client.list_workflows(name=SEGMENT_WORKFLOW, load_input=False)
        steps = _step_seconds(client.list_workflow_steps(job_id))
        runs = [dict(s.output["run"]) for s in segments if isinstance(s.output, dict)]
        # A segment step's seconds: its blur (the run's own ``seconds``), its piece's
        # audit and the uploads.
        segment_steps = sum(
            sum(_step_seconds(client.list_workflow_steps(s.workflow_id)).values()) for s in segments
        )
    finally:
        client.destroy()
    return {"steps": steps, "runs": runs, "segment_steps": segment_steps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--segment-seconds", type=float, default=60.0)
    parser.add_argument("--keep", type=Path, help="Keep the work folder here.")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="veil-bench-segments-"))
    try:
        clip = work / "long.mp4"
        frames = make_clip(clip, args.minutes)
        print(f"clip: {args.minutes:g} min of 720p, {frames} frames", flush=True)
        with postgres_cluster() as pg:
            whole = run(pg, "whole", clip, [0], 0, work)
            print(
                f"one piece, 1 worker: {whole['wall']:.0f} s wall, {whole['cpu']:.0f} s CPU",
                flush=True,
            )
            split = run(pg, "split", clip, [0, 1], args.segment_seconds, work)
            print(f"segments, 2 workers: {split['wall']:.0f} s wall, {split['cpu']:.0f} s CPU")
        report(frames, args.segment_seconds, whole, split)
    finally:
        if args.keep:
            shutil.copytree(work, args.keep, dirs_exist_ok=True)
        shutil.rmtree(work, ignore_errors=True)


def report(frames: int, seconds: float, whole: dict[str, Any], split: dict[str, Any]) -> None:
    runs = split["runs"]
    decoded = sum(r["decoded"] for r in runs)
    own = sum(r["until"] - r["first"] for r in runs)
    blur_s = sum(r["seconds"] for r in runs)
    work_s = split["segment_steps"]
    steps = split["steps"]
    join = steps.get("Join", 0.0)
    fixed = sum(steps.get(s, 0.0) for s in ("Validate", "Audit", "Publish"))
    print()
    print("| run | wall s | x one piece | CPU s | x one piece |")
    print("| --- | --- | --- | --- | --- |")
    print(
        f"| one piece, 1 worker (1 core) | {whole['wall']:.0f} | 1.00 | {whole['cpu']:.0f} | 1.00 |"
    )
    print(
        f"| {len(runs)} segments of {seconds:g} s, 2 workers (1 core each) | {split['wall']:.0f} |"
        f" {split['wall'] / whole['wall']:.2f} | {split['cpu']:.0f} | {split['cpu'] / whole['cpu']:.2f} |"
    )
    print()
    print(
        f"segments: {len(runs)}, own frames {own} of {frames}; decoded in all {decoded}"
        f" (margins and keyframe lead-in: +{100 * (decoded - own) / max(own, 1):.1f}%)"
    )
    print(
        f"segment work: {work_s:.0f} s in all, {work_s / max(len(runs), 1):.1f} s a segment"
        f" (blur {blur_s:.0f} s; each piece's audit and the uploads {work_s - blur_s:.0f} s)"
    )
    print(
        "one piece's steps: "
        + ", ".join(f"{k} {v:.1f} s" for k, v in sorted(whole["steps"].items()))
    )
    print("job steps: " + ", ".join(f"{k} {v:.1f} s" for k, v in sorted(steps.items())))
    if join > 0:
        print(
            f"N machines: wall(N) ~ {fixed:.0f} + {work_s:.0f}/N + {join:.1f} s;"
            f" the join costs as much as the segments' share from N = {work_s / join:.0f}"
        )


if __name__ == "__main__":
    main()
