"""The web page in a real headless Chromium (Debian's), driven by Playwright, against a
real ``veil serve`` on loopback."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import Dialog, expect
from servers import VeilServer

from veil.synthetic import visible_faces

# The docs' picture is made on purpose (scripts/screenshot.py sets this); a plain test run
# writes its screenshot to its temporary folder and leaves the tracked tree as it was.
SCREENSHOTS = os.environ.get("VEIL_SCREENSHOTS")
"""Where scripts/screenshot.py wants the docs' pictures; unset, they go to tmp_path."""


@pytest.fixture
def server(tmp_path):
    srv = VeilServer(tmp_path / "data", "--poll-interval", "0").start()
    yield srv
    srv.stop()


def watch_requests(page, server: VeilServer) -> list[str]:
    seen: list[str] = []
    page.on("request", lambda request: seen.append(request.url))
    return seen


def test_upload_watch_compare_download(browser, server, clip, tmp_path):
    page = browser.new_page(viewport={"width": 1100, "height": 900}, accept_downloads=True)
    requests = watch_requests(page, server)
    page.goto(server.url + "/")
    video = tmp_path / "party.mp4"
    shutil.copy(clip.path, video)
    page.set_input_files("#file", str(video))
    row = page.locator("#jobs tbody tr", has_text="party.mp4")
    expect(row.locator(".status")).to_have_text("SUCCEEDED", timeout=90_000)
    expect(row).to_contain_text("4")  # faces found
    row.locator("a").click()
    graph = page.locator("#graph li")
    expect(graph).to_have_count(4)
    for step in ("Validate", "Redact", "Audit", "Publish"):
        expect(page.locator(f"#graph li[data-step={step}]")).to_have_class("done", timeout=30_000)
    # Detection happens in the Redact step (one pass), and the graph says so.
    expect(page.locator("#graph li[data-step=Redact] .name")).to_have_text("Detect + redact")
    expect(page.locator("#timeline span").first).to_be_visible(timeout=30_000)

    # Both videos load and play.
    page.wait_for_function(
        "[...document.querySelectorAll('#compare video')].every(v => v.readyState >= 2)",
        timeout=30_000,
    )
    page.evaluate(
        "Promise.all([...document.querySelectorAll('#compare video')].map(v => v.play()))"
    )
    page.wait_for_function(
        "[...document.querySelectorAll('#compare video')].every(v => v.currentTime > 0.2)",
        timeout=30_000,
    )
    page.evaluate(
        "[...document.querySelectorAll('#compare video')].forEach(v => { v.pause(); v.currentTime = 0.5; })"
    )
    shot = Path(SCREENSHOTS or tmp_path) / "screenshot-job.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000

    with page.expect_download() as download:
        page.click("#download")
    assert download.value.suggested_filename == "party.blurred.mp4"
    saved = tmp_path / "downloaded.mp4"
    download.value.save_as(saved)
    assert saved.read_bytes() == (server.data / "output" / "party.mp4").read_bytes()
    assert visible_faces(saved, clip.scene) == []

    outside = [u for u in requests if not u.startswith((server.url, "data:", "blob:"))]
    assert outside == [], f"requests to other hosts: {outside}"


def test_replacing_a_video_asks_first_and_closes_the_old_job(browser, server, clip, tmp_path):
    # Issue 26: another upload under the same name replaced the input without asking,
    # and the old job still offered Review (with a black player).
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    page.goto(server.url + "/")
    first = tmp_path / "swap.mp4"
    shutil.copy(clip.path, first)
    page.set_input_files("#file", str(first))
    row = page.locator("#jobs tbody tr", has_text="swap.mp4")
    expect(row.locator(".status")).to_have_text("SUCCEEDED", timeout=90_000)
    old_job = row.get_attribute("data-job")

    newer = tmp_path / "newer" / "swap.mp4"
    newer.parent.mkdir()
    newer.write_bytes(clip.path.read_bytes() + b"a newer upload")
    asked: list[str] = []

    def refuse(dialog: Dialog) -> None:
        asked.append(dialog.message)
        dialog.dismiss()

    page.once("dialog", refuse)
    page.set_input_files("#file", str(newer))
    for _ in range(100):  # the page lists the bucket, then asks
        if asked:
            break
        page.wait_for_timeout(100)
    assert asked and asked[0].startswith("swap.mp4 is already in the input bucket. Replace it?")
    expect(page.locator("#uploads li", has_text="swap.mp4")).to_have_count(1)
    assert (server.data / "input" / "swap.mp4").read_bytes() == clip.path.read_bytes()

    page.once("dialog", lambda dialog: dialog.accept())
    page.set_input_files("#file", str(newer))
    expect(page.locator("#jobs tbody tr", has_text="swap.mp4")).to_have_count(2, timeout=30_000)
    page.goto(f"{server.url}/#/jobs/{old_job}")
    expect(page.locator("#superseded")).to_be_visible()
    expect(page.locator("#review-link")).to_be_hidden()


def test_bad_uploads_say_what_is_wrong(browser, server, tmp_path):
    page = browser.new_page()
    requests = watch_requests(page, server)
    page.goto(server.url + "/")
    # The drop zone is the one tab stop for choosing files (Enter opens the chooser);
    # the file input behind it is not a second, invisible one.
    page.focus("#drop")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") != "file"
    notes = tmp_path / "notes.txt"
    notes.write_text("not a video")
    page.set_input_files("#file", str(notes))
    expect(page.locator("#uploads li.error")).to_contain_text(
        "notes.txt: not a video or photo file type"
    )
    fake = tmp_path / "fake.mp4"
    fake.write_text("a text file named like a video")
    page.set_input_files("#file", str(fake))
    row = page.locator("#jobs tbody tr", has_text="fake.mp4")
    expect(row.locator(".status")).to_have_text("FAILED", timeout=60_000)
    expect(row).to_contain_text("fake.mp4: not a video (unrecognised file format)")
    row.locator("a").click()
    expect(page.locator("#job-error")).to_have_text(
        "fake.mp4: not a video (unrecognised file format)"
    )
    expect(page.locator("#graph li[data-step=Validate]")).to_have_class("failed")
    expect(page.locator("#retry")).to_be_visible()
    # A refused retry is said beside its button; the job's own error stays as it was.
    refusal = {"detail": "fake.mp4 was replaced by a newer upload, which has a job of its own"}
    page.route("**/retry", lambda route: route.fulfill(status=409, json=refusal))
    page.click("#retry")
    expect(page.locator("#action-error")).to_have_text(refusal["detail"])
    expect(page.locator("#job-error")).to_have_text(
        "fake.mp4: not a video (unrecognised file format)"
    )
    assert all(u.startswith((server.url, "data:", "blob:")) for u in requests)


def test_phone_sized_and_keyboard(browser, server):
    page = browser.new_page(viewport={"width": 390, "height": 844})
    page.goto(server.url + "/")
    expect(page.locator("#home")).to_be_visible()
    assert page.evaluate("document.scrollingElement.scrollWidth <= window.innerWidth")
    # The upload area is reachable with the keyboard.
    for _ in range(5):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement && document.activeElement.id") == "drop":
            break
    assert page.evaluate("document.activeElement.id") == "drop"


PAGE_KEY = "page-key-0123456789"


def test_api_key_is_asked_for(browser, tmp_path, clip):
    srv = VeilServer(
        tmp_path / "data", "--poll-interval", "0.3", "--api-key", PAGE_KEY, api_key=PAGE_KEY
    ).start()
    try:
        shutil.copy(clip.path, srv.data / "input" / "secret.mp4")
        srv.wait_job(next(iter(_wait_jobs(srv)))["id"])
        page = browser.new_page()
        page.goto(srv.url + "/")
        expect(page.locator("#auth")).to_be_visible()
        expect(page.locator("#home")).to_be_hidden()
        assert "secret.mp4" not in page.content()
        page.fill("#auth-key", PAGE_KEY)
        page.click("#auth-form button")
        expect(page.locator("#jobs tbody tr", has_text="secret.mp4")).to_be_visible()
    finally:
        srv.stop()


def test_the_printed_address_signs_the_page_in(browser, tmp_path, clip):
    # veil serve makes its own key and prints the page's address with it (#key=...): that
    # address opens the page signed in, and the key leaves the address bar.
    srv = VeilServer(tmp_path / "data", "--poll-interval", "0.3", own_key=True).start()
    try:
        key = (srv.data / "api-key").read_text().strip()
        (address,) = re.findall(r"open (http://\S+#key=\S+) ", srv.log())
        assert address.endswith(f"#key={key}")
        srv.headers = {"Authorization": f"Bearer {key}"}
        shutil.copy(clip.path, srv.data / "input" / "mine.mp4")
        srv.wait_job(next(iter(_wait_jobs(srv)))["id"])
        page = browser.new_page()
        page.goto(address)
        expect(page.locator("#jobs tbody tr", has_text="mine.mp4")).to_be_visible()
        expect(page.locator("#auth")).to_be_hidden()
        assert key not in page.url
    finally:
        srv.stop()


def _wait_jobs(srv: VeilServer) -> list[dict]:
    from servers import wait_for

    return wait_for(lambda: srv.jobs(), 60, "a job")
