"""``migcoord`` command line: argparse, output and exit codes only — no logic.

Exit codes: 0 success; 1 a check blocked (nothing changed); 2 usage / bad input;
3 migration failed (VM still on source); 4 partial (evacuation).
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from typing import NoReturn

from coordinator.core.release import __version__
from coordinator.core.errors import MigcoordError

from . import cmd_check, cmd_evacuate, cmd_migrate, cmd_secrets

EXIT_CODES = """exit codes:
  0  success (or already on the destination)
  1  a check blocked the migration; nothing was changed
  2  usage error or bad input (malformed XML, bad URI, unreadable key file)
  3  migration failed; the VM is still on the source
  4  partial: some domains moved, some did not (evacuation)"""

COMMANDS = {"migrate": cmd_migrate.run, "evacuate": cmd_evacuate.run, "secrets": cmd_secrets.run,
            "check": cmd_check.run}


def one_line(text: str) -> str:
    """Control characters (a newline in a hostile path or URI) shown escaped: an error is one line."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class _Parser(argparse.ArgumentParser):
    """argparse with usage errors on ONE line (``migcoord: error: ...``, exit 2), like every other
    error of the tool; ``--help`` shows the usage. Subcommand parsers inherit this class."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"migcoord: error: {one_line(message)} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
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
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # usage error (one line, above), --help or --version
        return e.code if isinstance(e.code, int) else 0 if e.code is None else 2
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="migcoord: %(levelname)s: %(message)s", stream=sys.stderr)
    try:
        return COMMANDS[args.command](args)
    except MigcoordError as e:
        if getattr(args, "json", False):
            out = {"error": e.message, "hint": e.hint, "type": type(e).__name__, "exit_code": e.exit_code}
            for key in ("report", "diagnosis"):
                if key in e.data:
                    out[key] = e.data[key]
            print(json.dumps(out, sort_keys=True))
        for line in e.data.get("diagnosis", {}).get("evidence", ()):  # before the error: it stays the last line
            print(f"migcoord: evidence: {line}", file=sys.stderr)
        print(f"migcoord: error: {one_line(str(e))}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("migcoord: interrupted", file=sys.stderr)
        return 130
