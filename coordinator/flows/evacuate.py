"""Move every domain off a host: plan (checks + placement), then migrate in parallel.

``plan_evacuation`` is read-only (the dry run). ``evacuate`` takes an exclusive lock per
source host (cron runs cannot overlap), carries out the plan with bounded concurrency (in
total and per destination), lets one domain's failure leave the others alone, and returns a
typed report. The values and decisions (placement, exit code) are pure: ``core.evacuation``.
"""
from __future__ import annotations

import contextlib
import fnmatch
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from checks import REGISTRY, Memo, Report, Target, check_targets
from coordinator.core.domain.document import read_document
from coordinator.core.errors import BadInput, Busy, Interrupted, MigcoordError, Undecided
from coordinator.core.evacuation import (Candidate, EvacuationPlan, EvacuationPolicy, EvacuationReport, Outcome,
                                         PlannedDomain, place)
from coordinator.core.exit_codes import ExitCode
from coordinator.core.model import SecretPlan
from coordinator.core.uris import check_endpoints, distinct_hosts
from coordinator.flows.boundary import libvirt_errors
from coordinator.flows.maintenance import mark
from coordinator.flows.migrate import migrate
from coordinator.flows.validate import before_connecting
from coordinator.steps.locks import host_lock
from coordinator.steps.parameters import MigrateOptions, Runtime
from coordinator.steps.provision import SecretProvisioner, SourceSecrets
from coordinator.virt.guest import GuestStatus
from coordinator.virt.host import Host

log = logging.getLogger("migcoord")

# Capacity is accounted by the placement itself (free memory minus what the plan put there).
CAPACITY_CHECK = "MEMORY-INSUFFICIENT"

__all__ = ["EvacuationPlan", "EvacuationPolicy", "EvacuationReport", "Outcome", "evacuate", "plan_evacuation"]


# ---------------------------------------------------------------- planning (reads only)

def _excluded(name: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def _plan_with(src: Host, dsts: dict[str, Host], ev: EvacuationPolicy, s: MigrateOptions) -> EvacuationPlan:
    guests, excluded, live, pers = [], [], {}, {}
    statuses: dict[str, GuestStatus] = {}
    for g, active, persistent in src.guests_by_state():
        if _excluded(g.name, ev.exclude):
            excluded.append(g.name)
            continue
        if active or (ev.include_inactive and persistent):
            guests.append(g)
            live[g.name], pers[g.name] = active, persistent
            # Read once and shared by every destination's checks; a shut-off domain's status is
            # fully known from the listing.
            statuses[g.name] = g.status() if active else GuestStatus(
                state="shutoff", active=False, persistent=True, postcopy_failed=False)
    # Each domain's definitions are read and parsed once, for every destination's secret plans and checks.
    docs = {g.name: read_document(g.definitions(live[g.name], pers[g.name])) for g in guests}
    policies = {is_live: replace(s.policy, live=is_live) for is_live in (True, False)}
    targets = [Target(ident=g.name, guest=g, doc=docs[g.name], known_status=statuses[g.name],
                      policy=policies[live[g.name]]) for g in guests]
    checked = replace(s, skip=s.skip + (CAPACITY_CHECK,))
    blockers: dict[tuple[str, str], tuple[str, ...]] = {}
    undecided: dict[tuple[str, str], tuple[str, ...]] = {}  # decisive unknowns (checks.registry.decisive)
    plans: dict[tuple[str, str], list[SecretPlan]] = {}
    source = SourceSecrets(src, s.keyring)  # each source secret is looked up and read once for all destinations
    memo = Memo()  # what the source says (and each domain's job) is asked once for all destinations
    for uri, dst in dsts.items():
        prov = SecretProvisioner(src, dst, keyring=s.keyring, policy=s.secret_policy, source=source)
        dst_plans = {t.name: prov.plan(list(t.doc.refs)) for t in targets}
        for t in targets:
            plans[(t.name, uri)] = dst_plans[t.name]
        if targets:  # one check run per destination: its pair checks once, each domain with its own policy
            report = check_targets(src, dst, targets, checked, plans=dst_plans, memo=memo, only_blocking=True)
            blockers.update(_blockers(report, targets, live, uri))
            if not s.accept_unknown:  # a destination where success rests on an unknown is not a place
                undecided.update(_blockers(report, targets, live, uri, decisive=True))
    # Migrations already inbound from anyone (another evacuation, another tool) use memory the
    # destination does not show as used yet: they count against its free memory and the cap.
    capacity = {uri: max(0, min(dst.free_memory(), ev.capacity_mib.get(uri, 1 << 40) * 2**20)
                         - dst.inbound_migration_memory())
                for uri, dst in dsts.items()}
    memory = {g.name: g.memory_bytes() if live[g.name] else docs[g.name].facts.memory_kib * 1024 for g in guests}
    # An unknown that decides success keeps a domain off that destination like a block, named as unknown.
    refusals = {k: ids + tuple(f"{i} (unknown)" for i in undecided.get(k, ()) if i not in ids)
                for k in {*blockers, *undecided} for ids in [blockers.get(k, ())]}
    placement = place([Candidate(g.name, memory[g.name], live[g.name]) for g in guests], capacity, refusals)
    domains = tuple(
        PlannedDomain(name=g.name, uuid=g.uuid, live=live[g.name], memory_bytes=memory[g.name],
                      destination=placement.destination.get(g.name),
                      reason=placement.unplaceable.get(g.name, ""),
                      secrets=tuple(plans.get((g.name, placement.destination.get(g.name, "")), ())))
        for g in sorted(guests, key=lambda g: g.name))
    return EvacuationPlan(source=src.uri, destinations=tuple(dsts), domains=domains, excluded=tuple(excluded),
                          blockers={g.name: {uri: blockers[(g.name, uri)] for uri in dsts
                                             if blockers.get((g.name, uri))} for g in guests},
                          undecided={g.name: {uri: undecided[(g.name, uri)] for uri in dsts
                                              if undecided.get((g.name, uri))} for g in guests})


def _blockers(report: Report, targets: Sequence[Target], live: dict[str, bool],
              uri: str, decisive: bool = False) -> dict[tuple[str, str], tuple[str, ...]]:
    """What blocks each domain toward ``uri``: its own blocking findings, plus the blocking pair
    (host-level) findings — those of a pair check that concerns only some domains (``Check.concerns``)
    for the domains migrating the same way (live / offline) when it concerns one of them.
    ``decisive``: the same for the decisive unknowns instead of the blocking findings."""
    names = {t.name for t in targets}
    own: dict[str, set[str]] = {}
    pair: set[str] = set()
    for f in (report.decisive if decisive else report.blocking):
        if f.subject in names:
            own.setdefault(f.subject, set()).add(f.check_id)
        else:
            pair.add(f.check_id)
    out = {}
    for is_live in (True, False):
        group = [t for t in targets if live[t.name] is is_live]
        group_pair = {cid for cid in pair if _concerns(cid, group)}
        for t in group:
            out[(t.name, uri)] = tuple(sorted(own.get(t.name, set()) | group_pair))
    return out


def _concerns(check_id: str, group: Sequence[Target]) -> bool:
    c = REGISTRY.checks.get(check_id)
    return c is None or c.concerns is None or any(c.concerns(t) for t in group)


def _validate(source_uri: str, dest_uris: Sequence[str], ev: EvacuationPolicy, options: MigrateOptions) -> None:
    before_connecting(source_uri, dest_uris, options)
    unknown = [u for u in ev.capacity_mib if u not in dest_uris]
    if unknown:
        raise BadInput(f"--max-memory names {', '.join(unknown)}, which is not a --to destination")


@contextlib.contextmanager
def _connected(source_uri: str, dest_uris: Sequence[str],
               connect: Callable[[str], Host]) -> Iterator[tuple[Host, dict[str, Host]]]:
    check_endpoints(source_uri, dest_uris)
    opened: list[Host] = []
    try:
        src = connect(source_uri)
        opened.append(src)
        dsts = {}
        for u in dest_uris:
            dsts[u] = connect(u)
            opened.append(dsts[u])
        # Two spellings of one host would double its capacity and concurrency: identity is the host UUID.
        distinct_hosts({source_uri: src.host_uuid(), **{u: d.host_uuid() for u, d in dsts.items()}})
        yield src, dsts
    finally:
        for h in opened:
            h.close()


def plan_evacuation(source_uri: str, dest_uris: Sequence[str], evacuation: EvacuationPolicy | None = None,
                    options: MigrateOptions | None = None,
                    connect: Callable[[str], Host] = Host.open) -> EvacuationPlan:
    """The dry run: which domain goes where, which secrets each needs, what blocks. Changes nothing."""
    options = options or MigrateOptions()
    evacuation = evacuation or EvacuationPolicy()
    _validate(source_uri, dest_uris, evacuation, options)
    with libvirt_errors(), options.keyring.held(), _connected(source_uri, dest_uris, connect) as (src, dsts):
        return _plan_with(src, dsts, evacuation, options)


# ---------------------------------------------------------------- execution

def evacuate(source_uri: str, dest_uris: Sequence[str], evacuation: EvacuationPolicy | None = None,
             options: MigrateOptions | None = None, runtime: Runtime | None = None) -> EvacuationReport:
    """Evacuate ``source_uri``: every running domain (and shut-off persistent ones with
    ``include_inactive``) to the best destination; returns one outcome per domain."""
    options = options or MigrateOptions()
    evacuation = evacuation or EvacuationPolicy()
    rt = runtime or Runtime()
    _validate(source_uri, dest_uris, evacuation, options)
    t0 = rt.clock()
    with libvirt_errors(), options.keyring.held(), _connected(source_uri, dest_uris, rt.connect) as (src, dsts), \
            host_lock(rt.lock_dir, src.host_uuid(), source_uri):
        if evacuation.mark_source:  # before planning: nobody places new domains onto a host being emptied
            m = mark(src, reason="evacuation", run_id=rt.journal.run_id)
            rt.journal.record("maintenance-marked", host=source_uri, **m.as_dict())
        plan = _plan_with(src, dsts, evacuation, options)
        rt.journal.record("evacuation-plan", source=source_uri,
                          placed={d.name: d.destination for d in plan.placed},
                          unplaceable={d.name: d.reason for d in plan.unplaceable})
        rt.on_event({"event": "evacuation-plan", "plan": plan.as_dict()})
        outcomes = [Outcome(d.name, "unplaceable", reason=d.reason) for d in plan.unplaceable]
        execution = _Execution(plan, evacuation, options, rt, t0)
        outcomes += execution.run()
    report = EvacuationReport(plan=plan, outcomes=tuple(sorted(outcomes, key=lambda o: o.domain)),
                              duration_s=rt.clock() - t0, interrupted=execution.interrupted)
    rt.journal.record("evacuation-done", source=source_uri, exit_code=report.exit_code,
                      moved=[o.domain for o in report.outcomes if o.moved],
                      not_moved=[o.domain for o in report.outcomes if not o.moved])
    return report


class _Execution:
    """Carries out a plan: bounded concurrency in total and per destination, a deadline for
    starting new migrations, and one domain's failure never stopping the others."""

    def __init__(self, plan: EvacuationPlan, ev: EvacuationPolicy, options: MigrateOptions, rt: Runtime,
                 t0: float) -> None:
        self.plan, self.ev, self.options, self.rt = plan, ev, options, rt
        self.per_dst = {uri: threading.Semaphore(ev.per_destination) for uri in plan.destinations}
        self.deadline = t0 + ev.max_duration_s if ev.max_duration_s else None
        self.stopping = threading.Event()  # interrupted: start nothing new
        self.interrupted = False

    def run(self) -> list[Outcome]:
        """Every placed domain's outcome. Ctrl-C / SIGTERM (a KeyboardInterrupt in this thread):
        start nothing new, abort the running migrations (``on_interrupt="abort"``, through
        ``Runtime.cancel``) or let them run their course ("finish"), collect every outcome, and
        mark the run interrupted so the report is still written."""
        # Biggest first, so the long ones start early (they bound the wall time).
        todo = sorted(self.plan.placed, key=lambda d: (-d.memory_bytes, d.name))
        if not todo:
            return []
        with ThreadPoolExecutor(max_workers=min(self.ev.parallel, len(todo)),
                                thread_name_prefix="migcoord-evac") as pool:
            futures = [pool.submit(self.one, d) for d in todo]
            try:
                return [f.result() for f in futures]
            except KeyboardInterrupt:
                self.interrupt()
            outcomes = []
            for f in futures:
                while True:
                    try:
                        outcomes.append(f.result())
                        break
                    except KeyboardInterrupt:  # a second signal: abort what still runs, keep collecting
                        self.rt.cancel.set()
            return outcomes

    def interrupt(self) -> None:
        self.interrupted = True
        self.stopping.set()
        if self.ev.on_interrupt == "abort":
            self.rt.cancel.set()
        self.rt.journal.record("evacuation-interrupted", source=self.plan.source, on_interrupt=self.ev.on_interrupt)
        self.rt.on_event({"event": "evacuation-interrupted", "on_interrupt": self.ev.on_interrupt})

    def one(self, d: PlannedDomain) -> Outcome:
        assert d.destination
        clock, emit = self.rt.clock, self.rt.on_event
        with self.per_dst[d.destination]:
            if self.stopping.is_set():
                return Outcome(d.name, "not-started", d.destination, reason="interrupted")
            if self.deadline is not None and clock() > self.deadline:
                return Outcome(d.name, "not-started", d.destination, reason="--max-duration reached")
            emit({"event": "domain-start", "domain": d.name, "destination": d.destination})
            start = clock()
            options = replace(self.options, policy=replace(self.options.policy, live=d.live))
            runtime = replace(self.rt, on_event=lambda e: emit({**e, "domain": d.name}))
            try:
                r = migrate(d.uuid, self.plan.source, d.destination, options, runtime)
                out = Outcome(d.name, r.state, d.destination, duration_s=clock() - start, attempts=r.attempts,
                              reason="; ".join(r.warnings))
            except Interrupted as e:
                out = Outcome(d.name, "interrupted", d.destination, reason=str(e), duration_s=clock() - start,
                              attempts=int(e.data.get("attempts", 0)))
            except MigcoordError as e:
                # Undecided (a decisive unknown, exit 6): refused before anything changed, like a block.
                refused = e.exit_code in (ExitCode.BLOCKED, ExitCode.USAGE) or isinstance(e, (Busy, Undecided))
                state = "blocked" if refused else "failed"
                out = Outcome(d.name, state, d.destination, reason=str(e), duration_s=clock() - start,
                              attempts=int(e.data.get("attempts", 0)))
            except Exception as e:  # one domain's surprise must not stop the others
                out = Outcome(d.name, "failed", d.destination, reason=f"{type(e).__name__}: {e}",
                              duration_s=clock() - start)
            emit({"event": "domain-done", **out.as_dict()})
            return out
