"""Output for people: tables, the progress bar (TTY) or JSON-lines events (not a TTY), and what
each command prints (its text result, its ``--json`` document, warnings and the error document)."""
from __future__ import annotations

import json
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from coordinator.core.errors import MigcoordError
from coordinator.core.model import command_program

if TYPE_CHECKING:
    from checks.registry import Report
    from coordinator.core.config import Effective, SourceSpec
    from coordinator.core.evacuation import EvacuationPlan, EvacuationReport
    from coordinator.core.maintenance import Maintenance
    from coordinator.core.model import MigrationResult, SecretPlan
    from coordinator.core.secret_audit import AuditReport
    from coordinator.flows.control import ControlResult


def table(rows: Sequence[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)


PROGRESS_EVERY_S = 5.0  # off a TTY: at most one progress event per domain this often


class EventPrinter:
    """TTY: a progress bar on stderr. Otherwise: JSON-lines events on stderr — progress events only
    when something changed and at most every ``PROGRESS_EVERY_S`` per domain (logs of unattended
    runs stay small). ``quiet``: nothing at all."""

    def __init__(self, stream: Any = sys.stderr, progress: bool = True, quiet: bool = False,
                 clock: Callable[[], float] = time.monotonic, every_s: float = PROGRESS_EVERY_S) -> None:
        self.stream = stream
        self.tty = stream.isatty() and not quiet
        self.progress = progress  # several migrations at once: one line per domain instead of a bar
        self.quiet = quiet
        self.clock, self.every_s = clock, every_s
        self._last: dict[str, tuple[float, tuple[Any, ...]]] = {}  # domain → (when, what) last printed

    def _worth_printing(self, event: dict[str, Any]) -> bool:
        if event.get("event") != "progress":
            return True
        dom = str(event.get("domain", ""))
        what = (event.get("percent"), event.get("data_processed"), event.get("data_remaining"))
        now = self.clock()
        last = self._last.get(dom)
        if last is not None and (last[1] == what or now - last[0] < self.every_s):
            return False
        self._last[dom] = (now, what)
        return True

    def __call__(self, event: dict[str, Any]) -> None:
        if self.quiet:
            return
        if not self.tty:
            if not self._worth_printing(event):
                return
            self.stream.write(json.dumps(event, sort_keys=True) + "\n")
        elif event["event"] == "domain-done":
            self.stream.write(f"{event['domain']}: {event['state']} {event.get('destination') or ''}\n")
        elif event["event"] == "progress" and self.progress:
            pct = event["percent"]
            bar = "#" * int(pct / 4)
            rate = event["rate_bps"] / 2**20
            eta = event["data_remaining"] / event["rate_bps"] if event["rate_bps"] else 0
            self.stream.write(f"\r[{bar:<25}] {pct:5.1f}%  {event['data_processed'] / 2**20:7.1f} MiB "
                              f"done, {event['data_remaining'] / 2**20:7.1f} MiB left, {rate:6.1f} MiB/s, "
                              f"ETA {eta:4.0f}s")
        elif event["event"] == "migration-attempt" and event["attempt"] > 1:
            self.stream.write(f"\nretrying (attempt {event['attempt']})\n")
        self.stream.flush()




# ------------------------------------------------------------------ what each command prints
# NOTE: the result types are imported for type checking only: this module is loaded with every
# command's parser (the start-up rule in ARCHITECTURE.md), the flows only by the command that runs.

def as_json(data: Any) -> str:
    """Every command's ``--json`` document: indented, keys sorted."""
    return json.dumps(data, indent=2, sort_keys=True)


def warning(message: str) -> str:
    return f"migcoord: warning: {message}"


def migration(result: MigrationResult) -> str:
    """``migrate``'s text result: one line, then the secrets, the warnings and how to look."""
    if result.state == "already-on-destination":
        return f"{result.domain}: already on destination {result.dest_uri} ({result.dest_state}); nothing to do"
    moved = result.state in ("migrated", "migrated-unverified")
    verb = {"dry-run": "would migrate", "migrated": "migrated",
            "migrated-unverified": "migrated (verification incomplete)"}[result.state]
    lines = [f"{result.domain}: {verb} {result.source_uri} -> {result.dest_uri}"
             + (f" in {result.duration_s:.1f}s, {result.attempts} attempt(s); now {result.dest_state} there"
                if moved else "")]
    lines += [f"  secret {p.uuid} ({p.ref.kind}, {p.ref.usage_type}): {p.action} [{p.dest_status}]"
              for p in result.secrets]
    lines += [f"  warning: {w}" for w in result.warnings]
    if moved:
        lines.append(f"  check: virsh -c {shlex.quote(result.dest_uri)} dominfo {shlex.quote(result.domain)}")
    return "\n".join(lines)


def evacuation_plan(plan: EvacuationPlan) -> str:
    """``evacuate --dry-run``: where each domain would go and what its secrets need."""
    rows = [("DOMAIN", "MODE", "MEMORY", "DESTINATION", "SECRETS", "NOTE")]
    for d in plan.domains:
        todo = [f"{p.uuid} {p.action}" for p in d.secrets]
        rows.append((d.name, "live" if d.live else "offline", f"{d.memory_bytes // 2**20} MiB",
                     d.destination or "-", ", ".join(todo) or "-", d.reason))
    return table(rows) + "".join(f"\nexcluded: {n}" for n in plan.excluded)


def evacuation_report(report: EvacuationReport) -> str:
    """``evacuate``: one row per domain and the count moved."""
    rows = [("DOMAIN", "STATE", "DESTINATION", "TIME", "REASON")]
    rows += [(o.domain, o.state, o.destination or "-", f"{o.duration_s:.1f}s", o.reason) for o in report.outcomes]
    moved = sum(o.moved for o in report.outcomes)
    return (table(rows) + f"\n{moved} of {len(report.outcomes)} moved in {report.duration_s:.1f}s"
            + (" (interrupted)" if report.interrupted else ""))


def secret_plans(plans: Sequence[SecretPlan]) -> str:
    """``secrets``: one row per secret, then each reason."""
    rows = [("UUID", "KIND", "USAGE", "SOURCE", "DESTINATION", "ACTION")]
    rows += [(p.uuid or "-", str(p.ref.kind), f"{p.ref.usage_type}:{p.usage_id or p.ref.usage_id or ''}".rstrip(":"),
              p.source_status, p.dest_status, str(p.action)) for p in plans]
    return "\n".join([table(rows), *(f"{p.uuid}: {p.reason}" for p in plans if p.reason)])


def secret_audit(report: AuditReport, exit_code: int) -> str:
    """``secrets audit``: the hosts read, one row per finding, each finding's fix and risk, the unknowns,
    and the verdict as the last line."""
    from coordinator.core.exit_codes import ExitCode  # NOTE: core, loaded with every parser anyway

    out = [table([("HOST", "SECRETS", "DOMAINS", "VALUES")] + [
        (h.uri, str(len(h.secrets)), str(len(h.domains)), "read" if h.values_read else "not read (plaintext)")
        for h in report.hosts])]
    if report.findings:
        rows = [("#", "FINDING", "HOST", "SECRET", "USAGE", "DOMAINS")]
        rows += [(str(i), str(f.kind), ", ".join(f.hosts), f.uuid or "-", f.usage, ", ".join(f.domains) or "-")
                 for i, f in enumerate(report.findings, 1)]
        out += ["", table(rows)]
        for i, f in enumerate(report.findings, 1):
            out += ["", f"{i}. {f.kind}: {f.detail}", *(f"   fix: {line}" for line in f.fix), f"   risk: {f.risk}"]
    if report.unknowns:
        out += ["", *(f"unknown {u.uuid}: {u.detail}" for u in report.unknowns)]
    counts = ", ".join(f"{n} {k}" for k, n in report.counts().items() if n)
    out.append("")
    if report.findings:
        out.append(f"FINDINGS: {counts} (nothing was changed)")
    elif report.unknowns:
        out.append(f"{'UNKNOWN' if exit_code == ExitCode.UNKNOWN else 'CLEAN with unknowns'}: no finding, but "
                   f"{len(report.unknowns)} shared secret value(s) could not be compared")
    else:
        out.append(f"CLEAN: no finding on {len(report.hosts)} host(s)")
    return "\n".join(out)


def check_report(report: Report, *, accept_unknown: bool = False) -> str:
    """``check``: the findings, the hints, and the verdict as the last line."""
    rows = [("ID", "SEVERITY", "STATUS", "SUBJECT", "MESSAGE")]
    rows += [(f.check_id, f.severity, f.status.upper() if f.status != "pass" else f.status, f.subject,
              f.message) for f in report.findings]
    lines = table(rows).splitlines()
    hints = {f.check_id: f.hint for f in report.findings
             if f.status in ("fail", "error", "waived", "unknown") and f.hint}
    if hints:
        lines.append("")
        lines += [f"hint {cid}: {h}" for cid, h in hints.items()]
    blocking = sorted({f.check_id for f in report.blocking})
    lines.append("")
    if blocking:
        lines.append(f"BLOCKED by {', '.join(blocking)}")
    elif report.decisive and not accept_unknown:
        lines.append("UNKNOWN: success depends on what the checks could not learn (see the hints, or "
                     "--accept-unknown): " + "; ".join(f"{f.check_id} ({f.subject}): {f.message}"
                                                        for f in report.decisive))
    elif report.unknowns:
        # NOTE: never a bare "OK" when the verdict rests on something the checks could not learn.
        lines.append("GO with unknowns: " + "; ".join(f"{f.check_id} ({f.subject}): {f.message}"
                                                      for f in report.unknowns))
    else:
        lines.append("OK: nothing blocks the migration")
    return "\n".join(lines)


def control(r: ControlResult) -> str:
    """``abort`` / ``complete``: what was done, on which host, and a note."""
    what = {"aborted": "migration aborted", "postcopy": "switched to post-copy",
            "suspended": "guest suspended so the migration converges"}[r.action]
    line = f"{r.domain}: {what} on {r.host}" + (f" (started by {r.owner})" if r.owner else "")
    return line + (f"\n  note: {r.note}" if r.note else "")


def maintenance(uri: str, m: Maintenance | None, *, as_json_doc: bool) -> str:
    """``maintenance``: the host's mark, or that it has none."""
    if as_json_doc:
        return as_json({"host": uri, "draining": m is not None, **(m.as_dict() if m else {})})
    return f"{uri}: " + (m.describe() if m else "not in maintenance")


def settings(eff: Effective) -> str:
    """``config show``: every setting with its origin, then hosts, groups and value sources."""
    rows = [("SETTING", "VALUE", "FROM")]
    rows += [(s.key, "-" if s.value is None else json.dumps(s.value) if isinstance(s.value, bool) else str(s.value),
              s.origin) for s in eff.settings]
    out = [f"settings file: {eff.path or 'none'}", "", table(rows)]
    if eff.hosts:
        out += ["", table([("HOST", "URI", "SSH")] + [
            (n, h.uri, " ".join(f"{k}={v}" for k, v in h.ssh.as_dict().items()) or "-")
            for n, h in sorted(eff.hosts.items())])]
    if eff.groups:
        out += ["", table([("GROUP", "HOSTS")] + [(n, " ".join(m)) for n, m in sorted(eff.groups.items())])]
    if eff.sources:
        out += ["", table([("VALUE SOURCE", "FOR")] + [
            (_shown_source(s), f"uuid {s.uuid}" if s.uuid else f"usage {s.usage}" if s.usage else "any secret")
            for s in eff.sources])]
    return "\n".join(out)


def names(items: Sequence[str], *, as_json_doc: bool) -> str:
    """``config hosts`` / ``config groups``: one name a line (for shell completion), or a JSON list on one line."""
    return json.dumps(list(items)) if as_json_doc else "\n".join(items)


def _shown_source(s: SourceSpec) -> str:
    if s.kind != "command":
        return f"{s.kind}:{s.arg}"
    program, hidden = command_program(s.arg)
    return f"command:{program}" + (f" ({hidden} argument{'s' if hidden != 1 else ''} hidden)" if hidden else "")


def settings_dict(eff: Effective) -> dict[str, Any]:
    """``Effective.as_dict()`` with each helper command replaced by its program and the number of
    arguments hidden: ``{"kind": "command", "program": ..., "arguments_hidden": N, ...}``."""
    out = eff.as_dict()
    shown = []
    for spec, d in zip(eff.sources, out["sources"], strict=True):
        if spec.kind == "command":
            program, hidden = command_program(spec.arg)
            d = {k: v for k, v in d.items() if k != "arg"} | {"program": program, "arguments_hidden": hidden}
        shown.append(d)
    out["sources"] = shown
    return out


def error_json(e: MigcoordError) -> str:
    """A failed command's ``--json`` document (one line): the error, its hint, type and exit code,
    and the report, diagnosis and timings when the error carries them."""
    out = {"error": e.message, "hint": e.hint, "type": type(e).__name__, "exit_code": e.exit_code}
    for key in ("report", "diagnosis", "timings"):
        if key in e.data:
            out[key] = e.data[key]
    return json.dumps(out, sort_keys=True)
