"""Append-only JSON-lines audit journal: one line per action on a secret or migration attempt.

Fields are UUIDs, URIs, actions and outcomes only — never a secret value (house rule 11).
The file is created owner-only, opened with O_APPEND so concurrent runs interleave whole lines
and O_NOFOLLOW so a planted symlink is refused (``files.atomic.open_append``); a journal someone
else owns, or one group or others may write, is refused. A path that cannot be used is refused when
the journal is made (before any connection) and making it changes nothing: its directories are
created with the first record, so bad input elsewhere (a bad URI) leaves nothing behind. A write
that fails later (disk full) never stops the run: it is a warning, the events stay in memory and
``failed`` says why.
"""
from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid as uuidlib
from pathlib import Path
from typing import Any

from coordinator.core.errors import BadInput
from coordinator.core.lease_rules import RUN_ID
from coordinator.files.atomic import open_append, open_dir


log = logging.getLogger("migcoord")


def _refuse(obj: object) -> None:
    raise TypeError(f"journal fields must be plain JSON values, not {type(obj).__name__} "
                    "(secret values never go here)")


class Journal:
    """Records events in memory and, when ``path`` is set, in the journal file."""

    def __init__(self, path: Path | str | None = None, run_id: str | None = None) -> None:
        self.path = Path(path) if path else None
        self.run_id = run_id or uuidlib.uuid4().hex[:12]
        if not RUN_ID.fullmatch(self.run_id):  # it goes into leases and markers, which are checked the same way
            raise BadInput(f"run id {self.run_id[:80]!r} must be 1-64 letters, digits, '.', '_' or '-'")
        self.events: list[dict[str, Any]] = []
        self.failed: str | None = None  # why the file misses events (first failure), None if complete
        self._lock = threading.Lock()
        self._dirs_made = False
        if self.path:  # refused now, before anything is done; nothing is created until the first record
            _check_usable(self.path)

    def record(self, event: str, **fields: Any) -> None:
        entry = {**fields, "ts": round(time.time(), 3), "run": self.run_id, "event": event}
        # Serialise first: bytes anywhere (even nested) are refused before anything is kept.
        line = (json.dumps(entry, sort_keys=True, default=_refuse) + "\n").encode()
        self.events.append(entry)
        if self.path:
            try:
                if not self._dirs_made:
                    self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                    self._dirs_made = True
                fd = open_append(self.path)
                try:
                    if os.write(fd, line) != len(line):
                        raise OSError("short write")
                finally:
                    os.close(fd)
            except (OSError, BadInput) as e:
                self._failed(e)

    def _failed(self, e: Exception) -> None:
        why = getattr(e, "strerror", None) or str(e)
        with self._lock:
            first = self.failed is None
            if first:
                self.failed = why
        if first:  # NOTE: once: a full disk would otherwise warn on every event
            log.warning("journal %s: cannot write (%s); the run goes on, the journal misses its events",
                        self.path, why)


def _check_usable(path: Path) -> None:
    """BadInput unless ``path`` could be appended to: an existing journal passes ``open_append``; a
    missing one needs its nearest existing ancestor directory to be reachable safely (``open_dir``) and
    writable, so its directories can be made at the first record. Creates nothing."""
    if os.path.lexists(path):
        os.close(open_append(path))
        return
    ancestor = path.parent
    while not os.path.lexists(ancestor) and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    os.close(open_dir(ancestor, "journal", path))
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise BadInput(f"journal {path}: directory {ancestor} is not writable",
                       hint="give a journal path you may write (--journal)")
