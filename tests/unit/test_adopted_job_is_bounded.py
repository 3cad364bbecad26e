"""Watching an adopted job has a bound (house rule 19, issue 20 item 2): a dead run's migration that never
ends — its abort is answered but changes nothing, or its job stats never answer either — ends the run
``abort_s`` after the abort was asked for (the monitor's, at the deadline) with ``Unsettled`` (exit 7): one
line saying the VM is on the source and its job may still run there, and what to do. Nothing else is
started or changed: no second migration, no secret, the dead run's lease left as it was, the lock free.
Before, the watch looped on virDomainGetJobStats for as long as the job ran, i.e. forever.

mock: a hung adopted job cannot be produced for real on demand: it takes a migcoord run killed
mid-migration and then a source daemon whose job ignores virDomainAbortJob (or a QEMU monitor that stops
answering), which the lab cannot make happen at will (the lab's
``test_faults::test_migcoord_killed_mid_migration_rerun_converges`` adopts a job that does end). So the
source is a ``hung_libvirt_fakes`` host whose guest's job never ends; ownership, the lease rules, the
monitor, the aborter and the outcome are the real flow. Bounds are small (TimeoutPolicy), no sleeps.
"""
from __future__ import annotations

import threading
import time

import pytest

import hung_libvirt_fakes as fakes
from coordinator.core.errors import Unsettled
from coordinator.core.lease_rules import Lease, format_lease
from coordinator.core.params import TimeoutPolicy, exit_bound_s
from coordinator.flows import migrate as flow
from coordinator.steps.journal import Journal
from coordinator.steps.parameters import MigrateOptions

SMALL = TimeoutPolicy(completion_s=1.0, stall_s=1.0, call_s=0.3, abort_s=0.5, cleanup_s=1.0)
# the deadline, the abort and the cleanup bounds, one look past the bound, and the monitor's 0.5 s poll
LIMIT_S = SMALL.completion_s + exit_bound_s(SMALL) + SMALL.call_s + 1.5


class JobThatNeverEnds(fakes.FakeGuest):
    """virDomainAbortJob returns, but the migration job runs on (``host.migrating`` stays set)."""

    def abort_job(self) -> None:
        self.aborts += 1
        self._call("abortJob")


@pytest.fixture(autouse=True)
def _no_checks(monkeypatch):
    monkeypatch.setattr(flow, "checks_for_migration", fakes.no_checks)


def dead_runs_job() -> tuple[fakes.FakeHost, fakes.FakeHost, str]:
    """An outgoing migration to DST carrying the expired lease of a run that is gone: ours to adopt."""
    src, dst = fakes.hosts()
    src.guest = JobThatNeverEnds(src)
    now = time.time()
    src.guest.meta = format_lease(Lease("run-dead", "other-ctl", 4242, now - 100, now - 10, fakes.DST))
    src.migrating.set()
    return src, dst, src.guest.meta


def run_in_thread(src, dst, tmp_path, journal):
    """The run, in a thread joined with a timeout: a wait without end fails the test instead of hanging it."""
    box: list[BaseException | object] = []
    t = threading.Thread(target=lambda: box.append(_outcome(src, dst, tmp_path, journal)), daemon=True)
    start = time.monotonic()
    t.start()
    t.join(3 * LIMIT_S)
    took = time.monotonic() - start
    src.hangs.release()
    dst.hangs.release()
    assert not t.is_alive(), f"the adopted job was watched for more than {3 * LIMIT_S:.0f} s"
    return box[0], took


def _outcome(src, dst, tmp_path, journal):
    try:
        return fakes.run_migrate(src, dst, tmp_path, MigrateOptions(timeouts=SMALL), journal=journal)
    except BaseException as e:
        return e


@pytest.mark.parametrize("stats_hang", [False, True], ids=["abort-ignored", "job-stats-never-answer-too"])
def test_an_adopted_job_that_never_ends_is_unsettled_within_the_abort_bound(stats_hang, tmp_path):
    src, dst, lease = dead_runs_job()
    if stats_hang:  # from the look at the lease on (after ownership read the job), job stats never answer
        src.hooks["metadata"] = lambda: src.hangs.names.add("jobStats-migrating")
    journal = Journal()
    err, took = run_in_thread(src, dst, tmp_path, journal)
    assert isinstance(err, Unsettled) and err.exit_code == 7, err
    line = str(err)
    assert "\n" not in line and line.startswith("still aborting: the VM is on the source " + fakes.SRC)
    assert f"the adopted migration job has not ended {SMALL.abort_s:g} s after the abort was asked for" in line
    assert "migcoord abort vm1 --from" in line and "virsh" in line
    assert took < LIMIT_S
    events = [e["event"] for e in journal.events]
    assert "stale-job-adopted" in events and events[-1] == "migration-unsettled"
    assert journal.events[-1]["adopted"] is True and journal.events[-1]["where"] == "source"
    assert src.guest.aborts >= 1 and src.migrating.is_set()  # asked to abort; the job runs on
    assert "migrateToURI3" not in src.calls and not dst.secrets  # nothing else was started or provisioned
    assert src.guest.meta == lease  # the dead run's lease is left as it was: it marks the job
    assert fakes.lock_is_free(tmp_path)
