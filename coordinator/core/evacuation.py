"""Pure: evacuation values and decisions — the policy, where each domain goes (``place``), the
plan, each domain's outcome and the run's exit code. No I/O; tested as tables."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from coordinator.core.model import SecretPlan
from coordinator.core.errors import BadInput
from coordinator.core.exit_codes import ExitCode
from coordinator.core.params import bounded_int, positive_seconds


@dataclass(frozen=True)
class EvacuationPolicy:
    include_inactive: bool = False       # shut-off persistent domains too (offline migration)
    exclude: tuple[str, ...] = ()        # names or globs
    parallel: int = 2                    # concurrent migrations in total
    per_destination: int = 2             # concurrent migrations into one destination
    max_duration_s: float | None = None  # start nothing new after this long
    capacity_mib: Mapping[str, int] = field(default_factory=dict)  # dst URI → memory this run may use
    on_interrupt: str = "abort"          # Ctrl-C/SIGTERM: abort running migrations, or let them "finish"
    mark_source: bool = True             # mark the source draining (migcoord maintenance) at the start

    def __post_init__(self) -> None:
        if self.on_interrupt not in ("abort", "finish"):
            raise BadInput("--on-interrupt must be abort or finish")
        bounded_int(self.parallel, "--parallel", 1, 1024)
        bounded_int(self.per_destination, "--per-destination", 1, 1024)
        positive_seconds(self.max_duration_s, "--max-duration", allow_none=True)
        for uri, mib in self.capacity_mib.items():
            bounded_int(mib, f"--max-memory for {uri} (MiB)", 0, 2**44)


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
    # dom → dst → ids of the decisive unknowns that kept it off that destination (not with accept_unknown)
    undecided: Mapping[str, Mapping[str, tuple[str, ...]]] = field(default_factory=dict)

    @property
    def placed(self) -> tuple[PlannedDomain, ...]:
        return tuple(d for d in self.domains if d.destination)

    @property
    def unplaceable(self) -> tuple[PlannedDomain, ...]:
        return tuple(d for d in self.domains if not d.destination)

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "destinations": list(self.destinations),
                "domains": [d.as_dict() for d in self.domains], "excluded": list(self.excluded),
                "blockers": {k: {dst: list(ids) for dst, ids in v.items()} for k, v in self.blockers.items()},
                "undecided": {k: {dst: list(ids) for dst, ids in v.items()} for k, v in self.undecided.items()}}


@dataclass(frozen=True)
class Outcome:
    domain: str
    # migrated | migrated-unverified | already-on-destination | failed | blocked | unplaceable |
    # not-started | interrupted
    state: str
    destination: str | None = None
    reason: str = ""
    duration_s: float = 0.0
    attempts: int = 0

    @property
    def moved(self) -> bool:
        """On the destination now; "migrated-unverified" counts (moved, with a warning)."""
        return self.state in ("migrated", "migrated-unverified", "already-on-destination")

    def as_dict(self) -> dict[str, Any]:
        return {"domain": self.domain, "state": self.state, "destination": self.destination,
                "reason": self.reason, "duration_s": round(self.duration_s, 3), "attempts": self.attempts}


def exit_code_for(outcomes: Sequence[Outcome]) -> int:
    """Pure: 0 all moved (or nothing to do); 5 all moved but some not verified; 1 nothing tried
    (all blocked/unplaceable); 3 nothing moved although migrations were tried; 4 partial."""
    if all(o.moved for o in outcomes):
        return ExitCode.UNVERIFIED if any(o.state == "migrated-unverified" for o in outcomes) else ExitCode.OK
    if any(o.moved for o in outcomes):
        return ExitCode.PARTIAL
    if any(o.state == "failed" for o in outcomes):
        return ExitCode.FAILED
    return ExitCode.BLOCKED


@dataclass(frozen=True)
class EvacuationReport:
    plan: EvacuationPlan
    outcomes: tuple[Outcome, ...]
    duration_s: float
    interrupted: bool = False  # Ctrl-C / SIGTERM: nothing new was started after it

    @property
    def exit_code(self) -> int:
        return exit_code_for(self.outcomes)

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.plan.source, "destinations": list(self.plan.destinations),
                "exit_code": self.exit_code, "duration_s": round(self.duration_s, 3),
                "interrupted": self.interrupted,
                "outcomes": [o.as_dict() for o in self.outcomes], "plan": self.plan.as_dict()}
