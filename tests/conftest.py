"""Shared fixtures: small generated videos with faces at known positions, the detector,
the browser, and the servers a run starts once: PostgreSQL and SeaweedFS."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from servers import (
    PostgreSQL,
    PostgreSQLDatabase,
    SeaweedFS,
    free_port,
    postgres_cluster,
    server_process,
)

from veil.detector import CenterFace
from veil.synthetic import MovingFace, Scene, SyntheticVideo, write_video

# Small, moving faces of several sizes, on a 320x240 clip of 1.5 s.
SMALL_SCENE = Scene(
    width=320,
    height=240,
    frames=45,
    fps=30,
    faces=(
        MovingFace(photo="astronaut", height=16, start=(0.15, 0.2), end=(0.35, 0.25)),
        MovingFace(photo="cameraman", height=24, start=(0.8, 0.75), end=(0.65, 0.7)),
        MovingFace(photo="grace_hopper", height=40, start=(0.3, 0.65), end=(0.4, 0.6), angle=20),
        MovingFace(
            photo="astronaut",
            height=72,
            start=(0.72, 0.35),
            end=(0.7, 0.4),
            covered=0.3,
            first_frame=10,
            last_frame=35,
        ),
    ),
)


@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def clip(media: Path) -> SyntheticVideo:
    """An H.264 .mp4 with AAC audio."""
    return write_video(media / "clip.mp4", SMALL_SCENE)


@pytest.fixture(scope="session", params=["int8", "fp32"])
def detector(request: pytest.FixtureRequest) -> CenterFace:
    """The detector at its default scale, with each shipped model."""
    return CenterFace(scale=2.0, precision=request.param)


# The page tests (tests/api/test_*web.py): Debian's Chromium, started headless by
# Playwright, with nothing of its own reaching the network.
CHROMIUM = os.environ.get("VEIL_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    server_process("Chromium")

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgreSQL]:
    """The run's one PostgreSQL cluster, started when a test first needs it."""
    with postgres_cluster() as pg:
        yield pg


@pytest.fixture
def postgres(postgres_server: PostgreSQL) -> PostgreSQLDatabase:
    """A new database for the test on the run's cluster: the tests count every job,
    worker and heartbeat in theirs."""
    return postgres_server.new_database()


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    """The run's one SeaweedFS (each test module makes its own buckets), started when a
    test first needs it. Its filer posts the events of buckets named ``hook-...`` to
    ``webhook_port``, where a test that wants them runs ``veil serve``."""
    webhook_port = free_port()
    fs = SeaweedFS(
        tmp_path_factory.mktemp("seaweedfs"),
        webhook=f"http://127.0.0.1:{webhook_port}/events/seaweedfs",
        webhook_paths=("/buckets/hook-",),
    )
    fs.webhook_port = webhook_port
    fs.start()
    yield fs
    fs.stop()
