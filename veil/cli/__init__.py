"""The ``veil`` command. ``files`` has the commands on files (blur, detect, redact,
audit, sample), ``live`` the live stream, ``service`` those of the service (serve,
worker, jobs), and ``common`` the command group and what they share; importing this
package registers them all."""

from __future__ import annotations

from veil.cli import files, live, service
from veil.cli.common import main
from veil.cli.files import AUDIT_FINDINGS_EXIT

__all__ = ["AUDIT_FINDINGS_EXIT", "files", "live", "main", "service"]
