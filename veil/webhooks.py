"""Telling a webhook that a job ended: a JSON POST to a URL the operator or caller gave."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Mapping
from typing import Any

TIMEOUT = 10.0
"""Seconds a webhook may take to answer."""


def post_json(url: str, payload: Mapping[str, Any]) -> None:
    """POST ``payload`` as JSON to ``url``; raises ``OSError`` when it cannot be delivered."""
    body = json.dumps(payload).encode()
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=TIMEOUT):
        pass
