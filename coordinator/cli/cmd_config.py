"""``migcoord config show [--json]``: the effective settings and where each came from.

Values only: the file holds value *sources* (paths, helper commands), never a secret value, and
nothing here reads a source. A helper command is shown by its program only (text and JSON): its
other words may be a token (``core.model.command_program``, the rule the journal follows too).
"""
from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from coordinator.core.exit_codes import ExitCode
from coordinator.core.model import command_program

if TYPE_CHECKING:
    from coordinator.core.config import Effective, SourceSpec

    from .invocation import ConfigInvocation

from .render import table


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


def render(eff: Effective) -> str:
    rows = [("SETTING", "VALUE", "FROM")]
    rows += [(s.key, "-" if s.value is None else json.dumps(s.value) if isinstance(s.value, bool) else str(s.value),
              s.origin) for s in eff.settings]
    out = [f"settings file: {eff.path or 'none'}", "", table(rows)]
    if eff.hosts:
        out += ["", table([("HOST", "URI", "SSH")] + [
            (n, h.uri, " ".join(f"{k}={v}" for k, v in h.ssh.as_dict().items()) or "-")
            for n, h in sorted(eff.hosts.items())])]
    if eff.groups:
        out += ["", table([("GROUP", "HOSTS")] + [(n, " ".join(m)) for n, m in sorted(eff.groups.items())])]
    if eff.sources:
        out += ["", table([("VALUE SOURCE", "FOR")] + [
            (_shown_source(s), f"uuid {s.uuid}" if s.uuid else f"usage {s.usage}" if s.usage else "any secret")
            for s in eff.sources])]
    return "\n".join(out)


def run(args: ConfigInvocation) -> int:
    eff: Effective = args.settings
    if args.action in ("hosts", "groups"):
        names = sorted(eff.hosts if args.action == "hosts" else eff.groups)
        print(json.dumps(names) if args.json else "\n".join(names))
        return ExitCode.OK
    print(json.dumps(as_dict(eff), indent=2, sort_keys=True) if args.json else render(eff))
    return ExitCode.OK


def _shown_source(s: SourceSpec) -> str:
    if s.kind != "command":
        return f"{s.kind}:{s.arg}"
    program, hidden = command_program(s.arg)
    return f"command:{program}" + (f" ({hidden} argument{'s' if hidden != 1 else ''} hidden)" if hidden else "")


def as_dict(eff: Effective) -> dict[str, Any]:
    """``Effective.as_dict()`` with each helper command replaced by its program and the number of
    arguments hidden: ``{"kind": "command", "program": ..., "arguments_hidden": N, ...}``."""
    out = eff.as_dict()
    shown = []
    for spec, d in zip(eff.sources, out["sources"], strict=True):
        if spec.kind == "command":
            program, hidden = command_program(spec.arg)
            d = {k: v for k, v in d.items() if k != "arg"} | {"program": program, "arguments_hidden": hidden}
        shown.append(d)
    out["sources"] = shown
    return out
