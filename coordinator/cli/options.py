"""Option groups shared by the commands, and the one place that turns an invocation's options
(``cli.invocation``) into the library's parameter objects (``MigrateOptions``, policies, the keyring).

NOTE: building the parser must stay cheap (``migcoord --version``, ``--help``, and every command
before it starts working): at module level only argparse and ``core.defaults``; the parameter
objects' modules are imported by the functions that build them, after parsing.
"""
from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from coordinator.core import defaults
from coordinator.core.errors import BadInput

if TYPE_CHECKING:
    from coordinator.cli.invocation import EvacuateInvocation, Migrating, PolicyArgs, SecretArgs, SshArgs
    from coordinator.core.evacuation import EvacuationPolicy
    from coordinator.core.params import MigrationPolicy, TimeoutPolicy
    from coordinator.core.secret_rules import SecretPolicy
    from coordinator.ssh.runner import SshConfig
    from coordinator.steps.keys import KeyRing
    from coordinator.steps.parameters import MigrateOptions
    from coordinator.steps.retry import RetryPolicy



class _OrderedSource(argparse.Action):
    """Collects --secret-file/--secret-dir/--secret-command/--secret-stdin in the order given."""

    def __call__(self, parser: argparse.ArgumentParser, ns: argparse.Namespace, value: Any,
                 option: str | None = None) -> None:
        from coordinator.core.ids import canonical_uuid
        from coordinator.steps.keys import ValueSource, parse_command_option, parse_file_option

        kind = self.dest.removeprefix("src_")
        try:
            if kind == "file":
                src = parse_file_option(value)
            elif kind == "stdin":
                src = ValueSource("stdin", "-", canonical_uuid(value))
            elif kind == "command":
                src = parse_command_option(value)
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


def add_hosts(p: argparse.ArgumentParser) -> None:
    p.add_argument("--from", dest="src", required=True, metavar="SRC",
                   help="source libvirt URI (e.g. qemu+ssh://host1/system) or host alias from the settings file")
    p.add_argument("--to", dest="dst", required=True, metavar="DST", help="destination libvirt URI or host alias")
    p.add_argument("--json", action="store_true", help="print the result as JSON on stdout")


def add_ssh_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("SSH (host checks; off unless --ssh or any --ssh-* option is given)")
    g.add_argument("--ssh", action="store_true", help="run the SSH checks on both hosts")
    g.add_argument("--ssh-user", metavar="USER", help="SSH user (default: from the URI, else root)")
    g.add_argument("--ssh-port", type=int, metavar="PORT", help="SSH port (default: from the URI, else 22)")
    g.add_argument("--ssh-key", type=Path, metavar="PATH", help="private key file (must be owner-only)")
    g.add_argument("--ssh-known-hosts", type=Path, metavar="PATH",
                   help="known_hosts file (default ~/.ssh/known_hosts); unknown host keys are refused")
    g.add_argument("--ssh-timeout", type=float, metavar="S", help="connect timeout (default 10)")
    g.add_argument("--ssh-config", type=Path, metavar="PATH",
                   help="OpenSSH client config to honour (Host aliases, HostName, User, Port, IdentityFile, "
                        "ProxyJump, ProxyCommand); default ~/.ssh/config when present")


def add_metrics_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--metrics-file", type=Path, metavar="PATH",
                   help="write node_exporter textfile-collector metrics to PATH (atomically)")


def ssh_config(a: SshArgs) -> SshConfig | None:
    given: dict[str, Any] = {k: v for k, v in (("user", a.ssh_user), ("port", a.ssh_port), ("key_file", a.ssh_key),
                                                ("known_hosts", a.ssh_known_hosts),
                                                ("connect_timeout", a.ssh_timeout), ("ssh_config", a.ssh_config))
                              if v is not None}
    if not (a.ssh or given):
        return None  # no SSH: the seam is not loaded
    from coordinator.files.keyfile import check_key_file
    from coordinator.ssh.runner import SshConfig

    if a.ssh_key is not None:
        check_key_file(a.ssh_key)  # before any connection (read again, on its descriptor, when used)
    return SshConfig(**given, per_host=a.ssh_hosts)


def add_secret_options(p: argparse.ArgumentParser) -> None:
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


def add_policy_options(m: argparse.ArgumentParser) -> None:
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
                        "(default: --timeout-per-gib × GiB of guest memory, at least --timeout-minimum)")
    m.add_argument("--timeout-per-gib", type=float, default=defaults.TIMEOUT_PER_GIB_S, metavar="S",
                   help="without --timeout: seconds per GiB of guest memory (default %(default)s)")
    m.add_argument("--timeout-minimum", type=float, default=defaults.TIMEOUT_MINIMUM_S, metavar="S",
                   help="without --timeout: the shortest deadline (default %(default)s)")
    m.add_argument("--on-deadline", choices=["abort", "postcopy", "suspend"], default="", metavar="ACTION",
                   help="at the deadline: abort (default), postcopy (switch once; implies post-copy allowed) or "
                        "suspend (pause the guest once so it converges; resumed if it still fails)")
    m.add_argument("--max-downtime", type=int, metavar="MS",
                   help="the longest pause QEMU may take to finish (virDomainMigrateSetMaxDowntime)")
    m.add_argument("--stall-timeout", type=float, default=defaults.STALL_TIMEOUT_S, metavar="S",
                   help="abort when the remaining data has not shrunk for S seconds (default %(default)s)")
    m.add_argument("--retries", type=int, default=defaults.RETRY_ATTEMPTS, metavar="N",
                   help="attempts on transient libvirt errors (default %(default)s)")
    m.add_argument("--retry-max-seconds", type=float, default=defaults.RETRY_MAX_SECONDS, metavar="S")
    m.add_argument("--journal", type=Path, default=defaults.DEFAULT_JOURNAL, metavar="PATH",
                   help="JSON-lines audit journal (default %(default)s; no values are written)")
    m.add_argument("--lock-dir", type=Path, default=defaults.DEFAULT_LOCK_DIR, metavar="DIR", help=argparse.SUPPRESS)
    m.add_argument("--skip", action="append", default=[], metavar="ID_OR_TAG",
                   help="do not run this pre-flight check id or tag (see `migcoord check`)")
    m.add_argument("--waive", action="append", default=[], metavar="ID",
                   help="let this blocking check id pass, recorded in the report")
    add_accept_unknown(m)


def add_accept_unknown(p: argparse.ArgumentParser) -> None:
    p.add_argument("--accept-unknown", action="store_true",
                   help="go on although a fact that decides success is unknown (recorded in the journal); "
                        "without it such a run changes nothing and exits 6")


def keyring(a: SecretArgs) -> KeyRing:
    from coordinator.steps.keys import KeyRing

    return KeyRing(a.value_sources)


def secret_policy(a: SecretArgs, *, cleanup_source: bool) -> SecretPolicy:
    from coordinator.core.secret_rules import SecretPolicy

    return SecretPolicy(dest_private=a.dest_private, dest_ephemeral=a.dest_ephemeral,
                        reset_values=a.reset_secret_values, allow_plaintext=a.allow_plaintext_secrets,
                        use_source_api=not a.no_source_api, cleanup_source=cleanup_source)


def migration_policy(a: PolicyArgs, *, live: bool) -> MigrationPolicy:
    from coordinator.core.params import MigrationPolicy

    return MigrationPolicy(
        live=live, undefine_source=not a.keep_source, tls=a.tls,
        bandwidth_mib=a.bandwidth, parallel=a.parallel_connections, compression=a.compression,
        auto_converge=a.auto_converge, postcopy=a.postcopy, migrate_uri=a.migrate_uri,
        listen_address=a.listen_address, copy_storage=a.copy_storage, unsafe=a.unsafe,
        on_deadline=a.on_deadline, max_downtime_ms=a.max_downtime)


def retry(a: PolicyArgs) -> RetryPolicy:
    from coordinator.steps.retry import RetryPolicy

    if a.retries < 1:
        raise BadInput("--retries must be at least 1")
    return RetryPolicy(attempts=a.retries, max_seconds=a.retry_max_seconds)


def timeouts(a: PolicyArgs) -> TimeoutPolicy:
    from coordinator.core.params import TimeoutPolicy

    return TimeoutPolicy(completion_s=a.timeout, per_gib_s=a.timeout_per_gib,
                         minimum_s=a.timeout_minimum, stall_s=a.stall_timeout)


def migrate_options(a: Migrating, *, live: bool, cleanup_source: bool, dry_run: bool) -> MigrateOptions:
    """Everything the operator decided, as the library's one options object (``migrate``: ``live``
    unless --offline; ``evacuate`` decides live or offline per domain and always passes True)."""
    from coordinator.steps.parameters import MigrateOptions

    return MigrateOptions(policy=migration_policy(a, live=live),
                          secret_policy=secret_policy(a, cleanup_source=cleanup_source), keyring=keyring(a),
                          retry=retry(a), timeouts=timeouts(a), ssh=ssh_config(a),
                          skip=a.skip, waive=a.waive, dry_run=dry_run, accept_unknown=a.accept_unknown)


def evacuation_policy(a: EvacuateInvocation) -> EvacuationPolicy:
    """Which domains ``evacuate`` moves, how many at once, and what it does when interrupted."""
    from coordinator.core.evacuation import EvacuationPolicy

    return EvacuationPolicy(include_inactive=a.include_inactive, exclude=a.exclude,
                            parallel=a.parallel, per_destination=a.per_destination,
                            max_duration_s=a.max_duration, capacity_mib=_capacity(a.max_memory),
                            on_interrupt=a.on_interrupt, mark_source=not a.no_maintenance)


def _capacity(specs: Sequence[str]) -> dict[str, int]:
    out = {}
    for spec in specs:
        uri, sep, mib = spec.rpartition("=")
        if not sep or not uri or not mib.isdigit():
            raise BadInput(f"--max-memory expects DST_URI=MIB, got {spec!r}")
        out[uri] = int(mib)
    return out
