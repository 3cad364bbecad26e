"""``migcoord`` command line: argparse, output and exit codes only — no logic.

The exit codes are ``core.exit_codes.ExitCode``; ``EXIT_CODES`` (the ``--help`` epilog) is generated from it.
"""
from __future__ import annotations

import argparse
import gc
import os
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from coordinator.core.defaults import CONFIG_PATH as DEFAULT_PATH
from coordinator.core.defaults import LOG_LEVELS
from coordinator.core.errors import Interrupted, MigcoordError
from coordinator.core.exit_codes import ExitCode, for_signal, help_text
from coordinator.core.release import __version__

# NOTE: the cmd_* modules build their parsers from argparse and core.defaults only and import
# their flows inside run(): `--version`, `--help` and a usage error load nothing else, and each
# command loads only what it uses (tests/unit/test_startup.py holds that, without timing).
from . import render
from . import (cmd_check, cmd_completion, cmd_config, cmd_control, cmd_evacuate, cmd_maintenance, cmd_migrate,
               cmd_secrets)

EXIT_CODES = help_text()  # the --help epilog of migcoord, migrate and evacuate

# Each takes its command's invocation (cli.invocation.BY_COMMAND) and returns the exit code.
COMMANDS: dict[str, Callable[[Any], int]] = {
    "migrate": cmd_migrate.run, "evacuate": cmd_evacuate.run, "secrets": cmd_secrets.run,
    "secrets-audit": cmd_secrets.run_audit,
    "check": cmd_check.run, "abort": cmd_control.run_abort, "complete": cmd_control.run_complete,
    "maintenance": cmd_maintenance.run, "config": cmd_config.run,
    "completion": lambda a: cmd_completion.run(a, build_parser())}


def one_line(text: str) -> str:
    """Control characters (a newline in a hostile path or URI) shown escaped: an error is one line."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class _Parser(argparse.ArgumentParser):
    """argparse with usage errors on ONE line (``migcoord: error: ...``, exit 2), like every other
    error of the tool; ``--help`` shows the usage. Subcommand parsers inherit this class."""

    # A leading word that selects another form of this command (``secrets audit HOST...`` beside
    # ``secrets DOMAIN --from --to``): word → that form's parser (``cli.settings`` walks them too).
    word_forms: dict[str, argparse.ArgumentParser]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.word_forms = {}

    def error(self, message: str) -> NoReturn:
        self.exit(ExitCode.USAGE, f"migcoord: error: {one_line(message)} (see {self.prog} --help)\n")

    def parse_known_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                         namespace: argparse.Namespace | None = None) -> tuple[argparse.Namespace, list[str]]:
        """A word form when the first argument is its word; ``-- WORD ...`` is this parser's positional
        WORD (a domain named "audit": ``migcoord secrets -- audit --from SRC --to DST``)."""
        argv = list(sys.argv[1:] if args is None else args)
        if argv and argv[0] in self.word_forms:
            return self.word_forms[argv[0]].parse_known_args(argv[1:], namespace)
        if len(argv) >= 2 and argv[0] == "--" and argv[1] in self.word_forms:
            argv = [*argv[2:], "--", argv[1]]  # the options first: argparse takes all after "--" as positional
        return super().parse_known_args(argv, namespace)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="migcoord", epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Live-migrate libvirt/QEMU VMs whose vTPM (and disks) depend on libvirt secrets: "
                    "confirm or provision every secret on the destination, then migrate.")
    p.add_argument("--version", action="version", version=f"migcoord {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress details to stderr (--log-level info)")
    p.add_argument("--config", metavar="PATH",
                   help=f"settings file (default: $MIGCOORD_CONFIG, else {DEFAULT_PATH} when present)")
    p.add_argument("--log-level", choices=LOG_LEVELS, help="log level on stderr (and syslog); default warning")
    p.add_argument("--syslog", action="store_true",
                   help="also log to syslog (not needed under systemd: stderr reaches the journal)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress events on stderr")
    sub = p.add_subparsers(dest="command", required=True)
    cmd_migrate.add_parser(sub, EXIT_CODES)
    cmd_evacuate.add_parser(sub, EXIT_CODES)
    cmd_secrets.add_parser(sub)
    cmd_check.add_parser(sub)
    cmd_control.add_parsers(sub)
    cmd_maintenance.add_parser(sub)
    cmd_config.add_parser(sub)
    cmd_completion.add_parser(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # usage error (one line, above), --help or --version
        return int(e.code) if isinstance(e.code, int) else ExitCode.OK.value if e.code is None else ExitCode.USAGE.value
    # NOTE: a short-lived process: what the imports built is never garbage. Freezing it keeps the
    # collector from rescanning it, and a larger young generation collects less often while a plan
    # builds thousands of objects (the collector was ~20 % of planning 2 000 domains; BENCHMARKS.md).
    json_output = bool(vars(args).get("json"))  # the parsed flag: an error in the settings merge needs it too
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)
    received: list[int] = []

    def on_term(signum: int, _frame: object) -> None:
        # NOTE: SIGTERM is handled like Ctrl-C (an exception in the main thread, which the flows
        # turn into abort + rollback); the exit code remembers which signal it was.
        received.append(signum)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        from . import invocation, logs  # NOTE: after parsing: the settings merge is not needed for --version

        inv = invocation.build(args, build_parser, argv, os.environ)
        logs.setup(inv.log_level, inv.syslog)
        code = COMMANDS[inv.command](inv)
        return for_signal(received[0]) if code == ExitCode.SIGINT and received else int(code)  # a plain int, as always
    except Interrupted as e:
        print(f"migcoord: {one_line(str(e))}", file=sys.stderr)
        return for_signal(received[0] if received else signal.SIGINT)
    except MigcoordError as e:
        if json_output:
            print(render.error_json(e))
        for line in e.data.get("diagnosis", {}).get("evidence", ()):  # before the error: it stays the last line
            print(f"migcoord: evidence: {line}", file=sys.stderr)
        print(f"migcoord: error: {one_line(str(e))}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("migcoord: interrupted", file=sys.stderr)
        return for_signal(received[0] if received else signal.SIGINT)
    finally:
        signal.signal(signal.SIGTERM, previous)
