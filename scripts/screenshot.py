"""Regenerate docs/screenshot-job.png: the web page's job view, taken by the web page test
in headless Chromium against a real ``veil serve``.

Usage: ``python scripts/screenshot.py`` (needs the dev extra and Debian's chromium).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    target = ROOT / "docs" / "screenshot-job.png"
    env = {**os.environ, "VEIL_SCREENSHOT": str(target)}
    test = "tests/api/test_web.py::test_upload_watch_compare_download"
    code = subprocess.call([sys.executable, "-m", "pytest", "-q", test], cwd=ROOT, env=env)
    if code == 0:
        print(f"wrote {target}")
    sys.exit(code)


if __name__ == "__main__":
    main()
