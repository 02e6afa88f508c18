"""A segmented job in the web page (issue 11), in a real headless Chromium (Debian's)
driven by Playwright against a real ``veil serve``: the step graph fans out into the
job's segments and joins them again, and the job page lists each segment with its
state, its worker and its frames."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect
from segment_clips import SCENE, keyed_clip
from servers import VeilServer

SEGMENTED = ["Validate", "Segments", "Join", "Audit", "Publish"]
FAN_OUT = "3 \u00d7 detect + redact"  # the fan-out node: its segments, each a detect + redact


@pytest.fixture
def server(tmp_path):
    # SCENE is 6 s with a keyframe a second: segments of 2 s cut it in three.
    srv = VeilServer(tmp_path / "data", "--poll-interval", "0", "--segment-seconds", "2").start()
    yield srv
    srv.stop()


def test_the_job_page_shows_the_fan_out_and_each_segment(browser, server, tmp_path):
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto(server.url + "/")
    page.set_input_files("#file", str(keyed_clip(tmp_path / "crowd.mp4", SCENE)))
    row = page.locator("#jobs tbody tr", has_text="crowd.mp4")
    row.locator("a").click()

    expect(page.locator("#job-status .status")).to_have_text("SUCCEEDED", timeout=120_000)
    steps = page.locator("#graph li")
    expect(steps).to_have_count(len(SEGMENTED))
    assert [steps.nth(i).get_attribute("data-step") for i in range(len(SEGMENTED))] == SEGMENTED
    for name in SEGMENTED:
        expect(page.locator(f"#graph li[data-step={name}]")).to_have_class(re.compile(r"\bdone\b"))
    fan_out = page.locator("#graph li[data-step=Segments]")
    expect(fan_out).to_have_class(re.compile(r"\bfan-out\b"))
    expect(fan_out.locator(".what")).to_have_text(FAN_OUT)
    expect(fan_out.locator(".pip.SUCCEEDED")).to_have_count(3)
    assert f"Segments ({FAN_OUT}): done" in (fan_out.get_attribute("aria-label") or "")

    job_id = page.evaluate("location.hash").rsplit("/", 1)[-1]
    job = server.job(job_id)
    assert [s["status"] for s in job["segments"]] == ["SUCCEEDED"] * 3
    segments = page.locator("#segments li")
    expect(segments).to_have_count(3)
    for i, segment in enumerate(job["segments"]):
        assert segment["worker"], segment
        card = segments.nth(i)
        expect(card.locator(".seg-state")).to_have_text("done")
        expect(card.locator(".worker")).to_have_text(f"on {segment['worker']}")
        expect(card.locator(".frames")).to_have_text(
            f"{segment['frames_total']} / {segment['frames_total']} frames"
        )
        expect(card.locator("[role=progressbar]")).to_have_attribute("aria-valuenow", "100")
        expect(card).to_have_attribute(
            "aria-label",
            f"Segment {i + 1}: done, on {segment['worker']}, "
            f"{segment['frames_total']} / {segment['frames_total']} frames",
        )
    expect(page.locator("#segments-summary")).to_have_text("3 segments: 3 done; 1 worker.")

    # On a phone the cards and the graph wrap: nothing runs off the side.
    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate("document.scrollingElement.scrollWidth <= window.innerWidth")

    outside = [u for u in requests if not u.startswith((server.url, "data:", "blob:"))]
    assert outside == [], f"requests to other hosts: {outside}"
