"""Heartbeats: live service processes notice dead ones and recover their jobs.

DBOS resumes a process's unfinished workflows only when a process with the same
executor ID (``ServiceConfig.worker_id``) starts again, so a worker that never comes back
would leave the jobs it was running PENDING forever. Instead, every service process
(``veil serve``, ``veil worker``) counts up its row of ``veil_heartbeats`` in the job
database every ``interval`` seconds and watches the others' rows. An executor whose
count has not moved for ``timeout`` seconds is dead: one live process claims it and asks
DBOS to recover its workflows, which puts each PENDING one back on its queue; any worker
then takes it and resumes it after its last finished step.

Exactly once, in three parts:

- *One claimant.* A claim is ``UPDATE ... SET beats = beats + 1 WHERE beats = <the count
  seen>``: of all the processes that saw the same silence, one updates the row. The bump
  also renews the silence, so if the claimant dies before it recovers anything, the
  others see the dead executor go quiet again and claim it once more.
- *One recovery.* DBOS re-enqueues only workflows still PENDING under the dead
  executor's ID; the worker that dequeues one takes it over under its own ID, so a second
  recovery finds nothing.
- *One outcome.* Should the dead process only have been stalled and wake up, DBOS
  refuses its step results and its ending (each execution holds an owner token that
  recovery revoked); the job's steps may run twice then, but each is recorded once.

Liveness is a counter, not a timestamp: each watcher times the silence on its own
monotonic clock, so machines whose clocks disagree do not declare each other dead.

Each process also removes the work folders of jobs that are over (``sweep``): a process
killed mid-job leaves its files behind, and the job ends elsewhere.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from pathlib import Path

import sqlalchemy as sa

from veil import jobs
from veil.db import create_tables
from veil.errors import OptionError
from veil.settings import HEARTBEAT_INTERVAL, HEARTBEAT_TIMEOUT

log = logging.getLogger("veil.heartbeats")


class Heartbeats:
    """This process's heartbeat and its watch over the others, in the job database."""

    def __init__(
        self,
        url: str,
        executor_id: str,
        *,
        interval: float = HEARTBEAT_INTERVAL,
        timeout: float = HEARTBEAT_TIMEOUT,
        work_dir: Path | None = None,
    ) -> None:
        if not 0 < interval < timeout:
            raise OptionError(
                f"the heartbeat interval ({interval} s) must be above 0 and under the "
                f"heartbeat timeout ({timeout} s): check --heartbeat-interval and "
                "--heartbeat-timeout"
            )
        self.executor_id = executor_id
        self.interval = interval
        self.timeout = timeout
        self.work_dir = work_dir
        self.engine = sa.create_engine(url, pool_pre_ping=True)
        self.table = sa.Table(
            "veil_heartbeats",
            sa.MetaData(),
            sa.Column("executor_id", sa.String(255), primary_key=True),
            sa.Column("beats", sa.BigInteger, nullable=False),
            # The writer's clock, for people reading the table; liveness is judged on beats.
            sa.Column("beat_at", sa.Float, nullable=False),
        )
        create_tables(self.table.metadata, self.engine)
        self._seen: dict[str, tuple[int, float]] = {}
        """Executor → (its count, when this process saw that count first, monotonic)."""
        self._beaten = False
        self._stop = threading.Event()
        self._draining = threading.Event()
        self._thread: threading.Thread | None = None

    def beat(self) -> None:
        """Count one more beat of this process, making its row if it has none."""
        t = self.table
        with self.engine.begin() as conn:
            updated = conn.execute(
                t.update()
                .where(t.c.executor_id == self.executor_id)
                .values(beats=t.c.beats + 1, beat_at=time.time())
            ).rowcount
        if updated:
            self._beaten = True
            return
        if self._beaten:
            log.warning(
                "worker %s was taken for dead (no heartbeat for %.0f s): its running jobs "
                "were handed to other workers",
                self.executor_id,
                self.timeout,
            )
        self._insert(self.executor_id)
        self._beaten = True

    def _insert(self, executor_id: str) -> None:
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    self.table.insert().values(
                        executor_id=executor_id, beats=0, beat_at=time.time()
                    )
                )
        except sa.exc.IntegrityError:
            pass  # another process made the row first: it is there, as wanted

    def check(self) -> list[str]:
        """Recover the jobs of every executor silent for ``timeout`` seconds that this
        process claims; returns those executors."""
        from dbos import DBOS

        pending = DBOS.list_workflows(status="PENDING", load_input=False, load_output=False)
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(self.table.c.executor_id, self.table.c.beats))
            beats = {executor: int(count) for executor, count in rows}
        # A PENDING job whose executor has no row (a process from before heartbeats, or one
        # whose row was removed) gets a row, so its silence is timed like anyone's.
        for owner in {s.executor_id for s in pending if s.executor_id} - beats.keys():
            self._insert(owner)
            beats.setdefault(owner, 0)
        now = time.monotonic()
        claimed = []
        for executor, count in beats.items():
            seen = self._seen.get(executor)
            if executor == self.executor_id or seen is None or seen[0] != count:
                self._seen[executor] = (count, now)
            elif now - seen[1] >= self.timeout and self._claim(executor, count):
                self._recover(executor, count + 1)
                claimed.append(executor)
        for gone in self._seen.keys() - beats.keys():
            del self._seen[gone]
        return claimed

    def _claim(self, executor: str, count: int) -> bool:
        t = self.table
        with self.engine.begin() as conn:
            won = conn.execute(
                t.update()
                .where(t.c.executor_id == executor, t.c.beats == count)
                .values(beats=count + 1)
            ).rowcount
        return bool(won)

    def _recover(self, executor: str, count: int) -> None:
        handed = hand_back(executor)
        if handed:
            log.warning(
                "worker %s is silent for %.0f s: %d of its jobs handed back to the queue",
                executor,
                self.timeout,
                handed,
            )
        # Its row goes; if a job of its could not be handed back, the next check makes a
        # new row and tries again after another timeout. If the executor beat since the
        # claim, it is alive and keeps its row.
        t = self.table
        with self.engine.begin() as conn:
            conn.execute(t.delete().where(t.c.executor_id == executor, t.c.beats == count))

    def sweep(self) -> None:
        """Remove the work folders of jobs that are over or purged, whoever ran them.
        Anything else there (uploads being received) is not a job's and stays."""
        from dbos import DBOS

        if self.work_dir is None or not self.work_dir.is_dir():
            return
        for folder in self.work_dir.iterdir():
            status = DBOS.get_workflow_status(folder.name)
            if status is None:
                # A job's folder whose job is gone (purged while a cancelled step still
                # wrote): no one will end it. Other folders (uploads) are not jobs'.
                if folder.name.startswith(jobs.JOB_ID_PREFIXES):
                    shutil.rmtree(folder, ignore_errors=True)
            elif jobs.state_of(status) not in (jobs.JobStatus.QUEUED, jobs.JobStatus.RUNNING):
                shutil.rmtree(folder, ignore_errors=True)

    def start(self) -> None:
        """Beat and watch in a thread until ``stop``; DBOS must be launched."""
        self._thread = threading.Thread(target=self._run, name="veil-heartbeats", daemon=True)
        self._thread.start()
        _running.append(self)

    def draining(self) -> None:
        """Keep beating but take nothing over: this process is stopping (``DBOS`` is
        going), and its own running steps must not be taken for a dead process's."""
        self._draining.set()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.beat()
                if self._draining.is_set():
                    continue
                self.check()
                self.sweep()
            except Exception as exc:
                # Whatever went wrong (the database away for a while), the next round tries
                # again: a heartbeat thread that died would get this process taken for dead.
                log.warning("heartbeat of %s failed: %s", self.executor_id, exc)

    def stop(self) -> None:
        """Stop beating and remove this process's row. Jobs it leaves unfinished are
        recovered by its next start under the same ID, or by a live process after
        ``timeout`` seconds."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        t = self.table
        try:
            with self.engine.begin() as conn:
                conn.execute(t.delete().where(t.c.executor_id == self.executor_id))
        finally:
            self.engine.dispose()


_running: list[Heartbeats] = []


def drain() -> None:
    """Let the heartbeats ``Heartbeats.start`` started in this process only beat."""
    for beats in _running:
        beats.draining()


def stop() -> None:
    """Stop the heartbeats ``Heartbeats.start`` started in this process."""
    while _running:
        _running.pop().stop()


def hand_back(executor: str) -> int:
    """Hand the unfinished workflows of a dead process (DBOS executor ``executor``) to
    this one, which resumes each at the step it was in; how many. The one place veil
    calls into DBOS's private API (what its admin endpoint for recovery calls, public in
    no release yet): ``dbos`` is pinned below its next minor release, and
    tests/test_heartbeats.py holds this call to its contract."""
    from dbos import DBOS

    return len(DBOS._recover_pending_workflows([executor]))
