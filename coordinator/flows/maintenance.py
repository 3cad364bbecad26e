"""Mark a host as draining where every coordinator sees it (``core.maintenance`` says where and
why there), read the mark, or clear it."""
from __future__ import annotations

import logging
import time
from collections.abc import Callable

from coordinator.core.errors import BadInput
from coordinator.core.maintenance import Maintenance, format_marker, parse_marker
from coordinator.core.uris import check_uri
from coordinator.flows.boundary import libvirt_errors
from coordinator.steps.lease import this_host
from coordinator.virt.host import Host

log = logging.getLogger("migcoord")


def read_maintenance(host: Host) -> Maintenance | None:
    return parse_marker(host.maintenance_marker())


def mark(host: Host, reason: str = "", run_id: str = "", now: float | None = None) -> Maintenance:
    """Mark ``host`` draining; an existing mark (anyone's) is kept as it is (a malformed one too: it
    still means draining; a warning says what is wrong with it)."""
    current = read_maintenance(host)
    if current is not None:
        if current.problem:
            log.warning("%s: keeping the existing mark: %s", getattr(host, "uri", "the host"), current.describe())
        return current
    m = Maintenance(since=time.time() if now is None else now, control_host=this_host(), run_id=run_id,
                    reason=reason)
    host.set_maintenance_marker(format_marker(m))
    return m


def maintenance(uri: str, action: str, reason: str = "",
                connect: Callable[[str], Host] = Host.open) -> Maintenance | None:
    """``action``: "on" (mark; keeps an existing mark), "off" (clear), "status" (read). Returns the
    mark in force afterwards (None: not draining)."""
    if action not in ("on", "off", "status"):
        raise BadInput(f"maintenance action must be on, off or status, got {action!r}")
    check_uri(uri)
    with libvirt_errors(), connect(uri) as h:
        if action == "on":
            return mark(h, reason)
        if action == "off":
            h.set_maintenance_marker(None)
            return None
        return read_maintenance(h)
