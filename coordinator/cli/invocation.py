"""One typed, frozen invocation object per command, built from argv and the settings in ``build``.

``build`` is the one merge: the parsed command line, the settings file and the environment
(``core.config.merge``: command line > environment (``MIGCOORD_*``) > file > built-in defaults; only
what the command line really gave counts as given, ``settings.given_dests``), then host aliases
become URIs, ``--to-group`` becomes destinations, ``{source}``/``{command}`` are filled in paths and
the file's ``[[sources]]`` follow the command line's value sources. The parsed ``Namespace`` is read,
never changed; every command's ``run`` gets its own dataclass, with one field per option it has.

NOTE: imported by ``cli.main`` after parsing (like ``settings``): ``--version`` and ``--help`` do not
load the settings merge. The option groups are mixins (``SecretArgs``, ``SshArgs``, ``PolicyArgs``), so
``cli.options`` builds the library's parameter objects from whichever command has them.
"""
from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from coordinator.core.config import SPECS, Effective
from coordinator.core.errors import BadInput
from coordinator.core.uris import uri_facts

from . import settings

if TYPE_CHECKING:
    from coordinator.core.config import HostSsh
    from coordinator.steps.keys import ValueSource


@dataclass(frozen=True, kw_only=True)
class Invocation:
    """The global options, the effective settings, and whether the command prints JSON."""

    command: str
    config: str | None
    verbose: bool
    log_level: str  # --verbose already applied: "info" when the level would have been "warning"
    syslog: bool
    quiet: bool
    json: bool
    settings: Effective = field(repr=False)


@dataclass(frozen=True, kw_only=True)
class SecretArgs:
    """Where secret values come from and how destination copies are made (``add_secret_options``)."""

    value_sources: tuple[ValueSource, ...]  # the command line's, in the order given, then the file's
    no_source_api: bool
    dest_private: bool | None
    dest_ephemeral: bool | None
    reset_secret_values: bool
    allow_plaintext_secrets: bool


@dataclass(frozen=True, kw_only=True)
class SshArgs:
    """The SSH host checks (``add_ssh_options``) and the settings file's per-host SSH settings."""

    ssh: bool
    ssh_user: str | None
    ssh_port: int | None
    ssh_key: Path | None
    ssh_known_hosts: Path | None
    ssh_timeout: float | None
    ssh_config: Path | None
    ssh_hosts: Mapping[str, HostSsh]


@dataclass(frozen=True, kw_only=True)
class Selection:
    """Which checks run, which pass anyway, and whether a decisive unknown is accepted."""

    skip: tuple[str, ...]
    waive: tuple[str, ...]
    accept_unknown: bool


@dataclass(frozen=True, kw_only=True)
class PolicyArgs(Selection):
    """Migration policy, deadlines, retries, journal and lock directory (``add_policy_options``)."""

    keep_source: bool
    tls: bool
    bandwidth: int | None
    parallel_connections: int | None
    compression: str | None
    auto_converge: bool
    postcopy: bool
    migrate_uri: str | None
    listen_address: str | None
    copy_storage: bool
    unsafe: bool
    timeout: float | None
    timeout_per_gib: float
    timeout_minimum: float
    on_deadline: str
    max_downtime: int | None
    stall_timeout: float
    retries: int
    retry_max_seconds: float
    journal: Path
    lock_dir: Path


@dataclass(frozen=True, kw_only=True)
class Migrating(Invocation, SecretArgs, SshArgs, PolicyArgs):
    """What ``migrate`` and ``evacuate`` share: everything a migration needs."""

    src: str
    metrics_file: Path | None
    dry_run: bool


@dataclass(frozen=True, kw_only=True)
class MigrateInvocation(Migrating):
    domain: str
    dst: str
    cleanup_source_secrets: bool
    offline: bool
    timings: bool


@dataclass(frozen=True, kw_only=True)
class EvacuateInvocation(Migrating):
    dsts: tuple[str, ...]  # --to and every --to-group member, as URIs; never empty
    to_group: tuple[str, ...]
    report: Path | None
    include_inactive: bool
    exclude: tuple[str, ...]
    parallel: int
    per_destination: int
    max_duration: float | None
    on_interrupt: str
    no_maintenance: bool
    max_memory: tuple[str, ...]  # DST_URI=MIB, an alias already resolved


@dataclass(frozen=True, kw_only=True)
class SecretsInvocation(Invocation, SecretArgs):
    domain: str
    src: str
    dst: str


@dataclass(frozen=True, kw_only=True)
class SecretsAuditInvocation(Invocation):
    """``secrets audit HOST...``."""

    hosts: tuple[str, ...]  # URIs, aliases resolved, in the order given
    allow_plaintext_secrets: bool
    accept_unknown: bool
    metrics_file: Path | None


@dataclass(frozen=True, kw_only=True)
class CheckInvocation(Invocation, SecretArgs, SshArgs, Selection):
    domains: tuple[str, ...]
    src: str
    dst: str
    offline: bool
    copy_storage: bool
    unsafe: bool


@dataclass(frozen=True, kw_only=True)
class ControlInvocation(Invocation):
    """``abort`` and ``complete``."""

    domain: str
    src: str


@dataclass(frozen=True, kw_only=True)
class MaintenanceInvocation(Invocation):
    action: str
    uri: str  # NOTE: as given: a host alias is not resolved here (as before)
    reason: str


@dataclass(frozen=True, kw_only=True)
class ConfigInvocation(Invocation):
    action: str


@dataclass(frozen=True, kw_only=True)
class CompletionInvocation(Invocation):
    shell: str
    json: bool = field(default=False, init=False)  # completion has no --json


BY_COMMAND: Mapping[str, type[Invocation]] = {
    "migrate": MigrateInvocation, "evacuate": EvacuateInvocation, "secrets": SecretsInvocation,
    "secrets-audit": SecretsAuditInvocation,
    "check": CheckInvocation, "abort": ControlInvocation, "complete": ControlInvocation,
    "maintenance": MaintenanceInvocation, "config": ConfigInvocation, "completion": CompletionInvocation,
}
# What the parser produces that no invocation carries: the value-source actions collect into
# ``value_sources`` instead of their own dests.
NOT_CARRIED = frozenset({"src_file", "src_dir", "src_command", "src_stdin"})


def build(args: argparse.Namespace, build_parser: Callable[[], argparse.ArgumentParser], argv: Sequence[str],
          environ: Mapping[str, str] | None = None) -> Invocation:
    """The command's invocation: ``args`` (``build_parser().parse_args(argv)``) merged with the
    settings file and ``environ`` (default: ``os.environ``). Raises ``BadInput`` (exit 2) for a bad
    settings file or variable, an unknown group or no destination — before any connection."""
    env = os.environ if environ is None else environ
    eff = settings.effective(args, settings.given_dests(build_parser, argv), env)
    values: dict[str, Any] = dict(vars(args))  # a copy: the Namespace stays as argparse left it
    for spec in SPECS:
        if spec.dest in values:
            v = eff[spec.key]
            values[spec.dest] = Path(v) if spec.type == "path" and v is not None else v
    _hosts(values, eff)
    if "src_file" in values:  # the command takes value sources: the file's follow the command line's
        from coordinator.steps.keys import ValueSource  # NOTE: here: `config show` needs no keyring

        values["value_sources"] = (*values.get("value_sources", ()),  # set only when one was given
                                   *(ValueSource(s.kind, s.arg, s.uuid, s.usage) for s in eff.sources))
    values["ssh_hosts"] = eff.host_ssh()
    values["settings"] = eff
    if values["verbose"] and values["log_level"] == "warning":
        values["log_level"] = "info"
    cls = BY_COMMAND[values["command"]]
    return cls(**{f.name: _frozen(values[f.name]) for f in fields(cls) if f.init})


def _frozen(value: Any) -> Any:
    """A repeatable option's list (None when never given) as a tuple."""
    return tuple(value) if isinstance(value, list) else value


def _hosts(values: dict[str, Any], eff: Effective) -> None:
    if values.get("src"):
        values["src"] = eff.resolve_host(values["src"])
    if values.get("dst"):
        values["dst"] = eff.resolve_host(values["dst"])
    if values.get("hosts"):
        values["hosts"] = [eff.resolve_host(h) for h in values["hosts"]]
    if "dsts" in values:
        dsts = [eff.resolve_host(d) for d in (values["dsts"] or [])]
        for g in values["to_group"] or []:
            dsts += [u for u in eff.group(g) if u not in dsts and u != values["src"]]
        if not dsts:
            raise BadInput("no destination given", hint="give --to HOST_OR_URI or --to-group GROUP")
        values["dsts"] = dsts
        values["to_group"] = values["to_group"] or []
    if values.get("max_memory"):  # --max-memory hv2=4096: an alias there too
        values["max_memory"] = [f"{eff.resolve_host(d)}={m}" if sep else spec
                                for spec in values["max_memory"] for d, sep, m in [spec.rpartition("=")]]
    for dest in ("report", "metrics_file"):  # {source}: the source host; {command}: migrate | evacuate
        path = values.get(dest)
        if path is not None and ("{source}" in str(path) or "{command}" in str(path)):
            first = values.get("src") or values["hosts"][0]  # secrets audit: the first host
            host = uri_facts(first).host or "localhost"
            values[dest] = Path(str(path).replace("{source}", host).replace("{command}", values["command"]))
