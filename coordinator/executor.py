"""Migrate one domain: pre-flight → secrets → migrateToURI3 (retried) → verify.

Connections and time are injected (``connect``, ``sleep``) so the library can be
pointed at any host and tests never wait on real clocks (house rule 8).
"""
from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterable

import tenacity

from . import domxml
from .errors import BadInput, Blocked, HostUnreachable, MigcoordError, MigrationFailed
from .hypervisor import Guest, Host, check_uri, error_summary, is_transient
from .journal import Journal
from .locks import domain_lock
from .keys import KeyRing
from .model import MigrationResult, SecretAction, SecretPlan
from .params import (Deadlines, MigrationPolicy, TimeoutPolicy, migration_flags, migration_params,
                     on_deadline)
from .remote import SshConfig, runner_for
from .secrets import (SecretPolicy, SecretProvisioner, blocked_by, check_transport, cleanup_source,
                      wanted_flags)

log = logging.getLogger("migcoord")

DEFAULT_LOCK_DIR = Path(os.environ.get("MIGCOORD_LOCK_DIR", "/run/migcoord"))
EventSink = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries of transient failures: attempts and total time, exponential backoff + jitter."""

    attempts: int = 4
    max_seconds: float = 120.0
    initial_wait: float = 1.0
    max_wait: float = 15.0


def retryable(exc: BaseException) -> bool:
    """Transient libvirt errors, and connection failures the hypervisor layer marked transient."""
    if isinstance(exc, HostUnreachable):
        return bool(exc.data.get("transient"))
    return is_transient(exc)


def build_retrying(rp: RetryPolicy, sleep: Callable[[float], None],
                   journal: Journal | None = None) -> tenacity.Retrying:
    def before_sleep(rs: tenacity.RetryCallState) -> None:
        exc = rs.outcome.exception() if rs.outcome else None
        wait = rs.next_action.sleep if rs.next_action else 0.0
        log.warning("attempt %d failed (%s); retrying in %.1fs", rs.attempt_number, error_summary(exc), wait)
        if journal is not None:
            journal.record("retry-wait", attempt=rs.attempt_number, error=error_summary(exc),
                           wait_s=round(wait, 2))

    return tenacity.Retrying(before_sleep=before_sleep,
        retry=tenacity.retry_if_exception(retryable),
        stop=tenacity.stop_after_attempt(rp.attempts) | tenacity.stop_after_delay(rp.max_seconds),
        wait=tenacity.wait_exponential_jitter(multiplier=rp.initial_wait, max=rp.max_wait,
                                               jitter=rp.initial_wait),
        sleep=sleep, reraise=True)


def connect_retrying(uri: str, connect: Callable[[str], Host], retrying: tenacity.Retrying) -> Host:
    return retrying(connect, uri)


class JobAborted(Exception):
    """We aborted the migration job ourselves (deadline); never retried."""


class JobMonitor:
    """Polls virDomainGetJobStats while migrateToURI3 runs: emits progress events and enforces
    the completion and stall deadlines (switch to post-copy once if allowed, else abort)."""

    def __init__(self, guest: Guest, sink: EventSink, limits: Deadlines, policy: MigrationPolicy,
                 clock: Callable[[], float] = time.monotonic, interval: float = 0.5) -> None:
        self.guest, self.sink, self.limits, self.policy = guest, sink, limits, policy
        self.clock, self.interval = clock, interval
        self.aborted: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="migcoord-job-monitor")

    def __enter__(self) -> "JobMonitor":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        start = last_progress = self.clock()
        best: int | None = None
        switched = False
        while not self._stop.wait(self.interval):
            try:
                job = self.guest.job()
            except Exception:  # the domain vanishes from the source at the end: not our business
                return
            if not job.active:
                continue
            self.sink({"event": "progress", "percent": round(job.percent, 1),
                       "data_processed": job.data_processed, "data_remaining": job.data_remaining,
                       "data_total": job.data_total, "rate_bps": job.mem_bps, "elapsed_ms": job.elapsed_ms})
            now = self.clock()
            if job.data_total and (best is None or job.data_remaining < best):
                best, last_progress = job.data_remaining, now
            why = None
            if now - start > self.limits.completion_s:
                why = f"did not complete within {self.limits.completion_s:.0f}s"
            elif now - last_progress > self.limits.stall_s:
                why = f"made no progress for {self.limits.stall_s:.0f}s"
            if why is None:
                continue
            # NOTE: QEMU accepts migrate-start-postcopy only once its migration really runs
            # (data_total > 0); before that libvirt is still preparing the destination.
            if on_deadline(self.policy, switched) == "postcopy" and job.data_total:
                self.sink({"event": "postcopy-switch", "reason": why})
                try:
                    self.guest.start_postcopy()
                    switched, start, last_progress = True, now, now
                    continue
                except Exception as e:
                    why += f" and the switch to post-copy failed ({error_summary(e)})"
            self.aborted = why
            self.sink({"event": "job-abort", "reason": why})
            try:
                self.guest.abort_job()
            except Exception:
                pass  # the job may have just finished; migrateToURI3's result tells
            return


def where_is(src: Host, dst: Host, uuid: str) -> str:
    """'source' if active there, 'destination' if active there (and not on source), else 'nowhere'."""
    s = src.find_guest(uuid)
    if s is not None and s.is_active():
        return "source"
    d = dst.find_guest(uuid)
    if d is not None and d.is_active():
        return "destination"
    return "nowhere"


def migrate(domain: str, source_uri: str, dest_uri: str, *,
            policy: MigrationPolicy = MigrationPolicy(),
            secret_policy: SecretPolicy = SecretPolicy(),
            keyring: KeyRing | None = None,
            retry: RetryPolicy = RetryPolicy(),
            timeouts: TimeoutPolicy = TimeoutPolicy(),
            journal: Journal | None = None,
            dry_run: bool = False,
            connect: Callable[[str], Host] = Host.open,
            sleep: Callable[[float], None] = time.sleep,
            lock_dir: Path = DEFAULT_LOCK_DIR,
            skip: Iterable[str] = (),
            waive: Iterable[str] = (),
            ssh: SshConfig | None = None,
            on_event: EventSink | None = None) -> MigrationResult:
    """Migrate ``domain`` (name, UUID or id) from ``source_uri`` to ``dest_uri``.

    Raises ``Blocked`` (nothing changed), ``BadInput``, ``MigrationFailed`` (VM still on the
    source; secrets this run created on the destination were removed) or ``Busy``.
    """
    check_uri(source_uri)
    check_uri(dest_uri)
    if source_uri == dest_uri:
        raise BadInput("source and destination URIs are the same", hint="give a different --to")
    check_transport(source_uri, dest_uri, allow_plaintext=secret_policy.allow_plaintext)
    flags, params = migration_flags(policy), migration_params(policy)  # validate before connecting
    timeouts.for_memory(0)  # validate the timeout settings too
    journal = journal or Journal()
    keyring = keyring or KeyRing()
    emit = on_event or (lambda _e: None)
    retrying = build_retrying(retry, sleep, journal)
    t0 = time.monotonic()
    src = connect_retrying(source_uri, connect, retrying)
    try:
        dst = connect_retrying(dest_uri, connect, retrying)
    except BaseException:
        src.close()
        raise
    try:
        if src.host_uuid() == dst.host_uuid():
            raise Blocked(f"{dest_uri} is the same host as {source_uri} (host UUID {src.host_uuid()})",
                          hint="pick another destination", check_id="HOST-SAME")
        guest = src.find_guest(domain)
        if guest is None or not guest.is_active():
            there = dst.find_guest(domain)
            if there is not None and there.is_active() and (guest is None or policy.live):
                return MigrationResult(domain=there.name, uuid=there.uuid, source_uri=source_uri,
                                       dest_uri=dest_uri, state="already-on-destination", attempts=0,
                                       duration_s=time.monotonic() - t0, dest_state=there.state())
        if guest is None:
            raise BadInput(f"domain {domain!r} not found on {source_uri}",
                           hint="give its name, UUID or id as virsh list shows it")
        with domain_lock(lock_dir, guest.uuid, guest.name):
            return _migrate_locked(guest, src, dst, policy, flags, params, secret_policy, keyring,
                                   journal, dry_run, retrying, timeouts, emit, connect, t0,
                                   tuple(skip), tuple(waive), ssh)
    finally:
        src.close()
        dst.close()


def _migrate_locked(guest: Guest, src: Host, dst: Host, policy: MigrationPolicy, flags: frozenset[str],
                    params: dict[str, Any], secret_policy: SecretPolicy, keyring: KeyRing,
                    journal: Journal, dry_run: bool, retrying: tenacity.Retrying,
                    timeouts: TimeoutPolicy, emit: EventSink,
                    connect: Callable[[str], Host], t0: float, skip: tuple[str, ...] = (),
                    waive: tuple[str, ...] = (), ssh: SshConfig | None = None) -> MigrationResult:
    limits = timeouts.for_memory(guest.memory_bytes()) if guest.is_active() else None
    if limits and _adopt_stale_job(guest, limits, policy, journal, emit):
        if where_is(src, dst, guest.uuid) == "destination":
            d = dst.find_guest(guest.uuid)
            assert d is not None
            journal.record("already-on-destination", uuid=d.uuid, host=dst.uri)
            return MigrationResult(domain=d.name, uuid=d.uuid, source_uri=src.uri, dest_uri=dst.uri,
                                   state="already-on-destination", attempts=0,
                                   duration_s=time.monotonic() - t0, dest_state=d.state())
    xmls = guest.definitions()
    prov = SecretProvisioner(src, dst, keyring=keyring, policy=secret_policy, journal=journal)
    plans = prov.plan(domxml.union_refs(*xmls))
    emit({"event": "secrets-planned", "secrets": [p.as_dict() for p in plans]})
    from checks import checks_for_migration  # NOTE: lazy: the checks package imports coordinator
    report = checks_for_migration(src, dst, guest, xmls, plans, policy=policy, secret_policy=secret_policy,
                                  keyring=keyring, skip=skip, waive=waive, ssh=ssh)
    full = report.as_dict()
    emit({"event": "checks", "ok": full["ok"], "blocking": full["blocking"], "counts": full["counts"],
          "warnings": sorted({f.check_id for f in report.findings if f.status == "fail" and not f.blocking})})
    for f in report.findings:
        if f.status in ("fail", "error") and not f.blocking:
            log.warning("%s: %s", f.check_id, f.message)
    _warn_ephemeral(plans, prov, policy)
    if report.blocking:
        ids = sorted({f.check_id for f in report.blocking})
        journal.record("blocked", domain=guest.name, uuid=guest.uuid, checks=ids)
        secret_blockers = [p for p in plans if p.action is SecretAction.BLOCK]
        if secret_blockers and all(i.startswith("SECRET-") for i in ids):
            err = blocked_by(secret_blockers)
        else:
            first = report.blocking[0]
            more = f" (and {len(report.blocking) - 1} more: {', '.join(ids)})" if len(report.blocking) > 1 else ""
            err = Blocked(f"{first.check_id}: {first.message}{more}", hint=first.hint or None)
        err.data["report"] = report.as_dict()
        raise err
    base = dict(domain=guest.name, uuid=guest.uuid, source_uri=src.uri, dest_uri=dst.uri)
    if dry_run:
        return MigrationResult(**base, state="dry-run", attempts=0, duration_s=time.monotonic() - t0,
                               secrets=tuple(plans))
    journal.record("migration-start", domain=guest.name, uuid=guest.uuid, source=src.uri, dest=dst.uri,
                   flags=sorted(flags))
    prov.apply(plans)
    limits = limits or timeouts.for_memory(guest.memory_bytes())
    attempts = 0
    state = {"src": src}

    def attempt() -> str:
        nonlocal attempts
        attempts += 1
        if attempts > 1:
            if not state["src"].alive():
                state["src"] = connect(src.uri)
            where = where_is(state["src"], dst, guest.uuid)
            journal.record("migration-retry-check", uuid=guest.uuid, attempt=attempts, where=where)
            if where == "destination":
                return "completed-earlier"
        journal.record("migration-attempt", uuid=guest.uuid, attempt=attempts)
        emit({"event": "migration-attempt", "attempt": attempts})
        g = state["src"].find_guest(guest.uuid) or guest
        with JobMonitor(g, emit, limits, policy) as monitor:
            try:
                g.migrate(dst.uri, params, flags)
            except Exception:
                if monitor.aborted:
                    raise JobAborted(f"job aborted: the migration {monitor.aborted}") from None
                raise
        return "migrated"

    try:
        retrying(attempt)
    except Exception as e:
        reason = error_summary(e)
        journal.record("migration-failed", uuid=guest.uuid, attempts=attempts, error=reason)
        where = _safe_where(state["src"], dst, guest.uuid)
        if where == "source":
            removed = _rollback_best_effort(prov, dst, journal)
            raise MigrationFailed(f"migration of {guest.name} to {dst.uri} failed after {attempts} "
                                  f"attempt(s): {reason}; the VM is still on {src.uri}"
                                  + (f"; removed {len(removed)} secret(s) this run created" if removed else ""),
                                  where=where, attempts=attempts, rolled_back=removed) from None
    result = MigrationResult(**base, state="migrated", attempts=attempts,
                             duration_s=time.monotonic() - t0, secrets=tuple(plans))
    verify(result, state["src"], dst, policy, plans, ssh)
    if secret_policy.cleanup_source:
        xmls_left = [x for g in state["src"].guests() for x in g.definitions()]
        cleanup_source(state["src"], [p.uuid for p in plans if p.uuid], xmls_left, journal)
    journal.record("migration-done", uuid=guest.uuid, attempts=attempts, duration_s=round(result.duration_s, 3))
    return replace(result, dest_state=dst.find_guest(guest.uuid).state())  # type: ignore[union-attr]


def _adopt_stale_job(guest: Guest, limits: Deadlines, policy: MigrationPolicy, journal: Journal,
                     emit: EventSink) -> bool:
    """An outgoing migration already running although we hold the domain lock was left by a run
    that died (with peer-to-peer the source daemon carries on without its client). Watch it to
    its end under our deadlines — aborting it if it overruns them — instead of failing or
    starting a second one. True if there was such a job."""
    job = guest.job()
    if not job.active or job.operation not in ("migration-out", ""):
        return False
    journal.record("stale-job-adopted", uuid=guest.uuid, elapsed_ms=job.elapsed_ms)
    emit({"event": "stale-job-adopted", "elapsed_ms": job.elapsed_ms})
    log.warning("domain %s already has an outgoing migration job (from an earlier run?); "
                "watching it to its end", guest.name)
    with JobMonitor(guest, emit, limits, policy) as monitor:
        while True:
            try:
                if not guest.is_active() or not guest.job().active:
                    break
            except Exception:  # the domain left the source: the job completed
                break
            time.sleep(0.2)
    if monitor.aborted:
        journal.record("stale-job-aborted", uuid=guest.uuid, reason=monitor.aborted)
    return True


def _rollback_best_effort(prov: SecretProvisioner, dst: Host, journal: Journal) -> list[str]:
    """Undo our secrets on the destination; if it is unreachable, say which ones were left."""
    try:
        return prov.rollback([x for g in dst.guests() for x in g.definitions()])
    except Exception as e:
        journal.record("rollback-incomplete", host=dst.uri, uuids=list(prov.created), error=error_summary(e))
        log.warning("could not remove secret(s) %s this run created on %s: %s",
                    ", ".join(prov.created), dst.uri, error_summary(e))
        return []


def _safe_where(src: Host, dst: Host, uuid: str) -> str:
    try:
        return where_is(src, dst, uuid)
    except Exception:
        return "unknown"


def _warn_ephemeral(plans: list[SecretPlan], prov: SecretProvisioner, policy: MigrationPolicy) -> None:
    for p in plans:
        info = prov.source_info(p.uuid)
        if info and p.action is SecretAction.PROVISION and policy.persist and wanted_flags(info, prov.policy)[1]:
            log.warning("secret %s will be ephemeral on the destination but backs a persistent domain: "
                        "the domain will not start there after a libvirtd restart", p.uuid)


def verify(result: MigrationResult, src: Host, dst: Host, policy: MigrationPolicy,
           plans: list[SecretPlan], ssh: SshConfig | None = None) -> None:
    """After success: running on the destination, persistent if asked, gone from the source if asked,
    every secret still on the source (we never delete those by ourselves), and — over SSH when
    configured — the vTPM state directory present on the destination."""
    problems = []
    d = dst.find_guest(result.uuid)
    if d is None or (policy.live and not d.is_active()):
        problems.append(f"not active on {dst.uri}")
    elif policy.persist and not d.is_persistent():
        problems.append(f"not persistent on {dst.uri}")
    s = src.find_guest(result.uuid)
    if s is not None and (policy.undefine_source or s.is_active()):
        problems.append(f"still {'defined' if not s.is_active() else 'active'} on {src.uri}")
    for p in plans:
        if p.uuid and src.secret_info(p.uuid) is None:
            problems.append(f"secret {p.uuid} no longer on {src.uri}")
    if ssh is not None and any(p.ref.kind == "vtpm" for p in plans) and policy.live:
        runner = runner_for(dst.uri, ssh)
        if runner is not None:
            try:
                # NOTE: libvirt keeps emulator TPM state under swtpm/<domain uuid>/ (formatdomain, tpm).
                if not runner.run("test -d {}", f"/var/lib/libvirt/swtpm/{result.uuid}").ok:
                    problems.append(f"no vTPM state for {result.uuid} under /var/lib/libvirt/swtpm on {dst.uri}")
            finally:
                runner.close()
    if problems:
        raise MigcoordError(f"migration of {result.domain} reported success but verification failed: "
                            + "; ".join(problems), hint="inspect both hosts with virsh")
