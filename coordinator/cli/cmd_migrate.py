"""``migcoord migrate DOMAIN --from SRC --to DST``: provision secrets, then live-migrate one domain."""
from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from coordinator.core.errors import MigcoordError
from coordinator.core.exit_codes import ExitCode

from . import options as opts
from . import render
from .render import EventPrinter

if TYPE_CHECKING:
    from .invocation import MigrateInvocation


def add_parser(sub: Any, epilog: str) -> argparse.ArgumentParser:
    m: argparse.ArgumentParser = sub.add_parser("migrate", help="provision secrets, then live-migrate one domain",
                                                epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter)
    m.add_argument("domain", help="domain name, UUID or id (as virsh list shows it)")
    opts.add_hosts(m)
    opts.add_secret_options(m)
    opts.add_ssh_options(m)
    m.add_argument("--dry-run", action="store_true", help="plan and check only; change nothing")
    m.add_argument("--cleanup-source-secrets", action="store_true",
                   help="after a verified migration, remove the source copies of the domain's secrets "
                        "that no other source domain uses (off by default)")
    m.add_argument("--offline", action="store_true", help="offline migration of a shut-off persistent domain")
    opts.add_policy_options(m)
    opts.add_metrics_option(m)
    m.add_argument("--timings", action="store_true",
                   help="print where the time went on stderr, one line per phase (start-up, connect, plan, checks, "
                        "provision, migration, verify, other); --json always has them under \"timings\"")
    return m


def run(args: MigrateInvocation) -> int:
    # NOTE: imported here, not at the top: building the parser (every command, --help) stays cheap.
    from dataclasses import replace

    from coordinator.flows.migrate import migrate
    from coordinator.steps.journal import Journal
    from coordinator.steps.parameters import Runtime

    from . import run_metrics, timings_output

    printer = EventPrinter(quiet=args.quiet)
    collector = run_metrics.Collector(printer)
    metrics_file = None if args.dry_run else args.metrics_file  # a plan never replaces a real run's metrics
    runtime = Runtime(on_event=collector, lock_dir=args.lock_dir)
    started: float | None = None
    run_metrics.check(metrics_file)
    try:
        if not args.dry_run:
            runtime = replace(runtime, journal=Journal(args.journal))
        options = opts.migrate_options(args, live=not args.offline, cleanup_source=args.cleanup_source_secrets,
                                       dry_run=args.dry_run)
        started = timings_output.startup_s()  # NOTE: the command starts working here; the flow times the rest
        result = migrate(args.domain, args.src, args.dst, options, runtime)
    except MigcoordError as e:
        timings_output.on_error(e.data, started, show=args.timings)
        run_metrics.write(metrics_file, "migrate", args.src, e.exit_code, collector,
                          run_metrics.not_migrated(args.domain, args.dst, e, collector), quiet_errors=True)
        raise
    result = replace(result, timings=result.timings and result.timings.with_startup(started))
    code = ExitCode.UNVERIFIED if result.state == "migrated-unverified" else ExitCode.OK
    # a metrics file that cannot be written is a warning: the VM has moved
    run_metrics.write(metrics_file, "migrate", args.src, code, collector, run_metrics.migrated(result, collector),
                      quiet_errors=True)
    if printer.tty:
        sys.stderr.write("\n")
    if args.timings:
        print(timings_output.render(result.as_dict()["timings"]), file=sys.stderr)
    if runtime.journal.failed:  # the migration's outcome (below) is what happened; the journal missed some of it
        print(render.warning(f"the journal {args.journal} is incomplete ({runtime.journal.failed})"), file=sys.stderr)
    print(render.as_json(result.as_dict()) if args.json else render.migration(result))
    return code
