"""``migcoord`` command line: argparse, output and exit codes only — no logic.

Exit codes: 0 success; 1 a check blocked (nothing changed); 2 usage / bad input;
3 migration failed (VM still on source); 4 partial (evacuation); 5 migrated, verification
incomplete; 130 / 143 interrupted (SIGINT / SIGTERM).
"""
from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from collections.abc import Sequence

from coordinator.core.release import __version__
from coordinator.core.errors import Interrupted, MigcoordError

from . import cmd_check, cmd_control, cmd_evacuate, cmd_maintenance, cmd_migrate, cmd_secrets

EXIT_CODES = """exit codes:
  0  success (or already on the destination)
  1  a check blocked the migration; nothing was changed
  2  usage error or bad input (malformed XML, bad URI, unreadable key file)
  3  migration failed; the VM is still on the source
  4  partial: some domains moved, some did not (evacuation)
  5  migrated, but verification is incomplete (the VM runs on the destination; see the warnings)
  130 / 143  interrupted by SIGINT (Ctrl-C) / SIGTERM: the running migration was aborted, what
     this run created was removed, the VM runs on exactly one host"""

COMMANDS = {"migrate": cmd_migrate.run, "evacuate": cmd_evacuate.run, "secrets": cmd_secrets.run,
            "check": cmd_check.run, "abort": cmd_control.run_abort, "complete": cmd_control.run_complete,
            "maintenance": cmd_maintenance.run}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="migcoord", epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Live-migrate libvirt/QEMU VMs whose vTPM (and disks) depend on libvirt secrets: "
                    "confirm or provision every secret on the destination, then migrate.")
    p.add_argument("--version", action="version", version=f"migcoord {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress details to stderr")
    sub = p.add_subparsers(dest="command", required=True)
    cmd_migrate.add_parser(sub, EXIT_CODES)
    cmd_evacuate.add_parser(sub, EXIT_CODES)
    cmd_secrets.add_parser(sub)
    cmd_check.add_parser(sub)
    cmd_control.add_parsers(sub)
    cmd_maintenance.add_parser(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="migcoord: %(levelname)s: %(message)s", stream=sys.stderr)
    received: list[int] = []

    def on_term(signum: int, _frame: object) -> None:
        # NOTE: SIGTERM is handled like Ctrl-C (an exception in the main thread, which the flows
        # turn into abort + rollback); the exit code remembers which signal it was.
        received.append(signum)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        code = COMMANDS[args.command](args)
        return 128 + received[0] if code == 130 and received else code
    except Interrupted as e:
        print(f"migcoord: {e}", file=sys.stderr)
        return 128 + (received[0] if received else signal.SIGINT)
    except MigcoordError as e:
        if getattr(args, "json", False):
            out = {"error": e.message, "hint": e.hint, "type": type(e).__name__, "exit_code": e.exit_code}
            for key in ("report", "diagnosis"):
                if key in e.data:
                    out[key] = e.data[key]
            print(json.dumps(out, sort_keys=True))
        for line in e.data.get("diagnosis", {}).get("evidence", ()):  # before the error: it stays the last line
            print(f"migcoord: evidence: {line}", file=sys.stderr)
        print(f"migcoord: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("migcoord: interrupted", file=sys.stderr)
        return 128 + (received[0] if received else signal.SIGINT)
    finally:
        signal.signal(signal.SIGTERM, previous)
