"""Faults and load: real ``veil serve`` and ``veil worker`` processes on a real PostgreSQL,
workers killed with SIGKILL and never coming back under their IDs; every job still ends
once, through the heartbeats (``veil.heartbeats``)."""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import dbos
import pytest
import sqlalchemy as sa
from servers import VeilWorker, enqueue, wait_for

from veil import runtime
from veil.jobs import WORKFLOW_NAME
from veil.synthetic import MovingFace, Scene, write_video

# A dead worker is noticed after 4 s of silence instead of 30 s.
# Short heartbeats, so a dead worker is noticed in seconds.
HEARTBEAT = ["--heartbeat-interval", "0.5", "--heartbeat-timeout", "4"]


def query(url: str, sql: str, **params: Any) -> list[Any]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.text(sql), params).all())
    finally:
        engine.dispose()


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def frame_count(path: Path) -> int:
    """Frames decoded from the whole file: a truncated or damaged output raises or falls short."""
    import av

    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def ended(database: str, job_id: str) -> str | None:
    """The job's DBOS status once it ended; ``None`` while it is queued or running."""
    rows = query(
        database, "SELECT status FROM dbos.workflow_status WHERE workflow_uuid = :id", id=job_id
    )
    return str(rows[0][0]) if rows[0][0] not in ("ENQUEUED", "PENDING") else None


def launched(database: str, worker_id: str | None) -> bool:
    """Whether the worker has launched: its heartbeat thread, started last, has beaten."""
    try:
        rows = query(
            database,
            "SELECT beats FROM veil_heartbeats WHERE executor_id = :id",
            id=worker_id,
        )
    except sa.exc.ProgrammingError:
        return False  # no table yet
    return bool(rows and rows[0][0] > 0)


def test_dead_workers_job_is_finished_by_another(postgres, tmp_path):
    """Worker A is killed with SIGKILL in the middle of a job and no process with its ID
    ever comes back; of two workers started afterwards, exactly one takes A for dead and
    hands its job back to the queue, and the job finishes once, without redoing the step
    A had finished."""
    inbox, outbox = tmp_path / "in", tmp_path / "out"
    inbox.mkdir()
    outbox.mkdir()
    scene = Scene(
        width=640,
        height=360,
        frames=300,
        faces=(MovingFace(height=40, start=(0.3, 0.4), end=(0.6, 0.5)),),
    )
    video = write_video(inbox / "long.mp4", scene, audio=False)
    before = digest(video.path)
    db = postgres.url
    shared = ["--input", str(inbox), "--output", str(outbox), "--database", db, *HEARTBEAT]

    doomed = VeilWorker(tmp_path / "a", *shared, worker_id="worker-a").start()
    watchers: list[VeilWorker] = []
    try:
        wait_for(lambda: launched(db, "worker-a"), 60, "worker A to launch")
        job_id = enqueue(db, inbox, "long.mp4")

        def redacting() -> bool:
            rows = query(
                db,
                "SELECT p.step, p.frames_done, w.executor_id, w.status"
                " FROM veil_progress p JOIN dbos.workflow_status w ON w.workflow_uuid = p.job_id"
                " WHERE p.job_id = :id",
                id=job_id,
            )
            if not rows:
                return False
            step, done, executor, status = rows[0]
            assert (executor, status) == ("worker-a", "PENDING"), rows
            return bool(step == "Redact" and done > 0)

        wait_for(redacting, 120, "worker A to be redacting", interval=0.05)
        doomed.kill()
        killed_at = time.time()

        watchers = [
            VeilWorker(tmp_path / name, *shared, worker_id=f"worker-{name}").start()
            for name in ("b", "c")
        ]

        def ended() -> Any:
            rows = query(
                db,
                "SELECT status, executor_id FROM dbos.workflow_status WHERE workflow_uuid = :id",
                id=job_id,
            )
            return rows[0] if rows[0][0] not in ("ENQUEUED", "PENDING") else None

        status, executor = wait_for(ended, 120, "the job to end")
        # A's row goes once its jobs are handed back: the watchers forget the dead.
        wait_for(
            lambda: not query(db, "SELECT 1 FROM veil_heartbeats WHERE executor_id = 'worker-a'"),
            30,
            "worker A's heartbeat row to be removed",
        )
    finally:
        for w in watchers:
            w.stop()
        doomed.kill()

    assert status == "SUCCESS"
    assert executor in ("worker-b", "worker-c")
    recoveries = [w for w in watchers if "worker worker-a is silent" in w.log()]
    assert len(recoveries) == 1, [w.log()[-2000:] for w in watchers]

    steps = query(
        db,
        "SELECT function_name, completed_at_epoch_ms FROM dbos.operation_outputs"
        " WHERE workflow_uuid = :id AND function_name IN ('Validate', 'Redact', 'Audit', 'Publish')"
        " ORDER BY function_id",
        id=job_id,
    )
    assert [name for name, _ in steps] == ["Validate", "Redact", "Audit", "Publish"]
    done = dict(steps)
    # Validate, finished before the kill, was not done again; Redact, cut short, was.
    assert done["Validate"] / 1000 < killed_at < done["Redact"] / 1000
    assert frame_count(outbox / "long.mp4") == scene.frames
    assert (outbox / "long.mp4.faces.json").stat().st_size > 0
    assert digest(video.path) == before
    assert not list(outbox.glob(".*"))  # no partial upload
    # The finishing worker tidied its own work folder; A's is a dead machine's disk.
    for w in watchers:
        assert not list((w.data / "work").iterdir())


def leftovers(work_dirs: list[Path]) -> list[Path]:
    """Files in the work folders, and folders of jobs (the API receives uploads in
    work/uploads, which stays)."""
    found: list[Path] = []
    for folder in work_dirs:
        # os.walk skips a folder the workers remove while we look; wait_for looks again.
        for root, dirs, files in os.walk(folder):
            found += [Path(root, name) for name in files]
            if Path(root) == folder:
                found += [Path(root, name) for name in dirs if name != "uploads"]
    return found


UPLOADS = 50
"""Half through the API, half dropped into the input bucket, all at once."""
KILL_EVERY = (1.0, 2.5)
"""Seconds between kills, drawn at random (seeded)."""


def tiny_scene(i: int) -> Scene:
    """Upload ``i``'s clip: 64x48 to 160x120, 30 to 90 frames, a face moving across."""
    size = i % 7
    width, height = 64 + 16 * size, 48 + 12 * size
    return Scene(
        width=width,
        height=height,
        frames=30 + 7 * i % 61,
        faces=(MovingFace(height=max(16, height // 3), start=(0.35, 0.5), end=(0.6, 0.45)),),
    )


def test_uploads_finish_once_while_workers_are_killed(postgres, tmp_path):
    """50 small uploads through the API and the input bucket at once; veil serve and two
    veil workers on PostgreSQL; every second or two a worker busy with a job is killed
    with SIGKILL and replaced by one under a new ID, so only the heartbeats can recover
    its job. Every job ends SUCCEEDED once, every output is whole, no input changed and
    no work files are left."""
    import random
    from concurrent.futures import Future, ThreadPoolExecutor

    from servers import VeilServer

    rng = random.Random(9)
    src, inbox, outbox = tmp_path / "src", tmp_path / "in", tmp_path / "out"
    for folder in (src, inbox, outbox):
        folder.mkdir()
    frames = {}
    for i in range(UPLOADS):
        key = f"{'api' if i % 2 else 'drop'}-{i:02d}.mp4"
        frames[key] = tiny_scene(i).frames
        write_video(src / key, tiny_scene(i), audio=i % 3 == 0)
    digests = {key: digest(src / key) for key in frames}
    db = postgres.url
    # Faults, not audits, are under test: a tiny clip the audit holds for review would
    # end NEEDS_REVIEW instead of publishing (the audit has tests of its own).
    shared = [
        "--input",
        str(inbox),
        "--output",
        str(outbox),
        "--database",
        db,
        "--on-audit-finding",
        "publish",
        *HEARTBEAT,
    ]

    def worker(slot: int, generation: int) -> VeilWorker:
        # The slot's data folder is reused (a new process on the same machine), its ID never.
        return VeilWorker(tmp_path / f"w{slot}", *shared, worker_id=f"w{slot}-{generation}").start()

    server = VeilServer(tmp_path / "s", *shared, "--worker-id", "serve", "--poll-interval", "0.5")
    workers: list[VeilWorker] = []
    kills = 0
    started = time.monotonic()
    try:
        # One after the other: two processes making the job tables of a new database at
        # once collide (ProgressStore's CREATE TABLE).
        server.start()
        workers = [worker(slot, 0) for slot in range(2)]
        for w in workers:
            wait_for(functools.partial(launched, db, w.worker_id), 60, "a worker to launch")

        def upload(key: str) -> str:
            r = server.post("/api/uploads", files={"file": (key, (src / key).read_bytes())})
            assert r.status_code == 202, r.text
            return str(r.json()["id"])

        def drop(key: str) -> None:
            # Written aside, then renamed in: the bucket never shows a half-copied object.
            shutil.copy(src / key, inbox / f".{key}")
            (inbox / f".{key}").rename(inbox / key)

        with ThreadPoolExecutor(8) as pool:
            uploads = [pool.submit(upload, key) for key in frames if key.startswith("api")]
            drops = [pool.submit(drop, key) for key in frames if key.startswith("drop")]
            submitted: list[Future[Any]] = [*uploads, *drops]

            def finished() -> bool:
                rows = query(
                    db,
                    "SELECT status FROM dbos.workflow_status WHERE name = :name",
                    name=WORKFLOW_NAME,
                )
                states = [status for (status,) in rows]
                return len(states) == UPLOADS and not {"ENQUEUED", "PENDING"} & set(states)

            next_kill = time.monotonic() + rng.uniform(*KILL_EVERY)
            generation = 1
            while not finished():
                assert time.monotonic() - started < 240, "the jobs did not finish in 4 minutes"
                for future in submitted:
                    if future.done():
                        future.result()  # an upload that failed fails the test now
                if time.monotonic() >= next_kill:
                    busy = {
                        executor
                        for (executor,) in query(
                            db,
                            "SELECT executor_id FROM dbos.workflow_status WHERE status = 'PENDING'",
                        )
                    }
                    # Only a worker in the middle of a job: that job must be recovered.
                    slots = [s for s, w in enumerate(workers) if w.worker_id in busy]
                    if slots:
                        slot = rng.choice(slots)
                        workers[slot].kill()
                        kills += 1
                        workers[slot] = worker(slot, generation)
                        generation += 1
                        next_kill = time.monotonic() + rng.uniform(*KILL_EVERY)
                time.sleep(0.2)
            api_ids = [future.result() for future in uploads]
        jobs = server.jobs()
        live = {"serve", *(w.worker_id for w in workers)}
        # Dead workers' rows are claimed and removed; the swept work folders empty.
        wait_for(
            lambda: {r[0] for r in query(db, "SELECT executor_id FROM veil_heartbeats")} == live,
            60,  # the last one killed needs its 4 s of silence and a check: slow on a busy machine
            "only the live processes' heartbeat rows",
        )
        work_dirs = [server.data / "work", *(tmp_path / f"w{slot}" / "work" for slot in (0, 1))]
        wait_for(lambda: not leftovers(work_dirs), 30, "the work folders to be emptied")
    finally:
        server.stop()
        for w in workers:
            w.stop()
    elapsed = time.monotonic() - started

    # Every upload is one job, and every job succeeded once.
    assert sorted(j["key"] for j in jobs) == sorted(frames)
    assert {j["status"] for j in jobs} == {"SUCCEEDED"}
    ids = {j["id"] for j in jobs}
    assert len(ids) == UPLOADS and set(api_ids) <= ids
    rows = query(
        db,
        "SELECT workflow_uuid, status, recovery_attempts FROM dbos.workflow_status"
        " WHERE name = :name",
        name=WORKFLOW_NAME,
    )
    assert sorted(r[0] for r in rows) == sorted(ids)
    assert {r[1] for r in rows} == {"SUCCESS"}
    # Each step's result recorded once per job (a step cut short by a kill was redone,
    # but only the run that finished counts).
    steps = query(
        db,
        "SELECT workflow_uuid, function_name, count(*) FROM dbos.operation_outputs"
        " WHERE function_name IN ('Validate', 'Redact', 'Audit', 'Publish')"
        " GROUP BY workflow_uuid, function_name",
    )
    assert len(steps) == 4 * UPLOADS and {r[2] for r in steps} == {1}
    # Killed workers' jobs were taken over through the heartbeats: dequeued again. (Runs
    # here: 6 to 10 kills, 4 to 7 jobs recovered, in 21 to 34 s.)
    recovered = sum(1 for r in rows if r[2] >= 2)
    assert kills >= 4 and recovered >= 3, f"{kills} kills, {recovered} recovered in {elapsed:.0f} s"
    logs = server.log() + "".join(w.log() for w in workers)
    assert "jobs handed back to the queue" in logs

    # One object per output, whole: as many frames as its input; nothing half-written
    # left. (Publish is recorded once per job; a worker killed inside it after its upload
    # would have the same bytes uploaded again to the same key by the recovered run.)
    assert sorted(p.name for p in outbox.iterdir()) == sorted(
        [*frames, *(f"{key}.faces.json" for key in frames)]
    )
    for key, count in frames.items():
        assert frame_count(outbox / key) == count, key
    # No input changed.
    assert {key: digest(inbox / key) for key in frames} == digests
    assert sorted(p.name for p in inbox.iterdir()) == sorted(frames)


def test_a_killed_workers_segment_is_redone_once_by_another(postgres, tmp_path):
    """A long job in segments on two workers: worker A is killed with SIGKILL while it
    processes a segment; worker B takes A for dead, finishes that segment (and the job,
    if A held it), and every segment is recorded done exactly once; the output is the
    one-piece run's, frame for frame and box for box."""
    import json

    from segment_clips import keyed_clip

    from veil.pipeline import BlurOptions, blur_video

    inbox, outbox = tmp_path / "in", tmp_path / "out"
    inbox.mkdir()
    outbox.mkdir()
    scene = Scene(
        width=640,
        height=360,
        frames=300,
        faces=(MovingFace(height=48, start=(0.1, 0.4), end=(0.9, 0.5)),),
    )
    keyed_clip(inbox / "long.mp4", scene, every=30)
    db = postgres.url
    shared = [
        "--input",
        str(inbox),
        "--output",
        str(outbox),
        "--database",
        db,
        "--segment-seconds",
        "2",
        *HEARTBEAT,
    ]
    doomed = VeilWorker(tmp_path / "a", *shared, worker_id="worker-a").start()
    survivor = VeilWorker(tmp_path / "b", *shared, worker_id="worker-b").start()
    try:
        for worker_id in ("worker-a", "worker-b"):
            wait_for(functools.partial(launched, db, worker_id), 60, f"{worker_id} to launch")
        job_id = enqueue(db, inbox, "long.mp4")

        def a_in_a_segment() -> bool:
            rows = query(
                db,
                "SELECT p.frames_done FROM veil_progress p"
                " JOIN dbos.workflow_status w ON w.workflow_uuid = p.job_id"
                " WHERE w.name = 'veil.segment' AND w.executor_id = 'worker-a'"
                " AND w.status = 'PENDING' AND p.step = 'Segment'",
            )
            return any(done > 0 for (done,) in rows)

        wait_for(a_in_a_segment, 120, "worker A to be in a segment", interval=0.05)
        doomed.kill()

        status = wait_for(functools.partial(ended, db, job_id), 240, "the job to end")
    finally:
        survivor.stop()
        doomed.kill()

    assert status == "SUCCESS", survivor.log()[-3000:]
    segments = query(
        db,
        "SELECT workflow_uuid, status, executor_id, recovery_attempts FROM dbos.workflow_status"
        " WHERE name = 'veil.segment' ORDER BY workflow_uuid",
    )
    assert len(segments) == 5 and {s[1] for s in segments} == {"SUCCESS"}, segments
    assert any(s[3] >= 2 for s in segments), "no segment was taken over"  # A's, redone
    recorded = query(
        db,
        "SELECT workflow_uuid, count(*) FROM dbos.operation_outputs"
        " WHERE function_name = 'Segment' GROUP BY workflow_uuid",
    )
    assert len(recorded) == 5 and {n for _, n in recorded} == {1}, recorded

    whole, whole_faces = tmp_path / "whole.mp4", tmp_path / "whole.faces.json"
    blur_video(inbox / "long.mp4", whole, BlurOptions(), faces_out=whole_faces)
    assert frame_count(outbox / "long.mp4") == scene.frames
    served = json.loads((outbox / "long.mp4.faces.json").read_text())
    assert served == json.loads(whole_faces.read_text())
    assert not (outbox / ".veil").exists() or not list((outbox / ".veil").rglob("*.*"))


def test_a_database_restart_under_running_jobs_fails_none(postgres, tmp_path):
    """PostgreSQL restarted (down 1.5 s) while a worker runs a job in one piece and one
    in segments: both wait the outage out and succeed (a progress update's database
    error used to fail the job for good, as if the video were bad)."""
    from segment_clips import keyed_clip

    inbox, outbox = tmp_path / "in", tmp_path / "out"
    inbox.mkdir()
    outbox.mkdir()
    face = (MovingFace(height=48, start=(0.1, 0.4), end=(0.9, 0.5)),)
    keyed_clip(inbox / "long.mp4", Scene(width=640, height=360, frames=300, faces=face), every=30)
    # Long enough to be still in Redact when a segment of the other starts, on a busy machine.
    write_video(inbox / "short.mp4", Scene(width=640, height=360, frames=150, faces=face))
    db = postgres.url
    shared = ["--input", str(inbox), "--output", str(outbox), "--database", db]
    more = ["--segment-seconds", "4", "--workers", "3", *HEARTBEAT]
    worker = VeilWorker(tmp_path / "w", *shared, *more, worker_id="w").start()
    try:
        wait_for(functools.partial(launched, db, "w"), 60, "the worker to launch")
        job_ids = [enqueue(db, inbox, key) for key in ("short.mp4", "long.mp4")]

        def both_working() -> bool:
            # The short job in its Redact step and a segment of the long one in its own.
            rows = query(
                db,
                "SELECT job_id FROM veil_progress"
                " WHERE frames_done > 0 AND step IN ('Redact', 'Segment')",
            )
            names = {r[0] for r in rows}
            return job_ids[0] in names and any(n.startswith(f"{job_ids[1]}-s") for n in names)

        wait_for(both_working, 120, "both jobs to be under way", interval=0.05)
        postgres.restart(down=1.5)

        def ended() -> Any:
            rows = query(
                db,
                "SELECT workflow_uuid, status, error FROM dbos.workflow_status"
                " WHERE workflow_uuid IN (:a, :b)",
                a=job_ids[0],
                b=job_ids[1],
            )
            done = [r for r in rows if r[1] not in ("ENQUEUED", "PENDING")]
            return rows if len(done) == 2 else None

        statuses = wait_for(ended, 240, "both jobs to end")
    finally:
        worker.stop()
    assert {row[1] for row in statuses} == {"SUCCESS"}, (statuses, worker.log()[-3000:])
    assert sorted(p.name for p in outbox.glob("*.mp4")) == ["long.mp4", "short.mp4"]


def test_a_stopped_worker_hands_its_job_on_and_says_nothing_false(postgres, tmp_path):
    """SIGTERM to a worker in the middle of a long step: it takes no more work, lets the
    step go on for --stop-grace while it keeps beating, then exits within a bound. It
    printed "FAILED ... System database accessed before DBOS was launched" for a job
    that then succeeded, and its heartbeat went at once while its step ran on for 20 s,
    so another worker ran the same step at the same time."""
    inbox, outbox = tmp_path / "in", tmp_path / "out"
    inbox.mkdir()
    outbox.mkdir()
    face = (MovingFace(height=48, start=(0.1, 0.4), end=(0.9, 0.5)),)
    write_video(inbox / "long.mp4", Scene(width=640, height=360, frames=600, faces=face))
    db = postgres.url
    shared = ["--input", str(inbox), "--output", str(outbox), "--database", db, *HEARTBEAT]
    stopped = VeilWorker(tmp_path / "a", *shared, "--stop-grace", "2", worker_id="a").start()
    taker: VeilWorker | None = None
    try:
        wait_for(functools.partial(launched, db, "a"), 60, "worker a to launch")
        job_id = enqueue(db, inbox, "long.mp4")

        def redacting() -> bool:
            rows = query(
                db,
                "SELECT frames_done FROM veil_progress WHERE job_id = :id AND step = 'Redact'",
                id=job_id,
            )
            return bool(rows and rows[0][0] > 0)

        wait_for(redacting, 120, "worker a to be in Redact", interval=0.05)
        assert stopped.proc is not None
        sent = time.monotonic()
        stopped.proc.terminate()
        # Beating through its grace: nobody may take it for dead while its step runs.
        time.sleep(1.0)
        beats = query(db, "SELECT beats FROM veil_heartbeats WHERE executor_id = 'a'")
        assert beats, "worker a's heartbeat went before it stopped"
        try:
            stopped.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pytest.fail(f"worker a did not stop in 30 s:\n{stopped.log()[-5000:]}")
        took = time.monotonic() - sent
        assert took < 15, f"worker a took {took:.1f} s to stop"
        log = stopped.log()
        assert "FAILED" not in log, log[-3000:]
        assert f"{job_id}  stopped with this process; another will resume it" in log, log[-3000:]

        taker = VeilWorker(tmp_path / "b", *shared, worker_id="b").start()

        status = wait_for(functools.partial(ended, db, job_id), 240, "the job to end")
        assert status == "SUCCESS", taker.log()[-3000:]
    finally:
        stopped.kill()
        if taker is not None:
            taker.stop()
    redacts = query(
        db,
        "SELECT count(*) FROM dbos.operation_outputs"
        " WHERE workflow_uuid = :id AND function_name = 'Redact'",
        id=job_id,
    )
    assert redacts[0][0] == 1
    assert frame_count(outbox / "long.mp4") == 600


def test_a_stop_that_dbos_holds_up_still_ends_and_says_where(monkeypatch, capfd, caplog):
    """A DBOS thread that does not stop (seen once in CI: a worker still there 30 s after
    SIGTERM with a 2 s grace) may not keep the process: it stops within the bound, with
    the stacks of its threads on stderr to say which one held it."""
    release = threading.Event()
    monkeypatch.setattr(dbos.DBOS, "destroy", lambda **_: release.wait())
    monkeypatch.setattr(runtime, "STOP_BOUND", 0.5)
    began = time.monotonic()
    try:
        runtime.shutdown(grace=0)
        took = time.monotonic() - began
    finally:
        release.set()
    assert took < 5
    assert "took over 0.5 s to stop" in caplog.text
    assert "test_faults.py" in capfd.readouterr().err  # the held-up thread's stack
