"""Append-only JSON-lines audit journal: one line per action on a secret or migration attempt.

Fields are UUIDs, URIs, actions and outcomes only — never a secret value (house rule 11).
The file is created owner-only and opened with O_APPEND so concurrent runs interleave whole lines.
"""
from __future__ import annotations

import json
import os
import time
import uuid as uuidlib
from pathlib import Path
from typing import Any

DEFAULT_JOURNAL = Path(os.environ.get("MIGCOORD_JOURNAL", "/var/log/migcoord/journal.jsonl"))


class Journal:
    """Records events in memory and, when ``path`` is set, in the journal file."""

    def __init__(self, path: Path | str | None = None, run_id: str | None = None) -> None:
        self.path = Path(path) if path else None
        self.run_id = run_id or uuidlib.uuid4().hex[:12]
        self.events: list[dict[str, Any]] = []
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)

    def record(self, event: str, **fields: Any) -> None:
        for v in fields.values():
            if isinstance(v, (bytes, bytearray)):
                raise TypeError("journal fields must not carry bytes (secret values never go here)")
        entry = {"ts": round(time.time(), 3), "run": self.run_id, "event": event, **fields}
        self.events.append(entry)
        if self.path:
            line = (json.dumps(entry, sort_keys=True) + "\n").encode()
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)
