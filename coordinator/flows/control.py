"""Operator control of a running migration: ``abort`` it, or ``complete`` it (switch to post-copy
when the migration allows it, else suspend the guest so it converges). Only ever a migration job:
anything else (a backup, a dump, a save, ...) is refused and left alone (house rule 14)."""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from coordinator.core.errors import Blocked
from coordinator.core.uris import check_uri
from coordinator.flows.boundary import libvirt_errors
from coordinator.steps.lease import read_lease
from coordinator.virt.errors import LibvirtError, error_summary
from coordinator.virt.guest import Guest
from coordinator.virt.host import Host

log = logging.getLogger("migcoord")


@dataclass(frozen=True)
class ControlResult:
    domain: str
    uuid: str
    host: str
    action: str     # "aborted" | "postcopy" | "suspended"
    owner: str = ""  # from the migcoord lease, when there is one
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"domain": self.domain, "uuid": self.uuid, "host": self.host, "action": self.action,
                "owner": self.owner, "note": self.note}


def _migration(h: Host, domain: str) -> tuple[Guest, str]:
    g = h.require_guest(domain)
    job = g.job()
    if not job.active:
        raise Blocked(f"no job is in progress on {g.name} ({h.uri})", hint="nothing to do")
    if job.operation != "migration-out":
        raise Blocked(f"the job on {g.name} is a {job.operation or 'unknown'} job, not an outgoing migration; "
                      "migcoord only controls migrations", hint="use virsh domjobabort if that is what you mean")
    lease = read_lease(g)
    return g, lease.owner() if lease else ""


def abort_migration(domain: str, uri: str, connect: Callable[[str], Host] = Host.open) -> ControlResult:
    """virDomainAbortJob on the domain's outgoing migration (source host ``uri``). The run that
    started it (migcoord or another tool) sees its migration fail; the VM stays on the source."""
    check_uri(uri)
    with libvirt_errors(), connect(uri) as h:
        g, owner = _migration(h, domain)
        g.abort_job()
        return ControlResult(g.name, g.uuid, h.uri, "aborted", owner)


def complete_migration(domain: str, uri: str, connect: Callable[[str], Host] = Host.open) -> ControlResult:
    """Make the outgoing migration finish: virDomainMigrateStartPostCopy when it was started with
    post-copy allowed; otherwise virDomainSuspend, so the guest stops dirtying memory and the
    migration converges (the destination resumes it)."""
    check_uri(uri)
    with libvirt_errors(), connect(uri) as h:
        g, owner = _migration(h, domain)
        try:
            g.start_postcopy()
            return ControlResult(g.name, g.uuid, h.uri, "postcopy", owner)
        except LibvirtError as e:
            # NOTE: libvirt refuses (VIR_ERR_OPERATION_INVALID) unless the migration has VIR_MIGRATE_POSTCOPY.
            log.info("post-copy not possible (%s); suspending the guest instead", error_summary(e))
            why = error_summary(e)
        g.suspend()
        return ControlResult(g.name, g.uuid, h.uri, "suspended", owner,
                             note=f"post-copy not possible ({why}); the guest is paused until the migration "
                                  "completes (the destination resumes it); if it fails, resume it with "
                                  "virsh resume")
