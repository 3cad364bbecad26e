"""Watch a running migration job: progress events, and the completion / stall deadlines.

The decision what to do at each poll is the pure ``deadline_action``; ``JobMonitor`` only reads
job stats, emits events and carries the decision out (house rules 2 and 8: clock injected).
"""
from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from coordinator.core.params import Deadlines, MigrationPolicy, on_deadline
from coordinator.virt.errors import error_summary
from coordinator.virt.guest import Guest

EventSink = Callable[[dict[str, Any]], None]


class JobAborted(Exception):
    """We aborted the migration job ourselves (deadline); never retried."""


@dataclass(frozen=True)
class Progress:
    """What the monitor remembers between polls."""

    start: float
    last_progress: float
    best_remaining: int | None = None
    switched_to_postcopy: bool = False
    suspended: bool = False


def deadline_action(p: Progress, now: float, data_total: int, data_remaining: int, limits: Deadlines,
                    policy: MigrationPolicy) -> tuple[str, str, Progress]:
    """Pure: ("continue" | "postcopy" | "suspend" | "abort", why, the updated progress) for one poll.

    A deadline is the completion limit since the (last) start, or no shrink of the remaining data
    for the stall limit. Escalations (post-copy, suspend) happen once each and restart the clocks.
    NOTE: QEMU accepts migrate-start-postcopy only once its migration really runs (data_total > 0);
    before that libvirt is still preparing the destination, so abort."""
    if data_total and (p.best_remaining is None or data_remaining < p.best_remaining):
        p = replace(p, last_progress=now, best_remaining=data_remaining)
    if now - p.start > limits.completion_s:
        why = f"did not complete within {limits.completion_s:.0f}s"
    elif now - p.last_progress > limits.stall_s:
        why = f"made no progress for {limits.stall_s:.0f}s"
    else:
        return "continue", "", p
    action = on_deadline(policy, p.switched_to_postcopy, p.suspended)
    if action == "postcopy" and data_total:
        return "postcopy", why, replace(p, start=now, last_progress=now, switched_to_postcopy=True)
    if action == "suspend":
        return "suspend", why, replace(p, start=now, last_progress=now, suspended=True)
    return "abort", why, p


class JobMonitor:
    """Polls virDomainGetJobStats while migrateToURI3 runs: emits progress events and enforces
    the completion and stall deadlines (switch to post-copy or suspend the guest once if asked, else
    abort), and applies --max-downtime once the job runs."""

    def __init__(self, guest: Guest, sink: EventSink, limits: Deadlines, policy: MigrationPolicy,
                 clock: Callable[[], float], interval: float = 0.5) -> None:
        self.guest, self.sink, self.limits, self.policy = guest, sink, limits, policy
        self.clock, self.interval = clock, interval
        self.aborted: str | None = None
        self.suspended = False  # we paused the guest so the migration converges (--on-deadline suspend)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="migcoord-job-monitor")

    def __enter__(self) -> JobMonitor:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _set_max_downtime(self) -> None:
        try:
            self.guest.set_max_downtime(int(self.policy.max_downtime_ms or 0))
            self.sink({"event": "max-downtime", "ms": self.policy.max_downtime_ms})
        except Exception as e:
            self.sink({"event": "max-downtime-failed", "error": error_summary(e)})

    def _run(self) -> None:
        now = self.clock()
        progress = Progress(start=now, last_progress=now)
        downtime_set = self.policy.max_downtime_ms is None
        while not self._stop.wait(self.interval):
            try:
                job = self.guest.job()
            except Exception:  # the domain vanishes from the source at the end: not our business
                return
            if not job.active:
                continue
            if not downtime_set:  # NOTE: no migrateToURI3 parameter for it; settable once the job runs
                downtime_set = True
                # NOTE: in its own thread: the call waits for QEMU's monitor, which a starved QEMU (seen
                # under TCG on a loaded host) may not answer for minutes — the deadlines must still hold.
                threading.Thread(target=self._set_max_downtime, daemon=True, name="migcoord-max-downtime").start()
            self.sink({"event": "progress", "percent": round(job.percent, 1),
                       "data_processed": job.data_processed, "data_remaining": job.data_remaining,
                       "data_total": job.data_total, "rate_bps": job.mem_bps, "elapsed_ms": job.elapsed_ms})
            action, why, progress = deadline_action(progress, self.clock(), job.data_total, job.data_remaining,
                                                    self.limits, self.policy)
            if action == "continue":
                continue
            if action == "postcopy":
                self.sink({"event": "postcopy-switch", "reason": why})
                try:
                    self.guest.start_postcopy()
                    continue
                except Exception as e:
                    why += f" and the switch to post-copy failed ({error_summary(e)})"
            if action == "suspend":
                self.sink({"event": "suspend", "reason": why})
                try:
                    self.guest.suspend()
                    self.suspended = True
                    continue
                except Exception as e:
                    why += f" and suspending the guest failed ({error_summary(e)})"
            self.aborted = why
            self.sink({"event": "job-abort", "reason": why})
            with contextlib.suppress(Exception):  # the job may have just finished; migrateToURI3's result tells
                self.guest.abort_job()
            return
