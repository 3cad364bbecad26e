"""Adoption of a stale job: an outgoing migration left by our own dead run (its lease expired or its
process is gone; ``core.lease_rules.job_action`` decides). With peer-to-peer the source daemon carries
on without its client, so the job is watched to its end under this run's deadlines — aborted if it
overruns them — instead of failing or starting a second one.

Every wait has a bound (house rule 19): the watch ends at the latest ``abort_s`` after the abort was
asked for (by the monitor at a deadline, or by the watchdog at ``core.params.job_limit_s``), else
``Unsettled``; each look is one call within ``call_s``.
"""
from __future__ import annotations

import contextlib
import logging

from coordinator.core.errors import Interrupted
from coordinator.core.params import Deadlines, job_limit_s
from coordinator.flows.attempt import JobAborter, StillAborting, still_aborting
from coordinator.flows.run_state import RunState, location_unknown
from coordinator.steps.lease import LeaseKeeper, Ownership
from coordinator.steps.monitor import JobMonitor
from coordinator.steps.verify import where_is
from coordinator.virt.errors import LibvirtError, error_summary
from coordinator.virt.guest import CallTimedOut, Guest
from coordinator.virt.host import Host

log = logging.getLogger("migcoord")

# How long libvirt may take to remove a failed migration's incoming side on the destination.
INCOMING_GONE_S = 60.0
ADOPTED_JOB = "the adopted migration job has not ended"


def adopt(st: RunState, lease: LeaseKeeper, own: Ownership, limits: Deadlines) -> Guest | None:
    """Watch the dead run's job to its end. The domain on the destination when the job moved it
    there (the dead run's lease, which travelled with it, is cleared); None when it is still on the
    source, once the destination dropped the job's incoming side, so the run goes on afresh."""
    watch_adopted_job(st, limits, own.message)
    name, uuid, dst = st.guest.name, st.guest.uuid, st.dst

    def there() -> Guest | None:
        return dst.find_guest(uuid) if where_is(st.src, dst, uuid) == "destination" else None

    try:
        moved = st.bounded("the look-up of where the VM runs", there)
    except CallTimedOut as t:
        raise location_unknown(st, t, f"watching the adopted migration of {name} to {dst.uri}",
                               "the adopted migration ended", adopted=True) from None
    if moved is None:
        wait_incoming_side_gone(st)
        return None
    assert own.lease is not None
    _clear_lease(st, lease, moved, own.lease.run_id)
    st.rt.journal.record("already-on-destination", uuid=moved.uuid, host=dst.uri)
    return moved


def watch_adopted_job(st: RunState, limits: Deadlines, why: str) -> None:
    """Wait for the adopted job to end, under a ``JobMonitor`` (progress, deadlines) and a
    ``JobAborter`` (its bound). Adopted, so ours: Ctrl-C or ``Runtime.cancel`` aborts it like our own."""
    guest, journal, emit = st.guest, st.rt.journal, st.rt.on_event
    elapsed = _elapsed_ms(st)
    journal.record("stale-job-adopted", uuid=guest.uuid, elapsed_ms=elapsed, reason=why)
    emit({"event": "stale-job-adopted", "elapsed_ms": elapsed})
    log.warning("domain %s: adopting %s", guest.name, why)
    aborter = JobAborter(guest, job_limit_s(limits, st.bounds), st.bounds.abort_s)
    try:
        with JobMonitor(guest, emit, limits, st.options.policy, st.rt.clock, call_s=st.bounds.call_s) as monitor:
            while _job_runs(st):
                if aborter.step(monitor):
                    journal.record("migration-watchdog-abort", uuid=guest.uuid, after_s=round(aborter.watchdog_s),
                                   adopted=True)
                if st.rt.cancel.is_set():
                    raise KeyboardInterrupt
                st.rt.sleep(0.2)
    except KeyboardInterrupt:
        raise _interrupted(st) from None
    except StillAborting as e:
        raise still_aborting(st, e, [], job=ADOPTED_JOB, adopted=True) from None
    if monitor.aborted:
        journal.record("stale-job-aborted", uuid=guest.uuid, reason=monitor.aborted)


def _elapsed_ms(st: RunState) -> int | None:
    try:
        return st.bounded("virDomainGetJobStats", st.guest.job).elapsed_ms
    except CallTimedOut:
        return None


def _job_runs(st: RunState) -> bool:
    """Whether the adopted job still runs. A look with no answer within ``call_s`` counts as "still
    runs": then the aborter's bound decides, not the look."""
    g = st.guest
    try:
        return st.bounded("virDomainGetJobStats", lambda: g.is_active() and g.job().active)
    except CallTimedOut:
        return True
    except Exception:  # the domain left the source: the job completed
        return False


def _interrupted(st: RunState) -> Interrupted:
    g = st.guest
    st.rt.journal.record("migration-interrupted", uuid=g.uuid, adopted=True)
    with contextlib.suppress(Exception):
        st.bounded("virDomainAbortJob", g.abort_job)
    return Interrupted(f"interrupted while watching the adopted migration of {g.name}; it was aborted")


def _clear_lease(st: RunState, lease: LeaseKeeper, there: Guest, run_id: str) -> None:
    """Having adopted the dead run's job, clear its lease on the destination copy. Best effort: the
    outcome stays the news, and a left-over lease expires by itself."""
    try:
        st.bounded("the lease release", lease.release, there, st.dst.uri, run_id)
    except CallTimedOut as e:
        st.rt.journal.record("lease-release-failed", uuid=there.uuid, host=st.dst.uri, error=error_summary(e))
        log.warning("could not remove the adopted run's lease on %s: %s (it expires by itself)", st.dst.uri,
                    error_summary(e))


def wait_incoming_side_gone(st: RunState, limit_s: float = INCOMING_GONE_S) -> None:
    """The adopted migration failed or was aborted: libvirt removes its incoming side on the
    destination a moment later. Wait for that (at most ``limit_s``) so the checks do not see a clash;
    a look that does not answer within ``call_s`` ends the wait (the checks then tell)."""
    end = st.rt.clock() + limit_s
    while st.rt.clock() < end:
        try:
            if st.bounded("the destination's look-up of the domain", _gone, st.dst, st.guest.uuid):
                return
        except (CallTimedOut, LibvirtError):  # LibvirtError: removed between the look-up and the question
            return
        st.rt.sleep(0.5)


def _gone(dst: Host, uuid: str) -> bool:
    d = dst.find_guest(uuid)
    return d is None or not d.is_active()
