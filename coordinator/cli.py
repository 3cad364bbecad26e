"""``migcoord`` command line: argparse, output formatting and exit codes only — no logic.

Exit codes: 0 success; 1 a check blocked (nothing changed); 2 usage / bad input;
3 migration failed (VM still on source); 4 partial (evacuation).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import sys
from pathlib import Path
from typing import Any, Sequence

from checks import command as check_command

from . import __version__
from .errors import BadInput, MigcoordError
from .evacuate import EvacuationPlan, EvacuationPolicy, Settings, evacuate, plan_evacuation
from .executor import DEFAULT_LOCK_DIR, RetryPolicy, migrate
from .journal import DEFAULT_JOURNAL, Journal
from .keys import KeyRing, ValueSource, canonical_uuid, parse_file_option
from .model import SecretAction
from .params import MigrationPolicy, TimeoutPolicy
from .remote import SshConfig
from .planner import plan_domain_secrets
from .secrets import SecretPolicy

EXIT_CODES = """exit codes:
  0  success (or already on the destination)
  1  a check blocked the migration; nothing was changed
  2  usage error or bad input (malformed XML, bad URI, unreadable key file)
  3  migration failed; the VM is still on the source
  4  partial: some domains moved, some did not (evacuation)"""

CRON_EXAMPLE = """

cron (empty a host every night; overlapping runs refuse, a re-run finishes what is left):
  30 2 * * * root migcoord evacuate --from qemu+ssh://hv1/system --to qemu+ssh://hv2/system \\
      --to qemu+ssh://hv3/system --secret-dir /etc/migcoord/keys --report /var/log/migcoord/last.json"""

log = logging.getLogger("migcoord")


class _OrderedSource(argparse.Action):
    """Collects --secret-file/--secret-dir/--secret-command/--secret-stdin in the order given."""

    def __call__(self, parser: argparse.ArgumentParser, ns: argparse.Namespace, value: Any,
                 option: str | None = None) -> None:
        kind = self.dest.removeprefix("src_")
        try:
            if kind == "file":
                src = parse_file_option(value)
            elif kind == "stdin":
                src = ValueSource("stdin", "-", canonical_uuid(value))
            else:
                src = ValueSource(kind, value)
        except BadInput as e:
            parser.error(str(e))
        ns.value_sources = [*(getattr(ns, "value_sources", None) or []), src]


def _yes_no_mirror(v: str) -> bool | None:
    m = {"yes": True, "no": False, "mirror": None}
    if v not in m:
        raise argparse.ArgumentTypeError("use yes, no or mirror")
    return m[v]


def _add_hosts(p: argparse.ArgumentParser) -> None:
    p.add_argument("--from", dest="src", required=True, metavar="SRC_URI",
                   help="source libvirt URI, e.g. qemu+ssh://host1/system")
    p.add_argument("--to", dest="dst", required=True, metavar="DST_URI", help="destination libvirt URI")
    p.add_argument("--json", action="store_true", help="print the result as JSON on stdout")


def _add_ssh_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("SSH (host checks; off unless --ssh or any --ssh-* option is given)")
    g.add_argument("--ssh", action="store_true", help="run the SSH checks on both hosts")
    g.add_argument("--ssh-user", metavar="USER", help="SSH user (default: from the URI, else root)")
    g.add_argument("--ssh-port", type=int, metavar="PORT", help="SSH port (default: from the URI, else 22)")
    g.add_argument("--ssh-key", type=Path, metavar="PATH", help="private key file (must be owner-only)")
    g.add_argument("--ssh-known-hosts", type=Path, metavar="PATH",
                   help="known_hosts file (default ~/.ssh/known_hosts); unknown host keys are refused")
    g.add_argument("--ssh-timeout", type=float, metavar="S", help="connect timeout (default 10)")


def _ssh_config(args: argparse.Namespace) -> SshConfig | None:
    given = {k: v for k, v in (("user", args.ssh_user), ("port", args.ssh_port), ("key_file", args.ssh_key),
                                ("known_hosts", args.ssh_known_hosts), ("connect_timeout", args.ssh_timeout))
             if v is not None}
    if not (args.ssh or given):
        return None
    return SshConfig(**given)


def _add_secret_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("secret values (tried in the order given, after the source host's API)")
    g.add_argument("--secret-file", dest="src_file", action=_OrderedSource, metavar="UUID=PATH",
                   help="value of one secret from an owner-only file (exact bytes)")
    g.add_argument("--secret-dir", dest="src_dir", action=_OrderedSource, metavar="DIR",
                   help="values from owner-only files named by UUID")
    g.add_argument("--secret-command", dest="src_command", action=_OrderedSource, metavar="CMD",
                   help="helper run without a shell, {uuid} substituted; value read from its stdout")
    g.add_argument("--secret-stdin", dest="src_stdin", action=_OrderedSource, metavar="UUID",
                   help="value of this secret from standard input")
    g.add_argument("--no-source-api", action="store_true",
                   help="do not read values from the source host even when readable")
    g.add_argument("--dest-private", type=_yes_no_mirror, default=None, metavar="yes|no|mirror",
                   help="private flag of secrets created on the destination (default: mirror source)")
    g.add_argument("--dest-ephemeral", type=_yes_no_mirror, default=None, metavar="yes|no|mirror",
                   help="ephemeral flag of secrets created on the destination (default: mirror source)")
    g.add_argument("--reset-secret-values", action="store_true",
                   help="set the value of a private (unverifiable) destination secret")
    g.add_argument("--allow-plaintext-secrets", action="store_true",
                   help="allow sending secret values over a plaintext remote transport (qemu+tcp)")


def _add_policy_options(m: argparse.ArgumentParser) -> None:
    """Migration policy, retries, journal and check selection: shared by migrate and evacuate."""
    m.add_argument("--keep-source", action="store_true", help="keep the source definition (no undefine)")
    m.add_argument("--tls", action="store_true", help="encrypt the QEMU migration stream (VIR_MIGRATE_TLS)")
    m.add_argument("--bandwidth", type=int, metavar="MIB_S", help="bandwidth limit in MiB/s")
    m.add_argument("--parallel-connections", type=int, metavar="N")
    m.add_argument("--compression", metavar="METHOD", help="e.g. xbzrle, zlib, zstd")
    m.add_argument("--auto-converge", action="store_true")
    m.add_argument("--postcopy", action="store_true", help="allow a switch to post-copy")
    m.add_argument("--migrate-uri", metavar="URI", help="QEMU migration URI (VIR_MIGRATE_PARAM_URI)")
    m.add_argument("--listen-address", metavar="ADDR")
    m.add_argument("--copy-storage", action="store_true", help="copy non-shared disks")
    m.add_argument("--unsafe", action="store_true", help="shared storage libvirt cannot detect")
    m.add_argument("--timeout", type=float, metavar="S",
                   help="abort (or switch to post-copy, with --postcopy) when not done after S seconds "
                        "(default: 800 s per GiB of guest memory, at least 60 s)")
    m.add_argument("--stall-timeout", type=float, default=TimeoutPolicy.stall_s, metavar="S",
                   help="abort when the remaining data has not shrunk for S seconds (default %(default)s)")
    m.add_argument("--retries", type=int, default=RetryPolicy.attempts, metavar="N",
                   help="attempts on transient libvirt errors (default %(default)s)")
    m.add_argument("--retry-max-seconds", type=float, default=RetryPolicy.max_seconds, metavar="S")
    m.add_argument("--journal", type=Path, default=DEFAULT_JOURNAL, metavar="PATH",
                   help="JSON-lines audit journal (default %(default)s; no values are written)")
    m.add_argument("--lock-dir", type=Path, default=DEFAULT_LOCK_DIR, metavar="DIR", help=argparse.SUPPRESS)
    m.add_argument("--skip", action="append", default=[], metavar="ID_OR_TAG",
                   help="do not run this pre-flight check id or tag (see `migcoord check`)")
    m.add_argument("--waive", action="append", default=[], metavar="ID",
                   help="let this blocking check id pass, recorded in the report")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="migcoord", epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Live-migrate libvirt/QEMU VMs whose vTPM (and disks) depend on libvirt secrets: "
                    "confirm or provision every secret on the destination, then migrate.")
    p.add_argument("--version", action="version", version=f"migcoord {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress details to stderr")
    sub = p.add_subparsers(dest="command", required=True)

    m = sub.add_parser("migrate", help="provision secrets, then live-migrate one domain",
                       epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    m.add_argument("domain", help="domain name, UUID or id (as virsh list shows it)")
    _add_hosts(m)
    _add_secret_options(m)
    _add_ssh_options(m)
    m.add_argument("--dry-run", action="store_true", help="plan and check only; change nothing")
    m.add_argument("--cleanup-source-secrets", action="store_true",
                   help="after a verified migration, remove the source copies of the domain's secrets "
                        "that no other source domain uses (off by default)")
    m.add_argument("--offline", action="store_true", help="offline migration of a shut-off persistent domain")
    _add_policy_options(m)

    e = sub.add_parser("evacuate", help="move every domain off a host (cron-safe)",
                       epilog=EXIT_CODES + CRON_EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
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
    e.add_argument("--max-memory", action="append", default=[], metavar="DST_URI=MIB",
                   help="memory this run may place on that destination (default: its free memory)")
    _add_secret_options(e)
    _add_ssh_options(e)
    _add_policy_options(e)

    s = sub.add_parser("secrets", help="show every secret a domain needs and what migrate would do")
    s.add_argument("domain")
    _add_hosts(s)
    _add_secret_options(s)
    check_command.add_parser(sub)
    return p


def _keyring(args: argparse.Namespace) -> KeyRing:
    return KeyRing(getattr(args, "value_sources", None) or [])


def _secret_policy(args: argparse.Namespace) -> SecretPolicy:
    return SecretPolicy(dest_private=args.dest_private, dest_ephemeral=args.dest_ephemeral,
                        reset_values=args.reset_secret_values, allow_plaintext=args.allow_plaintext_secrets,
                        use_source_api=not args.no_source_api,
                        cleanup_source=getattr(args, "cleanup_source_secrets", False))


class EventPrinter:
    """TTY: a progress bar on stderr. Otherwise: JSON-lines events on stderr."""

    def __init__(self, stream: Any = sys.stderr, progress: bool = True) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.progress = progress  # several migrations at once: one line per domain instead of a bar

    def __call__(self, event: dict[str, Any]) -> None:
        if not self.tty:
            self.stream.write(json.dumps(event, sort_keys=True) + "\n")
        elif event["event"] == "domain-done":
            self.stream.write(f"{event['domain']}: {event['state']} {event.get('destination') or ''}\n")
        elif event["event"] == "progress" and self.progress:
            pct = event["percent"]
            bar = "#" * int(pct / 4)
            rate = event["rate_bps"] / 2**20
            eta = event["data_remaining"] / event["rate_bps"] if event["rate_bps"] else 0
            self.stream.write(f"\r[{bar:<25}] {pct:5.1f}%  {event['data_processed'] / 2**20:7.1f} MiB "
                              f"done, {event['data_remaining'] / 2**20:7.1f} MiB left, {rate:6.1f} MiB/s, "
                              f"ETA {eta:4.0f}s")
        elif event["event"] == "migration-attempt" and event["attempt"] > 1:
            self.stream.write(f"\nretrying (attempt {event['attempt']})\n")
        self.stream.flush()


def _migration_policy(args: argparse.Namespace) -> MigrationPolicy:
    return MigrationPolicy(
        live=not getattr(args, "offline", False), undefine_source=not args.keep_source, tls=args.tls,
        bandwidth_mib=args.bandwidth, parallel=args.parallel_connections, compression=args.compression,
        auto_converge=args.auto_converge, postcopy=args.postcopy, migrate_uri=args.migrate_uri,
        listen_address=args.listen_address, copy_storage=args.copy_storage, unsafe=args.unsafe)


def _retry(args: argparse.Namespace) -> RetryPolicy:
    if args.retries < 1:
        raise BadInput("--retries must be at least 1")
    return RetryPolicy(attempts=args.retries, max_seconds=args.retry_max_seconds)


def _timeouts(args: argparse.Namespace) -> TimeoutPolicy:
    return TimeoutPolicy(completion_s=args.timeout, stall_s=args.stall_timeout)


def cmd_migrate(args: argparse.Namespace) -> int:
    policy = _migration_policy(args)
    printer = EventPrinter()
    result = migrate(args.domain, args.src, args.dst, policy=policy, secret_policy=_secret_policy(args),
                     keyring=_keyring(args), retry=_retry(args), timeouts=_timeouts(args),
                     journal=None if args.dry_run else Journal(args.journal), dry_run=args.dry_run,
                     lock_dir=args.lock_dir, skip=args.skip, waive=args.waive, ssh=_ssh_config(args),
                     on_event=printer)
    if printer.tty:
        sys.stderr.write("\n")
    if args.json:
        print(json.dumps(result.as_dict(), indent=2, sort_keys=True))
        return 0
    if result.state == "already-on-destination":
        print(f"{result.domain}: already on destination {result.dest_uri} ({result.dest_state}); nothing to do")
        return 0
    verb = {"dry-run": "would migrate", "migrated": "migrated"}[result.state]
    print(f"{result.domain}: {verb} {result.source_uri} -> {result.dest_uri}"
          + (f" in {result.duration_s:.1f}s, {result.attempts} attempt(s); now {result.dest_state} there"
             if result.state == "migrated" else ""))
    for p in result.secrets:
        print(f"  secret {p.uuid} ({p.ref.kind}, {p.ref.usage_type}): {p.action} [{p.dest_status}]")
    if result.state == "migrated":
        print(f"  check: virsh -c {shlex.quote(result.dest_uri)} dominfo {shlex.quote(result.domain)}")
    return 0


def _capacity(specs: Sequence[str]) -> dict[str, int]:
    out = {}
    for spec in specs:
        uri, sep, mib = spec.rpartition("=")
        if not sep or not uri or not mib.isdigit():
            raise BadInput(f"--max-memory expects DST_URI=MIB, got {spec!r}")
        out[uri] = int(mib)
    return out


def _table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def render_plan(plan: EvacuationPlan) -> str:
    rows = [("DOMAIN", "MODE", "MEMORY", "DESTINATION", "SECRETS", "NOTE")]
    for d in plan.domains:
        todo = [f"{p.uuid} {p.action}" for p in d.secrets]
        rows.append((d.name, "live" if d.live else "offline", f"{d.memory_bytes // 2**20} MiB",
                     d.destination or "-", ", ".join(todo) or "-", d.reason))
    return _table(rows) + "".join(f"\nexcluded: {n}" for n in plan.excluded)


def cmd_evacuate(args: argparse.Namespace) -> int:
    ev = EvacuationPolicy(include_inactive=args.include_inactive, exclude=tuple(args.exclude),
                          parallel=args.parallel, per_destination=args.per_destination,
                          max_duration_s=args.max_duration, capacity_mib=_capacity(args.max_memory))
    settings = Settings(policy=_migration_policy(args), secret_policy=_secret_policy(args),
                        keyring=_keyring(args), ssh=_ssh_config(args), skip=tuple(args.skip),
                        waive=tuple(args.waive))
    if args.dry_run:
        plan = plan_evacuation(args.src, args.dsts, evacuation=ev, settings=settings)
        print(json.dumps(plan.as_dict(), indent=2, sort_keys=True) if args.json else render_plan(plan))
        _write_report(args.report, plan.as_dict())
        return 0 if not plan.unplaceable else 1
    printer = EventPrinter(progress=False)
    report = evacuate(args.src, args.dsts, evacuation=ev, settings=settings, retry=_retry(args),
                      timeouts=_timeouts(args), journal=Journal(args.journal), lock_dir=args.lock_dir,
                      on_event=printer)
    _write_report(args.report, report.as_dict())
    if args.json:
        print(json.dumps(report.as_dict(), indent=2, sort_keys=True))
    else:
        rows = [("DOMAIN", "STATE", "DESTINATION", "TIME", "REASON")]
        rows += [(o.domain, o.state, o.destination or "-", f"{o.duration_s:.1f}s", o.reason)
                 for o in report.outcomes]
        moved = sum(o.moved for o in report.outcomes)
        print(_table(rows) + f"\n{moved} of {len(report.outcomes)} moved in {report.duration_s:.1f}s")
    return report.exit_code


def _write_report(path: Path | None, data: dict[str, Any]) -> None:
    """Atomically, so a cron job's consumer never reads half a report."""
    if path is None:
        return
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def cmd_secrets(args: argparse.Namespace) -> int:
    plans = plan_domain_secrets(args.domain, args.src, args.dst, keyring=_keyring(args),
                                policy=_secret_policy(args))
    if args.json:
        print(json.dumps([p.as_dict() for p in plans], indent=2, sort_keys=True))
    else:
        rows = [("UUID", "KIND", "USAGE", "SOURCE", "DESTINATION", "ACTION")]
        rows += [(p.uuid or "-", str(p.ref.kind), f"{p.ref.usage_type}:{p.usage_id or p.ref.usage_id or ''}".rstrip(":"),
                  p.source_status, p.dest_status, str(p.action)) for p in plans]
        print(_table(rows))
        for p in plans:
            if p.reason:
                print(f"{p.uuid}: {p.reason}")
    return 1 if any(p.action is SecretAction.BLOCK for p in plans) else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="migcoord: %(levelname)s: %(message)s", stream=sys.stderr)
    try:
        commands = {"migrate": cmd_migrate, "evacuate": cmd_evacuate, "secrets": cmd_secrets,
                    "check": check_command.run}
        return commands[args.command](args)
    except MigcoordError as e:
        if getattr(args, "json", False):
            out = {"error": e.message, "hint": e.hint, "type": type(e).__name__, "exit_code": e.exit_code}
            if "report" in e.data:
                out["report"] = e.data["report"]
            print(json.dumps(out, sort_keys=True))
        print(f"migcoord: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("migcoord: interrupted", file=sys.stderr)
        return 130
