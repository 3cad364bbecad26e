"""``migcoord evacuate --from SRC --to DST...``: move every domain off a host (cron-safe)."""
from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from coordinator.core.errors import BadInput
from coordinator.core.evacuation import EvacuationPlan, EvacuationPolicy
from coordinator.flows.evacuate import evacuate, plan_evacuation
from coordinator.steps.journal import Journal
from coordinator.steps.options import Runtime

from . import options as opts
from .render import EventPrinter, table

CRON_EXAMPLE = """

cron (empty a host every night; overlapping runs refuse, a re-run finishes what is left):
  30 2 * * * root migcoord evacuate --from qemu+ssh://hv1/system --to qemu+ssh://hv2/system \\
      --to qemu+ssh://hv3/system --secret-dir /etc/migcoord/keys --report /var/log/migcoord/last.json"""


def add_parser(sub: Any, epilog: str) -> argparse.ArgumentParser:
    e: argparse.ArgumentParser = sub.add_parser(
        "evacuate", help="move every domain off a host (cron-safe)", epilog=epilog + CRON_EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    e.add_argument("--from", dest="src", required=True, metavar="SRC_URI", help="the host to empty")
    e.add_argument("--to", dest="dsts", required=True, action="append", metavar="DST_URI",
                   help="a destination (repeat for several)")
    e.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    e.add_argument("--report", type=Path, metavar="PATH", help="also write the JSON report to PATH")
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



def _capacity(specs: Sequence[str]) -> dict[str, int]:
    out = {}
    for spec in specs:
        uri, sep, mib = spec.rpartition("=")
        if not sep or not uri or not mib.isdigit():
            raise BadInput(f"--max-memory expects DST_URI=MIB, got {spec!r}")
        out[uri] = int(mib)
    return out


def render_plan(plan: EvacuationPlan) -> str:
    rows = [("DOMAIN", "MODE", "MEMORY", "DESTINATION", "SECRETS", "NOTE")]
    for d in plan.domains:
        todo = [f"{p.uuid} {p.action}" for p in d.secrets]
        rows.append((d.name, "live" if d.live else "offline", f"{d.memory_bytes // 2**20} MiB",
                     d.destination or "-", ", ".join(todo) or "-", d.reason))
    return table(rows) + "".join(f"\nexcluded: {n}" for n in plan.excluded)


def run(args: argparse.Namespace) -> int:
    ev = EvacuationPolicy(include_inactive=args.include_inactive, exclude=tuple(args.exclude),
                          parallel=args.parallel, per_destination=args.per_destination,
                          max_duration_s=args.max_duration, capacity_mib=_capacity(args.max_memory),
                          on_interrupt=args.on_interrupt, mark_source=not args.no_maintenance)
    options = opts.migrate_options(args)
    if args.dry_run:
        plan = plan_evacuation(args.src, args.dsts, ev, options)
        print(json.dumps(plan.as_dict(), indent=2, sort_keys=True) if args.json else render_plan(plan))
        _write_report(args.report, plan.as_dict())
        return 0 if not plan.unplaceable else 1
    printer = EventPrinter(progress=False)
    report = evacuate(args.src, args.dsts, ev, options,
                      Runtime(journal=Journal(args.journal), lock_dir=args.lock_dir, on_event=printer))
    _write_report(args.report, report.as_dict())
    if args.json:
        print(json.dumps(report.as_dict(), indent=2, sort_keys=True))
    else:
        rows = [("DOMAIN", "STATE", "DESTINATION", "TIME", "REASON")]
        rows += [(o.domain, o.state, o.destination or "-", f"{o.duration_s:.1f}s", o.reason)
                 for o in report.outcomes]
        moved = sum(o.moved for o in report.outcomes)
        print(table(rows) + f"\n{moved} of {len(report.outcomes)} moved in {report.duration_s:.1f}s"
              + (" (interrupted)" if report.interrupted else ""))
    return 130 if report.interrupted else report.exit_code  # main turns 130 into 143 after SIGTERM


def _write_report(path: Path | None, data: dict[str, Any]) -> None:
    """Atomically, so a cron job's consumer never reads half a report."""
    if path is None:
        return
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


