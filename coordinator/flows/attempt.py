"""One attempt of migrateToURI3: interruptible, watched, and bounded once it is aborted.

The call runs in a worker thread so the run's own thread stays free for Ctrl-C/SIGTERM and
``Runtime.cancel``; an abort (ours, the monitor's at a deadline, or the watchdog's) gives the job
``abort_s`` to end, else the outcome is ``Unsettled`` (``still_aborting``), never a hang (house rule 19).
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

from coordinator.core.errors import Interrupted, Unsettled
from coordinator.core.lease_rules import attempt_ttl
from coordinator.core.params import Deadlines, job_limit_s
from coordinator.flows.run_state import RunState
from coordinator.steps.lease import LeaseKeeper
from coordinator.steps.monitor import JobAborted, JobMonitor
from coordinator.steps.verify import safe_where, where_is
from coordinator.virt.errors import error_summary
from coordinator.virt.guest import CallTimedOut, Guest

log = logging.getLogger("migcoord")


class StillAborting(Exception):
    """A job has not ended ``abort_s`` after its abort was asked for (never retried)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class JobAborter:
    """The abort of one migration job: who asked for it and when, and its bound. Our own abort (on a
    signal, or the watchdog's) is repeated every second, one virDomainAbortJob at a time (a hung one
    is not stacked). NOTE: libvirt refuses an abort in some phases (e.g. while it still prepares the
    destination); an abort of a job that just finished fails harmlessly (where_is tells)."""

    def __init__(self, g: Guest, watchdog_s: float, abort_s: float) -> None:
        self.g, self.watchdog_s, self.abort_s = g, watchdog_s, abort_s
        self.started = time.monotonic()
        self.ours, self.why = False, ""
        self.asked: float | None = None  # when the abort was asked for (time.monotonic)
        self._busy = threading.Event()
        self._last = 0.0

    def ask(self, why: str) -> None:
        if not self.ours:
            self.ours, self.why = True, why
            self.asked = self.asked if self.asked is not None else time.monotonic()

    def step(self, monitor: JobMonitor) -> bool:
        """One look, between waits: True when the watchdog asked for the abort just now; raises
        ``StillAborting`` once the abort has had ``abort_s``."""
        now, watchdog = time.monotonic(), False
        if monitor.postcopy and not self.ours:
            # NOTE: libvirt refuses to abort a post-copy migration; it ends by completing or failing on its
            # own (a broken connection: keepalive), so neither the deadline's abort nor the watchdog applies.
            return False
        if self.asked is None and monitor.aborted_at is not None:
            self.asked, self.why = monitor.aborted_at, f"the migration {monitor.aborted}"
        if self.asked is None and now - self.started > self.watchdog_s:
            self.ask(f"no abort {self.watchdog_s:.0f} s after the start, past the monitor's deadlines")
            watchdog = True
        if self.asked is not None and now - self.asked > self.abort_s:
            raise StillAborting(self.why)
        if self.ours and not self._busy.is_set() and now - self._last >= 1.0:
            self._busy.set()
            self._last = now
            threading.Thread(target=self._abort, daemon=True, name="migcoord-abort").start()
        return watchdog

    def _abort(self) -> None:
        try:
            self.g.abort_job()
        except Exception:
            pass
        finally:
            self._busy.clear()


def attempt(st: RunState, lease: LeaseKeeper, flags: frozenset[str], params: dict[str, Any],
            limits: Deadlines) -> str:
    """One try (``tenacity`` calls it again on a transient error): "migrated", or "completed-earlier"
    when a retry finds the VM already on the destination."""
    st.attempts += 1
    journal, uuid = st.rt.journal, st.guest.uuid
    if st.attempts > 1:
        if not st.bounded("virConnectIsAlive", st.src.alive):
            st.src = st.rt.connect(st.src.uri)
        where = st.bounded("the look-up of where the VM runs", where_is, st.src, st.dst, uuid)
        journal.record("migration-retry-check", uuid=uuid, attempt=st.attempts, where=where)
        if where == "destination":
            return "completed-earlier"
    g = st.src.find_guest(uuid) or st.guest
    # NOTE: libvirt cannot change metadata during the migration job, so the lease is pushed past
    # this attempt's own deadline (when the monitor would abort it) before it starts.
    lease.extend(g, attempt_ttl(limits))
    journal.record("migration-attempt", uuid=uuid, attempt=st.attempts)
    st.rt.on_event({"event": "migration-attempt", "attempt": st.attempts})
    with JobMonitor(g, st.rt.on_event, limits, st.options.policy, st.rt.clock, call_s=st.bounds.call_s) as monitor:
        try:
            run_interruptibly(st, g, flags, params, monitor, limits)
        except StillAborting:
            raise  # the job may still run: nothing is resumed or undone under it
        except Interrupted:
            resume_if_we_paused(st, g, monitor)
            raise
        except Exception:
            resume_if_we_paused(st, g, monitor)
            if monitor.aborted:
                raise JobAborted(f"job aborted: the migration {monitor.aborted}") from None
            raise
    return "migrated"


def resume_if_we_paused(st: RunState, g: Guest, monitor: JobMonitor) -> None:
    """--on-deadline suspend paused the guest and the migration still failed: it runs again on
    the source (only a pause this run made is undone)."""
    if not monitor.suspended:
        return
    st.start_cleanup()
    try:
        if st.bounded("virDomainGetState", lambda: g.is_active() and g.status().state == "paused"):
            st.bounded("virDomainResume", g.resume)
            st.rt.journal.record("guest-resumed", uuid=g.uuid, host=st.src.uri)
    except Exception as e:
        log.warning("could not resume %s on %s after the failed migration: %s", g.name, st.src.uri,
                    error_summary(e))


def run_interruptibly(st: RunState, g: Guest, flags: frozenset[str], params: dict[str, Any], monitor: JobMonitor,
                      limits: Deadlines) -> None:
    """migrateToURI3 in a worker thread, so that this thread stays free to notice Ctrl-C/SIGTERM
    (a KeyboardInterrupt here) or ``Runtime.cancel``; then abort the job (virDomainAbortJob)
    and wait for libvirt to settle before raising ``Interrupted``.

    Every wait here has a bound (core.params): once the abort was asked for — on a signal, by the
    monitor at a deadline, or by this thread's own watchdog (``job_limit_s``) should the monitor
    not have — migrateToURI3 gets ``abort_s`` to return, else ``StillAborting``. The call itself
    cannot be cancelled: it stays in its daemon thread (a late answer is dropped)."""
    outcome: list[BaseException | None] = []
    done = threading.Event()  # NOTE: not Thread.is_alive(): a join interrupted by Ctrl-C can make it lie

    def work() -> None:
        try:
            g.migrate(st.dst.uri, params, flags)
            outcome.append(None)
        except BaseException as e:  # handed to the waiting thread
            outcome.append(e)
        finally:
            done.set()

    aborter = JobAborter(g, job_limit_s(limits, st.bounds), st.bounds.abort_s)
    interrupted = noticed = launched = False
    while True:
        try:  # NOTE: a signal from the moment the call starts is caught here
            if not launched:
                launched = True
                threading.Thread(target=work, daemon=True, name="migcoord-migrate").start()
            if done.wait(0.2):
                break
        except KeyboardInterrupt:
            interrupted = True
        if (interrupted or st.rt.cancel.is_set()) and not noticed:
            interrupted = noticed = True  # the first signal: from now on, a further one waits for the cleanup
            _abort_on_interrupt(st, aborter)
        st.shield.tick()
        if aborter.step(monitor):
            st.rt.journal.record("migration-watchdog-abort", uuid=st.guest.uuid, after_s=round(aborter.watchdog_s))
    if interrupted:
        raise Interrupted("interrupted")
    err = outcome[0] if outcome else None
    if err is not None:
        raise err


def _abort_on_interrupt(st: RunState, aborter: JobAborter) -> None:
    """The first signal (or ``Runtime.cancel``): shield the cleanup, start its budget, ask for the abort."""
    st.shield.engage()
    st.start_cleanup()
    st.rt.journal.record("migration-interrupted", uuid=st.guest.uuid)
    st.rt.on_event({"event": "job-abort", "reason": "interrupted"})
    aborter.ask("interrupted")


def still_aborting(st: RunState, e: StillAborting, left: Sequence[str], *,
                   job: str = "migrateToURI3 has not returned", adopted: bool = False) -> Unsettled:
    """A job did not end within the abort bound (``job`` names it): say where the VM is (asked within
    the cleanup budget) and what to do. Nothing is rolled back — the job may still complete, and the VM
    would need its secrets (``left``, this run's) on the destination — and the lease stays to mark the job."""
    st.start_cleanup()
    st.unsettled = True
    name, src, dst, uuid = st.guest.name, st.src.uri, st.dst.uri, st.guest.uuid
    try:
        where = st.bounded("the look-up of where the VM runs", safe_where, st.src, st.dst, uuid)
    except CallTimedOut:
        where = "not known"
    extra = {"adopted": True} if adopted else {}
    st.rt.journal.record("migration-unsettled", uuid=uuid, error=e.reason, where=where, secrets_left=list(left),
                         **extra)
    kept = (f"; secret(s) {', '.join(left)} this run created on {dst} were left in place (the "
            "migration may still complete)") if left else ""
    why = f"{job} {st.bounds.abort_s:g} s after the abort was asked for ({e.reason})"
    if where == "destination":
        return Unsettled(f"still aborting, but the VM is running on the destination {dst}: {why}{kept}; look "
                         f"with `virsh -c {dst} dominfo {name}` and `virsh -c {src} domjobinfo {name}`",
                         where=where, attempts=st.attempts)
    on = "on the source" if where == "source" else "believed to be on the source (it did not answer)"
    return Unsettled(f"still aborting: the VM is {on} {src}, its migration job may still run there: {why}"
                     f"{kept}; run `migcoord abort {name} --from {src}` or look with "
                     f"`virsh -c {src} domjobinfo {name}`", where=where if where == "source" else "unknown",
                     attempts=st.attempts)
