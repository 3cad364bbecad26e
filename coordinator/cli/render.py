"""Output for people: tables, the progress bar (TTY) or JSON-lines events (not a TTY)."""
from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any


def table(rows: Sequence[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)


PROGRESS_EVERY_S = 5.0  # off a TTY: at most one progress event per domain this often


class EventPrinter:
    """TTY: a progress bar on stderr. Otherwise: JSON-lines events on stderr — progress events only
    when something changed and at most every ``PROGRESS_EVERY_S`` per domain (logs of unattended
    runs stay small). ``quiet``: nothing at all."""

    def __init__(self, stream: Any = sys.stderr, progress: bool = True, quiet: bool = False,
                 clock: Callable[[], float] = time.monotonic, every_s: float = PROGRESS_EVERY_S) -> None:
        self.stream = stream
        self.tty = stream.isatty() and not quiet
        self.progress = progress  # several migrations at once: one line per domain instead of a bar
        self.quiet = quiet
        self.clock, self.every_s = clock, every_s
        self._last: dict[str, tuple[float, tuple[Any, ...]]] = {}  # domain → (when, what) last printed

    def _worth_printing(self, event: dict[str, Any]) -> bool:
        if event.get("event") != "progress":
            return True
        dom = str(event.get("domain", ""))
        what = (event.get("percent"), event.get("data_processed"), event.get("data_remaining"))
        now = self.clock()
        last = self._last.get(dom)
        if last is not None and (last[1] == what or now - last[0] < self.every_s):
            return False
        self._last[dom] = (now, what)
        return True

    def __call__(self, event: dict[str, Any]) -> None:
        if self.quiet:
            return
        if not self.tty:
            if not self._worth_printing(event):
                return
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


