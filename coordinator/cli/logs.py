"""Logging for people and for unattended runs: stderr always, syslog on request.

Under systemd, stderr already reaches the journal (``journalctl -u migcoord-evacuate@hv1``), so
``--syslog`` is for cron and other plain runs. Records never carry a secret value (house rule 11).
"""
from __future__ import annotations

import logging
import os
import sys

SYSLOG_SOCKET = "/dev/log"


def setup(level: str, syslog: bool, socket_path: str = SYSLOG_SOCKET) -> None:
    """The ``migcoord`` logger (and the root's handlers) at ``level``; idempotent per process."""
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    stderr = logging.StreamHandler(sys.stderr)
    stderr.setFormatter(logging.Formatter("migcoord: %(levelname)s: %(message)s"))
    root.addHandler(stderr)
    root.setLevel(getattr(logging, level.upper()))
    if syslog:
        from logging.handlers import SysLogHandler  # NOTE: here: only --syslog needs it (start-up time)

        if not os.path.exists(socket_path):
            logging.getLogger("migcoord").warning("--syslog: %s does not exist; logging to stderr only",
                                                  socket_path)
            return
        h = SysLogHandler(address=socket_path, facility=SysLogHandler.LOG_DAEMON)
        h.setFormatter(logging.Formatter(f"migcoord[{os.getpid()}]: %(levelname)s: %(message)s"))
        root.addHandler(h)
