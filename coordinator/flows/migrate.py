"""Migrate one domain: pre-flight → secrets → migrateToURI3 (retried) → verify.

Connections and time come from the ``Runtime`` (house rule 8); what to do comes from the
``MigrateOptions``. The steps themselves live in ``coordinator.steps``; this module only orders them,
in the order a run takes them (``_Run.go`` → ``_owned``). One attempt of migrateToURI3 and its bounded
abort are ``flows.attempt``; a dead run's job is ``flows.adoption``; what they share is
``flows.run_state.RunState``, handed to them explicitly.
"""
from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import TypeVar

import tenacity

from checks import checks_for_migration
from checks.registry import Report
from coordinator.core.domain.secret_refs import union_refs
from coordinator.core.errors import (Blocked, Interrupted, MigcoordError, MigrationFailed, Undecided,
                                     VerificationFailed)
from coordinator.core.lease_rules import TTL_S, JobAction
from coordinator.core.model import MigrationResult, SecretAction, SecretPlan
from coordinator.core.params import Deadlines, exit_bound_s, migration_flags, migration_params
from coordinator.core.secret_rules import wanted_flags
from coordinator.core.timings import PhaseRecorder
from coordinator.core.uris import same_host_message
from coordinator.flows.adoption import adopt
from coordinator.flows.attempt import StillAborting, attempt, still_aborting
from coordinator.flows.boundary import libvirt_errors
from coordinator.flows.run_state import RunState, SignalShield, location_unknown
from coordinator.flows.validate import before_connecting
from coordinator.ssh.runner import runner_for
from coordinator.steps.diagnose import Diagnosis, explain, gather
from coordinator.steps.lease import LeaseKeeper, Ownership, ownership
from coordinator.steps.locks import domain_lock
from coordinator.steps.parameters import MigrateOptions, Runtime
from coordinator.steps.provision import SecretProvisioner, blocked_by, cleanup_source
from coordinator.steps.retry import build_retrying
from coordinator.steps.transport import check_transport
from coordinator.steps.verify import safe_where, verify
from coordinator.virt.errors import LibvirtError, error_summary
from coordinator.virt.guest import CallTimedOut, Guest, call_within
from coordinator.virt.host import Host

log = logging.getLogger("migcoord")

# Between writing the lease and reading it back (steps.lease.LeaseKeeper.take). It only has to cover one
# round trip — the gap between another coordinator's last look and its write — with a wide margin; every
# migration waits it once (it was 0.5 s: 15 % of a 3 s lab migration, seen in the --timings breakdown).
LEASE_SETTLE_S = 0.1

E = TypeVar("E", bound=MigcoordError)


def migrate(domain: str, source_uri: str, dest_uri: str, options: MigrateOptions | None = None,
            runtime: Runtime | None = None) -> MigrationResult:
    """Migrate ``domain`` (name, UUID or id) from ``source_uri`` to ``dest_uri``.

    Raises ``Blocked`` (nothing changed), ``BadInput``, ``Undecided``, ``MigrationFailed`` (VM still on
    the source; secrets this run created on the destination were removed), ``Interrupted``, ``Unsettled``
    (a bound was hit and a job may still run: ``flows.attempt``, ``flows.adoption``) or ``Busy``.

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
    shield = SignalShield(exit_bound_s(options.timeouts))
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
            return _Run(RunState(guest, src, dst, options, rt, shield), retrying, t0, timer).go()


@contextlib.contextmanager
def _connected(source_uri: str, dest_uri: str, rt: Runtime, retrying: tenacity.Retrying,
               timer: PhaseRecorder, close_s: float, shield: SignalShield) -> Iterator[tuple[Host, Host]]:
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
    """One locked migration of one domain, in order: ``go`` (who owns it) → ``_owned`` (adopt, plan and
    check, lease, provision, migrate, verify). The state its steps share is ``state``."""

    state: RunState
    retrying: tenacity.Retrying
    t0: float
    timer: PhaseRecorder

    def __post_init__(self) -> None:
        rt = self.state.rt
        self.lease = LeaseKeeper(rt.journal.run_id, self.state.dst.uri, rt.wall, rt.journal,
                                 settle=lambda: rt.sleep(LEASE_SETTLE_S))

    def go(self) -> MigrationResult:
        """Read who owns the domain; a dry run stops after planning and checks (it never adopts,
        waits on or aborts anything); a real run takes the lease and always releases it."""
        st = self.state
        own = ownership(st.guest, st.dst.uri, st.rt.wall())
        if st.options.dry_run:
            return self._dry_run()
        if own.action is JobAction.BLOCK:
            st.rt.journal.record("blocked", domain=st.guest.name, uuid=st.guest.uuid,
                                 checks=["DOMAIN-JOB-ACTIVE"], reason=own.message)
            raise Blocked(f"DOMAIN-JOB-ACTIVE: {own.message}", check_id="DOMAIN-JOB-ACTIVE",
                          hint="wait for it to finish; migcoord leaves jobs it does not own alone")
        try:
            return self._owned(own)
        finally:
            if self.lease.held and st.unsettled:  # it marks the job as this run's for whoever comes next
                st.rt.journal.record("lease-left", uuid=st.guest.uuid, reason="the outcome is unsettled")
            elif self.lease.held:
                self._release_lease()

    def _release_lease(self) -> None:
        """Clear our lease wherever the domain is now: the source definition and the copy that
        travelled to the destination. Best effort (a host may be gone): the outcome stays the news."""
        st = self.state
        for host in (st.src, st.dst):
            try:
                st.bounded("the lease release", lambda h=host: self.lease.release(h.find_guest(st.guest.uuid), h.uri))
            except Exception as e:
                st.rt.journal.record("lease-release-failed", uuid=st.guest.uuid, host=host.uri,
                                     error=error_summary(e))
                log.warning("could not remove this run's lease on %s: %s (it expires by itself)", host.uri,
                            error_summary(e))

    def _dry_run(self) -> MigrationResult:
        st = self.state
        _prov, plans = self._plan_and_check()
        return MigrationResult(domain=st.guest.name, uuid=st.guest.uuid, source_uri=st.src.uri,
                               dest_uri=st.dst.uri, state="dry-run", attempts=0,
                               duration_s=st.rt.clock() - self.t0, secrets=tuple(plans))

    def _owned(self, own: Ownership) -> MigrationResult:
        """The domain is ours to migrate (a dead run's job adopted first): the rest of the run, in order."""
        st = self.state
        limits = st.bounds.for_memory(st.guest.memory_bytes()) if st.guest.is_active() else None
        if own.action is JobAction.ADOPT and limits:
            there = adopt(st, self.lease, own, limits)
            if there is not None:
                return _already_there(there, st.src, st.dst, st.rt.clock() - self.t0)
        prov, plans = self._plan_and_check()
        st.rt.journal.record("migration-start", domain=st.guest.name, uuid=st.guest.uuid, source=st.src.uri,
                             dest=st.dst.uri, flags=sorted(migration_flags(st.options.policy)))
        self.lease.take(st.guest, TTL_S)
        with self.timer.phase("provision"):
            self._provision(prov, plans)
        limits = limits or st.bounds.for_memory(st.guest.memory_bytes())
        with self.timer.phase("migration"):  # every attempt, the waits between them, a rollback
            self._migrate_retried(prov, plans, limits)
        return self._verified(plans)

    def _plan_and_check(self) -> tuple[SecretProvisioner, list[SecretPlan]]:
        """Plan every secret (reads only) and run the pre-flight checks; raise Blocked if one blocks, and
        Undecided if a fact that decides success is unknown (unless ``accept_unknown``)."""
        st = self.state
        o, emit = st.options, st.rt.on_event
        with self.timer.phase("plan"):
            xmls = st.guest.definitions()
            prov = SecretProvisioner(st.src, st.dst, keyring=o.keyring, policy=o.secret_policy,
                                     journal=st.rt.journal)
            plans = prov.plan(union_refs(*xmls))
        emit({"event": "secrets-planned", "secrets": [p.as_dict() for p in plans]})
        with self.timer.phase("checks"):
            report = checks_for_migration(st.src, st.dst, st.guest, xmls, plans, o)
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
            self._unknowns(report)
        return prov, plans

    def _unknowns(self, report: Report) -> None:
        """Decisive unknowns: refused (``Undecided``), or gone on with under ``accept_unknown``."""
        st = self.state
        ids = sorted({f.check_id for f in report.decisive})
        if not st.options.accept_unknown:
            st.rt.journal.record("undecided", domain=st.guest.name, uuid=st.guest.uuid, checks=ids,
                                 unknowns=[f"{f.check_id} ({f.subject}): {f.message}" for f in report.decisive])
            raise undecided(report)
        st.rt.journal.record("unknown-accepted", domain=st.guest.name, uuid=st.guest.uuid, checks=ids)
        for f in report.decisive:
            log.warning("%s: %s (unknown, accepted with --accept-unknown)", f.check_id, f.message)

    def _blocked(self, report: Report, plans: list[SecretPlan]) -> Blocked:
        st = self.state
        ids = sorted({f.check_id for f in report.blocking})
        st.rt.journal.record("blocked", domain=st.guest.name, uuid=st.guest.uuid, checks=ids)
        secret_blockers = [p for p in plans if p.action is SecretAction.BLOCK]
        if secret_blockers and all(i.startswith("SECRET-") for i in ids):
            err = blocked_by(secret_blockers)
        else:
            first = report.blocking[0]
            more = f" (and {len(report.blocking) - 1} more: {', '.join(ids)})" if len(report.blocking) > 1 else ""
            err = Blocked(f"{first.check_id}: {first.message}{more}", hint=first.hint or None)
        err.data["report"] = report.as_dict()
        return err

    def _provision(self, prov: SecretProvisioner, plans: list[SecretPlan]) -> None:
        """Define and set the secrets the destination lacks. A failure part-way removes what this
        run created there and becomes one clean error (the VM never left the source)."""
        st = self.state
        try:
            prov.apply(plans)
        except BaseException as e:
            interrupted = isinstance(e, KeyboardInterrupt)
            if interrupted:
                st.shield.engage()
            st.start_cleanup()
            reason = "interrupted" if interrupted else error_summary(e)
            st.rt.journal.record("provisioning-failed", uuid=st.guest.uuid, error=reason)
            src, dst = st.src.uri, st.dst.uri
            outcome: MigcoordError
            if interrupted:
                outcome = Interrupted(f"interrupted while provisioning secrets on {dst}; the VM is still on {src}",
                                      where="source")
            elif isinstance(e, Blocked):
                outcome = e
            else:
                outcome = MigrationFailed(f"provisioning secrets on {dst} failed: {reason}; the VM is still on "
                                          f"{src}", where="source", attempts=0)
            raise _rolled_back(st, prov, outcome) from None

    def _migrate_retried(self, prov: SecretProvisioner, plans: list[SecretPlan], limits: Deadlines) -> None:
        """migrateToURI3, retried on transient errors (``flows.attempt``); on failure undo our secrets
        and raise."""
        st = self.state
        flags, params = migration_flags(st.options.policy), migration_params(st.options.policy)
        try:
            self.retrying(attempt, st, self.lease, flags, params, limits)
        except StillAborting as e:
            raise still_aborting(st, e, list(prov.created)) from None
        except Exception as e:
            failure = self._failure(e, prov, plans)
            if failure is not None:
                raise failure from None

    def _failure(self, e: Exception, prov: SecretProvisioner, plans: list[SecretPlan]) -> MigcoordError | None:
        """What a failed migration ends in, by where the VM is now: on the destination, nothing (it
        completed despite the error); not known or on neither host, an error that leaves the secrets in
        place; on the source, the rollback and ``Interrupted`` or ``MigrationFailed``."""
        st = self.state
        st.start_cleanup()
        reason, journal = error_summary(e), st.rt.journal
        name, src, dst, uuid = st.guest.name, st.src.uri, st.dst.uri, st.guest.uuid
        journal.record("migration-failed", uuid=uuid, attempts=st.attempts, error=reason)
        try:
            where = st.bounded("the look-up of where the VM runs", safe_where, st.src, st.dst, uuid)
        except CallTimedOut as t:
            return location_unknown(st, t, f"the migration of {name} to {dst} failed ({reason}); secrets were "
                                    "left in place", reason)
        if where == "destination":  # it completed despite the error (or just before the abort)
            journal.record("migration-completed-despite-error", uuid=uuid, error=reason)
            return None
        if where != "source":
            return MigrationFailed(
                f"migration of {name} to {dst} failed: {reason}; the VM is running on neither host as far as can "
                f"be seen ({where}); secrets were left in place", hint="inspect both hosts with virsh before "
                "anything else", where=where, attempts=st.attempts)
        if isinstance(e, Interrupted):
            return _rolled_back(st, prov, Interrupted(f"interrupted: the migration of {name} was aborted; the VM "
                                                      f"is still on {src}", where=where, attempts=st.attempts))
        diagnosis = self._diagnose(reason, plans)
        failed = MigrationFailed(f"migration of {name} to {dst} failed after {st.attempts} attempt(s): {reason}; "
                                 f"the VM is still on {src}", hint=diagnosis.hint or None, where=where,
                                 attempts=st.attempts, diagnosis=diagnosis.as_dict())
        return _rolled_back(st, prov, failed, f"; probable cause: {diagnosis.cause}" if diagnosis.known else "")

    def _diagnose(self, reason: str, plans: list[SecretPlan]) -> Diagnosis:
        """Why it failed, from the destination's swtpm/QEMU logs (local, or over SSH when configured)
        and what the plan knew; best effort: a failure to look is itself no error."""
        st = self.state
        logs = ("", "")
        try:
            runner = runner_for(st.dst.uri, st.options.ssh)
            if runner is not None:
                try:
                    logs = gather(runner, st.guest.name)
                finally:
                    runner.close()
        except Exception as e:  # NOTE: e.g. SSH unreachable; the migration error stays the news
            log.info("could not read the destination's logs: %s", e)
        d = explain(reason, logs[0], logs[1], plans, st.dst.uri)
        st.rt.journal.record("failure-diagnosis", uuid=st.guest.uuid, **d.as_dict())
        return d

    def _verified(self, plans: list[SecretPlan]) -> MigrationResult:
        """libvirt said yes: the result, "migrated-unverified" if verifying found (or met) a problem."""
        st = self.state
        result = MigrationResult(domain=st.guest.name, uuid=st.guest.uuid, source_uri=st.src.uri,
                                 dest_uri=st.dst.uri, state="migrated", attempts=st.attempts,
                                 duration_s=st.rt.clock() - self.t0, secrets=tuple(plans))
        self._emit_stats()
        with self.timer.phase("verify"):  # and the optional source secret cleanup
            problems = self._verify(result, plans)
        if problems:
            st.rt.journal.record("migration-unverified", uuid=st.guest.uuid, attempts=st.attempts, problems=problems)
            log.warning("%s moved to %s but verification is incomplete: %s", result.domain, st.dst.uri,
                        "; ".join(problems))
            return replace(result, state="migrated-unverified", warnings=tuple(problems),
                           dest_state=self._dest_state())
        st.rt.journal.record("migration-done", uuid=st.guest.uuid, attempts=st.attempts,
                             duration_s=round(result.duration_s, 3))
        return replace(result, dest_state=self._dest_state())

    def _emit_stats(self) -> None:
        """Bytes moved and downtime from the destination's completed job, for the metrics file and
        library callers (best effort: the numbers are a report, not part of the outcome)."""
        st = self.state
        try:
            there = st.dst.find_guest(st.guest.uuid)
            stats = there.completed_job() if there else {}
        except LibvirtError:
            return
        if stats:
            self.timer.qemu_elapsed(stats.get("time_elapsed"))
            st.rt.on_event({"event": "migration-stats", **stats})

    def _dest_state(self) -> str:
        try:
            there = self.state.dst.find_guest(self.state.guest.uuid)
            return there.status().state if there else ""
        except LibvirtError:
            return "unknown"

    def _verify(self, result: MigrationResult, plans: list[SecretPlan]) -> list[str]:
        """After libvirt said yes: problems found (or met) while verifying; the VM has moved either way."""
        st, o = self.state, self.state.options
        try:
            verify(result.domain, result.uuid, st.src, st.dst, o.policy, plans, o.ssh)
        except VerificationFailed as e:
            return [e.message]
        except Exception as e:  # e.g. SSH refused or a host connection failing after the move
            return [f"verification could not finish: {error_summary(e)}"]
        if o.secret_policy.cleanup_source:
            try:
                xmls_left = [x for g in st.src.guests() for x in g.definitions()]
                cleanup_source(st.src, [p.uuid for p in plans if p.uuid], xmls_left, st.rt.journal)
            except Exception as e:
                return [f"source secret cleanup failed: {error_summary(e)}"]
        return []


def _rolled_back(st: RunState, prov: SecretProvisioner, outcome: E, after: str = "") -> E:
    """The one end of a run that may have left secrets on the destination: remove those this run created
    (within the cleanup budget), then ``outcome`` — Interrupted, MigrationFailed, or a Blocked met while
    provisioning — says what was removed and what could not be, then ``after``."""
    removed = _roll_back_secrets(st, prov)
    outcome.message += (f"; removed {len(removed)} secret(s) this run created" if removed else "") + \
        (f"; could not remove {', '.join(prov.created)}" if prov.created else "") + after
    outcome.args = (outcome.message,)
    if not isinstance(outcome, Blocked):  # a Blocked keeps the data its check gave it
        outcome.data["rolled_back"] = removed
    return outcome


def _roll_back_secrets(st: RunState, prov: SecretProvisioner) -> list[str]:
    """Undo our secrets on the destination; if it is unreachable, say which ones were left."""
    st.start_cleanup()
    try:
        return st.bounded("the rollback of this run's secrets",
                          lambda: prov.rollback([x for g in st.dst.guests() for x in g.definitions()]))
    except Exception as e:
        st.rt.journal.record("rollback-incomplete", host=st.dst.uri, uuids=list(prov.created),
                             error=error_summary(e))
        log.warning("could not remove secret(s) %s this run created on %s: %s",
                    ", ".join(prov.created), st.dst.uri, error_summary(e))
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
