"""``migcoord maintenance on|off|status HOST_URI``: mark a host as draining for every coordinator."""
from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from coordinator.core.exit_codes import ExitCode

from . import render

if TYPE_CHECKING:
    from .invocation import MaintenanceInvocation


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(
        "maintenance", help="mark a host as draining (no coordinator places domains onto it), clear or show it",
        description="The mark lives on the host itself (a libvirt secret with usage tls/migcoord-maintenance "
                    "and no value), so every coordinator, on any control machine, sees it.")
    p.add_argument("action", choices=["on", "off", "status"])
    p.add_argument("uri", metavar="HOST_URI")
    p.add_argument("--reason", default="", help="why (shown to other coordinators)")
    p.add_argument("--json", action="store_true")
    return p


def run(args: MaintenanceInvocation) -> int:
    from coordinator.flows.maintenance import maintenance  # NOTE: here: building the parser stays cheap

    m = maintenance(args.uri, args.action, args.reason)
    print(render.maintenance(args.uri, m, as_json_doc=args.json))
    return ExitCode.OK
