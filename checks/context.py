"""What every check reads: both hosts (or why one is unreachable), the domains, the options.

Built once per run by ``build_context``; read-only. Connection failures do not raise: they
are recorded in ``connect_errors`` and become HOST-REACHABLE findings.
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from coordinator.core import domfacts, domxml
from coordinator.core.errors import BadInput, HostUnreachable
from coordinator.core.model import SecretPlan
from coordinator.core.params import MigrationPolicy
from coordinator.core.secret_rules import SecretPolicy
from coordinator.core.ids import check_domain_ident
from coordinator.core.uris import check_endpoints
from coordinator.ssh.runner import CommandRunner, runner_for
from coordinator.steps.options import MigrateOptions
from coordinator.steps.provision import SecretProvisioner
from coordinator.virt.guest import Guest, GuestStatus
from coordinator.virt.host import Host


@dataclass
class Target:
    """One domain to check, as found on the source."""

    ident: str
    guest: Guest
    facts: domfacts.DomainFacts
    xmls: tuple[str, ...]
    known_status: GuestStatus | None = None  # what the caller already read (saves two calls)

    @property
    def name(self) -> str:
        return self.facts.name or self.ident

    @property
    def status(self) -> GuestStatus:
        """State, persistence and post-copy failure, read once and shared by the domain checks."""
        if self.known_status is None:
            self.known_status = self.guest.status()
        return self.known_status


@dataclass
class CheckContext:
    src_uri: str
    dst_uri: str
    src: Host | None
    dst: Host | None
    targets: tuple[Target, ...] = ()
    options: MigrateOptions = field(default_factory=MigrateOptions)
    connect_errors: dict[str, str] = field(default_factory=dict)
    _runners: dict[str, CommandRunner | None] = field(default_factory=dict, repr=False)
    _plans: dict[str, list[SecretPlan]] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _caps: dict[tuple[str, ...], str] = field(default_factory=dict, repr=False)
    _dst_index: dict[str, tuple[str, str]] | None = field(default=None, repr=False)

    @property
    def policy(self) -> MigrationPolicy:
        return self.options.policy

    @property
    def secret_policy(self) -> SecretPolicy:
        return self.options.secret_policy

    @property
    def source(self) -> Host:
        """The source connection; only for checks that declare ``needs=("src", ...)``."""
        assert self.src is not None, "the registry runs this check only when the source is reachable"
        return self.src

    @property
    def destination(self) -> Host:
        """The destination connection; only for checks that declare ``needs=(..., "dst")``."""
        assert self.dst is not None, "the registry runs this check only when the destination is reachable"
        return self.dst

    def secret_plans(self, t: Target) -> list[SecretPlan]:
        """``SecretProvisioner.plan`` for one domain, computed once and shared by the SECRET-* checks.
        Reads only. Over a plaintext transport the provisioner reads no value (its own rule)."""
        with self._lock:  # NOTE: one plan per domain even when several SECRET-* checks ask at once
            if t.name not in self._plans:
                prov = SecretProvisioner(self.source, self.destination, keyring=self.options.keyring,
                                         policy=self.secret_policy)
                self._plans[t.name] = prov.plan(domxml.union_refs(*t.xmls))
            return self._plans[t.name]

    def runner(self, role: str) -> CommandRunner | None:
        """The command runner for "src" or "dst" (one per host, reused): SSH when configured,
        local for a local URI, None when the host is remote and SSH is not configured."""
        with self._lock:
            if role not in self._runners:
                self._runners[role] = runner_for(self.src_uri if role == "src" else self.dst_uri,
                                                 self.options.ssh)
            return self._runners[role]

    def dst_domains(self) -> dict[str, tuple[str, str]]:
        """The destination's domains, listed once per run (``Host.domain_index``)."""
        with self._lock:
            if self._dst_index is None:
                self._dst_index = self.destination.domain_index()
            return self._dst_index

    def seed_plans(self, t: Target, plans: list[SecretPlan]) -> None:
        """Use plans the caller already made (``migrate`` plans before it checks)."""
        with self._lock:
            self._plans[t.name] = plans

    def domcaps(self, host: Host, f: domfacts.DomainFacts) -> str:
        key = (host.uri, f.emulator or "", f.arch or "", f.machine or "", f.virt_type)
        with self._lock:
            if key not in self._caps:
                self._caps[key] = host.domain_capabilities(f.emulator, f.arch, f.machine, f.virt_type)
            return self._caps[key]

    def close_runners(self) -> None:
        for r in self._runners.values():
            if r is not None:
                r.close()

    def close(self) -> None:
        self.close_runners()
        for h in (self.src, self.dst):
            if h is not None:
                h.close()


def build_context(src_uri: str, dst_uri: str, domains: Sequence[str], options: MigrateOptions, *,
                  connect: Callable[[str], Host] = Host.open) -> CheckContext:
    """Connect to both hosts (failures recorded, not raised) and resolve each domain on the source.
    Raises BadInput for a bad URI, no domain, or a domain the reachable source does not have."""
    check_endpoints(src_uri, [dst_uri])
    if not domains:
        raise BadInput("no domain given", hint="name at least one domain (name, UUID or id)")
    for d in domains:
        check_domain_ident(d)
    errors: dict[str, str] = {}
    hosts: dict[str, Host | None] = {}
    for role, uri in (("src", src_uri), ("dst", dst_uri)):
        try:
            hosts[role] = connect(uri)
        except HostUnreachable as e:
            hosts[role] = None
            errors[uri] = e.message
    ctx = CheckContext(src_uri, dst_uri, hosts["src"], hosts["dst"], options=options, connect_errors=errors)
    if ctx.src is None:
        return ctx
    try:
        targets = []
        for ident in dict.fromkeys(domains):
            g = ctx.src.require_guest(ident)
            xmls = tuple(g.definitions())
            targets.append(Target(ident=ident, guest=g, facts=domfacts.parse(xmls[0]), xmls=xmls))
        ctx.targets = tuple(targets)
    except BaseException:
        ctx.close()
        raise
    return ctx
