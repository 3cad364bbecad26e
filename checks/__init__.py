"""Pre-flight checks over the libvirt API (issue #4): a registry, one module per area, a report.

``preflight(src_uri, dst_uri, domains)`` connects, runs every registered check concurrently and
returns a ``Report``; it changes nothing anywhere. The check ids are documented in README.md.
"""
from __future__ import annotations

from typing import Callable, Iterable, Sequence

from coordinator import domfacts
from coordinator.hypervisor import Guest, GuestStatus, Host
from coordinator.model import SecretPlan
from coordinator.keys import KeyRing
from coordinator.params import MigrationPolicy
from coordinator.remote import SshConfig
from coordinator.secrets import SecretPolicy

# NOTE: importing the area modules registers their checks, in this (report) order.
from . import hosts  # noqa: F401  isort: skip
from . import domain  # noqa: F401  isort: skip
from . import secrets  # noqa: F401  isort: skip
from . import capability  # noqa: F401  isort: skip
from . import resources  # noqa: F401  isort: skip
from . import ssh as _ssh_checks  # noqa: F401  isort: skip
from .context import CheckContext, Target, build_context
from .registry import REGISTRY, Check, Finding, Report, Result, check, run_checks

__all__ = ["Check", "CheckContext", "Finding", "REGISTRY", "Report", "Result", "Target", "build_context",
           "check", "check_guests", "checks_for_migration", "preflight", "run_checks"]


def validate_selection(skip: Iterable[str], waive: Iterable[str]) -> None:
    """Unknown ids are typos that would silently run (or block) a check: refuse them."""
    from coordinator.errors import BadInput
    tags = {t for c in REGISTRY.checks.values() for t in c.tags}
    bad_skip = [s for s in skip if s not in REGISTRY.checks and s not in tags]
    if bad_skip:
        raise BadInput(f"unknown check id or tag to skip: {', '.join(bad_skip)}", hint="see checks/README.md")
    bad_waive = [w for w in waive if w not in REGISTRY.checks]
    if bad_waive:
        raise BadInput(f"unknown check id to waive: {', '.join(bad_waive)}", hint="see checks/README.md for the ids")


def check_guests(src: Host, dst: Host, guests: Sequence[tuple[Guest, Sequence[str]]], *,
                 policy: MigrationPolicy, secret_policy: SecretPolicy, keyring: KeyRing,
                 skip: Iterable[str] = (), waive: Iterable[str] = (), ssh: SshConfig | None = None,
                 plans: dict[str, list[SecretPlan]] | None = None,
                 statuses: dict[str, GuestStatus] | None = None) -> Report:
    """Run the checks for ``guests`` (each with its live/inactive XML) on connections the caller
    owns (``migrate``, ``evacuate``). ``plans`` by domain name are shared with the SECRET-* checks
    so no secret is looked up or read twice."""
    validate_selection(skip, waive)
    ctx = CheckContext(src.uri, dst.uri, src, dst, policy=policy, secret_policy=secret_policy,
                       keyring=keyring, ssh_config=ssh)
    ctx.targets = tuple(Target(ident=g.name, guest=g, facts=domfacts.parse(x[0]), xmls=tuple(x))
                        for g, x in guests)
    for t in ctx.targets:
        if plans and t.name in plans:
            ctx.seed_plans(t, plans[t.name])
        if statuses and t.name in statuses:
            t.__dict__["status"] = statuses[t.name]  # NOTE: pre-fills the cached_property
    from dataclasses import replace
    try:
        report = run_checks(ctx, skip=tuple(skip), waive=tuple(waive))
    finally:
        for r in ctx._runners.values():  # the hosts' connections belong to the caller
            if r is not None:
                r.close()
    return replace(report, source=src.uri, destination=dst.uri, domains=tuple(g.name for g, _ in guests))


def checks_for_migration(src: Host, dst: Host, guest: Guest, xmls: Sequence[str], plans: list[SecretPlan], *,
                         policy: MigrationPolicy, secret_policy: SecretPolicy, keyring: KeyRing,
                         skip: Iterable[str] = (), waive: Iterable[str] = (),
                         ssh: SshConfig | None = None) -> Report:
    """The pre-flight checks ``migrate`` runs before changing anything, for one domain."""
    return check_guests(src, dst, [(guest, xmls)], policy=policy, secret_policy=secret_policy,
                        keyring=keyring, skip=skip, waive=waive, ssh=ssh, plans={guest.name: plans})


def preflight(src_uri: str, dst_uri: str, domains: Sequence[str], *,
              policy: MigrationPolicy = MigrationPolicy(), secret_policy: SecretPolicy = SecretPolicy(),
              keyring: KeyRing | None = None, skip: Iterable[str] = (), waive: Iterable[str] = (),
              connect: Callable[[str], Host] = Host.open, ssh: SshConfig | None = None) -> Report:
    """Run every libvirt check for migrating ``domains`` from ``src_uri`` to ``dst_uri``. Read-only.

    Unreachable hosts become HOST-REACHABLE findings (the checks needing them are skipped).
    Raises ``BadInput`` for a malformed URI, no domain, or a domain the source does not have.
    """
    skip, waive = tuple(skip), tuple(waive)
    validate_selection(skip, waive)
    ctx = build_context(src_uri, dst_uri, list(domains), policy=policy, secret_policy=secret_policy,
                        keyring=keyring or KeyRing(), connect=connect, ssh=ssh)
    try:
        report = run_checks(ctx, skip=skip, waive=waive)
    finally:
        ctx.close()
    from dataclasses import replace
    return replace(report, source=src_uri, destination=dst_uri,
                   domains=tuple(t.name for t in ctx.targets) or tuple(domains))
