"""Output for people: tables, the progress bar (TTY) or JSON-lines events (not a TTY)."""
from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any


def table(rows: Sequence[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)


class EventPrinter:
    """TTY: a progress bar on stderr. Otherwise: JSON-lines events on stderr."""

    def __init__(self, stream: Any = sys.stderr, progress: bool = True) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.progress = progress  # several migrations at once: one line per domain instead of a bar

    def __call__(self, event: dict[str, Any]) -> None:
        if not self.tty:
            self.stream.write(json.dumps(event, sort_keys=True) + "\n")
        elif event["event"] == "domain-done":
            self.stream.write(f"{event['domain']}: {event['state']} {event.get('destination') or ''}\n")
        elif event["event"] == "progress" and self.progress:
            pct = event["percent"]
            bar = "#" * int(pct / 4)
            rate = event["rate_bps"] / 2**20
            eta = event["data_remaining"] / event["rate_bps"] if event["rate_bps"] else 0
            self.stream.write(f"\r[{bar:<25}] {pct:5.1f}%  {event['data_processed'] / 2**20:7.1f} MiB "
                              f"done, {event['data_remaining'] / 2**20:7.1f} MiB left, {rate:6.1f} MiB/s, "
                              f"ETA {eta:4.0f}s")
        elif event["event"] == "migration-attempt" and event["attempt"] > 1:
            self.stream.write(f"\nretrying (attempt {event['attempt']})\n")
        self.stream.flush()


