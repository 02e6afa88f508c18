"""Job records: DBOS states mapped once, IDs, history and progress (on a real SQLite)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from veil.jobs import (
    JobStatus,
    ProgressStore,
    face_detection_job_id,
    job_from_status,
    job_id_for,
    state_of,
    step_records,
)


def status(state: str, **extra: object) -> SimpleNamespace:
    """A DBOS WorkflowStatus as far as jobs.py reads one."""
    fields = {
        "workflow_id": "job-1",
        "status": state,
        "input": {"args": [{"key": "cam/a.mp4", "etag": "e1", "size": 123}]},
        "output": None,
        "error": None,
        "created_at": 1_000,
        "updated_at": 5_000,
        "dequeued_at": 2_000,
    }
    return SimpleNamespace(**{**fields, **extra})


@pytest.mark.parametrize(
    ("dbos", "expected"),
    [
        ("ENQUEUED", JobStatus.QUEUED),
        ("DELAYED", JobStatus.QUEUED),
        ("PENDING", JobStatus.RUNNING),
        ("SUCCESS", JobStatus.SUCCEEDED),
        ("ERROR", JobStatus.FAILED),
        ("MAX_RECOVERY_ATTEMPTS_EXCEEDED", JobStatus.FAILED),
        ("CANCELLED", JobStatus.CANCELLED),
    ],
)
def test_dbos_states_map_to_job_states(dbos, expected):
    assert state_of(status(dbos)) is expected


def test_a_finished_job_shows_its_path_through_the_states():
    job = job_from_status(status("SUCCESS", output={"faces": 3, "output_key": "cam/a.mp4"}))
    assert [c.state for c in job.history] == [
        JobStatus.QUEUED,
        JobStatus.RUNNING,
        JobStatus.SUCCEEDED,
    ]
    assert [c.at for c in job.history] == [1.0, 2.0, 5.0]
    assert (job.key, job.size, job.faces, job.output_key) == ("cam/a.mp4", 123, 3, "cam/a.mp4")
    assert job.to_dict()["status"] == "SUCCEEDED"


def test_a_queued_job_that_reports_progress_is_running():
    job = job_from_status(status("ENQUEUED"), {"step": "Redact", "frames_done": 10})
    assert job.status is JobStatus.RUNNING
    assert job.frames_done == 10


def test_a_failed_job_carries_its_message():
    job = job_from_status(status("ERROR", error="cam/a.mp4: truncated video"))
    assert job.status is JobStatus.FAILED
    assert job.error == "cam/a.mp4: truncated video"


def test_job_ids():
    # One object version, one job, from any process; another version, another job.
    assert job_id_for("s3://in", "a.mp4", "e1") == job_id_for("s3://in", "a.mp4", "e1")
    assert job_id_for("s3://in", "a.mp4", "e1") != job_id_for("s3://in", "a.mp4", "e2")
    # The face-detection API: the same caller and token, the same job; no token, a new one.
    assert face_detection_job_id("AKID", "tok") == face_detection_job_id("AKID", "tok")
    assert face_detection_job_id("AKID", "tok") != face_detection_job_id("OTHER", "tok")
    assert face_detection_job_id("AKID", None) != face_detection_job_id("AKID", None)


def test_step_records_keep_the_named_steps_in_order():
    steps: list[dict[str, object]] = [
        {"function_name": "veil.workflow.Validate", "started_at_epoch_ms": 1000},
        {"function_name": "DBOS.sleep"},
        {"function_name": "Redact", "started_at_epoch_ms": 2000, "error": "boom"},
    ]
    records = step_records(steps)
    assert [r.name for r in records] == ["Validate", "Redact"]
    assert records[1].error == "boom"


def test_progress_is_shared_through_the_database(tmp_path):
    url = f"sqlite:///{tmp_path / 'jobs.sqlite'}"
    writer, reader = ProgressStore(url), ProgressStore(url)
    writer.set("job-1", "Redact", 10, 100, force=True, duration=3.5)
    writer.set("job-1", "Redact", 11, 100)  # within a second of the last: not written
    row = reader.get(["job-1"])["job-1"]
    assert (row["step"], row["frames_done"], row["frames_total"], row["duration"]) == (
        "Redact",
        10,
        100,
        3.5,
    )
    assert reader.get([]) == {}


def test_a_database_that_cannot_be_reached_is_a_transient_database_error(tmp_path):
    from veil.errors import DatabaseError

    store = ProgressStore(f"sqlite:///{tmp_path / 'jobs.sqlite'}")
    (tmp_path / "jobs.sqlite").unlink()
    (tmp_path / "jobs.sqlite").mkdir()  # the file is gone and a folder stands in its way
    store.engine.dispose()
    with pytest.raises(DatabaseError) as raised:
        store.set("job-1", "Redact", 1, 2, force=True)
    assert raised.value.transient
    assert raised.value.status_code == 503
