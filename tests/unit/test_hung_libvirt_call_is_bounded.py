"""Every wait on a libvirt call has a bound (issue 21, house rule 19): a call that never returns ends the
run within its deadline plus the documented bound, with one line saying where the VM is believed to be
and what to do, its own exit code (7) for an unsettled outcome, and the domain lock released.

mock: a hung libvirt call cannot be produced for real without the network-fault lab of issue 22, so the
hosts are ``hung_libvirt_fakes`` stand-ins whose named calls block forever; locks, lease, provisioning,
the monitor, the abort and the rollback are the real flow. Bounds are small (TimeoutPolicy), no sleeps.
"""
from __future__ import annotations

import time

import pytest

import hung_libvirt_fakes as fakes
from coordinator.core.errors import MigrationFailed, Unsettled
from coordinator.core.params import (ABORT_BOUND_S, CALL_BOUND_S, CLEANUP_BOUND_S, TimeoutPolicy,
                                     exit_bound_s)
from coordinator.flows import migrate as flow
from coordinator.steps.parameters import MigrateOptions

# --timeout 1 --stall-timeout 1, and bounds of a fraction of a second
SMALL = TimeoutPolicy(completion_s=1.0, stall_s=1.0, call_s=0.3, abort_s=0.5, cleanup_s=1.0)
OPTIONS = MigrateOptions(timeouts=SMALL)
# the deadline, the abort and the cleanup bounds, and what the monitor's 0.5 s poll and thread starts add
LIMIT_S = SMALL.completion_s + exit_bound_s(SMALL) + 1.5


@pytest.fixture(autouse=True)
def _no_checks(monkeypatch):
    monkeypatch.setattr(flow, "checks_for_migration", fakes.no_checks)


def run(src, dst, tmp_path, options=OPTIONS):
    start = time.monotonic()
    try:
        with pytest.raises(Exception) as e:
            fakes.run_migrate(src, dst, tmp_path, options)
    finally:
        src.hangs.release()
        dst.hangs.release()
    return e.value, time.monotonic() - start


def test_a_never_returning_job_stats_still_aborts_at_the_deadline_and_rolls_back(tmp_path):
    """Before: the monitor blocked in jobStats, so no deadline ever fired and migrate never returned."""
    src, dst = fakes.hosts("jobStats-migrating")
    err, took = run(src, dst, tmp_path)
    assert isinstance(err, MigrationFailed) and err.exit_code == 3, err
    assert "did not complete within 1s" in str(err) or "made no progress" in str(err)
    assert "abortJob" in src.calls and took < LIMIT_S
    assert fakes.SECRET_UUID not in dst.secrets  # the abort worked: rolled back
    assert fakes.lock_is_free(tmp_path)


def test_migrate_to_uri3_that_never_returns_after_the_abort_is_unsettled_exit_7(tmp_path):
    """The job was aborted at the deadline but migrateToURI3 never returns: give up after the abort bound."""
    src, dst = fakes.hosts("migrateToURI3-after-abort")
    err, took = run(src, dst, tmp_path)
    assert isinstance(err, Unsettled) and err.exit_code == 7, err
    line = str(err)
    assert "\n" not in line and line.startswith("still aborting: the VM is on the source")
    assert fakes.SRC in line and "migcoord abort vm1 --from" in line and "virsh" in line
    assert fakes.SECRET_UUID in line  # the secret left in place is named (the job may still complete)
    assert took < LIMIT_S
    assert fakes.lock_is_free(tmp_path)
    assert src.guest.meta is not None  # the lease stays: it marks the job as this (dead) run's


def test_an_abort_job_that_never_returns_is_unsettled_within_the_bound(tmp_path):
    src, dst = fakes.hosts("abortJob")
    err, took = run(src, dst, tmp_path)
    assert isinstance(err, Unsettled) and err.exit_code == 7, err
    assert str(err).startswith("still aborting") and took < LIMIT_S
    assert fakes.lock_is_free(tmp_path)


def test_a_domain_lookup_that_never_returns_after_the_abort_says_the_location_is_unknown(tmp_path):
    src, dst = fakes.hosts()
    src.hooks["abortJob"] = lambda: src.hangs.names.add("lookup")  # every look-up after the abort hangs
    err, took = run(src, dst, tmp_path)
    assert isinstance(err, Unsettled) and err.exit_code == 7, err
    assert "not known" in str(err) and "virsh" in str(err) and took < LIMIT_S
    assert fakes.SECRET_UUID in dst.secrets  # never roll back while the VM may be on the destination
    assert fakes.lock_is_free(tmp_path)


def test_the_bounds_live_in_one_place_and_add_up():
    d = TimeoutPolicy()
    assert (d.call_s, d.abort_s, d.cleanup_s) == (CALL_BOUND_S, ABORT_BOUND_S, CLEANUP_BOUND_S)
    assert exit_bound_s(d) == ABORT_BOUND_S + CLEANUP_BOUND_S + CALL_BOUND_S  # + closing the connections
    with pytest.raises(Exception, match="positive"):
        TimeoutPolicy(call_s=0)


def test_the_cli_maps_unsettled_to_exit_7_with_one_line(tmp_path, monkeypatch, capsys):
    from coordinator.cli.main import EXIT_CODES, main

    def hung(*_a, **_kw):
        raise Unsettled("still aborting: the VM is on the source qemu+tls://hv1.invalid/system, its migration job "
                        "may still run; run `migcoord abort vm1 --from qemu+tls://hv1.invalid/system` or look "
                        "with virsh")
    monkeypatch.setattr(flow, "migrate", hung)
    rc = main(["--quiet", "migrate", "vm1", "--from", fakes.SRC, "--to", fakes.DST, "--journal",
               str(tmp_path / "j"), "--lock-dir", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 7 and err[-1].startswith("migcoord: error: still aborting")
    assert "\n  7 " in EXIT_CODES
