"""Pure: the ownership lease migcoord keeps in a SOURCE domain's metadata while it works on it,
and what a run may do about a job it finds on a domain (proceed, adopt, or leave it alone).

The lease is one element in migcoord's own XML namespace (virDomainSetMetadata with
VIR_DOMAIN_METADATA_ELEMENT), so every coordinator on every control machine can read who owns a
domain: run id, control host, pid (and its start time, against pid reuse), start, expiry and the
destination. NOTE: libvirt refuses to change metadata while an outgoing migration job runs (the
call waits for the state-change lock, then times out), so a lease cannot be renewed during the
migration itself: before each attempt its expiry is set past the run's own completion deadline
(when the run would have aborted the job itself) plus a grace period.

House rule 14: a job is adopted only when it is an outgoing migration carrying migcoord's lease
and that lease is expired or its owner provably dead; anything else is read, reported and left alone.

The metadata is writable by whoever may edit the domain (a tenant, in some clouds), so a lease is
untrusted input: every field is checked against what migcoord itself writes (``lease_problem``).
A lease that fails is INVALID: no ownership claim (it never blocks a free domain, so a forged one
cannot pin a host forever), never ours (never adopted, released or extended), and reported in one
line saying what is wrong and how to remove it (``REMOVE_HINT``).
"""
from __future__ import annotations

import enum
import re
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any

from .params import MAX_DEADLINE_S, Deadlines

NAMESPACE = "https://migcoord.invalid/lease/1"
PREFIX = "migcoord"
TTL_S = 120.0    # outside the migration job: planning, checks, provisioning, verification
GRACE_S = 60.0   # past the run's own completion deadline, before others may adopt its job


def attempt_ttl(limits: Deadlines) -> float:
    """How long the lease written before a migration attempt lasts: past the attempt's own deadlines
    (when the monitor would abort it) plus ``GRACE_S``."""
    return limits.completion_s + limits.stall_s + GRACE_S


# The longest lease migcoord ever writes (derived from the longest deadlines a run accepts), and how far
# another control host's clock may run ahead of ours: a lease expiring later than both is not one of ours.
MAX_TTL_S = max(TTL_S, attempt_ttl(Deadlines(completion_s=MAX_DEADLINE_S, stall_s=MAX_DEADLINE_S)))
CLOCK_SKEW_S = 300.0
REMOVE_HINT = f"remove it: virsh metadata DOMAIN {NAMESPACE} --remove --live --config"

# What migcoord writes: run ids (``steps.journal``), host names (gethostname), pids (Linux PID_MAX_LIMIT),
# times as "%.3f" epoch seconds, a destination URI (printable ASCII, no spaces).
RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_HOST = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,252}")
_DEST = re.compile(r"[!-~]{0,2048}")
_INT = re.compile(r"[0-9]{1,19}")
_TIME = re.compile(r"[0-9]{1,11}(\.[0-9]{1,9})?")  # < 1e11 s: before year 5138, so gmtime never fails
PID_MAX = 1 << 22


@dataclass(frozen=True)
class Lease:
    run_id: str
    control_host: str
    pid: int
    started: float        # epoch seconds
    expires: float        # epoch seconds
    dest: str = ""        # the destination URI this run migrates to
    pid_start: int = 0    # the owner's start time (/proc/PID/stat field 22), 0 when unknown
    problem: str = ""     # why this element is not a lease migcoord would write ("" = well-formed)

    def as_dict(self) -> dict[str, Any]:
        if self.problem:
            return {"invalid": self.problem}
        return {"run": self.run_id, "control_host": self.control_host, "pid": self.pid,
                "started": self.started, "expires": self.expires, "dest": self.dest}

    def owner(self) -> str:
        """One phrase naming the owner, for messages."""
        if self.problem:
            return f"nobody (an invalid migcoord lease: {self.problem})"
        return f"migcoord run {self.run_id} on {self.control_host} (pid {self.pid})"


def invalid(problem: str) -> Lease:
    """The stand-in for an element in our namespace that is not a lease migcoord writes: every field
    empty, so nothing can be read from it as a claim."""
    return Lease(run_id="", control_host="", pid=0, started=0.0, expires=0.0, problem=problem)


def _shown(value: str) -> str:
    return repr(value if len(value) <= 40 else value[:40] + "...")


def format_lease(lease: Lease) -> str:
    """The metadata element (without namespace: libvirt adds it with the prefix)."""
    el = ET.Element("lease", {"run": lease.run_id, "host": lease.control_host, "pid": str(lease.pid),
                              "pid-start": str(lease.pid_start), "started": f"{lease.started:.3f}",
                              "expires": f"{lease.expires:.3f}", "dest": lease.dest})
    return ET.tostring(el, encoding="unicode")


def parse_lease(xml: str | None) -> Lease | None:
    """The lease in a metadata element, or None when there is none or it is not a well-formed
    migcoord lease (a stranger's or damaged element is no ownership claim)."""
    if not xml or not xml.strip():
        return None
    try:
        el = ET.fromstring(xml)
    except ET.ParseError:
        return None
    return lease_of(el)


def lease_in_domain(domain: ET.Element) -> Lease | None:
    """The lease in a parsed ``<domain>`` element's ``<metadata>``: what virDomainGetMetadata returns for
    our namespace (its first child in that namespace, whatever the prefix: virXMLFindChildNodeByNs), so
    a caller holding the domain XML needs no second call. None as for ``parse_lease``."""
    metadata = domain.find("metadata")
    if metadata is None:
        return None
    el = next((c for c in metadata if isinstance(c.tag, str) and c.tag.startswith(f"{{{NAMESPACE}}}")), None)
    return None if el is None else lease_of(el)


def lease_of(el: ET.Element) -> Lease | None:
    """``parse_lease`` of a parsed element: None for an element that is not a lease at all; a lease
    whose fields are not what migcoord writes comes back ``invalid`` (``problem`` says which)."""
    if el.tag.rpartition("}")[2] != "lease":
        return None
    a = el.attrib
    checks = (("run", RUN_ID, True), ("host", _HOST, True), ("pid", _INT, True), ("pid-start", _INT, False),
              ("started", _TIME, True), ("expires", _TIME, True), ("dest", _DEST, False))
    for name, pattern, required in checks:
        if name not in a:
            if required:
                return invalid(f"attribute {name} is missing")
            continue
        if not pattern.fullmatch(a[name]):
            return invalid(f"{name}={_shown(a[name])} is not what migcoord writes")
    lease = Lease(run_id=a["run"], control_host=a["host"], pid=int(a["pid"]), started=float(a["started"]),
                  expires=float(a["expires"]), dest=a.get("dest", ""), pid_start=int(a.get("pid-start", "0")))
    if not 0 < lease.pid <= PID_MAX:
        return invalid(f"pid={lease.pid} is not a process id")
    if lease.expires < lease.started:
        return invalid(f"it expires ({lease.expires:.3f}) before it started ({lease.started:.3f})")
    return lease


def lease_problem(lease: Lease, now: float) -> str:
    """Why ``lease`` is not one migcoord would have written by ``now`` ("" when it could be): the
    fields (``lease_of``), then the times: started no later than now, expiring no later than the
    longest lease migcoord writes (``MAX_TTL_S``), both give or take ``CLOCK_SKEW_S``."""
    if lease.problem:
        return lease.problem
    if lease.started > now + CLOCK_SKEW_S:
        return f"it starts in the future ({_when(lease.started)})"
    if lease.expires > now + MAX_TTL_S + CLOCK_SKEW_S:
        return (f"it expires {_when(lease.expires)}, later than any lease migcoord writes "
                f"(at most {MAX_TTL_S:.0f} s ahead)")
    return ""


def checked(lease: Lease | None, now: float) -> Lease | None:
    """``lease`` as it stands at ``now``: an ``invalid`` stand-in when ``lease_problem`` finds one."""
    if lease is None:
        return None
    problem = lease_problem(lease, now)
    return lease if not problem or lease.problem else invalid(problem)


class LeaseState(enum.StrEnum):
    NONE = "none"              # no lease
    LIVE = "live"              # an owner that may still be working
    EXPIRED = "expired"        # past its expiry: the owner gave up or died
    OWNER_DEAD = "owner-dead"  # the owner ran on this control host and its process is gone
    INVALID = "invalid"        # not a lease migcoord writes (``lease_problem``): no claim, never ours


def lease_state(lease: Lease | None, now: float, this_host: str, owner_alive: bool | None) -> LeaseState:
    """Pure. ``owner_alive``: whether the owner's process exists, None when it cannot be known
    (it ran on another control host)."""
    if lease is None:
        return LeaseState.NONE
    if lease_problem(lease, now):
        return LeaseState.INVALID
    if now >= lease.expires:
        return LeaseState.EXPIRED
    if lease.control_host == this_host and owner_alive is False:
        return LeaseState.OWNER_DEAD
    return LeaseState.LIVE


class JobAction(enum.StrEnum):
    PROCEED = "proceed"  # nothing in the way
    ADOPT = "adopt"      # our own dead run's outgoing migration to this destination: watch it to its end
    BLOCK = "block"      # someone else's job or lease: leave it alone


def job_action(job_active: bool, operation: str, lease: Lease | None, state: LeaseState, dest_uri: str,
               own_run: str = "") -> tuple[JobAction, str]:
    """Pure: what a run may do about the domain's current job and lease, and why (for messages).
    Only a valid lease counts (``state`` INVALID, or a ``lease.problem``: no claim, never adopted);
    adoption needs a lease naming exactly this destination."""
    if lease is not None and (state is LeaseState.INVALID or lease.problem):
        note = f"an invalid migcoord lease in its metadata ({lease.problem or 'rejected'}; {REMOVE_HINT})"
        if not job_active:
            return JobAction.PROCEED, f"no job in progress; ignoring {note}"
        return (JobAction.BLOCK, f"a {operation or 'unknown'} job is in progress on the domain, not started "
                f"by migcoord; ignoring {note}")
    alive = state is LeaseState.LIVE and lease is not None and lease.run_id != own_run
    if not job_active:
        if alive:
            assert lease is not None
            return JobAction.BLOCK, (f"the domain is held by {lease.owner()} until "
                                     f"{_when(lease.expires)} (lease in its metadata)")
        return JobAction.PROCEED, "no job in progress"
    what = f"a {operation or 'unknown'} job is in progress on the domain"
    if lease is None:
        return JobAction.BLOCK, what + " (not started by migcoord)"
    if alive:
        return JobAction.BLOCK, f"{what}, owned by {lease.owner()} until {_when(lease.expires)}"
    if operation != "migration-out":
        return JobAction.BLOCK, f"{what}; not a migration, so not migcoord's (a stale lease of {lease.owner()})"
    if not lease.dest or lease.dest != dest_uri:
        return JobAction.BLOCK, (f"{what}: a migration to {lease.dest or 'an unnamed destination'} left by "
                                 f"{lease.owner()} ({state}); it is not going to this destination")
    return JobAction.ADOPT, (f"an outgoing migration to {lease.dest} left by {lease.owner()} "
                             f"({state}); migrate/evacuate adopt it and watch it to its end")


def _when(epoch: float) -> str:
    try:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
    except (OverflowError, OSError, ValueError):  # NOTE: only for a time no valid lease holds
        return f"{epoch!r} (not a time)"
