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
"""
from __future__ import annotations

import enum
import math
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any

NAMESPACE = "https://migcoord.invalid/lease/1"
PREFIX = "migcoord"
TTL_S = 120.0    # outside the migration job: planning, checks, provisioning, verification
GRACE_S = 60.0   # past the run's own completion deadline, before others may adopt its job


@dataclass(frozen=True)
class Lease:
    run_id: str
    control_host: str
    pid: int
    started: float        # epoch seconds
    expires: float        # epoch seconds
    dest: str = ""        # the destination URI this run migrates to
    pid_start: int = 0    # the owner's start time (/proc/PID/stat field 22), 0 when unknown

    def as_dict(self) -> dict[str, Any]:
        return {"run": self.run_id, "control_host": self.control_host, "pid": self.pid,
                "started": self.started, "expires": self.expires, "dest": self.dest}

    def owner(self) -> str:
        """One phrase naming the owner, for messages."""
        return f"migcoord run {self.run_id} on {self.control_host} (pid {self.pid})"


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
    """``parse_lease`` of a parsed element."""
    if el.tag.rpartition("}")[2] != "lease":
        return None
    try:
        lease = Lease(run_id=el.attrib["run"], control_host=el.attrib["host"], pid=int(el.attrib["pid"]),
                      started=float(el.attrib["started"]), expires=float(el.attrib["expires"]),
                      dest=el.attrib.get("dest", ""), pid_start=int(el.attrib.get("pid-start", "0")))
    except (KeyError, ValueError):
        return None
    if not lease.run_id or not math.isfinite(lease.expires) or not math.isfinite(lease.started):
        return None
    return lease


class LeaseState(enum.StrEnum):
    NONE = "none"              # no lease
    LIVE = "live"              # an owner that may still be working
    EXPIRED = "expired"        # past its expiry: the owner gave up or died
    OWNER_DEAD = "owner-dead"  # the owner ran on this control host and its process is gone


def lease_state(lease: Lease | None, now: float, this_host: str, owner_alive: bool | None) -> LeaseState:
    """Pure. ``owner_alive``: whether the owner's process exists, None when it cannot be known
    (it ran on another control host)."""
    if lease is None:
        return LeaseState.NONE
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
    """Pure: what a run may do about the domain's current job and lease, and why (for messages)."""
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
    if lease.dest and lease.dest != dest_uri:
        return JobAction.BLOCK, (f"{what}: a migration to {lease.dest} left by {lease.owner()} ({state}); "
                                 "it is not going to this destination")
    return JobAction.ADOPT, (f"an outgoing migration to {lease.dest or dest_uri} left by {lease.owner()} "
                             f"({state}); migrate/evacuate adopt it and watch it to its end")


def _when(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
