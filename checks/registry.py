"""The check registry, findings and the report (house rules 5 and 6).

A check is a plain function registered with ``@check(...)``. It has a stable id, tags, the
transport it needs (``libvirt`` | ``ssh``), a severity (``error`` blocks, ``warning``
informs) and a hint. It RETURNS results (``passed`` / ``failed`` / ``skipped``); it raises
only when the infrastructure itself fails, and ``run_checks`` turns that into the check's
``error`` finding instead of a crash.

Scopes: a ``pair`` check runs once per (source, destination); a ``domain`` check runs once
per domain, as ``fn(ctx, target)``. ``needs`` names the context hosts ("src", "dst") a
check cannot run without; when one is unreachable the check is reported as skipped. A pair
check that only matters for some domains (swtpm, for those with an emulated TPM) says which
(``concerns``): it passes when no checked domain is concerned, and a caller checking several
groups of domains at once (an evacuation) applies its findings to the groups it concerns.
"""
from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from typing import Any, Protocol, TypeVar

from coordinator.virt.errors import error_summary

from .context import CheckContext, Target

SEVERITIES = ("error", "warning")
TRANSPORTS = ("libvirt", "ssh")
STATUSES = ("pass", "fail", "error", "skipped", "waived", "unknown")
SCOPES = ("pair", "domain")
MAX_WORKERS = 8


@dataclass(frozen=True)
class Result:
    """What a check function returns (one per subject); the runner stamps id, severity, hint."""

    status: str
    message: str
    subject: str | None = None
    hint: str | None = None
    severity: str | None = None  # overrides the check's severity for this one result


def passed(message: str, subject: str | None = None) -> Result:
    return Result("pass", message, subject)


def failed(message: str, subject: str | None = None, hint: str | None = None,
           severity: str | None = None) -> Result:
    """A failure; ``severity="warning"`` when libvirt would go on anyway in this case (it informs)."""
    return Result("fail", message, subject, hint, severity)


def unknown(message: str, subject: str | None = None, hint: str | None = None,
            severity: str | None = None) -> Result:
    """The check could not learn a fact libvirt's verdict depends on: never blocks, never a plain OK
    (the message says what is unknown and how to make it known). Of an error-severity check it is
    decisive (``decisive``): migrate and evacuate refuse it unless the operator accepts it."""
    return Result("unknown", message, subject, hint, severity)


def skipped(message: str, subject: str | None = None) -> Result:
    return Result("skipped", message, subject)


Results = Result | Iterable[Result]


class PairCheckFn(Protocol):
    """A check run once per (source, destination)."""

    def __call__(self, ctx: CheckContext, /) -> Results: ...


class DomainCheckFn(Protocol):
    """A check run once per domain."""

    def __call__(self, ctx: CheckContext, t: Target, /) -> Results: ...


CheckFn = PairCheckFn | DomainCheckFn
F = TypeVar("F", PairCheckFn, DomainCheckFn)


@dataclass(frozen=True)
class CheckSpec:
    """What a check declares besides its id and function (``@check(id, **spec)``)."""

    severity: str = "error"
    transport: str = "libvirt"
    scope: str = "domain"
    tags: tuple[str, ...] = ()
    hint: str = ""
    needs: tuple[str, ...] = ("src", "dst")
    # Set for a security rule: the only way past it is this explicit option (e.g. --allow-plaintext-secrets),
    # never --skip (by id or tag) or --waive — the flows enforce the rule again, so a skipped check would
    # only plan what they then refuse.
    override: str = ""
    concerns: Callable[[Target], bool] | None = None  # pair checks: the domains it matters for (None: all)

    def __post_init__(self) -> None:
        object.__setattr__(self, "tags", tuple(self.tags))  # NOTE: a list given is kept as a tuple
        object.__setattr__(self, "needs", tuple(self.needs))


@dataclass(frozen=True, kw_only=True)
class Check(CheckSpec):
    """A registered check: its spec, its id, its function and the first line of its docstring."""

    id: str
    fn: CheckFn
    summary: str

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.severity not in SEVERITIES:
            raise ValueError(f"{self.id}: severity must be one of {SEVERITIES}")
        if self.transport not in TRANSPORTS:
            raise ValueError(f"{self.id}: transport must be one of {TRANSPORTS}")
        if self.scope not in SCOPES:
            raise ValueError(f"{self.id}: scope must be one of {SCOPES}")


@dataclass
class Registry:
    checks: dict[str, Check] = field(default_factory=dict)

    def register(self, c: Check) -> Check:
        if c.id in self.checks:
            raise ValueError(f"check id {c.id} registered twice")
        self.checks[c.id] = c
        return c

    def check(self, id: str, spec: CheckSpec = CheckSpec()) -> Callable[[F], F]:
        """Register the decorated function as check ``id``; its summary is its docstring's first line."""
        def deco(fn: F) -> F:
            summary = (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else ""
            meta = {f.name: getattr(spec, f.name) for f in fields(CheckSpec)}
            self.register(Check(id=id, fn=fn, summary=summary, **meta))
            return fn
        return deco


REGISTRY = Registry()


def check(id: str, **spec: Any) -> Callable[[F], F]:
    """Register a check in the default registry: ``@check("CPU-INCOMPATIBLE", tags=("cpu",), ...)``
    (``spec``: the fields of ``CheckSpec``)."""
    return REGISTRY.check(id, CheckSpec(**spec))


def blocks(status: str, severity: str) -> bool:
    """``Finding.blocking`` of a finding with this status and severity."""
    return status in ("fail", "error") and severity == "error"


def decisive(status: str, severity: str) -> bool:
    """``Finding.decisive``: the one rule for which unknowns decide the outcome. An unknown of an
    error-severity check is decisive — had the check learnt the fact, it might have blocked, so the
    migration may fail (late) on it: ``check`` exits 6 (``Undecided``) and migrate/evacuate refuse it
    unless ``--accept-unknown``. An unknown of a warning-severity check only informs; so does
    everything that is not an unknown (a failure blocks instead: ``blocks``)."""
    return status == "unknown" and severity == "error"


@dataclass(frozen=True)
class Finding:
    check_id: str
    severity: str
    status: str
    subject: str
    message: str
    hint: str = ""
    transport: str = "libvirt"

    @property
    def blocking(self) -> bool:
        """An error-severity check that failed — or could not run at all (it cannot vouch for the
        migration; skip or waive it explicitly to go on)."""
        return blocks(self.status, self.severity)

    @property
    def decisive(self) -> bool:
        """An unknown that decides success (``decisive``)."""
        return decisive(self.status, self.severity)

    def as_dict(self) -> dict[str, Any]:
        return {"check_id": self.check_id, "severity": self.severity, "status": self.status,
                "subject": self.subject, "message": self.message, "hint": self.hint,
                "transport": self.transport}


@dataclass(frozen=True)
class Report:
    findings: tuple[Finding, ...]
    source: str = ""
    destination: str = ""
    domains: tuple[str, ...] = ()
    waived: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()

    @functools.cached_property
    def blocking(self) -> tuple[Finding, ...]:
        """Failing (or erroring) error-severity findings that were not waived."""
        return tuple(f for f in self.findings if f.blocking)

    @property
    def ok(self) -> bool:
        return not self.blocking

    @property
    def unknowns(self) -> tuple[Finding, ...]:
        """Findings whose outcome depends on a fact the checks could not learn (status ``unknown``)."""
        return tuple(f for f in self.findings if f.status == "unknown")

    @property
    def decisive(self) -> tuple[Finding, ...]:
        """The unknowns that decide success (``decisive``): nothing blocks, yet it may fail."""
        return tuple(f for f in self.findings if f.decisive)

    @property
    def verdict(self) -> str:
        """"block" (something blocks), "unknown" (nothing blocks but a decisive unknown remains) or "go"."""
        return "block" if self.blocking else "unknown" if self.decisive else "go"

    def by_id(self, check_id: str) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.check_id == check_id)

    def as_dict(self) -> dict[str, Any]:
        counts = {s: sum(1 for f in self.findings if f.status == s) for s in STATUSES}
        return {"ok": self.ok, "source": self.source, "destination": self.destination,
                "domains": list(self.domains), "waive": list(self.waived), "skip": list(self.skipped),
                "blocking": sorted({f.check_id for f in self.blocking}),
                "unknown": sorted({f.check_id for f in self.unknowns}),
                "decisive_unknown": sorted({f.check_id for f in self.decisive}), "verdict": self.verdict,
                "counts": counts,
                "findings": [f.as_dict() for f in self.findings]}


def _selected(c: Check, skip: frozenset[str]) -> bool:
    return bool(c.override) or (c.id not in skip and not (set(c.tags) & skip))


def unskippable(ids: Iterable[str], registry: Registry | None = None) -> list[Check]:
    """The checks among ``ids`` that only their own override option gets past (see ``Check.override``)."""
    reg = registry or REGISTRY
    return [reg.checks[i] for i in ids if i in reg.checks and reg.checks[i].override]


Job = tuple[Check, tuple[Any, ...], str]  # a check, its arguments (ctx[, target]) and the subject of its findings


def run_checks(ctx: CheckContext, skip: Iterable[str] = (), waive: Iterable[str] = (), *,
               registry: Registry | None = None, max_workers: int = MAX_WORKERS,
               only_blocking: bool = False) -> Report:
    """Run every registered check (pair checks once, domain checks per ``ctx.targets``)
    concurrently on a bounded thread pool. ``skip`` holds ids or tags; ``waive`` ids whose
    failures are recorded as ``waived`` instead of blocking. Never raises for a check's failure.
    ``only_blocking``: the report holds only the blocking findings and the decisive unknowns, for a
    caller that needs nothing else (an evacuation plan: of ~20 findings per domain and destination,
    nearly all pass)."""
    reg = registry or REGISTRY
    skip_set, waive_set = frozenset(skip), frozenset(waive)
    ctx.new_run()
    runnable, findings = select(ctx, reg, skip_set)
    findings += execute(schedule(ctx, runnable, max_workers), waive_set, only_blocking, max_workers)
    if only_blocking:
        findings = [f for f in findings if f.blocking or f.decisive]
    order = {cid: i for i, cid in enumerate(reg.checks)}
    findings.sort(key=lambda f: (order.get(f.check_id, len(order)), f.subject, f.message))
    return Report(findings=tuple(findings), waived=tuple(sorted(waive_set)), skipped=tuple(sorted(skip_set)))


def select(ctx: CheckContext, reg: Registry, skip: frozenset[str]) -> tuple[list[Check], list[Finding]]:
    """The checks to run, in registration order, and the ``skipped`` findings of the others (skipped on
    request, or a host they need is unreachable)."""
    runnable: list[Check] = []
    findings: list[Finding] = []
    for c in reg.checks.values():
        if not _selected(c, skip):
            findings.append(Finding(c.id, c.severity, "skipped", "-", "skipped on request", c.hint, c.transport))
            continue
        missing = ctx.unreachable(c.needs)
        if missing:
            findings.append(Finding(c.id, c.severity, "skipped", "-",
                                    f"not run: {' and '.join(missing)} host unreachable", c.hint, c.transport))
            continue
        runnable.append(c)
    return runnable, findings


def schedule(ctx: CheckContext, runnable: Sequence[Check], max_workers: int) -> list[list[Job]]:
    """The lanes (one task each): one per pair check, and the domains dealt out to at most ``max_workers``
    lanes, each running all domain checks of its domains."""
    # NOTE: one task per pair check (their host calls overlap) and the domains dealt out to at most
    # max_workers tasks, each running all checks of its domains: what a domain check asks a host is
    # asked once per run (CheckContext.host_facts), so with hundreds of domains the rest is pure Python,
    # and a task per domain (or per check and domain) costs more in scheduling than the checks themselves.
    lanes: list[list[Job]] = [[(c, (ctx,), "-")] for c in runnable if c.scope == "pair"]
    domain_checks = [c for c in runnable if c.scope != "pair"]
    targets = tuple(ctx.targets)
    n = max(1, min(max_workers, len(targets)))
    lanes += [[(c, (ctx, t), t.name) for t in targets[i::n] for c in domain_checks]
              for i in range(n) if targets[i::n]]
    return lanes


def execute(lanes: Sequence[Sequence[Job]], waive: frozenset[str], only_blocking: bool,
            max_workers: int) -> list[Finding]:
    """Run the lanes on a pool of at most ``max_workers`` threads; their findings, lane by lane."""
    def run_lane(lane: Sequence[Job]) -> list[Finding]:
        out: list[Finding] = []
        for c, args, subject in lane:
            _run_one(c, args, subject, waive, only_blocking, out)
        return out

    findings: list[Finding] = []
    if lanes:
        with ThreadPoolExecutor(max_workers=max(1, min(max_workers, len(lanes)))) as pool:
            for batch in pool.map(run_lane, lanes):
                findings.extend(batch)
    return findings


def _run_one(c: Check, args: tuple[Any, ...], subject: str, waive: frozenset[str], only_blocking: bool,
             out: list[Finding]) -> None:
    """Run one check (``fn(*args)``) and add its findings to ``out``."""
    try:
        res = c.fn(*args)
        results = [res] if isinstance(res, Result) else list(res or ())
    except Exception as e:  # NOTE: infrastructure failure → this check's error, never a crash
        status = "waived" if c.id in waive else "error"
        out.append(Finding(c.id, c.severity, status, subject, f"check could not run: {_describe(e)}",
                           c.hint, c.transport))
        return
    if not results:
        results = [passed("nothing to check", subject)]
    for r in results:
        status, severity = r.status, r.severity or c.severity
        if status in ("fail", "error") and c.id in waive:
            status = "waived"
        if only_blocking and not (blocks(status, severity) or decisive(status, severity)):
            continue  # NOTE: most results pass; building and sorting their findings is most of the cost
        out.append(Finding(c.id, severity, status, r.subject or subject, r.message, r.hint or c.hint,
                           c.transport))


def _describe(e: BaseException) -> str:
    return f"{type(e).__name__}: {error_summary(e)}"
