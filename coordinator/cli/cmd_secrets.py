"""``migcoord secrets DOMAIN --from SRC --to DST``: every secret the domain needs and what migrate would do."""
from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from coordinator.core.exit_codes import ExitCode

from . import options as opts
from . import render

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
    from coordinator.steps.parameters import MigrateOptions

    options = MigrateOptions(secret_policy=opts.secret_policy(args, cleanup_source=False), keyring=opts.keyring(args))
    plans = plan_domain_secrets(args.domain, args.src, args.dst, options)
    print(render.as_json([p.as_dict() for p in plans]) if args.json else render.secret_plans(plans))
    return ExitCode.BLOCKED if any(p.action is SecretAction.BLOCK for p in plans) else ExitCode.OK


