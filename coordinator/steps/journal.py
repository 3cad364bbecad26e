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


def _refuse(obj: object) -> None:
    raise TypeError(f"journal fields must be plain JSON values, not {type(obj).__name__} "
                    "(secret values never go here)")


class Journal:
    """Records events in memory and, when ``path`` is set, in the journal file."""

    def __init__(self, path: Path | str | None = None, run_id: str | None = None) -> None:
        self.path = Path(path) if path else None
        self.run_id = run_id or uuidlib.uuid4().hex[:12]
        self.events: list[dict[str, Any]] = []
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)

    def record(self, event: str, **fields: Any) -> None:
        entry = {**fields, "ts": round(time.time(), 3), "run": self.run_id, "event": event}
        # Serialise first: bytes anywhere (even nested) are refused before anything is kept.
        line = (json.dumps(entry, sort_keys=True, default=_refuse) + "\n").encode()
        self.events.append(entry)
        if self.path:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)
