"""``migcoord secrets DOMAIN --from SRC --to DST``: every secret the domain needs and what migrate would do."""
from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from coordinator.core.exit_codes import ExitCode

from . import options as opts
from .render import table

if TYPE_CHECKING:
    from .invocation import SecretsInvocation


def add_parser(sub: Any) -> argparse.ArgumentParser:
    s: argparse.ArgumentParser = sub.add_parser("secrets",
                                                help="show every secret a domain needs and what migrate would do")
    s.add_argument("domain")
    opts.add_hosts(s)
    opts.add_secret_options(s)
    return s


def run(args: SecretsInvocation) -> int:
    # NOTE: imported here, not at the top: building the parser (every command, --help) stays cheap.
    from coordinator.core.model import SecretAction
    from coordinator.flows.plan_secrets import plan_domain_secrets
    from coordinator.steps.options import MigrateOptions

    options = MigrateOptions(secret_policy=opts.secret_policy(args, cleanup_source=False), keyring=opts.keyring(args))
    plans = plan_domain_secrets(args.domain, args.src, args.dst, options)
    if args.json:
        print(json.dumps([p.as_dict() for p in plans], indent=2, sort_keys=True))
    else:
        rows = [("UUID", "KIND", "USAGE", "SOURCE", "DESTINATION", "ACTION")]
        rows += [(p.uuid or "-", str(p.ref.kind),
                  f"{p.ref.usage_type}:{p.usage_id or p.ref.usage_id or ''}".rstrip(":"),
                  p.source_status, p.dest_status, str(p.action)) for p in plans]
        print(table(rows))
        for p in plans:
            if p.reason:
                print(f"{p.uuid}: {p.reason}")
    return ExitCode.BLOCKED if any(p.action is SecretAction.BLOCK for p in plans) else ExitCode.OK


