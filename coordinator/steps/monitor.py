"""Watch a running migration job: progress events, and the completion / stall deadlines.

The decision what to do at each poll is the pure ``deadline_action``; ``JobMonitor`` only reads
job stats, emits events and carries the decision out (house rules 2 and 8: clock injected).
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from coordinator.core.model import EventSink
from coordinator.core.params import CALL_BOUND_S, Deadlines, MigrationPolicy, on_deadline
from coordinator.virt.errors import error_summary
from coordinator.virt.guest import CallTimedOut, Guest, JobInfo, call_within

log = logging.getLogger("migcoord")


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


# What the deadlines are judged on while virDomainGetJobStats has not answered yet: a job that runs and
# shows no progress (so a hung call ends in the stall deadline, never in a wait without end).
_UNANSWERED = JobInfo(active=True, data_total=0, data_processed=0, data_remaining=0, elapsed_ms=0, mem_bps=0)


class _Pending:
    """One virDomainGetJobStats in its own daemon thread, asked again only once it answered: the
    monitor never waits on it, so a call that never returns leaves one thread behind, not one a poll."""

    def __init__(self, call: Callable[[], JobInfo]) -> None:
        self.started = time.monotonic()
        self.late_noted = False
        self.done = threading.Event()
        self._box: list[Any] = []

        def work() -> None:
            try:
                self._box.append((True, call()))
            except Exception as e:
                self._box.append((False, e))
            finally:
                self.done.set()

        threading.Thread(target=work, daemon=True, name="migcoord-job-stats").start()

    def result(self) -> JobInfo:
        ok, value = self._box[0]
        if not ok:
            raise value
        return value


class JobMonitor:
    """Polls virDomainGetJobStats while migrateToURI3 runs: emits progress events and enforces
    the completion and stall deadlines (switch to post-copy or suspend the guest once if asked, else
    abort), and applies --max-downtime once the job runs.

    No libvirt call blocks the monitor (issue 21): job stats are polled without waiting for them
    (``_Pending``; the deadlines keep running on the clock while one is unanswered), and the post-copy
    switch, the suspension and the abort are each waited for at most ``call_s``. ``aborted_at``
    (``time.monotonic``) is when the abort was asked for: the migrate flow gives migrateToURI3 its
    abort bound from then."""

    def __init__(self, guest: Guest, sink: EventSink, limits: Deadlines, policy: MigrationPolicy,
                 clock: Callable[[], float], interval: float = 0.5, call_s: float = CALL_BOUND_S) -> None:
        self.guest, self.sink, self.limits, self.policy = guest, sink, limits, policy
        self.clock, self.interval, self.call_s = clock, interval, call_s
        self.aborted: str | None = None
        self.aborted_at: float | None = None
        self.abort_answered = False  # virDomainAbortJob returned (with or without an error)
        # Switched to post-copy: libvirt cannot abort it any more (the guest runs on the destination); it
        # ends by completing, or by failing when a connection breaks (keepalive), never by an abort.
        self.postcopy = False
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
        self._downtime_set = self.policy.max_downtime_ms is None
        pending: _Pending | None = None
        while not self._stop.wait(self.interval):
            pending, job = self._poll(pending)
            if job is None:  # the domain vanishes from the source at the end: not our business
                return
            if not job.active:
                continue
            action, why, progress = deadline_action(progress, self.clock(), job.data_total, job.data_remaining,
                                                    self.limits, self.policy)
            if action != "continue" and self._act(action, why):
                return

    def _poll(self, pending: _Pending | None) -> tuple[_Pending | None, JobInfo | None]:
        """The job as far as known now, and the call still outstanding; None: the job stats failed."""
        if pending is None:
            pending = _Pending(self.guest.job)
        if not pending.done.is_set():  # unanswered: judged as a job without progress (the stall deadline)
            waited = time.monotonic() - pending.started
            if not pending.late_noted and waited > self.call_s:
                pending.late_noted = True
                log.warning("domain %s: virDomainGetJobStats has not answered for %.0f s; the deadlines still "
                            "hold", self.guest.name, waited)
            return pending, _UNANSWERED
        try:
            job = pending.result()
        except Exception:
            return None, None
        if job.active:
            self._progress(job)
        return None, job

    def _progress(self, job: JobInfo) -> None:
        if not self._downtime_set:  # NOTE: no migrateToURI3 parameter for it; settable once the job runs
            self._downtime_set = True
            # NOTE: in its own thread: the call waits for QEMU's monitor, which a starved QEMU (seen
            # under TCG on a loaded host) may not answer for minutes — the deadlines must still hold.
            threading.Thread(target=self._set_max_downtime, daemon=True, name="migcoord-max-downtime").start()
        self.sink({"event": "progress", "percent": round(job.percent, 1),
                   "data_processed": job.data_processed, "data_remaining": job.data_remaining,
                   "data_total": job.data_total, "rate_bps": job.mem_bps, "elapsed_ms": job.elapsed_ms})

    def _act(self, action: str, why: str) -> bool:
        """Carry a deadline's action out, each libvirt call within ``call_s``; True once aborted."""
        if action == "postcopy":
            self.sink({"event": "postcopy-switch", "reason": why})
            try:
                call_within(self.call_s, "virDomainMigrateStartPostCopy", self.guest.start_postcopy)
                self.postcopy = True
                return False
            except Exception as e:
                why += f" and the switch to post-copy failed ({error_summary(e)})"
        if action == "suspend":
            self.sink({"event": "suspend", "reason": why})
            try:
                call_within(self.call_s, "virDomainSuspend", self.guest.suspend)
                self.suspended = True
                return False
            except Exception as e:
                if isinstance(e, CallTimedOut):  # it may still pause the guest: resume it if it did
                    self.suspended = True
                why += f" and suspending the guest failed ({error_summary(e)})"
        self.aborted, self.aborted_at = why, time.monotonic()
        self.sink({"event": "job-abort", "reason": why})
        try:  # the job may have just finished; migrateToURI3's result tells
            call_within(self.call_s, "virDomainAbortJob", self.guest.abort_job)
            self.abort_answered = True
        except CallTimedOut as e:
            log.warning("domain %s: %s", self.guest.name, e)
        except Exception:
            self.abort_answered = True
        return True
