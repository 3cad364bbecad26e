"""What every check reads: both hosts (or why one is unreachable), the domains, the policies.

Built once per run by ``build_context``; read-only. Connection failures do not raise: they
are recorded in ``connect_errors`` and become HOST-REACHABLE findings.
"""
from __future__ import annotations

import functools
import threading
from dataclasses import dataclass, field
from typing import Callable

from coordinator import domfacts, domxml
from coordinator.errors import BadInput, Blocked, HostUnreachable
from coordinator.hypervisor import Guest, GuestStatus, Host
from coordinator.keys import KeyRing
from coordinator.model import SecretPlan
from coordinator.params import MigrationPolicy
from coordinator.remote import CommandRunner, SshConfig, runner_for
from coordinator.secrets import SecretPolicy, SecretProvisioner, check_transport


@dataclass
class Target:
    """One domain to check, as found on the source."""

    ident: str
    guest: Guest
    facts: domfacts.DomainFacts
    xmls: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.facts.name or self.ident

    @functools.cached_property
    def status(self) -> GuestStatus:
        """State, persistence and post-copy failure, read once and shared by the domain checks."""
        return self.guest.status()


@dataclass
class CheckContext:
    src_uri: str
    dst_uri: str
    src: Host | None
    dst: Host | None
    targets: tuple[Target, ...] = ()
    policy: MigrationPolicy = field(default_factory=MigrationPolicy)
    secret_policy: SecretPolicy = field(default_factory=SecretPolicy)
    keyring: KeyRing = field(default_factory=KeyRing)
    connect_errors: dict[str, str] = field(default_factory=dict)
    ssh_config: SshConfig | None = None
    _runners: dict[str, CommandRunner | None] = field(default_factory=dict, repr=False)
    _plans: dict[str, list[SecretPlan]] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _caps: dict[tuple, str] = field(default_factory=dict, repr=False)
    _dst_index: dict[str, tuple[str, str]] | None = field(default=None, repr=False)

    @property
    def values_allowed(self) -> bool:
        """Secret values may be read (and compared) only when no connection is plaintext-remote."""
        try:
            check_transport(self.src_uri, self.dst_uri, allow_plaintext=self.secret_policy.allow_plaintext)
        except Blocked:
            return False
        return True

    def secret_plans(self, t: Target) -> list[SecretPlan]:
        """``SecretProvisioner.plan`` for one domain, computed once and shared by the SECRET-* checks.
        Reads only. Over a plaintext transport no value is read: values become unverifiable."""
        with self._lock:  # NOTE: one plan per domain even when several SECRET-* checks ask at once
            if t.name not in self._plans:
                assert self.src is not None and self.dst is not None
                policy, keyring = self.secret_policy, self.keyring
                if not self.values_allowed:
                    policy = SecretPolicy(dest_private=policy.dest_private, dest_ephemeral=policy.dest_ephemeral,
                                          reset_values=policy.reset_values, allow_plaintext=False,
                                          use_source_api=False)
                    keyring = KeyRing()
                prov = SecretProvisioner(self.src, self.dst, keyring=keyring, policy=policy)
                self._plans[t.name] = prov.plan(domxml.union_refs(*t.xmls))
            return self._plans[t.name]

    def runner(self, role: str) -> CommandRunner | None:
        """The command runner for "src" or "dst" (one per host, reused): SSH when configured,
        local for a local URI, None when the host is remote and SSH is not configured."""
        with self._lock:
            if role not in self._runners:
                self._runners[role] = runner_for(self.src_uri if role == "src" else self.dst_uri,
                                                 self.ssh_config)
            return self._runners[role]

    def dst_domains(self) -> dict[str, tuple[str, str]]:
        """The destination's domains, listed once per run (``Host.domain_index``)."""
        with self._lock:
            if self._dst_index is None:
                assert self.dst is not None
                self._dst_index = self.dst.domain_index()
            return self._dst_index

    def seed_plans(self, t: Target, plans: list[SecretPlan]) -> None:
        """Use plans the caller already made (``migrate`` plans before it checks)."""
        with self._lock:
            self._plans[t.name] = plans

    def domcaps(self, host: Host, f: domfacts.DomainFacts) -> str:
        key = (host.uri, f.emulator, f.arch, f.machine, f.virt_type)
        with self._lock:
            if key not in self._caps:
                self._caps[key] = host.domain_capabilities(f.emulator, f.arch, f.machine, f.virt_type)
            return self._caps[key]

    def close(self) -> None:
        for r in self._runners.values():
            if r is not None:
                r.close()
        for h in (self.src, self.dst):
            if h is not None:
                h.close()


def build_context(src_uri: str, dst_uri: str, domains: list[str] | tuple[str, ...], *,
                  policy: MigrationPolicy, secret_policy: SecretPolicy, keyring: KeyRing,
                  connect: Callable[[str], Host] = Host.open, ssh: SshConfig | None = None) -> CheckContext:
    """Connect to both hosts (failures recorded, not raised) and resolve each domain on the source.
    Raises BadInput for a bad URI, no domain, or a domain the reachable source does not have."""
    from coordinator.hypervisor import check_uri
    check_uri(src_uri)
    check_uri(dst_uri)
    if not domains:
        raise BadInput("no domain given", hint="name at least one domain (name, UUID or id)")
    errors: dict[str, str] = {}
    hosts: dict[str, Host | None] = {}
    for role, uri in (("src", src_uri), ("dst", dst_uri)):
        try:
            hosts[role] = connect(uri)
        except HostUnreachable as e:
            hosts[role] = None
            errors[uri] = e.message
    ctx = CheckContext(src_uri, dst_uri, hosts["src"], hosts["dst"], policy=policy,
                       secret_policy=secret_policy, keyring=keyring, connect_errors=errors, ssh_config=ssh)
    if ctx.src is None:
        return ctx
    try:
        targets = []
        for ident in dict.fromkeys(domains):
            g = ctx.src.find_guest(ident)
            if g is None:
                raise BadInput(f"domain {ident!r} not found on {src_uri}",
                               hint="give its name, UUID or id as virsh list shows it")
            xmls = tuple(g.definitions())
            targets.append(Target(ident=ident, guest=g, facts=domfacts.parse(xmls[0]), xmls=xmls))
        ctx.targets = tuple(targets)
    except BaseException:
        ctx.close()
        raise
    return ctx
