"""The ownership lease on a source domain (the decisions are in ``core.lease_rules``): read it, take it,
extend it before a migration attempt, release it when the run ends — only ever our own.

The owner's liveness can be known only on the control host that wrote the lease: there the pid
(and its start time, so a reused pid does not count) is looked up in /proc.
"""
from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass

from coordinator.core.errors import Busy
from coordinator.core.lease_rules import (MAX_TTL_S, NAMESPACE, PREFIX, JobAction, Lease, LeaseState, checked,
                                    format_lease, job_action, lease_problem, lease_state, parse_lease)
from coordinator.steps.journal import Journal
from coordinator.virt.errors import error_summary
from coordinator.virt.guest import Guest, JobInfo

log = logging.getLogger("migcoord")


def this_host() -> str:
    return socket.gethostname()


def pid_start(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (/proc/PID/stat field 22); None when
    there is no such process or it is a zombie (a dead owner its parent has not reaped yet)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()  # after "(comm)", which may contain spaces
    if not fields or fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def owner_alive(lease: Lease) -> bool | None:
    """True/False when the lease was written on this control host, else None (cannot know, or an
    invalid lease: its pid names nothing)."""
    if lease.problem or lease.control_host != this_host():
        return None
    start = pid_start(lease.pid)
    return start is not None and (not lease.pid_start or start == lease.pid_start)


def read_lease(guest: Guest) -> Lease | None:
    return parse_lease(guest.metadata(NAMESPACE))


@dataclass(frozen=True)
class Ownership:
    """What one look at a domain's job and lease found, and what a run may do about it."""

    action: JobAction
    message: str
    operation: str
    lease: Lease | None
    state: LeaseState


def ownership(guest: Guest, dest_uri: str, now: float, own_run: str = "") -> Ownership:
    """Read the job and the lease (reads only) and decide (``core.lease_rules.job_action``)."""
    job = guest.job() if guest.is_active() else None
    return decide(job, read_lease(guest), dest_uri, now, own_run)


def state_of(lease: Lease | None, now: float) -> LeaseState:
    """``core.lease_rules.lease_state`` with what only this control host can know (its name, owner liveness)."""
    if lease is not None and lease_problem(lease, now):
        return LeaseState.INVALID
    return lease_state(lease, now, this_host(), owner_alive(lease) if lease is not None else None)


def decide(job: JobInfo | None, lease: Lease | None, dest_uri: str, now: float, own_run: str = "") -> Ownership:
    """``ownership`` of a job and a lease already read (None: the domain is not running), e.g. once per
    domain for every destination of an evacuation plan (the lease from the domain XML: ``core.domain.document``).
    An invalid lease comes back as ``core.lease_rules.invalid`` (what is wrong with it, no claim in it)."""
    lease = checked(lease, now)
    state = state_of(lease, now)
    action, message = job_action(bool(job and job.active), job.operation if job else "", lease, state,
                                 dest_uri, own_run)
    return Ownership(action, message, job.operation if job else "", lease, state)


class LeaseKeeper:
    """One run's lease on one source domain."""

    def __init__(self, run_id: str, dest_uri: str, wall: Callable[[], float], journal: Journal,
                 settle: Callable[[], None] = lambda: None) -> None:
        self.run_id, self.dest_uri, self.wall, self.journal, self.settle = run_id, dest_uri, wall, journal, settle
        self.started = wall()
        self.held = False

    def _lease(self, ttl_s: float) -> Lease:
        if not 0 < ttl_s <= MAX_TTL_S:  # NOTE: a lease longer than any we write would read back as invalid
            raise ValueError(f"lease of {ttl_s!r} s: longer than core.lease_rules.MAX_TTL_S")
        pid = os.getpid()
        return Lease(run_id=self.run_id, control_host=this_host(), pid=pid, started=self.started,
                     expires=self.wall() + ttl_s, dest=self.dest_uri, pid_start=pid_start(pid) or 0)

    def take(self, guest: Guest, ttl_s: float) -> None:
        """Look once more, write our lease, then read it back.

        The look right before the write leaves a race window of one round trip (the ownership read at
        the start of the run is seconds of planning and checks earlier); the read-back after ``settle``
        catches a coordinator that wrote inside that window: the last writer wins and the other one
        backs off (Busy) before changing anything."""
        before = checked(read_lease(guest), self.wall())
        if before is not None and before.problem:
            log.warning("domain %s: replacing an invalid migcoord lease in its metadata (%s)", guest.name,
                        before.problem)
            self.journal.record("lease-invalid-replaced", uuid=guest.uuid, problem=before.problem)
        elif before is not None and before.run_id != self.run_id and state_of(before, self.wall()) is LeaseState.LIVE:
            raise Busy(f"another coordinator took domain {guest.name} while this run was checking: "
                       f"{before.owner()}", hint="let it finish")
        lease = self._lease(ttl_s)
        guest.set_metadata(NAMESPACE, PREFIX, format_lease(lease))
        self.held = True
        self.settle()
        back = checked(read_lease(guest), self.wall())
        if back is None or back.problem or back.run_id != self.run_id:
            self.held = False
            raise Busy(f"another coordinator took domain {guest.name} at the same moment"
                       + (f": {back.owner()}" if back else ""), hint="let it finish")
        self.journal.record("lease-taken", uuid=guest.uuid, expires=round(lease.expires, 3))

    def extend(self, guest: Guest, ttl_s: float) -> None:
        """Push the expiry to now + ``ttl_s`` (before a migration attempt: past its deadline)."""
        lease = self._lease(ttl_s)
        guest.set_metadata(NAMESPACE, PREFIX, format_lease(lease))
        self.journal.record("lease-extended", uuid=guest.uuid, expires=round(lease.expires, 3))

    def release(self, guest: Guest | None, where: str, run_id: str | None = None) -> bool:
        """Remove the lease from ``guest`` if it is ours (never anyone else's) — or, after adopting
        a dead run's job, that run's (``run_id``); best effort: a failure is logged and
        journalled, a left-over lease expires by itself."""
        if guest is None:
            return False
        try:
            lease = read_lease(guest)
            if lease is None or lease.problem or lease.run_id != (run_id or self.run_id):
                return False
            guest.set_metadata(NAMESPACE, PREFIX, None)
        except Exception as e:  # NOTE: the run's outcome stays the news; the lease expires anyway
            self.journal.record("lease-release-failed", uuid=guest.uuid, host=where, error=error_summary(e))
            log.warning("could not remove this run's lease from %s on %s: %s", guest.name, where,
                        error_summary(e))
            return False
        self.journal.record("lease-released", uuid=guest.uuid, host=where)
        return True
