"""``migcoord secrets DOMAIN --from SRC --to DST``: every secret the domain needs and what migrate would do.

``migcoord secrets audit HOST...``: the fleet's secret hygiene, read-only (``flows.audit_secrets``,
``core.secret_audit``). "audit" is a word form of ``secrets`` (``cli.main._Parser.word_forms``): only as the
first word after ``secrets``; a domain named "audit" is ``migcoord secrets -- audit --from SRC --to DST``
(or ``migcoord secrets --from SRC --to DST audit``).
"""
from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from coordinator.core.exit_codes import ExitCode, help_text

from . import options as opts
from . import render

if TYPE_CHECKING:
    from .invocation import SecretsAuditInvocation, SecretsInvocation

AUDIT_EXIT_HELP = help_text({
    ExitCode.OK: "clean: no finding, and every value shared by two hosts was compared",
    ExitCode.BLOCKED: "findings (each says how to fix it by hand and what would break), or a host could not be\n"
                      "read (one line says which); nothing was changed",
    ExitCode.USAGE: "usage error or bad input (a malformed URI, a host given twice or twice under two names)",
    ExitCode.UNKNOWN: "UNKNOWN: no finding, but whether a shared secret has the same value on each host is\n"
                      "unknown (private, or not read over a plaintext transport); --accept-unknown exits 0"})

AUDIT_DESCRIPTION = (
    "Read-only: per host and across the hosts given, report secrets no domain references (orphans), domains "
    "that reference a secret their host lacks, one UUID with different values on two hosts (compared by a "
    "fingerprint of this run, never shown or stored; 'unknown' where a value is private or not read), "
    "ephemeral secrets backing persistent domains, and one usage held by different UUIDs on two hosts. "
    "Nothing is ever deleted or changed: each finding says how to fix it by hand (the virsh lines) and what "
    "would break if done wrongly. Values are read only where the transport rule allows "
    "(--allow-plaintext-secrets as for migrate).")


def add_parser(sub: Any) -> argparse.ArgumentParser:
    s: argparse.ArgumentParser = sub.add_parser(
        "secrets", help="show every secret a domain needs and what migrate would do; "
                        "`secrets audit HOST...`: the fleet's secret hygiene",
        usage="migcoord secrets [options] DOMAIN --from SRC --to DST\n"
              "       migcoord secrets audit [options] HOST [HOST ...]   (see migcoord secrets audit --help)",
        epilog="A domain named \"audit\": migcoord secrets -- audit --from SRC --to DST",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("domain")
    opts.add_hosts(s)
    opts.add_secret_options(s)
    a: argparse.ArgumentParser = type(s)(
        prog="migcoord secrets audit", description=AUDIT_DESCRIPTION, epilog=AUDIT_EXIT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    a.set_defaults(command="secrets-audit")
    a.add_argument("hosts", nargs="+", metavar="HOST", help="libvirt URI or host alias from the settings file")
    a.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    a.add_argument("--allow-plaintext-secrets", action="store_true",
                   help="read readable values over a plaintext remote transport (qemu+tcp) too, to compare them")
    a.add_argument("--accept-unknown", action="store_true",
                   help="exit 0 (not 6) when nothing was found but some value comparison is unknown")
    opts.add_metrics_option(a)
    vars(s).setdefault("word_forms", {})["audit"] = a  # NOTE: read by cli.main._Parser (the subparsers' class)
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


def audit_exit_code(kind: str, accept_unknown: bool) -> ExitCode:
    """``core.secret_audit.exit_kind`` → the exit code (``AUDIT_EXIT_HELP``)."""
    if kind == "findings":
        return ExitCode.BLOCKED
    return ExitCode.UNKNOWN if kind == "unknown" and not accept_unknown else ExitCode.OK


def run_audit(args: SecretsAuditInvocation) -> int:
    import time

    from coordinator.core.errors import MigcoordError
    from coordinator.core.secret_audit import exit_kind
    from coordinator.flows.audit_secrets import audit_secrets

    from . import run_metrics

    started = time.monotonic()
    try:
        report = audit_secrets(args.hosts, allow_plaintext=args.allow_plaintext_secrets)
    except MigcoordError as e:
        run_metrics.write_audit(args.metrics_file, args.hosts, e.exit_code, time.monotonic() - started, None,
                                quiet_errors=True)
        raise
    code = audit_exit_code(exit_kind(report), args.accept_unknown)
    print(render.as_json({**report.as_dict(), "exit_code": int(code)}) if args.json
          else render.secret_audit(report, code))
    # the report is out first: a metrics file that cannot be written is a warning, the exit code stays
    run_metrics.write_audit(args.metrics_file, args.hosts, code, time.monotonic() - started, report,
                            quiet_errors=True)
    return code
