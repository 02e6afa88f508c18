"""Regenerate the docs' pictures of the web page: docs/screenshot-job.png (a job) and
docs/screenshot-review-wide.png and -phone.png (the review at 1440x900 and 390x844), taken
by the web page tests in headless Chromium against a real ``veil serve``.

Usage: ``python scripts/screenshot.py`` (needs the dev extra and Debian's chromium).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    docs = ROOT / "docs"
    env = {**os.environ, "VEIL_SCREENSHOTS": str(docs)}
    tests = [
        "tests/api/test_web.py::test_upload_watch_compare_download",
        "tests/api/test_review_web.py::test_keep_a_person_and_make_a_drawn_box_follow_a_moving_face",
    ]
    code = subprocess.call([sys.executable, "-m", "pytest", "-q", *tests], cwd=ROOT, env=env)
    if code == 0:
        for name in ("job", "review-wide", "review-phone"):
            print(f"wrote {docs / f'screenshot-{name}.png'}")
    sys.exit(code)


if __name__ == "__main__":
    main()
