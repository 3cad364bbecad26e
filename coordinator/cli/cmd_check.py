"""``migcoord check DOMAIN... --from SRC --to DST [--json] [--skip ID_OR_TAG]... [--waive ID]...``

Read-only. Exit 0 when nothing blocks and nothing that decides success is unknown, 1 when something
blocks, 6 when only a decisive unknown stands in the way (``checks.registry.decisive``), 2 on bad input.
The matrix in tests/lab/test_verdict_matrix.py (where present) proves the verdict against real migrations.
"""
from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from coordinator.core.exit_codes import ExitCode, help_text

from . import options as opts
from . import render

if TYPE_CHECKING:
    from checks.registry import Report

    from .invocation import CheckInvocation

EXIT_HELP = help_text({
    ExitCode.OK: "nothing blocks the migration and nothing that decides it is unknown (warnings may be\n"
                 "listed; with --accept-unknown, \"GO with unknowns\" names what the checks could not learn)",
    ExitCode.BLOCKED: "at least one error-severity check failed (and was not waived)",
    ExitCode.USAGE: "usage error or bad input (bad URI, unknown domain or check id)",
    ExitCode.UNKNOWN: "UNKNOWN: nothing blocks, but an error-severity check could not learn a fact that decides\n"
                      "success (e.g. a private destination copy's value; without --ssh, a local disk on the\n"
                      "destination); the hints say how to make it known. migrate/evacuate refuse it the same way."})


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = subparsers.add_parser("check", help="run the pre-flight checks; change nothing",
                              epilog=EXIT_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("domains", nargs="+", metavar="DOMAIN", help="domain name, UUID or id (one or more)")
    opts.add_hosts(p)
    opts.add_secret_options(p)
    opts.add_ssh_options(p)
    p.add_argument("--skip", action="append", default=[], metavar="ID_OR_TAG",
                   help="do not run this check id or every check with this tag (repeatable)")
    p.add_argument("--waive", action="append", default=[], metavar="ID",
                   help="report this blocking check id as waived instead of blocking (repeatable)")
    p.add_argument("--offline", action="store_true", help="check for an offline migration")
    p.add_argument("--copy-storage", action="store_true", help="local disks will be copied")
    p.add_argument("--unsafe", action="store_true", help="disks are on shared storage libvirt cannot detect")
    opts.add_accept_unknown(p)
    return p


def run(args: CheckInvocation) -> int:
    # NOTE: imported here, not at the top: building the parser (every command, --help) stays cheap.
    from checks import preflight
    from coordinator.core.params import MigrationPolicy
    from coordinator.flows.boundary import libvirt_errors
    from coordinator.steps.parameters import MigrateOptions

    policy = MigrationPolicy(live=not args.offline, copy_storage=args.copy_storage, unsafe=args.unsafe)
    options = MigrateOptions(policy=policy, secret_policy=opts.secret_policy(args, cleanup_source=False),
                             keyring=opts.keyring(args), skip=args.skip, waive=args.waive, ssh=opts.ssh_config(args))
    with libvirt_errors():
        report = preflight(args.src, args.dst, args.domains, options)
    print(render.as_json(report.as_dict()) if args.json else render.check_report(report,
                                                                                accept_unknown=args.accept_unknown))
    return exit_code(report, accept_unknown=args.accept_unknown)


def exit_code(report: Report, *, accept_unknown: bool = False) -> int:
    """1 something blocks; 6 (``Undecided``) a decisive unknown and not accepted; else 0."""
    from coordinator.core.errors import Blocked, Undecided

    if report.blocking:
        return Blocked.exit_code
    return Undecided.exit_code if report.decisive and not accept_unknown else ExitCode.OK
