"""Property-based fuzzing of the HTTP API from its own OpenAPI document (schemathesis on
hypothesis), against a real ``veil serve``: whatever a caller sends, the answer is never
a server error."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from servers import VeilServer

API_KEY = "fuzz-key-0123456789abcdef"


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory, clip):
    server = VeilServer(
        tmp_path_factory.mktemp("fuzz") / "data",
        "--api-key",
        API_KEY,
        "--max-size",
        "1000000",
        "--poll-interval",
        "0",
        api_key=API_KEY,
    ).start()
    # Something to find: one finished job and one video in the bucket.
    r = server.post("/api/uploads", files={"file": ("known.mp4", clip.path.read_bytes())})
    server.wait_job(r.json()["id"])
    yield server
    server.stop()


@pytest.fixture
def api_schema(fuzzed):
    return schemathesis.openapi.from_url(f"{fuzzed.url}/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=40,
    deadline=None,
    database=None,  # no .hypothesis folder left in the tree
    suppress_health_check=list(HealthCheck),
)
def test_no_request_makes_a_server_error(case, fuzzed):
    case.call_and_validate(
        base_url=fuzzed.url, headers=fuzzed.headers, checks=[not_a_server_error], timeout=30
    )
