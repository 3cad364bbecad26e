"""``migcoord abort DOMAIN --from URI`` and ``migcoord complete DOMAIN --from URI``: control a
running outgoing migration (only a migration job; anything else is refused)."""
from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from coordinator.core.exit_codes import ExitCode, help_text

from . import render

if TYPE_CHECKING:
    from coordinator.flows.control import ControlResult

    from .invocation import ControlInvocation

EXIT_HELP = help_text({ExitCode.OK: "done",
                       ExitCode.BLOCKED: "no migration job on the domain (or another kind of job, which is left alone)",
                       ExitCode.USAGE: "usage error or bad input"})


def add_parsers(sub: Any) -> None:
    for name, helptext in (("abort", "abort the domain's running outgoing migration (the VM stays on the source)"),
                           ("complete", "make the running migration finish: switch to post-copy when allowed, "
                                        "else suspend the guest so it converges")):
        p: argparse.ArgumentParser = sub.add_parser(name, help=helptext, epilog=EXIT_HELP,
                                                    formatter_class=argparse.RawDescriptionHelpFormatter)
        p.add_argument("domain", help="domain name, UUID or id on the source")
        p.add_argument("--from", dest="src", required=True, metavar="SRC_URI", help="the migration's source host")
        p.add_argument("--json", action="store_true", help="print the result as JSON on stdout")


def _print(args: ControlInvocation, r: ControlResult) -> int:
    print(render.as_json(r.as_dict()) if args.json else render.control(r))
    return ExitCode.OK


# NOTE: the flows are imported in run_*, not at the top: building the parser stays cheap.
def run_abort(args: ControlInvocation) -> int:
    from coordinator.flows.control import abort_migration

    return _print(args, abort_migration(args.domain, args.src))


def run_complete(args: ControlInvocation) -> int:
    from coordinator.flows.control import complete_migration

    return _print(args, complete_migration(args.domain, args.src))
