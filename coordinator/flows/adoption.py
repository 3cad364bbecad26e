"""Adoption of a stale job: an outgoing migration left by our own dead run (its lease expired or its
process is gone; ``core.lease_rules.job_action`` decides). With peer-to-peer the source daemon carries
on without its client, so the job is watched to its end under this run's deadlines — aborted if it
overruns them — instead of failing or starting a second one.
"""
from __future__ import annotations

import contextlib
import logging

from coordinator.core.errors import Interrupted
from coordinator.core.params import Deadlines
from coordinator.flows.run_state import RunState
from coordinator.steps.lease import LeaseKeeper, Ownership
from coordinator.steps.monitor import JobMonitor
from coordinator.steps.verify import where_is
from coordinator.virt.errors import LibvirtError
from coordinator.virt.guest import Guest

log = logging.getLogger("migcoord")

# How long libvirt may take to remove a failed migration's incoming side on the destination.
INCOMING_GONE_S = 60.0


def adopt(st: RunState, lease: LeaseKeeper, own: Ownership, limits: Deadlines) -> Guest | None:
    """Watch the dead run's job to its end. The domain on the destination when the job moved it
    there (the dead run's lease, which travelled with it, is cleared); None when it is still on the
    source, once the destination dropped the job's incoming side, so the run goes on afresh."""
    watch_adopted_job(st, limits, own.message)
    if where_is(st.src, st.dst, st.guest.uuid) != "destination":
        wait_incoming_side_gone(st)
        return None
    d = st.dst.find_guest(st.guest.uuid)
    assert d is not None and own.lease is not None
    lease.release(d, st.dst.uri, run_id=own.lease.run_id)
    st.rt.journal.record("already-on-destination", uuid=d.uuid, host=st.dst.uri)
    return d


def watch_adopted_job(st: RunState, limits: Deadlines, why: str) -> None:
    """Wait for the adopted job to end under a ``JobMonitor`` (progress, deadlines). Adopted, so
    ours: Ctrl-C or ``Runtime.cancel`` aborts it like our own."""
    guest, journal, emit = st.guest, st.rt.journal, st.rt.on_event
    job = guest.job()
    journal.record("stale-job-adopted", uuid=guest.uuid, elapsed_ms=job.elapsed_ms, reason=why)
    emit({"event": "stale-job-adopted", "elapsed_ms": job.elapsed_ms})
    log.warning("domain %s: adopting %s", guest.name, why)
    with JobMonitor(guest, emit, limits, st.options.policy, st.rt.clock) as monitor:
        while True:
            try:
                if not guest.is_active() or not guest.job().active:
                    break
            except Exception:  # the domain left the source: the job completed
                break
            try:
                if st.rt.cancel.is_set():
                    raise KeyboardInterrupt
                st.rt.sleep(0.2)
            except KeyboardInterrupt:  # adopted, so ours: stop it like our own
                journal.record("migration-interrupted", uuid=guest.uuid, adopted=True)
                with contextlib.suppress(Exception):
                    guest.abort_job()
                raise Interrupted(f"interrupted while watching the adopted migration of {guest.name}; it "
                                  "was aborted") from None
    if monitor.aborted:
        journal.record("stale-job-aborted", uuid=guest.uuid, reason=monitor.aborted)


def wait_incoming_side_gone(st: RunState, limit_s: float = INCOMING_GONE_S) -> None:
    """The adopted migration failed or was aborted: libvirt removes its incoming side on the
    destination a moment later. Wait for that (bounded) so the checks do not see a clash."""
    end = st.rt.clock() + limit_s
    while st.rt.clock() < end:
        try:
            d = st.dst.find_guest(st.guest.uuid)
            if d is None or not d.is_active():
                return
        except LibvirtError:  # removed between the look-up and the question
            return
        st.rt.sleep(0.5)
