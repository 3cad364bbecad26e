"""Run the checks: for a migration about to happen (on the caller's connections) or on their own.

``preflight`` connects, runs every registered check concurrently and returns a ``Report``; it
changes nothing anywhere. ``check_guests`` does the same on connections a flow already holds.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace

from coordinator.core.domain.document import read_document
from coordinator.core.errors import BadInput
from coordinator.core.model import SecretPlan
from coordinator.steps.parameters import MigrateOptions
from coordinator.virt.guest import Guest, GuestStatus
from coordinator.virt.host import Host

from .context import CheckContext, Memo, Target, build_context
from .registry import REGISTRY, Report, run_checks, unskippable


def validate_selection(skip: Iterable[str], waive: Iterable[str]) -> None:
    """Unknown ids are typos that would silently run (or block) a check: refuse them."""
    tags = {t for c in REGISTRY.checks.values() for t in c.tags}
    bad_skip = [s for s in skip if s not in REGISTRY.checks and s not in tags]
    if bad_skip:
        raise BadInput(f"unknown check id or tag to skip: {', '.join(bad_skip)}", hint="see checks/README.md")
    bad_waive = [w for w in waive if w not in REGISTRY.checks]
    if bad_waive:
        raise BadInput(f"unknown check id to waive: {', '.join(bad_waive)}", hint="see checks/README.md for the ids")
    for c in unskippable([*skip, *waive]):
        raise BadInput(f"{c.id} cannot be skipped or waived", hint=f"to go on anyway, pass {c.override}")


def check_guests(src: Host, dst: Host, guests: Sequence[tuple[Guest, Sequence[str]]], options: MigrateOptions,
                 plans: dict[str, list[SecretPlan]] | None = None,
                 statuses: dict[str, GuestStatus] | None = None) -> Report:
    """Run the checks for ``guests`` (each with its live/inactive XML) on connections the caller
    owns (``migrate``, ``evacuate``). ``plans`` and ``statuses`` by domain name are what the caller
    already knows, shared with the checks so nothing is looked up or read twice."""
    targets = [Target(ident=g.name, guest=g, doc=read_document(x), known_status=(statuses or {}).get(g.name))
               for g, x in guests]
    return check_targets(src, dst, targets, options, plans=plans)


def check_targets(src: Host, dst: Host, targets: Sequence[Target], options: MigrateOptions,
                  plans: dict[str, list[SecretPlan]] | None = None, memo: Memo | None = None,
                  only_blocking: bool = False) -> Report:
    """``check_guests`` of domains already read (``Target``, each with its own policy if it has one). A
    caller checking the same domains against several destinations passes the same targets and ``memo``
    to each, so what the source says (and each domain's job) is read once for all of them.
    ``only_blocking``: the report holds only the blocking findings (``run_checks``)."""
    validate_selection(options.skip, options.waive)
    ctx = CheckContext(src.uri, dst.uri, src, dst, targets=tuple(targets), options=options,
                       memo=memo)
    for t in ctx.targets:
        if plans and t.name in plans:
            ctx.seed_plans(t, plans[t.name])
    try:
        report = run_checks(ctx, skip=options.skip, waive=options.waive, only_blocking=only_blocking)
    finally:
        ctx.close_runners()  # the hosts' connections belong to the caller
    return replace(report, source=src.uri, destination=dst.uri, domains=tuple(t.name for t in ctx.targets))


def checks_for_migration(src: Host, dst: Host, guest: Guest, xmls: Sequence[str], plans: list[SecretPlan],
                         options: MigrateOptions) -> Report:
    """The pre-flight checks ``migrate`` runs before changing anything, for one domain."""
    return check_guests(src, dst, [(guest, xmls)], options, plans={guest.name: plans})


def preflight(src_uri: str, dst_uri: str, domains: Sequence[str], options: MigrateOptions | None = None,
              connect: Callable[[str], Host] = Host.open) -> Report:
    """Run every check for migrating ``domains`` from ``src_uri`` to ``dst_uri``. Read-only.

    Unreachable hosts become HOST-REACHABLE findings (the checks needing them are skipped).
    Raises ``BadInput`` for a malformed URI, no domain, or a domain the source does not have.
    """
    options = options or MigrateOptions()
    validate_selection(options.skip, options.waive)
    with options.keyring.held():  # values compared by the checks are wiped when they are done
        ctx = build_context(src_uri, dst_uri, list(domains), options, connect=connect)
        try:
            report = run_checks(ctx, skip=options.skip, waive=options.waive)
        finally:
            ctx.close()
    return replace(report, source=src_uri, destination=dst_uri,
                   domains=tuple(t.name for t in ctx.targets) or tuple(domains))
