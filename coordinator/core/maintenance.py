"""Pure: the "host is draining" marker every coordinator can read on the host itself.

Where it lives (``virt.host.Host.maintenance_marker``): a libvirt secret with the well-known
usage ``tls`` / ``migcoord-maintenance`` whose ``<description>`` holds this JSON. Why a secret:
it is a libvirt object on the host itself, so every coordinator with a connection sees it (no SSH,
no shared file system, no control-machine state); it survives libvirtd restarts (ephemeral='no');
libvirt 9.0 has no metadata API for networks or pools (virNetworkSetMetadata is 9.7+); and
operators see it with ``virsh secret-list``. It carries no value and no domain references it.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

USAGE_TYPE = "tls"
USAGE_NAME = "migcoord-maintenance"


@dataclass(frozen=True)
class Maintenance:
    since: float          # epoch seconds
    control_host: str
    run_id: str = ""
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"since": self.since, "since_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.since)),
                "control_host": self.control_host, "run": self.run_id, "reason": self.reason}

    def describe(self) -> str:
        why = f": {self.reason}" if self.reason else ""
        return (f"draining since {self.as_dict()['since_utc']} (set by migcoord on {self.control_host}"
                + (f", run {self.run_id}" if self.run_id else "") + f"){why}")


def format_marker(m: Maintenance) -> str:
    return json.dumps({"migcoord-maintenance": 1, "since": round(m.since, 3), "control_host": m.control_host,
                       "run": m.run_id, "reason": m.reason}, sort_keys=True)


def parse_marker(description: str | None) -> Maintenance | None:
    """The marker in a description; a marker secret whose description is not ours still means
    "draining" (someone made it on purpose), with what can be said about it."""
    if description is None:
        return None
    try:
        d = json.loads(description)
        return Maintenance(since=float(d.get("since", 0.0)), control_host=str(d.get("control_host", "?")),
                           run_id=str(d.get("run", "")), reason=str(d.get("reason", "")))
    except (ValueError, TypeError, AttributeError):
        return Maintenance(since=0.0, control_host="?", reason=description[:200])
