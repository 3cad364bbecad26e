"""``migcoord config show [--json]``: the effective settings and where each came from.

Values only: the file holds value *sources* (paths, helper commands), never a secret value, and
nothing here reads a source. A helper command is shown by its program only (text and JSON): its
other words may be a token (``core.model.command_program``, the rule the journal follows too).
"""
from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from coordinator.core.exit_codes import ExitCode

from . import render

if TYPE_CHECKING:
    from coordinator.core.config import Effective

    from .invocation import ConfigInvocation


def add_parser(sub: Any) -> argparse.ArgumentParser:
    c: argparse.ArgumentParser = sub.add_parser(
        "config", help="show the effective settings and where each came from",
        description="Precedence, highest first: command line > environment (MIGCOORD_*) > settings file > "
                    "built-in defaults.")
    c.add_argument("action", choices=["show", "hosts", "groups"],
                   help="show: the effective settings; hosts / groups: the names the settings file defines "
                        "(one a line, for scripts and shell completion)")
    c.add_argument("--json", action="store_true", help="as JSON")
    return c


def run(args: ConfigInvocation) -> int:
    eff: Effective = args.settings
    if args.action in ("hosts", "groups"):
        print(render.names(sorted(eff.hosts if args.action == "hosts" else eff.groups), as_json_doc=args.json))
    else:
        print(render.as_json(render.settings_dict(eff)) if args.json else render.settings(eff))
    return ExitCode.OK
