"""core.lease_rules: the lease element, its state, and what a run may do about a domain's job (tables)."""
from __future__ import annotations

import pytest

from coordinator.core.lease_rules import (JobAction, Lease, LeaseState, format_lease, job_action, lease_state,
                                    parse_lease)

DST = "qemu+tcp://dst/system"
L = Lease(run_id="r1", control_host="ctl", pid=42, started=1000.0, expires=2000.0, dest=DST, pid_start=7)


def test_format_then_parse_round_trips():
    assert parse_lease(format_lease(L)) == L


@pytest.mark.parametrize("xml", [None, "", "  ", "<not-xml", "<other run='r1'/>"])
def test_anything_but_a_lease_element_is_no_lease(xml):
    assert parse_lease(xml) is None


@pytest.mark.parametrize("xml, words", [
    ("<lease host='ctl' pid='1' started='1' expires='2'/>", "run is missing"),
    ("<lease run='r' host='ctl' pid='x' started='1' expires='2'/>", "pid='x'"),
    ("<lease run='r' host='ctl' pid='1' started='1' expires='nan'/>", "expires='nan'"),
    ("<lease run='' host='ctl' pid='1' started='1' expires='2'/>", "run=''"),
])
def test_a_damaged_lease_is_invalid_and_says_why(xml, words):
    lease = parse_lease(xml)
    assert lease is not None and words in lease.problem and lease.run_id == ""


def test_namespaced_element_as_libvirt_returns_it_parses():
    xml = ("<migcoord:lease xmlns:migcoord='https://migcoord.invalid/lease/1' run='r1' host='ctl' pid='42' "
           "pid-start='7' started='1000' expires='2000' dest='qemu+tcp://dst/system'/>")
    assert parse_lease(xml) == L


@pytest.mark.parametrize("lease, now, host, alive, expected", [
    (None, 0, "ctl", None, LeaseState.NONE),
    (L, 1500, "ctl", True, LeaseState.LIVE),
    (L, 1500, "other", None, LeaseState.LIVE),        # another control host: only expiry tells
    (L, 1500, "ctl", False, LeaseState.OWNER_DEAD),   # our host, the process is gone
    (L, 1500, "other", False, LeaseState.LIVE),       # a liveness answer about another host's pid is ignored
    (L, 2000, "ctl", True, LeaseState.EXPIRED),
    (L, 2500, "other", None, LeaseState.EXPIRED),
])
def test_lease_state(lease, now, host, alive, expected):
    assert lease_state(lease, now, host, alive) is expected


@pytest.mark.parametrize("active, op, lease, state, dest, own, action, words", [
    (False, "", None, LeaseState.NONE, DST, "", JobAction.PROCEED, "no job"),
    (False, "", L, LeaseState.EXPIRED, DST, "", JobAction.PROCEED, "no job"),
    (False, "", L, LeaseState.OWNER_DEAD, DST, "", JobAction.PROCEED, "no job"),
    (False, "", L, LeaseState.LIVE, DST, "", JobAction.BLOCK, "held by migcoord run r1 on ctl (pid 42)"),
    (False, "", L, LeaseState.LIVE, DST, "r1", JobAction.PROCEED, "no job"),       # our own lease
    # virsh migrate / backup / dump...: never ours
    (True, "migration-out", None, LeaseState.NONE, DST, "", JobAction.BLOCK, "migration-out job"),
    (True, "backup", None, LeaseState.NONE, DST, "", JobAction.BLOCK, "backup job"),
    (True, "dump", None, LeaseState.NONE, DST, "", JobAction.BLOCK, "not started by migcoord"),
    (True, "", None, LeaseState.NONE, DST, "", JobAction.BLOCK, "unknown job"),
    # a live migcoord run elsewhere: leave it alone, name the owner
    (True, "migration-out", L, LeaseState.LIVE, DST, "", JobAction.BLOCK, "owned by migcoord run r1"),
    # a dead run's migration to this destination: adopt
    (True, "migration-out", L, LeaseState.EXPIRED, DST, "", JobAction.ADOPT, "left by migcoord run r1"),
    (True, "migration-out", L, LeaseState.OWNER_DEAD, DST, "", JobAction.ADOPT, "owner-dead"),
    # ... but not one going elsewhere, and never a job that is not a migration
    (True, "migration-out", L, LeaseState.EXPIRED, "qemu+tcp://x/system", "", JobAction.BLOCK, "to " + DST),
    (True, "snapshot", L, LeaseState.EXPIRED, DST, "", JobAction.BLOCK, "not a migration"),
    (True, "migration-in", L, LeaseState.OWNER_DEAD, DST, "", JobAction.BLOCK, "not a migration"),
])
def test_job_action(active, op, lease, state, dest, own, action, words):
    got, why = job_action(active, op, lease, state, dest, own)
    assert got is action
    assert words in why
