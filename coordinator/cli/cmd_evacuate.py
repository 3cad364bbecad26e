"""``migcoord evacuate --from SRC --to DST...``: move every domain off a host (cron-safe)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from coordinator.core.errors import MigcoordError
from coordinator.core.exit_codes import ExitCode

from . import options as opts
from . import render
from .render import EventPrinter

if TYPE_CHECKING:
    from .invocation import EvacuateInvocation

CRON_EXAMPLE = """

cron (empty a host every night; overlapping runs exit 75, a re-run finishes what is left; hosts, the
group rack2, value sources and the report/metrics paths come from /etc/migcoord/config.toml):
  30 2 * * * root migcoord --syslog --quiet evacuate --from hv1 --to-group rack2"""


def add_parser(sub: Any, epilog: str) -> argparse.ArgumentParser:
    e: argparse.ArgumentParser = sub.add_parser(
        "evacuate", help="move every domain off a host (cron-safe)", epilog=epilog + CRON_EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    e.add_argument("--from", dest="src", required=True, metavar="SRC_URI", help="the host to empty")
    e.add_argument("--to", dest="dsts", action="append", metavar="DST",
                   help="a destination URI or host alias from the settings file (repeat for several)")
    e.add_argument("--to-group", action="append", metavar="GROUP",
                   help="every host of this destination group from the settings file (repeatable)")
    e.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    e.add_argument("--report", type=Path, metavar="PATH",
                   help="also write the JSON report to PATH ({source} = the source host)")
    opts.add_metrics_option(e)
    e.add_argument("--dry-run", action="store_true", help="print the plan; change nothing")
    e.add_argument("--include-inactive", action="store_true",
                   help="also move shut-off persistent domains (offline migration)")
    e.add_argument("--exclude", action="append", default=[], metavar="NAME_OR_GLOB",
                   help="leave these domains where they are (repeatable)")
    e.add_argument("--parallel", type=int, default=2, metavar="N", help="concurrent migrations (default 2)")
    e.add_argument("--per-destination", type=int, default=2, metavar="N",
                   help="concurrent migrations into one destination (default 2)")
    e.add_argument("--max-duration", type=float, metavar="S", help="start no new migration after S seconds")
    e.add_argument("--on-interrupt", choices=["abort", "finish"], default="abort",
                   help="on Ctrl-C/SIGTERM start nothing new and abort the running migrations (default), or "
                        "let them finish; the report is written either way, exit 130/143")
    e.add_argument("--no-maintenance", action="store_true",
                   help="do not mark the source as draining (by default it is marked at the start, so no "
                        "coordinator places domains onto it; clear it with: migcoord maintenance off URI)")
    e.add_argument("--max-memory", action="append", default=[], metavar="DST_URI=MIB",
                   help="memory that may be migrating into that destination, this run's placements plus "
                        "migrations already inbound from anyone (default: its free memory)")
    opts.add_secret_options(e)
    opts.add_ssh_options(e)
    opts.add_policy_options(e)
    return e


def run(args: EvacuateInvocation) -> int:
    # NOTE: imported here, not at the top: building the parser (every command, --help) stays cheap.
    from coordinator.files.atomic import check_target
    from coordinator.flows.evacuate import evacuate, plan_evacuation
    from coordinator.steps.journal import Journal
    from coordinator.steps.parameters import Runtime

    from . import run_metrics

    ev = opts.evacuation_policy(args)
    options = opts.migrate_options(args, live=True, cleanup_source=False, dry_run=False)
    if args.report is not None:
        check_target(args.report, "report")  # before any connection: a bad path costs nothing
    run_metrics.check(args.metrics_file)
    if args.dry_run:
        plan = plan_evacuation(args.src, args.dsts, ev, options)
        print(render.as_json(plan.as_dict()) if args.json else render.evacuation_plan(plan))
        code = ExitCode.OK if not plan.unplaceable else ExitCode.BLOCKED
        _write_report(args.report, plan.as_dict())
        return code
    collector = run_metrics.Collector(EventPrinter(progress=False, quiet=args.quiet))
    journal = Journal(args.journal)
    try:
        report = evacuate(args.src, args.dsts, ev, options,
                          Runtime(journal=journal, lock_dir=args.lock_dir, on_event=collector))
    except MigcoordError as e:  # nothing ran (lock held, a host unreachable, bad input)
        run_metrics.write(args.metrics_file, "evacuate", args.src, e.exit_code, collector, [], quiet_errors=True)
        raise
    # NOTE: the outcome first: the VMs have moved (or not) whatever happens to the files below.
    print(render.as_json(report.as_dict()) if args.json else render.evacuation_report(report), flush=True)
    _write_report(args.report, report.as_dict())
    run_metrics.write(args.metrics_file, "evacuate", args.src, report.exit_code, collector,
                      run_metrics.evacuated(report, collector), quiet_errors=True)
    if journal.failed:
        warn(f"the journal {args.journal} is incomplete ({journal.failed}); the outcome above is what happened")
    # main turns SIGINT (130) into SIGTERM (143) after a SIGTERM
    return ExitCode.SIGINT if report.interrupted else report.exit_code


def warn(message: str) -> None:
    print(render.warning(message), file=sys.stderr)


def _write_report(path: Path | None, data: dict[str, Any]) -> None:
    """Atomically (files.atomic), so a cron job's consumer never reads half a report. A failure
    to write it is a warning: the run's outcome has already been printed and sets the exit code."""
    if path is None:
        return
    from coordinator.files.atomic import write_atomic

    try:
        write_atomic(path, (render.as_json(data) + "\n").encode(), what="report")
    except (OSError, MigcoordError) as e:
        warn(f"the report was not written to {path}: {getattr(e, 'strerror', None) or e}")
