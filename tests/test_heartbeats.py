"""The contract of ``veil.heartbeats.hand_back``, veil's one call into DBOS's private API
(dead workers' jobs handed back to a live process): a DBOS upgrade that changes it fails
here, not in production. In-process, as ``test_workflow``; the kill -9 tests of
``test_faults`` exercise it end to end on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from harness import InProcess

from veil import heartbeats, runtime


@pytest.fixture(scope="module")
def veil(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcess]:
    running = InProcess(tmp_path_factory.mktemp("heartbeats"))
    yield running
    runtime.shutdown()


def test_a_dead_workers_job_is_handed_back_and_resumed(veil, clip):
    veil.input.objects["handed.mp4"] = clip.path.read_bytes()
    job_id = veil.call("POST", "/api/jobs", json={"key": "handed.mp4"}).json()["id"]
    assert veil.finished(job_id)["status"] == "SUCCEEDED"
    # As a worker killed mid-job leaves it: unfinished, and owned by that worker.
    engine = sa.create_engine(runtime.runtime().config.database_url)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE workflow_status SET status = 'PENDING', executor_id = 'gone'"
                " WHERE workflow_uuid = :id"
            ),
            {"id": job_id},
        )
    assert heartbeats.hand_back("someone-else") == 0
    assert heartbeats.hand_back("gone") == 1
    # Resumed here, from its recorded steps: it ends as it ended, without running again.
    job = veil.finished(job_id)
    assert job["status"] == "SUCCEEDED", job
    with engine.connect() as conn:
        owner = conn.execute(
            sa.text("SELECT executor_id FROM workflow_status WHERE workflow_uuid = :id"),
            {"id": job_id},
        ).scalar_one()
    engine.dispose()
    assert owner == runtime.runtime().config.worker_id
