"""Pure: the "host is draining" marker every coordinator can read on the host itself.

Where it lives (``virt.host.Host.maintenance_marker``): a libvirt secret with the well-known
usage ``tls`` / ``migcoord-maintenance`` whose ``<description>`` holds this JSON. Why a secret:
it is a libvirt object on the host itself, so every coordinator with a connection sees it (no SSH,
no shared file system, no control-machine state); it survives libvirtd restarts (ephemeral='no');
libvirt 9.0 has no metadata API for networks or pools (virNetworkSetMetadata is 9.7+); and
operators see it with ``virsh secret-list``. It carries no value and no domain references it.

Anyone who may define secrets on the host can write the description, so ``parse_marker`` trusts none
of it: a marker whose fields are not what ``format_marker`` writes still means "draining" (someone made
it on purpose) but comes back with ``problem`` saying what is wrong, its text made printable and short.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from typing import Any

USAGE_TYPE = "tls"
USAGE_NAME = "migcoord-maintenance"
LATEST_SINCE = 1e11   # epoch seconds (year 5138): any later "since" is not a time gmtime can show
TEXT_MAX = 200
CLEAR_HINT = "clear it with: migcoord maintenance off URI"


@dataclass(frozen=True)
class Maintenance:
    since: float          # epoch seconds
    control_host: str
    run_id: str = ""
    reason: str = ""
    problem: str = ""     # why the marker is malformed ("" = as format_marker writes it, or hand-made)

    def as_dict(self) -> dict[str, Any]:
        d = {"since": self.since, "since_utc": _utc(self.since), "control_host": self.control_host,
             "run": self.run_id, "reason": self.reason}
        return {**d, "problem": self.problem} if self.problem else d

    def describe(self) -> str:
        if self.problem:
            return f"draining (a malformed maintenance mark: {self.problem}; {CLEAR_HINT})"
        why = f": {self.reason}" if self.reason else ""
        return (f"draining since {_utc(self.since)} (set by migcoord on {self.control_host}"
                + (f", run {self.run_id}" if self.run_id else "") + f"){why}")


def _utc(epoch: float) -> str:
    if not (math.isfinite(epoch) and 0 <= epoch < LATEST_SINCE):  # NOTE: parse_marker never builds one
        return f"{epoch!r} (not a time)"
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def _text(value: str) -> str:
    """Printable and short: it ends up in one-line messages and logs."""
    text = "".join(c if c.isprintable() else "?" for c in value[:TEXT_MAX + 1])
    return text if len(text) <= TEXT_MAX else text[:TEXT_MAX] + "..."


def format_marker(m: Maintenance) -> str:
    return json.dumps({"migcoord-maintenance": 1, "since": round(m.since, 3), "control_host": m.control_host,
                       "run": m.run_id, "reason": m.reason}, sort_keys=True)


def parse_marker(description: str | None) -> Maintenance | None:
    """The marker in a description; a marker secret whose description is not ours still means
    "draining" (someone made it on purpose), with what can be said about it: a description that is
    not a JSON object is a hand-made mark (its text is the reason); an object whose fields are not
    what ``format_marker`` writes is malformed (``problem``)."""
    if description is None:
        return None
    hand_made = Maintenance(since=0.0, control_host="?", reason=_text(description))
    try:
        d = json.loads(description)
    except (ValueError, RecursionError):
        return hand_made
    if not isinstance(d, dict):
        return hand_made
    since, texts = d.get("since", 0.0), {k: d.get(k, default) for k, default in
                                         (("control_host", "?"), ("run", ""), ("reason", ""))}
    problems = [f"{k}={_text(repr(v))} is not text" for k, v in texts.items() if not isinstance(v, str)]
    if isinstance(since, bool) or not isinstance(since, int | float) or not (
            math.isfinite(since) and 0 <= since < LATEST_SINCE):
        problems.insert(0, f"since={_text(repr(since))} is not a time in epoch seconds")
        since = 0.0
    shown = {k: _text(v) if isinstance(v, str) else "?" for k, v in texts.items()}
    return Maintenance(since=float(since), control_host=shown["control_host"], run_id=shown["run"],
                       reason=shown["reason"], problem="; ".join(problems))
