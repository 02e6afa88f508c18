"""The job database's plumbing, shared by every module that keeps rows in it (jobs,
review, erasure, heartbeats): creating tables, turning SQLAlchemy's errors into veil's,
and selecting the rows of one job with its segments and re-renders."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa

from veil.errors import DatabaseError


def create_tables(metadata: sa.MetaData, engine: sa.Engine) -> None:
    """Create veil's own tables beside DBOS's, if missing. Processes starting together on
    a new PostgreSQL database race: only one of two concurrent CREATE TABLEs succeeds
    (the other fails on the catalogue's unique index) and the loser then finds it."""
    try:
        metadata.create_all(engine)
    except (sa.exc.IntegrityError, sa.exc.ProgrammingError):
        metadata.create_all(engine)


@contextlib.contextmanager
def database_errors() -> Iterator[None]:
    """SQLAlchemy's errors (DBOS's too: it runs on SQLAlchemy) raised inside come out as
    ``DatabaseError``: worth retrying when the database could not be reached."""
    try:
        yield
    except sa.exc.OperationalError as exc:
        raise DatabaseError("job database", None, str(exc.orig or exc), transient=True) from exc
    except sa.exc.SQLAlchemyError as exc:
        raise DatabaseError("job database", None, str(exc), transient=False) from exc


def owned_by(column: Any, job_id: str) -> Any:
    """A SQL condition: ``column`` names job ``job_id`` or one of its segments
    (``segment_id``) or re-renders (``JOB-rN``)."""
    pattern = job_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return sa.or_(
        column == job_id,
        column.like(f"{pattern}-s%", escape="\\"),
        column.like(f"{pattern}-r%", escape="\\"),
    )
