"""``--timings``: this process's start-up (read from ``/proc``) and the one-line-per-phase breakdown.

Start-up is the time from the process's start (``/proc/self/stat`` field 22, in clock ticks since
boot) to the moment it is read, against ``CLOCK_BOOTTIME`` (the clock that field counts on, with
nanosecond resolution, unlike ``/proc/uptime``'s 10 ms). The resolution is one clock tick
(``SC_CLK_TCK``: 10 ms on Linux); see ``core.timings.process_age``.
"""
from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping
from typing import Any

from coordinator.core.timings import KEYS, process_age


def startup_s() -> float | None:
    """Seconds since this process started; None when ``/proc`` or the clock is not there."""
    try:
        with open("/proc/self/stat", encoding="utf-8", errors="replace") as f:
            stat = f.read()
        return process_age(stat, time.clock_gettime(time.CLOCK_BOOTTIME), os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, AttributeError, IndexError):
        return None


def render(timings: Mapping[str, float | None]) -> str:
    """One line per phase: seconds and share of the total; "-" for a phase that did not run or
    a figure that is unknown. ``qemu_elapsed`` is shown as part of ``migration``, not added."""
    total = timings.get("total") or 0.0
    lines = ["timings:"]
    for key in KEYS:
        v = timings.get(key)
        if v is None:
            lines.append(f"  {key:<13} {'-':>9}")
        elif key in ("total", "qemu_elapsed"):
            lines.append(f"  {key:<13} {v:8.3f}s" + ("  (libvirt's time_elapsed, within migration)"
                                                      if key == "qemu_elapsed" else ""))
        else:
            share = f"  {100 * v / total:5.1f}%" if total > 0 else ""
            lines.append(f"  {key:<13} {v:8.3f}s{share}")
    return "\n".join(lines)


def on_error(data: dict[str, Any], started: float | None, show: bool) -> None:
    """A failed run's ``data["timings"]`` (the flow's, when it ran) with start-up put in front;
    printed when ``show``."""
    t = data.get("timings")
    if not isinstance(t, dict):
        return
    if started is not None:
        data["timings"] = t = {**t, "startup": round(started, 3), "total": round((t["total"] or 0.0) + started, 3)}
    if show:
        print(render(t), file=sys.stderr)
