"""Move every domain off a host: plan (checks + placement), then migrate in parallel.

``plan_evacuation`` is read-only (the dry run). ``evacuate`` takes an exclusive lock per
source host (cron runs cannot overlap), carries out the plan with bounded concurrency (in
total and per destination), lets one domain's failure leave the others alone, and returns a
typed report. Placement itself is the pure function ``place``.
"""
from __future__ import annotations

import contextlib
import fnmatch
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

from . import domxml
from .errors import BadInput, MigcoordError
from .executor import DEFAULT_LOCK_DIR, EventSink, RetryPolicy, migrate
from .hypervisor import GuestStatus, Host, check_uri
from .journal import Journal
from .locks import host_lock
from .keys import KeyRing
from .model import SecretPlan
from .params import MigrationPolicy, TimeoutPolicy
from .remote import SshConfig
from .secrets import SecretPolicy, SecretProvisioner, SourceSecrets

log = logging.getLogger("migcoord")

# Capacity is accounted by the placement itself (free memory minus what the plan put there).
CAPACITY_CHECK = "MEMORY-INSUFFICIENT"


@dataclass(frozen=True)
class EvacuationPolicy:
    include_inactive: bool = False       # shut-off persistent domains too (offline migration)
    exclude: tuple[str, ...] = ()        # names or globs
    parallel: int = 2                    # concurrent migrations in total
    per_destination: int = 2             # concurrent migrations into one destination
    max_duration_s: float | None = None  # start nothing new after this long
    capacity_mib: Mapping[str, int] = field(default_factory=dict)  # dst URI → memory this run may use

    def __post_init__(self) -> None:
        if self.parallel < 1 or self.per_destination < 1:
            raise BadInput("--parallel and --per-destination must be at least 1")
        if self.max_duration_s is not None and self.max_duration_s <= 0:
            raise BadInput("--max-duration must be positive")


# ---------------------------------------------------------------- placement (pure)

@dataclass(frozen=True)
class Candidate:
    name: str
    memory_bytes: int
    live: bool


@dataclass(frozen=True)
class Placement:
    destination: dict[str, str]   # domain → dst URI
    unplaceable: dict[str, str]   # domain → why


def place(domains: Sequence[Candidate], capacity: Mapping[str, int],
          blockers: Mapping[tuple[str, str], Sequence[str]]) -> Placement:
    """Greedy, biggest first: each domain goes to the destination with the most room left among
    those where no check blocks it; what a placement uses is subtracted (capacity accounting)
    so the next domain sees what is really left. Ties keep the order destinations were given."""
    left = dict(capacity)
    where: dict[str, str] = {}
    why: dict[str, str] = {}
    for d in sorted(domains, key=lambda c: (-c.memory_bytes, c.name)):
        allowed = [dst for dst in capacity if not blockers.get((d.name, dst))]
        fits = [dst for dst in allowed if left[dst] >= d.memory_bytes]
        if fits:
            best = max(fits, key=lambda dst: left[dst])
            where[d.name] = best
            left[best] -= d.memory_bytes
        elif not allowed:
            why[d.name] = "blocked on every destination: " + "; ".join(
                f"{dst}: {', '.join(blockers[(d.name, dst)])}" for dst in capacity)
        else:
            why[d.name] = (f"no destination has room for {d.memory_bytes // 2**20} MiB "
                           f"(left: {', '.join(f'{dst} {left[dst] // 2**20} MiB' for dst in allowed)})")
    return Placement(destination=where, unplaceable=why)


# ---------------------------------------------------------------- plan and report

@dataclass(frozen=True)
class PlannedDomain:
    name: str
    uuid: str
    live: bool
    memory_bytes: int
    destination: str | None
    reason: str = ""                      # why unplaceable / excluded
    secrets: tuple[SecretPlan, ...] = ()  # for the chosen destination

    def as_dict(self) -> dict[str, Any]:
        return {"domain": self.name, "uuid": self.uuid, "mode": "live" if self.live else "offline",
                "memory_mib": self.memory_bytes // 2**20, "destination": self.destination,
                "reason": self.reason, "secrets": [s.as_dict() for s in self.secrets]}


@dataclass(frozen=True)
class EvacuationPlan:
    source: str
    destinations: tuple[str, ...]
    domains: tuple[PlannedDomain, ...]
    excluded: tuple[str, ...] = ()
    blockers: Mapping[str, Mapping[str, tuple[str, ...]]] = field(default_factory=dict)  # dom → dst → ids

    @property
    def placed(self) -> tuple[PlannedDomain, ...]:
        return tuple(d for d in self.domains if d.destination)

    @property
    def unplaceable(self) -> tuple[PlannedDomain, ...]:
        return tuple(d for d in self.domains if not d.destination)

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "destinations": list(self.destinations),
                "domains": [d.as_dict() for d in self.domains], "excluded": list(self.excluded),
                "blockers": {k: {dst: list(ids) for dst, ids in v.items()} for k, v in self.blockers.items()}}


@dataclass(frozen=True)
class Outcome:
    domain: str
    state: str  # migrated | already-on-destination | failed | blocked | unplaceable | not-started
    destination: str | None = None
    reason: str = ""
    duration_s: float = 0.0
    attempts: int = 0

    @property
    def moved(self) -> bool:
        return self.state in ("migrated", "already-on-destination")

    def as_dict(self) -> dict[str, Any]:
        return {"domain": self.domain, "state": self.state, "destination": self.destination,
                "reason": self.reason, "duration_s": round(self.duration_s, 3), "attempts": self.attempts}


def exit_code_for(outcomes: Sequence[Outcome]) -> int:
    """Pure: 0 all moved (or nothing to do); 1 nothing tried (all blocked/unplaceable);
    3 nothing moved although migrations were tried; 4 partial."""
    if all(o.moved for o in outcomes):
        return 0
    if any(o.moved for o in outcomes):
        return 4
    if any(o.state == "failed" for o in outcomes):
        return 3
    return 1


@dataclass(frozen=True)
class EvacuationReport:
    plan: EvacuationPlan
    outcomes: tuple[Outcome, ...]
    duration_s: float

    @property
    def exit_code(self) -> int:
        return exit_code_for(self.outcomes)

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.plan.source, "destinations": list(self.plan.destinations),
                "exit_code": self.exit_code, "duration_s": round(self.duration_s, 3),
                "outcomes": [o.as_dict() for o in self.outcomes], "plan": self.plan.as_dict()}


# ---------------------------------------------------------------- planning (reads only)

@dataclass(frozen=True)
class Settings:
    """Everything both planning and execution need, passed as one value."""

    policy: MigrationPolicy = field(default_factory=MigrationPolicy)
    secret_policy: SecretPolicy = field(default_factory=SecretPolicy)
    keyring: KeyRing = field(default_factory=KeyRing)
    ssh: SshConfig | None = None
    skip: tuple[str, ...] = ()
    waive: tuple[str, ...] = ()


def _excluded(name: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def _plan_with(src: Host, dsts: dict[str, Host], ev: EvacuationPolicy, s: Settings) -> EvacuationPlan:
    from checks import check_guests  # NOTE: lazy: the checks package imports coordinator

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
    xmls = {g.name: g.definitions(live[g.name], pers[g.name]) for g in guests}
    refs = {g.name: domxml.union_refs(*xmls[g.name]) for g in guests}
    blockers: dict[tuple[str, str], tuple[str, ...]] = {}
    plans: dict[tuple[str, str], list[SecretPlan]] = {}
    source = SourceSecrets(src)  # each source secret is looked up and read once for all destinations
    for uri, dst in dsts.items():
        for is_live in (True, False):
            group = [g for g in guests if live[g.name] is is_live]
            if not group:
                continue
            prov = SecretProvisioner(src, dst, keyring=s.keyring, policy=s.secret_policy, source=source)
            group_plans = {g.name: prov.plan(refs[g.name]) for g in group}
            report = check_guests(src, dst, [(g, xmls[g.name]) for g in group],
                                  policy=replace(s.policy, live=is_live), secret_policy=s.secret_policy,
                                  keyring=s.keyring, skip=s.skip + (CAPACITY_CHECK,), waive=s.waive,
                                  ssh=s.ssh, plans=group_plans, statuses=statuses)
            by_subject: dict[str, set[str]] = {}
            for f in report.blocking:
                by_subject.setdefault(f.subject, set()).add(f.check_id)
            names = {x.name for x in group}
            pair_blockers = {cid for subj, ids in by_subject.items() if subj not in names for cid in ids}
            for g in group:
                blockers[(g.name, uri)] = tuple(sorted(by_subject.get(g.name, set()) | pair_blockers))
                plans[(g.name, uri)] = group_plans[g.name]
    capacity = {uri: min(dst.free_memory(), ev.capacity_mib.get(uri, 1 << 40) * 2**20)
                for uri, dst in dsts.items()}
    memory = {g.name: g.memory_bytes() if live[g.name] else _defined_memory(xmls[g.name][0]) for g in guests}
    placement = place([Candidate(g.name, memory[g.name], live[g.name]) for g in guests], capacity, blockers)
    domains = tuple(
        PlannedDomain(name=g.name, uuid=g.uuid, live=live[g.name], memory_bytes=memory[g.name],
                      destination=placement.destination.get(g.name),
                      reason=placement.unplaceable.get(g.name, ""),
                      secrets=tuple(plans.get((g.name, placement.destination.get(g.name, "")), ())))
        for g in sorted(guests, key=lambda g: g.name))
    return EvacuationPlan(source=src.uri, destinations=tuple(dsts), domains=domains, excluded=tuple(excluded),
                          blockers={g.name: {uri: blockers[(g.name, uri)] for uri in dsts
                                             if blockers.get((g.name, uri))} for g in guests})


def _defined_memory(xml: str) -> int:
    from . import domfacts
    return domfacts.parse(xml).memory_kib * 1024


@contextlib.contextmanager
def _connected(source_uri: str, dest_uris: Sequence[str],
               connect: Callable[[str], Host]) -> Iterator[tuple[Host, dict[str, Host]]]:
    check_uri(source_uri)
    if not dest_uris:
        raise BadInput("no destination given", hint="give at least one --to URI")
    for u in dest_uris:
        check_uri(u)
        if u == source_uri:
            raise BadInput(f"destination {u} is the source")
    if len(set(dest_uris)) != len(dest_uris):
        raise BadInput("a destination is given twice")
    opened: list[Host] = []
    try:
        src = connect(source_uri)
        opened.append(src)
        dsts = {}
        for u in dest_uris:
            dsts[u] = connect(u)
            opened.append(dsts[u])
        yield src, dsts
    finally:
        for h in opened:
            h.close()


def plan_evacuation(source_uri: str, dest_uris: Sequence[str], *, evacuation: EvacuationPolicy = EvacuationPolicy(),
                    settings: Settings = Settings(),
                    connect: Callable[[str], Host] = Host.open) -> EvacuationPlan:
    """The dry run: which domain goes where, which secrets each needs, what blocks. Changes nothing."""
    unknown = [u for u in evacuation.capacity_mib if u not in dest_uris]
    if unknown:
        raise BadInput(f"--max-memory names {', '.join(unknown)}, which is not a --to destination")
    with _connected(source_uri, dest_uris, connect) as (src, dsts):
        return _plan_with(src, dsts, evacuation, settings)


# ---------------------------------------------------------------- execution

def evacuate(source_uri: str, dest_uris: Sequence[str], *, evacuation: EvacuationPolicy = EvacuationPolicy(),
             settings: Settings = Settings(), retry: RetryPolicy = RetryPolicy(),
             timeouts: TimeoutPolicy = TimeoutPolicy(), journal: Journal | None = None,
             lock_dir: Path = DEFAULT_LOCK_DIR, connect: Callable[[str], Host] = Host.open,
             sleep: Callable[[float], None] = time.sleep, on_event: EventSink | None = None,
             clock: Callable[[], float] = time.monotonic) -> EvacuationReport:
    """Evacuate ``source_uri``: every running domain (and shut-off persistent ones with
    ``include_inactive``) to the best destination; returns one outcome per domain."""
    t0 = clock()
    journal = journal or Journal()
    emit = on_event or (lambda _e: None)
    with _connected(source_uri, dest_uris, connect) as (src, dsts), \
            host_lock(lock_dir, src.host_uuid(), source_uri):
        plan = _plan_with(src, dsts, evacuation, settings)
        journal.record("evacuation-plan", source=source_uri,
                       placed={d.name: d.destination for d in plan.placed},
                       unplaceable={d.name: d.reason for d in plan.unplaceable})
        emit({"event": "evacuation-plan", "plan": plan.as_dict()})
        outcomes = [Outcome(d.name, "unplaceable", reason=d.reason) for d in plan.unplaceable]
        outcomes += _execute(plan, evacuation, settings, retry, timeouts, journal, lock_dir, connect, sleep,
                             emit, t0, clock)
    report = EvacuationReport(plan=plan, outcomes=tuple(sorted(outcomes, key=lambda o: o.domain)),
                              duration_s=clock() - t0)
    journal.record("evacuation-done", source=source_uri, exit_code=report.exit_code,
                   moved=[o.domain for o in report.outcomes if o.moved],
                   not_moved=[o.domain for o in report.outcomes if not o.moved])
    return report


def _execute(plan: EvacuationPlan, ev: EvacuationPolicy, s: Settings, retry: RetryPolicy,
             timeouts: TimeoutPolicy, journal: Journal, lock_dir: Path, connect: Callable[[str], Host],
             sleep: Callable[[float], None], emit: EventSink, t0: float,
             clock: Callable[[], float]) -> list[Outcome]:
    per_dst = {uri: threading.Semaphore(ev.per_destination) for uri in plan.destinations}
    deadline = t0 + ev.max_duration_s if ev.max_duration_s else None

    def one(d: PlannedDomain) -> Outcome:
        assert d.destination
        with per_dst[d.destination]:
            if deadline is not None and clock() > deadline:
                return Outcome(d.name, "not-started", d.destination, reason="--max-duration reached")
            emit({"event": "domain-start", "domain": d.name, "destination": d.destination})
            start = clock()
            try:
                r = migrate(d.uuid, plan.source, d.destination, policy=replace(s.policy, live=d.live),
                            secret_policy=s.secret_policy, keyring=s.keyring, retry=retry, timeouts=timeouts,
                            journal=journal, connect=connect, sleep=sleep, lock_dir=lock_dir, skip=s.skip,
                            waive=s.waive, ssh=s.ssh,
                            on_event=lambda e: emit({**e, "domain": d.name}))
                out = Outcome(d.name, r.state, d.destination, duration_s=clock() - start, attempts=r.attempts)
            except MigcoordError as e:
                state = "blocked" if e.exit_code in (1, 2) else "failed"
                out = Outcome(d.name, state, d.destination, reason=str(e), duration_s=clock() - start,
                              attempts=int(e.data.get("attempts", 0)))
            except Exception as e:  # one domain's surprise must not stop the others
                out = Outcome(d.name, "failed", d.destination, reason=f"{type(e).__name__}: {e}",
                              duration_s=clock() - start)
            emit({"event": "domain-done", **out.as_dict()})
            return out

    # Biggest first, so the long ones start early (they bound the wall time).
    todo = sorted(plan.placed, key=lambda d: (-d.memory_bytes, d.name))
    if not todo:
        return []
    with ThreadPoolExecutor(max_workers=min(ev.parallel, len(todo)), thread_name_prefix="migcoord-evac") as pool:
        return list(pool.map(one, todo))
