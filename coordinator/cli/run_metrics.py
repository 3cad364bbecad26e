"""``--metrics-file``: collect what a run did from its events and write the textfile atomically.

The collector sits between the flows' events and the printer: ``migration-stats`` gives the bytes
QEMU moved (the destination's completed-job statistics), ``checks`` the ids of blocking checks.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from coordinator.core.errors import Busy, MigcoordError, Undecided
from coordinator.core.exit_codes import ExitCode
from coordinator.core.metrics import AuditMetrics, DomainMetrics, RunMetrics, render
from coordinator.files.atomic import check_target, write_atomic
from coordinator.core.model import EventSink

if TYPE_CHECKING:
    from coordinator.core.evacuation import EvacuationReport
    from coordinator.core.model import MigrationResult
    from coordinator.core.secret_audit import AuditReport

log = logging.getLogger("migcoord")


class Collector:
    """An event sink that remembers bytes moved and blocking check ids per domain, then passes
    each event on. Events of a single ``migrate`` carry no domain: they are filed under ""."""

    def __init__(self, sink: EventSink) -> None:
        self.sink = sink
        self.bytes: dict[str, int] = {}
        self.blocking: dict[str, tuple[str, ...]] = {}
        self.started_wall = time.time()
        self.started = time.monotonic()

    def __call__(self, event: dict[str, Any]) -> None:
        dom = event.get("domain", "")
        if event.get("event") == "migration-stats":
            self.bytes[dom] = int(event.get("data_processed", 0))
        elif event.get("event") == "checks":
            self.blocking[dom] = tuple(event.get("blocking", ()))
        self.sink(event)

    def elapsed(self) -> float:
        return time.monotonic() - self.started


def error_state(e: MigcoordError) -> str:
    if isinstance(e, Busy):
        return "busy"
    return "blocked" if e.exit_code in (ExitCode.BLOCKED, ExitCode.USAGE) or isinstance(e, Undecided) else "failed"


def blocking_of(e: MigcoordError) -> tuple[str, ...]:
    report = e.data.get("report") or {}
    ids = report.get("blocking") if isinstance(report, dict) else None
    if ids:
        return tuple(ids)
    if isinstance(e, Undecided) and e.data.get("check_ids"):  # nothing blocked: the decisive unknowns did
        return tuple(e.data["check_ids"])
    return (str(e.data["check_id"]),) if e.data.get("check_id") else ()


def check(path: Path | None) -> None:
    """Refuse a metrics path that could never be written (BadInput, exit 2) before the first connection:
    found only at the end, the run's outcome would go unrecorded."""
    if path is not None:
        check_target(path, "metrics file")


def write(path: Path | None, command: str, source: str, exit_code: int, collector: Collector,
          domains: Sequence[DomainMetrics], *, quiet_errors: bool = False) -> None:
    """Write the file; with ``quiet_errors`` (the run already failed) a failure to write is logged,
    not raised, so it never hides the run's own error."""
    if path is None:
        return
    _write(path, RunMetrics(command=command, source=source, exit_code=exit_code, finished_at=time.time(),
                            duration_s=collector.elapsed(), domains=domains), quiet_errors=quiet_errors)


def write_audit(path: Path | None, hosts: Sequence[str], exit_code: int, duration_s: float,
                report: AuditReport | None, *, quiet_errors: bool = False) -> None:
    """``secrets audit``'s file (``report`` None: the audit failed, every count 0); ``source`` is the hosts
    given, comma-separated."""
    if path is None:
        return
    from coordinator.core.secret_audit import Kind

    audit = AuditMetrics(findings=report.counts() if report else {str(k): 0 for k in Kind},
                         unknown=len(report.unknowns) if report else 0, hosts=len(report.hosts) if report else 0)
    _write(path, RunMetrics(command="secrets-audit", source=",".join(hosts), exit_code=exit_code,
                            finished_at=time.time(), duration_s=duration_s, audit=audit), quiet_errors=quiet_errors)


def _write(path: Path, run: RunMetrics, *, quiet_errors: bool) -> None:
    data = render(run).encode()
    try:
        write_atomic(path, data, mode=0o644, what="metrics file")  # node_exporter reads it; no secret in it
    except (MigcoordError, OSError) as e:
        if not quiet_errors:
            raise
        log.warning("cannot write the metrics file %s: %s", path, e)


def migrated(result: MigrationResult, collector: Collector) -> list[DomainMetrics]:
    """``migrate``'s one domain, when the flow returned a result."""
    return [DomainMetrics(result.domain, result.state, result.dest_uri, result.duration_s, collector.bytes.get("", 0))]


def not_migrated(domain: str, dest_uri: str, e: MigcoordError, collector: Collector) -> list[DomainMetrics]:
    """``migrate``'s one domain, when the flow raised ``e``."""
    return [DomainMetrics(domain, error_state(e), dest_uri, collector.elapsed(),
                          blocking_checks=blocking_of(e) or collector.blocking.get("", ()))]


def evacuated(report: EvacuationReport, collector: Collector) -> list[DomainMetrics]:
    """One entry per domain of an evacuation; a domain that did not move names what held it back."""
    blockers = {d: tuple(sorted({i for plan_ids in (report.plan.blockers, report.plan.undecided)
                                 for ids in plan_ids.get(d, {}).values() for i in ids}))
                for d in {*report.plan.blockers, *report.plan.undecided}}
    return [DomainMetrics(o.domain, o.state, o.destination, o.duration_s, collector.bytes.get(o.domain, 0),
                          collector.blocking.get(o.domain) or (blockers.get(o.domain, ()) if not o.moved else ()))
            for o in report.outcomes]
