"""What every check reads: both hosts (or why one is unreachable), the domains, the options.

Built once per run by ``build_context``; read-only. Connection failures do not raise: they
are recorded in ``connect_errors`` and become HOST-REACHABLE findings.
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from coordinator.core.domain.document import DomainDoc, read_document
from coordinator.core.domain.facts import DomainFacts, parse_domain_facts
from coordinator.core.errors import BadInput, HostUnreachable
from coordinator.core.model import SecretPlan
from coordinator.core.params import MigrationPolicy
from coordinator.core.secret_rules import SecretPolicy
from coordinator.core.ids import check_domain_ident
from coordinator.core.uris import check_endpoints, runs_commands
from coordinator.steps.parameters import MigrateOptions
from coordinator.steps.provision import SecretProvisioner, SourceSecrets
from coordinator.virt.guest import Guest, GuestStatus, JobInfo
from coordinator.virt.host import Host

from .host_facts import HostFacts, Memo

if TYPE_CHECKING:  # the SSH seam is loaded when a runner is first asked for (runner()), not at start-up
    from coordinator.ssh.runner import CommandRunner


@dataclass
class Target:
    """One domain to check, as found on the source. One object per domain and run: an evacuation plan
    shares it between its destinations, so what it reads from the source is read once."""

    ident: str
    guest: Guest
    doc: DomainDoc  # its definitions, parsed once
    known_status: GuestStatus | None = None  # what the caller already read (saves two calls)
    policy: MigrationPolicy | None = None  # this domain's (evacuate: live or offline); None: the run's
    name: str = field(init=False)  # the domain's name (what findings are about)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _job: tuple[JobInfo | None] | None = field(default=None, repr=False)
    _migratable: DomainFacts | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.name = self.doc.facts.name or self.ident

    @property
    def facts(self) -> DomainFacts:
        """Facts of the first definition (the live one of a running domain)."""
        return self.doc.facts

    @property
    def xmls(self) -> tuple[str, ...]:
        return self.doc.xmls

    @property
    def status(self) -> GuestStatus:
        """State, persistence and post-copy failure, read once and shared by the domain checks."""
        with self._lock:
            if self.known_status is None:
                self.known_status = self.guest.status()
            return self.known_status

    def migratable_facts(self) -> DomainFacts:
        """Facts of the live definition in its migratable form (``Guest.migratable_xml``), read once."""
        with self._lock:
            if self._migratable is None:
                self._migratable = parse_domain_facts(self.guest.migratable_xml())
            return self._migratable

    def job(self) -> JobInfo | None:
        """The domain's current job (virDomainGetJobStats), read once; None when it is not running."""
        active = self.status.active
        with self._lock:
            if self._job is None:
                self._job = (self.guest.job() if active else None,)
            return self._job[0]


@dataclass
class CheckContext:
    src_uri: str
    dst_uri: str
    src: Host | None
    dst: Host | None
    targets: tuple[Target, ...] = ()
    options: MigrateOptions = field(default_factory=MigrateOptions)
    connect_errors: dict[str, str] = field(default_factory=dict)
    # What hosts said: shared by a caller checking the same source against several destinations (one
    # run for all of them); None: each run_checks of this context asks afresh (``new_run``).
    memo: Memo | None = field(default=None, repr=False)
    host_facts: HostFacts = field(init=False, repr=False)  # this run's host queries (``new_run``)
    _runners: dict[str, CommandRunner | None] = field(default_factory=dict, repr=False)
    _plans: dict[str, list[SecretPlan]] = field(default_factory=dict, repr=False)
    _by_check: dict[str, tuple[list[SecretPlan], dict[str, list[SecretPlan]]]] = field(default_factory=dict,
                                                                                     repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _source_secrets: SourceSecrets | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.new_run()

    def unreachable(self, roles: Sequence[str]) -> list[str]:
        """Those of ``roles`` ("src", "dst") whose host could not be connected to."""
        hosts = {"src": self.src, "dst": self.dst}
        return [r for r in roles if hosts[r] is None]

    @property
    def policy(self) -> MigrationPolicy:
        """The run's policy (pair checks); a domain check asks ``policy_for(t)``."""
        return self.options.policy

    def policy_for(self, t: Target) -> MigrationPolicy:
        """The policy this domain migrates with (an evacuation mixes live and offline migrations)."""
        return t.policy or self.options.policy

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
        Reads only (each source secret at most once per context). Over a plaintext transport the
        provisioner reads no value (its own rule)."""
        with self._lock:  # NOTE: one plan per domain even when several SECRET-* checks ask at once
            if t.name not in self._plans:
                if self._source_secrets is None:
                    self._source_secrets = SourceSecrets(self.source, self.options.keyring)
                prov = SecretProvisioner(self.source, self.destination, keyring=self.options.keyring,
                                         policy=self.secret_policy, source=self._source_secrets)
                self._plans[t.name] = prov.plan(list(t.doc.refs))
            return self._plans[t.name]

    def plans_by_check(self, t: Target) -> tuple[list[SecretPlan], dict[str, list[SecretPlan]]]:
        """The domain's plans, and those that fail a check by that check's id (``SecretPlan.check_id``),
        sorted once for the six SECRET-* checks that each ask for theirs."""
        got = self._by_check.get(t.name)
        if got is None:
            plans = self.secret_plans(t)
            failing: dict[str, list[SecretPlan]] = {}
            for p in plans:
                if p.check_id:
                    failing.setdefault(p.check_id, []).append(p)
            got = self._by_check[t.name] = (plans, failing)
        return got

    def runner(self, role: str) -> CommandRunner | None:
        """The command runner for "src" or "dst" (one per host, reused): SSH when configured,
        local for a local URI, None when the host is remote and SSH is not configured."""
        with self._lock:
            if role not in self._runners:
                uri = self.src_uri if role == "src" else self.dst_uri
                if not runs_commands(uri, self.options.ssh is not None):
                    self._runners[role] = None  # remote, no SSH configured: the seam is not even loaded
                else:
                    from coordinator.ssh.runner import runner_for

                    self._runners[role] = runner_for(uri, self.options.ssh)
            return self._runners[role]

    def seed_plans(self, t: Target, plans: list[SecretPlan]) -> None:
        """Use plans the caller already made (``migrate`` plans before it checks)."""
        with self._lock:
            self._plans[t.name] = plans
            self._by_check.pop(t.name, None)

    # -- what a host says, asked once per run (``host_facts``) -------------------------------------
    def new_run(self) -> None:
        """A new run of this context (``run_checks``): what hosts said in an earlier one is asked again
        (a context may be checked again after the operator fixed something); a caller's memo stays."""
        self.host_facts = HostFacts(self.src_uri, self.dst_uri, self.dst, self.memo or Memo())

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
            targets.append(Target(ident=ident, guest=g, doc=read_document(g.definitions())))
        ctx.targets = tuple(targets)
    except BaseException:
        ctx.close()
        raise
    return ctx
