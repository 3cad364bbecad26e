"""Pure: a run's outcome in the Prometheus text exposition format, for node_exporter's textfile
collector (``--collector.textfile.directory``). One file per scheduled job; each run replaces it.

Metric names (all gauges; labels ``command`` and ``source`` on every one):

- ``migcoord_last_run_timestamp_seconds`` — when the run ended (Unix time)
- ``migcoord_last_run_exit_code`` — its exit code (0 ok, 1 blocked, 3 failed, 4 partial, 6 a decisive
  unknown refused, 75 busy)
- ``migcoord_last_run_duration_seconds`` — how long it took
- ``migcoord_domains`` ``{result="moved|blocked|failed|not_started"}`` — domains per result
- ``migcoord_bytes_moved`` — bytes QEMU transferred, summed over the run's migrations
- ``migcoord_domain_result`` ``{domain, destination, result, blocking_checks}`` — 1 per domain;
  ``blocking_checks`` is the comma-separated ids of the checks that blocked it ("" when none)
- ``migcoord_domain_duration_seconds`` ``{domain}`` and ``migcoord_domain_bytes_moved`` ``{domain}``

``secrets audit`` (``RunMetrics.audit`` set) writes the first three, then instead of the domain metrics:

- ``migcoord_secret_audit_findings`` ``{kind="orphan|missing|value-differs|ephemeral|usage-clash"}`` —
  findings per kind (every kind listed; all 0 on a clean fleet, and when the audit failed)
- ``migcoord_secret_audit_unknown`` — secrets whose value could not be compared between hosts
- ``migcoord_secret_audit_hosts`` — hosts audited (0 when the audit failed)
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

# an Outcome.state / MigrationResult.state / error → the counted result
RESULT_OF_STATE = {"migrated": "moved", "already-on-destination": "moved", "blocked": "blocked",
                   "unplaceable": "blocked", "busy": "blocked", "failed": "failed", "not-started": "not_started",
                   "dry-run": "not_started"}
RESULTS = ("moved", "blocked", "failed", "not_started")


@dataclass(frozen=True)
class DomainMetrics:
    domain: str
    state: str                  # migrated | already-on-destination | blocked | failed | unplaceable | ...
    destination: str | None = None
    duration_s: float = 0.0
    bytes_moved: int = 0
    blocking_checks: tuple[str, ...] = ()

    @property
    def result(self) -> str:
        return RESULT_OF_STATE.get(self.state, "failed")


@dataclass(frozen=True)
class RunMetrics:
    command: str               # migrate | evacuate | secrets-audit
    source: str                # source URI
    exit_code: int
    finished_at: float         # Unix time
    duration_s: float
    domains: Sequence[DomainMetrics] = ()
    audit: AuditMetrics | None = None  # secrets audit: its metrics replace the domain ones


@dataclass(frozen=True)
class AuditMetrics:
    findings: Mapping[str, int]   # kind → count (core.secret_audit.AuditReport.counts)
    unknown: int = 0
    hosts: int = 0


def _escape(v: str) -> str:
    return v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: Mapping[str, str]) -> str:
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items()) + "}"


def _num(v: float) -> str:
    return repr(float(v)) if isinstance(v, float) and not float(v).is_integer() else str(int(v))


def render(run: RunMetrics) -> str:
    """The textfile: HELP/TYPE once per metric, then its samples; ends with a newline."""
    base = {"command": run.command, "source": run.source}
    out: list[str] = []

    def metric(name: str, help_: str, samples: Sequence[tuple[Mapping[str, str], float]]) -> None:
        out.append(f"# HELP {name} {help_}")
        out.append(f"# TYPE {name} gauge")
        out.extend(f"{name}{_labels({**base, **extra})} {_num(value)}" for extra, value in samples)

    metric("migcoord_last_run_timestamp_seconds", "Unix time the last migcoord run ended.",
           [({}, run.finished_at)])
    metric("migcoord_last_run_exit_code", "Exit code of the last run (0 ok, 1 blocked, 2 bad input, "
           "3 failed, 4 partial, 5 moved but unverified, 6 refused: a fact that decides success is unknown, "
           "75 another run held the lock).", [({}, run.exit_code)])
    metric("migcoord_last_run_duration_seconds", "Wall time of the last run.", [({}, run.duration_s)])
    if run.audit is not None:
        metric("migcoord_secret_audit_findings", "Findings of the last secrets audit per kind.",
               [({"kind": k}, n) for k, n in run.audit.findings.items()])
        metric("migcoord_secret_audit_unknown", "Secrets whose value the last audit could not compare.",
               [({}, run.audit.unknown)])
        metric("migcoord_secret_audit_hosts", "Hosts the last secrets audit read.", [({}, run.audit.hosts)])
        return "\n".join(out) + "\n"
    counts = {r: sum(d.result == r for d in run.domains) for r in RESULTS}
    metric("migcoord_domains", "Domains of the last run per result.",
           [({"result": r}, n) for r, n in counts.items()])
    metric("migcoord_bytes_moved", "Bytes transferred by the last run's migrations.",
           [({}, sum(d.bytes_moved for d in run.domains))])
    doms = sorted(run.domains, key=lambda d: d.domain)
    metric("migcoord_domain_result", "1 per domain of the last run, labelled with its result and the ids of "
           "the checks that blocked it.",
           [({"domain": d.domain, "destination": d.destination or "", "result": d.result,
              "blocking_checks": ",".join(sorted(d.blocking_checks))}, 1) for d in doms])
    metric("migcoord_domain_duration_seconds", "Time spent on each domain in the last run.",
           [({"domain": d.domain}, round(d.duration_s, 3)) for d in doms])
    metric("migcoord_domain_bytes_moved", "Bytes transferred for each domain in the last run.",
           [({"domain": d.domain}, d.bytes_moved) for d in doms])
    return "\n".join(out) + "\n"
