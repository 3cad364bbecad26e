"""Migrate one domain: pre-flight → secrets → migrateToURI3 (retried) → verify.

Connections and time come from the ``Runtime`` (house rule 8); what to do comes from the
``MigrateOptions``. The steps themselves live in ``coordinator.steps``; this module only orders them.
"""
from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from types import FrameType
from typing import Any, TypeVar

import tenacity

from checks import checks_for_migration
from checks.registry import Report
from coordinator.core.domain.secret_refs import union_refs
from coordinator.core.errors import (Blocked, Interrupted, MigcoordError, MigrationFailed, Undecided, Unsettled,
                                     VerificationFailed)
from coordinator.core.lease_rules import TTL_S, JobAction, attempt_ttl
from coordinator.core.model import MigrationResult, SecretAction, SecretPlan
from coordinator.core.params import Deadlines, TimeoutPolicy, exit_bound_s, job_limit_s, migration_flags, \
    migration_params
from coordinator.core.timings import PhaseRecorder
from coordinator.core.uris import same_host_message
from coordinator.flows.validate import before_connecting
from coordinator.ssh.runner import runner_for
from coordinator.flows.boundary import libvirt_errors
from coordinator.steps.diagnose import Diagnosis, explain, gather
from coordinator.steps.lease import LeaseKeeper, Ownership, ownership
from coordinator.steps.locks import domain_lock
from coordinator.steps.monitor import JobAborted, JobMonitor
from coordinator.steps.parameters import MigrateOptions, Runtime
from coordinator.steps.provision import SecretProvisioner, blocked_by, cleanup_source
from coordinator.steps.transport import check_transport
from coordinator.core.secret_rules import wanted_flags
from coordinator.steps.retry import build_retrying
from coordinator.steps.verify import safe_where, verify, where_is
from coordinator.virt.errors import LibvirtError, error_summary
from coordinator.virt.guest import CallTimedOut, Guest, call_within
from coordinator.virt.host import Host

log = logging.getLogger("migcoord")

# Between writing the lease and reading it back (steps.lease.LeaseKeeper.take). It only has to cover one
# round trip — the gap between another coordinator's last look and its write — with a wide margin; every
# migration waits it once (it was 0.5 s: 15 % of a 3 s lab migration, seen in the --timings breakdown).
LEASE_SETTLE_S = 0.1

T = TypeVar("T")


class _StillAborting(Exception):
    """migrateToURI3 has not returned ``abort_s`` after the abort was asked for (never retried)."""

    def __init__(self, reason: str, interrupted: bool) -> None:
        super().__init__(reason)
        self.reason, self.interrupted = reason, interrupted


class _Aborter:
    """The abort of one migrateToURI3: who asked for it and when, and its bound. Our own abort (on a
    signal, or the watchdog's) is repeated every second, one virDomainAbortJob at a time (a hung one
    is not stacked). NOTE: libvirt refuses an abort in some phases (e.g. while it still prepares the
    destination); an abort of a job that just finished fails harmlessly (where_is tells)."""

    def __init__(self, g: Guest, watchdog_s: float, abort_s: float) -> None:
        self.g, self.watchdog_s, self.abort_s = g, watchdog_s, abort_s
        self.started = time.monotonic()
        self.ours, self.why = False, ""
        self.asked: float | None = None  # when the abort was asked for (time.monotonic)
        self._busy = threading.Event()
        self._last = 0.0

    def ask(self, why: str) -> None:
        if not self.ours:
            self.ours, self.why = True, why
            self.asked = self.asked if self.asked is not None else time.monotonic()

    def step(self, monitor: JobMonitor) -> bool:
        """One look, between waits: True when the watchdog asked for the abort just now; raises
        ``_StillAborting`` once the abort has had ``abort_s``."""
        now, watchdog = time.monotonic(), False
        if monitor.postcopy and not self.ours:
            # NOTE: libvirt refuses to abort a post-copy migration; it ends by completing or failing on its
            # own (a broken connection: keepalive), so neither the deadline's abort nor the watchdog applies.
            return False
        if self.asked is None and monitor.aborted_at is not None:
            self.asked, self.why = monitor.aborted_at, f"the migration {monitor.aborted}"
        if self.asked is None and now - self.started > self.watchdog_s:
            self.ask(f"no abort {self.watchdog_s:.0f} s after the start, past the monitor's deadlines")
            watchdog = True
        if self.asked is not None and now - self.asked > self.abort_s:
            raise _StillAborting(self.why, self.why == "interrupted")
        if self.ours and not self._busy.is_set() and now - self._last >= 1.0:
            self._busy.set()
            self._last = now
            threading.Thread(target=self._abort, daemon=True, name="migcoord-abort").start()
        return watchdog

    def _abort(self) -> None:
        try:
            self.g.abort_job()
        except Exception:
            pass
        finally:
            self._busy.clear()


class _Shield:
    """A second (third, ...) SIGINT/SIGTERM must not cut the cleanup short (issue 21). From the first
    interrupt (``engage``) until the run is over, this run's handlers for both signals only count; the
    waits of the cleanup (``tick``, every 0.1 s) answer each signal with "still cleaning up", and it goes on — it
    ends by itself within its bounds (core.params), so a further signal changes nothing. ``__exit__``
    puts the caller's handlers back. NOTE: only in the main thread (where Python delivers signals and
    may set handlers); a run in another thread never sees a KeyboardInterrupt. The handler does no I/O:
    a write to stderr from inside a signal handler can hit a write in progress."""

    def __init__(self, bound_s: float) -> None:
        self.bound_s = bound_s
        self.engaged = False
        self.count = self.noted = 0
        self._saved: dict[int, Any] = {}

    def __enter__(self) -> _Shield:
        return self

    def __exit__(self, *exc: object) -> None:
        self.tick()
        for sig, handler in self._saved.items():
            signal.signal(sig, handler)
        self._saved.clear()

    def engage(self) -> None:
        if self.engaged:
            return
        self.engaged = True
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._saved[sig] = signal.signal(sig, self._on_signal)

    def _on_signal(self, _signum: int, _frame: FrameType | None) -> None:
        self.count += 1

    def tick(self) -> None:
        while self.noted < self.count:  # one answer per signal
            self.noted += 1
            log.warning("still cleaning up, please wait (a further signal changes nothing: the abort and the "
                        "rollback finish by themselves within %.0f s)", self.bound_s)


def migrate(domain: str, source_uri: str, dest_uri: str, options: MigrateOptions | None = None,
            runtime: Runtime | None = None) -> MigrationResult:
    """Migrate ``domain`` (name, UUID or id) from ``source_uri`` to ``dest_uri``.

    Raises ``Blocked`` (nothing changed), ``BadInput``, ``MigrationFailed`` (VM still on the
    source; secrets this run created on the destination were removed) or ``Busy``.

    The result's ``timings`` say where the time went (``core.timings``, on ``runtime.clock``);
    an error carries them as ``data["timings"]`` (a dict, as ``Timings.as_dict`` gives).
    """
    options = options or MigrateOptions()
    rt = runtime or Runtime()
    timer = PhaseRecorder(rt.clock)
    try:
        result = _migrate(domain, source_uri, dest_uri, options, rt, timer)
    except MigcoordError as e:
        e.data.setdefault("timings", timer.finish().as_dict())
        raise
    return replace(result, timings=timer.finish())  # after the connections were closed


def _migrate(domain: str, source_uri: str, dest_uri: str, options: MigrateOptions, rt: Runtime,
             timer: PhaseRecorder) -> MigrationResult:
    before_connecting(source_uri, [dest_uri], options, [domain])
    check_transport(source_uri, dest_uri, allow_plaintext=options.secret_policy.allow_plaintext)
    retrying = build_retrying(options.retry, rt.sleep, rt.journal)
    t0 = rt.clock()
    shield = _Shield(exit_bound_s(options.timeouts))
    with shield, libvirt_errors(), options.keyring.held(), \
            _connected(source_uri, dest_uri, rt, retrying, timer, options.timeouts.call_s, shield) as (src, dst):
        same = same_host_message(src.uri, dst.uri, src.host_uuid(), dst.host_uuid())
        if same:
            raise Blocked(same, hint="pick another destination", check_id="HOST-SAME")
        guest = src.find_guest(domain)
        if guest is None or not guest.is_active():
            # Identity is the UUID, never the name alone: a domain of the same name on the
            # destination is "already there" only when it is this domain.
            there = dst.find_guest(guest.uuid if guest is not None else domain)
            if there is not None and there.is_active() and (guest is None or options.policy.live):
                return _already_there(there, src, dst, rt.clock() - t0)
        if guest is None:
            guest = src.require_guest(domain)  # raises BadInput: not found
        with domain_lock(rt.lock_dir, guest.uuid, guest.name, create=not options.dry_run):  # a dry run creates none
            return _Run(guest, src, dst, options, rt, retrying, t0, timer, shield).go()


@contextlib.contextmanager
def _connected(source_uri: str, dest_uri: str, rt: Runtime, retrying: tenacity.Retrying,
               timer: PhaseRecorder, close_s: float, shield: _Shield) -> Iterator[tuple[Host, Host]]:
    with timer.phase("connect"):  # both hosts, retries included
        src = retrying(rt.connect, source_uri)
        try:
            dst = retrying(rt.connect, dest_uri)
        except BaseException:
            src.close()
            raise
    try:
        yield src, dst
    finally:
        def close() -> None:
            src.close()
            dst.close()
        # NOTE: bounded (one virConnectClose RPC each, to a daemon that may have stopped answering)
        with contextlib.suppress(CallTimedOut):
            call_within(close_s, "virConnectClose", close, tick=shield.tick)


def _already_there(there: Guest, src: Host, dst: Host, duration_s: float) -> MigrationResult:
    """The domain already runs on the destination (an earlier run, or a migration that completed
    despite an error): nothing to do."""
    return MigrationResult(domain=there.name, uuid=there.uuid, source_uri=src.uri, dest_uri=dst.uri,
                           state="already-on-destination", attempts=0, duration_s=duration_s,
                           dest_state=there.status().state)


@dataclass
class _Run:
    """One locked migration of one domain: the state its steps share."""

    guest: Guest
    src: Host
    dst: Host
    options: MigrateOptions
    rt: Runtime
    retrying: tenacity.Retrying
    t0: float
    timer: PhaseRecorder
    shield: _Shield
    attempts: int = 0
    unsettled: bool = False               # a bound was hit with a job that may still run: the lease stays
    cleanup_until: float | None = None    # time.monotonic() when the shared cleanup budget ends
    prov: SecretProvisioner | None = None  # the provisioner of the secrets this run created

    @property
    def prov_created(self) -> list[str]:
        return list(self.prov.created) if self.prov is not None else []

    @property
    def bounds(self) -> TimeoutPolicy:
        return self.options.timeouts

    def _bounded(self, what: str, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` waited for at most the bound on one call, and within the cleanup budget once
        the cleanup began (``core.params``); ``CallTimedOut`` past it."""
        bound = self.bounds.call_s
        if self.cleanup_until is not None:
            bound = min(bound, max(0.05, self.cleanup_until - time.monotonic()))
        return call_within(bound, what, fn, *args, tick=self.shield.tick)

    def _start_cleanup(self) -> None:
        if self.cleanup_until is None:
            self.cleanup_until = time.monotonic() + self.bounds.cleanup_s

    def __post_init__(self) -> None:
        self.lease = LeaseKeeper(self.rt.journal.run_id, self.dst.uri, self.rt.wall, self.rt.journal,
                                 settle=lambda: self.rt.sleep(LEASE_SETTLE_S))

    def go(self) -> MigrationResult:
        """Read who owns the domain; a dry run stops after planning and checks (it never adopts,
        waits on or aborts anything); a real run takes the lease and always releases it."""
        own = ownership(self.guest, self.dst.uri, self.rt.wall())
        if self.options.dry_run:
            return self._dry_run()
        if own.action is JobAction.BLOCK:
            self.rt.journal.record("blocked", domain=self.guest.name, uuid=self.guest.uuid,
                                   checks=["DOMAIN-JOB-ACTIVE"], reason=own.message)
            raise Blocked(f"DOMAIN-JOB-ACTIVE: {own.message}", check_id="DOMAIN-JOB-ACTIVE",
                          hint="wait for it to finish; migcoord leaves jobs it does not own alone")
        try:
            return self._owned(own)
        finally:
            if self.lease.held and self.unsettled:  # it marks the job as this run's for whoever comes next
                self.rt.journal.record("lease-left", uuid=self.guest.uuid, reason="the outcome is unsettled")
            elif self.lease.held:
                self._release_lease()

    def _release_lease(self) -> None:
        """Clear our lease wherever the domain is now: the source definition and the copy that
        travelled to the destination. Best effort (a host may be gone): the outcome stays the news."""
        for host in (self.src, self.dst):
            try:
                self._bounded("the lease release", lambda h=host: self.lease.release(
                    h.find_guest(self.guest.uuid), h.uri))
            except Exception as e:
                self.rt.journal.record("lease-release-failed", uuid=self.guest.uuid, host=host.uri,
                                       error=error_summary(e))
                log.warning("could not remove this run's lease on %s: %s (it expires by itself)", host.uri,
                            error_summary(e))

    def _dry_run(self) -> MigrationResult:
        _prov, plans = self._plan_and_check()
        return MigrationResult(domain=self.guest.name, uuid=self.guest.uuid, source_uri=self.src.uri,
                               dest_uri=self.dst.uri, state="dry-run", attempts=0,
                               duration_s=self.rt.clock() - self.t0, secrets=tuple(plans))

    def _owned(self, own: Ownership) -> MigrationResult:
        policy, journal = self.options.policy, self.rt.journal
        limits = self.options.timeouts.for_memory(self.guest.memory_bytes()) if self.guest.is_active() else None
        if own.action is JobAction.ADOPT and limits:
            self._adopt_stale_job(limits, own.message)
            if where_is(self.src, self.dst, self.guest.uuid) == "destination":
                d = self.dst.find_guest(self.guest.uuid)
                assert d is not None and own.lease is not None
                # The dead run's lease travelled with the domain; having adopted its job, clear it.
                self.lease.release(d, self.dst.uri, run_id=own.lease.run_id)
                journal.record("already-on-destination", uuid=d.uuid, host=self.dst.uri)
                return _already_there(d, self.src, self.dst, self.rt.clock() - self.t0)
            self._wait_incoming_side_gone()
        prov, plans = self._plan_and_check()
        base: dict[str, Any] = dict(domain=self.guest.name, uuid=self.guest.uuid, source_uri=self.src.uri,
                                    dest_uri=self.dst.uri)
        flags = migration_flags(policy)
        journal.record("migration-start", domain=self.guest.name, uuid=self.guest.uuid, source=self.src.uri,
                       dest=self.dst.uri, flags=sorted(flags))
        self.lease.take(self.guest, TTL_S)
        with self.timer.phase("provision"):
            self._provision(prov, plans)
        limits = limits or self.options.timeouts.for_memory(self.guest.memory_bytes())
        with self.timer.phase("migration"):  # every attempt, the waits between them, a rollback
            self._migrate(prov, plans, limits)
        result = MigrationResult(**base, state="migrated", attempts=self.attempts,
                                 duration_s=self.rt.clock() - self.t0, secrets=tuple(plans))
        self._emit_stats()
        with self.timer.phase("verify"):  # and the optional source secret cleanup
            problems = self._verify(result, plans)
        if problems:
            journal.record("migration-unverified", uuid=self.guest.uuid, attempts=self.attempts, problems=problems)
            log.warning("%s moved to %s but verification is incomplete: %s", result.domain, self.dst.uri,
                        "; ".join(problems))
            return replace(result, state="migrated-unverified", warnings=tuple(problems),
                           dest_state=self._dest_state())
        journal.record("migration-done", uuid=self.guest.uuid, attempts=self.attempts,
                       duration_s=round(result.duration_s, 3))
        return replace(result, dest_state=self._dest_state())

    def _wait_incoming_side_gone(self, limit_s: float = 60.0) -> None:
        """The adopted migration failed or was aborted: libvirt removes its incoming side on the
        destination a moment later. Wait for that (bounded) so the checks do not see a clash."""
        end = self.rt.clock() + limit_s
        while self.rt.clock() < end:
            try:
                d = self.dst.find_guest(self.guest.uuid)
                if d is None or not d.is_active():
                    return
            except LibvirtError:  # removed between the look-up and the question
                return
            self.rt.sleep(0.5)

    def _emit_stats(self) -> None:
        """Bytes moved and downtime from the destination's completed job, for the metrics file and
        library callers (best effort: the numbers are a report, not part of the outcome)."""
        try:
            there = self.dst.find_guest(self.guest.uuid)
            stats = there.completed_job() if there else {}
        except LibvirtError:
            return
        if stats:
            self.timer.qemu_elapsed(stats.get("time_elapsed"))
            self.rt.on_event({"event": "migration-stats", **stats})

    def _dest_state(self) -> str:
        try:
            there = self.dst.find_guest(self.guest.uuid)
            return there.status().state if there else ""
        except LibvirtError:
            return "unknown"

    def _verify(self, result: MigrationResult, plans: list[SecretPlan]) -> list[str]:
        """After libvirt said yes: problems found (or met) while verifying; the VM has moved either way."""
        try:
            verify(result.domain, result.uuid, self.src, self.dst, self.options.policy, plans, self.options.ssh)
        except VerificationFailed as e:
            return [e.message]
        except Exception as e:  # e.g. SSH refused or a host connection failing after the move
            return [f"verification could not finish: {error_summary(e)}"]
        if self.options.secret_policy.cleanup_source:
            try:
                xmls_left = [x for g in self.src.guests() for x in g.definitions()]
                cleanup_source(self.src, [p.uuid for p in plans if p.uuid], xmls_left, self.rt.journal)
            except Exception as e:
                return [f"source secret cleanup failed: {error_summary(e)}"]
        return []

    def _provision(self, prov: SecretProvisioner, plans: list[SecretPlan]) -> None:
        """Define and set the secrets the destination lacks. A failure part-way removes what this
        run created there and becomes one clean error (the VM never left the source)."""
        try:
            prov.apply(plans)
        except BaseException as e:
            interrupted = isinstance(e, KeyboardInterrupt)
            if interrupted:
                self.shield.engage()
            self._start_cleanup()
            reason = "interrupted" if interrupted else error_summary(e)
            self.rt.journal.record("provisioning-failed", uuid=self.guest.uuid, error=reason)
            removed = self._rollback(prov)
            left = f"; could not remove {', '.join(prov.created)}" if prov.created else ""
            tail = (f"; removed {len(removed)} secret(s) this run created" if removed else "") + left
            if interrupted:
                raise Interrupted(f"interrupted while provisioning secrets on {self.dst.uri}; the VM is still "
                                  f"on {self.src.uri}{tail}", where="source", rolled_back=removed) from None
            if isinstance(e, Blocked):
                e.message += tail
                raise
            raise MigrationFailed(f"provisioning secrets on {self.dst.uri} failed: {reason}; the VM is still on "
                                  f"{self.src.uri}{tail}", where="source", attempts=0, rolled_back=removed) from None

    def _plan_and_check(self) -> tuple[SecretProvisioner, list[SecretPlan]]:
        """Plan every secret (reads only) and run the pre-flight checks; raise Blocked if one blocks, and
        Undecided if a fact that decides success is unknown (unless ``accept_unknown``)."""
        o, emit = self.options, self.rt.on_event
        with self.timer.phase("plan"):
            xmls = self.guest.definitions()
            prov = SecretProvisioner(self.src, self.dst, keyring=o.keyring, policy=o.secret_policy,
                                     journal=self.rt.journal)
            plans = prov.plan(union_refs(*xmls))
        emit({"event": "secrets-planned", "secrets": [p.as_dict() for p in plans]})
        with self.timer.phase("checks"):
            report = checks_for_migration(self.src, self.dst, self.guest, xmls, plans, o)
        full = report.as_dict()
        emit({"event": "checks", "ok": full["ok"], "blocking": full["blocking"], "counts": full["counts"],
              "decisive_unknown": full["decisive_unknown"], "accept_unknown": o.accept_unknown,
              "warnings": sorted({f.check_id for f in report.findings if f.status == "fail" and not f.blocking})})
        for f in report.findings:
            if f.status in ("fail", "error") and not f.blocking:
                log.warning("%s: %s", f.check_id, f.message)
        _warn_ephemeral(plans, prov, o)
        if report.blocking:
            raise self._blocked(report, plans)
        if report.decisive:
            ids = sorted({f.check_id for f in report.decisive})
            if not o.accept_unknown:
                self.rt.journal.record("undecided", domain=self.guest.name, uuid=self.guest.uuid, checks=ids,
                                       unknowns=[f"{f.check_id} ({f.subject}): {f.message}" for f in report.decisive])
                raise undecided(report)
            self.rt.journal.record("unknown-accepted", domain=self.guest.name, uuid=self.guest.uuid, checks=ids)
            for f in report.decisive:
                log.warning("%s: %s (unknown, accepted with --accept-unknown)", f.check_id, f.message)
        return prov, plans

    def _blocked(self, report: Report, plans: list[SecretPlan]) -> Blocked:
        ids = sorted({f.check_id for f in report.blocking})
        self.rt.journal.record("blocked", domain=self.guest.name, uuid=self.guest.uuid, checks=ids)
        secret_blockers = [p for p in plans if p.action is SecretAction.BLOCK]
        if secret_blockers and all(i.startswith("SECRET-") for i in ids):
            err = blocked_by(secret_blockers)
        else:
            first = report.blocking[0]
            more = f" (and {len(report.blocking) - 1} more: {', '.join(ids)})" if len(report.blocking) > 1 else ""
            err = Blocked(f"{first.check_id}: {first.message}{more}", hint=first.hint or None)
        err.data["report"] = report.as_dict()
        return err

    def _migrate(self, prov: SecretProvisioner, plans: list[SecretPlan], limits: Deadlines) -> None:
        """migrateToURI3, retried on transient errors; on failure undo our secrets and raise."""
        journal, uuid = self.rt.journal, self.guest.uuid
        flags, params = migration_flags(self.options.policy), migration_params(self.options.policy)
        self.prov = prov
        try:
            self.retrying(self._attempt, flags, params, limits)
        except _StillAborting as e:
            raise self._still_aborting(e) from None
        except Exception as e:
            self._start_cleanup()
            reason = error_summary(e)
            journal.record("migration-failed", uuid=uuid, attempts=self.attempts, error=reason)
            try:
                where = self._bounded("the look-up of where the VM runs", safe_where, self.src, self.dst, uuid)
            except CallTimedOut as t:
                self.unsettled = True
                journal.record("migration-unsettled", uuid=uuid, error=reason, where="not known", detail=str(t))
                raise Unsettled(
                    f"the VM's location is not known: {t} after the migration of {self.guest.name} to "
                    f"{self.dst.uri} failed ({reason}); secrets were left in place; look with "
                    f"`virsh -c {self.src.uri} domstate {self.guest.name}` and `virsh -c {self.dst.uri} domstate "
                    f"{self.guest.name}` before anything else", where="unknown", attempts=self.attempts) from None
            if where == "destination":  # it completed despite the error (or just before the abort)
                journal.record("migration-completed-despite-error", uuid=uuid, error=reason)
                return
            if where != "source":
                raise MigrationFailed(
                    f"migration of {self.guest.name} to {self.dst.uri} failed: {reason}; the VM is running on "
                    f"neither host as far as can be seen ({where}); secrets were left in place",
                    hint="inspect both hosts with virsh before anything else", where=where,
                    attempts=self.attempts) from None
            interrupted = isinstance(e, Interrupted)
            diagnosis = None if interrupted else self._diagnose(reason, plans)
            removed = self._rollback(prov)
            tail = (f"; removed {len(removed)} secret(s) this run created" if removed else "") + \
                (f"; could not remove {', '.join(prov.created)}" if prov.created else "")
            if interrupted:
                raise Interrupted(f"interrupted: the migration of {self.guest.name} was aborted; the VM is still "
                                  f"on {self.src.uri}{tail}", where=where, attempts=self.attempts,
                                  rolled_back=removed) from None
            assert diagnosis is not None
            raise MigrationFailed(
                f"migration of {self.guest.name} to {self.dst.uri} failed after {self.attempts} "
                f"attempt(s): {reason}; the VM is still on {self.src.uri}{tail}"
                + (f"; probable cause: {diagnosis.cause}" if diagnosis.known else ""),
                hint=diagnosis.hint or None, where=where, attempts=self.attempts, rolled_back=removed,
                diagnosis=diagnosis.as_dict()) from None

    def _still_aborting(self, e: _StillAborting) -> Unsettled:
        """migrateToURI3 did not return within the abort bound: say where the VM is (asked within the
        cleanup budget) and what to do. Nothing is rolled back — the job may still complete, and the VM
        would need its secrets on the destination — and the lease stays to mark the job as this run's."""
        self._start_cleanup()
        self.unsettled = True
        name, src, dst, uuid = self.guest.name, self.src.uri, self.dst.uri, self.guest.uuid
        try:
            where = self._bounded("the look-up of where the VM runs", safe_where, self.src, self.dst, uuid)
        except CallTimedOut:
            where = "not known"
        self.rt.journal.record("migration-unsettled", uuid=uuid, error=e.reason, where=where,
                               secrets_left=list(self.prov_created))
        left = (f"; secret(s) {', '.join(self.prov_created)} this run created on {dst} were left in place (the "
                "migration may still complete)") if self.prov_created else ""
        why = (f"migrateToURI3 has not returned {self.bounds.abort_s:g} s after the abort was asked for "
               f"({e.reason})")
        if where == "destination":
            return Unsettled(f"still aborting, but the VM is running on the destination {dst}: {why}{left}; look "
                             f"with `virsh -c {dst} dominfo {name}` and `virsh -c {src} domjobinfo {name}`",
                             where=where, attempts=self.attempts)
        on = "on the source" if where == "source" else "believed to be on the source (it did not answer)"
        return Unsettled(f"still aborting: the VM is {on} {src}, its migration job may still run there: {why}"
                         f"{left}; run `migcoord abort {name} --from {src}` or look with "
                         f"`virsh -c {src} domjobinfo {name}`", where=where if where == "source" else "unknown",
                         attempts=self.attempts)

    def _diagnose(self, reason: str, plans: list[SecretPlan]) -> Diagnosis:
        """Why it failed, from the destination's swtpm/QEMU logs (local, or over SSH when configured)
        and what the plan knew; best effort: a failure to look is itself no error."""
        logs = ("", "")
        try:
            runner = runner_for(self.dst.uri, self.options.ssh)
            if runner is not None:
                try:
                    logs = gather(runner, self.guest.name)
                finally:
                    runner.close()
        except Exception as e:  # NOTE: e.g. SSH unreachable; the migration error stays the news
            log.info("could not read the destination's logs: %s", e)
        d = explain(reason, logs[0], logs[1], plans, self.dst.uri)
        self.rt.journal.record("failure-diagnosis", uuid=self.guest.uuid, **d.as_dict())
        return d

    def _attempt(self, flags: frozenset[str], params: dict[str, Any], limits: Deadlines) -> str:
        self.attempts += 1
        journal, uuid = self.rt.journal, self.guest.uuid
        if self.attempts > 1:
            if not self._bounded("virConnectIsAlive", self.src.alive):
                self.src = self.rt.connect(self.src.uri)
            where = self._bounded("the look-up of where the VM runs", where_is, self.src, self.dst, uuid)
            journal.record("migration-retry-check", uuid=uuid, attempt=self.attempts, where=where)
            if where == "destination":
                return "completed-earlier"
        g = self.src.find_guest(uuid) or self.guest
        # NOTE: libvirt cannot change metadata during the migration job, so the lease is pushed past
        # this attempt's own deadline (when the monitor would abort it) before it starts.
        self.lease.extend(g, attempt_ttl(limits))
        journal.record("migration-attempt", uuid=uuid, attempt=self.attempts)
        self.rt.on_event({"event": "migration-attempt", "attempt": self.attempts})
        with JobMonitor(g, self.rt.on_event, limits, self.options.policy, self.rt.clock,
                        call_s=self.bounds.call_s) as monitor:
            try:
                self._run_interruptibly(g, flags, params, monitor, limits)
            except _StillAborting:
                raise  # the job may still run: nothing is resumed or undone under it
            except Interrupted:
                self._resume_if_we_paused(g, monitor)
                raise
            except Exception:
                self._resume_if_we_paused(g, monitor)
                if monitor.aborted:
                    raise JobAborted(f"job aborted: the migration {monitor.aborted}") from None
                raise
        return "migrated"

    def _resume_if_we_paused(self, g: Guest, monitor: JobMonitor) -> None:
        """--on-deadline suspend paused the guest and the migration still failed: it runs again on
        the source (only a pause this run made is undone)."""
        if not monitor.suspended:
            return
        self._start_cleanup()
        try:
            if self._bounded("virDomainGetState", lambda: g.is_active() and g.status().state == "paused"):
                self._bounded("virDomainResume", g.resume)
                self.rt.journal.record("guest-resumed", uuid=g.uuid, host=self.src.uri)
        except Exception as e:
            log.warning("could not resume %s on %s after the failed migration: %s", g.name, self.src.uri,
                        error_summary(e))

    def _run_interruptibly(self, g: Guest, flags: frozenset[str], params: dict[str, Any], monitor: JobMonitor,
                           limits: Deadlines) -> None:
        """migrateToURI3 in a worker thread, so that this thread stays free to notice Ctrl-C/SIGTERM
        (a KeyboardInterrupt here) or ``Runtime.cancel``; then abort the job (virDomainAbortJob)
        and wait for libvirt to settle before raising ``Interrupted``.

        Every wait here has a bound (core.params): once the abort was asked for — on a signal, by the
        monitor at a deadline, or by this thread's own watchdog (``job_limit_s``) should the monitor
        not have — migrateToURI3 gets ``abort_s`` to return, else ``_StillAborting``. The call itself
        cannot be cancelled: it stays in its daemon thread (a late answer is dropped)."""
        outcome: list[BaseException | None] = []
        done = threading.Event()  # NOTE: not Thread.is_alive(): a join interrupted by Ctrl-C can make it lie

        def work() -> None:
            try:
                g.migrate(self.dst.uri, params, flags)
                outcome.append(None)
            except BaseException as e:  # handed to the waiting thread
                outcome.append(e)
            finally:
                done.set()

        aborter = _Aborter(g, job_limit_s(limits, self.bounds), self.bounds.abort_s)
        interrupted = noticed = launched = False
        while True:
            try:  # NOTE: a signal from the moment the call starts is caught here
                if not launched:
                    launched = True
                    threading.Thread(target=work, daemon=True, name="migcoord-migrate").start()
                if done.wait(0.2):
                    break
            except KeyboardInterrupt:
                interrupted = True
            if (interrupted or self.rt.cancel.is_set()) and not noticed:
                # the first signal: from now on, a further one waits for the cleanup
                interrupted = noticed = True
                self.shield.engage()
                self._start_cleanup()
                self.rt.journal.record("migration-interrupted", uuid=self.guest.uuid)
                self.rt.on_event({"event": "job-abort", "reason": "interrupted"})
                aborter.ask("interrupted")
            self.shield.tick()
            if aborter.step(monitor):
                self.rt.journal.record("migration-watchdog-abort", uuid=self.guest.uuid,
                                       after_s=round(aborter.watchdog_s))
        if interrupted:
            raise Interrupted("interrupted")
        err = outcome[0] if outcome else None
        if err is not None:
            raise err

    def _adopt_stale_job(self, limits: Deadlines, why: str) -> None:
        """An outgoing migration left by our own dead run (its lease expired or its process is
        gone): with peer-to-peer the source daemon carries on without its client. Watch it to its
        end under our deadlines — aborting it if it overruns them — instead of failing or starting
        a second one."""
        guest, journal, emit = self.guest, self.rt.journal, self.rt.on_event
        job = guest.job()
        journal.record("stale-job-adopted", uuid=guest.uuid, elapsed_ms=job.elapsed_ms, reason=why)
        emit({"event": "stale-job-adopted", "elapsed_ms": job.elapsed_ms})
        log.warning("domain %s: adopting %s", guest.name, why)
        with JobMonitor(guest, emit, limits, self.options.policy, self.rt.clock) as monitor:
            while True:
                try:
                    if not guest.is_active() or not guest.job().active:
                        break
                except Exception:  # the domain left the source: the job completed
                    break
                try:
                    if self.rt.cancel.is_set():
                        raise KeyboardInterrupt
                    self.rt.sleep(0.2)
                except KeyboardInterrupt:  # adopted, so ours: stop it like our own
                    journal.record("migration-interrupted", uuid=guest.uuid, adopted=True)
                    with contextlib.suppress(Exception):
                        guest.abort_job()
                    raise Interrupted(f"interrupted while watching the adopted migration of {guest.name}; it "
                                      "was aborted") from None
        if monitor.aborted:
            journal.record("stale-job-aborted", uuid=guest.uuid, reason=monitor.aborted)

    def _rollback(self, prov: SecretProvisioner) -> list[str]:
        """Undo our secrets on the destination; if it is unreachable, say which ones were left."""
        self._start_cleanup()
        try:
            return self._bounded("the rollback of this run's secrets",
                                 lambda: prov.rollback([x for g in self.dst.guests() for x in g.definitions()]))
        except Exception as e:
            self.rt.journal.record("rollback-incomplete", host=self.dst.uri, uuids=list(prov.created),
                                   error=error_summary(e))
            log.warning("could not remove secret(s) %s this run created on %s: %s",
                        ", ".join(prov.created), self.dst.uri, error_summary(e))
            return []


def undecided(report: Report) -> Undecided:
    """The refusal of a run whose success rests on a decisive unknown: names each one and, as the hint,
    how to make it known (each check's hint) or ``--accept-unknown``. Nothing was changed."""
    found = report.decisive
    ids = sorted({f.check_id for f in found})
    what = "; ".join(f"{f.check_id} ({f.subject}): {f.message}" for f in found)
    known = "; ".join(dict.fromkeys(f"{f.check_id}: {f.hint}" for f in found if f.hint))
    err = Undecided(f"UNKNOWN: success depends on what the checks could not learn: {what}; nothing was changed",
                    hint=f"make it known ({known}), or pass --accept-unknown to go on anyway", check_ids=ids)
    err.data["report"] = report.as_dict()
    return err


def _warn_ephemeral(plans: list[SecretPlan], prov: SecretProvisioner, options: MigrateOptions) -> None:
    for p in plans:
        info = prov.source_info(p.uuid)
        if info and p.action is SecretAction.PROVISION and options.policy.persist \
                and wanted_flags(info, prov.policy)[1]:
            log.warning("secret %s will be ephemeral on the destination but backs a persistent domain: "
                        "the domain will not start there after a libvirtd restart", p.uuid)
