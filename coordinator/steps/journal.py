"""Append-only JSON-lines audit journal: one line per action on a secret or migration attempt.

Fields are UUIDs, URIs, actions and outcomes only — never a secret value (house rule 11).
The file is created owner-only, opened with O_APPEND so concurrent runs interleave whole lines
and O_NOFOLLOW so a planted symlink is refused (``files.atomic.open_append``). A path that cannot
be opened is refused when the journal is made (before any connection); a write that fails later
(disk full) never stops the run: it is a warning, the events stay in memory and ``failed`` says why.
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

from coordinator.core import defaults
from coordinator.core.errors import BadInput
from coordinator.files.atomic import open_append

DEFAULT_JOURNAL = Path(os.environ.get(defaults.JOURNAL_ENV, defaults.JOURNAL_PATH))

log = logging.getLogger("migcoord")


def _refuse(obj: object) -> None:
    raise TypeError(f"journal fields must be plain JSON values, not {type(obj).__name__} "
                    "(secret values never go here)")


class Journal:
    """Records events in memory and, when ``path`` is set, in the journal file."""

    def __init__(self, path: Path | str | None = None, run_id: str | None = None) -> None:
        self.path = Path(path) if path else None
        self.run_id = run_id or uuidlib.uuid4().hex[:12]
        self.events: list[dict[str, Any]] = []
        self.failed: str | None = None  # why the file misses events (first failure), None if complete
        self._lock = threading.Lock()
        if self.path:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            except OSError as e:
                raise BadInput(f"journal {self.path}: cannot create its directory: {e.strerror}") from None
            if os.path.lexists(self.path):  # refused now, before anything is done (created on first record)
                os.close(open_append(self.path))

    def record(self, event: str, **fields: Any) -> None:
        entry = {**fields, "ts": round(time.time(), 3), "run": self.run_id, "event": event}
        # Serialise first: bytes anywhere (even nested) are refused before anything is kept.
        line = (json.dumps(entry, sort_keys=True, default=_refuse) + "\n").encode()
        self.events.append(entry)
        if self.path:
            try:
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
